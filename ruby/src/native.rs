//! `Karma::Native`, the wrapped Rust object behind `Karma::Engine` and
//! `Karma::Client`. Its methods are the few the Ruby half builds on: a
//! typed increment/decrement (the hot path), `_request` (any v2 op, the
//! `response` value or an exception) and `_envelope` (the whole response,
//! for the `KarmaClient` compatibility layer). Both backends answer through
//! the same v2 ops, so every method gives the same result in both modes.

use std::path::PathBuf;

use karma_client::AnyClient;
use karma_engine::api::{Change, Karma};
use karma_engine::{Engine, Window};
use magnus::value::ReprValue;
use magnus::{function, method, prelude::*, Error, Integer, RClass, RHash, RModule, RString, Ruby, Value};
use parking_lot::RwLock;
use serde_json::Map;

use crate::errors::{self, Failure};
use crate::gvl::without_gvl;
use crate::{fork, json, options};

enum Backend {
    Engine(Engine),
    /// A server or a cluster, by URL.
    Client(AnyClient),
}

#[magnus::wrap(class = "Karma::Native", free_immediately, size)]
pub struct Native {
    /// `None` once closed.
    backend: RwLock<Option<Backend>>,
    /// For an engine, the fork generation it was opened in (fork.rs).
    engine_generation: Option<u64>,
    /// An engine without a WAL: its increments and decrements only take a
    /// series lock for in-memory work and never wait on I/O, so they run
    /// with the GVL held (releasing and retaking it would cost more than
    /// the increment itself).
    memory_only: bool,
    label: &'static str,
}

impl Native {
    fn new(backend: Backend) -> Native {
        let (engine_generation, memory_only, label) = match &backend {
            Backend::Engine(e) => {
                let o = e.options();
                (Some(fork::generation()), !o.wal || o.directory.is_none(), "Engine")
            }
            Backend::Client(_) => (None, false, "Client"),
        };
        Native { backend: RwLock::new(Some(backend)), engine_generation, memory_only, label }
    }

    fn forked(&self) -> bool {
        self.engine_generation.is_some_and(|g| g != fork::generation())
    }

    /// In a forked child the engine's WAL writer thread does not exist:
    /// closing or dropping the engine would wait for it forever, so it is leaked.
    fn abandon_after_fork(&self) {
        if let Some(backend) = self.backend.write().take() {
            std::mem::forget(backend);
        }
    }

    /// Runs `f` on the backend without the GVL.
    fn run<R>(&self, ruby: &Ruby, f: impl FnOnce(&Backend) -> Result<R, Failure>) -> Result<R, Error> {
        if self.forked() {
            self.abandon_after_fork();
            return Err(Failure::Forked.into_error(ruby));
        }
        let label = self.label;
        without_gvl(|| match self.backend.read().as_ref() {
            Some(backend) => f(backend),
            None => Err(Failure::Closed(label)),
        })
        .map_err(|f| f.into_error(ruby))
    }
}

/// `change` on either backend.
fn apply(
    change: Change,
    backend: &Backend,
    series: &str,
    key: u64,
    bucket: Option<u64>,
    value: u64,
) -> Result<u64, Failure> {
    match backend {
        Backend::Engine(e) => change.apply(e, series, key, bucket, value).map_err(Failure::from),
        Backend::Client(c) => change.apply(c, series, key, bucket, value).map_err(Failure::from),
    }
}

impl Native {
    /// `_change(decrement, series, key, value, bucket)`: the typed
    /// increment (or, with `decrement`, decrement), the hot path. `bucket`
    /// is nil (today) or an Integer YYYYMMDD already (the Ruby half
    /// converts dates). `series` is borrowed from the Ruby String when the
    /// GVL stays held (no copy), and copied only when the call runs without it.
    fn change(
        ruby: &Ruby,
        rb_self: &Self,
        decrement: bool,
        series: RString,
        key: Value,
        value: Value,
        bucket: Value,
    ) -> Result<u64, Error> {
        let key = u64_arg(ruby, key, "key")?;
        let value = u64_arg(ruby, value, "value")?;
        let bucket = opt_u64(ruby, bucket, "bucket")?;
        let change = Change::of(decrement);
        if !rb_self.memory_only || rb_self.forked() {
            let series = series.to_string()?;
            return rb_self.run(ruby, |b| apply(change, b, &series, key, bucket, value));
        }
        // SAFETY: the GVL is held from here to the end of the call and no
        // Ruby code runs in between (the engine call is pure Rust), so the
        // String can be neither mutated nor collected while it is borrowed;
        // `series` is on the stack, which keeps it alive for the GC.
        let name = unsafe { series.as_str() }?;
        match rb_self.backend.read().as_ref() {
            Some(backend) => apply(change, backend, name, key, bucket, value),
            None => Err(Failure::Closed(rb_self.label)),
        }
        .map_err(|f| f.into_error(ruby))
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        if self.forked() {
            self.abandon_after_fork();
        }
    }
}

/// A non-negative Integer up to 2**64-1, else `Karma::ValidationError`
/// (or `TypeError` for a non-Integer).
fn u64_arg(ruby: &Ruby, v: Value, what: &str) -> Result<u64, Error> {
    match Integer::from_value(v) {
        Some(i) => i.to_u64().map_err(|_| {
            errors::argument(
                ruby,
                format!("{what} must be an Integer from 0 to 2**64-1 (18446744073709551615), got {}", i.inspect()),
            )
        }),
        None => Err(Error::new(
            ruby.exception_type_error(),
            format!("{what} must be an Integer, got {}", v.class().inspect()),
        )),
    }
}

fn opt_u64(ruby: &Ruby, v: Value, what: &str) -> Result<Option<u64>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        u64_arg(ruby, v, what).map(Some)
    }
}

impl Native {
    fn open_engine(ruby: &Ruby, class: RClass, path: Option<PathBuf>, opts: Option<RHash>) -> Result<Value, Error> {
        let opts = options::engine_options(ruby, path, opts)?;
        // Opening replays the WAL: it can take a while, so without the GVL.
        let engine = without_gvl(|| Engine::open(opts)).map_err(|e| Failure::Engine(e).into_error(ruby))?;
        Ok(ruby.obj_wrap_as(Native::new(Backend::Engine(engine)), class).as_value())
    }

    fn open_client(ruby: &Ruby, class: RClass, url: Option<String>, opts: Option<RHash>) -> Result<Value, Error> {
        let cluster_url = url.clone().filter(|u| AnyClient::is_cluster_url(u));
        let client = match cluster_url {
            // A cluster takes token, pool and timeouts from the options only,
            // and reads its shard count from etcd: network, so without the GVL.
            Some(u) => {
                let config = options::client_config(ruby, None, opts, Some(Default::default()))?;
                without_gvl(|| AnyClient::from_url(&u, config)).map_err(|e| Failure::Client(e).into_error(ruby))?
            }
            None => {
                let config = options::client_config(ruby, url, opts, None)?;
                AnyClient::Node(karma_client::Client::new(config).map_err(|e| {
                    errors::build(ruby, "ValidationError", e.message(), Some(e.code().as_str()), "invalid")
                })?)
            }
        };
        Ok(ruby.obj_wrap_as(Native::new(Backend::Client(client)), class).as_value())
    }

    /// `_consume(series, key, value, limit, bucket, window, days)`: the
    /// typed `Karma::consume`; `window` is nil or "day"/"days"/"month" and
    /// `days` nil or an Integer, read as the protocol reads those fields.
    /// Answers `[allowed, used, remaining, limit, range_from, range_to]`.
    #[allow(clippy::too_many_arguments)]
    fn consume(
        ruby: &Ruby,
        rb_self: &Self,
        series: String,
        key: Value,
        value: Value,
        limit: Value,
        bucket: Value,
        window: Option<String>,
        days: Value,
    ) -> Result<(bool, u64, u64, u64, u64, u64), Error> {
        let key = u64_arg(ruby, key, "key")?;
        let value = u64_arg(ruby, value, "value")?;
        let limit = u64_arg(ruby, limit, "limit")?;
        let bucket = opt_u64(ruby, bucket, "bucket")?;
        let days = opt_u64(ruby, days, "days")?;
        let window = Window::parse(window.as_deref(), days).map_err(|e| errors::argument(ruby, e.message()))?;
        let q = rb_self.run(ruby, |b| match b {
            Backend::Engine(e) => Karma::consume(e, &series, key, bucket, value, limit, window).map_err(Failure::from),
            Backend::Client(c) => Karma::consume(c, &series, key, bucket, value, limit, window).map_err(Failure::from),
        })?;
        Ok((q.allowed, q.used, q.remaining, q.limit, q.window.from, q.window.to))
    }

    /// `op` with `fields` on either backend: the whole response envelope
    /// when `whole`, else the `response` value (an error envelope raising
    /// its `Karma::*Error`).
    fn exchange(ruby: &Ruby, rb_self: &Self, op: String, fields: Option<RHash>, whole: bool) -> Result<Value, Error> {
        let fields = match fields {
            Some(h) => json::hash_to_json(ruby, h, "fields")?,
            None => Map::new(),
        };
        let answer = rb_self.run(ruby, |b| match (b, whole) {
            (Backend::Engine(e), false) => e.request_value(&op, fields).map_err(Failure::from),
            (Backend::Engine(e), true) => e.request_envelope(&op, fields).map_err(Failure::from),
            (Backend::Client(c), false) => c.request_value(&op, fields).map_err(Failure::from),
            (Backend::Client(c), true) => c.request_envelope(&op, fields).map_err(Failure::from),
        })?;
        json::from_json(ruby, &answer)
    }

    /// `_request(op, fields)`: the `response` value.
    fn request(ruby: &Ruby, rb_self: &Self, op: String, fields: Option<RHash>) -> Result<Value, Error> {
        Self::exchange(ruby, rb_self, op, fields, false)
    }

    /// `_envelope(op, fields)`: the whole response object, errors included.
    fn envelope(ruby: &Ruby, rb_self: &Self, op: String, fields: Option<RHash>) -> Result<Value, Error> {
        Self::exchange(ruby, rb_self, op, fields, true)
    }

    /// Flushes and closes (engine: WAL flushed, directory lock released;
    /// client: idle connections closed). Idempotent.
    fn close(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        if rb_self.forked() {
            rb_self.abandon_after_fork();
            return Ok(());
        }
        without_gvl(|| match rb_self.backend.write().take() {
            Some(Backend::Engine(e)) => e.close().map_err(Failure::from),
            Some(Backend::Client(c)) => {
                c.close_idle();
                Ok(())
            }
            None => Ok(()),
        })
        .map_err(|f| f.into_error(ruby))
    }

    fn is_closed(&self) -> bool {
        self.backend.read().is_none()
    }

    fn describe(&self) -> String {
        match self.backend.read().as_ref() {
            Some(Backend::Engine(e)) => match &e.options().directory {
                Some(d) => format!("#<Karma::Engine path={:?}>", d.display().to_string()),
                None => "#<Karma::Engine in memory>".to_string(),
            },
            Some(Backend::Client(AnyClient::Node(c))) => format!("#<Karma::Client {}>", c.config().address()),
            Some(Backend::Client(AnyClient::Cluster(c))) => format!("#<Karma::Client {}>", c.url()),
            None => format!("#<Karma::{} (closed)>", self.label),
        }
    }
}

pub fn define(ruby: &Ruby) -> Result<(), Error> {
    let karma: RModule = ruby.define_module("Karma")?;
    let native = karma.define_class("Native", ruby.class_object())?;
    native.undef_default_alloc_func();
    native.define_singleton_method("error_for_code", function!(errors::error_for_code, 2))?;
    native.define_singleton_method("error_classes", function!(errors::error_classes, 0))?;
    native.define_method("_change", method!(Native::change, 5))?;
    native.define_method("_consume", method!(Native::consume, 7))?;
    native.define_method("_request", method!(Native::request, 2))?;
    native.define_method("_envelope", method!(Native::envelope, 2))?;
    native.define_method("close", method!(Native::close, 0))?;
    native.define_method("closed?", method!(Native::is_closed, 0))?;
    native.define_method("inspect", method!(Native::describe, 0))?;

    let engine = karma.define_class("Engine", native)?;
    engine.define_singleton_method("_open", method!(Native::open_engine, 2))?;
    let client = karma.define_class("Client", native)?;
    client.define_singleton_method("_open", method!(Native::open_client, 2))?;
    Ok(())
}
