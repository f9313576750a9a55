#!/usr/bin/env bash
# qfmt convert FILE.gguf and qfmt export (GGUF both ways): the two GGUF files llama.cpp wrote
# (tests/data/gguf) import, verify, run and evaluate; their greedy continuation of "And God said"
# is llama.cpp's own (the strings below were printed by llama.cpp, through node-llama-cpp 3.21.1,
# for the same files); export of the import gives the files back byte for byte; every trained
# fixture exported at f16 and q8_0 imports again with the logits of the file it came from (1e-4);
# q8_z / q4_z are refused without --requantize; usage errors exit 2, bad input 1, --help 0.
# Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
D=${QFMT_TEST_DATA_DIR:?}
F=$D/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
. "$(dirname "$0")/lib/fixtures.sh"

if ! command -v zstd >/dev/null; then
    echo "cli_gguf: the zstd tool is needed to unpack tests/data/gguf; skipped"
    exit 0
fi

# expect CODE NAME CMD...: exit status CODE, and a message on stderr unless CODE is 0
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

# maxdiff A B: max |a - b| over the `logits` of two run --output files
maxdiff() {
    python3 - "$1" "$2" <<'EOF'
import json, struct, sys
from array import array
def logits(path):
    d = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", d, 0)
    t = json.loads(d[8:8 + n])["logits"]
    b, e = t["data_offsets"]
    a = array("f")
    a.frombytes(d[8 + n + b:8 + n + e])
    if sys.byteorder != "little":
        a.byteswap()
    return a
a, b = logits(sys.argv[1]), logits(sys.argv[2])
print("%.3g" % max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else "inf")
EOF
}

# ---- the files llama.cpp wrote ------------------------------------------------------------------
declare -A llamacpp=(
    [llama-kjv.Q4_K_M]=" unto him, Though it be well with thee, yet it is not lawful"
    [gpt2-kjv.Q8_0]=" unto him, Thou shalt not go with us, neither shalt thou go over with"
)
for name in llama-kjv.Q4_K_M gpt2-kjv.Q8_0; do
    g="$work/$name.gguf"
    zstd -q -d "$D/gguf/$name.gguf.zst" -o "$g" || { bad "$name: unpack"; continue; }
    if "$QFMT" convert "$g" -o "$work/$name.qfmt" >"$work/out" 2>"$work/err"; then
        ok "$name: convert (import) ($(head -n 1 "$work/out"))"
    else
        bad "$name: convert ($(head -c 300 "$work/err"))"
        continue
    fi
    expect 0 "$name: verify" "$QFMT" verify "$work/$name.qfmt"
    if "$QFMT" dump "$work/$name.qfmt" --metadata 2>/dev/null | grep -q 'source.gguf.general.name'; then
        ok "$name: general.name kept as source.gguf.general.name"
    else
        bad "$name: no source.gguf.general.name"
    fi
    ids=$("$QFMT" tokenize "$work/$name.qfmt" --text "And God said" 2>"$work/err")
    [ "$ids" = "300 391 392" ] && ok "$name: tokenize 'And God said' -> $ids (llama.cpp's ids)" ||
        bad "$name: tokenize -> '$ids' ($(head -c 200 "$work/err"))"
    text=$("$QFMT" run "$work/$name.qfmt" --prompt "And God said" -n 16 --threads 2 2>"$work/err")
    if [ "$text" = "And God said${llamacpp[$name]}" ]; then
        ok "$name: greedy continuation = llama.cpp's ('${llamacpp[$name]}')"
    else
        bad "$name: continuation '$text', llama.cpp's '${llamacpp[$name]}' ($(head -c 200 "$work/err"))"
    fi
    ppl=$("$QFMT" eval "$work/$name.qfmt" --tokens "$F/heldout.safetensors" --ctx 128 --windows 64 --threads 2 2>&1 |
        sed -n 's/^perplexity \([0-9.]*\).*/\1/p')
    ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ppl_f32"])' "$F/${name%%.*}/expected.json")
    if python3 -c 'import sys; p, r = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if r * 0.99 < p < r * 1.02 else 1)' \
        "${ppl:-0}" "$ref" 2>/dev/null; then
        ok "$name: eval perplexity $ppl (fixture's f32 $ref)"
    else
        bad "$name: eval perplexity '$ppl' (fixture's f32 $ref)"
    fi
    if "$QFMT" export "$work/$name.qfmt" -o "$work/$name.back.gguf" >"$work/out" 2>"$work/err" &&
        cmp -s "$g" "$work/$name.back.gguf"; then
        ok "$name: export of the import is the GGUF byte for byte"
    else
        bad "$name: export of the import differs ($(head -c 300 "$work/err"); $(cmp "$g" "$work/$name.back.gguf" 2>&1 | head -n 1))"
    fi
done

# ---- --type on a GGUF source -----------------------------------------------------------------------
g="$work/gpt2-kjv.Q8_0.gguf"
if "$QFMT" convert "$g" -o "$work/g-q4.qfmt" --type q4_0 >/dev/null 2>"$work/err" &&
    "$QFMT" dump "$work/g-q4.qfmt" --tensors | grep 'transformer.h.0.mlp.c_fc.weight' | grep -q q4_0; then
    ok "gpt2 GGUF --type q4_0: linear weights re-encoded as q4_0"
else
    bad "gpt2 GGUF --type q4_0 ($(head -c 300 "$work/err"))"
fi

# ---- every fixture: convert, export, import, same logits -------------------------------------------
for spec in gpt2: llama: llama3: qwen3:tokenizers/qwen3.tokenizer.json.zst gemma3:tokenizer.json phi3:tokenizer.json; do
    m=${spec%%:*}
    tok=${spec#*:}
    if [ -n "$tok" ]; then
        src=$(unpack_fixture "$m-kjv" "$tok") || { bad "$m: unpack"; continue; }
    else
        src="$F/$m-kjv"
    fi
    for t in f16 q8_0; do
        b="$work/$m.$t"
        if ! "$QFMT" convert "$src" -o "$b.qfmt" --type "$t" --threads 2 >/dev/null 2>"$work/err"; then
            bad "$m $t: convert ($(head -c 300 "$work/err"))"
            continue
        fi
        if ! "$QFMT" export "$b.qfmt" -o "$b.gguf" >"$work/out" 2>"$work/err"; then
            bad "$m $t: export ($(head -c 300 "$work/err"))"
            continue
        fi
        if ! "$QFMT" convert "$b.gguf" -o "$b.back.qfmt" >/dev/null 2>"$work/err"; then
            bad "$m $t: import of the export ($(head -c 300 "$work/err"))"
            continue
        fi
        "$QFMT" run "$b.qfmt" --input "$src/reference.safetensors" --output "$b.a.st" --threads 2 >/dev/null 2>&1
        "$QFMT" run "$b.back.qfmt" --input "$src/reference.safetensors" --output "$b.b.st" --threads 2 >/dev/null 2>"$work/err"
        d=$(maxdiff "$b.a.st" "$b.b.st" 2>/dev/null)
        if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 1e-4 else 1)' "${d:-inf}" 2>/dev/null; then
            ok "$m $t: export -> import keeps the logits (max |d| $d; $(head -c 90 "$work/out"))"
        else
            bad "$m $t: export -> import changes the logits by '$d' ($(head -c 200 "$work/err"))"
        fi
        a=$("$QFMT" run "$b.qfmt" --prompt "And God said" -n 16 --threads 2 2>/dev/null)
        c=$("$QFMT" run "$b.back.qfmt" --prompt "And God said" -n 16 --threads 2 2>/dev/null)
        [ -n "$a" ] && [ "$a" = "$c" ] && ok "$m $t: the same continuation after the round trip" ||
            bad "$m $t: continuation '$a' became '$c'"
    done
done
# gemma3-kjv slides on layers 0-2 of 4: llama.cpp's gemma3 holds that as a period of 4 (its
# default is 6, every sixth layer global), which the export writes instead of a warning
"$QFMT" dump "$work/gemma3.f16.gguf" >"$work/out" 2>"$work/err"
if grep -Eq 'gemma3\.attention\.sliding_window_pattern +u32 +4$' "$work/out" && ! grep -q 'qfmt.model.layer_types' "$work/out"; then
    ok "gemma3: export writes layer_types as attention.sliding_window_pattern = 4"
else
    bad "gemma3: no sliding_window_pattern 4 in the export ($(grep -i 'sliding\|layer_types' "$work/out" | head -n 3))"
fi

# ---- qfmt's own types -------------------------------------------------------------------------------
"$QFMT" convert "$F/gpt2-kjv" -o "$work/z.qfmt" --type q4_z >/dev/null 2>&1 || bad "gpt2: convert to q4_z"
expect 1 "export of q4_z without --requantize is refused" "$QFMT" export "$work/z.qfmt" -o "$work/z.gguf"
grep -q 'q4_z' "$work/err" && ok "the refusal names the type" || bad "the refusal does not name q4_z"
[ -e "$work/z.gguf" ] && bad "a refused export left a file" || ok "a refused export leaves nothing"
expect 0 "export --requantize" "$QFMT" export "$work/z.qfmt" -o "$work/z.gguf" --requantize
grep -q 're-encoded as q4_1' "$work/err" && ok "--requantize notes q4_z re-encoded as q4_1" || bad "no re-encoding note"

# ---- bad input and usage ----------------------------------------------------------------------------
expect 2 "export without arguments" "$QFMT" export
expect 2 "export without -o" "$QFMT" export "$work/z.qfmt"
expect 2 "export with an unknown option" "$QFMT" export "$work/z.qfmt" -o "$work/x.gguf" --frobnicate
expect 2 "export --quality with a bad value" "$QFMT" export "$work/z.qfmt" -o "$work/x.gguf" --quality worst
expect 1 "export of a missing file" "$QFMT" export "$work/missing.qfmt" -o "$work/x.gguf"
expect 1 "export of a GGUF (not a qfmt file)" "$QFMT" export "$work/gpt2-kjv.Q8_0.gguf" -o "$work/x.gguf"
if "$QFMT" export --help >"$work/out" 2>&1 && grep -q -- '--requantize' "$work/out"; then
    ok "export --help"
else
    bad "export --help"
fi
"$QFMT" help | grep -q '^  export' && ok "qfmt help lists export" || bad "qfmt help does not list export"
python3 - "$work/gpt2-kjv.Q8_0.gguf" "$work/gptj.gguf" <<'EOF'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.find(b"gpt2")
d[i:i + 4] = b"gptj"
open(sys.argv[2], "wb").write(d)
EOF
expect 1 "import of an architecture qfmt does not know" "$QFMT" convert "$work/gptj.gguf" -o "$work/x.qfmt"
grep -q "general.architecture 'gptj'" "$work/err" && ok "the refusal names the architecture" ||
    bad "the refusal does not name gptj: $(head -c 200 "$work/err")"
[ -e "$work/x.qfmt" ] && bad "a refused import left a file" || ok "a refused import leaves nothing"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
