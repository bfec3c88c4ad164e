"""Karma's exceptions: one class per protocol v2 ``error_code``.

Every exception has ``.code`` (the wire ``error_code`` string, ``None`` for
client transport failures), ``.kind`` (where it came from: ``"engine"``,
``"server"``, ``"invalid"`` (refused by the client before sending),
``"argument"`` (refused by the binding), ``"connection"``, ``"timeout"``,
``"pool_timeout"``, ``"protocol"``, ``"closed"``, ``"fork"``) and
``.message`` (the engine's message, also ``str(exc)``).
"""

from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "KarmaError",
    "InvalidJsonError",
    "UnsupportedProtocolError",
    "UnknownCommandError",
    "ValidationError",
    "NotFoundError",
    "UnauthorizedError",
    "ForbiddenError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "QueryTimeoutError",
    "IdempotencyConflictError",
    "ReplicationGapError",
    "ReplicationError",
    "InternalError",
    "LimitExceededError",
    "ConnectionError",
    "TimeoutError",
    "ProtocolError",
    "ERROR_CLASSES",
]


class KarmaError(Exception):
    """Base class of every Karma error."""

    code: Optional[str] = None
    kind: Optional[str] = None

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


class InvalidJsonError(KarmaError):
    code = "invalid_json"


class UnsupportedProtocolError(KarmaError):
    code = "unsupported_protocol"


class UnknownCommandError(KarmaError):
    code = "unknown_command"


class ValidationError(KarmaError, ValueError):
    """A refused argument: also a ``ValueError`` (negative or > 2**64-1 ints, bad fields, overflow)."""

    code = "validation_error"


class NotFoundError(KarmaError):
    code = "not_found"


class UnauthorizedError(KarmaError):
    code = "unauthorized"


class ForbiddenError(KarmaError):
    code = "forbidden"


class RequestTooLargeError(KarmaError):
    code = "request_too_large"


class ResponseTooLargeError(KarmaError):
    code = "response_too_large"


class QueryTimeoutError(KarmaError):
    code = "query_timeout"


class IdempotencyConflictError(KarmaError):
    code = "idempotency_conflict"


class ReplicationGapError(KarmaError):
    code = "replication_gap"


class ReplicationError(KarmaError):
    code = "replication_error"


class InternalError(KarmaError):
    code = "internal_error"


class LimitExceededError(KarmaError):
    """A server resource bound was hit (an extension of Karma 1.0)."""

    code = "limit_exceeded"


class ConnectionError(KarmaError, builtins.ConnectionError):
    """The client could not connect, or the connection broke before the answer was complete
    (a write may or may not have been applied)."""


class TimeoutError(KarmaError, builtins.TimeoutError):
    """Connecting, writing, reading, or waiting for a pooled connection took too long."""


class ProtocolError(ConnectionError):
    """The server sent something that is not a v2 response of the expected shape."""


ERROR_CLASSES = {
    cls.code: cls
    for cls in (
        InvalidJsonError,
        UnsupportedProtocolError,
        UnknownCommandError,
        ValidationError,
        NotFoundError,
        UnauthorizedError,
        ForbiddenError,
        RequestTooLargeError,
        ResponseTooLargeError,
        QueryTimeoutError,
        IdempotencyConflictError,
        ReplicationGapError,
        ReplicationError,
        InternalError,
        LimitExceededError,
    )
}


# Shown as karma.NotFoundError etc. in tracebacks and reprs.
for _cls in [KarmaError, ConnectionError, TimeoutError, ProtocolError, *ERROR_CLASSES.values()]:
    _cls.__module__ = "karma"
del _cls
