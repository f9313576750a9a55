#!/usr/bin/env bash
# qfmt eval against the fixtures' expected.json: each model converted with the default policy
# to f32, q8_0, q4_0 and q4_1 reproduces ppl_* to within 0.2% relative (exact path); --text and
# --tokens give the same perplexity; --json has the documented keys; bad input fails cleanly.
# Under a sanitizer build (slow) it evaluates 4 windows and checks only consistency.
# Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
F=${QFMT_TEST_DATA_DIR:?}/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

full=1
if nm "$QFMT" 2>/dev/null | grep -q __asan_init; then full=0; fi
windows=$([ $full = 1 ] && echo 64 || echo 4)

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# qwen3-kjv, gemma3-kjv and phi3-kjv are stored zstd-compressed: unpacked into the work
# directory with the zstd tool when there is one (tests/lib/fixtures.sh).
. "$(dirname "$0")/lib/fixtures.sh"
models="gpt2 llama bert llama3"
declare -A src=([gpt2]="$F/gpt2-kjv" [llama]="$F/llama-kjv" [bert]="$F/bert-kjv" [llama3]="$F/llama3-kjv")
for spec in qwen3:tokenizers/qwen3.tokenizer.json.zst gemma3:tokenizer.json phi3:tokenizer.json; do
    m=${spec%%:*}
    if d=$(unpack_fixture "$m-kjv" "${spec#*:}"); then
        src[$m]=$d
        models="$models $m"
    else
        echo "skip $m: no zstd tool to unpack its fixture"
    fi
done
for m in $models; do
    mask=() tokens="$F/heldout.safetensors"
    [ $m = bert ] && mask=(--mask "$F/bert-kjv/mlm_mask.safetensors")
    [ $m = qwen3 ] && tokens="$F/heldout.qwen3.safetensors" # heldout.txt in Qwen 3's tokens
    for t in f32 q8_0 q4_0 q4_1; do
        out="$work/$m-$t.qfmt"
        if ! "$QFMT" convert "${src[$m]}" -o "$out" --type $t >/dev/null 2>"$work/err"; then
            bad "$m $t: convert ($(head -c 300 "$work/err"))"
            continue
        fi
        if ! "$QFMT" eval "$out" --tokens "$tokens" --windows $windows "${mask[@]}" --json >"$work/j" 2>"$work/err"; then
            bad "$m $t: eval exit ($(head -c 300 "$work/err"))"
            continue
        fi
        ppl=$(json_field perplexity <"$work/j") scored=$(json_field scored_tokens <"$work/j")
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["tokens_per_second"]>0 and isinstance(d["type_mix"],dict)' "$work/j" &&
            ok "$m $t: --json keys" || bad "$m $t: --json keys"
        if [ $full = 1 ]; then
            want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ppl_"+sys.argv[2]])' "${src[$m]}/expected.json" $t)
            ws=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scored_tokens"])' "${src[$m]}/expected.json")
            if python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(a-b)/b<=0.002 else 1)' "$ppl" "$want"; then
                ok "$m $t: perplexity $ppl vs expected $want"
            else
                bad "$m $t: perplexity $ppl vs expected $want (more than 0.2% apart)"
            fi
            [ "$scored" = "$ws" ] && ok "$m $t: $scored scored tokens" || bad "$m $t: $scored scored tokens, expected $ws"
        fi
    done
done

# --text and --tokens: the embedded tokenizer gives the same stream, so the same perplexity
a=$("$QFMT" eval "$work/gpt2-f32.qfmt" --tokens "$F/heldout.safetensors" --windows $windows --json 2>/dev/null | json_field perplexity)
b=$("$QFMT" eval "$work/gpt2-f32.qfmt" --text "$F/heldout.txt" --windows $windows --json 2>/dev/null | json_field perplexity)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "--text and --tokens agree ($a)" || bad "--text ($b) and --tokens ($a) differ"
if [ -n "${src[qwen3]:-}" ]; then # the real Qwen 3 tokenizer, its padded vocabulary
    a=$("$QFMT" eval "$work/qwen3-f32.qfmt" --tokens "$F/heldout.qwen3.safetensors" --windows $windows --json 2>/dev/null | json_field perplexity)
    b=$("$QFMT" eval "$work/qwen3-f32.qfmt" --text "$F/heldout.txt" --windows $windows --json 2>/dev/null | json_field perplexity)
    [ -n "$a" ] && [ "$a" = "$b" ] && ok "qwen3: --text and --tokens agree ($a)" || bad "qwen3: --text ($b) and --tokens ($a) differ"
fi

# the fast path runs and stays close
c=$("$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows $windows --fast --json 2>/dev/null | json_field perplexity)
d=$("$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows $windows --json 2>/dev/null | json_field perplexity)
python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(a-b)/b<=0.02 else 1)' "$c" "$d" 2>/dev/null &&
    ok "fast path within 2% of exact on llama q8_0 ($c vs $d)" || bad "fast path ($c) far from exact ($d)"

# bad input
expect() { # code name cmd...
    local want=$1 name=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ $rc = "$want" ] && { [ "$want" = 0 ] || [ -s "$work/err" ]; }; then ok "$name (exit $rc)"; else bad "$name (exit $rc, want $want)"; fi
}
expect 1 "ctx beyond the model" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens "$F/heldout.safetensors" --ctx 100000
expect 1 "more windows than tokens" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens "$F/heldout.safetensors" --windows 100000
expect 1 "missing token file" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens "$work/nope.safetensors"
expect 1 "not a qfmt model" "$QFMT" eval "$F/heldout.txt" --tokens "$F/heldout.safetensors"
expect 1 "mask of the wrong shape" "$QFMT" eval "$work/bert-f32.qfmt" --tokens "$F/heldout.safetensors" --ctx 64 --mask "$F/bert-kjv/mlm_mask.safetensors"
# token files with ids no tokenizer has: refused naming the token (an earlier build freed the
# ids twice and died of SIGABRT)
for v in -1 -2147483648 2147483648; do
    python3 - "$work/badtok.safetensors" "$v" <<'PYEOF'
import json, struct, sys
v = int(sys.argv[2])
ids = [1, 2, 3, v, 5]
data = b"".join(struct.pack("<q", x) for x in ids)
h = json.dumps({"tokens": {"dtype": "I64", "shape": [len(ids)], "data_offsets": [0, len(data)]}}).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PYEOF
    expect 1 "token id $v in --tokens" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens "$work/badtok.safetensors"
    grep -q "token 3 has id $v" "$work/err" && ok "token id $v: the message names token 3" || bad "token id $v: message: $(head -c 300 "$work/err")"
done

# control characters from a file never reach the terminal raw: a tokenizer.json whose model
# type holds ESC and BEL (JSON escapes, valid JSON) is refused with them escaped
mkdir -p "$work/esc"
cp "$F/gpt2-kjv/config.json" "$F/gpt2-kjv/model.safetensors" "$work/esc/"
python3 - "$F/tokenizer.json" "$work/esc/tokenizer.json" <<'PYEOF'
import json, sys
t = json.load(open(sys.argv[1]))
t["model"]["type"] = "\u001b[31mEVIL\u0007"
open(sys.argv[2], "w").write(json.dumps(t))
PYEOF
if "$QFMT" convert "$work/esc" -o "$work/esc.qfmt" >/dev/null 2>"$work/err"; then
    expect 1 "tokenizer with ESC/BEL in its model type" "$QFMT" eval "$work/esc.qfmt" --text "$F/heldout.txt"
    if grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$work/err"; then bad "ESC/BEL reach stderr raw: $(od -c "$work/err" | head -5)"
    elif grep -qF '\x1b[31mEVIL\x07' "$work/err"; then ok "ESC/BEL shown escaped: $(head -c 200 "$work/err")"
    else bad "ESC/BEL message: $(head -c 300 "$work/err")"; fi
else
    bad "convert of the ESC tokenizer model: $(head -c 300 "$work/err")"
fi

expect 2 "no token source" "$QFMT" eval "$work/gpt2-f32.qfmt"
expect 2 "both token sources" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens a --text b
expect 0 "--help" "$QFMT" eval --help

echo "$pass passed, $fail failed"
[ $fail = 0 ]
