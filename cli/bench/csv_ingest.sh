#!/usr/bin/env bash
# CSV ingest throughput: `karma ingest` against redis-cli --pipe loading the
# same rows as HINCRBY commands, side by side, server on CPU 0 and loader on
# CPU 1. Prints one line per run: rows/s (wall, whole command) and server CPU
# per row (utime+stime of the server process during the run).
#
#   cli/bench/csv_ingest.sh [ROWS] [ROUNDS]     # defaults: 1000000 rows, 2 rounds
#
# Needs target/release/karma (cargo build --release -p karma-server),
# redis-server and redis-cli, taskset, python3.
set -euo pipefail

rows="${1:-1000000}"
rounds="${2:-2}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$repo/target/release/karma"
work="$(mktemp -d)"
tck="$(getconf CLK_TCK)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# rows: key = i % 100000, ten days, value 1..9; every (key, day) once.
python3 - "$rows" "$work/rows.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("key,bucket,value\n")
    for i in range(n):
        f.write(f"{i % 100000},2026-01-{i // 100000 % 28 + 1:02d},{i % 9 + 1}\n")
PY
start=$(date +%s.%N)
awk -F, 'NR > 1 { printf "HINCRBY u:%s %s %s\r\n", $1, $2, $3 }' "$work/rows.csv" > "$work/redis.txt"
echo "csv -> redis commands (awk): $(echo "$(date +%s.%N) - $start" | bc) s, not counted below"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
now() { date +%s.%N; }
report() { # name t0 t1 ticks0 ticks1
    awk -v n="$1" -v t0="$2" -v t1="$3" -v c0="$4" -v c1="$5" -v rows="$rows" -v tck="$tck" 'BEGIN {
        s = t1 - t0; printf "%-44s %8.2f s %10.0f rows/s  server CPU %6.2f us/row\n", n, s, rows / s, (c1 - c0) / tck * 1e6 / rows }'
}
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

karma_run() { # name chunk_items server-flags...
    local name="$1" chunk="$2"; shift 2
    rm -rf "$work/data"; mkdir "$work/data"
    taskset -c 0 "$bin" --bind=127.0.0.1 --port=18471 --directory="$work/data" --log=false \
        --max-request-bytes=1048576 "$@" & server_pid=$!
    wait_port 18471
    local c0 t0 t1 c1
    c0=$(ticks "$server_pid"); t0=$(now)
    taskset -c 1 "$bin" ingest --url=karma://127.0.0.1:18471 --csv="$work/rows.csv" --series=s --mode=add \
        --chunk-items="$chunk" --max-request-bytes=1048576 > /dev/null 2> "$work/ingest.err"
    t1=$(now); c1=$(ticks "$server_pid")
    report "$name" "$t0" "$t1" "$c0" "$c1"
    kill "$server_pid"; wait "$server_pid" || true; server_pid=""
}

redis_run() { # name redis-flags...
    local name="$1"; shift
    rm -rf "$work/redis"; mkdir "$work/redis"
    taskset -c 0 redis-server --port 18472 --dir "$work/redis" --save '' "$@" > /dev/null & server_pid=$!
    wait_port 18472
    local c0 t0 t1 c1
    c0=$(ticks "$server_pid"); t0=$(now)
    taskset -c 1 redis-cli -p 18472 --pipe < "$work/redis.txt" > "$work/redis.out"
    t1=$(now); c1=$(ticks "$server_pid")
    report "$name" "$t0" "$t1" "$c0" "$c1"
    redis-cli -p 18472 shutdown nosave > /dev/null 2>&1 || true; wait "$server_pid" || true; server_pid=""
}

for round in $(seq "$rounds"); do
    echo "round $round ($rows rows)"
    karma_run "karma ingest, WAL+fsync, chunk 1000" 1000
    karma_run "karma ingest, WAL+fsync, chunk 10000" 10000
    redis_run "redis-cli --pipe, appendfsync always" --appendonly yes --appendfsync always
    karma_run "karma ingest, --wal=false, chunk 10000" 10000 --wal=false
    redis_run "redis-cli --pipe, no persistence" --appendonly no
done
