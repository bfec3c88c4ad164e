"""`consume` (counter.consume) on karma.Engine and karma.Client (`db`): the
answer, each window kind, refusals that change nothing, argument errors, and
threads racing for the last units of a limit."""

from __future__ import annotations

import datetime
import threading

import pytest

import karma


def answer(allowed, used, limit, range_from, range_to):
    return {
        "allowed": allowed,
        "used": used,
        "remaining": max(limit - used, 0),
        "limit": limit,
        "range_from": range_from,
        "range_to": range_to,
    }


def test_consume_allows_up_to_the_limit_then_refuses(db):
    assert db.consume("q", 1, 3, value=2, bucket=20260501) == answer(True, 2, 3, 20260501, 20260501)
    assert db.consume("q", 1, 3, value=2, bucket=20260501) == answer(False, 2, 3, 20260501, 20260501)
    assert db.consume("q", 1, 3, bucket=20260501) == answer(True, 3, 3, 20260501, 20260501)
    assert db.consume("q", 1, 3, bucket=20260501) == answer(False, 3, 3, 20260501, 20260501)
    assert db.sum("q", 1) == 3  # refusals added nothing
    # Other writes are not held to the limit: remaining stays at 0, never negative.
    db.increment("q", 1, 5, bucket=20260501)
    assert db.consume("q", 1, 3, bucket=20260501) == answer(False, 8, 3, 20260501, 20260501)


def test_a_refusal_creates_no_series(db):
    assert db.consume("never", 1, 1, value=2, bucket=20260501)["allowed"] is False
    assert db.list_series() == []


def test_each_window_kind(db):
    db.increment("w", 7, 4, bucket=20261230)
    db.increment("w", 7, 2, bucket=20261231)
    # day: only the bucket's day; the new year starts empty.
    assert db.consume("w", 7, 2, bucket=20270101, window="day") == answer(True, 1, 2, 20270101, 20270101)
    # days across the year boundary, with `days` alone implying the window.
    assert db.consume("w", 7, 10, bucket=20270101, days=3) == answer(True, 8, 10, 20261230, 20270101)
    assert db.consume("w", 7, 4, bucket=20270101, window="days", days=2) == answer(False, 4, 4, 20261231, 20270101)
    # month to date: December's days do not count in January...
    assert db.consume("w", 7, 3, bucket=datetime.date(2027, 1, 2), window="month") == answer(
        True, 3, 3, 20270101, 20270102
    )
    # ...and in December the whole month up to the bucket does.
    assert db.consume("w", 7, 6, bucket=20261231, window="month") == answer(False, 6, 6, 20261201, 20261231)
    assert db.points("w", 7, (20261201, 20270131)) == [(20261230, 4), (20261231, 2), (20270101, 2), (20270102, 1)]


def test_the_typed_answer_is_the_protocol_answer(db):
    typed = db.consume("p", 5, 10, value=3, bucket=20260501, window="month")
    raw = db.request("counter.consume", series="p", key=5, limit=10, bucket=20260501, window="month")
    assert typed == answer(True, 3, 10, 20260501, 20260501)
    assert raw == answer(True, 4, 10, 20260501, 20260501)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": 0}, "Field value must be greater than 0"),
        ({"days": 0}, "Field days must be greater than 0"),
        ({"days": 367}, "Field days exceeds max size of 366"),
        ({"window": "days"}, "Field days is required"),
        ({"window": "month", "days": 2}, "Field days requires window days"),
        ({"window": "week"}, "Field window must be day, days or month, got week"),
        ({"bucket": 20260230}, "Invalid bucket date"),
    ],
)
def test_invalid_arguments_raise_validation_error_and_change_nothing(db, kwargs, message):
    db.increment("e", 1, 1, bucket=20260501)
    with pytest.raises(karma.ValidationError) as info:
        db.consume("e", 1, 5, **{"bucket": 20260501, **kwargs})
    assert info.value.message == message
    assert db.sum("e", 1) == 1


def test_missing_limit_negative_limit_and_overflow(db):
    with pytest.raises(TypeError):
        db.consume("e", 1)  # limit is required
    with pytest.raises(karma.ValidationError):
        db.consume("e", 1, -1)
    big = 2**63 - 1
    db.increment("e", 1, big, bucket=20260501)
    db.increment("e", 1, big, bucket=20260502)
    with pytest.raises(karma.ValidationError) as info:
        db.consume("e", 1, big, value=2, bucket=20260503, days=3)
    assert info.value.message == "Counter overflow key=1 bucket=20260503"
    assert db.sum("e", 1) == 2**64 - 2


def test_eight_threads_consume_exactly_the_limit(db):
    threads, attempts, limit = 8, 5000, 1000
    allowed = []
    barrier = threading.Barrier(threads)

    def work():
        barrier.wait()
        mine = 0
        for _ in range(attempts // threads):
            mine += db.consume("race", 42, limit, bucket=20260528, window="month")["allowed"]
        allowed.append(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(allowed) == threads
    assert sum(allowed) == limit
    assert db.sum("race", 42) == limit


def test_an_idempotent_retry_answers_the_first_response_and_counts_once(db):
    fields = dict(series="i", key=1, limit=5, value=2, bucket=20260501, idempotency_key="retry-1")
    first = db.request("counter.consume", **fields)
    assert db.request("counter.consume", **fields) == first == answer(True, 2, 5, 20260501, 20260501)
    assert db.sum("i", 1) == 2
    with pytest.raises(karma.IdempotencyConflictError):
        db.request("counter.consume", **{**fields, "limit": 6})
