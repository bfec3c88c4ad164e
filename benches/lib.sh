# Shared by the shell benchmarks in this directory: `source` it.

# wait_port PORT [TRIES]: returns once something accepts connections on
# 127.0.0.1:PORT, checking every 50 ms, TRIES times (default 200); fails
# with a message otherwise.
wait_port() {
    local port=$1 tries=${2:-200}
    for _ in $(seq "$tries"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $port" >&2
    return 1
}
