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

# --kl-base: llama-kjv's q8_0 and q4_0 against its f32 on the same windows. f32 against itself:
# KL 0, the same top token everywhere, ratio 1; q8_0 nearer than q4_0; MODEL's own figures as
# without --kl-base; --fast for MODEL only; BERT at its masked positions; refusals. 16 windows
# (each runs two models; the script stays within CTest's 600 s on a busy 2-core machine).
kw=$([ $full = 1 ] && echo 16 || echo 4)
ref="$work/llama-f32.qfmt"
for t in f32 q8_0 q4_0; do
    if "$QFMT" eval "$work/llama-$t.qfmt" --tokens "$F/heldout.safetensors" --windows $kw --kl-base "$ref" --json \
        >"$work/kl-$t.json" 2>"$work/err"; then
        ok "kl llama $t: exit 0"
    else
        bad "kl llama $t: exit ($(head -c 300 "$work/err"))"
    fi
done
"$QFMT" eval "$work/llama-q4_0.qfmt" --tokens "$F/heldout.safetensors" --windows $kw --json >"$work/kl-plain.json" 2>/dev/null
"$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --windows $kw --json >"$work/kl-f32plain.json" 2>/dev/null
python3 - "$work" "$ref" <<'PYEOF' && ok "kl llama: --json fields and figures" || bad "kl llama: --json fields and figures"
import json, sys
w, ref = sys.argv[1], sys.argv[2]
d = {t: json.load(open(f"{w}/kl-{t}.json")) for t in ("f32", "q8_0", "q4_0", "plain", "f32plain")}
for t in ("f32", "q8_0", "q4_0"):
    k = d[t]["kl"]
    assert set(k) >= {"mean", "p99", "same_top", "ppl_ratio", "ref_perplexity", "positions", "ref"}, (t, k)
    assert k["ref"] == ref and k["positions"] == d[t]["scored_tokens"], (t, k)
    assert k["ref_perplexity"] == d["f32plain"]["perplexity"], (t, k["ref_perplexity"], d["f32plain"]["perplexity"])
    assert abs(k["ppl_ratio"] - d[t]["perplexity"] / k["ref_perplexity"]) <= 1e-12, (t, k)
    assert 0 <= k["mean"] <= k["max"] and k["median"] <= k["p99"] <= k["max"], (t, k)
    for key in ("model", "perplexity", "scored_tokens", "tokens_per_second", "windows", "ctx", "path", "type_mix"):
        assert key in d[t], (t, key)
f, q8, q4 = d["f32"]["kl"], d["q8_0"]["kl"], d["q4_0"]["kl"]
assert f["mean"] == 0 and f["p99"] == 0 and f["max"] == 0 and f["same_top"] == 1 and f["ppl_ratio"] == 1, f
assert 0 < q8["mean"] < 1e-3 and q8["same_top"] >= 0.97, q8
assert q8["mean"] < q4["mean"] < 0.1 and q4["same_top"] >= 0.85 and q8["p99"] < q4["p99"], (q8, q4)
assert d["q4_0"]["perplexity"] == d["plain"]["perplexity"], "MODEL's perplexity changed with --kl-base"
print(f"  q8_0: mean {q8['mean']:.3g} p99 {q8['p99']:.3g} same_top {q8['same_top']:.4f} ratio {q8['ppl_ratio']:.6f}")
print(f"  q4_0: mean {q4['mean']:.3g} p99 {q4['p99']:.3g} same_top {q4['same_top']:.4f} ratio {q4['ppl_ratio']:.6f}")
PYEOF
"$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows 4 --kl-base "$ref" >"$work/out" 2>"$work/err"
grep -q "^perplexity [0-9.]* over 508 scored tokens" "$work/out" && grep -q "^KL divergence from $ref: mean [0-9.e-]*, p99 [0-9.e-]* nats; same top token at [0-9.]*% of 508 positions$" "$work/out" &&
    grep -q "^perplexity ratio [0-9.]* (REF perplexity [0-9.]*)$" "$work/out" && [ "$(wc -l <"$work/out")" = 3 ] &&
    ok "kl: text output" || bad "kl: text output: $(head -c 400 "$work/out")"
# the fast path applies to MODEL only: REF's perplexity is the exact one (f32 weights take the
# exact products on both paths, so MODEL is q8_0 here)
"$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows 4 --fast --kl-base "$ref" --json >"$work/kl-fast.json" 2>/dev/null
"$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows 4 --kl-base "$ref" --json >"$work/kl-exact.json" 2>/dev/null
"$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --windows 4 --json >"$work/kl-ref4.json" 2>/dev/null
python3 - "$work" <<'PYEOF' && ok "kl: --fast for MODEL, REF exact" || bad "kl: --fast for MODEL, REF exact"
import json, sys
f, e, r = (json.load(open(f"{sys.argv[1]}/kl-{n}.json")) for n in ("fast", "exact", "ref4"))
assert f["path"] == "fast" and f["perplexity"] != e["perplexity"] and f["kl"]["mean"] != e["kl"]["mean"], (f, e)
assert f["kl"]["ref_perplexity"] == e["kl"]["ref_perplexity"] == r["perplexity"], (f, e, r)
assert 0 < f["kl"]["mean"] < 1e-2, f
PYEOF
# a quantized REF: a warning, and the figures
expect 0 "kl: quantized REF" "$QFMT" eval "$work/llama-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows 2 --kl-base "$work/llama-q4_0.qfmt"
grep -q "warning: --kl-base: .*llama-q4_0.qfmt is not a float model: 28 linear weights are q4_0" "$work/err" &&
    ok "kl: quantized REF warns" || bad "kl: quantized REF: $(head -c 300 "$work/err")"
# --text is tokenized with MODEL's tokenizer; the same stream as --tokens, the same figures
a=$("$QFMT" eval "$work/gpt2-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows 4 --kl-base "$work/gpt2-f32.qfmt" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["kl"]["mean"])')
b=$("$QFMT" eval "$work/gpt2-q8_0.qfmt" --text "$F/heldout.txt" --windows 4 --kl-base "$work/gpt2-f32.qfmt" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["kl"]["mean"])')
[ -n "$a" ] && [ "$a" = "$b" ] && ok "kl: --text and --tokens agree ($a)" || bad "kl: --text ($b) and --tokens ($a) differ"
# BERT: at the masked positions
if "$QFMT" eval "$work/bert-q8_0.qfmt" --tokens "$F/heldout.safetensors" --windows $kw --mask "$F/bert-kjv/mlm_mask.safetensors" \
    --kl-base "$work/bert-f32.qfmt" --json >"$work/kl-bert.json" 2>"$work/err" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); k=d["kl"]; assert k["positions"]==d["scored_tokens"] and 0<k["mean"]<1e-2 and k["same_top"]>=0.9, k' "$work/kl-bert.json"; then
    ok "kl: bert q8_0 at the masked positions"
else
    bad "kl: bert q8_0: $(head -c 300 "$work/err")"
fi
# refusals: a missing value (usage), a missing file, another family, another vocabulary
expect 2 "kl: --kl-base without a file" "$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --kl-base
expect 1 "kl: missing REF" "$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --kl-base "$work/nope.qfmt"
grep -q "nope.qfmt" "$work/err" && ok "kl: missing REF named" || bad "kl: missing REF: $(head -c 300 "$work/err")"
expect 1 "kl: REF of another family" "$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --kl-base "$work/gpt2-f32.qfmt"
grep -q "gpt2-f32.qfmt is a 'gpt2' model" "$work/err" && ok "kl: the family named" || bad "kl: another family: $(head -c 300 "$work/err")"
mkdir -p "$work/llama-v4000"
python3 - "$F/llama-kjv" "$work/llama-v4000" <<'PYEOF' # llama-kjv cut to a vocabulary of 4000
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
c = json.load(open(f"{src}/config.json"))
c["vocab_size"] = 4000
json.dump(c, open(f"{dst}/config.json", "w"))
b = open(f"{src}/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h, data = json.loads(b[8 : 8 + n]), b[8 + n :]
out, parts, off = {}, [], 0
for k, v in h.items():
    if k == "__metadata__":
        out[k] = v
        continue
    s, e = v["data_offsets"]
    t = data[s:e]
    if v["shape"][0] == 4096 and k in ("model.embed_tokens.weight", "lm_head.weight"):
        t = t[: len(t) // 4096 * 4000]
        v = dict(v, shape=[4000] + v["shape"][1:])
    out[k] = dict(v, data_offsets=[off, off + len(t)])
    parts.append(t)
    off += len(t)
hj = json.dumps(out).encode()
hj += b" " * (-len(hj) % 8)
open(f"{dst}/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(parts))
PYEOF
if "$QFMT" convert "$work/llama-v4000" -o "$work/llama-v4000.qfmt" >/dev/null 2>"$work/err"; then
    expect 1 "kl: REF of another vocabulary" "$QFMT" eval "$ref" --tokens "$F/heldout.safetensors" --kl-base "$work/llama-v4000.qfmt"
    grep -q "llama-v4000.qfmt has a vocabulary of 4000 tokens and .*llama-f32.qfmt one of 4096" "$work/err" &&
        ok "kl: another vocabulary named" || bad "kl: another vocabulary: $(head -c 300 "$work/err")"
else
    bad "kl: convert of the 4000-token llama: $(head -c 300 "$work/err")"
fi

expect 2 "no token source" "$QFMT" eval "$work/gpt2-f32.qfmt"
expect 2 "both token sources" "$QFMT" eval "$work/gpt2-f32.qfmt" --tokens a --text b
expect 0 "--help" "$QFMT" eval --help

echo "$pass passed, $fail failed"
[ $fail = 0 ]
