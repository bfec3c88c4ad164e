//! Rust failures to Python exceptions.
//!
//! The classes live in `karma/_errors.py` (plain Python, so that
//! `ValidationError` can also be a `ValueError` and `karma.TimeoutError` a
//! builtin `TimeoutError`); each v2 `error_code` has its own class. Every
//! exception carries `.code` (the wire `error_code`, `None` for transport
//! failures), `.kind` (where it came from: `engine`, `server`, `invalid`,
//! `argument`, `connection`, `timeout`, `pool_timeout`, `protocol`, `closed`,
//! `fork`) and `.message` (the engine's message, also `str(exc)`).

use karma_client::{ClientError, Exception};
use karma_engine::{Error, ErrorCode};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

const ERRORS_MODULE: &str = "karma._errors";

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Why a call failed. Built without the GIL (inside `py.detach`) and turned
/// into an exception once the GIL is held again.
#[derive(Debug)]
pub enum Failure {
    /// The in-process engine refused or failed.
    Engine(Error),
    /// The network client failed (server error envelope, bad argument, transport).
    Client(ClientError),
    /// `close()` was called; the label names the class.
    Closed(&'static str),
    /// An `Engine` used in a process forked after it was opened.
    Forked,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Engine(e)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Client(e)
    }
}

/// Instantiates `karma._errors.<class>(message)` and sets its attributes.
/// If that fails (the package is broken), the failure itself is returned.
pub fn build(py: Python<'_>, class: &str, message: &str, code: Option<&str>, kind: &str) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let module = ERRORS.get_or_try_init(py, || py.import(ERRORS_MODULE).map(Bound::unbind))?.bind(py);
        let exc = module.getattr(class)?.call1((message,))?;
        exc.setattr("code", code)?;
        exc.setattr("kind", kind)?;
        exc.setattr("message", message)?;
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|e| e)
}

/// A `karma.ValidationError` raised by the binding's own argument checks.
pub fn argument(py: Python<'_>, message: impl AsRef<str>) -> PyErr {
    build(py, "ValidationError", message.as_ref(), Some(ErrorCode::ValidationError.as_str()), "argument")
}

/// The exception of the shared table ([`Exception`]).
fn raise(py: Python<'_>, x: Exception) -> PyErr {
    build(py, x.class, &x.message, x.code_str(), x.kind)
}

impl Failure {
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Engine(e) => raise(py, Exception::of_engine(&e)),
            Failure::Client(e) => raise(py, Exception::of_client(&e)),
            Failure::Closed(label) => build(py, "KarmaError", &format!("this karma.{label} is closed"), None, "closed"),
            Failure::Forked => build(
                py,
                "KarmaError",
                "this karma.Engine was opened before os.fork(); its WAL writer thread does not exist in this \
                 process: open a new Engine in the child (a karma.Client, by contrast, reconnects by itself)",
                None,
                "fork",
            ),
        }
    }
}

/// `karma._karma._error_for_code(code, message)`: the exception a server
/// error with this code becomes (for tests of codes no request can produce,
/// and for code that rebuilds errors from stored envelopes).
#[pyfunction]
#[pyo3(name = "_error_for_code")]
pub fn error_for_code(py: Python<'_>, code: &str, message: &str) -> Py<PyAny> {
    let err = match ErrorCode::from_wire(code) {
        Some(c) => build(py, c.class_name(), message, Some(c.as_str()), "server"),
        None => build(py, "KarmaError", message, Some(code), "server"),
    };
    err.into_value(py).into_any()
}

/// `karma._karma._error_classes()`: every v2 `error_code` with the name of
/// the class it raises, from the engine's table; `tests/test_errors.py`
/// checks `karma._errors` against it, so a new code cannot be missed.
#[pyfunction]
#[pyo3(name = "_error_classes")]
pub fn error_classes() -> Vec<(&'static str, &'static str)> {
    Exception::coded_classes().collect()
}
