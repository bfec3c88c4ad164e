"""Fixtures: a real `karma` server per test, durable engines, and `db`, which
runs a test once against `karma.Engine` and once against `karma.Client`."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Iterator, List

import pytest

import karma

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTS = pathlib.Path(__file__).resolve().parent


def server_binary() -> str:
    path = os.environ.get("KARMA_SERVER_BIN") or str(REPO / "target" / "debug" / "karma")
    if not os.path.exists(path):
        pytest.fail(f"karma server binary {path} missing: run `cargo build -p karma-server` or set KARMA_SERVER_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `karma` process on a free port with its own data directory."""

    def __init__(self, directory: pathlib.Path, extra: List[str]) -> None:
        self.directory = directory
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"karma://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KARMA_")}
        self.proc = subprocess.Popen(
            [
                server_binary(),
                "--bind=127.0.0.1",
                f"--port={self.port}",
                f"--directory={self.directory}",
                "--log=false",
                "--wal-fsync=false",
                *self.extra,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"karma exited with {self.proc.returncode} before accepting: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"karma did not accept on port {self.port} within 30 s")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator:
    """`start_server(*flags)` starts a server; all are stopped after the test."""
    started: List[Server] = []

    def start(*extra: str) -> Server:
        s = Server(tmp_path / f"server{len(started)}", list(extra)).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(start_server) -> Server:
    return start_server()


@pytest.fixture
def client(server: Server) -> Iterator[karma.Client]:
    with karma.Client(server.url) as c:
        yield c


@pytest.fixture
def engine(tmp_path: pathlib.Path) -> Iterator[karma.Engine]:
    # Durable like the server (snapshots work), without fsync, also like the tests' server.
    with karma.Engine(tmp_path / "engine", wal_fsync=False) as e:
        yield e


@pytest.fixture(params=["engine", "client"])
def db(request, tmp_path: pathlib.Path, start_server) -> Iterator:
    """Runs the test against an Engine and against a Client."""
    if request.param == "engine":
        with karma.Engine(tmp_path / "engine", wal_fsync=False) as e:
            yield e
    else:
        with karma.Client(start_server().url) as c:
            yield c


@pytest.fixture
def fake_server() -> Iterator:
    """`fake_server(mode, *args)` runs tests/fake_server.py in a subprocess and
    returns (port, process)."""
    procs: List[subprocess.Popen] = []

    def start(mode: str, *args: str):
        proc = subprocess.Popen(
            [sys.executable, str(TESTS / "fake_server.py"), mode, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fake server failed: {proc.stderr.read()}")
        return int(line), proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdout, p.stderr):
            if f:
                f.close()
