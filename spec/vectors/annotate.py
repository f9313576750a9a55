#!/usr/bin/env python3
"""annotate.py - an independent reader of qfmt files, written from spec/qfmt_format.md alone.

For each FILE.qfmt it checks the file as the spec's "Reader validation procedure" says (every
open step, then a whole-file verify: each tensor's checksum, each zstd frame's rules, the zero
padding), then writes two files beside it:

    FILE.hex.md   an annotated hex dump: every structure and field, with offset, value, meaning
    FILE.json     the decoded content: header, footer, metadata, tensor table, tensor values

Usage:
    annotate.py FILE.qfmt...            check, then write FILE.hex.md and FILE.json
    annotate.py --check FILE.qfmt...    check, and compare with the existing .hex.md and .json
    annotate.py --stdout FILE.qfmt      check, and print the annotated dump only

It does not use libqfmt. Checksums come from xxHash's shared library (libxxhash.so.0,
XXH3_64bits and XXH64) and zstd frames are decoded by libzstd.so.1, both through ctypes; the
zstd frame header and block headers are parsed here. Exit status: 0 if every file is valid (and,
with --check, every generated file is up to date), 1 otherwise.
"""
import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import struct
import sys

# ---- Shared libraries ------------------------------------------------------------------------


def _load(names):
    for n in names:
        try:
            return ctypes.CDLL(n)
        except OSError:
            continue
    found = ctypes.util.find_library(names[0].split('.so')[0][3:])
    if found:
        return ctypes.CDLL(found)
    sys.exit("annotate.py: cannot load any of %s" % ", ".join(names))


_xxh = _load(["libxxhash.so.0", "libxxhash.so", "libxxhash.dylib"])
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_xxh.XXH64.restype = ctypes.c_uint64
_xxh.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
_zstd = _load(["libzstd.so.1", "libzstd.so", "libzstd.dylib"])
_zstd.ZSTD_decompress.restype = ctypes.c_size_t
_zstd.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
_zstd.ZSTD_isError.restype = ctypes.c_uint
_zstd.ZSTD_isError.argtypes = [ctypes.c_size_t]


def xxh3(b):
    """XXH3-64, seed 0."""
    return _xxh.XXH3_64bits(bytes(b), len(b))


def xxh64(b):
    return _xxh.XXH64(bytes(b), len(b), 0)


def zstd_decode(frame, raw_size):
    """Decodes one frame into exactly raw_size bytes, or returns None."""
    buf = ctypes.create_string_buffer(max(raw_size, 1))
    n = _zstd.ZSTD_decompress(buf, raw_size, bytes(frame), len(frame))
    if _zstd.ZSTD_isError(n) or n != raw_size:
        return None
    return buf.raw[:raw_size]


# ---- Tables of the spec ----------------------------------------------------------------------

MAGIC = b"QFMT\r\n\x1a\n"
END_MAGIC = b"QFMT_END"
# id: (name, block_elems, block_bytes)
TYPES = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
    8: ("q8_0", 32, 34), 24: ("i8", 1, 1), 25: ("i16", 1, 2), 26: ("i32", 1, 4),
    27: ("i64", 1, 8), 28: ("f64", 1, 8), 30: ("bf16", 1, 2), 256: ("u8", 1, 1),
    257: ("bool", 1, 1), 258: ("q8_z", 32, 35), 259: ("q4_z", 32, 19),
}
PLAIN_FMT = {"f32": "<f", "f64": "<d", "i8": "<b", "i16": "<h", "i32": "<i", "i64": "<q",
             "u8": "<B", "bool": "<B"}
CODECS = {0: "none", 1: "zstd"}
# id: (name, width, struct format); width 0: not a scalar
META_TYPES = {
    0: ("u8", 1, "<B"), 1: ("i8", 1, "<b"), 2: ("u16", 2, "<H"), 3: ("i16", 2, "<h"),
    4: ("u32", 4, "<I"), 5: ("i32", 4, "<i"), 6: ("u64", 8, "<Q"), 7: ("i64", 8, "<q"),
    8: ("f32", 4, "<f"), 9: ("f64", 8, "<d"), 10: ("bool", 1, "<B"), 11: ("string", 0, None),
    12: ("array", 0, None),
}
MIN_ALIGN, MAX_ALIGN = 32, 1 << 20
MAX_DIMS, MAX_NAME, MAX_KEY = 8, 1024, 256
MAX_COUNT, MAX_SECTION, MAX_ELEMENTS = 1 << 24, 1 << 30, 1 << 56
ZSTD_MAX_WINDOW = 1 << 27
VALUES_MAX_ELEMENTS = 4096  # the .json lists the values of tensors up to this size

DESCRIPTIONS = {
    "minimal.qfmt": "The smallest valid file: a header and a footer, no tensors, no metadata, "
                    "alignment 64 (so `Data_Offset = Metadata_Offset = 64`).",
    "example.qfmt": "The spec's [Worked example](../qfmt_format.md#worked-example), byte for byte: "
                    "alignment 32, an `f32`, an `f16` and a `bf16` tensor (a scalar), a string, "
                    "a string array and a `u32` metadata entry.",
    "floats.qfmt": "`f32`, `f16`, `bf16` and `f64` tensors: special values (-0, subnormals, the "
                   "largest finite values, infinities, a NaN, an `f16` overflow to +Inf), a "
                   "scalar, an empty tensor (`Stored_Size` 0, sharing its offset with the next "
                   "tensor) and an 8-dimensional tensor. Metadata of every value type: each "
                   "scalar type at an extreme, strings (multi-byte UTF-8, empty, with a 0x00 "
                   "byte), an array of each element type and an empty array; `string` sorts "
                   "before `string.empty` (a prefix comes first).",
    "ints.qfmt": "`i8`, `i16`, `i32`, `i64`, `u8` and `bool` tensors at their extreme values; no "
                 "metadata (`Metadata_Size` 0, so the directory starts at `Metadata_Offset`).",
    "zstd.qfmt": "One zstd-compressed `f32` tensor (codec 1): the frame header and block headers "
                 "are annotated. The compressed bytes depend on the zstd version that wrote "
                 "them (libzstd 1.5.4); the decoded bytes do not.",
    "quant.qfmt": "An `f32` source tensor [2, 64] and its reference quantization to `q8_0`, "
                  "`q4_0`, `q4_1`, `q8_z` and `q4_z`. Block 0 of each is the spec's worked block "
                  "example; block 1 is all positive; block 2 is all zero; block 3 has one large "
                  "negative outlier among small values.",
    "align256.qfmt": "Alignment 256: zero padding between the header and the first tensor "
                     "(`Data_Offset = 256`), and between the tensors.",
}


class Invalid(Exception):
    def __init__(self, code, offset, msg):
        super().__init__(msg)
        self.code, self.offset, self.msg = code, offset, msg


def need(cond, code, offset, msg):
    if not cond:
        raise Invalid(code, offset, msg)


def align_up(x, a):
    return (x + a - 1) & ~(a - 1)


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def utf8_ok(b, allow_nul):
    try:
        b.decode("utf-8", "strict")  # rejects overlongs, surrogates, > U+10FFFF, truncation
    except UnicodeDecodeError:
        return False
    return allow_nul or 0 not in b


# ---- Value formatting ------------------------------------------------------------------------


def f16_to_float(h):
    return struct.unpack("<e", struct.pack("<H", h))[0]


def bf16_to_float(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


def to_f32(x):
    """Rounds a double to fp32 (nearest even), as C's (float) conversion does."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def short_float(v, bits_of):
    """The shortest decimal that reads back as the same value of the stored precision."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    want = bits_of(v)
    for p in range(1, 18):
        s = "%.*g" % (p, v)
        if bits_of(float(s)) == want:
            break
    return repr(float(s))  # the same digits, in Python's layout: 100.0, 0.1, 3e+38


def _bits32(x):
    try:
        return struct.pack("<f", x)
    except OverflowError:
        return None


def _bits16(x):
    try:
        return struct.pack("<e", x)
    except OverflowError:
        return None


def fmt_value(kind, v):
    if kind == "f32":
        return short_float(v, _bits32)
    if kind in ("f16", "bf16"):  # exact: their values are short decimals
        return short_float(v, _bits16) if not math.isfinite(v) else repr(v)
    if kind == "f64":
        return "NaN" if math.isnan(v) else ("+Inf" if v == math.inf else "-Inf" if v == -math.inf else repr(v))
    if kind == "bool":
        return "true" if v else "false"
    return str(v)


def fmt_exact(v):
    """A block's fp16 field (jnum'd): its exact value."""
    return repr(v) if isinstance(v, float) else str(v)


def jnum(v):
    """A float for JSON: exact (Python's repr round-trips); non-finite values as strings."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def qstr(b):
    """A byte string as quoted text: UTF-8 kept, control bytes escaped."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        s = b.decode("latin-1")
    out = []
    for ch in s:
        c = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif c < 0x20 or c == 0x7F:
            out.append("\\x%02x" % c)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def hex64(v):
    return "0x%016X" % v


# ---- Block types: decoding per "Block-quantized types" ---------------------------------------
# Each product and sum below is exact in binary64 (fp16 scales, small integer codes, and q4_1's
# sum of two values whose bits span at most 44 binary places), so one rounding to fp32 after it
# is exactly the spec's fp32 operation.


def decode_block(tname, blk):
    """Returns (fields, codes, values) of one block."""
    if tname == "q8_0":
        dh = u16(blk, 0)
        d = f16_to_float(dh)
        codes = list(struct.unpack_from("<32b", blk, 2))
        vals = [to_f32(float(q) * d) for q in codes]
        return {"d": d, "d_bits": "0x%04X" % dh}, codes, vals
    if tname == "q4_0":
        dh = u16(blk, 0)
        d = f16_to_float(dh)
        codes = [blk[2 + j] & 15 for j in range(16)] + [blk[2 + j] >> 4 for j in range(16)]
        vals = [to_f32(float(q - 8) * d) for q in codes]
        return {"d": d, "d_bits": "0x%04X" % dh}, codes, vals
    if tname == "q4_1":
        dh, mh = u16(blk, 0), u16(blk, 2)
        d, m = f16_to_float(dh), f16_to_float(mh)
        codes = [blk[4 + j] & 15 for j in range(16)] + [blk[4 + j] >> 4 for j in range(16)]
        vals = [to_f32(to_f32(float(q) * d) + m) for q in codes]
        return {"d": d, "d_bits": "0x%04X" % dh, "m": m, "m_bits": "0x%04X" % mh}, codes, vals
    if tname == "q8_z":
        sh = u16(blk, 0)
        s, z = f16_to_float(sh), blk[2]
        codes = list(blk[3:35])
        vals = [to_f32(s * float(q - z)) for q in codes]
        return {"s": s, "s_bits": "0x%04X" % sh, "z": z}, codes, vals
    if tname == "q4_z":
        sh = u16(blk, 0)
        s, z = f16_to_float(sh), blk[2] & 15
        codes = [blk[3 + j] & 15 for j in range(16)] + [blk[3 + j] >> 4 for j in range(16)]
        vals = [to_f32(s * float(q - z)) for q in codes]
        return {"s": s, "s_bits": "0x%04X" % sh, "z": z, "z_byte": blk[2]}, codes, vals
    raise ValueError(tname)


# ---- The reader ------------------------------------------------------------------------------


class Reader:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, "rb") as f:
            self.b = f.read()
        self.ann = []  # (offset, length, field, value, zero_run)

    def note(self, off, n, field, value="", zero_run=False):
        self.ann.append((off, n, field, value, zero_run))

    # -- open: steps 1 to 16 of the spec's "At open" table
    def open(self):
        b, size = self.b, len(self.b)
        need(size < 8 or b[:8] == MAGIC, "BAD_MAGIC", 0, "not a qfmt file")
        need(size >= 128, "CORRUPT", 0, "truncated: shorter than a header and a footer")
        self.major, self.minor = u16(b, 8), u16(b, 10)
        need(self.major == 1, "VERSION", 8, "major version %d" % self.major)
        self.header_checksum = u64(b, 56)
        need(xxh3(b[:56]) == self.header_checksum, "CHECKSUM", 56, "header checksum")
        self.req, self.opt, self.A = u32(b, 12), u32(b, 16), u32(b, 20)
        need(self.req == 0, "VERSION", 12, "unknown required feature bits")
        A = self.A
        need(MIN_ALIGN <= A <= MAX_ALIGN and A & (A - 1) == 0, "CORRUPT", 20, "bad alignment")
        need(b[24:56] == bytes(32), "CORRUPT", 24, "header reserved bytes not zero")
        fo = size - 64
        need(b[size - 8:] == END_MAGIC, "CORRUPT", size - 8, "truncated or not a complete qfmt file")
        self.data_offset = align_up(64, A)
        mo, ms, ds = u64(b, fo), u64(b, fo + 8), u64(b, fo + 16)
        mc, tc, fres = u64(b, fo + 24), u64(b, fo + 32), u64(b, fo + 40)
        self.index_checksum = u64(b, fo + 48)
        need(mo % A == 0 and mo >= self.data_offset, "CORRUPT", fo, "bad Metadata_Offset")
        need(ms <= MAX_SECTION and ds <= MAX_SECTION, "CORRUPT", fo + 8, "section too large")
        need(mo + ms + ds + 64 == size, "CORRUPT", fo, "sections do not cover the file")
        need(fres == 0, "CORRUPT", fo + 40, "footer reserved not zero")
        need(xxh3(b[mo:size - 16]) == self.index_checksum, "CHECKSUM", fo + 48, "index checksum")
        need(mc <= MAX_COUNT and mc * 21 <= ms, "CORRUPT", fo + 24, "bad Metadata_Count")
        need(tc <= MAX_COUNT and tc * 57 <= ds, "CORRUPT", fo + 32, "bad Tensor_Count")
        self.mo, self.ms, self.ds, self.mc, self.tc = mo, ms, ds, mc, tc
        self.do = mo + ms
        self.fo = fo
        self.meta = self.read_metadata()
        self.tensors = self.read_directory()

    def read_metadata(self):
        b, pos, end = self.b, self.mo, self.mo + self.ms
        entries, prev = [], None
        for _ in range(self.mc):
            need(end - pos >= 8, "CORRUPT", pos, "M1: no room for Key_Length")
            kl = u64(b, pos)
            need(1 <= kl <= MAX_KEY and kl <= end - pos - 8, "CORRUPT", pos, "M1: bad Key_Length")
            key = b[pos + 8:pos + 8 + kl]
            need(utf8_ok(key, False), "CORRUPT", pos + 8, "M2: key is not valid UTF-8 without NUL")
            need(prev is None or key > prev, "CORRUPT", pos + 8, "M3: keys not strictly increasing")
            prev = key
            e = {"offset": pos, "key": key, "key_length": kl}
            p = pos + 8 + kl
            need(end - p >= 12, "CORRUPT", p, "M4: no room for Value_Type and Value_Size")
            vt, vs = u32(b, p), u64(b, p + 4)
            need(vs <= end - p - 12, "CORRUPT", p + 4, "M4: value runs past the section")
            vo = p + 12
            val = b[vo:vo + vs]
            e.update(type=vt, size=vs, value_offset=vo, raw=val)
            if vt <= 10:
                name, w, fmt = META_TYPES[vt]
                need(vs == w, "CORRUPT", p + 4, "M5: scalar of the wrong size")
                v = struct.unpack(fmt, val)[0]
                need(vt != 10 or v <= 1, "CORRUPT", vo, "M5: bool not 0 or 1")
                e["value"] = bool(v) if vt == 10 else v
            elif vt == 11:
                need(utf8_ok(val, True), "CORRUPT", vo, "M6: string is not valid UTF-8")
                e["value"] = val
            elif vt == 12:
                need(vs >= 12, "CORRUPT", p + 4, "M7: array shorter than 12 bytes")
                et, cnt = u32(val, 0), u64(val, 4)
                need(et != 12, "CORRUPT", vo, "M7: array of arrays")
                e.update(elem_type=et, count=cnt)
                if et <= 10:
                    name, w, fmt = META_TYPES[et]
                    need(vs == 12 + cnt * w, "CORRUPT", p + 4, "M7: array size mismatch")
                    items = [struct.unpack_from(fmt, val, 12 + i * w)[0] for i in range(cnt)]
                    need(et != 10 or all(x <= 1 for x in items), "CORRUPT", vo, "M7: bool element")
                    e["value"] = [bool(x) for x in items] if et == 10 else items
                elif et == 11:
                    q, items, spans = 12, [], []
                    for _ in range(cnt):
                        need(vs - q >= 8, "CORRUPT", vo + q, "M7: string length runs past the value")
                        sl = u64(val, q)
                        need(sl <= vs - q - 8, "CORRUPT", vo + q, "M7: string runs past the value")
                        s = val[q + 8:q + 8 + sl]
                        need(utf8_ok(s, True), "CORRUPT", vo + q + 8, "M7: string not UTF-8")
                        spans.append((vo + q, sl))
                        items.append(s)
                        q += 8 + sl
                    need(q == vs, "CORRUPT", vo + q, "M7: bytes left after the strings")
                    e["value"], e["spans"] = items, spans
                # et > 12: opaque
            pos = vo + vs
            entries.append(e)
        need(pos == end, "CORRUPT", pos, "M8: bytes left in the metadata section")
        return entries

    def read_directory(self):
        b, pos, end, A = self.b, self.do, self.fo, self.A
        tensors, names, last = [], set(), 64
        for i in range(self.tc):
            need(end - pos >= 8, "CORRUPT", pos, "D1: no room for Name_Length")
            nl = u64(b, pos)
            need(1 <= nl <= MAX_NAME and nl <= end - pos - 8, "CORRUPT", pos, "D1: bad Name_Length")
            name = b[pos + 8:pos + 8 + nl]
            need(utf8_ok(name, False), "CORRUPT", pos + 8, "D2: name not valid UTF-8 without NUL")
            p = pos + 8 + nl
            need(end - p >= 16, "CORRUPT", p, "D3: no room for Type, Codec, NDim, Reserved")
            ty, co, nd, res = u32(b, p), u32(b, p + 4), u32(b, p + 8), u32(b, p + 12)
            need(nd <= MAX_DIMS and res == 0, "CORRUPT", p + 8, "D3: bad NDim or Reserved")
            need(end - p - 16 >= 8 * nd + 32, "CORRUPT", p + 16, "D4: entry runs past the section")
            dims = [u64(b, p + 16 + 8 * k) for k in range(nd)]
            q = p + 16 + 8 * nd
            off, ss, rs, ck = u64(b, q), u64(b, q + 8), u64(b, q + 16), u64(b, q + 24)
            prod = 1
            for d in dims:
                if d:
                    prod *= d
                    need(prod <= MAX_ELEMENTS, "CORRUPT", p + 16, "D5: too many elements")
            nel = 0 if 0 in dims else prod
            if ty in TYPES:
                tname, be, bb = TYPES[ty]
                if be > 1:
                    need(nd >= 1 and dims[-1] % be == 0, "CORRUPT", p + 16,
                         "D6: a block type needs NDim >= 1 and a last dimension multiple of %d" % be)
                need(rs == nel // be * bb, "CORRUPT", q + 16, "D6: Raw_Size does not match the type")
            if co == 0:
                need(ss == rs, "CORRUPT", q + 8, "D7: Stored_Size differs from Raw_Size")
            elif co == 1:
                need(rs > 0, "CORRUPT", q + 16, "D7: compressed tensor with no bytes")
            need(off == align_up(last, A), "CORRUPT", q, "D8: Offset is not align_up(end, A)")
            need(off + ss <= self.mo, "CORRUPT", q + 8, "D9: tensor runs past the data region")
            last = off + ss
            tensors.append(dict(entry=pos, name=name, type=ty, codec=co, ndim=nd, dims=dims,
                                elements=nel, offset=off, stored_size=ss, raw_size=rs,
                                checksum=ck, type_offset=p, dims_offset=p + 16, tail=q))
            names.add(name)
            pos = q + 32
        need(pos == end, "CORRUPT", pos, "D10: bytes left in the directory section")
        need(align_up(last, A) == self.mo, "CORRUPT", self.fo, "D11: Metadata_Offset is not the end of the data")
        need(len(names) == len(tensors), "CORRUPT", self.do, "D12: duplicate tensor names")
        return tensors

    # -- verify: V1, V2 and the zero padding
    def verify(self):
        covered = []
        for t in self.tensors:
            s = self.b[t["offset"]:t["offset"] + t["stored_size"]]
            need(xxh3(s) == t["checksum"], "CHECKSUM", t["offset"],
                 "V1: tensor %s: checksum" % t["name"].decode())
            if t["codec"] == 1:
                t["frame"] = self.parse_frame(t, s)
                raw = zstd_decode(s, t["raw_size"])
                need(raw is not None, "CORRUPT", t["offset"], "V2: frame does not decode to Raw_Size bytes")
                if t["frame"]["checksum"] is not None:
                    need(xxh64(raw) & 0xFFFFFFFF == t["frame"]["checksum"], "CORRUPT", t["offset"],
                         "zstd content checksum")
                t["raw"] = raw
            elif t["codec"] == 0:
                t["raw"] = s
            covered.append((t["offset"], t["offset"] + t["stored_size"]))
        pos = 64
        for a, e in covered + [(self.mo, self.mo)]:
            need(self.b[pos:a] == bytes(a - pos) if a > pos else True, "CORRUPT", pos, "non-zero padding")
            pos = max(pos, e)

    def parse_frame(self, t, s):
        """RFC 8878 frame header and block headers, with the spec's codec 1 rules."""
        o = t["offset"]
        need(len(s) >= 6 and s[:4] == b"\x28\xb5\x2f\xfd", "CORRUPT", o, "V2: not a zstd frame")
        fhd = s[4]
        fcs_flag, single, reserved, ck_flag, did_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 3) & 1, (fhd >> 2) & 1, fhd & 3
        need(reserved == 0, "CORRUPT", o + 4, "V2: reserved frame header bit set")
        fr = {"fhd": fhd, "fields": []}
        p = 5
        window = None
        if not single:
            wd = s[p]
            wlog = 10 + (wd >> 3)
            window = (1 << wlog) + ((1 << wlog) >> 3) * (wd & 7)
            fr["fields"].append((p, 1, "Zstd.Window_Descriptor", "0x%02X: Window_Size %d" % (wd, window)))
            p += 1
        did_size = [0, 1, 2, 4][did_flag]
        if did_size:
            did = int.from_bytes(s[p:p + did_size], "little")
            need(did == 0, "CORRUPT", o + p, "V2: frame needs a dictionary")
            fr["fields"].append((p, did_size, "Zstd.Dictionary_ID", str(did)))
            p += did_size
        fcs_size = [1 if single else 0, 2, 4, 8][fcs_flag]
        need(fcs_size > 0, "CORRUPT", o + 4, "V2: frame does not declare its content size")
        fcs = int.from_bytes(s[p:p + fcs_size], "little") + (256 if fcs_size == 2 else 0)
        need(fcs == t["raw_size"], "CORRUPT", o + p, "V2: Frame_Content_Size differs from Raw_Size")
        fr["fields"].append((p, fcs_size, "Zstd.Frame_Content_Size", "%d (= Raw_Size)" % fcs))
        p += fcs_size
        if single:
            window = fcs
        need(window <= ZSTD_MAX_WINDOW, "CORRUPT", o + 4, "V2: window larger than 2^27")
        fr["window"] = window
        names = {0: "Raw_Block", 1: "RLE_Block", 2: "Compressed_Block", 3: "Reserved"}
        while True:
            need(len(s) - p >= 3, "CORRUPT", o + p, "V2: frame is truncated")
            h = int.from_bytes(s[p:p + 3], "little")
            last, btype, bsize = h & 1, (h >> 1) & 3, h >> 3
            need(btype != 3, "CORRUPT", o + p, "V2: reserved block type")
            fr["fields"].append((p, 3, "Zstd.Block_Header", "Last_Block %d, Block_Type %d (%s), Block_Size %d"
                                 % (last, btype, names[btype], bsize)))
            p += 3
            n = 1 if btype == 1 else bsize
            need(len(s) - p >= n, "CORRUPT", o + p, "V2: block is truncated")
            fr["fields"].append((p, n, "Zstd.Block_Content", "%d bytes" % n))
            p += n
            if last:
                break
        fr["checksum"] = None
        if ck_flag:
            need(len(s) - p >= 4, "CORRUPT", o + p, "V2: content checksum is truncated")
            fr["checksum"] = u32(s, p)
            fr["fields"].append((p, 4, "Zstd.Content_Checksum",
                                 "0x%08X: low 32 bits of XXH64 of the decoded bytes" % fr["checksum"]))
            p += 4
        need(p == len(s), "CORRUPT", o + p, "V2: bytes after the frame")
        fr["fhd_text"] = ("0x%02X: Frame_Content_Size_flag %d, Single_Segment_flag %d, "
                          "Content_Checksum_flag %d, Dictionary_ID_flag %d"
                          % (fhd, fcs_flag, single, ck_flag, did_flag))
        return fr

    # -- decoded tensor values
    def values(self, t):
        if t["type"] not in TYPES or "raw" not in t:
            return None, None
        tname, be, bb = TYPES[t["type"]]
        raw = t["raw"]
        blocks = None
        if be > 1:
            flat, blocks = [], []
            row_len = t["dims"][-1]
            for k in range(t["elements"] // 32):
                fields, codes, vals = decode_block(tname, raw[k * bb:(k + 1) * bb])
                e0 = k * 32
                blk = {"block": k, "row": e0 // row_len, "first_column": e0 % row_len}
                blk.update({key: jnum(v) for key, v in fields.items()})
                blk["codes"] = codes
                blocks.append(blk)
                flat += vals
        elif tname == "f16":
            flat = [f16_to_float(u16(raw, 2 * i)) for i in range(t["elements"])]
        elif tname == "bf16":
            flat = [bf16_to_float(u16(raw, 2 * i)) for i in range(t["elements"])]
        else:
            w = bb
            flat = [struct.unpack_from(PLAIN_FMT[tname], raw, i * w)[0] for i in range(t["elements"])]
            if tname == "bool":
                flat = [bool(x) for x in flat]
        return flat, blocks


# ---- The annotated dump ----------------------------------------------------------------------


def tlabel(ty):
    return TYPES[ty][0] if ty in TYPES else "unknown"


def annotate(r):
    b = r.b
    n = r.note
    n(0, 8, "Header.Magic", qstr(MAGIC))
    n(8, 2, "Header.Version_Major", str(r.major))
    n(10, 2, "Header.Version_Minor", str(r.minor))
    n(12, 4, "Header.Required_Features", str(r.req))
    n(16, 4, "Header.Optional_Features", str(r.opt))
    n(20, 4, "Header.Alignment", str(r.A))
    n(24, 32, "Header.Reserved", "32 zero bytes", True)
    n(56, 8, "Header.Header_Checksum", hex64(r.header_checksum))
    pos = 64
    for t in r.tensors:
        if t["offset"] > pos:
            n(pos, t["offset"] - pos, "Padding", "%d zero bytes" % (t["offset"] - pos), True)
        annotate_tensor(r, t)
        pos = max(pos, t["offset"] + t["stored_size"])
    if r.mo > pos:
        n(pos, r.mo - pos, "Padding", "%d zero bytes" % (r.mo - pos), True)
    for e in r.meta:
        annotate_meta(r, e)
    for t in r.tensors:
        p = t["entry"]
        nl = len(t["name"])
        n(p, 8, "Dir.Name_Length", str(nl))
        n(p + 8, nl, "Dir.Name", qstr(t["name"]))
        q = t["type_offset"]
        n(q, 4, "Dir.Type", "%d (%s)" % (t["type"], tlabel(t["type"])))
        n(q + 4, 4, "Dir.Codec", "%d (%s)" % (t["codec"], CODECS.get(t["codec"], "unknown")))
        n(q + 8, 4, "Dir.NDim", str(t["ndim"]))
        n(q + 12, 4, "Dir.Reserved", "0")
        for k, d in enumerate(t["dims"]):
            n(t["dims_offset"] + 8 * k, 8, "Dir.Dims[%d]" % k, str(d))
        q = t["tail"]
        n(q, 8, "Dir.Offset", str(t["offset"]))
        n(q + 8, 8, "Dir.Stored_Size", str(t["stored_size"]))
        n(q + 16, 8, "Dir.Raw_Size", str(t["raw_size"]))
        n(q + 24, 8, "Dir.Checksum", hex64(t["checksum"]))
    fo = r.fo
    n(fo, 8, "Footer.Metadata_Offset", str(r.mo))
    n(fo + 8, 8, "Footer.Metadata_Size", str(r.ms))
    n(fo + 16, 8, "Footer.Directory_Size", str(r.ds))
    n(fo + 24, 8, "Footer.Metadata_Count", str(r.mc))
    n(fo + 32, 8, "Footer.Tensor_Count", str(r.tc))
    n(fo + 40, 8, "Footer.Reserved", "0")
    n(fo + 48, 8, "Footer.Index_Checksum", hex64(r.index_checksum))
    n(fo + 56, 8, "Footer.End_Magic", qstr(END_MAGIC))


def chunked(r, off, width, items, first_field, prefix):
    """Elements of `width` bytes, 16 bytes to a line; the first line carries the field."""
    per = max(1, 16 // width)
    for i in range(0, len(items), per):
        vals = ", ".join(items[i:i + per])
        if i == 0:
            r.note(off, width * len(items[i:i + per]), first_field, prefix + vals)
        else:
            r.note(off + i * width, width * len(items[i:i + per]), "", "[%d] %s" % (i, vals))


def annotate_tensor(r, t):
    name = qstr(t["name"])
    field = "Tensor data %s" % name
    off, ss = t["offset"], t["stored_size"]
    if ss == 0:
        r.note(off, 0, field, "%s %s: no elements, no bytes" % (tlabel(t["type"]).upper(), t["dims"]))
        return
    if t["codec"] == 1:
        fr = t["frame"]
        r.note(off, 0, field, "zstd frame of %d bytes, decodes to %d bytes of %s %s"
               % (ss, t["raw_size"], tlabel(t["type"]), t["dims"]))
        r.note(off, 4, "Zstd.Magic", "0xFD2FB528")
        r.note(off + 4, 1, "Zstd.Frame_Header_Desc", fr["fhd_text"])
        for p, n, f, v in fr["fields"]:
            r.note(off + p, n, f, v)
        return
    if t["type"] not in TYPES or t["codec"] != 0:
        r.note(off, ss, field, "%d bytes (type or codec unknown)" % ss)
        return
    tname, be, bb = TYPES[t["type"]]
    flat, blocks = r.values(t)
    if be == 1:
        kind = tname
        items = [fmt_value(kind, v) for v in flat]
        chunked(r, off, bb, items, field, tname.upper() + " ")
        return
    r.note(off, 0, field, "%s %s: %d blocks of %d bytes" % (tname, t["dims"], len(blocks), bb))
    raw = t["raw"]
    for k, blk in enumerate(blocks):
        p = off + k * bb
        where = "row %d, elements %d..%d" % (blk["row"], blk["first_column"], blk["first_column"] + 31)
        c = blk["codes"]
        if tname in ("q8_0", "q4_0", "q4_1"):
            r.note(p, 2, "Block %d.d" % k, "%s (fp16 %s); %s" % (fmt_exact(blk["d"]), blk["d_bits"], where))
            p += 2
            if tname == "q4_1":
                r.note(p, 2, "Block %d.m" % k, "%s (fp16 %s)" % (fmt_exact(blk["m"]), blk["m_bits"]))
                p += 2
        else:
            r.note(p, 2, "Block %d.s" % k, "%s (fp16 %s); %s" % (fmt_exact(blk["s"]), blk["s_bits"], where))
            r.note(p + 2, 1, "Block %d.z" % k, str(blk["z"]) + (" (high nibble 0)" if tname == "q4_z" and raw[k * bb + 2] >> 4 == 0 else ""))
            p += 3
        if tname in ("q8_0", "q8_z"):
            r.note(p, 16, "Block %d.qs[0..15]" % k, " ".join(str(x) for x in c[:16]))
            r.note(p + 16, 16, "Block %d.qs[16..31]" % k, " ".join(str(x) for x in c[16:]))
        else:
            r.note(p, 16, "Block %d.qs" % k, "low nibbles, elements 0..15: %s; high nibbles, elements 16..31: %s"
                   % (" ".join(str(x) for x in c[:16]), " ".join(str(x) for x in c[16:])))


def annotate_meta(r, e):
    n = r.note
    p = e["offset"]
    n(p, 8, "Meta.Key_Length", str(e["key_length"]))
    n(p + 8, e["key_length"], "Meta.Key", qstr(e["key"]))
    p += 8 + e["key_length"]
    vt = e["type"]
    n(p, 4, "Meta.Value_Type", "%d (%s)" % (vt, META_TYPES[vt][0] if vt in META_TYPES else "unknown"))
    n(p + 4, 8, "Meta.Value_Size", str(e["size"]))
    vo = e["value_offset"]
    if vt <= 10:
        nm = META_TYPES[vt][0]
        n(vo, e["size"], "Meta.Value", fmt_value(nm, e["value"]))
    elif vt == 11:
        n(vo, e["size"], "Meta.Value", qstr(e["value"]))
    elif vt == 12:
        et = e["elem_type"]
        n(vo, 4, "Array.Elem_Type", "%d (%s)" % (et, META_TYPES[et][0] if et in META_TYPES else "unknown"))
        n(vo + 4, 8, "Array.Count", str(e["count"]))
        if et <= 10:
            nm, w, _ = META_TYPES[et]
            if e["count"]:
                chunked(r, vo + 12, w, [fmt_value(nm, v) for v in e["value"]], "Array.Elements", "")
        elif et == 11:
            for (so, sl), s in zip(e["spans"], e["value"]):
                n(so, 8, "String.Length", str(sl))
                n(so + 8, sl, "String bytes", qstr(s))
        else:
            n(vo + 12, e["size"] - 12, "Array.Elements", "opaque")
    else:
        n(vo, e["size"], "Meta.Value", "opaque (unknown type)")


def render_dump(r):
    b = r.b
    ow = 4 if len(b) <= 0x10000 else 8
    lines = []
    for off, length, field, value, zero_run in sorted(r.ann, key=lambda a: (a[0], a[1] != 0)):
        data = b[off:off + length]
        if length == 0:
            chunks = ["(no bytes)"]
        elif zero_run and data == bytes(length) and length > 1:
            chunks = ["00 x %d" % length]
        else:
            chunks = [" ".join("%02X" % x for x in data[i:i + 16]) for i in range(0, length, 16)]
        for i, c in enumerate(chunks):
            o = off + 16 * i if not (zero_run or length == 0) else off
            f, v = (field, value) if i == 0 else ("", "")
            lines.append(("%0*X  %-47s  %-24s %s" % (ow, o, c, f, v)).rstrip())
    return "\n".join(lines) + "\n"


def xxd(b):
    out = []
    for i in range(0, len(b), 16):
        row = b[i:i + 16]
        hx = " ".join("%02X" % x for x in row)
        asc = "".join(chr(x) if 0x20 <= x < 0x7F else "." for x in row)
        out.append("%08x: %-47s  %s" % (i, hx, asc))
    return "\n".join(out) + "\n"


def check_coverage(r):
    """Every byte of the file is covered by exactly one annotation."""
    spans = sorted((a[0], a[1]) for a in r.ann if a[1] > 0)
    pos = 0
    for off, length in spans:
        if off != pos:
            raise Invalid("INTERNAL", pos, "annotation gap or overlap at %d (next at %d)" % (pos, off))
        pos = off + length
    if pos != len(r.b):
        raise Invalid("INTERNAL", pos, "annotations end at %d of %d" % (pos, len(r.b)))


# ---- Markdown and JSON -----------------------------------------------------------------------


def hex_md(r):
    b = r.b
    out = ["# `%s`" % r.name, ""]
    out += [DESCRIPTIONS.get(r.name, "A qfmt test vector."), ""]
    out += ["Generated by `spec/vectors/annotate.py` (an independent reader) from the file; do not "
            "edit. See [README.md](README.md).", ""]
    out += ["| Property | Value |", "|---|---|",
            "| File size | %d bytes |" % len(b),
            "| SHA-256 | `%s` |" % hashlib.sha256(b).hexdigest(),
            "| Format version | %d.%d |" % (r.major, r.minor),
            "| Alignment `A` | %d |" % r.A,
            "| `Data_Offset` | %d |" % r.data_offset,
            "| `Metadata_Offset`, `Metadata_Size` | %d, %d |" % (r.mo, r.ms),
            "| `Directory_Offset`, `Directory_Size` | %d, %d |" % (r.do, r.ds),
            "| Footer | %d |" % r.fo,
            "| `Metadata_Count`, `Tensor_Count` | %d, %d |" % (r.mc, r.tc), ""]
    out += ["Checksums (XXH3-64, seed 0, stored little-endian), all verified:", "",
            "| Checksum | Over | Value |", "|---|---|---|",
            "| `Header_Checksum` | `[0, 56)` | `%s` |" % hex64(r.header_checksum)]
    for t in r.tensors:
        out.append("| `Checksum` of %s | `[%d, %d)` | `%s` |"
                   % (qstr(t["name"]), t["offset"], t["offset"] + t["stored_size"], hex64(t["checksum"])))
    out += ["| `Index_Checksum` | `[%d, %d)` | `%s` |" % (r.mo, len(b) - 16, hex64(r.index_checksum)), ""]
    out += ["## Annotated dump", "",
            "Offset in hexadecimal; `00 x N` is N zero bytes; a field longer than 16 bytes "
            "continues on the next lines; `[i]` is the index of the first element on a line.", "",
            "```text", render_dump(r).rstrip("\n"), "```", ""]
    out += ["## Plain dump", "", "In the format of `xxd -g1 -u`:", "", "```text", xxd(b).rstrip("\n"), "```", ""]
    return "\n".join(out)


def to_json(r):
    b = r.b
    doc = {
        "file": r.name,
        "file_size": len(b),
        "sha256": hashlib.sha256(b).hexdigest(),
        "header": {
            "magic": b[:8].hex().upper(), "version_major": r.major, "version_minor": r.minor,
            "required_features": r.req, "optional_features": r.opt, "alignment": r.A,
            "header_checksum": hex64(r.header_checksum),
        },
        "layout": {
            "data_offset": r.data_offset, "metadata_offset": r.mo, "metadata_size": r.ms,
            "directory_offset": r.do, "directory_size": r.ds, "footer_offset": r.fo,
        },
        "footer": {
            "metadata_offset": r.mo, "metadata_size": r.ms, "directory_size": r.ds,
            "metadata_count": r.mc, "tensor_count": r.tc, "index_checksum": hex64(r.index_checksum),
        },
        "metadata": [],
        "tensors": [],
    }
    for e in r.meta:
        vt = e["type"]
        m = {"key": e["key"].decode()}
        if vt <= 10:
            m.update(type=META_TYPES[vt][0], value=jnum(e["value"]))
        elif vt == 11:
            m.update(type="string", value=e["value"].decode())
        elif vt == 12 and e["elem_type"] <= 11:
            et = e["elem_type"]
            vals = [s.decode() for s in e["value"]] if et == 11 else [jnum(v) for v in e["value"]]
            m.update(type="array", elem_type=META_TYPES[et][0], count=e["count"], value=vals)
        else:
            m.update(type_id=vt, opaque_hex=e["raw"].hex().upper())
        doc["metadata"].append(m)
    for i, t in enumerate(r.tensors):
        d = {
            "index": i, "name": t["name"].decode(), "type": tlabel(t["type"]), "type_id": t["type"],
            "codec": CODECS.get(t["codec"], "unknown"), "codec_id": t["codec"], "dims": t["dims"],
            "elements": t["elements"], "offset": t["offset"], "stored_size": t["stored_size"],
            "raw_size": t["raw_size"], "checksum": hex64(t["checksum"]),
        }
        if "raw" in t:
            d["raw_xxh3"] = hex64(xxh3(t["raw"]))
        flat, blocks = r.values(t)
        if flat is not None and t["elements"] <= VALUES_MAX_ELEMENTS:
            d["values"] = nest([jnum(v) for v in flat], t["dims"])
        if blocks is not None and t["elements"] <= VALUES_MAX_ELEMENTS:
            d["blocks"] = blocks
        doc["tensors"].append(d)
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def nest(flat, dims):
    """Row-major nested lists (numpy's tolist()); a scalar is a bare value."""
    if not dims:
        return flat[0]
    if len(dims) == 1:
        return flat
    step = 1
    for d in dims[1:]:
        step *= d
    return [nest(flat[i * step:(i + 1) * step], dims[1:]) for i in range(dims[0])]


# ---- Main ------------------------------------------------------------------------------------


def process(path):
    r = Reader(path)
    r.open()
    r.verify()
    annotate(r)
    check_coverage(r)
    return r


def main(argv):
    mode = "write"
    files = []
    for a in argv:
        if a == "--check":
            mode = "check"
        elif a == "--stdout":
            mode = "stdout"
        elif a.startswith("-"):
            print(__doc__)
            return 2
        else:
            files.append(a)
    if not files:
        print(__doc__)
        return 2
    rc = 0
    for path in files:
        try:
            r = process(path)
        except Invalid as e:
            print("%s: %s at byte %d: %s" % (path, e.code, e.offset, e.msg))
            rc = 1
            continue
        base = path[:-5] if path.endswith(".qfmt") else path
        outputs = {base + ".hex.md": hex_md(r), base + ".json": to_json(r)}
        if mode == "stdout":
            sys.stdout.write(render_dump(r))
        elif mode == "write":
            for p, text in outputs.items():
                with open(p, "w", encoding="utf-8") as f:
                    f.write(text)
            print("%s: valid; wrote %s" % (path, ", ".join(os.path.basename(p) for p in outputs)))
        else:
            stale = []
            for p, text in outputs.items():
                try:
                    with open(p, encoding="utf-8") as f:
                        if f.read() != text:
                            stale.append(os.path.basename(p))
                except OSError:
                    stale.append(os.path.basename(p))
            if stale:
                print("%s: valid, but out of date: %s" % (path, ", ".join(stale)))
                rc = 1
            else:
                print("%s: valid; %s match" % (path, ", ".join(os.path.basename(p) for p in outputs)))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
