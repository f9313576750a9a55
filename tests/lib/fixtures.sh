# Sourced by the CLI test scripts: the zstd-packed fixtures (tests/data/fixtures/ORIGIN.md).
# unpack_fixture NAME TOKENIZER: fixtures/NAME (config.json, expected.json, model and reference
# safetensors as .zst) unpacked into $work/NAME, its tokenizer.json from fixtures/TOKENIZER
# (unpacked when it ends in .zst). Needs $F (the fixtures folder), $work and the zstd tool;
# prints the directory. Returns 1 without zstd.
unpack_fixture() {
    local name=$1 tok=$2 d="$work/$1" f
    command -v zstd >/dev/null || return 1
    if [ ! -d "$d" ]; then
        mkdir -p "$d" || return 1
        cp "$F/$name/config.json" "$d/" || return 1
        [ -f "$F/$name/expected.json" ] && cp "$F/$name/expected.json" "$d/"
        for f in model reference; do
            zstd -q -d "$F/$name/$f.safetensors.zst" -o "$d/$f.safetensors" || return 1
        done
        case "$tok" in
        *.zst) zstd -q -d "$F/$tok" -o "$d/tokenizer.json" || return 1 ;;
        *) cp "$F/$tok" "$d/tokenizer.json" || return 1 ;;
        esac
    fi
    echo "$d"
}

# stored_type DIR: config.json's dtype (or torch_dtype) as a qfmt convert --type name.
stored_type() {
    python3 -c 'import json,sys
c=json.load(open(sys.argv[1]+"/config.json"))
print({"float32":"f32","bfloat16":"bf16","float16":"f16"}[c.get("dtype") or c.get("torch_dtype")])' "$1"
}
