//! `karma._karma._Api`: the methods `karma.Engine` and `karma.Client` share,
//! written once over [`karma_engine::api::Karma`], which both the engine
//! and the network client implement.
//!
//! Every call converts its Python arguments while holding the GIL, then
//! releases the GIL (`py.detach`) for the engine or network work, so other
//! Python threads run meanwhile, and converts the result back.
//!
//! Most methods are generated from the engine's method table (`table`);
//! the ones here are those whose Python signature or answer differs from
//! the table's row, and those outside the table.

use karma_client::AnyClient;
use karma_engine::api::{Change, Karma};
use karma_engine::Engine;
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyTuple};
use serde_json::{Map, Value};

use crate::conv;
use crate::errors::Failure;
use crate::ingest::Ingest;

/// What an `_Api` object talks to.
pub enum Backend {
    Engine(Engine),
    /// A server or a cluster, by URL.
    Client(AnyClient),
}

/// Runs `$body` with `$k` bound to the engine or the client (both `Karma`),
/// without the GIL; errors of either become a [`Failure`].
macro_rules! both {
    ($self:ident, $py:ident, |$k:ident| $body:expr) => {
        $self.run($py, |backend| match backend {
            Backend::Engine($k) => $body.map_err(Failure::from),
            Backend::Client($k) => $body.map_err(Failure::from),
        })
    };
}

// After `both!`, which the generated methods use.
mod table;

#[pyclass(name = "_Api", module = "karma", subclass, frozen)]
pub struct Api {
    /// `None` once closed.
    backend: RwLock<Option<Backend>>,
    /// For an engine, the fork generation it was opened in (see `lib.rs`);
    /// a client handles forks itself.
    engine_generation: Option<u64>,
    label: &'static str,
}

impl Api {
    pub fn new(backend: Backend) -> Api {
        let (engine_generation, label) = match backend {
            Backend::Engine(_) => (Some(crate::fork_generation()), "Engine"),
            Backend::Client(_) => (None, "Client"),
        };
        Api { backend: RwLock::new(Some(backend)), engine_generation, label }
    }

    fn forked(&self) -> bool {
        self.engine_generation.is_some_and(|g| g != crate::fork_generation())
    }

    /// Runs `f` on the backend with the GIL released.
    pub fn run<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&Backend) -> Result<R, Failure> + Send) -> PyResult<R> {
        if self.forked() {
            self.abandon_after_fork();
            return Err(Failure::Forked.into_pyerr(py));
        }
        let result = py.detach(|| match self.backend.read().as_ref() {
            Some(backend) => f(backend),
            None => Err(Failure::Closed(self.label)),
        });
        result.map_err(|f| f.into_pyerr(py))
    }

    /// In a forked child the engine's WAL writer thread does not exist:
    /// closing or dropping it would wait for that thread forever, so the
    /// inherited engine is leaked instead.
    fn abandon_after_fork(&self) {
        if let Some(backend) = self.backend.write().take() {
            std::mem::forget(backend);
        }
    }

    /// One v2 request (`{"v":2,"op":op, ...fields}`); the `response` value,
    /// or the error envelope as an exception.
    pub fn request_value(&self, py: Python<'_>, op: &str, fields: Map<String, Value>) -> PyResult<Value> {
        self.run(py, move |backend| match backend {
            Backend::Engine(e) => e.request_value(op, fields).map_err(Failure::from),
            Backend::Client(c) => c.request_value(op, fields).map_err(Failure::from),
        })
    }
}

impl Api {
    /// `increment` or `decrement`, with their arguments' defaults.
    fn change(
        &self,
        py: Python<'_>,
        change: Change,
        series: PyBackedStr,
        key: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        bucket: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let key = conv::u64_arg(key, "key")?;
        let value = conv::opt_u64(value, "value")?.unwrap_or(1);
        let bucket = conv::opt_bucket(bucket, "bucket")?;
        both!(self, py, |k| change.apply(k, &series, key, bucket, value))
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if self.forked() {
            self.abandon_after_fork();
        }
    }
}

fn pairs<'py>(py: Python<'py>, items: Vec<(u64, u64)>) -> PyResult<Bound<'py, PyAny>> {
    items.into_pyobject(py).map(Bound::into_any)
}

fn dict<'py>(py: Python<'py>, entries: &[(&str, Bound<'py, PyAny>)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in entries {
        d.set_item(*k, v)?;
    }
    Ok(d)
}

fn int(py: Python<'_>, v: u64) -> Bound<'_, PyAny> {
    let Ok(int) = v.into_pyobject(py);
    int.into_any()
}

fn opt_int(py: Python<'_>, v: Option<u64>) -> Bound<'_, PyAny> {
    match v {
        Some(v) => int(py, v),
        None => py.None().into_bound(py),
    }
}

/// `increment` and `decrement`: one Python signature (`value` defaults to
/// 1 and comes before `bucket`, unlike the table's row), one body.
macro_rules! change_method {
    ($(#[doc = $doc:literal])* $name:ident => $change:expr) => {
        #[pymethods]
        impl Api {
            $(#[doc = $doc])*
            #[pyo3(signature = (series, key, value=None, bucket=None))]
            fn $name(
                &self,
                py: Python<'_>,
                series: PyBackedStr,
                key: &Bound<'_, PyAny>,
                value: Option<&Bound<'_, PyAny>>,
                bucket: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<u64> {
                self.change(py, $change, series, key, value, bucket)
            }
        }
    };
}

change_method! {
    /// Adds `value` (default 1) to one day bucket (today, UTC, by default);
    /// returns the value added.
    increment => Change::Increment
}

change_method! {
    /// Subtracts up to `value` (default 1) from one bucket, never below zero;
    /// returns the requested `value` (as the protocol does), not the amount removed.
    decrement => Change::Decrement
}

#[pymethods]
impl Api {
    /// `counter.consume`: adds `value` (default 1) to one bucket (today,
    /// UTC, by default) only if the window's total plus `value` stays
    /// within `limit`, atomically. `window` is `"day"` (default), `"month"`
    /// (month to date) or `"days"` with `days` (the last `days` days; `days`
    /// alone implies it). Returns `{"allowed", "used", "remaining", "limit",
    /// "range_from", "range_to"}`, the protocol's answer; a refusal
    /// changes nothing.
    #[pyo3(signature = (series, key, limit, value=None, bucket=None, window=None, days=None))]
    #[allow(clippy::too_many_arguments)]
    fn consume<'py>(
        &self,
        py: Python<'py>,
        series: PyBackedStr,
        key: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
        value: Option<&Bound<'py, PyAny>>,
        bucket: Option<&Bound<'py, PyAny>>,
        window: Option<PyBackedStr>,
        days: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let key = conv::u64_arg(key, "key")?;
        let limit = conv::u64_arg(limit, "limit")?;
        let value = conv::opt_u64(value, "value")?.unwrap_or(1);
        let bucket = conv::opt_bucket(bucket, "bucket")?;
        let days = conv::opt_u64(days, "days")?;
        let window = conv::window(py, window.as_deref(), days)?;
        let q = both!(self, py, |k| Karma::consume(k, &series, key, bucket, value, limit, window))?;
        dict(
            py,
            &[
                ("allowed", q.allowed.into_pyobject(py)?.to_owned().into_any()),
                ("used", int(py, q.used)),
                ("remaining", int(py, q.remaining)),
                ("limit", int(py, q.limit)),
                ("range_from", int(py, q.window.from)),
                ("range_to", int(py, q.window.to)),
            ],
        )
    }

    /// Same as `points` (the v2 op is `counter.series`).
    fn series<'py>(
        &self,
        py: Python<'py>,
        series: PyBackedStr,
        key: &Bound<'py, PyAny>,
        range: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.points(py, series, key, range)
    }

    /// Clears many counters: `{"reset": n, "missing": m}`.
    fn batch_reset<'py>(
        &self,
        py: Python<'py>,
        series: PyBackedStr,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keys = conv::keys(keys, "keys")?;
        let (reset, missing) = both!(self, py, |k| Karma::batch_reset(k, &series, &keys))?;
        dict(py, &[("reset", int(py, reset as u64)), ("missing", int(py, missing as u64))])
    }

    /// Deletes the buckets in `range` of one counter (or of every counter).
    #[pyo3(signature = (series, range, key=None))]
    fn delete_range(
        &self,
        py: Python<'_>,
        series: PyBackedStr,
        range: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let range = conv::range(range, "range")?;
        let key = conv::opt_u64(key, "key")?;
        both!(self, py, |k| Karma::delete_range(k, &series, key, range))
    }

    /// Deletes `range` from many counters: `{"deleted": n, "missing": m}`.
    fn batch_delete_range<'py>(
        &self,
        py: Python<'py>,
        series: PyBackedStr,
        keys: &Bound<'py, PyAny>,
        range: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keys = conv::keys(keys, "keys")?;
        let range = conv::range(range, "range")?;
        let (deleted, missing) = both!(self, py, |k| Karma::batch_delete_range(k, &series, &keys, range))?;
        dict(py, &[("deleted", int(py, deleted as u64)), ("missing", int(py, missing as u64))])
    }

    /// Deletes idempotency records created before `before` (int unix
    /// seconds, datetime (naive = UTC), date, or RFC 3339 str), at most
    /// `limit` of them; returns how many were deleted.
    #[pyo3(signature = (before, limit=None))]
    fn idempotency_prune<'py>(
        &self,
        py: Python<'py>,
        before: &Bound<'py, PyAny>,
        limit: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut fields = Map::new();
        fields.insert("before".into(), conv::before_time(before)?);
        if let Some(limit) = conv::opt_u64(limit, "limit")? {
            fields.insert("limit".into(), Value::from(limit));
        }
        let v = self.request_value(py, "idempotency.prune", fields)?;
        conv::from_json(py, v.get("deleted").unwrap_or(&v))
    }

    /// A streaming ingest (`with api.ingest("id", "add") as s: s.chunk(series, items)`):
    /// begins on enter, numbers the chunks, commits on a clean exit and
    /// aborts when the block raises.
    #[pyo3(signature = (stream_id, mode, granularity=None))]
    fn ingest(slf: &Bound<'_, Self>, stream_id: String, mode: String, granularity: Option<String>) -> PyResult<Ingest> {
        Ok(Ingest::new(slf.clone().unbind(), stream_id, mode, granularity))
    }

    /// Any v2 op: sends `{"v": 2, "op": op, **fields}` and returns the
    /// `response` value; an error envelope raises its exception class.
    /// Ints go out as exact u64 (negative ones as i64), dates as YYYYMMDD.
    #[pyo3(signature = (op, **fields))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        op: PyBackedStr,
        fields: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fields = match fields {
            Some(f) => conv::dict_to_json(f, "fields")?,
            None => Map::new(),
        };
        let v = self.request_value(py, &op, fields)?;
        conv::from_json(py, &v)
    }

    /// Sends one raw request line (no trailing newline needed) and returns
    /// its `response` value; an error envelope raises its exception class.
    fn request_line<'py>(&self, py: Python<'py>, line: PyBackedStr) -> PyResult<Bound<'py, PyAny>> {
        let line = line.trim_end_matches(['\r', '\n']);
        let v = self.run(py, |backend| match backend {
            Backend::Engine(e) => e.request_line_value(line.as_bytes()).map_err(Failure::from),
            Backend::Client(c) => c.request_line_value(line).map_err(Failure::from),
        })?;
        conv::from_json(py, &v)
    }

    /// Flushes and closes (engine: WAL flushed, directory lock released;
    /// client: pooled connections closed). Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.forked() {
            self.abandon_after_fork();
            return Ok(());
        }
        let result = py.detach(|| match self.backend.write().take() {
            Some(Backend::Engine(e)) => e.close().map_err(Failure::from),
            Some(Backend::Client(c)) => {
                c.close_idle();
                Ok(())
            }
            None => Ok(()),
        });
        result.map_err(|f| f.into_pyerr(py))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.backend.read().is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.backend.read().as_ref() {
            Some(Backend::Engine(e)) => match &e.options().directory {
                Some(d) => format!("<karma.Engine path={:?}>", d.display().to_string()),
                None => "<karma.Engine in memory>".to_string(),
            },
            Some(Backend::Client(AnyClient::Node(c))) => format!("<karma.Client {}>", c.config().address()),
            Some(Backend::Client(AnyClient::Cluster(c))) => format!("<karma.Client {}>", c.url()),
            None => format!("<karma.{} (closed)>", self.label),
        }
    }
}
