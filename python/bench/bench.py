"""Increments per second from Python: in-process (karma.Engine, one thread)
and networked (karma.Client against the release `karma` server) side by side
with redis-py INCR against redis-server, same thread count, same run.

    cargo build --release -p karma-server
    (cd python && maturin develop --release)    # or install a release wheel
    python python/bench/bench.py [--seconds 3] [--threads 4]

Needs `redis-server` on PATH (Debian: apt-get install redis-server) and the
`redis` package for the comparison; without them that row is skipped.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import karma

REPO = pathlib.Path(__file__).resolve().parents[2]
KEYS = 10_000
BUCKET = 20260501


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def in_process(engine: karma.Engine, seconds: float) -> float:
    inc = engine.increment
    keys = list(range(KEYS))
    for k in keys:  # warm up: every counter exists
        inc("bench", k, 1, BUCKET)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for k in keys:
            inc("bench", k, 1, BUCKET)
        done += KEYS
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def threaded(make_call, threads: int, seconds: float) -> float:
    """Runs `make_call(i)()` in `threads` threads for `seconds`; calls per second."""
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        call = make_call(i)
        n = 0
        barrier.wait()
        while not stop.is_set():
            for k in range(i, i + 100):
                call(k)
            n += 100
        counts[i] = n

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def karma_server(binary: str, directory: str, fsync: bool):
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind=127.0.0.1",
            f"--port={port}",
            f"--directory={directory}",
            "--log=false",
            f"--wal-fsync={'true' if fsync else 'false'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return port, proc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--server-bin", default=os.environ.get("KARMA_SERVER_BIN", str(REPO / "target/release/karma")))
    p.add_argument("--redis-bin", default=shutil.which("redis-server"))
    args = p.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}")
    print(f"python {platform.python_version()}, karma {karma.__version__} ({karma._karma.__file__})")
    rows = []

    e = karma.Engine()
    rows.append(("in-process Engine() in memory, 1 thread, increment()", in_process(e, args.seconds)))
    e.close()
    with tempfile.TemporaryDirectory() as d:
        with karma.Engine(d, wal_fsync=False) as e:
            rows.append(("in-process Engine(path, wal_fsync=False), 1 thread", in_process(e, args.seconds)))

    t = args.threads
    for fsync in (False, True):
        with tempfile.TemporaryDirectory() as d:
            port, proc = karma_server(args.server_bin, d, fsync)
            try:
                with karma.Client(f"karma://127.0.0.1:{port}", pool_size=t) as c:
                    c.increment("bench", 0, 1, BUCKET)
                    rate = threaded(lambda i: lambda k: c.increment("bench", k, 1, BUCKET), t, args.seconds)
                rows.append((f"karma.Client, {t} threads, server --wal-fsync={str(fsync).lower()}", rate))
            finally:
                proc.terminate()
                proc.wait()

    if args.redis_bin:
        try:
            import redis
        except ImportError:
            redis = None
        if redis is not None:
            port = free_port()
            proc = subprocess.Popen(
                [args.redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_port(port, proc)
                r = redis.Redis(port=port, connection_pool=None, max_connections=t)
                r.incr("warm")
                rate = threaded(lambda i: lambda k: r.incr(f"bench:{k}"), t, args.seconds)
                rows.append((f"redis-py INCR, {t} threads, redis-server --save '' --appendonly no", rate))
            finally:
                proc.terminate()
                proc.wait()
    else:
        print("redis-server not found: skipping the redis-py row")

    width = max(len(name) for name, _ in rows)
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>12,.0f} ops/s")


if __name__ == "__main__":
    sys.exit(main())
