"""Every method of the shared API, against karma.Engine and karma.Client (`db`)."""

from __future__ import annotations

import datetime

import pytest

import karma

D1, D2, D3 = 20260501, 20260502, 20260503


def test_increment_decrement_sum(db):
    assert db.increment("s", 1) == 1
    assert db.increment("s", 1, 4, bucket=D1) == 4
    assert db.increment("s", 1, value=2, bucket=D2) == 2
    assert db.sum("s", 1) == 7
    assert db.sum("s", 1, range=(D1, D2)) == 6
    assert db.sum("s", 1, (D2, D3)) == 2
    assert db.decrement("s", 1, 3, bucket=D1) == 3
    assert db.decrement("s", 1, 10, bucket=D1) == 10  # answers the requested amount...
    assert db.sum("s", 1, range=(D1, D1)) == 0  # ...but never goes below zero
    assert db.sum("s", 1, range=(D1, D1)) == 0
    assert db.decrement("s", 1) == 1  # today's bucket, default 1
    assert db.sum("s", 1) == 2
    assert db.sum("s", 999) == 0  # missing key of an existing series


def test_batch_sum_and_multi_sum(db):
    db.batch_add("a", [(1, D1, 1), (2, D1, 2), (2, D2, 3)])
    db.batch_add("b", [(1, D2, 10)])
    assert db.batch_sum("a", [1, 2, 3]) == [1, 5, 0]
    assert db.batch_sum("a", [2], range=(D2, D2)) == [3]
    assert db.batch_sum("a", []) == []
    assert db.multi_sum([("a", 2), ("b", 1), ("a", 1)]) == [5, 10, 1]
    assert db.multi_sum([("a", 2), ("b", 1)], range=(D1, D1)) == [2, 0]


def test_points_and_series_alias(db):
    db.batch_add("s", [(7, D1, 1), (7, D3, 3)])
    assert db.points("s", 7, (D1, D3)) == [(D1, 1), (D3, 3)]
    assert db.series("s", 7, (D2, D3)) == [(D3, 3)]
    assert db.points("s", 8, (D1, D3)) == []


def test_batch_add_and_batch_set(db):
    assert db.batch_add("s", [(1, D1, 2), (1, D2, 3), (2, D1, 5)]) == 10
    assert db.batch_set("s", [(1, D1, 7), (2, D1, 0)]) == 2
    assert db.batch_sum("s", [1, 2]) == [10, 0]
    assert db.points("s", 2, (D1, D3)) == []
    with pytest.raises(karma.ValidationError, match="Batch item value must be greater than 0"):
        db.batch_add("s", [(1, D1, 0)])
    with pytest.raises(TypeError):
        db.batch_add("s", [(1, D1)])


def test_reset_and_batch_reset(db):
    db.batch_add("s", [(1, D1, 1), (2, D1, 2), (3, D1, 3)])
    assert db.reset("s", 1) is None
    assert db.batch_sum("s", [1, 2, 3]) == [0, 2, 3]
    assert db.batch_reset("s", [2, 42]) == {"reset": 1, "missing": 1}
    assert db.reset("s") is None
    assert db.sum("s", 3) == 0
    assert "s" in db.list_series()


def test_delete_range_and_batch_delete_range(db):
    db.batch_add("s", [(k, d, 1) for k in (1, 2, 3) for d in (D1, D2, D3)])
    assert db.delete_range("s", (D1, D1), key=1) is None
    assert db.points("s", 1, (D1, D3)) == [(D2, 1), (D3, 1)]
    assert db.delete_range("s", (D2, D2)) is None  # every counter
    assert db.batch_sum("s", [1, 2, 3]) == [1, 2, 2]
    assert db.batch_delete_range("s", [2, 9], (D1, D3)) == {"deleted": 1, "missing": 1}
    assert db.batch_sum("s", [1, 2, 3]) == [1, 0, 2]


def test_series_lifecycle_info_keys_top_summary(db):
    assert db.list_series() == []
    assert db.create_series("s") is None
    assert db.list_series() == ["s"]
    assert db.info("s") == {"tree": "s", "key_count": 0, "bucket_count": 0, "total": 0}
    db.batch_add("s", [(k, D1, k) for k in range(1, 6)] + [(5, D2, 100)])
    assert db.info("s") == {"tree": "s", "key_count": 5, "bucket_count": 6, "total": 115}
    page = db.keys("s", limit=2)
    assert page == {"tree": "s", "limit": 2, "cursor": None, "next_cursor": 2, "keys": [(1, 1), (2, 2)]}
    page = db.keys("s", cursor=page["next_cursor"], limit=10)
    assert page["keys"] == [(3, 3), (4, 4), (5, 105)]
    assert page["next_cursor"] is None
    assert db.top("s", limit=2) == [(5, 105), (4, 4)]
    assert db.top("s", 1, range=(D1, D1)) == [(5, 5)]
    assert db.summary("s") == {"tree": "s", "range": None, "total": 115, "active_keys": 5, "bucket_count": 6}
    assert db.summary("s", range=(D2, D2)) == {
        "tree": "s",
        "range": (D2, D2),
        "total": 100,
        "active_keys": 1,
        "bucket_count": 1,
    }
    assert db.drop_series("s") is None
    assert db.list_series() == []
    with pytest.raises(karma.NotFoundError):
        db.info("s")


def test_delete_before_and_compact(db):
    db.batch_add("s", [(1, D1, 1), (2, D2, 2), (3, D3, 3)])
    assert db.delete_before("s", datetime.date(2026, 5, 3)) is None
    assert db.info("s") == {"tree": "s", "key_count": 1, "bucket_count": 1, "total": 3}
    db.reset("s", 3)
    assert db.compact("s") is None
    assert db.compact() is None
    assert db.info("s")["key_count"] == 0


def test_snapshot_all(db):
    db.increment("s", 1, bucket=D1)
    assert db.snapshot_all() is None
    assert [f for f in db.request("snapshot.list") if f.endswith("_s.tree")]


def test_system_ops(db):
    assert db.ping() == "pong"
    db.increment("s", 1)
    health = db.health()
    assert health["status"] == "ok" and health["role"] == "master"
    stats = db.stats()
    assert stats["trees"] == 1 and stats["keys"] == 1 and stats["wal_enabled"] is True
    assert "karma_keys 1" in db.metrics().splitlines()


def test_request_and_request_line(db):
    big = 2**63 - 1  # the largest integer the wire accepts in a request (spec/protocol.md 7.1)
    assert db.request("counter.increment", series="s", key=big, bucket=D1, value=3) == 3
    assert db.request("counter.sum", series="s", key=big) == 3
    assert db.request("counter.batch_sum", series="s", keys=[big, 1]) == [
        {"key": big, "value": 3},
        {"key": 1, "value": 0},
    ]
    # dates become buckets; a range is spelled as the wire's object
    assert db.request("counter.sum", series="s", key=big, range={"from": datetime.date(2026, 5, 1), "to": D1}) == 3
    assert db.request_line('{"v":2,"op":"counter.sum","series":"s","key":9223372036854775807}') == 3
    assert db.request_line('{"v":2,"op":"system.ping"}\n') == "pong"
    assert db.request("tree.list") == ["s"]


def test_ingest_commits_and_numbers_chunks(db):
    with db.ingest("st-1", "add") as st:
        assert st.status == "active" and st.next_chunk_seq == 1
        r = st.chunk("s", [(1, D1, 2), (2, D1, 3)])
        assert r["applied"] == 2 and r["total"] == 5 and r["chunk_seq"] == 1 and r["skipped"] is False
        assert st.chunk("s", [(1, D2, 1)])["chunk_seq"] == 2
        # the same chunk again (same seq and payload) is skipped, not applied twice
        assert st.chunk("s", [(1, D2, 1)], chunk_seq=2)["skipped"] is True
    assert st.status == "committed"
    assert db.batch_sum("s", [1, 2]) == [3, 3]
    # begin again: the stream is already committed
    again = db.ingest("st-1", "add")
    assert again.begin()["status"] == "already_committed"


def test_ingest_aborts_on_exception(db):
    with pytest.raises(RuntimeError, match="boom"):
        with db.ingest("st-2", "replace_series") as st:
            st.chunk("r", [(1, D1, 9)])
            raise RuntimeError("boom")
    assert st.status == "aborted"
    with pytest.raises(karma.NotFoundError):
        db.info("r")  # replace_series stages privately: nothing became visible


def test_ingest_resumes_after_last_chunk(db):
    first = db.ingest("st-3", "set", granularity="day")
    first.begin()
    first.chunk("s", [(1, D1, 5)])
    # a new object for the same stream continues at chunk 2
    with db.ingest("st-3", "set", granularity="day") as st:
        assert st.next_chunk_seq == 2
        st.chunk("s", [(2, D1, 6)])
    assert db.batch_sum("s", [1, 2]) == [5, 6]
    with pytest.raises(karma.IdempotencyConflictError):
        db.ingest("st-3", "add").begin()


def test_idempotency_prune(db):
    db.request("counter.increment", series="s", key=1, bucket=D1, idempotency_key="a")
    assert db.idempotency_prune(0) == 0
    assert db.idempotency_prune(datetime.datetime(2000, 1, 1)) == 0
    assert db.idempotency_prune("2000-01-01T00:00:00Z", limit=10) == 0
    assert db.idempotency_prune(2**40, limit=1) == 1
    assert db.idempotency_prune(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)) == 0


def test_context_manager_closes(db):
    with db as same:
        assert same is db
        assert not db.closed
    assert db.closed
    with pytest.raises(karma.KarmaError, match="closed") as info:
        db.sum("s", 1)
    assert info.value.kind == "closed" and info.value.code is None
    db.close()  # idempotent


def test_engine_reopens_durably(tmp_path):
    path = tmp_path / "data"
    with karma.Engine(path, wal_fsync=False) as e:
        e.increment("s", 1, 5, bucket=D1)
        e.batch_add("s", [(2, D2, 7)])
    with karma.Engine(str(path)) as e:
        assert e.batch_sum("s", [1, 2]) == [5, 7]
    with pytest.raises(TypeError, match="unexpected option"):
        karma.Engine(path, no_such_option=1)


def test_engine_options_come_from_the_engine_table():
    # A value the option does not take is a ValidationError with the table's text.
    with pytest.raises(karma.ValidationError, match='option role must be master or slave, got "primary"'):
        karma.Engine(role="primary")
    with pytest.raises(karma.ValidationError, match="option wal_fsync must be always, everysec or never"):
        karma.Engine(wal_fsync="sometimes")
    with pytest.raises(karma.ValidationError, match="option max_request_bytes must be an integer"):
        karma.Engine(max_request_bytes=-1)
    # A value of the wrong type is a TypeError.
    with pytest.raises(TypeError, match="option wal must be true or false"):
        karma.Engine(wal=1)
    with pytest.raises(TypeError, match="option wal_segment_bytes must be an integer"):
        karma.Engine(wal_segment_bytes="5")
    # Every option of the table is taken, the ingest limits included: one
    # stream allowed means a second is refused.
    with karma.Engine(ingest_max_streams=1, recovery_max_sources=2, role=None, auth_token="") as e:
        e.request_line('{"v":2,"op":"ingest.begin","stream_id":"a","mode":"add"}')
        with pytest.raises(karma.LimitExceededError):
            e.request_line('{"v":2,"op":"ingest.begin","stream_id":"b","mode":"add"}')


def test_in_memory_engine_and_repr(tmp_path):
    e = karma.Engine()
    assert repr(e) == "<karma.Engine in memory>"
    e.increment("s", 1)
    with pytest.raises(karma.ValidationError):
        e.snapshot_all()  # no data directory
    e.close()
    assert repr(e) == "<karma.Engine (closed)>"
    assert "karma.Engine path=" in repr(karma.Engine(tmp_path / "x"))


def test_client_config(server):
    with karma.Client(
        server.url,
        pool_size=2,
        connect_timeout=1,
        read_timeout=2.5,
        write_timeout=2,
        checkout_timeout=0.5,
        token=None,
    ) as c:
        assert c.ping() == "pong"
        assert repr(c) == f"<karma.Client 127.0.0.1:{server.port}>"
    with pytest.raises(karma.ValidationError, match="Invalid Karma URL"):
        karma.Client("http://x")
    with pytest.raises(karma.ValidationError):
        karma.Client(server.url, pool_size=0)
    with pytest.raises(karma.ValidationError):
        karma.Client(server.url, read_timeout=-1)


def test_client_from_env(server, monkeypatch):
    monkeypatch.setenv("KARMA_URL", server.url)
    with karma.Client() as c:
        assert c.ping() == "pong"
