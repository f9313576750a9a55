#!/usr/bin/env bash
# qfmt export checked against a real llama.cpp: node-llama-cpp 3.21.1 (npm, pinned; its prebuilt
# CPU llama.cpp) loads every trained fixture of a family llama.cpp runs, exported at f16, q8_0,
# q4_0 and q4_k_m, and
#   - tokenizes six strings (ASCII, Unicode, digits, whitespace runs) as qfmt does, and feeds the
#     prompt (its BOS rule applied) as qfmt's `tokenize --specials` gives it;
#   - teacher-forced: at each of the 16 positions of llama.cpp's greedy continuation of the
#     prompt, qfmt's argmax (run --input, the --fast path run uses) is llama.cpp's pick at all 16
#     at f16 and at >= 12 of 16 otherwise, and the two probabilities of llama.cpp's top 3 tokens
#     differ by at most 0.01 at f16 and 0.1 otherwise;
#   - free-running: qfmt run's own greedy continuation is llama.cpp's, all 16 tokens, at f16; for
#     the quantized types the count of equal positions is printed, not required (once one
#     near-tie goes the other way the two continuations are different texts; the teacher-forced
#     count measures each step).
# gemma3-kjv's layer_types (three sliding layers, then a global one) are not llama.cpp's default
# Gemma 3 pattern (five sliding, one global): the export's attention.sliding_window_pattern (4)
# is what makes llama.cpp run them.
# node-llama-cpp is installed once into ${QFMT_NODE_LLAMA_DIR:-$HOME/.cache/qfmt/node-llama-cpp}
# (npm i, about 20 s; it needs the network the first time). Skipped, saying so, when npm or node
# is absent. Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; QFMT_INTEROP_FIXTURES (names
# separated by spaces) narrows the fixtures. Prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
D=${QFMT_TEST_DATA_DIR:?}
F=$D/fixtures
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "llamacpp_interop: npm or node not found: skipped (apt-get install npm)"
    exit 0
fi
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
    echo "llamacpp_interop: node-llama-cpp 3.21.1 needs Node.js 20 or later (this is $(node --version 2>&1)): skipped"
    exit 0
fi
if ! command -v zstd >/dev/null; then
    echo "llamacpp_interop: the zstd tool is needed to unpack the fixtures; skipped"
    exit 0
fi
nd=${QFMT_NODE_LLAMA_DIR:-$HOME/.cache/qfmt/node-llama-cpp}
if [ ! -f "$nd/node_modules/node-llama-cpp/package.json" ] ||
    ! grep -q '"version": "3.21.1"' "$nd/node_modules/node-llama-cpp/package.json"; then
    echo "llamacpp_interop: installing node-llama-cpp 3.21.1 into $nd"
    mkdir -p "$nd" && (cd "$nd" && { [ -f package.json ] || npm init -y >/dev/null; } &&
        npm i -E --no-audit --no-fund node-llama-cpp@3.21.1 >/dev/null) ||
        { echo "FAIL npm i -E node-llama-cpp@3.21.1 into $nd"; echo "0 passed, 1 failed"; exit 1; }
fi
cp "$here/lib/llamacpp_interop.mjs" "$nd/" || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$here/lib/fixtures.sh"
threads=2
prompt="And God said"
python3 -c 'import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], "w"))' "$work/strings.json" \
    "And God said" "In the beginning God created the heaven and the earth." " leading space, trailing  " \
    "numbers 12345 and 3.14159, 2024-12-03" $'lines\n\nand\ttabs   and runs' "Ünïcödé — “quotes” 日本語 😀"
pass=0 fail=0
fixtures=${QFMT_INTEROP_FIXTURES:-gpt2 llama llama3 qwen3 gemma3 phi3}
for m in $fixtures; do
    case $m in
    qwen3) src=$(unpack_fixture qwen3-kjv tokenizers/qwen3.tokenizer.json.zst) ;;
    gemma3 | phi3) src=$(unpack_fixture "$m-kjv" tokenizer.json) ;;
    *) src=$F/$m-kjv ;;
    esac
    if [ -z "$src" ] || [ ! -d "$src" ]; then echo "FAIL $m: fixture not unpacked"; fail=$((fail + 1)); continue; fi
    for t in f16 q8_0 q4_0 q4_k_m; do
        b=$work/$m.$t
        if ! "$QFMT" convert "$src" -o "$b.qfmt" --type $t --threads $threads >/dev/null 2>"$b.err" ||
            ! "$QFMT" export "$b.qfmt" -o "$b.gguf" >/dev/null 2>>"$b.err"; then
            echo "FAIL $m $t: convert/export: $(head -c 300 "$b.err")"; fail=$((fail + 1)); continue
        fi
        (cd "$nd" && node llamacpp_interop.mjs "$b.gguf" "$prompt" 16 $threads "$work/strings.json") >"$b.json" 2>"$b.err" ||
            { echo "FAIL $m $t: llama.cpp: $(tail -c 300 "$b.err")"; fail=$((fail + 1)); continue; }
        r=$(python3 - "$QFMT" "$b" "$work/strings.json" "$prompt" $t $threads <<'PY'
import json, math, struct, subprocess, sys
qfmt, b, strings, prompt, t, threads = sys.argv[1:]
model, j = b + ".qfmt", json.load(open(b + ".json"))
def q(*args):
    p = subprocess.run([qfmt, *args], capture_output=True, text=True)
    if p.returncode: raise SystemExit("FAIL qfmt %s: %s" % (args[0], p.stderr[:300]))
    return p.stdout
def ids(text, *extra): return [int(x) for x in q("tokenize", model, "--text", text, *extra).split()]
bad = []
for s, theirs in zip(json.load(open(strings)), j["tokens"]):
    if ids(s) != theirs: bad.append("tokens of %r: qfmt %s, llama.cpp %s" % (s, ids(s)[:12], theirs[:12]))
if ids(prompt, "--specials") != j["prompt_ids"]:
    bad.append("prompt fed: qfmt %s, llama.cpp %s" % (ids(prompt, "--specials"), j["prompt_ids"]))
# teacher-forced: qfmt's logits over llama.cpp's sequence
seq, n0 = j["ids"], len(j["prompt_ids"])
hdr = json.dumps({"input_ids": {"dtype": "I32", "shape": [1, len(seq)], "data_offsets": [0, 4 * len(seq)]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open(b + ".in", "wb").write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<%di" % len(seq), *seq))
q("run", model, "--input", b + ".in", "--output", b + ".out", "--fast", "--threads", threads)
raw = open(b + ".out", "rb").read()
hl = struct.unpack_from("<Q", raw)[0]
lg = json.loads(raw[8:8 + hl])["logits"]
V, off = lg["shape"][2], 8 + hl + lg["data_offsets"][0]
same, worst = 0, 0.0
for s, top in enumerate(j["top"]):
    x = struct.unpack_from("<%df" % V, raw, off + 4 * V * (n0 - 1 + s))
    mx = max(x)
    z = sum(math.exp(v - mx) for v in x)
    same += max(range(V), key=lambda i: x[i]) == seq[n0 + s]
    worst = max(worst, max(abs(math.exp(x[tok] - mx) / z - p) for tok, p in top))
gen = len(j["top"])
# free-running: qfmt run's own continuation, as qfmt's tokens of its text
out = q("run", model, "--prompt", prompt, "-n", str(gen), "--threads", threads)
mine = ids(out[len(prompt):] if out.startswith(prompt) else out)
free = sum(x == y for x, y in zip(mine, seq[n0:]))
f16 = t == "f16"
if same < (gen if f16 else min(12, gen)): bad.append("teacher-forced argmax %d/%d" % (same, gen))
if worst > (0.01 if f16 else 0.1): bad.append("probabilities differ by %.4f" % worst)
if f16 and free != gen: bad.append("free-running continuation %d/%d" % (free, gen))
print("%s tokenization equal (%d strings), teacher-forced %d/%d, free-running %d/%d, max probability difference %.4f%s"
      % ("FAIL" if bad else "ok  ", len(j["tokens"]), same, gen, free, gen, worst, ("; " + "; ".join(bad)) if bad else ""))
PY
)
        case $r in
        ok*) echo "ok   $m $t: ${r:5}"; pass=$((pass + 1)) ;;
        *) echo "FAIL $m $t: ${r#FAIL }"; fail=$((fail + 1)) ;;
        esac
    done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
