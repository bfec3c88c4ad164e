#!/usr/bin/env bash
# Increments through the client library against one server and against a
# 2-shard cluster (docs/cluster.md), interleaved: each round runs every
# configuration back to back so they see the same moment of a noisy machine;
# medians over the rounds are printed at the end. This is how the "Cluster"
# section of docs/benchmarks.md is made.
#
#   cargo build --release -p karma-server -p karma-benches
#   benches/cluster-vs-node.sh [ROUNDS]       # default 5 rounds, ~20 s each
#
# Needs etcd (Debian: apt-get install etcd-server), started here on loopback
# ports 23791/23801 with a temporary data directory. Servers listen on
# 127.0.0.1:2141x, each in a fresh directory with --wal-fsync=false, and are
# stopped after each run. The load is karma-client-load: THREADS threads
# sharing one client, one increment at a time each.
#
# Configurations (cores as taskset numbers; the machine this was written on
# has two):
#   node        one server on core 1 (karma:// URL),         load on core 0
#   1x1 pinned  a 1-shard cluster (karma+etcd:// URL), on core 1, load on core 0
#   2x1 pinned  two shards of one node each, both on core 1, load on core 0
#   2x1 free    two shards, servers and load on cores 0-1 (no pinning)
set -euo pipefail

rounds=${1:-5}
threads=${THREADS:-4}
seconds=${SECONDS_PER_RUN:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${KARMA_BIN_DIR:-$root/target/release}
etcd_port=23791
etcd=127.0.0.1:$etcd_port

for tool in "$bin/karma" "$bin/karma-client-load"; do
    [[ -x $tool ]] || { echo "missing $tool: cargo build --release -p karma-server -p karma-benches" >&2; exit 2; }
done
command -v etcd >/dev/null || { echo "missing etcd: apt-get install etcd-server" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

etcd --name=bench --data-dir="$work/etcd" \
    --listen-client-urls="http://$etcd" --advertise-client-urls="http://$etcd" \
    --listen-peer-urls=http://127.0.0.1:23801 --initial-advertise-peer-urls=http://127.0.0.1:23801 \
    --initial-cluster=bench=http://127.0.0.1:23801 2>"$work/etcd.log" &
pids+=($!)
wait_port "$etcd_port"

# load CORES URL: prints ops/s
load() {
    taskset -c "$1" "$bin/karma-client-load" --url "$2" --threads "$threads" --duration "$seconds" | tail -1 |
        python3 -c 'import json, sys; print(int(json.load(sys.stdin)["ops_per_s"]))'
}

# server CORES PORT [cluster options...]: starts a server, sets $server_pid
server() {
    local cores=$1 port=$2 dir
    shift 2
    dir=$(mktemp -d -p "$work")
    taskset -c "$cores" "$bin/karma" --bind=127.0.0.1 --port="$port" --directory="$dir" --log=false \
        --wal-fsync=false "$@" 2>>"$work/servers.log" &
    server_pid=$!
    pids+=("$server_pid")
    wait_port "$port"
}

stop() {
    kill "$@" 2>/dev/null || true
    wait "$@" 2>/dev/null || true
}

node() {
    server 1 21410
    local pid=$server_pid result
    result=$(load 0 karma://127.0.0.1:21410)
    stop "$pid"
    echo "node $result"
}

# cluster NAME SHARDS SERVER_CORES LOAD_CORES: one node per shard
cluster() {
    local name=$1 shards=$2 cores=$3 load_cores=$4 nodes=() result
    "$bin/karma" cluster --etcd="$etcd" --cluster-name="$name" init --shards="$shards" >/dev/null
    for shard in $(seq 0 $((shards - 1))); do
        server "$cores" $((21411 + shard)) --cluster-etcd="$etcd" --cluster-name="$name" --shard="$shard" \
            --node-id="n$shard" --advertise=127.0.0.1:$((21411 + shard))
        nodes+=("$server_pid")
    done
    until [[ $("$bin/karma" cluster --etcd="$etcd" --cluster-name="$name" status | grep -c ' leader ') == "$shards" ]]; do
        sleep 0.1
    done
    result=$(load "$load_cores" "karma+etcd://$etcd/$name")
    stop "${nodes[@]}"
    echo "$name $result"
}

results=()
for round in $(seq "$rounds"); do
    results+=("$(node)")
    results+=("$(cluster "one$round" 1 1 0 | sed 's/^one[0-9]*/1x1-pinned/')")
    results+=("$(cluster "pinned$round" 2 1 0 | sed 's/^pinned[0-9]*/2x1-pinned/')")
    results+=("$(cluster "free$round" 2 0-1 0-1 | sed 's/^free[0-9]*/2x1-free/')")
    printf '%s\n' "${results[@]: -4}" >&2
done

echo "medians over $rounds rounds, $threads threads, ${seconds} s each (ops/s):"
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    name, value = line.split()
    runs.setdefault(name, []).append(int(value))
for name, values in runs.items():
    print(f"{name:12} {int(statistics.median(values)):>9,}  (runs: {values})")
'
