//! Rust failures to JavaScript errors.
//!
//! The classes are plain JavaScript (`errors.js`: `KarmaError` with `code`
//! and `kind`, one subclass per v2 `error_code`, plus `ConnectionError`,
//! `TimeoutError`, `ProtocolError` and `ClosedError`), so they can be real `Error`
//! subclasses. `karma.js` hands this addon a factory that builds them
//! ([`register_error_factory`]); the addon keeps it as per-thread instance
//! data, so every worker thread that loads the package has its own.

use std::error::Error as StdError;

use karma_client::{ClientError, Exception};
use karma_engine::Error;
use napi::bindgen_prelude::{FnArgs, Function, FunctionRef};
use napi::{Env, Unknown};
use napi_derive::napi;

/// Why a call failed. Built wherever the call ran (often a libuv worker
/// thread) and turned into a JS error on the JavaScript thread.
#[derive(Debug)]
pub enum Failure {
    /// The in-process engine refused or failed.
    Engine(Error),
    /// The network client failed (server error envelope, bad argument, transport).
    Client(ClientError),
    /// An argument of the wrong type (a `TypeError`).
    Type(String),
    /// A number outside what the argument allows (a `RangeError`).
    Range(String),
    /// `close()` was called; the label names the class.
    Closed(&'static str),
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

/// One row of the error table `errors.js` builds its classes from.
#[napi(object)]
pub struct ErrorClass {
    /// The v2 `error_code` (`"not_found"`).
    pub code: String,
    /// The class name (`"NotFoundError"`).
    pub class_name: String,
}

/// Every v2 `error_code` and the class its errors have (for `errors.js`).
#[napi(js_name = "__errorClasses")]
pub fn error_classes() -> Vec<ErrorClass> {
    Exception::coded_classes()
        .map(|(code, class)| ErrorClass { code: code.to_string(), class_name: class.to_string() })
        .collect()
}

/// The factory's arguments: `(className, message, code, kind)`.
type FactoryArgs = FnArgs<(String, String, Option<String>, String)>;

/// `(className, message, code, kind) => Error`.
type Factory = FunctionRef<FactoryArgs, Unknown<'static>>;

/// Called once per thread by `karma.js` with the function that builds the
/// package's error objects.
#[napi(
    js_name = "__registerErrorFactory",
    ts_args_type = "factory: (className: string, message: string, code: string | null, kind: string) => Error"
)]
pub fn register_error_factory(env: Env, factory: Function<FactoryArgs, Unknown<'static>>) -> napi::Result<()> {
    let factory: Factory = factory.create_ref()?;
    env.set_instance_data(factory, (), |_| {})
}

/// A message with the Rust cause chain appended (`...: caused by: ...`).
fn with_causes(top: &str, mut source: Option<&(dyn StdError + 'static)>) -> String {
    let mut message = top.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": caused by: ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// `(class, message, code, kind)` of a failure.
fn describe(f: Failure) -> (&'static str, String, Option<String>, &'static str) {
    let shared = |x: Exception| (x.class, x.message.clone(), x.code_str().map(str::to_string), x.kind);
    match f {
        Failure::Engine(e) => shared(Exception::of_engine(&e)),
        Failure::Client(e @ ClientError::Connection(_)) => {
            let x = Exception::of_client(&e);
            (x.class, with_causes(&x.message, e.source()), None, x.kind)
        }
        Failure::Client(e) => shared(Exception::of_client(&e)),
        Failure::Type(m) => ("TypeError", m, None, "argument"),
        Failure::Range(m) => ("RangeError", m, None, "argument"),
        Failure::Closed(label) => ("ClosedError", format!("this {label} is closed"), None, "closed"),
    }
}

/// The JS error object of a failure, as a `napi::Error` that throws (or
/// rejects with) exactly that object.
pub fn to_js(env: &Env, f: Failure) -> napi::Error {
    let (class, message, code, kind) = describe(f);
    let built = (|| -> napi::Result<napi::Error> {
        let Some(factory) = env.get_instance_data::<Factory>()? else {
            // The raw addon without karma.js: a plain Error with the code.
            return Ok(napi::Error::new(napi::Status::GenericFailure, format!("{class}: {message}")));
        };
        let made = factory
            .borrow_back(env)?
            .call((class.to_string(), message.clone(), code.clone(), kind.to_string()).into())?;
        Ok(napi::Error::from(made))
    })();
    built.unwrap_or_else(|e| e)
}
