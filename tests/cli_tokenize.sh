#!/usr/bin/env bash
# qfmt tokenize: ids as Hugging Face tokenizers gives them (tests/data/fixtures/tokenizers/
# reference.json.zst) from each of the three kinds of SRC (tokenizer.json, model directory,
# .qfmt file), --specials, --file taking bytes exactly, --json, --decode; convert's warning
# and --strict for a tokenizer.json qfmt cannot reproduce; bad input fails with exit 1 or 2.
# Run by CTest with QFMT_CLI_PATH and QFMT_TEST_DATA_DIR; prints "N passed, M failed".
set -u
QFMT=${QFMT_CLI_PATH:?QFMT_CLI_PATH must name the qfmt binary}
F=${QFMT_TEST_DATA_DIR:?}/fixtures
T=$F/tokenizers
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
expect() { # expect CODE NAME CMD...
    local want=$1 name=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    [ $rc = "$want" ] && ok "$name (exit $rc)" || bad "$name: exit $rc, want $want: $(head -c 300 "$work/err")"
}

for n in llama3 qwen3 llama2 wordpiece-kjv; do
    zstd -q -dc "$T/$n.tokenizer.json.zst" >"$work/$n.json"
done
zstd -q -dc "$T/reference.json.zst" >"$work/reference.json"

# one case per tokenizer through every output form
ref() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["tokenizers"][sys.argv[2]]["cases"][int(sys.argv[3])]; v=r[sys.argv[4]]; print(" ".join(map(str,v)) if isinstance(v,list) else v, end="")' "$work/reference.json" "$@"; }
text() { ref "$1" "$2" text; }
for n in llama3 qwen3 llama2 wordpiece-kjv; do
    for c in 0 7 10 18 24 36; do
        want=$(ref $n $c ids) got=$("$QFMT" tokenize "$work/$n.json" --text "$(text $n $c)" 2>&1)
        [ "$got" = "$want" ] && ok "$n case $c: ids" || bad "$n case $c: ids '$got', want '$want'"
        want=$(ref $n $c ids_with_specials) got=$("$QFMT" tokenize "$work/$n.json" --specials --text "$(text $n $c)" 2>&1)
        [ "$got" = "$want" ] && ok "$n case $c: --specials" || bad "$n case $c: --specials '$got', want '$want'"
    done
    want=$(ref $n 10 decoded) got=$("$QFMT" tokenize "$work/$n.json" --skip-specials --decode "$(ref $n 10 ids)" 2>&1)
    [ "$got" = "$want" ] && ok "$n: --decode" || bad "$n: --decode '$got', want '$want'"
done

# --file takes the bytes exactly: a trailing newline is part of the text
printf 'tabs\tand\nnewlines\r\n' >"$work/t.txt"
want=$(ref llama3 5 ids) got=$("$QFMT" tokenize "$work/llama3.json" --file "$work/t.txt")
[ "$got" = "$want" ] && ok "--file keeps every byte" || bad "--file: '$got', want '$want'"

# --json: ids and the token strings
"$QFMT" tokenize "$work/llama3.json" --text "Hello world" --json >"$work/j" 2>"$work/err" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ids"]==[9906,1917] and d["tokens"]==["Hello","\u0120world"], d' "$work/j" &&
    ok "--json ids and tokens" || bad "--json: $(cat "$work/j" "$work/err")"
"$QFMT" tokenize "$work/llama3.json" --decode "9906,1917" --json >"$work/j" &&
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))=={"text":"Hello world"}' "$work/j" &&
    ok "--decode --json" || bad "--decode --json: $(cat "$work/j")"

# a model directory and a .qfmt file: the tokenizer they hold
mkdir "$work/dir" && cp "$work/qwen3.json" "$work/dir/tokenizer.json"
want=$(ref qwen3 13 ids)
[ "$("$QFMT" tokenize "$work/dir" --text "$(text qwen3 13)")" = "$want" ] && ok "model directory" || bad "model directory"
if "$QFMT" convert "$F/gpt2-kjv" -o "$work/g.qfmt" >/dev/null 2>"$work/err"; then
    got=$("$QFMT" tokenize "$work/g.qfmt" --text "In the beginning God created the heaven and the earth." 2>&1)
    want=$("$QFMT" tokenize "$F/tokenizer.json" --text "In the beginning God created the heaven and the earth." 2>&1)
    [ -n "$got" ] && [ "$got" = "$want" ] && ok ".qfmt: the embedded tokenizer" || bad ".qfmt: '$got' vs '$want'"
else
    bad "convert gpt2: $(head -c 300 "$work/err")"
fi

# convert warns about a tokenizer.json it cannot reproduce, or fails with --strict
mkdir "$work/m" && cp "$F/gpt2-kjv/config.json" "$F/gpt2-kjv/model.safetensors" "$work/m/"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["normalizer"]={"type":"Precompiled","precompiled_charsmap":""}; json.dump(d,open(sys.argv[2],"w"))' "$F/tokenizer.json" "$work/m/tokenizer.json"
expect 0 "convert: unsupported tokenizer is a warning" "$QFMT" convert "$work/m" -o "$work/m.qfmt"
grep -q "warning:.*Precompiled" "$work/err" && ok "the warning names the component" || bad "warning: $(cat "$work/err")"
expect 1 "convert --strict: unsupported tokenizer is an error" "$QFMT" convert "$work/m" -o "$work/m2.qfmt" --strict
[ ! -e "$work/m2.qfmt" ] && ok "--strict leaves no file" || bad "--strict left a file"
expect 1 "tokenize: an unsupported tokenizer" "$QFMT" tokenize "$work/m.qfmt" --text x
grep -q "Precompiled" "$work/err" && ok "tokenize names the component" || bad "tokenize: $(cat "$work/err")"

# bad input
expect 2 "no text" "$QFMT" tokenize "$work/llama3.json"
expect 2 "two inputs" "$QFMT" tokenize "$work/llama3.json" --text a --file "$work/t.txt"
expect 2 "unknown option" "$QFMT" tokenize "$work/llama3.json" --text a --bogus
expect 0 "--help" "$QFMT" tokenize --help
expect 1 "missing tokenizer" "$QFMT" tokenize "$work/nope.json" --text a
expect 1 "not JSON" "$QFMT" tokenize "$work/t.txt" --text a
expect 1 "--decode: id out of range" "$QFMT" tokenize "$work/llama3.json" --decode "999999999"
expect 1 "--decode: not a number" "$QFMT" tokenize "$work/llama3.json" --decode "1,x"
mkfifo "$work/fifo"
expect 1 "--file: a FIFO is refused without blocking" timeout 10 "$QFMT" tokenize "$work/llama3.json" --file "$work/fifo"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
