#!/usr/bin/env bash
# tests/cli_convert.sh - the qfmt CLI's convert, dequantize, dump and verify commands, end to end,
# on the three reference fixtures (tests/data/fixtures/{gpt2,llama,bert}-kjv) and on hand-made
# broken inputs. Run by CTest (see CMakeLists.txt: QFMT_CLI_PATH, QFMT_TEST_DATA_DIR), or by hand:
#   QFMT_CLI_PATH=build/tools/qfmt bash tests/cli_convert.sh
#
# Checks:
#  - every fixture converts to every type, with and without --compress; verify passes; dump --json
#    parses and shows the expected tensors, types, shapes and metadata;
#  - dequantize of a conversion to the stored dtype gives back the source tensors bit for bit
#    (GPT-2's transposed Conv1D weights included); of q8_0/q4_0/q4_1 the weight RMSE of
#    expected.json;
#  - bad input (missing, broken, truncated, lying, unknown dtype, bad shards, unwritable output,
#    disk full) exits 1 with a message naming the file (and tensor) and leaves nothing behind;
#    usage errors exit 2; --help exits 0;
#  - the quantization policy's note, --keep and --quantize; verify finds a flipped byte.
# Python 3 (standard library only) reads safetensors files and the JSON documents.
# Prints one line per check ("ok   NAME" / "FAIL NAME") and "N passed, M failed" at the end.
# Disk full is simulated with a 6 MiB tmpfs when mount works (root), else with ulimit -f; set
# QFMT_TEST_NO_TMPFS=1 to force the latter. QFMT_TEST_VERBOSE=1 shows the stderr of each
# failing command that was expected to fail.
set -u

QFMT=${QFMT_CLI_PATH:-}
DATA=${QFMT_TEST_DATA_DIR:-$(cd "$(dirname "$0")" && pwd)/data}
FIX=$DATA/fixtures
if [ -z "$QFMT" ] || [ ! -x "$QFMT" ]; then
    echo "cli_convert.sh: QFMT_CLI_PATH must name the qfmt binary (got '$QFMT')" >&2
    exit 2
fi
if ! command -v python3 >/dev/null; then
    echo "cli_convert.sh: python3 is needed" >&2
    exit 2
fi

TMPD=$(mktemp -d "${TMPDIR:-/tmp}/qfmt_cli_convert.XXXXXX") || exit 2
MNT=""   # a small tmpfs, when we could mount one
cleanup() {
    if [ -n "$MNT" ]; then umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; fi
    rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A sanitizer report must not pass for an expected exit code 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"

PASS=0
FAILS=0
ok() { echo "ok   $1"; PASS=$((PASS + 1)); }
# bad NAME DETAIL...: one FAIL line and the details, indented.
bad() {
    echo "FAIL $1"
    shift
    local l
    for l in "$@"; do printf '     %s\n' "$l"; done
    FAILS=$((FAILS + 1))
}
# Shows the last command's stderr (first lines), for FAIL details.
errtext() { head -c 1500 "$TMPD/err"; }

# run ARGS...: runs qfmt; sets RC, leaves stdout in $TMPD/out and stderr in $TMPD/err.
run() {
    "$QFMT" "$@" >"$TMPD/out" 2>"$TMPD/err"
    RC=$?
}
sanitizer_clean() { ! grep -qE 'Sanitizer|runtime error:' "$TMPD/err"; }

PY=$TMPD/st.py
cat >"$PY" <<'PYEOF'
"""Helpers for cli_convert.sh: safetensors reading/writing and checks. Standard library only."""
import array, fnmatch, json, math, os, struct, sys


def fail(msg):
    print(msg)
    sys.exit(1)


def st_read(path):
    """(tensors {name: (dtype, shape, bytes)} in header order, __metadata__)."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack_from("<Q", b, 0)[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in h.items():
        a, z = e["data_offsets"]
        if not (0 <= a <= z <= len(b) - base):
            fail("%s: tensor %s: data_offsets %r outside the file" % (path, name, e["data_offsets"]))
        out[name] = (e["dtype"], list(e["shape"]), b[base + a:base + z])
    return out, meta


def st_header(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack_from("<Q", b, 0)[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write_raw(path, header_text, data):
    hb = header_text.encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)


def st_write(path, tensors, meta=None):
    """tensors: list of (name, dtype, shape, bytes), written in that order."""
    h, data, at = {}, [], 0
    if meta is not None:
        h["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [at, at + len(raw)]}
        data.append(raw)
        at += len(raw)
    st_write_raw(path, json.dumps(h), b"".join(data))


def to_f32(dtype, raw):
    if dtype == "F32":
        a = array.array("f")
        a.frombytes(raw)
        if sys.byteorder != "little":
            a.byteswap()
        return a
    if dtype == "BF16":
        h = array.array("H")
        h.frombytes(raw)
        if sys.byteorder != "little":
            h.byteswap()
        u = array.array("I", (x << 16 for x in h))
        a = array.array("f")
        a.frombytes(u.tobytes())
        return a
    if dtype == "F16":
        return array.array("f", struct.unpack("<%de" % (len(raw) // 2), raw))
    fail("unexpected dtype " + dtype)


def source_tensors(src):
    if os.path.isfile(src):
        return st_read(src)[0]
    return st_read(os.path.join(src, "model.safetensors"))[0]


def cmd_same(a, b):
    """a and b hold the same tensors: names, dtypes, shapes and bytes."""
    x, y = st_read(a)[0], st_read(b)[0]
    if set(x) != set(y):
        fail("names differ: only in %s: %s; only in %s: %s"
             % (a, sorted(set(x) - set(y))[:5], b, sorted(set(y) - set(x))[:5]))
    for n in x:
        if x[n][0] != y[n][0]:
            fail("%s: dtype %s vs %s" % (n, x[n][0], y[n][0]))
        if x[n][1] != y[n][1]:
            fail("%s: shape %s vs %s" % (n, x[n][1], y[n][1]))
        if x[n][2] != y[n][2]:
            d = next(i for i in range(len(x[n][2])) if x[n][2][i] != y[n][2][i])
            fail("%s: bytes differ (first at byte %d of %d)" % (n, d, len(x[n][2])))
    print("%d tensors identical" % len(x))


def cmd_widened(src, deq):
    """deq holds every tensor of src as F32 with exactly the widened values."""
    x, y = st_read(src)[0], st_read(deq)[0]
    if set(x) != set(y):
        fail("names differ")
    for n in x:
        if y[n][0] != "F32" or y[n][1] != x[n][1]:
            fail("%s: %s %s, expected F32 %s" % (n, y[n][0], y[n][1], x[n][1]))
        if to_f32(x[n][0], x[n][2]).tobytes() != y[n][2]:
            fail("%s: values differ from the widened source" % n)
    print("%d tensors widened exactly" % len(x))


def rmse_of(src_dir, deq, names):
    src, out = source_tensors(src_dir), st_read(deq)[0]
    se, n = 0.0, 0
    for name in names:
        sd, ss, sb = src[name]
        od, os_, ob = out[name]
        if od != "F32" or os_ != ss:
            fail("%s: dequantized as %s %s, expected F32 %s" % (name, od, os_, ss))
        x, y = to_f32(sd, sb), to_f32(od, ob)
        se += math.fsum((p - q) * (p - q) for p, q in zip(x, y))
        n += len(x)
    return math.sqrt(se / n)


def cmd_rmse(src_dir, deq, qtype, mode="expected", ref="0"):
    """mode expected: the RMSE of expected.json to 1e-6 relative; below: less than that value."""
    exp = json.load(open(os.path.join(src_dir, "expected.json")))
    r = rmse_of(src_dir, deq, exp["quantized_tensors"])
    e = exp["rmse_" + qtype]
    if mode == "expected":
        rel = abs(r - e) / e
        msg = "rmse %.10g, expected.json %.10g, relative difference %.2g" % (r, e, rel)
        if not rel <= 1e-6:
            fail(msg)
    else:
        msg = "rmse %.10g < reference %.10g" % (r, e)
        if not r < e:
            fail(msg)
    print(msg)


CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def cmd_dumpcheck(dump, src_dir, qtype, compress):
    """The dump --json of a conversion of fixture src_dir to qtype."""
    d = json.load(open(dump))
    cfg = json.load(open(os.path.join(src_dir, "config.json")))
    exp = json.load(open(os.path.join(src_dir, "expected.json")))
    src = source_tensors(src_dir)
    quantized = set(exp["quantized_tensors"])
    block = qtype not in ("f32", "f16", "bf16")
    mt = cfg["model_type"]
    errs = []
    if d["tensor_count"] != len(src) or len(d["tensors"]) != len(src):
        errs.append("tensor_count %s, %d listed, source has %d"
                    % (d["tensor_count"], len(d["tensors"]), len(src)))
    seen = set()
    zstd = 0
    for t in d["tensors"]:
        n = t["name"]
        seen.add(n)
        if n not in src:
            errs.append("unexpected tensor " + n)
            continue
        sdt, shape, _ = src[n]
        want = qtype if (not block or n in quantized) else sdt.lower()
        if t["type"] != want:
            errs.append("%s: type %s, expected %s" % (n, t["type"], want))
        if mt == "gpt2" and n.endswith(CONV1D) and len(shape) == 2:
            shape = shape[::-1]
        if t["shape"] != shape:
            errs.append("%s: shape %s, expected %s" % (n, t["shape"], shape))
        if t["codec"] == "zstd":
            zstd += 1
        elif t["codec"] != "none":
            errs.append("%s: codec %s" % (n, t["codec"]))
    if seen != set(src):
        errs.append("missing tensors: %s" % sorted(set(src) - seen)[:5])
    if compress == "none" and zstd:
        errs.append("%d tensors zstd-compressed without --compress" % zstd)
    if compress != "none" and not zstd:
        errs.append("no tensor zstd-compressed with --compress " + compress)
    m = d["metadata"]
    want_meta = {
        "general.architecture": mt,
        "model.hidden_size": cfg.get("hidden_size", cfg.get("n_embd")),
        "model.num_layers": cfg.get("num_hidden_layers", cfg.get("n_layer")),
        "model.num_heads": cfg.get("num_attention_heads", cfg.get("n_head")),
        "model.num_kv_heads": cfg.get("num_key_value_heads",
                                      cfg.get("num_attention_heads", cfg.get("n_head"))),
        "model.vocab_size": cfg["vocab_size"],
        "model.context_length": cfg.get("max_position_embeddings", cfg.get("n_positions")),
        "model.ffn_size": cfg.get("intermediate_size") or 4 * cfg.get("n_embd", 0),
        "convert.type": qtype,
        "convert.compress": compress,
    }
    for k, v in want_meta.items():
        if k not in m:
            errs.append("metadata %s missing" % k)
        elif m[k] != v:
            errs.append("metadata %s = %r, expected %r" % (k, m[k], v))
    for k in ("model.head_dim", "model.norm_eps", "model.tie_word_embeddings", "hf.config.json",
              "source.files", "source.sizes", "source.xxh3", "convert.tool", "convert.quality"):
        if k not in m:
            errs.append("metadata %s missing" % k)
    with open(os.path.join(src_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = f.read()
    if m.get("tokenizer.huggingface.json") != tok:
        errs.append("tokenizer.huggingface.json missing or not tokenizer.json")
    if m.get("source.files") != ["model.safetensors"]:
        errs.append("source.files = %r" % m.get("source.files"))
    if m.get("source.sizes") != [os.path.getsize(os.path.join(src_dir, "model.safetensors"))]:
        errs.append("source.sizes = %r" % m.get("source.sizes"))
    tr = sorted(n for n in src if mt == "gpt2" and n.endswith(CONV1D) and len(src[n][1]) == 2)
    if sorted(m.get("convert.transposed", [])) != tr:
        errs.append("convert.transposed = %r, expected %d names" % (m.get("convert.transposed"), len(tr)))
    if errs:
        fail("; ".join(errs[:6]))
    print("%d tensors (%d at %s), metadata complete" % (len(src), sum(
        1 for t in d["tensors"] if t["type"] == qtype), qtype))


def cmd_types(dump, *pairs):
    """Each NAME=TYPE (NAME may be a glob): the dumped tensor(s) have that type."""
    d = json.load(open(dump))
    types = {t["name"]: t["type"] for t in d["tensors"]}
    errs = []
    for p in pairs:
        g, want = p.rsplit("=", 1)
        hits = [n for n in types if fnmatch.fnmatchcase(n, g)]
        if not hits:
            errs.append("no tensor matches " + g)
        errs += ["%s: %s, expected %s" % (n, types[n], want) for n in hits if types[n] != want]
    if errs:
        fail("; ".join(errs[:6]))
    print("types as expected")


def cmd_meta(dump, key, want):
    m = json.load(open(dump))["metadata"]
    if json.dumps(m.get(key)) != want:
        fail("metadata %s = %s, expected %s" % (key, json.dumps(m.get(key)), want))


def cmd_parses(path):
    json.load(open(path))


def cmd_tensor_range(dump, name):
    for t in json.load(open(dump))["tensors"]:
        if t["name"] == name:
            print(t["offset"], t["stored_size"])
            return
    fail("no tensor " + name)


def cmd_flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(int(offset))
        c = f.read(1)
        f.seek(int(offset))
        f.write(bytes([c[0] ^ 0x5A]))


def cmd_tiny(path):
    """x.weight F32 [4, 48] (rows not a multiple of 32) and y.weight F32 [4, 64]."""
    x = struct.pack("<192f", *[(i % 17 - 8) / 16.0 for i in range(192)])
    y = struct.pack("<256f", *[(i % 13 - 6) / 8.0 for i in range(256)])
    st_write(path, [("x.weight", "F32", [4, 48], x), ("y.weight", "F32", [4, 64], y)],
             {"format": "pt"})


def cmd_truncate(src, dst, where):
    """Cuts src in the header or in the data; prints the tensor the cut data names (if any)."""
    with open(src, "rb") as f:
        b = f.read()
    n = struct.unpack_from("<Q", b, 0)[0]
    if where == "header":
        cut = 8 + n // 2
    else:
        cut = 8 + n + (len(b) - 8 - n) // 2
    with open(dst, "wb") as f:
        f.write(b[:cut])
    if where == "data":
        h = json.loads(b[8:8 + n])
        for name, e in h.items():  # the first entry (header order) ending past the cut
            if name != "__metadata__" and e["data_offsets"][1] > cut - 8 - n:
                print(name)
                return


def data_order(h):
    return sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])


def cmd_lie(src, dst, kind):
    """Writes a copy of src whose header lies in one way; prints the tensor concerned."""
    h, data = st_header(src)
    order = data_order(h)
    if kind == "past-end":  # the last tensor's data run past the end of the file
        name = order[-1]
        h[name]["data_offsets"][1] += 64
    elif kind == "shape":  # a shape that does not match the byte size
        name = next(k for k in order if len(h[k]["shape"]) == 1)
        h[name]["shape"][0] -= 1
    elif kind.startswith("dtype="):  # an unknown dtype
        name = order[len(order) // 2]
        h[name]["dtype"] = kind[6:]
    elif kind == "overlap":  # a tensor pointing into the previous tensor's bytes, same size
        name = next(order[i] for i in range(1, len(order))
                    if h[order[i]]["data_offsets"][1] - h[order[i]]["data_offsets"][0]
                    == h[order[i - 1]]["data_offsets"][1] - h[order[i - 1]]["data_offsets"][0])
        i = order.index(name)
        h[name]["data_offsets"] = list(h[order[i - 1]]["data_offsets"])
        # keep the file's end covered: the last tensor's bytes stay where they are
    elif kind == "duplicate":  # two entries of the same name (raw JSON, a dict cannot hold it)
        a, b = order[0], order[1]
        text = json.dumps(h)
        key = json.dumps(b) + ":"
        text = text.replace(key, json.dumps(a) + ":", 1)
        st_write_raw(dst, text, data)
        print(a)
        return
    else:
        fail("unknown lie " + kind)
    st_write_raw(dst, json.dumps(h), data)
    print(name)


def cmd_shard(src_dir, dst_dir, how):
    """A sharded copy of a fixture: two shards and model.safetensors.index.json.
    how: ok | missing (the index names a shard file that does not exist) |
    wrong (the index puts a tensor in the shard that lacks it). Prints the name concerned."""
    tensors, meta = st_read(os.path.join(src_dir, "model.safetensors"))
    names = list(tensors)
    half = len(names) // 2
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    os.makedirs(dst_dir, exist_ok=True)
    wm = {}
    for k, part in enumerate((names[:half], names[half:])):
        st_write(os.path.join(dst_dir, files[k]),
                 [(n,) + tuple(tensors[n]) for n in part], meta)
        for n in part:
            wm[n] = files[k]
    for extra in ("config.json", "tokenizer.json"):
        with open(os.path.join(src_dir, extra), "rb") as f, \
                open(os.path.join(dst_dir, extra), "wb") as g:
            g.write(f.read())
    shown = ""
    if how == "missing":
        shown = "model-00003-of-00003.safetensors"
        wm[names[-1]] = shown
    elif how == "wrong":
        shown = names[0]
        wm[shown] = files[1]
    total = sum(len(t[2]) for t in tensors.values())
    with open(os.path.join(dst_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
    print(shown)


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
PYEOF
py() { python3 "$PY" "$@"; }

# nothing_left OUT: true if neither OUT nor a temporary OUT.tmp.* exists; else false, with the
# names found in LEFT.
LEFT=""
nothing_left() {
    local f
    LEFT=""
    for f in "$1" "$1".tmp.*; do
        if [ -e "$f" ] || [ -L "$f" ]; then LEFT="$LEFT$f "; fi
    done
    [ -z "$LEFT" ]
}

# expect_fail NAME CODE OUT PATTERN... -- ARGS...: qfmt ARGS exits CODE, stderr holds every
# PATTERN (fixed strings), and OUT (when not "-") and OUT.tmp.* do not exist afterwards.
expect_fail() {
    local name=$1 code=$2 out=$3
    shift 3
    local pats=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do pats+=("$1"); shift; done
    shift
    run "$@"
    local why=()
    [ "$RC" -eq "$code" ] || why+=("exit status $RC, expected $code")
    local p
    for p in "${pats[@]}"; do
        grep -qF -- "$p" "$TMPD/err" || why+=("stderr lacks '$p'")
    done
    grep -q '^qfmt: error: ' "$TMPD/err" || why+=("stderr has no 'qfmt: error: ' line")
    sanitizer_clean || why+=("sanitizer report")
    if [ "$out" != "-" ] && ! nothing_left "$out"; then why+=("left behind: $LEFT"); fi
    if [ ${#why[@]} -eq 0 ]; then
        ok "$name"
        if [ -n "${QFMT_TEST_VERBOSE:-}" ]; then sed 's/^/     | /' "$TMPD/err"; fi
    else
        bad "$name" "${why[@]}" "stderr: $(errtext)"
    fi
}

# expect_ok NAME ARGS...: qfmt ARGS exits 0 without sanitizer reports. Returns its status.
expect_ok() {
    local name=$1
    shift
    run "$@"
    if [ "$RC" -eq 0 ] && sanitizer_clean; then
        ok "$name"
        return 0
    fi
    bad "$name" "exit status $RC: qfmt $*" "stderr: $(errtext)"
    return 1
}

# pycheck NAME ARGS...: the helper's check passes.
pycheck() {
    local name=$1 msg
    shift
    if msg=$(py "$@" 2>&1); then ok "$name${msg:+ ($msg)}"; else bad "$name" "$msg"; fi
}

MODELS="gpt2 llama bert"
TYPES="f32 f16 bf16 q8_0 q4_0 q4_1 q8_z q4_z"
stored_dtype() { # config.json's dtype as a qfmt type name
    python3 -c 'import json,sys; print({"float32":"f32","float16":"f16","bfloat16":"bf16"}[json.load(open(sys.argv[1]))["dtype"]])' "$FIX/$1-kjv/config.json"
}

# ---- Every fixture to every type -------------------------------------------------------------
echo "# convert: every fixture to every type"
C=$TMPD/conv
mkdir -p "$C"
# convert_check NAME MODEL TYPE COMPRESS(none|zstd|zstd:N) [EXTRA ARGS...]
convert_check() {
    local name=$1 m=$2 t=$3 comp=$4
    shift 4
    local out=$C/$name.qfmt args=() meta_comp=$comp
    if [ "$comp" != none ]; then args=(--compress "$comp"); fi
    [ "$comp" = zstd ] && meta_comp=zstd:3
    # exit 0, one summary line on stdout, nothing on stderr (not a terminal), no temporary file
    run convert "$FIX/$m-kjv" -o "$out" --type "$t" "${args[@]}" "$@"
    local why=()
    [ "$RC" -eq 0 ] || why+=("exit status $RC")
    [ -f "$out" ] || why+=("no output file")
    [ "$(grep -c . "$TMPD/out")" -eq 1 ] && grep -q "^converted [0-9]* tensors" "$TMPD/out" ||
        why+=("stdout is not one summary line: $(head -c 300 "$TMPD/out")")
    [ ! -s "$TMPD/err" ] || why+=("stderr not empty")
    local f
    for f in "$out".tmp.*; do if [ -e "$f" ]; then why+=("left behind: $f"); fi; done
    if [ ${#why[@]} -ne 0 ]; then
        bad "convert $name" "${why[@]}" "stderr: $(errtext)"
        return
    fi
    ok "convert $name"
    expect_ok "verify $name" verify "$out"
    if run dump --json "$out" && [ "$RC" -eq 0 ] && python3 -m json.tool "$TMPD/out" >/dev/null; then
        cp "$TMPD/out" "$C/$name.json"
        pycheck "dump --json $name" dumpcheck "$C/$name.json" "$FIX/$m-kjv" "$t" "$meta_comp"
    else
        bad "dump --json $name parses" "exit status $RC" "stderr: $(errtext)"
    fi
}
for m in $MODELS; do
    for t in $TYPES; do
        convert_check "$m.$t" "$m" "$t" none
        convert_check "$m.$t.zstd" "$m" "$t" zstd
        # keep the files the later checks use; drop the others to bound disk use
        case "$t" in f32 | f16 | bf16 | q8_0 | q4_0 | q4_1) ;; *) rm -f "$C/$m.$t.qfmt" "$C/$m.$t.zstd.qfmt" ;; esac
    done
done
convert_check "llama.q4_0.zstd19" llama q4_0 zstd:19
convert_check "gpt2.q4_0.best" gpt2 q4_0 none --quality best
convert_check "llama.q4_1.best" llama q4_1 none --quality best
convert_check "bert.q8_0.best" bert q8_0 none --quality best
for x in gpt2.q4_0.best llama.q4_1.best bert.q8_0.best; do
    pycheck "convert $x: convert.quality is best" meta "$C/$x.json" convert.quality '"best"'
done

# ---- dequantize ------------------------------------------------------------------------------
echo "# dequantize: bit for bit at the stored dtype, expected RMSE for the block types"
D=$TMPD/deq
mkdir -p "$D"
for m in $MODELS; do
    sd=$(stored_dtype "$m")
    for v in "" .zstd; do
        if expect_ok "dequantize $m.$sd$v" dequantize "$C/$m.$sd$v.qfmt" -o "$D/$m.$sd$v.safetensors"; then
            what="dequantize $m.$sd$v gives the source bit for bit"
            [ "$m" = gpt2 ] && what="$what (Conv1D weights back to [in, out])"
            pycheck "$what" same \
                "$FIX/$m-kjv/model.safetensors" "$D/$m.$sd$v.safetensors"
        fi
        rm -f "$D/$m.$sd$v.safetensors"
    done
done
# BF16 and F16 sources converted to f32: every value widened exactly.
for m in llama bert; do
    if expect_ok "dequantize $m.f32" dequantize "$C/$m.f32.qfmt" -o "$D/$m.f32.safetensors"; then
        pycheck "dequantize $m.f32 holds the source widened exactly" widened \
            "$FIX/$m-kjv/model.safetensors" "$D/$m.f32.safetensors"
    fi
    rm -f "$D/$m.f32.safetensors"
done
for m in $MODELS; do
    for t in q8_0 q4_0 q4_1; do
        if expect_ok "dequantize $m.$t" dequantize "$C/$m.$t.qfmt" -o "$D/$m.$t.safetensors"; then
            pycheck "dequantize $m.$t: weight RMSE of expected.json" rmse "$FIX/$m-kjv" \
                "$D/$m.$t.safetensors" "$t"
        fi
        rm -f "$D/$m.$t.safetensors"
    done
done
# compression changes nothing in the values
if expect_ok "dequantize gpt2.q4_0.zstd" dequantize "$C/gpt2.q4_0.zstd.qfmt" -o "$D/z.safetensors" &&
    expect_ok "dequantize gpt2.q4_0" dequantize "$C/gpt2.q4_0.qfmt" -o "$D/n.safetensors"; then
    pycheck "dequantize gpt2.q4_0: same tensors with and without zstd" same "$D/n.safetensors" "$D/z.safetensors"
fi
rm -f "$D"/*.safetensors
# --quality best: a smaller error than the reference quantizer
for x in gpt2.q4_0 llama.q4_1 bert.q8_0; do
    m=${x%%.*} t=${x#*.}
    if expect_ok "dequantize $x.best" dequantize "$C/$x.best.qfmt" -o "$D/$x.best.safetensors"; then
        pycheck "dequantize $x.best: RMSE below the reference quantizer's" rmse "$FIX/$m-kjv" \
            "$D/$x.best.safetensors" "$t" below
    fi
    rm -f "$D/$x.best.safetensors"
done
# --dtype
if expect_ok "dequantize --dtype bf16 llama.q8_0" dequantize "$C/llama.q8_0.qfmt" -o "$D/b.safetensors" --dtype bf16; then
    if python3 -c 'import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; h=json.loads(b[8:8+n]); h.pop("__metadata__",None)
sys.exit(0 if {e["dtype"] for e in h.values()} == {"BF16"} else 1)' "$D/b.safetensors"; then
        ok "dequantize --dtype bf16: every tensor BF16"
    else bad "dequantize --dtype bf16: every tensor BF16"; fi
fi
rm -f "$D"/*.safetensors

# ---- Policy: the note, --keep, --quantize ----------------------------------------------------
echo "# convert: the quantization policy and its overrides"
P=$TMPD/policy
mkdir -p "$P"
py tiny "$P/tiny.safetensors"
if expect_ok "convert tiny.safetensors (a bare file) --type q4_0" convert "$P/tiny.safetensors" -o "$P/tiny.qfmt" --type q4_0; then
    notes=$(grep -c . "$TMPD/err")
    if [ "$notes" -eq 1 ] && grep -q "x\.weight" "$TMPD/err" && ! grep -q "y\.weight" "$TMPD/err" &&
        grep -qi "multiple of" "$TMPD/err"; then
        ok "convert tiny: one note line naming x.weight"
    else
        bad "convert tiny: one note line naming x.weight" "stderr: $(errtext)"
    fi
    run dump --json "$P/tiny.qfmt"
    cp "$TMPD/out" "$P/tiny.json"
    pycheck "convert tiny: x.weight [4, 48] stays f32, y.weight [4, 64] is q4_0" types "$P/tiny.json" \
        x.weight=f32 y.weight=q4_0
fi
if expect_ok "convert llama --type q4_0 --keep '*.mlp.*'" convert "$FIX/llama-kjv" -o "$P/keep.qfmt" \
    --type q4_0 --keep '*.mlp.*'; then
    run dump --json "$P/keep.qfmt"
    cp "$TMPD/out" "$P/keep.json"
    pycheck "--keep '*.mlp.*': MLP weights bf16, attention q4_0" types "$P/keep.json" \
        '*.mlp.*=bf16' '*.self_attn.*_proj.weight=q4_0' 'lm_head.weight=bf16'
    pycheck "--keep recorded in convert.keep" meta "$P/keep.json" convert.keep '["*.mlp.*"]'
fi
if expect_ok "convert llama --type q4_0 --quantize 'model.embed_tokens.*'" convert "$FIX/llama-kjv" \
    -o "$P/quant.qfmt" --type q4_0 --quantize 'model.embed_tokens.*'; then
    run dump --json "$P/quant.qfmt"
    cp "$TMPD/out" "$P/quant.json"
    pycheck "--quantize: the embedding is q4_0, lm_head and norms stay bf16" types "$P/quant.json" \
        model.embed_tokens.weight=q4_0 lm_head.weight=bf16 '*norm.weight=bf16' '*.mlp.*=q4_0'
fi
if expect_ok "convert gpt2 --type q8_0 --quantize 'transformer.wte.weight' --keep '*.c_fc.*'" convert \
    "$FIX/gpt2-kjv" -o "$P/gq.qfmt" --type q8_0 --quantize transformer.wte.weight --keep '*.c_fc.*'; then
    run dump --json "$P/gq.qfmt"
    cp "$TMPD/out" "$P/gq.json"
    pycheck "gpt2 overrides: wte q8_0, c_fc f32, wpe f32, c_attn q8_0" types "$P/gq.json" \
        transformer.wte.weight=q8_0 '*.c_fc.weight=f32' transformer.wpe.weight=f32 '*.c_attn.weight=q8_0'
fi
rm -rf "$P"

# ---- verify finds corruption ---------------------------------------------------------------
echo "# verify: corruption"
V=$TMPD/verify
mkdir -p "$V"
for v in q4_0 q4_0.zstd; do
    f=$V/llama.$v.qfmt
    cp "$C/llama.$v.qfmt" "$f"
    tn=model.layers.1.mlp.down_proj.weight
    read -r off size < <(py tensor-range "$C/llama.$v.json" "$tn")
    py flip "$f" $((off + size / 2))
    expect_fail "verify llama.$v with a byte flipped in $tn" 1 - "$f" "$tn" -- verify "$f"
    if run verify --json "$f" && python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
sys.exit(0 if d["ok"] is False and [x["tensor"] for x in d["failures"]] == [sys.argv[2]] else 1)' "$TMPD/out" "$tn"; then
        ok "verify --json llama.$v: ok false, one failure naming $tn"
    else
        bad "verify --json llama.$v: ok false, one failure naming $tn" "exit $RC; stdout: $(head -c 600 "$TMPD/out")"
    fi
    expect_fail "dequantize llama.$v with a byte flipped in $tn" 1 "$V/out.safetensors" "$f" "$tn" -- \
        dequantize "$f" -o "$V/out.safetensors"
done
cp "$C/llama.q4_0.qfmt" "$V/h.qfmt"
py flip "$V/h.qfmt" 20
expect_fail "verify: a byte flipped in the header" 1 - "$V/h.qfmt" -- verify "$V/h.qfmt"
expect_fail "dump: a byte flipped in the header" 1 - "$V/h.qfmt" -- dump "$V/h.qfmt"
head -c 100000 "$C/llama.q4_0.qfmt" >"$V/t.qfmt"
expect_fail "verify: a truncated file" 1 - "$V/t.qfmt" -- verify "$V/t.qfmt"
expect_fail "dump --json: a truncated file" 1 - "$V/t.qfmt" -- dump --json "$V/t.qfmt"
expect_fail "verify: a missing file" 1 - "$V/none.qfmt" -- verify "$V/none.qfmt"
expect_fail "verify: not a qfmt file" 1 - "$FIX/llama-kjv/config.json" -- verify "$FIX/llama-kjv/config.json"
rm -rf "$V"

# ---- Bad input -------------------------------------------------------------------------------
echo "# convert: bad input"
B=$TMPD/bad
mkdir -p "$B"
O=$B/out.qfmt
# mkmodel DIR MODEL: a copy of fixture MODEL's JSON files; the weights are added by the caller.
mkmodel() {
    rm -rf "$1"
    mkdir -p "$1"
    cp "$FIX/$2-kjv/config.json" "$FIX/$2-kjv/tokenizer.json" "$1/"
}
expect_fail "missing source directory" 1 "$O" "$B/nonexistent" "No such file" -- \
    convert "$B/nonexistent" -o "$O"
mkmodel "$B/noweights" llama
expect_fail "directory without model.safetensors" 1 "$O" "$B/noweights" "model.safetensors" -- \
    convert "$B/noweights" -o "$O" --type q4_0
mkmodel "$B/badjson" llama
ln -s "$FIX/llama-kjv/model.safetensors" "$B/badjson/model.safetensors"
printf '{"model_type": "llama", "hidden_size": 256,\n' >"$B/badjson/config.json"
expect_fail "broken config.json" 1 "$O" "$B/badjson/config.json" "JSON" -- convert "$B/badjson" -o "$O"
mkmodel "$B/badtok" llama
ln -s "$FIX/llama-kjv/model.safetensors" "$B/badtok/model.safetensors"
rm "$B/badtok/tokenizer.json"
mkdir "$B/badtok/tokenizer.json"
expect_fail "tokenizer.json is a directory" 1 "$O" "$B/badtok/tokenizer.json" -- convert "$B/badtok" -o "$O"

mkmodel "$B/cuthdr" llama
py truncate "$FIX/llama-kjv/model.safetensors" "$B/cuthdr/model.safetensors" header >/dev/null
expect_fail "model.safetensors cut in the header" 1 "$O" "$B/cuthdr/model.safetensors" "header" -- \
    convert "$B/cuthdr" -o "$O" --type q8_0
mkmodel "$B/cutdata" llama
tn=$(py truncate "$FIX/llama-kjv/model.safetensors" "$B/cutdata/model.safetensors" data)
expect_fail "model.safetensors cut in the data" 1 "$O" "$B/cutdata/model.safetensors" "$tn" "outside" -- \
    convert "$B/cutdata" -o "$O" --type q8_0
head -c 5 "$FIX/llama-kjv/model.safetensors" >"$B/five.safetensors"
expect_fail "a 5-byte .safetensors file" 1 "$O" "$B/five.safetensors" "header length" -- \
    convert "$B/five.safetensors" -o "$O"
: >"$B/empty.safetensors"
expect_fail "an empty .safetensors file" 1 "$O" "$B/empty.safetensors" -- convert "$B/empty.safetensors" -o "$O"

# lie KIND LABEL PATTERN...: a model whose model.safetensors header lies.
lie() {
    local kind=$1 label=$2
    shift 2
    local dir=$B/lie-${kind//[^a-zA-Z0-9]/_} tn
    mkmodel "$dir" llama
    tn=$(py lie "$FIX/llama-kjv/model.safetensors" "$dir/model.safetensors" "$kind")
    expect_fail "$label" 1 "$O" "$dir/model.safetensors" "$tn" "$@" -- convert "$dir" -o "$O" --type q4_0
    rm -rf "$dir"
}
lie past-end "header lies: data_offsets past the end of the file" "outside"
lie shape "header lies: shape does not match the byte size" "need"
lie dtype=F8_E4M3 "unknown dtype F8_E4M3" "F8_E4M3" "not supported"
lie dtype=U16 "unknown dtype U16" "U16" "not supported"
lie overlap "header lies: two tensors share bytes" "overlaps"
lie duplicate "header lies: a tensor name twice" "duplicate key" "at bytes"

echo "# convert: the JSON policy (qfmt_json_check), each file named with the byte"
# jsonbad DIR MODEL FILE PYEXPR: model MODEL's JSON files with FILE replaced by the bytes PYEXPR
# makes of the fixture's (t: its text as bytes); prints the offset PYEXPR's `at` gives.
jsonbad() {
    mkmodel "$1" "$2"
    ln -s "$FIX/$2-kjv/model.safetensors" "$1/model.safetensors"
    python3 - "$FIX/$2-kjv/$3" "$1/$3" "$4" <<'PYJ'
import os, sys
src, dst, expr = sys.argv[1:4]
t = open(src, "rb").read() if os.path.exists(src) else b"{}"
env = {"t": t}
exec(expr, env)
open(dst, "wb").write(env["out"])
print(env["at"])
PYJ
}
J=$B/json
# gpt2 with two n_head: cJSON would take the first, transformers the last
at=$(jsonbad "$J" gpt2 config.json 'i = t.index(b"{") + 1; ins = b" \"n_head\": 16,"; out = t[:i] + ins + t[i:]; at = t.index(b"\"n_head\"") + len(ins)')
expect_fail "config.json with two n_head" 1 "$O" "$J/config.json: at byte $at: JSON: duplicate key \"n_head\"" -- \
    convert "$J" -o "$O"
at=$(jsonbad "$J" llama tokenizer.json 'i = t.index(b"\"type\": \"BPE") + 12; out = t[:i] + b"\0junk" + t[i:]; at = i')
expect_fail "tokenizer.json with a raw NUL in a string" 1 "$O" "$J/tokenizer.json: at byte $at: JSON: NUL byte in a string" -- \
    convert "$J" -o "$O"
at=$(jsonbad "$J" llama config.json 'i = t.rindex(b"}"); out = t[:i] + b"}\0" + t[i + 1:]; at = i + 1')
expect_fail "config.json with a NUL after the object" 1 "$O" "$J/config.json: at byte $at: JSON: NUL byte" -- \
    convert "$J" -o "$O"
at=$(jsonbad "$J" llama generation_config.json 'out = b"{\"max_length\": 20}\n// tuned\n"; at = 19')
expect_fail "generation_config.json with a comment after it" 1 "$O" "$J/generation_config.json: at byte $at: JSON: comments" -- \
    convert "$J" -o "$O"
at=$(jsonbad "$J" llama config.json 'i = t.index(b"{") + 1; out = t[:i] + b" \"model_type\": \"llama\\u0000x\"," + t[i:]; at = i + 15 + 6')
expect_fail "config.json with an escaped NUL" 1 "$O" "$J/config.json: at byte $at: JSON: escaped NUL" -- \
    convert "$J" -o "$O"
rm -rf "$J"

echo "# convert: sharded models"
S=$B/sharded
py shard "$FIX/llama-kjv" "$S" ok >/dev/null
if expect_ok "convert a sharded model (index + 2 shards) to bf16" convert "$S" -o "$B/sh.qfmt" --type bf16; then
    run dump --json "$B/sh.qfmt"
    if python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); m=d["metadata"]
sys.exit(0 if d["tensor_count"] == 39 and m["source.files"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] and len(m["source.sizes"]) == 2 else 1)' "$TMPD/out"; then
        ok "sharded: 39 tensors, source.files lists both shards"
    else
        bad "sharded: 39 tensors, source.files lists both shards" "$(head -c 400 "$TMPD/out")"
    fi
    expect_ok "verify sharded" verify "$B/sh.qfmt"
    if expect_ok "dequantize sharded" dequantize "$B/sh.qfmt" -o "$B/sh.safetensors"; then
        pycheck "sharded: dequantize gives the unsharded source bit for bit" same \
            "$FIX/llama-kjv/model.safetensors" "$B/sh.safetensors"
    fi
    rm -f "$B/sh.qfmt" "$B/sh.safetensors"
fi
rm -rf "$S"
shard=$(py shard "$FIX/llama-kjv" "$S" missing)
expect_fail "shard index names a missing shard file" 1 "$O" "$S/$shard" "No such file" -- convert "$S" -o "$O" --type q4_0
rm -rf "$S"
tn=$(py shard "$FIX/llama-kjv" "$S" wrong)
expect_fail "shard index puts a tensor in the wrong shard" 1 "$O" "$tn" "model-00002-of-00002.safetensors" -- \
    convert "$S" -o "$O" --type q4_0
rm -rf "$S"
py shard "$FIX/llama-kjv" "$S" ok >/dev/null
printf '{"weight_map": {' >"$S/model.safetensors.index.json"
expect_fail "broken model.safetensors.index.json" 1 "$O" "$S/model.safetensors.index.json" "JSON" -- \
    convert "$S" -o "$O"
printf '{"weight_map": {"a\\u0000b": "model-00001-of-00002.safetensors"}}' >"$S/model.safetensors.index.json"
expect_fail "model.safetensors.index.json with an escaped NUL in a key" 1 "$O" \
    "$S/model.safetensors.index.json: at byte 18: JSON: escaped NUL" -- convert "$S" -o "$O"
rm -rf "$S"

# weight_map values that name no file: the message quotes the entry (an earlier build read it
# from freed JSON: ASan's heap-use-after-free, freed bytes in a release build)
for bad_value in '7' '""' '"../x/model.safetensors"' 'null'; do
    py shard "$FIX/llama-kjv" "$S" ok >/dev/null
    python3 - "$S/model.safetensors.index.json" "$bad_value" <<'PYEOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
k = sorted(d["weight_map"])[-1]
d["weight_map"] = dict(sorted(d["weight_map"].items()))
d["weight_map"][k] = json.loads(sys.argv[2])
open(p, "w").write(json.dumps(d))
PYEOF
    last=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1]))["weight_map"])[-1])' "$S/model.safetensors.index.json")
    expect_fail "weight_map value $bad_value is refused, naming its tensor" 1 "$O" "$S/model.safetensors.index.json" \
        "weight_map entry '$last' does not name a file" -- convert "$S" -o "$O"
    rm -rf "$S"
done

echo "# convert/dequantize: unwritable output"
expect_fail "output directory does not exist" 1 "$B/nodir/out.qfmt" "$B/nodir/out.qfmt" -- \
    convert "$FIX/gpt2-kjv" -o "$B/nodir/out.qfmt" --type q4_0
: >"$B/afile"
expect_fail "output's parent is a regular file" 1 "$B/afile/out.qfmt" "$B/afile/out.qfmt" -- \
    convert "$FIX/gpt2-kjv" -o "$B/afile/out.qfmt" --type q4_0
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere: only then is a mode-555 directory read-only
    mkdir -p "$B/ro"
    chmod 555 "$B/ro"
    expect_fail "output directory not writable (mode 555)" 1 "$B/ro/out.qfmt" "$B/ro/out.qfmt" \
        "Permission denied" -- convert "$FIX/gpt2-kjv" -o "$B/ro/out.qfmt" --type q4_0
    chmod 755 "$B/ro"
else
    echo "     (running as root: a read-only directory is not read-only; that check is skipped)"
fi
mkdir -p "$B/isdir.qfmt"
run convert "$FIX/gpt2-kjv" -o "$B/isdir.qfmt" --type q4_0
if [ "$RC" -eq 1 ] && grep -qF "$B/isdir.qfmt" "$TMPD/err" && ! ls -d "$B/isdir.qfmt".tmp.* >/dev/null 2>&1 &&
    [ -d "$B/isdir.qfmt" ] && [ -z "$(ls -A "$B/isdir.qfmt")" ]; then
    ok "output is an existing directory"
else
    bad "output is an existing directory" "exit $RC" "stderr: $(errtext)" "$(ls -d "$B"/isdir.qfmt*)"
fi
expect_fail "dequantize: output directory does not exist" 1 "$B/nodir/out.safetensors" "$B/nodir/out.safetensors" -- \
    dequantize "$C/gpt2.q4_0.qfmt" -o "$B/nodir/out.safetensors"
expect_fail "dequantize: missing input" 1 "$B/out.safetensors" "$B/none.qfmt" -- \
    dequantize "$B/none.qfmt" -o "$B/out.safetensors"

echo "# convert/dequantize: disk full"
FULL=$B/full
mkdir -p "$FULL"
LIMIT=""   # how the disk fills: a 6 MiB tmpfs, or else a 6 MiB file size limit (ulimit -f)
if [ -z "${QFMT_TEST_NO_TMPFS:-}" ] && mount -t tmpfs -o size=6m tmpfs "$FULL" 2>/dev/null; then
    MNT=$FULL
    LIMIT=tmpfs
else
    LIMIT="ulimit"
fi
echo "     (disk full simulated with $LIMIT)"
# limited ARGS...: qfmt ARGS with the 6 MiB limit in force (ulimit mode), like run.
limited() {
    if [ "$LIMIT" = ulimit ]; then
        ( trap '' XFSZ; ulimit -f 6144; exec "$QFMT" "$@" ) >"$TMPD/out" 2>"$TMPD/err"
        RC=$?
    else
        run "$@"
    fi
}
OF=$FULL/model.qfmt
# a complete q4_0 conversion (4.6 MB) fits; an f32 one (10.5 MB) does not
if expect_ok "disk full: a first complete output fits" convert "$FIX/gpt2-kjv" -o "$OF" --type q4_0; then
    sum_before=$(cksum <"$OF")
    limited convert "$FIX/gpt2-kjv" -o "$OF" --type f32
    why=()
    [ "$RC" -eq 1 ] || why+=("exit status $RC, expected 1")
    grep -qF "$OF" "$TMPD/err" || why+=("stderr does not name $OF")
    grep -qiE "space|too large|write" "$TMPD/err" || why+=("stderr does not say the write failed")
    sanitizer_clean || why+=("sanitizer report")
    ! ls "$OF".tmp.* >/dev/null 2>&1 || why+=("left behind: $(ls "$OF".tmp.*)")
    [ "$(cksum <"$OF")" = "$sum_before" ] || why+=("the previous output changed")
    if [ ${#why[@]} -eq 0 ]; then ok "disk full: convert exits 1, names the output, leaves nothing"
    else bad "disk full: convert exits 1, names the output, leaves nothing" "${why[@]}" "stderr: $(errtext)"; fi
    expect_ok "disk full: the previous output still verifies" verify "$OF"
    run dump --json "$OF"
    if [ "$RC" -eq 0 ] && py meta "$TMPD/out" convert.type '"q4_0"' >/dev/null; then
        ok "disk full: the previous output is still the q4_0 one"
    else bad "disk full: the previous output is still the q4_0 one"; fi
    # dequantize to f32 needs 10.5 MB as well
    limited dequantize "$OF" -o "$FULL/deq.safetensors"
    why=()
    [ "$RC" -eq 1 ] || why+=("exit status $RC, expected 1")
    grep -qF "$FULL/deq.safetensors" "$TMPD/err" || why+=("stderr does not name the output")
    sanitizer_clean || why+=("sanitizer report")
    nothing_left "$FULL/deq.safetensors" || why+=("left behind: $LEFT")
    if [ ${#why[@]} -eq 0 ]; then ok "disk full: dequantize exits 1, names the output, leaves nothing"
    else bad "disk full: dequantize exits 1, names the output, leaves nothing" "${why[@]}" "stderr: $(errtext)"; fi
fi
if [ -n "$MNT" ]; then umount "$MNT" && MNT=""; fi
rm -rf "$B"

# ---- Usage and help --------------------------------------------------------------------------
echo "# usage errors and --help"
U=$TMPD/usage
mkdir -p "$U"
G=$FIX/gpt2-kjv
# usage NAME OUT ARGS...: exit 2, the synopsis on stderr, nothing on stdout, no OUT.
usage() {
    local name=$1 out=$2
    shift 2
    run "$@"
    local why=()
    [ "$RC" -eq 2 ] || why+=("exit status $RC, expected 2")
    grep -q "^qfmt: error: $1: " "$TMPD/err" || why+=("no 'qfmt: error: $1: ' line")
    grep -q "^usage: qfmt $1" "$TMPD/err" || why+=("no synopsis on stderr")
    [ ! -s "$TMPD/out" ] || why+=("stdout not empty")
    if [ "$out" != - ] && ! nothing_left "$out"; then why+=("left behind: $LEFT"); fi
    if [ ${#why[@]} -eq 0 ]; then ok "$name"; else bad "$name" "${why[@]}" "stderr: $(errtext)"; fi
}
usage "convert without -o" - convert "$G"
usage "convert without a source" "$U/o.qfmt" convert -o "$U/o.qfmt"
usage "convert --type q3_0" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --type q3_0
usage "convert --type i8" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --type i8
usage "convert --compress zstd:0" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --compress zstd:0
usage "convert --compress zstd:20" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --compress zstd:20
usage "convert --compress lz4" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --compress lz4
usage "convert --quality medium" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --quality medium
usage "convert --threads 0" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --threads 0
usage "convert --frobnicate" "$U/o.qfmt" convert "$G" -o "$U/o.qfmt" --frobnicate
usage "convert with two sources" "$U/o.qfmt" convert "$G" "$G" -o "$U/o.qfmt"
usage "convert -o without a value" - convert "$G" -o
usage "dequantize without -o" - dequantize "$C/gpt2.q4_0.qfmt"
usage "dequantize --dtype q4_0" "$U/o.st" dequantize "$C/gpt2.q4_0.qfmt" -o "$U/o.st" --dtype q4_0
usage "dequantize --frobnicate" "$U/o.st" dequantize "$C/gpt2.q4_0.qfmt" -o "$U/o.st" --frobnicate
usage "dump without a file" - dump
usage "dump --frobnicate" - dump --frobnicate "$C/gpt2.q4_0.qfmt"
usage "verify without a file" - verify
usage "verify --frobnicate" - verify --frobnicate "$C/gpt2.q4_0.qfmt"
for cmd in convert dequantize dump verify; do
    run "$cmd" --help
    if [ "$RC" -eq 0 ] && grep -q "^usage: qfmt $cmd" "$TMPD/out" && [ ! -s "$TMPD/err" ]; then
        ok "$cmd --help: exit 0, usage on stdout"
    else
        bad "$cmd --help: exit 0, usage on stdout" "exit $RC" "stdout: $(head -c 200 "$TMPD/out")" "stderr: $(errtext)"
    fi
done
rm -rf "$U"

# ---- Type mixes, recipes and size targets ----------------------------------------------------
# (spec: "Type mixes, recipes and size targets")
#  - --type q4_k_m on llama-kjv (4 layers, 8 heads over 4 kv heads: n_gqa 2, an untied lm_head,
#    rows of 256 and 768) against the types llama.cpp's llama_tensor_get_type gives, written out
#    below from its rules; the same file from --mix q4_k_m; q3_k_m, q2_k and the q6_k mix;
#  - --keep and --quantize over a mix; a recipe; bad recipes (exit 1, FILE:LINE) and usage errors
#    (exit 2);
#  - --target-bpw: within budget (recomputed from the dump), the error it records is the one
#    measured here on the dequantized file, and it is no worse than q4_k everywhere at 4.5 bits
#    per weight (the same size) and better at 5; below the smallest choice: exit 1.
echo "# type mixes, recipes and size targets"
M=$TMPD/mix
mkdir -p "$M"
LK=$FIX/llama-kjv
MIXPY=$M/mix.py
cat >"$MIXPY" <<'PYEOF'
"""Checks of qfmt convert's type mixes, recipes and size targets (tests/cli_convert.sh)."""
import importlib.util, json, math, os, sys

spec = importlib.util.spec_from_file_location("st", os.environ["ST_PY"])
st = importlib.util.module_from_spec(spec)
spec.loader.exec_module(st)

PROJ = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
        "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def use_more_bits(i, n):
    # llama.cpp: i_layer < n_layers/8 || i_layer >= 7*n_layers/8 || (i_layer - n_layers/8)%3 == 2
    # (C integer division; n = 4 here, so n/8 = 0 and 7n/8 = 3: layers 2 and 3)
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected(mix, name, n_layer, n_gqa):
    """llama.cpp's type of a llama-kjv tensor under `mix` (None: not quantized). Every row
    here holds 256 or 768 values: no fallback."""
    if not name.endswith(".weight") or "norm" in name:
        return None
    base = {"q2_k": "q2_k", "q3_k_m": "q3_k", "q4_k_m": "q4_k", "q6_k": "q6_k"}[mix]
    if name == "lm_head.weight":
        return "q6_k"  # output: Q6_K unless the default type is Q8_0
    if name == "model.embed_tokens.weight":
        return base  # untied: the default type
    i = int(name.split(".")[2])
    cat = PROJ[name.split(".")[4]]
    if cat == "attn_v":
        if mix == "q2_k":
            return "q4_k" if n_gqa >= 4 else "q3_k"
        if mix == "q3_k_m":
            return "q5_k" if i < 2 else "q4_k"
        if mix == "q4_k_m":
            return "q6_k" if use_more_bits(i, n_layer) else "q4_k"
    if cat == "ffn_down":
        if mix == "q2_k":
            return "q3_k"
        if mix == "q3_k_m":
            return "q5_k" if i < n_layer // 16 else "q4_k"
        if mix == "q4_k_m":
            return "q6_k" if use_more_bits(i, n_layer) else "q4_k"
    if cat == "attn_output":
        if mix == "q2_k":
            return "q3_k"
        if mix == "q3_k_m":
            return "q4_k"
    return base


def cmd_mix(dump, src_dir, mix):
    d = json.load(open(dump))
    cfg = json.load(open(os.path.join(src_dir, "config.json")))
    n_layer = cfg["num_hidden_layers"]
    n_gqa = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
    src = st.source_tensors(src_dir)
    errs, counts = [], {}
    for t in d["tensors"]:
        want = expected(mix, t["name"], n_layer, n_gqa) or src[t["name"]][0].lower()
        counts[t["type"]] = counts.get(t["type"], 0) + 1
        if t["type"] != want:
            errs.append("%s: %s, llama.cpp's rules say %s" % (t["name"], t["type"], want))
    if errs:
        st.fail("; ".join(errs[:6]))
    print(", ".join("%s %d" % kv for kv in sorted(counts.items())))


def cmd_budget(dump, target):
    """The tensors of convert.target_bpw.tensors take at most `target` bits per weight (from
    their stored sizes), as convert.target_bpw.achieved says; they are every 2-D weight."""
    d = json.load(open(dump))
    m = d["metadata"]
    names = m["convert.target_bpw.tensors"]
    ts = {t["name"]: t for t in d["tensors"]}
    bits = sum(8 * ts[n]["raw_size"] for n in names)
    el = sum(ts[n]["elements"] for n in names)
    want = sorted(n for n, t in ts.items() if len(t["shape"]) == 2)
    if sorted(names) != want:
        st.fail("budgeted tensors %s, expected the %d 2-D weights" % (sorted(names)[:4], len(want)))
    if not bits <= float(target) * el:
        st.fail("%.6f bits per weight over the budget %s" % (bits / el, target))
    if abs(bits / el - m["convert.target_bpw.achieved"]) > 1e-9:
        st.fail("achieved %.9f, metadata %.9f" % (bits / el, m["convert.target_bpw.achieved"]))
    print("%.4f bits per weight <= %s" % (bits / el, target))


def sqerr(src_dir, deq, names):
    src, out = st.source_tensors(src_dir), st.st_read(deq)[0]
    total = 0.0
    for n in names:
        x, y = st.to_f32(src[n][0], src[n][2]), st.to_f32(out[n][0], out[n][2])
        total += math.fsum((p - q) * (p - q) for p, q in zip(x, y))
    return total


def cmd_error(dump, src_dir, deq, ref_deq, mode):
    """The squared error of deq over the budgeted tensors equals convert.target_bpw.error (to
    1e-6 relative) and is <= (mode le) or < (mode lt) that of ref_deq over the same tensors."""
    m = json.load(open(dump))["metadata"]
    names = m["convert.target_bpw.tensors"]
    e, r = sqerr(src_dir, deq, names), sqerr(src_dir, ref_deq, names)
    rec = m["convert.target_bpw.error"]
    if not abs(e - rec) <= 1e-6 * max(abs(rec), 1e-30):
        st.fail("measured error %.10g, metadata %.10g" % (e, rec))
    if not (e <= r if mode == "le" else e < r):
        st.fail("error %.10g, q4_k everywhere %.10g" % (e, r))
    print("error %.6g (metadata %.6g), q4_k everywhere %.6g" % (e, rec, r))


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PYEOF
mixpy() { ST_PY=$PY python3 "$MIXPY" "$@"; }
mixcheck() { # NAME ARGS...: the mix helper's check passes
    local name=$1 msg
    shift
    if msg=$(mixpy "$@" 2>&1); then ok "$name${msg:+ ($msg)}"; else bad "$name" "$msg"; fi
}

for opt in --type:q4_k_m --type:q3_k_m --mix:q2_k; do # --type q2_k is the plain type
    mx=${opt#*:}
    if expect_ok "convert llama ${opt%%:*} $mx" convert "$LK" -o "$M/$mx.qfmt" "${opt%%:*}" "$mx" --threads 2 &&
        grep -q "^qfmt: types: " "$TMPD/err"; then
        run dump --json "$M/$mx.qfmt"
        cp "$TMPD/out" "$M/$mx.json"
        mixcheck "llama $mx: every tensor's type is llama.cpp's" mix "$M/$mx.json" "$LK" "$mx"
        pycheck "llama $mx: convert.mix and convert.type" meta "$M/$mx.json" convert.mix "\"$mx\""
    else
        bad "convert llama ${opt%%:*} $mx prints the types" "stderr: $(errtext)"
    fi
done
py meta "$M/q4_k_m.json" convert.type '"q4_k"' >/dev/null && ok "q4_k_m: convert.type is its default type q4_k" ||
    bad "q4_k_m: convert.type is its default type q4_k"
if expect_ok "convert llama --mix q4_k_m" convert "$LK" -o "$M/mix.qfmt" --mix q4_k_m --threads 3 &&
    cmp -s "$M/mix.qfmt" "$M/q4_k_m.qfmt"; then
    ok "--mix q4_k_m writes the file --type q4_k_m writes"
else
    bad "--mix q4_k_m writes the file --type q4_k_m writes"
fi
if expect_ok "convert llama --mix q6_k" convert "$LK" -o "$M/q6mix.qfmt" --mix q6_k; then
    run dump --json "$M/q6mix.qfmt"
    cp "$TMPD/out" "$M/q6mix.json"
    mixcheck "llama --mix q6_k: llama.cpp's Q6_K (embedding and head too)" mix "$M/q6mix.json" "$LK" q6_k
fi
if expect_ok "convert llama --type q6_k" convert "$LK" -o "$M/q6.qfmt" --type q6_k; then
    run dump --json "$M/q6.qfmt"
    pycheck "--type q6_k stays the plain type (embedding and head kept)" types "$TMPD/out" \
        "lm_head.weight=bf16" "model.embed_tokens.weight=bf16" "*.down_proj.weight=q6_k"
fi
if [ -s "$M/q4_k_m.qfmt" ]; then
    run eval "$M/q4_k_m.qfmt" --text "$FIX/heldout.txt" --ctx 64 --windows 2 --threads 2 --json
    if [ "$RC" -eq 0 ] && grep -q '"perplexity"' "$TMPD/out"; then ok "the q4_k_m file runs (eval)"
    else bad "the q4_k_m file runs (eval)" "exit $RC" "stderr: $(errtext)"; fi
fi
# --keep and --quantize win over the mix: layer 3 kept, the head at the mix's default type
if expect_ok "convert llama q4_k_m --keep --quantize" convert "$LK" -o "$M/kq.qfmt" --type q4_k_m \
    --keep 'model.layers.3.*' --quantize lm_head.weight; then
    run dump --json "$M/kq.qfmt"
    pycheck "--keep and --quantize win over the mix" types "$TMPD/out" "model.layers.3.*=bf16" \
        "lm_head.weight=q4_k" "model.layers.2.mlp.down_proj.weight=q6_k" "model.embed_tokens.weight=q4_k"
fi

# A recipe: first match wins; tensors matching no line follow --type
cat >"$M/recipe.txt" <<'EOF'
# attention: q8_0, except layer 0's values
model.layers.0.self_attn.v_proj.weight  q6_k
*.self_attn.*.weight                    q8_0   # the rest of attention
*.down_proj.weight	q5_k
lm_head.weight keep

model.embed_tokens.weight iq4_xs
EOF
if expect_ok "convert llama --recipe" convert "$LK" -o "$M/recipe.qfmt" --recipe "$M/recipe.txt" --type q4_0; then
    run dump --json "$M/recipe.qfmt"
    cp "$TMPD/out" "$M/recipe.json"
    pycheck "recipe: first match wins, the rest follows --type q4_0" types "$M/recipe.json" \
        "model.layers.0.self_attn.v_proj.weight=q6_k" "model.layers.1.self_attn.v_proj.weight=q8_0" \
        "*.q_proj.weight=q8_0" "*.down_proj.weight=q5_k" "lm_head.weight=bf16" \
        "model.embed_tokens.weight=iq4_xs" "*.up_proj.weight=q4_0" "*.input_layernorm.weight=bf16"
    pycheck "recipe: convert.recipe holds its rules" meta "$M/recipe.json" convert.recipe \
        '["model.layers.0.self_attn.v_proj.weight q6_k", "*.self_attn.*.weight q8_0", "*.down_proj.weight q5_k", "lm_head.weight keep", "model.embed_tokens.weight iq4_xs"]'
fi
printf '*.weight q4_0\n\n*.bias q9_0\n' >"$M/bad1.txt"
printf '# one word\nlm_head.weight\n' >"$M/bad2.txt"
printf '*.weight q4_k_m\n' >"$M/bad3.txt"
printf '*.weight q4_0 q8_0\n' >"$M/bad4.txt"
expect_fail "recipe: unknown type (exit 1, FILE:LINE)" 1 "$M/b.qfmt" "$M/bad1.txt:3: " "q9_0" -- \
    convert "$LK" -o "$M/b.qfmt" --recipe "$M/bad1.txt"
expect_fail "recipe: a glob without a type" 1 "$M/b.qfmt" "$M/bad2.txt:2: " -- \
    convert "$LK" -o "$M/b.qfmt" --recipe "$M/bad2.txt"
expect_fail "recipe: a mix is not a type" 1 "$M/b.qfmt" "$M/bad3.txt:1: " "mix" -- \
    convert "$LK" -o "$M/b.qfmt" --recipe "$M/bad3.txt"
expect_fail "recipe: three words" 1 "$M/b.qfmt" "$M/bad4.txt:1: " -- \
    convert "$LK" -o "$M/b.qfmt" --recipe "$M/bad4.txt"
expect_fail "recipe: missing file" 1 "$M/b.qfmt" "$M/none.txt" -- \
    convert "$LK" -o "$M/b.qfmt" --recipe "$M/none.txt"

# --target-bpw: within budget, the recorded error measured again here, no worse than q4_k
# everywhere (4.5 bits per weight: the same size) and better at 5
expect_ok "convert llama --type q4_k, embedding and head too" convert "$LK" -o "$M/q4k.qfmt" --type q4_k \
    --quantize model.embed_tokens.weight --quantize lm_head.weight &&
    expect_ok "dequantize the q4_k file" dequantize "$M/q4k.qfmt" -o "$M/q4k.safetensors"
for x in 4.5 5; do
    if expect_ok "convert llama --target-bpw $x" convert "$LK" -o "$M/t$x.qfmt" --target-bpw "$x" --threads 2; then
        grep -q "^qfmt: --target-bpw $x: " "$TMPD/err" && ok "--target-bpw $x: the choice on stderr" ||
            bad "--target-bpw $x: the choice on stderr" "stderr: $(errtext)"
        run dump --json "$M/t$x.qfmt"
        cp "$TMPD/out" "$M/t$x.json"
        mixcheck "--target-bpw $x: within budget" budget "$M/t$x.json" "$x"
        pycheck "--target-bpw $x: convert.target_bpw" meta "$M/t$x.json" convert.target_bpw "$x"
        pycheck "--target-bpw $x: no convert.type" meta "$M/t$x.json" convert.type null
        if expect_ok "dequantize the --target-bpw $x file" dequantize "$M/t$x.qfmt" -o "$M/t$x.safetensors"; then
            mode=le
            [ "$x" = 5 ] && mode=lt
            mixcheck "--target-bpw $x: measured error, vs q4_k everywhere ($mode)" error "$M/t$x.json" "$LK" \
                "$M/t$x.safetensors" "$M/q4k.safetensors" "$mode"
        fi
    fi
done
expect_fail "--target-bpw below the smallest choice" 1 "$M/b.qfmt" "below the smallest choice" -- \
    convert "$LK" -o "$M/b.qfmt" --target-bpw 2
if expect_ok "convert llama --target-bpw 5 --target-types" convert "$LK" -o "$M/tt.qfmt" --target-bpw 5 \
    --target-types q4_0,q8_0; then
    run dump --json "$M/tt.qfmt"
    mixcheck "--target-types: within budget" budget "$TMPD/out" 5
    pycheck "--target-types: only those" meta "$TMPD/out" convert.target_bpw.types '["q4_0", "q8_0"]'
fi

usage "convert --mix q9_k_m" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --mix q9_k_m
usage "convert --type q4_k_x" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --type q4_k_x
usage "convert --type q4_k_m --mix q4_k_m" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --type q4_k_m --mix q4_k_m
usage "convert --type q4_k --type q4_k_m" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --type q4_k --type q4_k_m
usage "convert --target-bpw 0" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-bpw 0
usage "convert --target-bpw x" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-bpw x
usage "convert --target-bpw with --type" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-bpw 4 --type q4_k
usage "convert --target-bpw with --mix" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-bpw 4 --mix q8_0
usage "convert --target-types without --target-bpw" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-types q4_k
usage "convert --target-types q9_0" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --target-bpw 4 --target-types q4_k,q9_0
usage "convert --recipe without a file" - convert "$LK" -o "$M/u.qfmt" --recipe
usage "convert --type q2_k_s without --imatrix" "$M/u.qfmt" convert "$LK" -o "$M/u.qfmt" --type q2_k_s
rm -rf "$M"

echo "$PASS passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
