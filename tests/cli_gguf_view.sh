#!/usr/bin/env bash
# qfmt dump and qfmt verify on GGUF files: the two files llama.cpp wrote (tests/data/gguf) are
# walked by an independent GGUF parser below (Python, from docs/gguf.md) and dump --json must
# give its header, every key-value pair and every tensor's name, type, ne, offset and size;
# --values gives the f32 tensors' stored floats; verify accepts them, and --hash=xxh64 prints
# per tensor the XXH64 of its byte range (an independent XXH64 below) and one over all the data
# in order, as llama-gguf-hash does; --hash (XXH3-64) equals the checksums qfmt gives the same
# bytes once imported unchanged. Broken files: truncated, a NaN in a tensor, non-zero padding,
# unknown hash names, --hash=xxh64 on a qfmt file.
# Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
D=${QFMT_TEST_DATA_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

if ! command -v zstd >/dev/null; then
    echo "cli_gguf_view: the zstd tool is needed to unpack tests/data/gguf; skipped"
    exit 0
fi

expect() {
    local want=$1 name=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ $rc = "$want" ] && { [ "$want" = 0 ] || [ -s "$work/err" ]; }; then
        ok "$name (exit $rc: $(head -c 160 "$work/err" | head -n 1))"
    else
        bad "$name (exit $rc, want $want; stderr: $(head -c 300 "$work/err"))"
    fi
}

cat >"$work/gguf.py" <<'EOF'
# An independent GGUF walker and XXH64, for checking qfmt's output.
import json, math, struct, sys

M = 0xFFFFFFFFFFFFFFFF
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)

def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M

def rnd(acc, v):
    return (rotl((acc + v * P2) & M, 31) * P1) & M

def merge(acc, v):
    return ((acc ^ rnd(0, v)) * P1 + P4) & M

def xxh64(b, seed=0):
    n, i = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], struct.unpack_from("<Q", b, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, struct.unpack_from("<Q", b, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", b, i)[0] * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (b[i] * P5 & M), 11) * P1) & M
        i += 1
    h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
    return h

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}
# ggml type -> (block elements, block bytes) for the types these files hold
TYPES = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144), 14: (256, 210), 30: (1, 2)}

def parse(path):
    d = open(path, "rb").read()
    pos = [0]
    def take(fmt):
        v = struct.unpack_from(fmt, d, pos[0])[0]
        pos[0] += struct.calcsize(fmt)
        return v
    def string():
        n = take("<Q")
        s = d[pos[0]:pos[0] + n]
        pos[0] += n
        return s.decode("utf-8", "replace")
    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])
    assert d[:4] == b"GGUF"
    pos[0] = 4
    version, nt, nkv = take("<I"), take("<Q"), take("<Q")
    kv, types = {}, {}
    for _ in range(nkv):
        k, t = string(), take("<I")
        et = None
        if t == 9:
            et = struct.unpack_from("<I", d, pos[0])[0]
        kv[k] = value(t)
        types[k] = (t, et)
    tensors = []
    for _ in range(nt):
        name, nd = string(), take("<I")
        ne = [take("<Q") for _ in range(nd)]
        ty, off = take("<I"), take("<Q")
        tensors.append([name, ne, ty, off])
    align = kv.get("general.alignment", 32)
    data = (pos[0] + align - 1) // align * align
    for t in tensors:
        be, bb = TYPES[t[2]]
        n = math.prod(t[1])
        t[3] += data
        t.append(n // be * bb)
    return d, version, align, data, kv, types, tensors
EOF

for name in llama-kjv.Q4_K_M gpt2-kjv.Q8_0; do
    g="$work/$name.gguf"
    zstd -q -d "$D/gguf/$name.gguf.zst" -o "$g" || { bad "$name: unpack"; continue; }

    # ---- dump ------------------------------------------------------------------------------------
    expect 0 "$name: dump" "$QFMT" dump "$g"
    grep -q '^format          GGUF version 3' "$work/out" && grep -q '^  general.architecture ' "$work/out" &&
        grep -q '^totals: ' "$work/out" && ok "$name: dump shows the version, the keys and the totals" ||
        bad "$name: dump text: $(head -c 400 "$work/out")"
    if "$QFMT" dump "$g" --json >"$work/d.json" 2>"$work/err"; then
        r=$(python3 - "$work/gguf.py" "$g" "$work/d.json" <<'EOF'
import json, sys
exec(open(sys.argv[1]).read())
d, version, align, data, kv, types, tensors = parse(sys.argv[2])
j = json.load(open(sys.argv[3]))
bad = []
if (j["format"], j["gguf_version"], j["alignment"], j["data_offset"], j["file_size"]) != \
        ("gguf", version, align, data, len(d)):
    bad.append("header")
if j["metadata_count"] != len(kv) or j["tensor_count"] != len(tensors):
    bad.append("counts")
NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "str",
         10: "u64", 11: "i64", 12: "f64"}
for k, v in kv.items():
    t, et = types[k]
    got = j["metadata"].get(k)
    label = "array<%s>" % NAMES[et] if t == 9 else NAMES[t]
    if j["metadata_types"].get(k) != label:
        bad.append("type of " + k)
    vs = v if t == 9 else [v]
    gs = got if t == 9 else [got]
    if len(vs) != len(gs) or any((abs(a - b) > 1e-6 * max(1, abs(a))) if isinstance(a, float) else a != b
                                 for a, b in zip(vs, gs)):
        bad.append("value of " + k)
by = {"q4_k": 12, "q6_k": 14, "f32": 0, "q8_0": 8, "f16": 1}
for t, jt in zip(tensors, j["tensors"]):
    name, ne, ty, off, size = t
    if (jt["name"], jt["ne"], jt["shape"], jt["type_id"], jt["offset"], jt["size"]) != \
            (name, ne, ne[::-1], ty, off, size) or by.get(jt["type"]) != ty:
        bad.append("tensor " + name)
print("; ".join(bad[:5]) if bad else "ok %d keys, %d tensors" % (len(kv), len(tensors)))
EOF
)
        case $r in ok*) ok "$name: dump --json = an independent GGUF walk ($r)" ;; *) bad "$name: dump --json: $r" ;; esac
    else
        bad "$name: dump --json ($(head -c 300 "$work/err"))"
    fi
    "$QFMT" dump "$g" --values=3 --tensors >"$work/v.txt" 2>"$work/err"
    r=$(python3 - "$work/gguf.py" "$g" "$work/v.txt" <<'EOF'
import re, struct, sys
exec(open(sys.argv[1]).read())
d, version, align, data, kv, types, tensors = parse(sys.argv[2])
txt = open(sys.argv[3]).read()
n = 0
for name, ne, ty, off, size in tensors:
    if ty != 0:
        continue
    want = struct.unpack_from("<3f", d, off)
    m = re.search(r"^  %s  \[([^\]]*)\]" % re.escape(name), txt, re.M)
    got = [float(x) for x in m.group(1).split(", ")[:3]] if m else []
    if len(got) != 3 or any(abs(a - b) > 1e-6 * max(1, abs(a)) for a, b in zip(want, got)):
        print("values of %s: %s, want %s" % (name, got, want)); sys.exit()
    n += 1
print("ok %d f32 tensors" % n)
EOF
)
    case $r in ok*) ok "$name: dump --values gives the stored floats ($r)" ;; *) bad "$name: dump --values: $r" ;; esac

    # ---- verify ----------------------------------------------------------------------------------
    expect 0 "$name: verify" "$QFMT" verify "$g"
    grep -q 'no checksums' "$work/out" && ok "$name: verify says GGUF has no checksums" ||
        bad "$name: verify output: $(cat "$work/out")"
    "$QFMT" verify "$g" --hash=xxh64 >"$work/h64" 2>"$work/err"
    r=$(python3 - "$work/gguf.py" "$g" "$work/h64" <<'EOF'
import sys
exec(open(sys.argv[1]).read())
d, version, align, data, kv, types, tensors = parse(sys.argv[2])
lines = [l.split() for l in open(sys.argv[3]) if l.startswith("xxh64")]
want = [["xxh64", "%016x" % xxh64(d[off:off + size]), "%s:%s" % (sys.argv[2], name)]
        for name, ne, ty, off, size in tensors]
want.append(["xxh64", "%016x" % xxh64(b"".join(d[t[3]:t[3] + t[4]] for t in tensors)), sys.argv[2]])
print("ok %d lines" % len(lines) if lines == want else "got %s, want %s" % (lines[:2], want[:2]))
EOF
)
    case $r in ok*) ok "$name: --hash=xxh64 = XXH64 of each tensor and of all data ($r)" ;; *) bad "$name: --hash=xxh64: $r" ;; esac
    "$QFMT" verify "$g" --json --hash >"$work/h.json" 2>"$work/err"
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] and j["format"] == "gguf" and j["checksums"] is False and j["hash"]["algorithm"] == "xxh3" else 1)' \
        "$work/h.json" 2>/dev/null && ok "$name: verify --json --hash" || bad "$name: verify --json --hash: $(head -c 300 "$work/h.json")"
done

# ---- XXH3: the GGUF's tensor hashes are qfmt's checksums of the same bytes ----------------------------
g="$work/llama-kjv.Q4_K_M.gguf"
"$QFMT" convert "$g" -o "$work/l.qfmt" >/dev/null 2>&1
"$QFMT" verify "$g" --hash >"$work/h3" 2>/dev/null
"$QFMT" dump "$work/l.qfmt" --json --tensors >"$work/l.json" 2>/dev/null
r=$(python3 - "$work/h3" "$work/l.json" <<'EOF'
import json, sys
h = {l.split()[2].rsplit(":", 1)[1]: l.split()[1] for l in open(sys.argv[1]) if ":" in l.split()[2]}
q = {t["name"]: t["checksum"] for t in json.load(open(sys.argv[2]))["tensors"]}
# tensors import copies unchanged (attn_q / attn_k are un-permuted, so their bytes differ)
pairs = {"blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
         "blk.3.ffn_down.weight": "model.layers.3.mlp.down_proj.weight",
         "blk.1.attn_v.weight": "model.layers.1.self_attn.v_proj.weight",
         "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
bad = [g for g, m in pairs.items() if h.get(g) is None or h.get(g) != q.get(m)]
print("ok %d tensors" % len(pairs) if not bad else "differ: %s (%s vs %s)" % (bad, h.get(bad[0]), q.get(pairs[bad[0]])))
EOF
)
case $r in ok*) ok "--hash (XXH3-64) = qfmt's checksums of the imported bytes ($r)" ;; *) bad "--hash xxh3: $r" ;; esac
expect 0 "verify --hash on a qfmt file" "$QFMT" verify "$work/l.qfmt" --hash
n=$(grep -c '^xxh3 ' "$work/out")
[ "$n" = 39 ] && ok "verify --hash on a qfmt file lists its 39 checksums" || bad "verify --hash on qfmt: $n lines"
expect 1 "verify --hash=xxh64 on a qfmt file is refused" "$QFMT" verify "$work/l.qfmt" --hash=xxh64
expect 2 "verify --hash=md5 is a usage error" "$QFMT" verify "$g" --hash=md5

# ---- broken GGUF files -----------------------------------------------------------------------------
head -c 2000000 "$g" >"$work/trunc.gguf"
expect 1 "verify of a truncated GGUF" "$QFMT" verify "$work/trunc.gguf"
grep -q 'FAILED' "$work/out" && grep -q 'byte' "$work/err" && ok "the failure gives a byte offset" ||
    bad "truncated: $(cat "$work/out" "$work/err" | head -c 300)"
expect 1 "dump of a truncated GGUF" "$QFMT" dump "$work/trunc.gguf"
python3 - "$work/gguf.py" "$g" "$work/nan.gguf" "$work/pad.gguf" <<'EOF'
import struct, sys
exec(open(sys.argv[1]).read())
d, version, align, data, kv, types, tensors = parse(sys.argv[2])
b = bytearray(d)
t = [t for t in tensors if t[0] == "output_norm.weight"][0]
struct.pack_into("<f", b, t[3] + 8, float("nan"))
open(sys.argv[3], "wb").write(b)
# a small GGUF of two f32 tensors of 3 values: 20 bytes of padding after each, one byte not zero
def s(x):
    return struct.pack("<Q", len(x)) + x
h = b"GGUF" + struct.pack("<IQQ", 3, 2, 1) + s(b"general.architecture") + struct.pack("<I", 8) + s(b"none")
for k, name in enumerate((b"a", b"b")):
    h += s(name) + struct.pack("<IQIQ", 1, 3, 0, 32 * k)
h += bytes(-len(h) % 32)
body = bytearray(struct.pack("<3f", 1, 2, 3) + bytes(20) + struct.pack("<3f", 4, 5, 6) + bytes(20))
body[12 + 5] = 0x5a
open(sys.argv[4], "wb").write(h + body)
# the same with a tensor of a ggml type qfmt does not know (16, iq2_xxs: 66 bytes per 256 values)
h = b"GGUF" + struct.pack("<IQQ", 3, 2, 1) + s(b"general.architecture") + struct.pack("<I", 8) + s(b"none")
h += s(b"a") + struct.pack("<IQIQ", 1, 3, 0, 0) + s(b"q") + struct.pack("<IQIQ", 1, 256, 16, 32)
h += bytes(-len(h) % 32)
open(sys.argv[4].replace("pad", "unknown"), "wb").write(h + struct.pack("<3f", 1, 2, 3) + bytes(20) + bytes(range(66)) + bytes(30))
EOF
expect 0 "verify of a GGUF with a tensor of an unknown ggml type" "$QFMT" verify "$work/unknown.gguf" --hash
grep -q "1 tensor of ggml types qfmt does not know was not checked" "$work/err" && ! grep -q ":q$" "$work/out" &&
    grep -q ":a$" "$work/out" && ok "it says the tensor was not checked and hashes only the other" ||
    bad "unknown type: $(head -c 300 "$work/err") / $(head -c 300 "$work/out")"
expect 0 "dump of a GGUF with a tensor of an unknown ggml type" "$QFMT" dump "$work/unknown.gguf" --values
grep -q "q .*not decodable" "$work/out" && ok "dump --values says it is not decodable" || bad "dump unknown: $(tail -3 "$work/out")"
expect 1 "verify of a GGUF with a NaN weight" "$QFMT" verify "$work/nan.gguf"
grep -q "output_norm.weight" "$work/err" && grep -q "NaN" "$work/err" && ok "the failure names the tensor and the NaN" ||
    bad "NaN: $(head -c 300 "$work/err")"
expect 0 "dump of a GGUF with a NaN weight still works" "$QFMT" dump "$work/nan.gguf"
expect 0 "verify of a GGUF with non-zero padding between tensors" "$QFMT" verify "$work/pad.gguf"
grep -q 'warning.*1 padding byte after tensors is not zero' "$work/err" && ok "it warns about the padding byte" ||
    bad "no padding warning: $(head -c 300 "$work/err")"
"$QFMT" dump "$work/pad.gguf" --values >"$work/out" 2>&1
grep -q '^  b  \[4, 5, 6\] (3 values)' "$work/out" && ok "dump --values of the small GGUF" ||
    bad "dump --values: $(tail -3 "$work/out")"
"$QFMT" verify --help | grep -q -- '--hash' && ok "verify --help names --hash" || bad "verify --help"
"$QFMT" dump --help | grep -q 'GGUF' && ok "dump --help names GGUF" || bad "dump --help"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
