#!/usr/bin/env bash
# Instructions per request of the whole karma server process (parsing,
# execution, tokio, the socket calls' user-space side; not the kernel) under
# karma-load's pipelined increments: karma runs under callgrind with the WAL
# off, karma-load drives it for SHORT and then LONG seconds (4 clients, P=16),
# and the difference of the two runs' instruction totals divided by the
# difference of their `command_count` cancels start-up, setup and shutdown.
# Not exactly repeatable like benches/hotpath-callgrind.sh: how many lines
# one read brings (and so the per-read costs per request) depends on timing.
#
#   cargo build --release -p karma-server -p karma-benches
#   benches/server-callgrind.sh [KARMA_BIN]
#
# Environment: PORT (21411), SHORT / LONG (3 / 9 seconds), OUT (directory of
# the callgrind files, default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/karma}
load=$root/target/release/karma-load
port=${PORT:-21411}
out=${OUT:-$(mktemp -d)}
command -v valgrind >/dev/null || { echo "missing valgrind" >&2; exit 2; }
for tool in "$bin" "$load"; do
    [[ -x $tool ]] || { echo "missing $tool: cargo build --release -p karma-server -p karma-benches" >&2; exit 2; }
done

# run SECONDS: prints "COMMANDS INSTRUCTIONS"
run() {
    local secs=$1 dir pid commands total
    dir=$(mktemp -d)
    valgrind --tool=callgrind --callgrind-out-file="$out/server.$secs" "$bin" --bind=127.0.0.1 --port="$port" \
        --directory="$dir" --log=false --wal=false --max-request-bytes=1048576 >/dev/null 2>"$out/server.$secs.err" &
    pid=$!
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$load" --protocol karma --port "$port" --duration "$secs" --warmup 0.5 --clients 4 --pipeline 16 \
        --op increment >"$out/load.$secs" 2>&1
    commands=$(python3 - "$port" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b'{"v":2,"op":"system.stats"}\n')
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(65536)
print(json.loads(buf)["response"]["command_count"])
PY
)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    total=$(callgrind_annotate "$out/server.$secs" 2>/dev/null | awk '!found && /PROGRAM TOTALS/ { gsub(",", "", $1); print $1; found = 1 }')
    echo "$commands $total"
}

read -r c1 i1 < <(run "${SHORT:-3}")
read -r c2 i2 < <(run "${LONG:-9}")
echo "requests $c1 / $c2, instructions $i1 / $i2: $(( (i2 - i1) / (c2 - c1) )) instructions per request (callgrind files in $out)"
