#!/usr/bin/env bash
# Instructions per pipelined request through the server's batch path
# (karma-hotpath under callgrind): for each op and WAL setting, two runs
# that differ only in the request count; the difference of their counts,
# divided by the difference of requests, is the cost of one request with
# every fixed cost (start, setup, exit) cancelled. Prints the whole
# program's and run_batch's (inclusive: parse, execute, render, metrics)
# instructions per request, and the same plus the durability wait.
# Deterministic: callgrind counts instructions, not time, so other builds
# running on the machine do not change the numbers.
#
#   cargo build --release -p karma-benches --bin karma-hotpath
#   benches/hotpath-callgrind.sh                 # every op, WAL off and never
#   OPS="increment" WALS="off" benches/hotpath-callgrind.sh
#
# Environment: BIN (default target/release/karma-hotpath), PIPELINE (16),
# N1 / N2 (10000 / 50000 requests), OPS, WALS, OUT (callgrind files'
# directory, default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release/karma-hotpath}
pipeline=${PIPELINE:-16}
n1=${N1:-10000}
n2=${N2:-50000}
ops=${OPS:-"increment decrement sum consume"}
wals=${WALS:-"off never"}
out=${OUT:-$(mktemp -d)}
command -v valgrind >/dev/null || { echo "missing valgrind" >&2; exit 2; }
[[ -x $bin ]] || { echo "missing $bin: cargo build --release -p karma-benches --bin karma-hotpath" >&2; exit 2; }

# inclusive FILE FUNCTION: the inclusive instruction count of FUNCTION
inclusive() {
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk -v f="$2" '!found && index($0, f) { gsub(",", "", $1); print $1; found = 1 }'
}

echo "| op | WAL | instructions/request (program) | run_batch | run_batch + wait |"
echo "| --- | --- | ---: | ---: | ---: |"
for wal in $wals; do
    for op in $ops; do
        declare -A total=() batch=() wait=()
        for n in $n1 $n2; do
            file=$out/hotpath.$op.$wal.$n
            valgrind --tool=callgrind --callgrind-out-file="$file" \
                "$bin" --requests "$n" --pipeline "$pipeline" --op "$op" --wal "$wal" >"$file.log" 2>&1 ||
                { echo "karma-hotpath failed for $op, WAL $wal: see $file.log" >&2; exit 1; }
            total[$n]=$(inclusive "$file" "PROGRAM TOTALS")
            batch[$n]=$(inclusive "$file" "karma_server::connection::run_batch [")
            wait[$n]=$(inclusive "$file" "karma_engine::engine::Engine::wait_durable [")
        done
        per() { echo "scale=0; ($2 - $1) / ($n2 - $n1)" | bc; }
        w1=${wait[$n1]:-0} w2=${wait[$n2]:-0}
        echo "| $op | $wal | $(per "${total[$n1]}" "${total[$n2]}") | $(per "${batch[$n1]}" "${batch[$n2]}") | $(per "$((batch[$n1] + w1))" "$((batch[$n2] + w2))") |"
        unset total batch wait
    done
done
echo "(callgrind files in $out)"
