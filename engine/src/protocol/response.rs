//! The response envelope (spec/protocol.md §2), written straight into the
//! output buffer, `\r\n`-terminated.

use crate::error::Error;
use crate::json::write_str;

pub const SUCCESS_HEAD: &[u8] = b"{\"protocol_version\":2,\"success\":true,\"response\":";
pub const SUCCESS_TAIL: &[u8] = b",\"error_code\":null}";
pub const IDEMPOTENT_FALSE_TAIL: &[u8] = b",\"idempotent\":false,\"error_code\":null}";
pub const IDEMPOTENT_TRUE_TAIL: &[u8] = b",\"idempotent\":true,\"error_code\":null}";
pub const EOL: &[u8] = b"\r\n";
/// The tails with the line terminator, to end a line with one copy (a test
/// checks they are tail + [`EOL`]).
pub const SUCCESS_TAIL_EOL: &[u8] = b",\"error_code\":null}\r\n";
pub const IDEMPOTENT_FALSE_TAIL_EOL: &[u8] = b",\"idempotent\":false,\"error_code\":null}\r\n";
pub const IDEMPOTENT_TRUE_TAIL_EOL: &[u8] = b",\"idempotent\":true,\"error_code\":null}\r\n";

/// Writes a whole error envelope line.
pub fn write_error(out: &mut Vec<u8>, err: &Error) {
    out.extend_from_slice(b"{\"protocol_version\":2,\"success\":false,\"response\":");
    write_str(out, err.message());
    out.extend_from_slice(b",\"error_code\":\"");
    out.extend_from_slice(err.code().as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    out.extend_from_slice(EOL);
}

/// Why a response line is not an envelope this version can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not JSON, or not of the envelope's shape (the parser's reason).
    Unparsable(String),
    /// A failure whose `error_code` is missing or unknown to this version.
    UnknownCode { code: Option<String>, message: String },
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Unparsable(reason) => write!(f, "unparsable response envelope ({reason})"),
            EnvelopeError::UnknownCode { code: Some(code), message } => {
                write!(f, "error response with unknown error_code {code:?}: {message}")
            }
            EnvelopeError::UnknownCode { code: None, message } => {
                write!(f, "error response without an error_code: {message}")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    success: bool,
    #[serde(borrow)]
    response: &'a serde_json::value::RawValue,
    #[serde(default)]
    error_code: Option<String>,
}

/// Reads a response envelope back, the one decoder of every reader (the
/// network client, the bindings' raw `execute`): the raw `response` of a
/// success, or the [`Error`] a failure stands for (its `response` is the
/// message).
pub fn read_envelope(line: &[u8]) -> Result<Result<&serde_json::value::RawValue, Error>, EnvelopeError> {
    let envelope: Envelope<'_> = serde_json::from_slice(line).map_err(|e| EnvelopeError::Unparsable(e.to_string()))?;
    if envelope.success {
        return Ok(Ok(envelope.response));
    }
    let raw = envelope.response.get();
    let message = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
    failure(envelope.error_code, message).map(Err)
}

/// [`read_envelope`] of an envelope already parsed (a binding's raw
/// request through the network client): its `response`, or the error it
/// stands for; one this version cannot read is an `internal_error` saying
/// why.
pub fn open_envelope(mut envelope: serde_json::Value) -> Result<serde_json::Value, Error> {
    use serde_json::Value;
    let response = envelope.get_mut("response").map(Value::take).unwrap_or(Value::Null);
    match envelope.get("success") {
        Some(Value::Bool(true)) => return Ok(response),
        Some(Value::Bool(false)) => {}
        _ => return Err(Error::internal(EnvelopeError::Unparsable("no boolean success".into()).to_string())),
    }
    let code = envelope.get_mut("error_code").map(Value::take).and_then(|c| c.as_str().map(str::to_string));
    let message = match response {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Err(failure(code, message).unwrap_or_else(|e| Error::internal(e.to_string())))
}

/// The error of a failed envelope with this `error_code` and message.
fn failure(code: Option<String>, message: String) -> Result<Error, EnvelopeError> {
    match code.as_deref().and_then(crate::error::ErrorCode::from_wire) {
        Some(code) => Ok(Error::new(code, message)),
        None => Err(EnvelopeError::UnknownCode { code, message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn the_tails_with_eol_are_the_tails_then_eol() {
        for (tail, with_eol) in [
            (SUCCESS_TAIL, SUCCESS_TAIL_EOL),
            (IDEMPOTENT_FALSE_TAIL, IDEMPOTENT_FALSE_TAIL_EOL),
            (IDEMPOTENT_TRUE_TAIL, IDEMPOTENT_TRUE_TAIL_EOL),
        ] {
            assert_eq!([tail, EOL].concat(), with_eol);
        }
    }

    #[test]
    fn envelopes_read_back_as_written() {
        let mut line = SUCCESS_HEAD.to_vec();
        line.extend_from_slice(b"18446744073709551615");
        line.extend_from_slice(SUCCESS_TAIL);
        line.extend_from_slice(EOL);
        assert_eq!(
            read_envelope(&line).map(|r| r.map(|raw| raw.get().to_string())),
            Ok(Ok("18446744073709551615".into()))
        );

        for code in ErrorCode::ALL {
            let mut line = Vec::new();
            write_error(&mut line, &Error::new(code, "Tree \"x\" not found"));
            assert_eq!(read_envelope(&line).map(|r| r.map(|_| ())), Ok(Err(Error::new(code, "Tree \"x\" not found"))));
        }
    }

    #[test]
    fn unknown_codes_and_garbage_are_refused() {
        let line = br#"{"protocol_version":2,"success":false,"response":"m","error_code":"teapot"}"#;
        assert_eq!(
            read_envelope(line).map(|r| r.map(|_| ())),
            Err(EnvelopeError::UnknownCode { code: Some("teapot".into()), message: "m".into() })
        );
        let line = br#"{"protocol_version":2,"success":false,"response":"m","error_code":null}"#;
        assert!(matches!(read_envelope(line), Err(EnvelopeError::UnknownCode { code: None, .. })));
        assert!(matches!(read_envelope(b"{"), Err(EnvelopeError::Unparsable(_))));
        assert!(matches!(read_envelope(b"[]"), Err(EnvelopeError::Unparsable(_))));
    }

    #[test]
    fn parsed_envelopes_open_the_same_way() {
        let ok = serde_json::json!({"protocol_version": 2, "success": true, "response": 7, "error_code": null});
        assert_eq!(open_envelope(ok), Ok(serde_json::json!(7)));
        let failed = serde_json::json!({"success": false, "response": "gone", "error_code": "not_found"});
        assert_eq!(open_envelope(failed), Err(Error::not_found("gone")));
        let unknown = serde_json::json!({"success": false, "response": "m", "error_code": "teapot"});
        let e = open_envelope(unknown).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InternalError);
        assert!(e.message().contains("teapot"), "{e}");
        assert_eq!(open_envelope(serde_json::json!([])).unwrap_err().code(), ErrorCode::InternalError);
    }
}
