#!/usr/bin/env bash
# A/B two Karma builds on one workload, alternating them in each round so
# that a noisy machine hits both alike. Each run starts a fresh server in
# an empty directory, pinned to SERVER_CPU with karma-load pinned to
# LOAD_CPU (UNPINNED=1: neither pinned), and prints throughput, latency,
# server CPU per item and the WAL's fsync count, mean fsync time and
# entries per fsync (from system.metrics).
#
#   benches/karma-ab.sh BIN_DIR_A BIN_DIR_B POLICY CLIENTS PIPELINE [ROUNDS]
#   benches/karma-ab.sh target-a/release target-b/release always 50 1 3
#
# POLICY is a --wal-fsync value (always, everysec, never) or "off" (--wal=false).
# Each BIN_DIR needs `karma`; karma-load comes from BIN_DIR_A.
# Environment: SERVER_CPU (0), LOAD_CPU (1), SECONDS_PER_RUN (3), KARMA_PORT (21111).
set -euo pipefail

[[ $# -ge 5 ]] || { sed -n '2,15p' "$0" >&2; exit 2; }
dir_a=$1 dir_b=$2 policy=$3 clients=$4 pipeline=$5 rounds=${6:-1}
port=${KARMA_PORT:-21111}
seconds=${SECONDS_PER_RUN:-3}
for tool in "$dir_a/karma" "$dir_b/karma" "$dir_a/karma-load"; do
    [[ -x $tool ]] || { echo "missing $tool" >&2; exit 2; }
done
if [[ ${UNPINNED:-0} == 1 ]]; then
    pin_server=() pin_load=()
else
    pin_server=(taskset -c "${SERVER_CPU:-0}") pin_load=(taskset -c "${LOAD_CPU:-1}")
fi
if [[ $policy == off ]]; then wal=(--wal=false); else wal=(--wal-fsync="$policy"); fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

run() {
    local label=$1 bin_dir=$2 data="$work/data"
    rm -rf "$data" && mkdir "$data"
    "${pin_server[@]}" "$bin_dir/karma" --bind=127.0.0.1 --port="$port" --directory="$data" \
        --log=false --max-request-bytes=1048576 "${wal[@]}" &
    local pid=$!
    wait_port "$port"
    "${pin_load[@]}" "$dir_a/karma-load" --protocol karma --port "$port" --server-pid "$pid" \
        --duration "$seconds" --warmup 0.5 --clients "$clients" --pipeline "$pipeline" \
        --op increment | tail -1 >"$work/load.json"
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf '{"v":2,"op":"system.metrics"}\n' >&3
    timeout 2 head -1 <&3 >"$work/metrics.json"
    exec 3>&-
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$label" "$work/load.json" "$work/metrics.json" <<'PY'
import json, re, sys
label, load, metrics = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))["response"]
m = dict(re.findall(r"^(karma_wal_[a-z_]+) (\S+)$", metrics, re.M))
fsyncs = float(m.get("karma_wal_fsyncs_total", 0))
mean_us = float(m.get("karma_wal_fsync_seconds_total", 0)) / fsyncs * 1e6 if fsyncs else 0
per_fsync = float(m.get("karma_wal_current_lsn", 0)) / fsyncs if fsyncs else 0
print(f"{label}  {load['items_per_s']:>10,.0f}/s  p50 {load['p50_ms']:.3f}  p99 {load['p99_ms']:.3f}  "
      f"max {load['max_ms']:.1f} ms  cpu {load['server_cpu_us_per_item']:.2f} µs/item  "
      f"fsyncs {fsyncs:.0f}  mean {mean_us:.0f} µs  entries/fsync {per_fsync:.1f}")
PY
}

echo "# $(date -u +%FT%TZ) policy=$policy clients=$clients pipeline=$pipeline ${seconds}s per run, unpinned=${UNPINNED:-0}"
for round in $(seq "$rounds"); do
    run "A r$round" "$dir_a"
    run "B r$round" "$dir_b"
done
