#!/bin/sh
# Starts a release `karma` server (WAL on, fsync never) and redis-server
# (no persistence), both pinned to core 0, and runs bench/networked.rb on
# core 1. Usage, from ruby/: PROFILE=release rake compile, then
#   KARMA_SERVER_BIN=../target/release/karma sh bench/networked.sh [threads] [calls per thread]
set -eu
bin=${KARMA_SERVER_BIN:-../target/release/karma}
dir=$(mktemp -d)
kport=${KARMA_PORT:-18180}
rport=${REDIS_PORT:-18181}
taskset -c 0 "$bin" --bind=127.0.0.1 --port="$kport" --directory="$dir/karma" --log=false --wal-fsync=never \
  </dev/null >/dev/null 2>&1 &
kpid=$!
taskset -c 0 redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$dir" \
  --daemonize no </dev/null >/dev/null 2>&1 &
rpid=$!
trap 'kill $kpid $rpid 2>/dev/null; wait $kpid $rpid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
taskset -c 1 ruby -Ilib bench/networked.rb "$kport" "$rport" "${1:-4}" "${2:-50000}"
