//! The response envelope (spec/protocol.md §2), written straight into the
//! output buffer, `\r\n`-terminated.

use crate::error::Error;
use crate::json::write_str;

pub const SUCCESS_HEAD: &[u8] = b"{\"protocol_version\":2,\"success\":true,\"response\":";
pub const SUCCESS_TAIL: &[u8] = b",\"error_code\":null}";
pub const IDEMPOTENT_FALSE_TAIL: &[u8] = b",\"idempotent\":false,\"error_code\":null}";
pub const IDEMPOTENT_TRUE_TAIL: &[u8] = b",\"idempotent\":true,\"error_code\":null}";
pub const EOL: &[u8] = b"\r\n";

/// Writes a whole error envelope line.
pub fn write_error(out: &mut Vec<u8>, err: &Error) {
    out.extend_from_slice(b"{\"protocol_version\":2,\"success\":false,\"response\":");
    write_str(out, err.message());
    out.extend_from_slice(b",\"error_code\":\"");
    out.extend_from_slice(err.code().as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    out.extend_from_slice(EOL);
}
