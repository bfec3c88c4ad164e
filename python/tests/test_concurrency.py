"""Threads (the GIL is released during calls) and os.fork()."""

from __future__ import annotations

import os
import threading

import pytest

import karma


def test_client_calls_overlap_with_the_gil_released(fake_server):
    """The fake server (another process) answers nothing until four requests
    wait on four connections. If a call held the GIL while it waited for its
    answer, no other thread could send, the server's barrier would time out
    and every call would get its error answer instead of 1."""
    port, proc = fake_server("barrier", "4")
    results = []
    errors = []
    with karma.Client(f"karma://127.0.0.1:{port}", pool_size=4, read_timeout=30) as c:

        def call():
            try:
                results.append(c.increment("s", 1))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == [], errors
    assert results == [1, 1, 1, 1]
    arrived = [proc.stderr.readline().strip() for _ in range(4)]
    assert arrived == ["arrived 1", "arrived 2", "arrived 3", "arrived 4"]


def test_engine_threads_increment_concurrently(engine):
    n, per = 4, 5000
    barrier = threading.Barrier(n)

    def work(i):
        barrier.wait()
        for _ in range(per):
            engine.increment("s", 1, bucket=20260501)
            engine.increment("s", 100 + i, bucket=20260501)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.sum("s", 1) == n * per
    assert engine.batch_sum("s", [100 + i for i in range(n)]) == [per] * n


def test_client_threads_increment_concurrently(client):
    n, per = 4, 300

    def work():
        for _ in range(per):
            client.increment("s", 1, bucket=20260501)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.sum("s", 1) == n * per


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_client_works_in_a_forked_child(client):
    for _ in range(10):
        client.increment("s", 1)  # the parent's pool now holds a connection
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's socket
        code = 1
        try:
            for _ in range(25):
                client.increment("s", 1)
            code = 0 if client.sum("s", 1) >= 35 else 2
        finally:
            os._exit(code)
    for _ in range(5):
        client.increment("s", 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    for _ in range(5):
        client.increment("s", 1)
    assert client.sum("s", 1) == 10 + 25 + 5 + 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_engine_refuses_use_in_a_forked_child(tmp_path):
    engine = karma.Engine(tmp_path / "e", wal_fsync=False)
    engine.increment("s", 1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = b"no error"
        try:
            engine.increment("s", 1)
        except karma.KarmaError as e:
            msg = f"{e.kind}: {e}".encode()
        # a fresh engine works in the child
        try:
            karma.Engine().increment("t", 1)
        except Exception as e:  # noqa: BLE001
            msg += f" / fresh engine failed: {e}".encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    assert msg.startswith("fork: this karma.Engine was opened before os.fork()"), msg
    assert "fresh engine failed" not in msg
    engine.increment("s", 1)  # the parent's engine is unaffected
    assert engine.sum("s", 1) == 2
    engine.close()
