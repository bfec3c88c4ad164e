//! What runs a call: the shared [`Handle`] on an engine or a client, and
//! [`Job`], the libuv-thread-pool task behind every Promise-returning method.
//!
//! A method converts its JavaScript arguments on the JavaScript thread,
//! producing a `Call` that owns everything it needs; `Job::compute` runs it
//! on a libuv worker thread, so a durable write (fsync) or a network round
//! trip never blocks the event loop; `resolve`/`reject` convert the result
//! or the failure back on the JavaScript thread.

use std::sync::Arc;

use karma_client::AnyClient;
use karma_engine::Engine;
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{sys, Env, JsValue, Task, ValueType};
use parking_lot::RwLock;
use serde_json::Value;

use crate::errors::{self, Failure};

/// What an `Engine` or `Client` object talks to.
pub enum Backend {
    Engine(Engine),
    Client(AnyClient),
}

/// The backend of one JavaScript object, shared with its pending jobs (and
/// with other threads: an `Engine` may be passed to worker threads).
pub struct Handle {
    /// `None` once closed.
    backend: RwLock<Option<Backend>>,
    label: &'static str,
}

impl Handle {
    pub fn new(backend: Backend) -> Arc<Handle> {
        let label = match backend {
            Backend::Engine(_) => "Engine",
            Backend::Client(_) => "Client",
        };
        Arc::new(Handle { backend: RwLock::new(Some(backend)), label })
    }

    /// Runs `call` on the backend, on the calling thread.
    #[inline]
    pub fn run<T>(&self, call: impl FnOnce(&Backend) -> Result<T, Failure>) -> Result<T, Failure> {
        match self.backend.read().as_ref() {
            Some(backend) => call(backend),
            None => Err(Failure::Closed(self.label)),
        }
    }

    /// Flushes and closes (engine: WAL flushed, directory lock released;
    /// client: idle connections closed). Waits for running calls; idempotent.
    pub fn close(&self) -> Result<(), Failure> {
        match self.backend.write().take() {
            Some(Backend::Engine(e)) => e.close().map_err(Failure::from),
            Some(Backend::Client(c)) => {
                c.close_idle();
                Ok(())
            }
            None => Ok(()),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.backend.read().is_none()
    }

    pub fn describe(&self) -> String {
        match self.backend.read().as_ref() {
            Some(Backend::Engine(e)) => match &e.options().directory {
                Some(d) => format!("Engine {{ path: {:?} }}", d.display().to_string()),
                None => "Engine { in memory }".to_string(),
            },
            Some(Backend::Client(AnyClient::Node(c))) => format!("Client {{ address: {:?} }}", c.config().address()),
            Some(Backend::Client(c)) => format!("Client {{ cluster: {:?} }}", c.target()),
            None => format!("{} {{ closed }}", self.label),
        }
    }
}

/// A prepared call: arguments already converted, ready for any thread.
pub type Call<T> = Box<dyn FnOnce(&Backend) -> Result<T, Failure> + Send>;

/// One Promise-returning call. An argument that failed to convert becomes a
/// job that rejects, so async methods reject rather than throw.
pub struct Job<T> {
    work: Option<Result<Work<T>, Failure>>,
    failure: Option<Failure>,
}

type Work<T> = Box<dyn FnOnce() -> Result<T, Failure> + Send>;

impl<T: Send + 'static> Job<T> {
    /// `call` on the handle's backend (rejects once the handle is closed).
    pub fn new(handle: &Arc<Handle>, call: Result<Call<T>, Failure>) -> Job<T> {
        let handle = Arc::clone(handle);
        let work = call.map(|call| Box::new(move || handle.run(call)) as Work<T>);
        Job { work: Some(work), failure: None }
    }

    /// Any work, not through a handle (`close`).
    pub fn detached(work: Work<T>) -> Job<T> {
        Job { work: Some(Ok(work)), failure: None }
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Job<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let outcome = match self.work.take() {
            Some(Ok(work)) => work(),
            Some(Err(failure)) => Err(failure),
            None => Err(Failure::Type("this call already ran".into())),
        };
        outcome.map_err(|failure| {
            self.failure = Some(failure);
            // Replaced by the real error object in `reject`.
            napi::Error::from_reason("")
        })
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T> {
        match self.failure.take() {
            Some(failure) => Err(errors::to_js(&env, failure)),
            None => Err(err),
        }
    }
}

/// An untyped JSON result (`health`, `stats`, `request`): converted by
/// [`crate::conv::from_json`], so integers above 2**53 become `bigint`.
pub struct Json(pub Value);

impl TypeName for Json {
    fn type_name() -> &'static str {
        "any"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Json {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(env);
        Ok(crate::conv::from_json(&env, val.0)?.raw())
    }
}
