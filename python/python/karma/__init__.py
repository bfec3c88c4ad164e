"""Karma: day-bucketed u64 usage counters.

``karma.Engine(path=None, **options)`` runs the database in this process;
``karma.Client(url=None, ...)`` talks to a ``karma`` server. Both have the
same methods, so switching is one line::

    import karma

    with karma.Engine("/var/lib/karma") as db:   # or karma.Client("karma://127.0.0.1:8080")
        db.increment("api_requests", 42)
        db.sum("api_requests", 42)

Errors are ``karma.KarmaError`` subclasses, one per protocol error code.
"""

from __future__ import annotations

import os as _os

from . import _errors, _karma
from ._errors import (
    ERROR_CLASSES,
    ConnectionError,
    ForbiddenError,
    IdempotencyConflictError,
    InternalError,
    InvalidJsonError,
    KarmaError,
    LimitExceededError,
    NotFoundError,
    ProtocolError,
    QueryTimeoutError,
    ReplicationError,
    ReplicationGapError,
    RequestTooLargeError,
    ResponseTooLargeError,
    TimeoutError,
    UnauthorizedError,
    UnknownCommandError,
    UnsupportedProtocolError,
    ValidationError,
)
from ._karma import Client, Engine, Ingest

__version__: str = _karma.__version__

# An Engine opened before a fork must not be used in the child (its WAL
# writer thread is not there); the native module tracks forks through this.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_karma._after_fork_in_child)

__all__ = ["Engine", "Client", "Ingest", *_errors.__all__]
