//! Any v2 request by op and fields (or as a raw line), answered by the
//! engine exactly as the server answers a client: authentication, size
//! limits, and a logged write made durable before the answer. The
//! bindings' generic `request`/`request_line` (Python, Ruby, Node) call
//! these instead of each running `handle_line` themselves.

use serde_json::{Map, Value};

use super::{Engine, Session};
use crate::error::{Error, Result};
use crate::protocol::line;
use crate::protocol::response::open_envelope;

impl Engine {
    /// One request line (without its terminator) from a client: the whole
    /// response envelope, success or error, once it may be sent.
    pub fn request_line_envelope(&self, line: &[u8]) -> Result<Value> {
        let answer = self.handle_line_acked(line, &Session::client());
        serde_json::from_slice(&answer).map_err(|e| Error::internal(format!("engine sent an unparsable response: {e}")))
    }

    /// One request line's `response` value, or the error its envelope carries.
    pub fn request_line_value(&self, line: &[u8]) -> Result<Value> {
        open_envelope(self.request_line_envelope(line)?)
    }

    /// `{"v":2,"op":op, ...fields}`: the whole response envelope.
    pub fn request_envelope(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        self.request_line_envelope(line::request(op, fields).as_bytes())
    }

    /// `{"v":2,"op":op, ...fields}`: the `response` value, or the error.
    pub fn request_value(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        open_envelope(self.request_envelope(op, fields)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn engine() -> Engine {
        Engine::in_memory()
    }

    fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_request_answers_its_response_value() {
        let e = engine();
        e.request_value("tree.create", fields(&[("series", "s".into())])).unwrap();
        let added = e.request_value("counter.increment", fields(&[("series", "s".into()), ("key", 7.into())]));
        assert_eq!(added.unwrap(), Value::from(1));
        let sum = e.request_line_value(br#"{"v":2,"op":"counter.sum","series":"s","key":7}"#).unwrap();
        assert_eq!(sum, Value::from(1));
    }

    #[test]
    fn an_error_envelope_is_the_error_and_the_envelope_keeps_it() {
        let e = engine();
        let missing = fields(&[("series", "nope".into()), ("key", 1.into())]);
        let err = e.request_value("counter.sum", missing.clone()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
        let envelope = e.request_envelope("counter.sum", missing).unwrap();
        assert_eq!(envelope["success"], Value::from(false));
        assert_eq!(envelope["error_code"], Value::from("not_found"));
        let bad = e.request_line_value(b"not json").unwrap_err();
        assert_eq!(bad.code(), ErrorCode::InvalidJson);
    }
}
