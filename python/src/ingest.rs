//! `karma.Ingest`: one streaming-ingest stream (spec/protocol.md §11) as a
//! context manager.
//!
//! ```python
//! with engine.ingest("import-2026-05-01", "add") as stream:
//!     stream.chunk("api", [(7, 20260501, 3), (8, 20260501, 1)])
//!     stream.chunk("api", more_items)
//! # committed here; aborted instead if the block raised
//! ```
//!
//! `begin` (on enter) answers the stream's `last_chunk_seq`, so re-running
//! an interrupted import with the same `stream_id` continues after the last
//! chunk the server recorded, and a chunk sent again with its old
//! `chunk_seq` is skipped rather than applied twice.

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use serde_json::{Map, Value};

use crate::api::Api;
use crate::conv;

struct State {
    /// The `chunk_seq` the next `chunk()` sends.
    next_seq: u64,
    /// `new` until begun, then what the server last said
    /// (`active`, `committed`, `already_committed`, `aborted`).
    status: String,
}

#[pyclass(name = "Ingest", module = "karma", frozen)]
pub struct Ingest {
    api: Py<Api>,
    stream_id: String,
    mode: String,
    granularity: Option<String>,
    state: Mutex<State>,
}

impl Ingest {
    pub fn new(api: Py<Api>, stream_id: String, mode: String, granularity: Option<String>) -> Ingest {
        Ingest { api, stream_id, mode, granularity, state: Mutex::new(State { next_seq: 1, status: "new".into() }) }
    }

    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("stream_id".into(), Value::from(self.stream_id.as_str()));
        m
    }

    fn send(&self, py: Python<'_>, op: &str, fields: Map<String, Value>) -> PyResult<Value> {
        self.api.get().request_value(py, op, fields)
    }

    fn note_status(&self, v: &Value) {
        if let Some(s) = v.get("status").and_then(Value::as_str) {
            self.state.lock().status = s.to_string();
        }
    }
}

#[pymethods]
impl Ingest {
    /// `ingest.begin`; idempotent. Continues numbering after the server's `last_chunk_seq`.
    fn begin<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut f = self.fields();
        f.insert("mode".into(), Value::from(self.mode.as_str()));
        if let Some(g) = &self.granularity {
            f.insert("granularity".into(), Value::from(g.as_str()));
        }
        let v = self.send(py, "ingest.begin", f)?;
        let last = v.get("last_chunk_seq").and_then(Value::as_u64).unwrap_or(0);
        self.state.lock().next_seq = last.saturating_add(1);
        self.note_status(&v);
        conv::from_json(py, &v)
    }

    /// `ingest.chunk` with `[(key, bucket, value), ...]`; `chunk_seq`
    /// defaults to the next one (1, 2, ...). Returns the server's answer
    /// (`skipped` is true for a chunk the stream already had).
    #[pyo3(signature = (series, items, chunk_seq=None))]
    fn chunk<'py>(
        &self,
        py: Python<'py>,
        series: PyBackedStr,
        items: &Bound<'py, PyAny>,
        chunk_seq: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let items = conv::items(items, "items")?;
        let seq = match conv::opt_u64(chunk_seq, "chunk_seq")? {
            Some(s) => s,
            None => self.state.lock().next_seq,
        };
        let mut f = self.fields();
        f.insert("series".into(), Value::from(&*series));
        f.insert("chunk_seq".into(), Value::from(seq));
        f.insert("items".into(), Value::Array(items.iter().map(|i| Value::from(i.to_vec())).collect()));
        let v = self.send(py, "ingest.chunk", f)?;
        {
            let mut st = self.state.lock();
            st.next_seq = st.next_seq.max(seq.saturating_add(1));
        }
        conv::from_json(py, &v)
    }

    /// `ingest.commit`.
    fn commit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.send(py, "ingest.commit", self.fields())?;
        self.note_status(&v);
        conv::from_json(py, &v)
    }

    /// `ingest.abort`.
    fn abort<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.send(py, "ingest.abort", self.fields())?;
        self.note_status(&v);
        conv::from_json(py, &v)
    }

    #[getter]
    fn stream_id(&self) -> &str {
        &self.stream_id
    }

    #[getter]
    fn mode(&self) -> &str {
        &self.mode
    }

    #[getter]
    fn granularity(&self) -> Option<&str> {
        self.granularity.as_deref()
    }

    /// The `chunk_seq` the next `chunk()` will send.
    #[getter]
    fn next_chunk_seq(&self) -> u64 {
        self.state.lock().next_seq
    }

    #[getter]
    fn status(&self) -> String {
        self.state.lock().status.clone()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().begin(slf.py())?;
        Ok(slf)
    }

    /// Commits after a clean block; after an exception, aborts (an abort
    /// failure is attached as a note, the block's exception propagates).
    #[pyo3(signature = (exc_type, exc, _tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if exc_type.is_none() {
            self.commit(py)?;
        } else if let Err(e) = self.abort(py) {
            if exc.hasattr("add_note").unwrap_or(false) {
                let _ = exc.call_method1("add_note", (format!("karma: ingest.abort failed too: {e}"),));
            }
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let st = self.state.lock();
        format!(
            "<karma.Ingest stream_id={:?} mode={:?} status={:?} next_chunk_seq={}>",
            self.stream_id, self.mode, st.status, st.next_seq
        )
    }
}
