#!/usr/bin/env bash
# The C ABI test: compiles tests/c/karma_test.c with gcc against
# ffi/include/karma.h, links it to target/debug/libkarma_ffi.so (rpath set),
# starts target/debug/karma on a free port with a temporary directory, and
# runs the test under valgrind (no invalid reads/writes, no definite leaks;
# "still reachable" blocks, which Rust's std may leave, are not errors).
#
#   cargo build -p karma-ffi -p karma-server && tests/c/run.sh
#
# Needs gcc and valgrind (scripts/test installs them). KARMA_C_VALGRIND=0
# runs the test without valgrind (quicker, for debugging).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}/debug"
lib="$target/libkarma_ffi.so"
server="$target/karma"

for f in "$lib" "$server"; do
    [[ -x "$f" || -f "$f" ]] || { echo "missing $f: run cargo build -p karma-ffi -p karma-server" >&2; exit 1; }
done
command -v gcc >/dev/null || { echo "gcc not found" >&2; exit 1; }
use_valgrind="${KARMA_C_VALGRIND:-1}"
if [[ "$use_valgrind" != 0 ]] && ! command -v valgrind >/dev/null; then
    echo "valgrind not found (apt-get install -y valgrind, or KARMA_C_VALGRIND=0)" >&2
    exit 1
fi

# The server and the test read KARMA_* variables: start from none.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^KARMA_' || true)

work="$(mktemp -d "${TMPDIR:-/tmp}/karma-c-abi.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "+ gcc tests/c/karma_test.c -> $work/karma_test"
gcc -std=c11 -g -O0 -Wall -Wextra -Werror -pedantic \
    -I "$repo/ffi/include" \
    "$repo/tests/c/karma_test.c" \
    -L "$target" -lkarma_ffi -Wl,-rpath,"$target" -pthread \
    -o "$work/karma_test"

# Start karma on a free port: probe a random port, start, and retry with
# another if the server could not bind it (someone took it meanwhile).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mkdir -p "$work/server-data" "$work/engine-data"
for attempt in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_open "$port" && continue
    "$server" --bind=127.0.0.1 --port="$port" --directory="$work/server-data" --log=false \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        port_open "$port" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null && port_open "$port"; then
        break
    fi
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    echo "karma did not start on port $port (attempt $attempt):" >&2
    cat "$work/server.log" >&2 || true
done
[[ -n "$server_pid" ]] || { echo "could not start karma" >&2; exit 1; }
echo "+ karma listening on 127.0.0.1:$port (pid $server_pid)"

export KARMA_TEST_DIR="$work/engine-data"
export KARMA_TEST_URL="karma://127.0.0.1:$port"
if [[ "$use_valgrind" != 0 ]]; then
    echo "+ valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite $work/karma_test"
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite,indirect "$work/karma_test"
else
    "$work/karma_test"
fi
