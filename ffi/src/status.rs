//! [`KarmaStatus`]: the 14 protocol v2 error codes in their spec order, then
//! the failures that only a binding or a network client has, then our
//! extension codes (`limit_exceeded`).

use std::ffi::{c_char, c_int, CStr};

use karma_client::ClientError;
use karma_engine::{Error, ErrorCode};

/// What a call did. `KARMA_OK` is 0; codes 1 to 14 mirror the protocol v2
/// `error_code` strings (spec/protocol.md §5.1) in order; the rest are
/// failures of the client transport or of the call itself, then extension
/// codes (19, `limit_exceeded`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KarmaStatus {
    /// Success.
    KARMA_OK = 0,
    /// `invalid_json`: the request is not a JSON object.
    KARMA_INVALID_JSON,
    /// `unsupported_protocol`: `"v"` is missing or not 2.
    KARMA_UNSUPPORTED_PROTOCOL,
    /// `unknown_command`: no such `"op"`.
    KARMA_UNKNOWN_COMMAND,
    /// `validation_error`: a field is missing, of the wrong type or out of range.
    KARMA_VALIDATION_ERROR,
    /// `not_found`: e.g. the series does not exist.
    KARMA_NOT_FOUND,
    /// `unauthorized`: a token is required or wrong.
    KARMA_UNAUTHORIZED,
    /// `forbidden`: the token may not do this (read-only token, slave role).
    KARMA_FORBIDDEN,
    /// `request_too_large`.
    KARMA_REQUEST_TOO_LARGE,
    /// `response_too_large`.
    KARMA_RESPONSE_TOO_LARGE,
    /// `query_timeout`.
    KARMA_QUERY_TIMEOUT,
    /// `idempotency_conflict`.
    KARMA_IDEMPOTENCY_CONFLICT,
    /// `replication_gap`.
    KARMA_REPLICATION_GAP,
    /// `replication_error`.
    KARMA_REPLICATION_ERROR,
    /// `internal_error`: e.g. an I/O failure. Also an unparsable response
    /// from a server.
    KARMA_INTERNAL_ERROR,
    /// Client: no connection could be opened, or it broke before the answer
    /// was complete (a write may or may not have been applied).
    KARMA_CONNECTION_ERROR,
    /// Client: connecting, writing, reading or waiting for a pooled
    /// connection took longer than the configured timeout.
    KARMA_TIMEOUT,
    /// A required pointer was NULL or misaligned, a string was not UTF-8, or
    /// an options document was refused. Nothing was done.
    KARMA_INVALID_ARGUMENT,
    /// A bug: Rust code panicked. The panic was caught; the handle is still
    /// usable, but the operation may or may not have been applied.
    KARMA_PANIC,
    /// `limit_exceeded`: a server resource bound was hit (an extension of
    /// Karma 1.0; numbered after the binding's own statuses so that no
    /// existing number changes).
    KARMA_LIMIT_EXCEEDED,
}

impl KarmaStatus {
    /// Every status, in numeric order.
    // Not exported to the header: C has the enum itself.
    /// cbindgen:ignore
    pub const ALL: [KarmaStatus; 20] = [
        KarmaStatus::KARMA_OK,
        KarmaStatus::KARMA_INVALID_JSON,
        KarmaStatus::KARMA_UNSUPPORTED_PROTOCOL,
        KarmaStatus::KARMA_UNKNOWN_COMMAND,
        KarmaStatus::KARMA_VALIDATION_ERROR,
        KarmaStatus::KARMA_NOT_FOUND,
        KarmaStatus::KARMA_UNAUTHORIZED,
        KarmaStatus::KARMA_FORBIDDEN,
        KarmaStatus::KARMA_REQUEST_TOO_LARGE,
        KarmaStatus::KARMA_RESPONSE_TOO_LARGE,
        KarmaStatus::KARMA_QUERY_TIMEOUT,
        KarmaStatus::KARMA_IDEMPOTENCY_CONFLICT,
        KarmaStatus::KARMA_REPLICATION_GAP,
        KarmaStatus::KARMA_REPLICATION_ERROR,
        KarmaStatus::KARMA_INTERNAL_ERROR,
        KarmaStatus::KARMA_CONNECTION_ERROR,
        KarmaStatus::KARMA_TIMEOUT,
        KarmaStatus::KARMA_INVALID_ARGUMENT,
        KarmaStatus::KARMA_PANIC,
        KarmaStatus::KARMA_LIMIT_EXCEEDED,
    ];

    /// The status of a v2 error code. Exhaustive, so a new engine code does
    /// not compile until it has a status here (and in the header).
    pub const fn from_code(code: ErrorCode) -> KarmaStatus {
        match code {
            ErrorCode::InvalidJson => KarmaStatus::KARMA_INVALID_JSON,
            ErrorCode::UnsupportedProtocol => KarmaStatus::KARMA_UNSUPPORTED_PROTOCOL,
            ErrorCode::UnknownCommand => KarmaStatus::KARMA_UNKNOWN_COMMAND,
            ErrorCode::ValidationError => KarmaStatus::KARMA_VALIDATION_ERROR,
            ErrorCode::NotFound => KarmaStatus::KARMA_NOT_FOUND,
            ErrorCode::Unauthorized => KarmaStatus::KARMA_UNAUTHORIZED,
            ErrorCode::Forbidden => KarmaStatus::KARMA_FORBIDDEN,
            ErrorCode::RequestTooLarge => KarmaStatus::KARMA_REQUEST_TOO_LARGE,
            ErrorCode::ResponseTooLarge => KarmaStatus::KARMA_RESPONSE_TOO_LARGE,
            ErrorCode::QueryTimeout => KarmaStatus::KARMA_QUERY_TIMEOUT,
            ErrorCode::IdempotencyConflict => KarmaStatus::KARMA_IDEMPOTENCY_CONFLICT,
            ErrorCode::ReplicationGap => KarmaStatus::KARMA_REPLICATION_GAP,
            ErrorCode::ReplicationError => KarmaStatus::KARMA_REPLICATION_ERROR,
            ErrorCode::InternalError => KarmaStatus::KARMA_INTERNAL_ERROR,
            ErrorCode::LimitExceeded => KarmaStatus::KARMA_LIMIT_EXCEEDED,
        }
    }

    /// The v2 wire spelling for codes 1-14 (`"validation_error"`), `"ok"`,
    /// or the binding's own name (`"connection_error"`, ...).
    pub const fn name(self) -> &'static CStr {
        match self {
            KarmaStatus::KARMA_OK => c"ok",
            KarmaStatus::KARMA_INVALID_JSON => c"invalid_json",
            KarmaStatus::KARMA_UNSUPPORTED_PROTOCOL => c"unsupported_protocol",
            KarmaStatus::KARMA_UNKNOWN_COMMAND => c"unknown_command",
            KarmaStatus::KARMA_VALIDATION_ERROR => c"validation_error",
            KarmaStatus::KARMA_NOT_FOUND => c"not_found",
            KarmaStatus::KARMA_UNAUTHORIZED => c"unauthorized",
            KarmaStatus::KARMA_FORBIDDEN => c"forbidden",
            KarmaStatus::KARMA_REQUEST_TOO_LARGE => c"request_too_large",
            KarmaStatus::KARMA_RESPONSE_TOO_LARGE => c"response_too_large",
            KarmaStatus::KARMA_QUERY_TIMEOUT => c"query_timeout",
            KarmaStatus::KARMA_IDEMPOTENCY_CONFLICT => c"idempotency_conflict",
            KarmaStatus::KARMA_REPLICATION_GAP => c"replication_gap",
            KarmaStatus::KARMA_REPLICATION_ERROR => c"replication_error",
            KarmaStatus::KARMA_INTERNAL_ERROR => c"internal_error",
            KarmaStatus::KARMA_CONNECTION_ERROR => c"connection_error",
            KarmaStatus::KARMA_TIMEOUT => c"timeout",
            KarmaStatus::KARMA_INVALID_ARGUMENT => c"invalid_argument",
            KarmaStatus::KARMA_PANIC => c"panic",
            KarmaStatus::KARMA_LIMIT_EXCEEDED => c"limit_exceeded",
        }
    }
}

/// The name of a status: the v2 `error_code` spelling for codes 1-14
/// ("validation_error"), "ok", "connection_error", "timeout",
/// "invalid_argument", "panic", "limit_exceeded"; "unknown" for any other
/// number. A static
/// string: do not free it.
#[no_mangle]
pub extern "C" fn karma_status_name(status: c_int) -> *const c_char {
    let name = usize::try_from(status).ok().and_then(|i| KarmaStatus::ALL.get(i)).map_or(c"unknown", |s| s.name());
    name.as_ptr()
}

/// An error of either side of [`karma_engine::api::Karma`], as a status
/// and the message `karma_last_error` returns.
pub(crate) trait ToStatus {
    fn status(&self) -> KarmaStatus;
    fn message(&self) -> String;
}

impl ToStatus for Error {
    fn status(&self) -> KarmaStatus {
        KarmaStatus::from_code(self.code())
    }

    fn message(&self) -> String {
        Error::message(self).to_string()
    }
}

impl ToStatus for ClientError {
    fn status(&self) -> KarmaStatus {
        match self {
            ClientError::Server(e) | ClientError::Invalid(e) => KarmaStatus::from_code(e.code()),
            ClientError::Connection(_) => KarmaStatus::KARMA_CONNECTION_ERROR,
            ClientError::Timeout(_) | ClientError::PoolTimeout(_) => KarmaStatus::KARMA_TIMEOUT,
            ClientError::Protocol(_) => KarmaStatus::KARMA_INTERNAL_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            ClientError::Server(e) | ClientError::Invalid(e) => e.message().to_string(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_spec_order() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            let status = KarmaStatus::from_code(code);
            // The 14 codes of the spec are 1-14; extensions follow the
            // binding's own four statuses.
            let expected = if i < 14 { i + 1 } else { i + 5 };
            assert_eq!(status as usize, expected);
            assert_eq!(status.name().to_str().unwrap(), code.as_str());
        }
        for (i, status) in KarmaStatus::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, i);
        }
    }
}
