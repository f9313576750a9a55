#!/usr/bin/env bash
# Installs what is missing, builds build/release, writes a sample qfmt file with
# examples/write_sample, then dumps and verifies it with the qfmt CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh

build=build/release
sample=build/sample.qfmt
write_sample="$build/examples/write_sample"
cli="$build/tools/qfmt"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DQFMT_BUILD_TOOLS=ON -DQFMT_BUILD_EXAMPLES=ON
# Build only what the sample job needs (tests and benchmarks are built by test-all.sh).
targets=()
[[ -f examples/write_sample.c ]] && targets+=(write_sample)
compgen -G "tools/*.c" >/dev/null && targets+=(qfmt_cli)
if ((${#targets[@]} > 0)); then
    cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
fi

fail=0
if [[ ! -x "$write_sample" ]]; then
    echo "run-sample: $write_sample does not exist (examples/write_sample.c not written yet?)" >&2
    fail=1
fi
if [[ ! -x "$cli" ]]; then
    echo "run-sample: $cli does not exist (no tools/*.c yet?)" >&2
    fail=1
fi
((fail == 0)) || exit 1

rm -f "$sample"
echo "run-sample: $write_sample $sample"
"$write_sample" "$sample"
echo "run-sample: qfmt dump $sample"
"$cli" dump "$sample"
echo "run-sample: qfmt verify $sample"
"$cli" verify "$sample"
echo "run-sample: ok, $sample written, dumped and verified"
