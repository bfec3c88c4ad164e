#!/usr/bin/env bash
# The Node benchmark of docs/benchmarks.md: release builds, `karma` and
# Debian's redis-server pinned to core 0 (no persistence on either side:
# karma --wal=false, redis without RDB/AOF), node pinned to core 1.
#
#   node/bench/run.sh          # from anywhere; needs `npm ci` in node/ and redis-server
set -euo pipefail
node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(dirname "$node_dir")"
target="${CARGO_TARGET_DIR:-$repo/target}"
cd "$node_dir"

node scripts/build.mjs --release
(cd "$repo" && cargo build --release -p karma-server)

karma_port=18181
redis_port=18182
data="$(mktemp -d)"
taskset -c 0 "$target/release/karma" --bind=127.0.0.1 --port=$karma_port --directory="$data" --wal=false --log=false &
karma_pid=$!
taskset -c 0 redis-server --port $redis_port --save '' --appendonly no --daemonize no --loglevel warning &
redis_pid=$!
trap 'kill $karma_pid $redis_pid; wait; rm -rf "$data"' EXIT
sleep 1

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(node --version), $(redis-server --version | cut -d' ' -f3)"
export KARMA_URL="karma://127.0.0.1:$karma_port" REDIS_URL="redis://127.0.0.1:$redis_port"
taskset -c 1 node bench/increments.js
# Two more networked rounds (Client and ioredis back to back in each), for
# the spread on a shared machine.
for _ in 2 3; do SKIP_IN_PROCESS=1 taskset -c 1 node bench/increments.js; done
