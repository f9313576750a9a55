#!/usr/bin/env bash
# The main job on the bundled sample model: installs what is missing, builds build/release,
# converts tests/data/fixtures/llama-kjv (a small LLaMA checkpoint in Hugging Face layout,
# see tests/data/fixtures/ORIGIN.md) to q4_0, then dumps and verifies the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh

build=build/release
model=tests/data/fixtures/llama-kjv
out=build/llama-kjv-q4_0.qfmt
cli="$build/tools/qfmt"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target qfmt_cli

echo "run-sample: qfmt convert $model -o $out --type q4_0"
"$cli" convert "$model" -o "$out" --type q4_0
echo "run-sample: qfmt dump $out --tensors"
"$cli" dump "$out" --tensors
echo "run-sample: qfmt verify $out"
"$cli" verify "$out"
echo "run-sample: ok, $model converted to q4_0, dumped and verified"
