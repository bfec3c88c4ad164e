//! How the language bindings raise an error: the one table from an engine
//! [`Error`] or a [`ClientError`] to an exception class, the wire
//! `error_code` (if any), the `kind` attribute and the message. Python,
//! Ruby and Node build their exceptions from it, so they agree.

use karma_engine::{Error, ErrorCode};

use crate::ClientError;

/// What a binding raises for one error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The class name: [`ErrorCode::class_name`] for errors with a code,
    /// `ConnectionError`, `TimeoutError` or `ProtocolError` for the client's
    /// transport failures.
    pub class: &'static str,
    /// The v2 `error_code`; `None` for transport failures.
    pub code: Option<ErrorCode>,
    /// Where the error came from: `engine`, `server`, `invalid` (refused by
    /// the client before sending), `connection`, `timeout`, `pool_timeout`,
    /// `protocol`.
    pub kind: &'static str,
    pub message: String,
}

impl Exception {
    /// An error of the in-process engine.
    pub fn of_engine(e: &Error) -> Exception {
        Exception::coded(e, "engine")
    }

    /// An error of a network [`crate::Client`] call.
    pub fn of_client(e: &ClientError) -> Exception {
        let transport = |class, kind| Exception { class, code: None, kind, message: e.to_string() };
        match e {
            ClientError::Server(e) => Exception::coded(e, "server"),
            ClientError::Invalid(e) => Exception::coded(e, "invalid"),
            ClientError::Connection(_) => transport("ConnectionError", "connection"),
            ClientError::Timeout(_) => transport("TimeoutError", "timeout"),
            ClientError::PoolTimeout(_) => transport("TimeoutError", "pool_timeout"),
            ClientError::Protocol(_) => transport("ProtocolError", "protocol"),
        }
    }

    fn coded(e: &Error, kind: &'static str) -> Exception {
        Exception { class: e.code().class_name(), code: Some(e.code()), kind, message: e.message().to_string() }
    }

    /// The wire spelling of [`Exception::code`].
    pub fn code_str(&self) -> Option<&'static str> {
        self.code.map(ErrorCode::as_str)
    }

    /// Every v2 `error_code` with the class its errors raise, in the
    /// table's order: what each binding defines (or checks) its per-code
    /// classes against, so a code added to [`ErrorCode`] cannot be missed.
    pub fn coded_classes() -> impl Iterator<Item = (&'static str, &'static str)> {
        ErrorCode::ALL.iter().map(|c| (c.as_str(), c.class_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_errors_take_the_class_of_their_code() {
        let e = Error::not_found("Tree \"x\" not found");
        let x = Exception::of_client(&ClientError::Server(e.clone()));
        assert_eq!((x.class, x.code_str(), x.kind), ("NotFoundError", Some("not_found"), "server"));
        assert_eq!(x.message, "Tree \"x\" not found");
        assert_eq!(Exception::of_engine(&e).kind, "engine");
        assert_eq!(Exception::of_client(&ClientError::Invalid(Error::validation("v"))).kind, "invalid");
    }

    #[test]
    fn every_code_has_one_class_named_after_it() {
        let classes: Vec<_> = Exception::coded_classes().collect();
        assert_eq!(classes.len(), ErrorCode::ALL.len());
        assert!(classes.contains(&("not_found", "NotFoundError")));
        let mut names: Vec<_> = classes.iter().map(|(_, class)| *class).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), classes.len(), "two codes share a class");
    }

    #[test]
    fn transport_failures_have_no_code() {
        for (e, class, kind) in [
            (ClientError::Connection("refused".into()), "ConnectionError", "connection"),
            (ClientError::Timeout("read".into()), "TimeoutError", "timeout"),
            (ClientError::PoolTimeout("busy".into()), "TimeoutError", "pool_timeout"),
            (ClientError::Protocol("garbage".into()), "ProtocolError", "protocol"),
        ] {
            let x = Exception::of_client(&e);
            assert_eq!((x.class, x.code, x.kind), (class, None, kind));
            assert_eq!(x.message, e.to_string());
        }
    }
}
