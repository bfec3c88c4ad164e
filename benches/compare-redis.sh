#!/usr/bin/env bash
# Karma over TCP next to Redis, interleaved: each round runs every Karma
# configuration and the matching redis-benchmark run back to back, so both
# see the same moment of a noisy machine; the medians over the rounds are
# printed at the end. This is how docs/benchmarks.md's TCP table is made.
#
#   cargo build --release -p karma-server -p karma-benches
#   benches/compare-redis.sh [ROUNDS]        # default 5 rounds, ~1 min each
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server).
# Servers listen on 127.0.0.1 only, on KARMA_PORT / REDIS_PORT (21101 / 21301),
# each in a fresh temporary directory, and are stopped after each run.
set -euo pipefail

rounds=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${KARMA_BIN_DIR:-$root/target/release}
karma_port=${KARMA_PORT:-21101}
redis_port=${REDIS_PORT:-21301}
seconds=3

for tool in "$bin/karma" "$bin/karma-load"; do
    [[ -x $tool ]] || { echo "missing $tool: cargo build --release -p karma-server -p karma-benches" >&2; exit 2; }
done
for tool in redis-server redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server" >&2; exit 2; }
done

# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

# karma MODE CLIENTS PIPELINE [OP]: prints "name items_per_s"
karma() {
    local mode=$1 clients=$2 pipeline=$3 op=${4:-increment} dir extra pid result
    dir=$(mktemp -d)
    case $mode in
        wal-off) extra=(--wal=false) ;;
        fsync-off) extra=(--wal-fsync=false) ;;
        fsync-on) extra=() ;;
    esac
    "$bin/karma" --bind=127.0.0.1 --port="$karma_port" --directory="$dir" --log=false \
        --max-request-bytes=1048576 "${extra[@]}" &
    pid=$!
    wait_port "$karma_port" 100
    result=$("$bin/karma-load" --port "$karma_port" --clients "$clients" --pipeline "$pipeline" \
        --duration "$seconds" --op "$op" | tail -1 |
        python3 -c 'import json, sys; print(int(json.load(sys.stdin)["items_per_s"]))')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    echo "karma $op $mode ${clients}x$pipeline $result"
}

# redis MODE CLIENTS PIPELINE REQUESTS: prints "name ops_per_s"
redis() {
    local mode=$1 clients=$2 pipeline=$3 requests=$4 dir extra pid result
    dir=$(mktemp -d)
    case $mode in
        no-aof) extra=(--appendonly no) ;;
        always) extra=(--appendonly yes --appendfsync always) ;;
    esac
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --dir "$dir" --daemonize no \
        "${extra[@]}" >/dev/null &
    pid=$!
    wait_port "$redis_port" 100
    result=$(redis-benchmark -p "$redis_port" -t incr -r 10000 -c "$clients" -n "$requests" -P "$pipeline" --csv |
        tail -1 | cut -d, -f2 | tr -d '"')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    echo "redis incr $mode ${clients}x$pipeline ${result%.*}"
}

round() {
    karma fsync-off 4 1;   redis no-aof 4 1 300000
    karma fsync-off 50 1;  redis no-aof 50 1 400000
    karma wal-off 4 16;    karma fsync-off 4 16; redis no-aof 4 16 3000000
    karma fsync-on 4 16;   redis always 4 16 1000000
    karma fsync-on 50 1;   redis always 50 1 300000
    karma wal-off 4 1;     karma wal-off 50 1
    karma fsync-on 4 1;    redis always 4 1 100000
    karma fsync-off 4 1 batch_add
    karma fsync-on 4 1 batch_add
    karma fsync-off 4 1 sum
}

log=$(mktemp)
echo "$(date -u +%FT%TZ) $rounds rounds, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    round | tee -a "$log"
    echo "-- round $r done $(date -u +%T)"
done
python3 - "$log" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    *name, value = line.split()
    runs.setdefault(" ".join(name), []).append(int(value))
print(f"{'configuration':34} {'median':>12} {'min':>12} {'max':>12}")
for name, values in runs.items():
    print(f"{name:34} {statistics.median(values):>12,.0f} {min(values):>12,} {max(values):>12,}")
EOF
rm -f "$log"
