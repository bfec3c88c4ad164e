//! Rust failures to Ruby exceptions.
//!
//! The classes live in lib/karma/errors.rb (plain Ruby, so that
//! `Karma::ValidationError` can also be an `ArgumentError`); each v2
//! `error_code` has its own class, and every exception carries `#code` (the
//! wire `error_code`, nil for transport failures) and `#kind` (where it came
//! from: `engine`, `server`, `invalid`, `connection`, `timeout`,
//! `pool_timeout`, `protocol`, `closed`, `fork`).

use karma_client::{ClientError, Exception as Raised};
use karma_engine::{Error as KarmaError, ErrorCode};
use magnus::{prelude::*, Error, Exception, RModule, Ruby};

/// Why a call failed. Built without the GVL and turned into an exception
/// once it is held again.
#[derive(Debug)]
pub enum Failure {
    Engine(KarmaError),
    Client(ClientError),
    /// `close` was called; the label names the class.
    Closed(&'static str),
    /// An `Engine` used in a process forked after it was opened.
    Forked,
}

impl From<KarmaError> for Failure {
    fn from(e: KarmaError) -> Failure {
        Failure::Engine(e)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Client(e)
    }
}

/// `Karma.__error(class, message, code, kind)` (errors.rb) builds the
/// exception; if even that fails, its failure is raised instead.
pub fn build(ruby: &Ruby, class: &str, message: &str, code: Option<&str>, kind: &str) -> Error {
    let made = (|| -> Result<Exception, Error> {
        let karma: RModule = ruby.class_object().const_get("Karma")?;
        karma.funcall("__error", (class, message, code, kind))
    })();
    match made {
        Ok(exc) => Error::from(exc),
        Err(e) => e,
    }
}

/// A `Karma::ValidationError` from the binding's own argument checks.
pub fn argument(ruby: &Ruby, message: impl AsRef<str>) -> Error {
    build(ruby, "ValidationError", message.as_ref(), Some(ErrorCode::ValidationError.as_str()), "argument")
}

/// The exception of the shared table ([`karma_client::Exception`]).
fn raise(ruby: &Ruby, x: Raised) -> Error {
    build(ruby, x.class, &x.message, x.code_str(), x.kind)
}

impl Failure {
    pub fn into_error(self, ruby: &Ruby) -> Error {
        match self {
            Failure::Engine(e) => raise(ruby, Raised::of_engine(&e)),
            Failure::Client(e) => raise(ruby, Raised::of_client(&e)),
            Failure::Closed(label) => {
                build(ruby, "ClosedError", &format!("this Karma::{label} is closed"), None, "closed")
            }
            Failure::Forked => build(
                ruby,
                "ForkError",
                "this Karma::Engine was opened before fork; its WAL writer thread does not exist in this process: \
                 open a new Engine in the child (a Karma::Client, by contrast, reconnects by itself)",
                None,
                "fork",
            ),
        }
    }
}

/// `Karma::Native.error_for_code(code, message)`: the exception a server
/// error with this code becomes (for tests of codes no request can produce).
pub fn error_for_code(ruby: &Ruby, code: String, message: String) -> Result<magnus::Value, Error> {
    let err = match ErrorCode::from_wire(&code) {
        Some(c) => build(ruby, c.class_name(), &message, Some(c.as_str()), "server"),
        None => build(ruby, "Error", &message, Some(&code), "server"),
    };
    match err.value() {
        Some(exception) => Ok(exception),
        None => Err(err),
    }
}

/// `Karma::Native.error_classes`: `[[error_code, class_name], ...]`, the
/// engine's table, from which lib/karma/errors.rb and
/// lib/karma_client/errors.rb define their per-code classes.
pub fn error_classes() -> Vec<(&'static str, &'static str)> {
    Raised::coded_classes().collect()
}
