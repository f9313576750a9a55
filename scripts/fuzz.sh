#!/usr/bin/env bash
# Runs one libFuzzer target for a given time, into a scratch copy of its seed corpus, so the
# repository only receives the inputs you choose to keep (see fuzz/README.md).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#       TARGET   reader, safetensors, tokenizer, config, quant (or fuzz_<name>)
#       SECONDS  wall time (-max_total_time)
#
# Environment:
#   QFMT_FUZZ_BUILD   build directory (default build/fuzz; configured and built with clang
#                     -DQFMT_FUZZ=ON when it holds no such target yet)
#   QFMT_FUZZ_WORK    scratch directory (default /tmp/qfmt-fuzz): corpus/<name>/ (grown),
#                     artifacts/<name>/ (crashes, timeouts, OOMs), logs/<name>.log
#   QFMT_FUZZ_NICE    nice level of the fuzzer (default 19: it only takes idle CPU)
#   QFMT_FUZZ_JOBS    parallel fuzzer processes (default 1; -jobs/-workers)
#
# Ends with libFuzzer's final statistics and the executions of the whole run. Exit status: 0 if
# the run found nothing, 1 if it left a crashing input in the artifact directory, 2 on usage
# error. (A timeout that does not reproduce, from CPU starvation, is logged and the run goes on.)
# Afterwards, minimize what grew and review it before copying it into fuzz/corpus/<name>/:
#   build/fuzz/fuzz/fuzz_<name> -merge=1 /tmp/qfmt-min/<name> fuzz/corpus/<name> /tmp/qfmt-fuzz/corpus/<name>
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

if (($# < 2)) || [[ ! $2 =~ ^[0-9]+$ ]]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
name=${1#fuzz_}
seconds=$2
shift 2
target=fuzz_$name
if [[ ! -f fuzz/$target.c ]]; then
    echo "fuzz.sh: no fuzz/$target.c (targets: $(cd fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//' | tr '\n' ' '))" >&2
    exit 2
fi

build=${QFMT_FUZZ_BUILD:-build/fuzz}
work=${QFMT_FUZZ_WORK:-/tmp/qfmt-fuzz}
nice_level=${QFMT_FUZZ_NICE:-19}
jobs=${QFMT_FUZZ_JOBS:-1}

if [[ ! -x $build/fuzz/$target ]]; then
    CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQFMT_FUZZ=ON \
        -DQFMT_SANITIZE=OFF -DQFMT_BUILD_TESTS=OFF -DQFMT_BUILD_TOOLS=OFF \
        -DQFMT_BUILD_EXAMPLES=OFF -DQFMT_BUILD_BENCH=OFF >/dev/null
    nice -n 10 cmake --build "$build" -j2 --target "$target"
fi

corpus=$work/corpus/$name
artifacts=$work/artifacts/$name
log=$work/logs/$name.log
mkdir -p "$corpus" "$artifacts" "$work/logs"
if [[ -d fuzz/corpus/$name ]]; then
    cp -R "fuzz/corpus/$name/." "$corpus/"
fi

args=(-timeout=25 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$artifacts/")
if [[ -f fuzz/dict/$name.dict ]]; then
    args+=(-dict="$root/fuzz/dict/$name.dict")
fi
if ((jobs > 1)); then
    args+=(-jobs="$jobs" -workers="$jobs")
fi

# libFuzzer's -timeout is wall time: at nice 19 on a busy machine a unit can be starved past it
# (or the machine paused). So a timeout whose input then runs within 5 s alone is logged
# as spurious (its input kept in $artifacts/spurious/) and fuzzing resumes for the time left;
# any other crash, or a timeout that reproduces, ends the run.
echo "fuzz.sh: $target for ${seconds}s at nice $nice_level; corpus $corpus, log $log"
: >"$log"
deadline=$((SECONDS + seconds))
execs=0 segments=0 spurious=0 rc=0
while (( (left = deadline - SECONDS) > 0 )); do
    segments=$((segments + 1))
    seg_log=$log.$segments
    rc=0
    (cd "$work/logs" && nice -n "$nice_level" "$root/$build/fuzz/$target" -max_total_time="$left" \
        "${args[@]}" "$@" "$corpus") >"$seg_log" 2>&1 || rc=$?
    cat "$seg_log" >>"$log"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$seg_log" | tail -n 1)
    execs=$((execs + ${n:-0}))
    ((rc != 0)) || break
    unit=$(sed -n "s|.*Test unit written to \(.*timeout-[0-9a-f]*\)\$|\1|p" "$seg_log" | tail -n 1)
    if [[ -n $unit && -f $unit ]] && \
        (cd "$work/logs" && timeout 60 "$root/$build/fuzz/$target" -timeout=5 "$unit") >/dev/null 2>&1; then
        mkdir -p "$artifacts/spurious"
        mv "$unit" "$artifacts/spurious/"
        spurious=$((spurious + 1))
        echo "fuzz.sh: segment $segments: timeout not reproduced alone (CPU starvation); resuming"
        rc=0
        continue
    fi
    break
done
grep -E '^stat::' "$log.$segments" || true
echo "fuzz.sh: $target: $execs executions in $segments segment(s), $spurious spurious timeout(s), $seconds s"
if ((rc != 0)); then
    sed -n '/ERROR: \|runtime error: \|check failed\|deadly signal/,/^SUMMARY: /p' "$log.$segments" | head -n 60 >&2
    echo "fuzz.sh: $target failed (exit $rc); inputs in $artifacts/; log $log" >&2
    exit 1
fi
echo "fuzz.sh: $target: no finding; corpus now $(find "$corpus" -type f | wc -l) files"
