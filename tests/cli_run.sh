#!/usr/bin/env bash
# qfmt run (issue 6): --input/--output on the fixtures' reference inputs reproduces
# reference.safetensors (logits and hidden states) within 1e-3; --prompt generates readable,
# deterministic text for GPT-2 and LLaMA (greedy, and seeded sampling) with a speed line on
# stderr; BERT fills [MASK] with 5 candidates and their probabilities; bad input exits 1 with a
# message, usage errors 2, --help 0.
# Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
F=${QFMT_TEST_DATA_DIR:?}/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# compare OUT REF: every tensor of REF (logits, hidden.*) in OUT with the same dtype and shape,
# max abs difference <= 1e-3, and nothing else in OUT; prints the worst differences.
compare_py='
import json, struct, sys
from array import array

def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[base + b:base + e])
    return out

def floats(raw):
    a = array("f")
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a

out, ref = load(sys.argv[1]), load(sys.argv[2])
ref.pop("input_ids", None)
ok = True
if set(out) != set(ref):
    print("tensors %s, reference has %s" % (sorted(out), sorted(ref)))
    ok = False
report = []
for name in sorted(ref):
    if name not in out:
        continue
    (dt, shape, raw), (rdt, rshape, rraw) = out[name], ref[name]
    if dt != rdt or shape != rshape:
        print("%s: %s %s, reference %s %s" % (name, dt, shape, rdt, rshape))
        ok = False
        continue
    a, b = floats(raw), floats(rraw)
    worst = max(abs(x - y) for x, y in zip(a, b))
    if worst != worst or worst > 1e-3:
        ok = False
    report.append("%s %.2g" % (name, worst))
print(", ".join(report))
sys.exit(0 if ok else 1)
'
compare() { python3 -c "$compare_py" "$@"; }

# write_ids OUT DTYPE "[[ids], ...]": a safetensors file with input_ids
write_ids() {
    python3 - "$@" <<'EOF'
import json, struct, sys
path, dtype, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fmt = {"I32": "<i", "I64": "<q", "F32": "<f"}[dtype]
data = b"".join(struct.pack(fmt, v) for row in rows for v in row)
h = json.dumps({"input_ids": {"dtype": dtype, "shape": [len(rows), len(rows[0])],
                              "data_offsets": [0, len(data)]}}).encode()
h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
EOF
}

# the reference's input_ids re-encoded as I64
ids_as_i64_py='
import json, struct, sys
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack_from("<Q", data, 0)
t = json.loads(data[8:8 + n])["input_ids"]
b, e = t["data_offsets"]
ids = struct.unpack_from("<%di" % ((e - b) // 4), data, 8 + n + b)
B, T = t["shape"]
print(json.dumps([list(ids[i * T:(i + 1) * T]) for i in range(B)]))
'

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

# ---- conversions ---------------------------------------------------------------------------
for m in gpt2 llama bert; do
    if "$QFMT" convert "$F/$m-kjv" -o "$work/$m.qfmt" --type f32 >/dev/null 2>"$work/err"; then
        ok "$m: convert to f32"
    else
        bad "$m: convert to f32 ($(head -c 300 "$work/err"))"
    fi
done
"$QFMT" convert "$F/llama-kjv" -o "$work/llama-q8_0.qfmt" --type q8_0 >/dev/null 2>&1 ||
    bad "llama: convert to q8_0"

# ---- --input / --output against transformers ---------------------------------------------------
for m in gpt2 llama bert; do
    ref="$F/$m-kjv/reference.safetensors"
    out="$work/$m-out.safetensors"
    if "$QFMT" run "$work/$m.qfmt" --input "$ref" --output "$out" --threads 2 >"$work/out" 2>"$work/err"; then
        if res=$(compare "$out" "$ref"); then
            ok "$m: --input reference: logits and hidden states within 1e-3 ($res)"
        else
            bad "$m: --input reference: $res"
        fi
    else
        bad "$m: run --input (exit $?: $(head -c 300 "$work/err"))"
        continue
    fi
    # the same ids as I64, and on one thread: the same file
    write_ids "$work/ids64.safetensors" I64 "$(python3 -c "$ids_as_i64_py" "$ref")"
    if "$QFMT" run "$work/$m.qfmt" --input "$work/ids64.safetensors" --output "$work/$m-out64.safetensors" \
        --threads 1 >/dev/null 2>"$work/err" && cmp -s "$out" "$work/$m-out64.safetensors"; then
        ok "$m: I64 input_ids on 1 thread give the same output file"
    else
        bad "$m: I64 input_ids / 1 thread ($(head -c 300 "$work/err"))"
    fi
done

# ---- the second set of fixtures (issue 15): f32 and the stored dtype -------------------------
# llama3-kjv: RoPE scaling 'llama3', tied head. Packed with zstd (unpacked when the zstd tool is
# there): qwen3-kjv (q/k norms, head_dim 16, an embedding of more rows than token ids),
# gemma3-kjv (sliding and global layers, two RoPE bases, (1 + w) norms, q/k norms, scaled
# embeddings), phi3-kjv (fused qkv_proj and gate_up_proj, untied head).
. "$(dirname "$0")/lib/fixtures.sh"
declare -A src2=([llama3]="$F/llama3-kjv")
for spec in qwen3:tokenizers/qwen3.tokenizer.json.zst gemma3:tokenizer.json phi3:tokenizer.json; do
    m=${spec%%:*}
    if d=$(unpack_fixture "$m-kjv" "${spec#*:}"); then src2[$m]=$d; else echo "skip $m: no zstd tool to unpack its fixture"; fi
done
for m in "${!src2[@]}"; do
    for t in f32 $(stored_type "${src2[$m]}"); do
        if ! "$QFMT" convert "${src2[$m]}" -o "$work/$m-$t.qfmt" --type $t >/dev/null 2>"$work/err"; then
            bad "$m: convert to $t ($(head -c 300 "$work/err"))"
            continue
        fi
        ref="${src2[$m]}/reference.safetensors"
        if "$QFMT" run "$work/$m-$t.qfmt" --input "$ref" --output "$work/$m-$t-out.safetensors" --threads 2 \
            >/dev/null 2>"$work/err" && res=$(compare "$work/$m-$t-out.safetensors" "$ref"); then
            ok "$m $t: --input reference: logits and hidden states within 1e-3 ($res)"
        else
            bad "$m $t: --input reference: ${res:-} $(head -c 300 "$work/err")"
        fi
    done
done
for m in gemma3 phi3; do # the KJV tokenizer: deterministic text from every new family
    [ -n "${src2[$m]:-}" ] || continue
    a=$("$QFMT" run "$work/$m-f32.qfmt" --prompt "And God said" -n 12 2>/dev/null)
    b=$("$QFMT" run "$work/$m-f32.qfmt" --prompt "And God said" -n 12 2>/dev/null)
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ ${#a} -gt 20 ] && [[ "$a" == "And God said"* ]]; then
        ok "$m: --prompt generates ($a)"
    else
        bad "$m: --prompt gave '$a' then '$b'"
    fi
done
if [ -n "${src2[qwen3]:-}" ]; then # the real Qwen 3 tokenizer: readable text, deterministic
    a=$("$QFMT" run "$work/qwen3-bf16.qfmt" --prompt "And God said" -n 12 2>/dev/null)
    b=$("$QFMT" run "$work/qwen3-bf16.qfmt" --prompt "And God said" -n 12 2>/dev/null)
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ ${#a} -gt 20 ] && [[ "$a" == "And God said"* ]]; then
        ok "qwen3: --prompt generates ($a)"
    else
        bad "qwen3: --prompt gave '$a' then '$b'"
    fi
fi
# quantized weights: the output has the reference's layout (values are only close)
if "$QFMT" run "$work/llama-q8_0.qfmt" --input "$F/llama-kjv/reference.safetensors" \
    --output "$work/q8.safetensors" >/dev/null 2>"$work/err"; then
    res=$(compare "$work/q8.safetensors" "$F/llama-kjv/reference.safetensors")
    case "$res" in
    *"reference has"* | *", reference "*) bad "llama q8_0 --input: layout differs: $res" ;;
    *) ok "llama q8_0 --input: layout as the reference (differences: $res)" ;;
    esac
else
    bad "llama q8_0 run --input ($(head -c 300 "$work/err"))"
fi

# ---- --prompt: generation -------------------------------------------------------------------
prompt="And God said"
speed_re='prompt: [0-9]+ tokens, [0-9.]+ tok/s; generation: [0-9]+ tokens, [0-9.]+ tok/s'
for m in gpt2 llama; do
    if "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 >"$work/g1" 2>"$work/e1"; then
        ok "$m: --prompt exits 0"
    else
        bad "$m: --prompt (exit $?: $(head -c 300 "$work/e1"))"
        continue
    fi
    text=$(cat "$work/g1")
    echo "     $m: $(head -c 200 "$work/g1" | tr '\n' ' ')"
    case "$text" in
    "$prompt"?*) ok "$m: output starts with the prompt and continues it" ;;
    *) bad "$m: output does not start with the prompt: $(head -c 200 "$work/g1")" ;;
    esac
    if python3 -c 'import sys; t=open(sys.argv[1],"rb").read().decode("utf-8"); sys.exit(0 if sum(c.isalpha() for c in t) > len(t)//2 else 1)' "$work/g1" 2>/dev/null; then
        ok "$m: output is UTF-8 text, mostly letters"
    else
        bad "$m: output is not readable text"
    fi
    grep -Eq "$speed_re" "$work/e1" && ok "$m: speed line on stderr ($(grep -E "$speed_re" "$work/e1"))" ||
        bad "$m: no speed line on stderr: $(head -c 300 "$work/e1")"
    grep -q "$prompt" "$work/e1" && bad "$m: generated text on stderr" || true
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 >"$work/g2" 2>/dev/null
    cmp -s "$work/g1" "$work/g2" && ok "$m: greedy output is deterministic" || bad "$m: two greedy runs differ"
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --threads 1 >"$work/g3" 2>/dev/null
    cmp -s "$work/g1" "$work/g3" && ok "$m: greedy output on 1 thread is the same" ||
        bad "$m: greedy output differs on 1 thread"
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --exact >"$work/g4" 2>"$work/e4"
    rc=$?
    [ $rc = 0 ] && grep -q "exact path" "$work/e4" && ok "$m: --exact runs the exact path" ||
        bad "$m: --exact (exit $rc: $(head -c 200 "$work/e4"))"
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --temperature 0.8 --seed 5 >"$work/s1" 2>/dev/null
    rc1=$?
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --temperature 0.8 --seed 5 >"$work/s2" 2>/dev/null
    rc2=$?
    if [ $rc1 = 0 ] && [ $rc2 = 0 ] && cmp -s "$work/s1" "$work/s2"; then
        ok "$m: sampling with --seed 5 is reproducible"
    else
        bad "$m: two runs with --temperature 0.8 --seed 5 differ (exit $rc1, $rc2)"
    fi
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --temperature 0.8 --seed 6 >"$work/s3" 2>/dev/null &&
        ok "$m: --seed 6 runs ($(cmp -s "$work/s1" "$work/s3" && echo same || echo different) text than seed 5)" ||
        bad "$m: --seed 6 fails"
    "$QFMT" run "$work/$m.qfmt" --prompt "$prompt" -n 20 --temperature 0.8 --top-k 1 >"$work/k1" 2>/dev/null
    cmp -s "$work/g1" "$work/k1" && ok "$m: --top-k 1 sampling is greedy" || bad "$m: --top-k 1 differs from greedy"
done

# ---- --prompt: BERT fills [MASK] ------------------------------------------------------------
mask_py='
import re, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith("[MASK] at token")]
k = int(sys.argv[2])
if len(lines) != int(sys.argv[3]):
    sys.exit("%d [MASK] lines, want %s" % (len(lines), sys.argv[3]))
for l in lines:
    if not re.match(r"\[MASK\] at token \d+:", l):
        sys.exit("bad line: " + l)
    p = [float(x) for x in re.findall(r"'"'"' (\d\.\d+)", l)]
    if len(p) != k or any(not 0 <= x <= 1 for x in p) or p != sorted(p, reverse=True) or sum(p) > 1.001:
        sys.exit("want %d probabilities, descending: %s" % (k, l.strip()))
print(lines[0].strip())
'
bert_prompt="In the beginning God created the [MASK] and the earth."
if "$QFMT" run "$work/bert.qfmt" --prompt "$bert_prompt" >"$work/b1" 2>"$work/err"; then
    res=$(python3 -c "$mask_py" "$work/b1" 5 1 2>&1) && ok "bert: $res" || bad "bert: $res"
else
    bad "bert: --prompt (exit $?: $(head -c 300 "$work/err"))"
fi
"$QFMT" run "$work/bert.qfmt" --prompt "The [MASK] of the LORD [MASK] upon him." --top-k 3 >"$work/b2" 2>"$work/err" &&
    res=$(python3 -c "$mask_py" "$work/b2" 3 2 2>&1) && ok "bert: two masks, --top-k 3" || bad "bert: two masks, --top-k 3: ${res:-exit status}"
expect 1 "bert: a prompt without [MASK]" "$QFMT" run "$work/bert.qfmt" --prompt "In the beginning"

# ---- bad input -------------------------------------------------------------------------------
long=$(python3 -c 'print("the " * 300)')
expect 1 "gpt2: prompt past the context" "$QFMT" run "$work/gpt2.qfmt" --prompt "$long" -n 4
grep -q "context" "$work/err" && ok "gpt2: the message names the context" || bad "gpt2: message: $(head -c 300 "$work/err")"
expect 1 "gpt2: prompt + -n past the context" "$QFMT" run "$work/gpt2.qfmt" --prompt "$prompt" -n 300
expect 1 "bert: prompt past the context" "$QFMT" run "$work/bert.qfmt" --prompt "$long [MASK]"
expect 1 "not a qfmt file" "$QFMT" run "$F/heldout.txt" --prompt "$prompt"
expect 1 "missing model file" "$QFMT" run "$work/nope.qfmt" --prompt "$prompt"

write_ids "$work/bad.safetensors" I32 '[[5, 6, 99999, 7]]'
expect 1 "--input with token id 99999" "$QFMT" run "$work/llama.qfmt" --input "$work/bad.safetensors" --output "$work/bad-out.safetensors"
grep -q 99999 "$work/err" && ok "the message names id 99999" || bad "the message does not name 99999: $(head -c 300 "$work/err")"
[ -e "$work/bad-out.safetensors" ] && bad "a failed run left its output file" || ok "a failed run leaves no output file"
write_ids "$work/neg.safetensors" I64 '[[5, 6, 7], [1, -1, 2]]'
expect 1 "--input with token id -1 (sequence 1)" "$QFMT" run "$work/gpt2.qfmt" --input "$work/neg.safetensors" --output "$work/neg-out.safetensors"
grep -q -- "-1" "$work/err" && ok "the message names id -1" || bad "the message does not name -1: $(head -c 300 "$work/err")"
write_ids "$work/big.safetensors" I64 '[[5, 4294967296, 7]]'
expect 1 "--input with an I64 id past int32" "$QFMT" run "$work/gpt2.qfmt" --input "$work/big.safetensors" --output "$work/big-out.safetensors"
write_ids "$work/f32.safetensors" F32 '[[5, 6, 7]]'
expect 1 "--input with F32 input_ids" "$QFMT" run "$work/gpt2.qfmt" --input "$work/f32.safetensors" --output "$work/f-out.safetensors"
python3 -c 'print("[[" + ",".join(["5"] * 257) + "]]")' >"$work/ids257"
write_ids "$work/long.safetensors" I32 "$(cat "$work/ids257")"
expect 1 "--input longer than the context" "$QFMT" run "$work/gpt2.qfmt" --input "$work/long.safetensors" --output "$work/l-out.safetensors"
expect 1 "--input without input_ids" "$QFMT" run "$work/gpt2.qfmt" --input "$work/gpt2-out.safetensors" --output "$work/x.safetensors"
expect 1 "--input file missing" "$QFMT" run "$work/gpt2.qfmt" --input "$work/nope.safetensors" --output "$work/x.safetensors"

# ---- usage ---------------------------------------------------------------------------------------
expect 2 "neither --prompt nor --input" "$QFMT" run "$work/gpt2.qfmt"
expect 2 "--input without --output" "$QFMT" run "$work/gpt2.qfmt" --input "$F/gpt2-kjv/reference.safetensors"
expect 2 "both --prompt and --input" "$QFMT" run "$work/gpt2.qfmt" --prompt a --input "$F/gpt2-kjv/reference.safetensors" --output "$work/x.safetensors"
expect 2 "no model" "$QFMT" run --prompt "$prompt"
expect 2 "unknown option" "$QFMT" run "$work/gpt2.qfmt" --prompt a --frobnicate
expect 2 "-n without a count" "$QFMT" run "$work/gpt2.qfmt" --prompt a -n lots
expect 2 "negative temperature" "$QFMT" run "$work/gpt2.qfmt" --prompt a --temperature -1
expect 2 "--threads 0" "$QFMT" run "$work/gpt2.qfmt" --prompt a --threads 0
expect 0 "--help" "$QFMT" run --help
grep -q "usage: qfmt run" "$work/out" && ok "--help prints the usage on stdout" || bad "--help: no usage on stdout"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
