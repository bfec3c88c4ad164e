#!/usr/bin/env bash
# Karma next to Redis under every durability setting, in one run: for each
# fsync policy and workload, Karma and then Redis are started pinned to one
# core (SERVER_CPU) while the same closed-loop load generator (karma-load,
# which speaks both protocols) runs pinned to another (LOAD_CPU). Prints a
# Markdown table: throughput, p50/p99 latency and the server's CPU time per
# item (utime+stime from /proc/<pid>/stat over the measured seconds).
#
#   cargo build --release -p karma-server -p karma-benches
#   benches/durable-vs-redis.sh [ROUNDS]     # default 1 round, ~4 min each
#
# Policies (Karma / Redis): WAL off / appendonly no; --wal-fsync=never /
# appendfsync no; everysec / everysec; always / always.
# Workloads: single increments at 1, 4 and 50 clients; 4 clients pipelining
# 16; batch_add of 1,000 items at 4 clients (Redis: 1,000 pipelined INCRBY).
#
# Environment: SERVER_CPU (default 0), LOAD_CPU (default 1), SECONDS_PER_RUN (3),
# KARMA_PORT / REDIS_PORT (21111 / 21311), UNPINNED=1 runs both without
# taskset, ONLY="wal-off never" limits the policies, WORKLOADS likewise
# ("1x1 4x1 50x1 4x16 batch"). Needs redis-server (Debian: apt-get install
# redis-server). Servers listen on 127.0.0.1 only, each in a fresh temporary
# directory under TMPDIR, and are stopped after each run.
set -euo pipefail

rounds=${1:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${KARMA_BIN_DIR:-$root/target/release}
karma_port=${KARMA_PORT:-21111}
redis_port=${REDIS_PORT:-21311}
seconds=${SECONDS_PER_RUN:-3}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
policies=${ONLY:-"wal-off never everysec always"}
workloads=${WORKLOADS:-"1x1 4x1 50x1 4x16 batch"}

for tool in "$bin/karma" "$bin/karma-load"; do
    [[ -x $tool ]] || { echo "missing $tool: cargo build --release -p karma-server -p karma-benches" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "missing redis-server: apt-get install redis-server" >&2; exit 2; }

if [[ ${UNPINNED:-0} == 1 ]]; then
    pin_server=()
    pin_load=()
else
    pin_server=(taskset -c "$server_cpu")
    pin_load=(taskset -c "$load_cpu")
fi

# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

# load PROTOCOL PORT PID WORKLOAD: karma-load's JSON line
load() {
    local protocol=$1 port=$2 pid=$3 workload=$4 args
    case $workload in
        batch) args=(--clients 4 --pipeline 1 --op batch_add --batch 1000) ;;
        *x*) args=(--clients "${workload%x*}" --pipeline "${workload#*x}" --op increment) ;;
    esac
    "${pin_load[@]}" "$bin/karma-load" --protocol "$protocol" --port "$port" --server-pid "$pid" \
        --duration "$seconds" --warmup 0.5 "${args[@]}" | tail -1
}

# row SERVER POLICY WORKLOAD JSON
row() {
    python3 - "$@" <<'EOF'
import json, sys
server, policy, workload, line = sys.argv[1:5]
j = json.loads(line)
print(f"{server} {policy} {workload} {j['items_per_s']:.0f} {j['p50_ms']:.3f} {j['p99_ms']:.3f} "
      f"{j['server_cpu_us_per_item']:.3f} {j['errors'] + j['connection_errors']}")
EOF
}

karma() {
    local policy=$1 workload=$2 dir extra pid json
    dir=$(mktemp -d)
    case $policy in
        wal-off) extra=(--wal=false) ;;
        *) extra=(--wal-fsync="$policy") ;;
    esac
    "${pin_server[@]}" "$bin/karma" --bind=127.0.0.1 --port="$karma_port" --directory="$dir" --log=false \
        --max-request-bytes=1048576 "${extra[@]}" &
    pid=$!
    wait_port "$karma_port"
    json=$(load karma "$karma_port" "$pid" "$workload")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    row karma "$policy" "$workload" "$json"
}

redis() {
    local policy=$1 workload=$2 dir extra pid json
    dir=$(mktemp -d)
    case $policy in
        wal-off) extra=(--appendonly no) ;;
        never) extra=(--appendonly yes --appendfsync no) ;;
        *) extra=(--appendonly yes --appendfsync "$policy") ;;
    esac
    "${pin_server[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --dir "$dir" \
        --daemonize no "${extra[@]}" >/dev/null &
    pid=$!
    wait_port "$redis_port"
    json=$(load resp "$redis_port" "$pid" "$workload")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    row redis "$policy" "$workload" "$json"
}

log=$(mktemp)
echo "# $(date -u +%FT%TZ) $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f1-3)," \
    "server on CPU ${pin_server[*]:-any}, load generator on ${pin_load[*]:-any}, $seconds s per run"
for r in $(seq "$rounds"); do
    for policy in $policies; do
        for workload in $workloads; do
            karma "$policy" "$workload" | tee -a "$log"
            redis "$policy" "$workload" | tee -a "$log"
        done
    done
    echo "# round $r done $(date -u +%T)"
done
python3 - "$log" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    server, policy, workload, *values = line.split()
    runs.setdefault((policy, workload), {}).setdefault(server, []).append([float(v) for v in values])
def med(rows, i):
    return statistics.median(r[i] for r in rows)
names = {"wal-off": ("WAL off", "appendonly no"), "never": ("never", "appendfsync no"),
         "everysec": ("everysec", "everysec"), "always": ("always", "always")}
print()
print("| workload | Karma / Redis | Karma items/s | Redis items/s | ratio | Karma p50 / p99 ms | Redis p50 / p99 ms "
      "| Karma CPU µs/item | Redis CPU µs/item | CPU ratio |")
print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |")
for (policy, workload), by in runs.items():
    k, r = by.get("karma"), by.get("redis")
    if not k or not r:
        continue
    label = "batch_add 1000, 4 clients" if workload == "batch" else (
        f"{workload.split('x')[0]} clients" + (f", P={workload.split('x')[1]}" if workload.split('x')[1] != "1" else ""))
    kt, rt = med(k, 0), med(r, 0)
    kc, rc = med(k, 3), med(r, 3)
    errors = sum(x[4] for x in k + r)
    print(f"| {label} | {names[policy][0]} / {names[policy][1]} | {kt:,.0f} | {rt:,.0f} | {kt / rt:.2f}x "
          f"| {med(k, 1):.3f} / {med(k, 2):.3f} | {med(r, 1):.3f} / {med(r, 2):.3f} "
          f"| {kc:.2f} | {rc:.2f} | {kc / rc if rc else 0:.2f}x |" + (f" {errors:.0f} errors" if errors else ""))
EOF
rm -f "$log"
