//! [`Karma`]: the methods the in-process [`Engine`] and the network client
//! (`karma_client::Client`, in a crate of its own, so the engine has no
//! sockets) share, so a binding wraps both with the same code:
//!
//! ```no_run
//! use karma_engine::api::{Karma, KarmaError};
//!
//! fn record<K: Karma>(k: &K) -> Result<u64, String> {
//!     k.increment("api_requests", 42, None, 1).map_err(|e| format!("{:?}: {e}", e.error_code()))?;
//!     k.sum("api_requests", 42, None).map_err(|e| e.to_string())
//! }
//! # let _ = record(&karma_engine::Engine::in_memory());
//! ```
//!
//! Same names, arguments and results as the typed API of [`Engine`]; only
//! the error type differs. `list_series`, infallible on the engine, returns
//! a `Result` here because over the network it is a request like any other.

pub use serde_json::Value;

use crate::error::{Error, ErrorCode};
use crate::protocol::{Command, Op, Request};
use crate::Engine;

/// What a binding needs from an error of either implementation.
pub trait KarmaError: std::error::Error + Send + Sync + 'static {
    /// The v2 `error_code`, or `None` for a client transport failure
    /// (connection, timeout, pool timeout, unparsable response).
    fn error_code(&self) -> Option<ErrorCode>;
}

impl KarmaError for Error {
    fn error_code(&self) -> Option<ErrorCode> {
        Some(self.code())
    }
}

/// Declares [`Karma`] from the [`for_each_method!`](crate::for_each_method) table.
macro_rules! declare_karma {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        /// The shared API of [`Engine`] and the network client: one method
        /// per row of the [`for_each_method!`](crate::for_each_method) table.
        pub trait Karma {
            type Error: KarmaError;
            $(
                $(#[doc = $doc])*
                fn $m(&self, $($arg: $crate::arg_type!($kind)),*) -> Result<$crate::ret_type!($ret), Self::Error>;
            )*
        }
    };
}
crate::for_each_method!(declare_karma);

/// Runs a field-less system op in-process and decodes its JSON response.
fn system<T: serde::de::DeserializeOwned>(engine: &Engine, op: Op) -> Result<T, Error> {
    let outcome = engine.execute(&Request::new(op, Command::NoFields))?;
    serde_json::from_slice(&outcome.response.to_json())
        .map_err(|e| Error::internal(format!("unexpected response shape for {}: {e}", op.name())))
}

/// The typed engine methods the trait forwards to, as the trait returns
/// them: `list_series` cannot fail on the engine, every other one can.
trait IntoApiResult<T> {
    fn into_api_result(self) -> Result<T, Error>;
}

impl<T> IntoApiResult<T> for Result<T, Error> {
    fn into_api_result(self) -> Result<T, Error> {
        self
    }
}

impl IntoApiResult<Vec<String>> for Vec<String> {
    fn into_api_result(self) -> Result<Vec<String>, Error> {
        Ok(self)
    }
}

/// `impl Karma for Engine`: every method forwards to the typed method of
/// the same name.
macro_rules! engine_forwards {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        impl Karma for Engine {
            type Error = Error;
            $(
                fn $m(&self, $($arg: $crate::arg_type!($kind)),*) -> Result<$crate::ret_type!($ret), Error> {
                    Engine::$m(self, $($arg),*).into_api_result()
                }
            )*
        }
    };
}
crate::for_each_method!(engine_forwards);

/// The system ops, typed, for [`Karma`].
impl Engine {
    /// `"pong"`.
    pub fn ping(&self) -> Result<String, Error> {
        system(self, Op::Ping)
    }

    /// The `system.health` object.
    pub fn health(&self) -> Result<Value, Error> {
        system(self, Op::Health)
    }

    /// The `system.stats` object.
    pub fn stats(&self) -> Result<Value, Error> {
        system(self, Op::Stats)
    }

    /// The `system.metrics` Prometheus text.
    pub fn metrics(&self) -> Result<String, Error> {
        system(self, Op::Metrics)
    }
}

/// `increment` or `decrement`: the two single-counter writes take the same
/// arguments, so a binding exposing both (and their fast paths) passes
/// which one as a value rather than writing each call twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Increment,
    Decrement,
}

impl Change {
    /// `Decrement` when `decrement`, else `Increment` (for a binding's flag).
    pub fn of(decrement: bool) -> Change {
        if decrement {
            Change::Decrement
        } else {
            Change::Increment
        }
    }

    /// The protocol op: `counter.increment` or `counter.decrement`.
    pub fn op(self) -> Op {
        match self {
            Change::Increment => Op::Increment,
            Change::Decrement => Op::Decrement,
        }
    }

    /// [`Karma::increment`] or [`Karma::decrement`] on `k`.
    pub fn apply<K: Karma + ?Sized>(
        self,
        k: &K,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
    ) -> Result<u64, K::Error> {
        match self {
            Change::Increment => k.increment(series, key, bucket, value),
            Change::Decrement => k.decrement(series, key, bucket, value),
        }
    }
}
