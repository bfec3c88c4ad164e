"""Each protocol error code raises its own class, in-process and over the
network; client transport failures raise karma.ConnectionError / TimeoutError."""

from __future__ import annotations

import builtins
import threading

import pytest

import karma
from karma import _karma

CODES = {
    "invalid_json": karma.InvalidJsonError,
    "unsupported_protocol": karma.UnsupportedProtocolError,
    "unknown_command": karma.UnknownCommandError,
    "validation_error": karma.ValidationError,
    "not_found": karma.NotFoundError,
    "unauthorized": karma.UnauthorizedError,
    "forbidden": karma.ForbiddenError,
    "request_too_large": karma.RequestTooLargeError,
    "response_too_large": karma.ResponseTooLargeError,
    "query_timeout": karma.QueryTimeoutError,
    "idempotency_conflict": karma.IdempotencyConflictError,
    "replication_gap": karma.ReplicationGapError,
    "replication_error": karma.ReplicationError,
    "internal_error": karma.InternalError,
    "limit_exceeded": karma.LimitExceededError,
}


def raises(cls, code, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert type(exc) is cls, type(exc)
    assert isinstance(exc, karma.KarmaError)
    assert exc.code == code
    assert exc.kind in ("engine", "server")
    assert str(exc) == exc.message and exc.message
    return exc


def test_the_hierarchy():
    assert karma.ERROR_CLASSES == CODES
    for code, cls in CODES.items():
        assert issubclass(cls, karma.KarmaError) and cls.code == code
        exc = _karma._error_for_code(code, "m")
        assert type(exc) is cls and exc.code == code and str(exc) == "m"
    assert issubclass(karma.ValidationError, ValueError)
    assert issubclass(karma.ConnectionError, builtins.ConnectionError)
    assert issubclass(karma.TimeoutError, builtins.TimeoutError)
    assert issubclass(karma.ProtocolError, karma.ConnectionError)
    assert type(_karma._error_for_code("no_such_code", "m")) is karma.KarmaError


def test_every_code_in_the_engine_table_has_its_class():
    # karma/_errors.py spells its classes out (for type checkers and
    # docs); the extension's table is the engine's list of codes, so a code
    # added there without its Python class fails here.
    table = dict(_karma._error_classes())
    assert set(table) == set(karma.ERROR_CLASSES)
    for code, name in table.items():
        assert name in karma.__all__
        assert getattr(karma, name) is karma.ERROR_CLASSES[code]
        assert karma.ERROR_CLASSES[code].code == code


def test_replication_and_internal_errors_have_classes():
    # No well-formed client request produces these two (engine/tests/errors.rs
    # says the same): replication_error comes from applying a master's WAL
    # page, internal_error from engine faults. Their mapping is checked here.
    for code in ("replication_error", "internal_error", "limit_exceeded"):
        exc = _karma._error_for_code(code, "why")
        assert type(exc) is CODES[code] and exc.kind == "server"


# ---------------------------------------------------------------- both modes


def test_envelope_level_errors(db):
    raises(karma.InvalidJsonError, "invalid_json", db.request_line, "{")
    raises(karma.UnsupportedProtocolError, "unsupported_protocol", db.request_line, '{"v":1,"op":"system.ping"}')
    raises(karma.UnknownCommandError, "unknown_command", db.request, "no.such_op")
    raises(karma.RequestTooLargeError, "request_too_large", db.request, "system.ping", pad="x" * 5000)


def test_validation_and_not_found(db):
    e = raises(karma.ValidationError, "validation_error", db.increment, "s", 1, 0)
    assert e.message == "Field value must be greater than 0"
    assert isinstance(e, ValueError)
    e = raises(karma.NotFoundError, "not_found", db.info, "missing")
    assert e.message == 'Tree "missing" not found'
    raises(karma.NotFoundError, "not_found", db.sum, "missing", 1)


def test_idempotency_conflict(db):
    db.request("counter.increment", series="s", key=1, bucket=20260501, idempotency_key="k")
    raises(
        karma.IdempotencyConflictError,
        "idempotency_conflict",
        db.request,
        "counter.increment",
        series="s",
        key=2,
        bucket=20260501,
        idempotency_key="k",
    )


def test_replication_gap(db):
    db.increment("s", 1, bucket=20260501)
    db.snapshot_all()
    e = raises(karma.ReplicationGapError, "replication_gap", db.request, "replication.entries", after_lsn=0)
    assert "bootstrap from snapshot" in e.message


def test_argument_errors_are_raised_before_sending(db):
    with pytest.raises(karma.ValidationError) as info:
        db.increment("s", -1)
    assert info.value.kind == "argument" and info.value.code == "validation_error"
    assert "key must be greater than or equal to 0, got -1" in str(info.value)
    with pytest.raises(karma.ValidationError, match=r"value must be at most 2\*\*64-1"):
        db.increment("s", 1, 2**64)
    with pytest.raises(karma.ValidationError, match=r"keys\[1\] must be greater than or equal to 0"):
        db.batch_sum("s", [1, -2])
    with pytest.raises(karma.ValidationError, match=r"items\[0\] value"):
        db.batch_add("s", [(1, 20260501, -5)])
    with pytest.raises(TypeError, match="key must be an int"):
        db.increment("s", "1")
    with pytest.raises(TypeError, match="bucket must be an int YYYYMMDD"):
        db.increment("s", 1, bucket="2026-05-01")
    with pytest.raises(TypeError, match="range must be a"):
        db.sum("s", 1, range=(1, 2, 3))
    with pytest.raises(TypeError):
        db.increment(1, 1)


# ---------------------------------------------------------------- per mode: options and flags


def test_unauthorized_and_forbidden_engine():
    e = karma.Engine(auth_token="w", read_auth_token="r")
    raises(karma.UnauthorizedError, "unauthorized", e.request, "system.ping")
    raises(karma.UnauthorizedError, "unauthorized", e.request, "system.ping", token="nope")
    assert e.request("system.ping", token="r") == "pong"
    raises(karma.ForbiddenError, "forbidden", e.request, "counter.increment", series="s", key=1, token="r")
    slave = karma.Engine(role="slave")
    e = raises(karma.ForbiddenError, "forbidden", slave.increment, "s", 1)
    assert e.message == "Slave role cannot execute command increment"


def test_unauthorized_and_forbidden_client(start_server):
    server = start_server("--auth-token=w", "--read-auth-token=r")
    with karma.Client(server.url) as c:
        e = raises(karma.UnauthorizedError, "unauthorized", c.ping)
        assert e.kind == "server"
    with karma.Client(server.url, token="r") as c:
        assert c.ping() == "pong"
        raises(karma.ForbiddenError, "forbidden", c.increment, "s", 1)
    with karma.Client(server.url + "?token=w") as c:
        assert c.increment("s", 1) == 1


def test_response_too_large(start_server):
    e = karma.Engine(max_response_bytes=100)
    server = start_server("--max-response-bytes=100")
    with karma.Client(server.url) as c:
        for db in (e, c):
            for i in range(10):
                db.create_series(f"series-with-a-long-name-{i}")
            raises(karma.ResponseTooLargeError, "response_too_large", db.request, "tree.list")
    # the in-process typed API builds no response line, so it has no size limit
    assert len(e.list_series()) == 10


def fill_for_scan(db):
    for chunk in range(30):
        db.batch_add("big", [(k + chunk * 10_000, 20260101, 1) for k in range(10_000)])


def scan_until_timeout(db):
    for _ in range(20):
        try:
            db.request("tree.series", series="big", range={"from": 20260101, "to": 20260101})
        except karma.QueryTimeoutError as e:
            return e
    pytest.fail("a 300000-counter scan never exceeded the 1 ms query timeout")


def test_query_timeout_engine():
    e = karma.Engine(query_timeout_ms=1, max_response_bytes=0)
    fill_for_scan(e)
    exc = scan_until_timeout(e)
    assert exc.code == "query_timeout" and exc.message == "Query exceeded 1 ms"


def test_query_timeout_client(start_server):
    server = start_server("--query-timeout-ms=1", "--max-response-bytes=0", "--max-request-bytes=1048576")
    with karma.Client(server.url, read_timeout=30) as c:
        fill_for_scan(c)
        exc = scan_until_timeout(c)
        assert exc.code == "query_timeout" and exc.kind == "server"


def test_client_refuses_u64_over_i64_before_sending(server):
    # The wire (spec/protocol.md 7.1) accepts request integers up to 2**63-1
    # only, so the client refuses larger ones itself; the engine's typed API
    # takes the full u64 range.
    with karma.Client(server.url) as c:
        with pytest.raises(karma.ValidationError) as info:
            c.increment("s", 2**63)
        assert info.value.code == "validation_error" and info.value.kind == "invalid"
        assert "9223372036854775807" in info.value.message
    e = karma.Engine()
    assert e.increment("s", 2**64 - 1) == 1
    assert e.sum("s", 2**64 - 1) == 1


# ---------------------------------------------------------------- transport


def test_connection_error():
    from conftest import free_port

    with karma.Client(f"karma://127.0.0.1:{free_port()}", connect_timeout=1) as c:
        with pytest.raises(karma.ConnectionError) as info:
            c.ping()
    assert isinstance(info.value, builtins.ConnectionError)
    assert info.value.code is None and info.value.kind == "connection"


def test_read_timeout(fake_server):
    port, _ = fake_server("silent")
    with karma.Client(f"karma://127.0.0.1:{port}", read_timeout=0.2) as c:
        with pytest.raises(karma.TimeoutError) as info:
            c.sum("s", 1)
    assert isinstance(info.value, builtins.TimeoutError)
    assert info.value.kind == "timeout" and info.value.code is None


def test_pool_timeout(fake_server):
    port, proc = fake_server("silent")
    with karma.Client(f"karma://127.0.0.1:{port}", pool_size=1, read_timeout=1, checkout_timeout=0.1) as c:
        failures = []
        holder = threading.Thread(target=lambda: failures.append(pytest.raises(karma.TimeoutError, c.sum, "s", 1)))
        holder.start()
        try:
            assert proc.stderr.readline() == "arrived\n"  # the only connection is now busy
            with pytest.raises(karma.TimeoutError) as info:
                c.sum("s", 2)
            assert info.value.kind == "pool_timeout"
        finally:
            holder.join()
        assert failures[0].value.kind == "timeout"


def test_protocol_error(fake_server):
    port, _ = fake_server("garbage")
    with karma.Client(f"karma://127.0.0.1:{port}") as c:
        with pytest.raises(karma.ProtocolError) as info:
            c.ping()
    assert isinstance(info.value, karma.ConnectionError) and info.value.kind == "protocol"
