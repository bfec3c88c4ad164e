"""One script, run against karma.Engine and against karma.Client talking to a
real `karma` server: every result and every error must be identical."""

from __future__ import annotations

import datetime

import karma

D = datetime.date


def script(db):
    out = []

    def step(name, fn, *args, **kwargs):
        try:
            out.append((name, fn(*args, **kwargs)))
        except karma.KarmaError as e:
            out.append((name, "raised", type(e).__name__, e.code, e.message))

    step("list empty", db.list_series)
    step("inc", db.increment, "api", 1)
    step("inc bucket", db.increment, "api", 1, 5, bucket=D(2026, 5, 1))
    step("inc datetime", db.increment, "api", 2, 7, bucket=datetime.datetime(2026, 5, 2, 23, 0))
    step("inc max", db.increment, "api", 3, 2**63 - 1, bucket=20260501)
    step("inc max 2", db.increment, "api", 3, 2**63 - 1, bucket=20260502)
    step("inc max 3", db.increment, "api", 3, 1, bucket=20260503)
    step("overflow", db.increment, "api", 3, 1, bucket=20260504)
    step("dec", db.decrement, "api", 1, 2, bucket=20260501)
    step("dec missing bucket", db.decrement, "api", 1, 2, bucket=20260420)
    step("sum", db.sum, "api", 1)
    step("sum range", db.sum, "api", 1, range=(20260501, 20260531))
    step("sum missing series", db.sum, "nope", 1)
    step("sum bad date", db.sum, "api", 1, range=(20260230, 20260301))
    step("sum too many days", db.sum, "api", 1, range=(20200101, 20260101))
    step("batch_sum", db.batch_sum, "api", [1, 2, 3, 4])
    step("multi_sum", db.multi_sum, [("api", 3), ("api", 2), ("nope", 1)])
    step("points", db.points, "api", 3, (20260501, 20260503))
    step("batch_add", db.batch_add, "web", [(k, 20260500 + d, k * d) for k in range(1, 20) for d in range(1, 4)])
    step("batch_add zero", db.batch_add, "web", [(1, 20260501, 0)])
    step("batch_set", db.batch_set, "web", [(1, 20260501, 100), (2, 20260501, 0)])
    step("top", db.top, "web", limit=5)
    step("top range", db.top, "web", 3, range=(20260502, 20260502))
    step("top limit", db.top, "web", limit=5000)
    step("keys", db.keys, "web", limit=7)
    step("keys 2", db.keys, "web", cursor=7, limit=7)
    step("keys limit 0", db.keys, "web", limit=0)
    step("info", db.info, "web")
    step("summary", db.summary, "web")
    step("summary range", db.summary, "web", range=(D(2026, 5, 2), D(2026, 5, 3)))
    step("reset key", db.reset, "web", 5)
    step("batch_reset", db.batch_reset, "web", [6, 7, 999])
    step("delete_range key", db.delete_range, "web", (20260501, 20260501), key=8)
    step("delete_range all", db.delete_range, "web", (20260503, 20260503))
    step("batch_delete_range", db.batch_delete_range, "web", [9, 10, 999], (20260501, 20260502))
    step("info after", db.info, "web")
    step("delete_before", db.delete_before, "web", 20260502)
    step("compact web", db.compact, "web")
    step("compact all", db.compact)
    step("info compacted", db.info, "web")
    step("create", db.create_series, "empty")
    step("create again", db.create_series, "empty")
    step("create bad name", db.create_series, "a/b")
    step("list", db.list_series)
    step("drop", db.drop_series, "empty")
    step("drop missing", db.drop_series, "empty")
    step("ping", db.ping)
    step("request sum", db.request, "counter.sum", series="api", key=3)
    step("request tree.info", db.request, "tree.info", series="api")
    step("request tree.series", db.request, "tree.series", series="api", range={"from": 20260501, "to": 20260502})
    step("request unknown", db.request, "nope")
    step("request_line invalid", db.request_line, "{nope")
    step("request_line v1", db.request_line, '{"v":1,"op":"system.ping"}')
    step("request too large", db.request, "system.ping", pad="y" * 5000)
    step("idem 1", db.request, "counter.increment", series="idem", key=1, bucket=20260501, idempotency_key="k1")
    step("idem 1 again", db.request, "counter.increment", series="idem", key=1, bucket=20260501, idempotency_key="k1")
    step("idem conflict", db.request, "counter.increment", series="idem", key=2, bucket=20260501, idempotency_key="k1")
    step("idem sum", db.sum, "idem", 1)
    step("consume", db.consume, "quota", 1, 2, bucket=20260501)
    step("consume month refused", db.consume, "quota", 1, 2, value=2, bucket=20260502, window="month")
    step("consume days", db.consume, "quota", 1, 3, bucket=20260502, days=2)
    step("consume zero", db.consume, "quota", 1, 2, value=0, bucket=20260501)
    step("consume bad window", db.consume, "quota", 1, 2, window="week")
    step("consume idem", db.request, "counter.consume", series="quota", key=2, limit=1, bucket=20260501, idempotency_key="c1")
    step("consume idem again", db.request, "counter.consume", series="quota", key=2, limit=1, bucket=20260501, idempotency_key="c1")
    step("consume sums", db.batch_sum, "quota", [1, 2])
    step("prune none", db.idempotency_prune, 0)
    step("prune all", db.idempotency_prune, 2**40, limit=100)

    def ingest(stream, mode, chunks, fail=False):
        try:
            with db.ingest(stream, mode) as st:
                res = [st.chunk(series, items) for series, items in chunks]
                if fail:
                    raise RuntimeError("abort me")
                return res, st.next_chunk_seq
        except RuntimeError:
            return "aborted", st.status

    step("ingest add", ingest, "s1", "add", [("ing", [(1, 20260501, 2)]), ("ing", [(2, 20260501, 3)])])
    step("ingest replace", ingest, "s2", "replace_series", [("ing", [(9, 20260501, 9)])])
    step("ingest aborted", ingest, "s3", "set", [("ing2", [(1, 20260501, 1)])], fail=True)
    step("ingest bad mode", ingest, "s4", "sideways", [])
    step("ingest rebound", ingest, "s5", "add", [("ing", [(1, 20260501, 1)]), ("other", [(1, 20260501, 1)])])
    step("ingest keys", db.keys, "ing")
    step("ingest ing2", db.list_series)
    step("snapshot", db.snapshot_all)
    step("replication gap", db.request, "replication.entries", after_lsn=0)
    step("after snapshot", db.batch_sum, "api", [1, 2, 3])
    step("reset series", db.reset, "api")
    step("info reset", db.info, "api")
    return out


def test_engine_and_client_give_identical_results(tmp_path, server):
    with karma.Engine(tmp_path / "engine", wal_fsync=False) as e:
        local = script(e)
    with karma.Client(server.url) as c:
        remote = script(c)
    assert len(local) == len(remote)
    for a, b in zip(local, remote):
        assert a == b
    # the script did exercise both outcomes
    assert any(r[1] == "raised" for r in local if len(r) > 2)
    assert ("sum", 4) in local
