#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. release build (gcc, Release: CMake's -O3, as a user's build) + ctest
#   2. clang release build (Release, every target; built, not run)
#   3. ASan + UBSan build (gcc, Debug) + ctest
#   4. short libFuzzer run of every fuzz target (clang; QFMT_FUZZ_SECONDS in all, default 25
#      per target)
#   5. install smoke test: pkg-config and find_package(qfmt) consumers, exported symbols
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

so=$(find "$prefix" -name 'libqfmt.so.*.*' -type f | head -n 1)
[[ -n "$so" ]] || { echo "test-all: libqfmt.so.X.Y.Z not installed" >&2; exit 1; }
libdir=$(dirname "$so")
[[ -f "$libdir/libqfmt.a" ]] || { echo "test-all: libqfmt.a not installed" >&2; exit 1; }
[[ -f "$prefix/include/qfmt.h" ]] || { echo "test-all: qfmt.h not installed" >&2; exit 1; }
extra_headers=$(find "$prefix/include" -type f ! -name qfmt.h)
[[ -z "$extra_headers" ]] || { echo "test-all: unexpected headers installed: $extra_headers" >&2; exit 1; }
if compgen -G "tools/*.c" >/dev/null; then
    [[ -x "$prefix/bin/qfmt" ]] || { echo "test-all: qfmt CLI not installed" >&2; exit 1; }
fi

soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
major=$(sed -n 's/^#define QFMT_VERSION_MAJOR \([0-9]*\).*/\1/p' libqfmt/include/qfmt.h)
[[ "$soname" == "libqfmt.so.$major" ]] || {
    echo "test-all: SONAME is '$soname', expected libqfmt.so.$major" >&2; exit 1; }

# Only the public API is exported.
exported=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }')
foreign=$(grep -v '^qfmt_' <<<"$exported" || true)
if [[ -n "$foreign" ]]; then
    echo "test-all: libqfmt.so exports symbols outside qfmt_*:" >&2
    echo "$foreign" >&2
    exit 1
fi
echo "test-all: libqfmt.so ($soname) exports $(wc -l <<<"$exported") symbols, all qfmt_*"

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
pass

echo
echo "test-all: $passed passed, 0 failed"
