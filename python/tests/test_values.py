"""u64 end to end, and date / datetime buckets, in both modes."""

from __future__ import annotations

import datetime

import pytest

import karma

U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
UTC = datetime.timezone.utc


def test_u64_max_round_trip(db):
    # The wire takes at most 2**63-1 per request (spec/protocol.md 7.1), so
    # u64::MAX takes three writes; the sum comes back exact.
    assert db.increment("s", 7, I64_MAX, bucket=20260501) == I64_MAX
    assert db.increment("s", 7, I64_MAX, bucket=20260502) == I64_MAX
    assert db.increment("s", 7, 1, bucket=20260503) == 1
    assert db.sum("s", 7) == U64_MAX
    assert db.batch_sum("s", [7]) == [U64_MAX]
    assert db.multi_sum([("s", 7)]) == [U64_MAX]
    assert db.info("s")["total"] == U64_MAX
    assert db.top("s") == [(7, U64_MAX)]
    assert db.keys("s")["keys"] == [(7, U64_MAX)]
    assert db.request("counter.sum", series="s", key=7) == U64_MAX
    with pytest.raises(karma.ValidationError, match="Counter overflow key=7 bucket=20260504"):
        db.increment("s", 7, 1, bucket=20260504)
    assert db.sum("s", 7) == U64_MAX


def test_out_of_range_ints_are_validation_errors(db):
    for bad in (-1, -(2**70), 2**64, 2**100):
        with pytest.raises(karma.ValidationError) as info:
            db.increment("s", bad)
        assert isinstance(info.value, ValueError)
        assert "key must be" in str(info.value) and str(bad) in str(info.value)
    with pytest.raises(ValueError, match="value must be greater than or equal to 0"):
        db.increment("s", 1, -3)
    with pytest.raises(ValueError, match="bucket must be"):
        db.increment("s", 1, bucket=-20260501)
    with pytest.raises(ValueError, match=r"items\[0\] key"):
        db.batch_set("s", [(-1, 20260501, 1)])
    with pytest.raises(ValueError, match="cursor"):
        db.keys("s", cursor=-1)
    with pytest.raises(ValueError, match="does not fit"):
        db.request("counter.sum", series="s", key=2**64)
    assert db.list_series() == []  # nothing was sent


def test_negative_ints_reach_the_server_through_request(db):
    with pytest.raises(karma.ValidationError, match="Field key must be greater than or equal to 0") as info:
        db.request("counter.sum", series="s", key=-1)
    assert info.value.kind in ("engine", "server")


def test_date_buckets(db):
    db.increment("s", 1, 1, bucket=datetime.date(2026, 5, 1))
    db.increment("s", 1, 2, bucket=datetime.datetime(2026, 5, 2, 23, 59))  # naive = UTC
    # 2026-05-02 22:30 at UTC-5 is 2026-05-03 03:30 UTC
    db.increment("s", 1, 4, bucket=datetime.datetime(2026, 5, 2, 22, 30, tzinfo=datetime.timezone(-datetime.timedelta(hours=5))))
    # 2026-05-05 08:00 at UTC+9 is 2026-05-04 23:00 UTC
    db.increment("s", 1, 8, bucket=datetime.datetime(2026, 5, 5, 8, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=9))))
    db.increment("s", 1, 16, bucket=datetime.datetime(2026, 5, 5, 0, 0, tzinfo=UTC))
    expected = [(20260501, 1), (20260502, 2), (20260503, 4), (20260504, 8), (20260505, 16)]
    assert db.points("s", 1, (datetime.date(2026, 5, 1), datetime.date(2026, 5, 5))) == expected
    assert db.points("s", 1, (20260501, 20260505)) == expected
    assert db.sum("s", 1, range=(datetime.date(2026, 5, 2), datetime.datetime(2026, 5, 3, 12, tzinfo=UTC))) == 6
    assert db.sum("s", 1, range=[20260504, datetime.date(2026, 5, 4)]) == 8
    db.batch_add("s", [(2, datetime.date(2026, 5, 1), 1), (2, 20260502, 1)])
    assert db.batch_sum("s", [2], range=(datetime.date(2026, 5, 1), datetime.date(2026, 5, 1))) == [1]
    db.delete_range("s", (datetime.date(2026, 5, 1), datetime.date(2026, 5, 2)), key=1)
    assert db.sum("s", 1) == 28
    db.delete_before("s", datetime.datetime(2026, 5, 5, 1, tzinfo=UTC))
    assert db.sum("s", 1) == 16


def test_default_bucket_is_today_utc(db):
    db.increment("s", 1, 3)
    today = datetime.datetime.now(UTC).date()
    assert db.points("s", 1, (today, today)) == [(int(today.strftime("%Y%m%d")), 3)]


def test_invalid_dates_are_refused_by_the_engine(db):
    with pytest.raises(karma.ValidationError, match="Invalid bucket date"):
        db.sum("s", 1, range=(20260230, 20260301))
