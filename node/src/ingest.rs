//! `Ingest`: one streaming-ingest stream (docs/protocol.md, "Streaming
//! ingest"), as the Python and Ruby bindings have it.
//!
//! ```js
//! const stream = engine.ingest('import-2026-05-01', 'add')
//! await stream.begin()
//! await stream.chunk('api', [[7, 20260501, 3n], [8, '2026-05-01', 1]])
//! await stream.commit()            // or stream.abort()
//! ```
//!
//! `begin()` answers the stream's `last_chunk_seq`, and `chunk()` numbers
//! its chunks after it, so re-running an interrupted import with the same
//! `streamId` continues where the server stopped; a chunk sent again with
//! its old `chunkSeq` is skipped, not applied twice.

use std::sync::Arc;

use napi::bindgen_prelude::AsyncTask;
use napi::Unknown;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::calls::request_value;
use crate::conv::{self, Arg};
use crate::task::{Backend, Call, Handle, Job, Json};

struct State {
    /// The `chunk_seq` the next `chunk()` sends.
    next_seq: u64,
    /// `'new'` until begun, then what the server last said
    /// (`active`, `committed`, `already_committed`, `aborted`).
    status: String,
}

/// A streaming ingest: `begin()`, then `chunk(series, items)` as often as
/// needed, then `commit()` (or `abort()`). Each call returns a Promise of
/// the server's answer. Made by `ingest(streamId, mode)` of an `Engine` or
/// a `Client`.
#[napi]
pub struct Ingest {
    handle: Arc<Handle>,
    stream_id: String,
    mode: String,
    granularity: Option<String>,
    state: Arc<Mutex<State>>,
}

impl Ingest {
    /// `ingest(streamId, mode, options?)` of `Engine` and `Client`.
    pub fn open(handle: &Arc<Handle>, stream_id: Unknown<'_>, mode: Unknown<'_>, options: Unknown<'_>) -> Arg<Ingest> {
        let stream_id = conv::string(&stream_id, "streamId")?;
        let mode = conv::string(&mode, "mode")?;
        let o = conv::options(Some(&options), "options", &["granularity"])?;
        let granularity = conv::opt_string(conv::option(o.as_ref(), "granularity")?.as_ref(), "granularity")?;
        let state = Arc::new(Mutex::new(State { next_seq: 1, status: "new".into() }));
        Ok(Ingest { handle: Arc::clone(handle), stream_id, mode, granularity, state })
    }

    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("stream_id".into(), Value::from(self.stream_id.as_str()));
        m
    }

    /// `op` with `fields` on the handle's backend; `after` sees the answer
    /// (on the libuv thread) before it resolves the Promise.
    fn send(
        &self,
        op: &'static str,
        fields: Arg<Map<String, Value>>,
        after: impl FnOnce(&Value, &Mutex<State>) + Send + 'static,
    ) -> AsyncTask<Job<Json>> {
        let state = Arc::clone(&self.state);
        let call = fields.map(|fields| {
            Box::new(move |backend: &Backend| {
                let answer = request_value(backend, op, fields)?;
                after(&answer, &state);
                Ok(Json(answer))
            }) as Call<Json>
        });
        AsyncTask::new(Job::new(&self.handle, call))
    }
}

/// Records the stream's status from an answer that has one.
fn note_status(answer: &Value, state: &Mutex<State>) {
    if let Some(s) = answer.get("status").and_then(Value::as_str) {
        state.lock().status = s.to_string();
    }
}

#[napi]
impl Ingest {
    /// `ingest.begin` (idempotent): resolves to the stream's status; later
    /// chunks are numbered after its `last_chunk_seq`.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn begin(&self) -> AsyncTask<Job<Json>> {
        let mut f = self.fields();
        f.insert("mode".into(), Value::from(self.mode.as_str()));
        if let Some(g) = &self.granularity {
            f.insert("granularity".into(), Value::from(g.as_str()));
        }
        self.send("ingest.begin", Ok(f), |answer, state| {
            let last = answer.get("last_chunk_seq").and_then(Value::as_u64).unwrap_or(0);
            state.lock().next_seq = last.saturating_add(1);
            note_status(answer, state);
        })
    }

    /// `ingest.chunk` of `[key, bucket, value]` items; `chunkSeq` defaults
    /// to the next one (1, 2, ...). Resolves to the server's answer
    /// (`skipped: true` for a chunk the stream already had).
    #[napi(
        ts_args_type = "series: string, items: Array<[number | bigint, Date | string | number, number | bigint]>, options?: ChunkOptions",
        ts_return_type = "Promise<any>"
    )]
    pub fn chunk(&self, series: Unknown<'_>, items: Unknown<'_>, options: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let mut given = None;
        let fields = (|| -> Arg<Map<String, Value>> {
            let series = conv::string(&series, "series")?;
            let items = conv::items(&items, "items")?;
            let o = conv::options(Some(&options), "options", &["chunkSeq"])?;
            given = conv::opt_u64(conv::option(o.as_ref(), "chunkSeq")?.as_ref(), "chunkSeq")?;
            let seq = match given {
                Some(seq) => seq,
                // Numbered now, on the JavaScript thread, so chunks sent
                // without waiting for each other still get 1, 2, 3...
                None => {
                    let mut state = self.state.lock();
                    state.next_seq = state.next_seq.saturating_add(1);
                    state.next_seq - 1
                }
            };
            let mut f = self.fields();
            f.insert("series".into(), Value::from(series));
            f.insert("chunk_seq".into(), Value::from(seq));
            f.insert("items".into(), Value::Array(items.iter().map(|i| Value::from(i.to_vec())).collect()));
            Ok(f)
        })();
        self.send("ingest.chunk", fields, move |_, state| {
            // An explicit number the server took moves the numbering on.
            if let Some(seq) = given {
                let mut state = state.lock();
                state.next_seq = state.next_seq.max(seq.saturating_add(1));
            }
        })
    }

    /// `ingest.commit`: makes the stream final.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn commit(&self) -> AsyncTask<Job<Json>> {
        self.send("ingest.commit", Ok(self.fields()), note_status)
    }

    /// `ingest.abort`: drops an active stream (chunks of `add` and `set`
    /// streams already applied stay applied).
    #[napi(ts_return_type = "Promise<any>")]
    pub fn abort(&self) -> AsyncTask<Job<Json>> {
        self.send("ingest.abort", Ok(self.fields()), note_status)
    }

    #[napi(getter)]
    pub fn stream_id(&self) -> String {
        self.stream_id.clone()
    }

    #[napi(getter)]
    pub fn mode(&self) -> String {
        self.mode.clone()
    }

    #[napi(getter)]
    pub fn granularity(&self) -> Option<String> {
        self.granularity.clone()
    }

    /// The `chunkSeq` the next `chunk()` sends.
    #[napi(getter)]
    pub fn next_chunk_seq(&self) -> i64 {
        i64::try_from(self.state.lock().next_seq).unwrap_or(i64::MAX)
    }

    /// `'new'` until `begin()` answered, then the server's last word
    /// (`'active'`, `'committed'`, `'already_committed'`, `'aborted'`).
    #[napi(getter)]
    pub fn status(&self) -> String {
        self.state.lock().status.clone()
    }
}

/// `{ chunkSeq }` of `Ingest.chunk`.
#[napi(object)]
pub struct ChunkOptions {
    /// The chunk's number (default: the one after the last sent).
    #[napi(ts_type = "number | bigint")]
    pub chunk_seq: Option<i64>,
}

/// `{ granularity }` of `ingest`.
#[napi(object)]
pub struct IngestOptions {
    /// Stored with the stream as given.
    pub granularity: Option<String>,
}

/// `ingest(streamId, mode, options)` as a method of `$class` (`Engine`, `Client`).
macro_rules! ingest_method {
    ($class:ident) => {
        #[napi]
        impl $class {
            /// A streaming ingest (`mode`: `'add'`, `'set'` or
            /// `'replace_series'`); nothing is sent until its `begin()`.
            #[napi(ts_args_type = "streamId: string, mode: string, options?: IngestOptions")]
            pub fn ingest(
                &self,
                env: napi::Env,
                stream_id: Unknown<'_>,
                mode: Unknown<'_>,
                options: Unknown<'_>,
            ) -> napi::Result<$crate::ingest::Ingest> {
                $crate::ingest::Ingest::open(&self.handle, stream_id, mode, options)
                    .map_err(|f| $crate::errors::to_js(&env, f))
            }
        }
    };
}
pub(crate) use ingest_method;
