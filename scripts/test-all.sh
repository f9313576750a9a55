#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. release build (gcc, Release: CMake's -O3, as a user's build) + ctest
#   2. clang release build (Release, every target; built, not run)
#   3. ASan + UBSan build (gcc, Debug) + ctest
#   4. short libFuzzer run of every fuzz target (clang; QFMT_FUZZ_SECONDS in all, default 25
#      per target)
#   5. install smoke test: pkg-config and find_package(qfmt) consumers of libqfmt and
#      libqfmt_model (one prints a converted fixture's logits), exported symbols
# Every configure passes -DQFMT_WERROR=ON: warnings fail the tests, while a user's build (where
# QFMT_WERROR is OFF) still succeeds with a compiler that warns more.
# Ends with "test-all: N passed, 0 failed"; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

passed=0
stage=setup
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qfmt-test-all.XXXXXX")
finish() {
    local rc=$?
    rm -rf "$scratch"
    if ((rc != 0)); then
        echo "test-all: stage '$stage' failed (exit $rc)" >&2
        echo "test-all: $passed passed, 1 failed"
    fi
    exit "$rc"
}
trap finish EXIT

begin() { stage=$1; echo; echo "==== test-all: $stage ===="; }
pass() { passed=$((passed + 1)); echo "==== test-all: $stage passed ===="; }

jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/install-deps.sh

# ---- 1. release ---------------------------------------------------------------------------
begin release
CC=gcc cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DQFMT_WERROR=ON \
    -DQFMT_SANITIZE=OFF -DQFMT_FUZZ=OFF -DQFMT_BUILD_TESTS=ON -DQFMT_BUILD_TOOLS=ON \
    -DQFMT_BUILD_EXAMPLES=ON -DQFMT_BUILD_BENCH=ON
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j2
pass

# ---- 2. clang release: clang's warnings at -O3 in every target (about 15 s on 2 cores) -------
begin clang-release
if ! command -v clang >/dev/null 2>&1; then
    echo "test-all: clang not found, clang release build skipped"
else
    CC=clang cmake -S . -B build/clang-release -DCMAKE_BUILD_TYPE=Release -DQFMT_WERROR=ON \
        -DQFMT_SANITIZE=OFF -DQFMT_FUZZ=OFF -DQFMT_BUILD_TESTS=ON -DQFMT_BUILD_TOOLS=ON \
        -DQFMT_BUILD_EXAMPLES=ON -DQFMT_BUILD_BENCH=ON
    cmake --build build/clang-release -j "$jobs"
    pass
fi

# ---- 3. ASan + UBSan ------------------------------------------------------------------------
begin sanitizers
CC=gcc cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DQFMT_WERROR=ON \
    -DQFMT_SANITIZE=ON -DQFMT_FUZZ=OFF -DQFMT_BUILD_TESTS=ON -DQFMT_BUILD_TOOLS=ON \
    -DQFMT_BUILD_EXAMPLES=ON -DQFMT_BUILD_BENCH=OFF
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -j2
pass

# ---- 4. libFuzzer ---------------------------------------------------------------------------
begin fuzz
fuzz_sources=(fuzz/fuzz_*.c)
if ! command -v clang >/dev/null 2>&1; then
    echo "test-all: clang not found, fuzz stage skipped"
elif [[ ! -e "${fuzz_sources[0]}" ]]; then
    echo "test-all: no fuzz/fuzz_*.c yet, fuzz stage skipped"
else
    CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQFMT_WERROR=ON \
        -DQFMT_FUZZ=ON -DQFMT_SANITIZE=OFF -DQFMT_BUILD_TESTS=OFF -DQFMT_BUILD_TOOLS=OFF \
        -DQFMT_BUILD_EXAMPLES=OFF -DQFMT_BUILD_BENCH=OFF
    cmake --build build/fuzz -j "$jobs"
    total=${QFMT_FUZZ_SECONDS:-$((25 * ${#fuzz_sources[@]}))}
    per=$((total / ${#fuzz_sources[@]}))
    ((per >= 1)) || per=1
    for src in "${fuzz_sources[@]}"; do
        target=$(basename "$src" .c)          # fuzz_reader
        name=${target#fuzz_}                  # reader
        corpus="$scratch/corpus-$name"        # a copy: the run must not modify the repo
        mkdir -p "$corpus"
        if [[ -d "fuzz/corpus/$name" ]]; then
            cp -R "fuzz/corpus/$name/." "$corpus/"
        fi
        artifacts="$root/build/fuzz/artifacts/$name"
        mkdir -p "$artifacts"
        log="$root/build/fuzz/$target.log"
        args=(-max_total_time="$per" -timeout=25 -print_final_stats=1
              -artifact_prefix="$artifacts/")
        if [[ -f "fuzz/dict/$name.dict" ]]; then
            args+=(-dict="fuzz/dict/$name.dict")
        fi
        echo "test-all: $target for ${per}s (log: $log)"
        if ! "build/fuzz/fuzz/$target" "${args[@]}" "$corpus" >"$log" 2>&1; then
            # the sanitizer report (without the shadow-byte legend), then libFuzzer's last words
            sed -n '/ERROR: \|runtime error: \|deadly signal/,/^SUMMARY: /p' "$log" | head -n 80 >&2
            tail -n 12 "$log" >&2
            echo "test-all: $target failed; the input that broke it is in $artifacts/" >&2
            echo "test-all: reproduce with: build/fuzz/fuzz/$target $artifacts/<crash-file>" >&2
            exit 1
        fi
        grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" || true
    done
    pass
fi

# ---- 5. install smoke test -------------------------------------------------------------------
begin install
prefix="$scratch/prefix"
cmake --install build/release --prefix "$prefix"

major=$(sed -n 's/^#define QFMT_VERSION_MAJOR \([0-9]*\).*/\1/p' libqfmt/include/qfmt.h)
libdir=
for lib in qfmt qfmt_model; do
    so=$(find "$prefix" -name "lib$lib.so.*.*" -type f | head -n 1)
    [[ -n "$so" ]] || { echo "test-all: lib$lib.so.X.Y.Z not installed" >&2; exit 1; }
    libdir=$(dirname "$so")
    [[ -f "$libdir/lib$lib.a" ]] || { echo "test-all: lib$lib.a not installed" >&2; exit 1; }
    soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [[ "$soname" == "lib$lib.so.$major" ]] || {
        echo "test-all: SONAME is '$soname', expected lib$lib.so.$major" >&2; exit 1; }
    # Only the public API is exported, and the static library defines no global symbol
    # outside qfmt_* either (internal ones are qfmt__*).
    exported=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }')
    foreign=$(grep -v '^qfmt_' <<<"$exported" || true)
    sfor=$(nm --defined-only "$libdir/lib$lib.a" | awk 'NF >= 3 && $2 ~ /[A-Z]/ { print $3 }' | grep -v '^qfmt_' || true)
    if [[ -n "$foreign$sfor" ]]; then
        echo "test-all: lib$lib defines global symbols outside qfmt_*:" $foreign $sfor >&2
        exit 1
    fi
    echo "test-all: lib$lib.so ($soname) exports $(wc -l <<<"$exported") symbols, all qfmt_*; lib$lib.a: all qfmt_*"
    [[ -f "$libdir/pkgconfig/${lib/_/-}.pc" ]] || { echo "test-all: ${lib/_/-}.pc not installed" >&2; exit 1; }
done
for h in qfmt.h qfmt_model.h; do
    [[ -f "$prefix/include/$h" ]] || { echo "test-all: $h not installed" >&2; exit 1; }
done
extra_headers=$(find "$prefix/include" -type f ! -name qfmt.h ! -name qfmt_model.h)
[[ -z "$extra_headers" ]] || { echo "test-all: unexpected headers installed: $extra_headers" >&2; exit 1; }
if compgen -G "tools/*.c" >/dev/null; then
    [[ -x "$prefix/bin/qfmt" ]] || { echo "test-all: qfmt CLI not installed" >&2; exit 1; }
fi
# No file outside libqfmt/ reaches libqfmt's private headers through the model library.
if grep -rln '#include "internal/' libqfmt_model; then
    echo "test-all: libqfmt_model includes libqfmt's private headers" >&2; exit 1
fi

smoke="$scratch/smoke"
mkdir -p "$smoke"
cat >"$smoke/smoke.c" <<'C'
#include <qfmt.h>
#include <stdio.h>

int main(void) {
    unsigned v = qfmt_version_number();
    if (v != QFMT_VERSION_NUMBER) {
        fprintf(stderr, "smoke: header says %u, library says %u\n", (unsigned)QFMT_VERSION_NUMBER, v);
        return 1;
    }
    printf("smoke: qfmt %u ok\n", v);
    return 0;
}
C

# pkg-config consumer (shared library)
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists --print-errors qfmt
pkg-config --static --libs qfmt | grep -q -- '-lzstd' || {
    echo "test-all: 'pkg-config --static --libs qfmt' lacks -lzstd" >&2; exit 1; }
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror "$smoke/smoke.c" -o "$smoke/smoke_pc" $(pkg-config --cflags --libs qfmt)
LD_LIBRARY_PATH="$libdir" "$smoke/smoke_pc"

# find_package(qfmt) consumer (shared and static)
cat >"$smoke/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(qfmt_smoke LANGUAGES C)
find_package(qfmt 0.1 REQUIRED)
add_executable(smoke_shared smoke.c)
target_link_libraries(smoke_shared PRIVATE qfmt::qfmt)
add_executable(smoke_static smoke.c)
target_link_libraries(smoke_static PRIVATE qfmt::qfmt_static)
CM
CC=gcc cmake -S "$smoke" -B "$smoke/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$smoke/build"
"$smoke/build/smoke_shared"
"$smoke/build/smoke_static"
if readelf -d "$smoke/build/smoke_static" | grep -q 'libqfmt\.so'; then
    echo "test-all: smoke_static is linked against libqfmt.so" >&2
    exit 1
fi

# An outside program on libqfmt_model, built with pkg-config alone: loads a converted fixture
# and prints its logits, which must match the installed CLI's own run.
cat >"$smoke/logits.c" <<'C'
#include <qfmt_model.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: logits MODEL.qfmt ID...\n"); return 2; }
    qfmt_reader *r = NULL;
    qfmt_model *m = NULL;
    qfmt_error e;
    char line[1024];
    if (qfmt_reader_open(&r, argv[1], NULL, &e) != QFMT_OK) {
        fprintf(stderr, "logits: %s\n", qfmt_error_format(&e, line, sizeof line));
        return 1;
    }
    if (qfmt_model_load(&m, r, &e) != QFMT_OK) {
        fprintf(stderr, "logits: %s\n", qfmt_error_format(&e, line, sizeof line));
        return 1;
    }
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    size_t n = (size_t)(argc - 2);
    int32_t *ids = malloc(n * sizeof *ids);
    float *logits = malloc(n * h->vocab * sizeof *logits);
    if (!ids || !logits) return 1;
    for (size_t i = 0; i < n; i++) ids[i] = atoi(argv[2 + i]);
    qfmt_run_opts o = QFMT_RUN_OPTS_INIT;
    if (qfmt_model_forward(m, ids, n, logits, NULL, &o, &e) != QFMT_OK) {
        fprintf(stderr, "logits: %s\n", qfmt_error_format(&e, line, sizeof line));
        return 1;
    }
    const float *last = logits + (n - 1) * h->vocab;
    size_t best = 0;
    for (size_t v = 1; v < h->vocab; v++) if (last[v] > last[best]) best = v;
    printf("vocab %llu, last position: logit[0] %.6f, argmax %zu (%.6f)\n",
           (unsigned long long)h->vocab, last[0], best, last[best]);
    free(ids), free(logits);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    return 0;
}
C
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror "$smoke/logits.c" -o "$smoke/logits_pc" $(pkg-config --cflags --libs qfmt-model)
LD_LIBRARY_PATH="$libdir" "$prefix/bin/qfmt" convert tests/data/fixtures/llama-kjv -o "$smoke/llama.qfmt" --type q8_0 >/dev/null
LD_LIBRARY_PATH="$libdir" "$smoke/logits_pc" "$smoke/llama.qfmt" 1 2 3 4 5 | tee "$smoke/logits.out"
mkdir -p "$smoke/model"
cp "$smoke/logits.c" "$smoke/model/"
cat >"$smoke/model/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(qfmt_model_smoke LANGUAGES C)
find_package(qfmt 0.1 REQUIRED)
add_executable(logits_shared logits.c)
target_link_libraries(logits_shared PRIVATE qfmt::qfmt_model)
add_executable(logits_static logits.c)
target_link_libraries(logits_static PRIVATE qfmt::qfmt_model_static)
CM
CC=gcc cmake -S "$smoke/model" -B "$smoke/model/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$smoke/model/build" >/dev/null
for v in shared static; do
    "$smoke/model/build/logits_$v" "$smoke/llama.qfmt" 1 2 3 4 5 | cmp - "$smoke/logits.out" || {
        echo "test-all: logits_$v (find_package) differs from the pkg-config build" >&2; exit 1; }
done
if readelf -d "$smoke/model/build/logits_static" | grep -q 'libqfmt'; then
    echo "test-all: logits_static is linked against a shared qfmt library" >&2; exit 1
fi
grep -q '^vocab [0-9]*, last position: logit\[0\] -\?[0-9.]*, argmax [0-9]* ' "$smoke/logits.out" || {
    echo "test-all: the libqfmt_model consumer printed no logits" >&2; exit 1; }
pass

echo
echo "test-all: $passed passed, 0 failed"
