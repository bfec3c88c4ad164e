"""Type stubs of the karma package (the classes live in karma._karma)."""

import builtins
import datetime
import os
from types import TracebackType
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

__version__: str

Bucket = Union[int, datetime.date, datetime.datetime]
"""A day: int YYYYMMDD, a date, or a datetime (converted to UTC; naive = UTC)."""
Range = Union[Tuple[Bucket, Bucket], Sequence[Bucket], Mapping[str, Bucket]]
"""(from, to), both inclusive, or {"from": .., "to": ..}."""
Item = Tuple[int, Bucket, int]
"""(key, bucket, value)."""

_Self = TypeVar("_Self", bound="_Api")

class _Api:
    """The methods Engine and Client share. Keys and values are ints 0..2**64-1
    (negative or larger ones raise ValidationError, a ValueError)."""

    def increment(self, series: str, key: int, value: Optional[int] = None, bucket: Optional[Bucket] = None) -> int:
        """Adds value (default 1) to one bucket (default: today, UTC); returns the value."""
    def decrement(self, series: str, key: int, value: Optional[int] = None, bucket: Optional[Bucket] = None) -> int:
        """Subtracts up to value (never below zero); returns the requested value."""
    def consume(
        self,
        series: str,
        key: int,
        limit: int,
        value: Optional[int] = None,
        bucket: Optional[Bucket] = None,
        window: Optional[Literal["day", "days", "month"]] = None,
        days: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Adds value (default 1) only if the window's total plus value stays within limit, atomically;
        {"allowed", "used", "remaining", "limit", "range_from", "range_to"}. A refusal changes nothing."""
    def sum(self, series: str, key: int, range: Optional[Range] = None) -> int: ...
    def batch_sum(self, series: str, keys: Sequence[int], range: Optional[Range] = None) -> List[int]: ...
    def multi_sum(self, items: Sequence[Tuple[str, int]], range: Optional[Range] = None) -> List[int]: ...
    def points(self, series: str, key: int, range: Range) -> List[Tuple[int, int]]:
        """(bucket YYYYMMDD, value) pairs of one counter."""
    def series(self, series: str, key: int, range: Range) -> List[Tuple[int, int]]:
        """Same as points()."""
    def batch_add(self, series: str, items: Sequence[Item]) -> int:
        """Adds every item atomically; returns the total added."""
    def batch_set(self, series: str, items: Sequence[Item]) -> int:
        """Sets exact values (0 deletes); returns the item count."""
    def reset(self, series: str, key: Optional[int] = None) -> None: ...
    def batch_reset(self, series: str, keys: Sequence[int]) -> Dict[str, int]:
        """{"reset": n, "missing": m}."""
    def delete_range(self, series: str, range: Range, key: Optional[int] = None) -> None: ...
    def batch_delete_range(self, series: str, keys: Sequence[int], range: Range) -> Dict[str, int]:
        """{"deleted": n, "missing": m}."""
    def create_series(self, series: str) -> None: ...
    def drop_series(self, series: str) -> None: ...
    def list_series(self) -> List[str]: ...
    def info(self, series: str) -> Dict[str, Any]:
        """{"tree", "key_count", "bucket_count", "total"}."""
    def keys(self, series: str, cursor: Optional[int] = None, limit: Optional[int] = None) -> Dict[str, Any]:
        """{"tree", "limit", "cursor", "next_cursor", "keys": [(key, total), ...]}."""
    def top(self, series: str, limit: Optional[int] = None, range: Optional[Range] = None) -> List[Tuple[int, int]]: ...
    def summary(self, series: str, range: Optional[Range] = None) -> Dict[str, Any]:
        """{"tree", "range": (from, to) | None, "total", "active_keys", "bucket_count"}."""
    def delete_before(self, series: str, before: Bucket) -> None: ...
    def compact(self, series: Optional[str] = None) -> None: ...
    def snapshot_all(self) -> None: ...
    def ping(self) -> str: ...
    def health(self) -> Dict[str, Any]: ...
    def stats(self) -> Dict[str, Any]: ...
    def metrics(self) -> str: ...
    def idempotency_prune(
        self, before: Union[int, str, datetime.date, datetime.datetime], limit: Optional[int] = None
    ) -> int:
        """Deletes idempotency records older than before; returns how many."""
    def ingest(self, stream_id: str, mode: Literal["add", "set", "replace_series"], granularity: Optional[str] = None) -> Ingest:
        """A context manager: begins on enter, chunk() numbers chunks, commits on a clean exit, aborts on an exception."""
    def request(self, op: str, **fields: Any) -> Any:
        """Any protocol v2 op; returns the response value."""
    def request_line(self, line: str) -> Any:
        """One raw request line; returns the response value."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self: _Self) -> _Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Engine(_Api):
    """The database in this process; durable when given a path."""

    # The keywords below are the engine's table of options, in its order
    # (tests/test_option_tables.py checks them against Engine._OPTIONS).

    def __init__(
        self,
        path: Union[str, os.PathLike[str], None] = None,
        *,
        restore: bool = ...,
        wal: bool = ...,
        wal_fsync: Union[bool, Literal["always", "everysec", "never"]] = ...,
        wal_segment_bytes: int = ...,
        wal_batch_size: int = ...,
        wal_batch_wait_us: int = ...,
        max_request_bytes: int = ...,
        max_response_bytes: int = ...,
        query_timeout_ms: int = ...,
        auth_token: Optional[str] = ...,
        read_auth_token: Optional[str] = ...,
        role: Literal["master", "slave"] = ...,
        dump_retention_per_tree: int = ...,
        idempotency_max_records: int = ...,
        idempotency_max_age_seconds: int = ...,
        ingest_max_streams: int = ...,
        ingest_max_staged_items: int = ...,
        ingest_stream_ttl_seconds: int = ...,
        recovery_max_sources: int = ...,
    ) -> None: ...

class Client(_Api):
    """A pooled connection to a karma server (karma://host:port, or $KARMA_URL)."""

    # The keywords below are the client's table of options, in its order
    # (tests/test_option_tables.py checks them against Client._OPTIONS).

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        token: Optional[str] = None,
        pool_size: Optional[int] = None,
        checkout_timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        write_timeout: Optional[float] = None,
        max_response_bytes: Optional[int] = None,
    ) -> None: ...

class Ingest:
    stream_id: str
    mode: str
    granularity: Optional[str]
    next_chunk_seq: int
    status: str
    def begin(self) -> Dict[str, Any]: ...
    def chunk(self, series: str, items: Sequence[Item], chunk_seq: Optional[int] = None) -> Dict[str, Any]: ...
    def commit(self) -> Dict[str, Any]: ...
    def abort(self) -> Dict[str, Any]: ...
    def __enter__(self) -> Ingest: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class KarmaError(Exception):
    code: Optional[str]
    """The protocol error_code; None for client transport failures."""
    kind: Optional[str]
    """engine, server, invalid, argument, connection, timeout, pool_timeout, protocol, closed or fork."""
    message: str

class InvalidJsonError(KarmaError): ...
class UnsupportedProtocolError(KarmaError): ...
class UnknownCommandError(KarmaError): ...
class ValidationError(KarmaError, ValueError): ...
class NotFoundError(KarmaError): ...
class UnauthorizedError(KarmaError): ...
class ForbiddenError(KarmaError): ...
class RequestTooLargeError(KarmaError): ...
class ResponseTooLargeError(KarmaError): ...
class QueryTimeoutError(KarmaError): ...
class IdempotencyConflictError(KarmaError): ...
class ReplicationGapError(KarmaError): ...
class ReplicationError(KarmaError): ...
class InternalError(KarmaError): ...
class LimitExceededError(KarmaError): ...
class ConnectionError(KarmaError, builtins.ConnectionError): ...
class TimeoutError(KarmaError, builtins.TimeoutError): ...
class ProtocolError(ConnectionError): ...

ERROR_CLASSES: Dict[str, Type[KarmaError]]
