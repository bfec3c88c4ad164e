//! The one error type of the engine: a stable v2 `error_code` plus a message.
//!
//! Every binding maps [`ErrorCode`] to its own exception class, so the set of
//! codes is part of the public contract (spec/protocol.md §5.1).

use std::fmt;

/// The stable `error_code` strings of protocol v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidJson,
    UnsupportedProtocol,
    UnknownCommand,
    ValidationError,
    NotFound,
    Unauthorized,
    Forbidden,
    RequestTooLarge,
    ResponseTooLarge,
    QueryTimeout,
    IdempotencyConflict,
    ReplicationGap,
    ReplicationError,
    InternalError,
    /// A server resource bound was hit (an extension of Karma 1.0, which
    /// has no such bounds; docs/limits.md).
    LimitExceeded,
}

impl ErrorCode {
    /// Every code: the order of spec/protocol.md §5.1, then our extensions.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidJson,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::UnknownCommand,
        ErrorCode::ValidationError,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RequestTooLarge,
        ErrorCode::ResponseTooLarge,
        ErrorCode::QueryTimeout,
        ErrorCode::IdempotencyConflict,
        ErrorCode::ReplicationGap,
        ErrorCode::ReplicationError,
        ErrorCode::InternalError,
        ErrorCode::LimitExceeded,
    ];

    /// The wire spelling, e.g. `validation_error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::QueryTimeout => "query_timeout",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::ReplicationGap => "replication_gap",
            ErrorCode::ReplicationError => "replication_error",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::LimitExceeded => "limit_exceeded",
        }
    }

    /// Parses a wire spelling back into a code (used by the network client).
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The exception class every language binding raises for this code
    /// (Python `karma.NotFoundError`, Ruby `Karma::NotFoundError`, Node
    /// `NotFoundError`): one name per code, shared so the bindings agree.
    pub const fn class_name(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "InvalidJsonError",
            ErrorCode::UnsupportedProtocol => "UnsupportedProtocolError",
            ErrorCode::UnknownCommand => "UnknownCommandError",
            ErrorCode::ValidationError => "ValidationError",
            ErrorCode::NotFound => "NotFoundError",
            ErrorCode::Unauthorized => "UnauthorizedError",
            ErrorCode::Forbidden => "ForbiddenError",
            ErrorCode::RequestTooLarge => "RequestTooLargeError",
            ErrorCode::ResponseTooLarge => "ResponseTooLargeError",
            ErrorCode::QueryTimeout => "QueryTimeoutError",
            ErrorCode::IdempotencyConflict => "IdempotencyConflictError",
            ErrorCode::ReplicationGap => "ReplicationGapError",
            ErrorCode::ReplicationError => "ReplicationError",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::LimitExceeded => "LimitExceededError",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine error: what went wrong (`code`) and the exact message the
/// protocol sends for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn validation(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::ValidationError, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InternalError, message)
    }

    /// `Tree "<name>" not found`, the most common `not_found`.
    pub fn tree_not_found(series: &str) -> Error {
        Error::not_found(format!("Tree \"{series}\" not found"))
    }

    /// An I/O failure on a named file, reported as `internal_error`.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Error {
        Error::internal(format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
