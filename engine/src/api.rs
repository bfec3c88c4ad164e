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

use serde_json::Value;

use crate::error::{Error, ErrorCode};
use crate::protocol::{Command, Item, Op, Range, Request, Window};
use crate::{Engine, KeysPage, Quota, Summary, TreeInfo};

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

/// The shared API of [`Engine`] and the network client.
pub trait Karma {
    type Error: KarmaError;

    fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, Self::Error>;
    fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, Self::Error>;
    /// `counter.consume`: adds `value` to `bucket` (today, UTC, when `None`)
    /// only if the `window`'s total plus `value` stays within `limit`, as
    /// one atomic step; a refusal (`allowed: false`) changes nothing.
    fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota, Self::Error>;
    fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64, Self::Error>;
    fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>, Self::Error>;
    fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>, Self::Error>;
    fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>, Self::Error>;
    fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64, Self::Error>;
    fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize, Self::Error>;
    fn reset(&self, series: &str, key: Option<u64>) -> Result<(), Self::Error>;
    fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize), Self::Error>;
    fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<(), Self::Error>;
    fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize), Self::Error>;
    fn create_series(&self, series: &str) -> Result<(), Self::Error>;
    fn drop_series(&self, series: &str) -> Result<(), Self::Error>;
    fn list_series(&self) -> Result<Vec<String>, Self::Error>;
    fn info(&self, series: &str) -> Result<TreeInfo, Self::Error>;
    fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage, Self::Error>;
    fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>, Self::Error>;
    fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary, Self::Error>;
    fn delete_before(&self, series: &str, before: u64) -> Result<(), Self::Error>;
    fn compact(&self, series: Option<&str>) -> Result<(), Self::Error>;
    /// `"pong"`.
    fn ping(&self) -> Result<String, Self::Error>;
    /// The `system.health` object.
    fn health(&self) -> Result<Value, Self::Error>;
    /// The `system.stats` object.
    fn stats(&self) -> Result<Value, Self::Error>;
    /// The `system.metrics` Prometheus text.
    fn metrics(&self) -> Result<String, Self::Error>;
}

/// Runs a field-less system op in-process and decodes its JSON response.
fn system<T: serde::de::DeserializeOwned>(engine: &Engine, op: Op) -> Result<T, Error> {
    let outcome = engine.execute(&Request::new(op, Command::NoFields))?;
    serde_json::from_slice(&outcome.response.to_json())
        .map_err(|e| Error::internal(format!("unexpected response shape for {}: {e}", op.name())))
}

impl Karma for Engine {
    type Error = Error;

    fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, Error> {
        Engine::increment(self, series, key, bucket, value)
    }
    fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, Error> {
        Engine::decrement(self, series, key, bucket, value)
    }
    fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota, Error> {
        Engine::consume(self, series, key, bucket, value, limit, window)
    }
    fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64, Error> {
        Engine::sum(self, series, key, range)
    }
    fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>, Error> {
        Engine::batch_sum(self, series, keys, range)
    }
    fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>, Error> {
        Engine::multi_sum(self, items, range)
    }
    fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>, Error> {
        Engine::points(self, series, key, range)
    }
    fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64, Error> {
        Engine::batch_add(self, series, items)
    }
    fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize, Error> {
        Engine::batch_set(self, series, items)
    }
    fn reset(&self, series: &str, key: Option<u64>) -> Result<(), Error> {
        Engine::reset(self, series, key)
    }
    fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize), Error> {
        Engine::batch_reset(self, series, keys)
    }
    fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<(), Error> {
        Engine::delete_range(self, series, key, range)
    }
    fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize), Error> {
        Engine::batch_delete_range(self, series, keys, range)
    }
    fn create_series(&self, series: &str) -> Result<(), Error> {
        Engine::create_series(self, series)
    }
    fn drop_series(&self, series: &str) -> Result<(), Error> {
        Engine::drop_series(self, series)
    }
    fn list_series(&self) -> Result<Vec<String>, Error> {
        Ok(Engine::list_series(self))
    }
    fn info(&self, series: &str) -> Result<TreeInfo, Error> {
        Engine::info(self, series)
    }
    fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage, Error> {
        Engine::keys(self, series, cursor, limit)
    }
    fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>, Error> {
        Engine::top(self, series, limit, range)
    }
    fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary, Error> {
        Engine::summary(self, series, range)
    }
    fn delete_before(&self, series: &str, before: u64) -> Result<(), Error> {
        Engine::delete_before(self, series, before)
    }
    fn compact(&self, series: Option<&str>) -> Result<(), Error> {
        Engine::compact(self, series)
    }
    fn ping(&self) -> Result<String, Error> {
        system(self, Op::Ping)
    }
    fn health(&self) -> Result<Value, Error> {
        system(self, Op::Health)
    }
    fn stats(&self) -> Result<Value, Error> {
        system(self, Op::Stats)
    }
    fn metrics(&self) -> Result<String, Error> {
        system(self, Op::Metrics)
    }
}
