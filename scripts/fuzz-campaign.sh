#!/usr/bin/env bash
# A libFuzzer campaign (not part of the test run): JOBS independent processes per target for
# SECONDS, all adding to a copy of fuzz/corpus/<name>/ (with fuzz/dict/<name>.dict when there
# is one). Crashes land in OUT/<name>/crashes/, logs in OUT/<name>.<k>.log; the summary sums
# each process's stat::number_of_executed_units.
#
#   scripts/fuzz-campaign.sh FUZZ_BIN_DIR OUT SECONDS JOBS TARGET...
#
# FUZZ_BIN_DIR holds the fuzz_<name> binaries of a -DQFMT_FUZZ=ON build (clang); when it also
# has lib/ (the binaries' shared libraries and ld-linux, copied from the build machine), the
# binaries run through that loader, so they run on a machine without those libraries.
# Afterwards, minimize into the committed corpus with
#   FUZZ_BIN_DIR/fuzz_<name> -merge=1 fuzz/corpus/<name> OUT/<name>/corpus
set -euo pipefail
bin=$(cd "$1" && pwd) out=$2 secs=$3 jobs=$4
shift 4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
launch=()
[[ -x "$bin/lib/ld-linux-x86-64.so.2" ]] && launch=("$bin/lib/ld-linux-x86-64.so.2" --library-path "$bin/lib")
pids=()
for t in "$@"; do
    name=${t#fuzz_}
    mkdir -p "$out/$name/corpus" "$out/$name/crashes"
    cp -n "$here/fuzz/corpus/$name/"* "$out/$name/corpus/" 2>/dev/null || true
    dict=()
    [[ -f "$here/fuzz/dict/$name.dict" ]] && dict=(-dict="$here/fuzz/dict/$name.dict")
    for ((k = 0; k < jobs; k++)); do
        (cd "$out/$name" && exec "${launch[@]}" "$bin/fuzz_$name" -max_total_time="$secs" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -seed=$((k + 1)) -artifact_prefix=crashes/ \
            "${dict[@]}" corpus >"$out/$name.$k.log" 2>&1) &
        pids+=($!)
    done
done
for p in "${pids[@]}"; do wait "$p" || true; done
for t in "$@"; do
    name=${t#fuzz_}
    execs=$(cat "$out/$name".*.log | awk '/^stat::number_of_executed_units:/ { s += $2 } END { print s + 0 }')
    echo "$name: $jobs processes x $secs s, ${execs:-0} executions," \
        "crashes: $(ls "$out/$name/crashes" | wc -l), corpus: $(ls "$out/$name/corpus" | wc -l)"
done
