"""karma.Client on a cluster URL (`karma+etcd://host:port/<cluster>`,
docs/cluster.md): a real etcd (Debian's etcd-server at /usr/bin/etcd) and
two `karma` nodes, one per shard. The same writes and reads through the
cluster and through an in-process karma.Engine must answer alike."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
from typing import Iterator, List

import pytest

import karma
from conftest import Server, free_port, server_binary

ETCD = "/usr/bin/etcd"
CLUSTER = "py"


@pytest.fixture
def cluster_url(tmp_path: pathlib.Path) -> Iterator[str]:
    if not os.path.exists(ETCD):
        pytest.fail(f"the cluster test needs etcd at {ETCD}: install Debian's etcd-server (scripts/test does)")
    client_port, peer_port = free_port(), free_port()
    endpoint = f"127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    etcd = subprocess.Popen(
        [
            ETCD,
            "--name=py",
            f"--data-dir={tmp_path / 'etcd'}",
            f"--listen-client-urls=http://{endpoint}",
            f"--advertise-client-urls=http://{endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=py={peer}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nodes: List[Server] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARMA_")}
    tool = [server_binary(), "cluster", f"--etcd={endpoint}", f"--cluster-name={CLUSTER}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*tool, "init", "--shards=2"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "etcd did not come up"
            time.sleep(0.1)
        for shard in range(2):
            node = Server(tmp_path / f"node{shard}", [])
            node.extra = [
                f"--cluster-etcd={endpoint}",
                f"--cluster-name={CLUSTER}",
                f"--shard={shard}",
                f"--node-id=n{shard}",
                f"--advertise=127.0.0.1:{node.port}",
                "--cluster-lease-ttl=2",
            ]
            nodes.append(node.start())
        while subprocess.run([*tool, "status"], env=env, capture_output=True, text=True).stdout.count(" leader ") < 2:
            assert time.monotonic() < deadline, "the shards did not elect leaders"
            time.sleep(0.1)
        yield f"karma+etcd://{endpoint}/{CLUSTER}"
    finally:
        for node in nodes:
            node.stop()
        etcd.terminate()
        etcd.wait(timeout=30)


def run_script(db) -> list:
    """Writes over keys of both shards, then every kind of read."""
    items = [(k % 31, 20260501 + k % 4, 1 + k % 9) for k in range(90)]
    keys = list(range(40))
    answers = [
        db.batch_add("a", items),
        db.increment("a", 33, value=5, bucket=20260501),
        db.batch_sum("a", keys),
        db.batch_sum("a", keys, range=(20260502, 20260503)),
        db.multi_sum([("a", 1), ("a", 2), ("a", 30)]),
        db.top("a", limit=5),
        db.info("a"),
        db.summary("a"),
        db.keys("a", cursor=10, limit=6),
        db.batch_reset("a", [1, 2, 3, 1000]),
        db.batch_sum("a", keys),
    ]
    with pytest.raises(karma.NotFoundError):
        db.info("nope")
    return answers


def test_a_cluster_url_opens_a_client_that_answers_as_one_node(cluster_url: str) -> None:
    with karma.Client(cluster_url) as c, karma.Engine() as e:
        assert run_script(c) == run_script(e)
        assert c.ping() == "pong"
        assert "karma+etcd://" in repr(c)
    with pytest.raises(karma.ValidationError, match="invalid cluster URL"):
        karma.Client("karma+etcd://127.0.0.1:1")
