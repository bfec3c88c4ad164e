//! The one error type of the engine: a stable v2 `error_code` plus a message.
//!
//! Every binding maps [`ErrorCode`] to its own exception class, so the set of
//! codes is part of the public contract (spec/protocol.md §5.1).

use std::fmt;

/// Declares the error codes once: the variant, its wire spelling and the
/// exception class every binding raises for it. [`ErrorCode`], its `ALL`,
/// `as_str` and `class_name` all come from this one table.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $wire:literal, $class:literal; )*) => {
        /// The stable `error_code` strings of protocol v2.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code: the order of spec/protocol.md §5.1, then our extensions.
            pub const ALL: [ErrorCode; [$($wire),*].len()] = [$(ErrorCode::$variant),*];

            /// The wire spelling, e.g. `validation_error`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $wire, )*
                }
            }

            /// The exception class every language binding raises for this
            /// code (Python `karma.NotFoundError`, Ruby
            /// `Karma::NotFoundError`, Node `NotFoundError`): one name per
            /// code, shared so the bindings agree.
            pub const fn class_name(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $class, )*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json", "InvalidJsonError";
    UnsupportedProtocol => "unsupported_protocol", "UnsupportedProtocolError";
    UnknownCommand => "unknown_command", "UnknownCommandError";
    ValidationError => "validation_error", "ValidationError";
    NotFound => "not_found", "NotFoundError";
    Unauthorized => "unauthorized", "UnauthorizedError";
    Forbidden => "forbidden", "ForbiddenError";
    RequestTooLarge => "request_too_large", "RequestTooLargeError";
    ResponseTooLarge => "response_too_large", "ResponseTooLargeError";
    QueryTimeout => "query_timeout", "QueryTimeoutError";
    IdempotencyConflict => "idempotency_conflict", "IdempotencyConflictError";
    ReplicationGap => "replication_gap", "ReplicationGapError";
    ReplicationError => "replication_error", "ReplicationError";
    InternalError => "internal_error", "InternalError";
    /// A server resource bound was hit (an extension of Karma 1.0, which
    /// has no such bounds; docs/limits.md).
    LimitExceeded => "limit_exceeded", "LimitExceededError";
}

impl ErrorCode {
    /// Parses a wire spelling back into a code (used by the network client).
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
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
