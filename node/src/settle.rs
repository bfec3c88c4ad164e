//! Promises settled from other threads, many per wake-up.
//!
//! A pipelined `Client` call creates its Promise on the JavaScript thread
//! and hands a [`Pending`] to the connection thread that will receive the
//! answer. That thread drops the outcome in the client's mailbox; the first
//! outcome in an empty mailbox also pokes one threadsafe function (one per
//! client, not one per call: creating a threadsafe function per Promise
//! costs a libuv handle each). On the JavaScript thread the poke drains the
//! whole mailbox, settling every Promise that arrived meanwhile, so a burst
//! of answers costs one wake-up of the event loop.
//!
//! The threadsafe function holds the event loop open only while Promises
//! are outstanding (it is `ref`'d on the first, `unref`'d after the last),
//! so an idle `Client` never keeps a process alive.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env, JsError, JsValue, Unknown};
use parking_lot::Mutex;

use crate::errors::{self, Failure};

/// Turns an outcome into the value to resolve with, or the error to reject with.
type Settle = Box<dyn FnOnce(&Env) -> Result<sys::napi_value, napi::Error> + Send>;

/// A Promise's resolving end. Only ever used on the JavaScript thread that
/// created it (in [`drain`]); it travels through other threads untouched.
struct Deferred(sys::napi_deferred);

// SAFETY: the pointer is never dereferenced or passed to Node off the
// JavaScript thread; other threads only move it into the mailbox.
unsafe impl Send for Deferred {}

/// Outcomes waiting for the JavaScript thread, shared by the [`Settler`]
/// and the threadsafe function's context (which outlives the settler until
/// the last poke is handled).
struct Mailbox {
    ready: Mutex<Vec<(Deferred, Settle)>>,
    /// Promises created and not yet settled; touched on the JavaScript thread only.
    outstanding: Mutex<usize>,
    /// The threadsafe function; null once the env is torn down (a worker
    /// thread ending), so a late answer never calls into a freed one. Held
    /// locked while calling it, so teardown cannot free it mid-call.
    tsfn: Mutex<Tsfn>,
}

struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function may be called and released from any thread;
// the mutex around it orders those calls against the teardown hook.
unsafe impl Send for Tsfn {}

/// One client's Promise factory: [`Settler::promise`] on the JavaScript
/// thread, [`Pending::settle`] from anywhere.
pub struct Settler {
    mailbox: Arc<Mailbox>,
}

/// A Promise to settle from any thread. Keeps the threadsafe function alive.
pub struct Pending {
    deferred: Deferred,
    settler: Arc<Settler>,
}

impl Settler {
    /// Creates the threadsafe function (on the JavaScript thread of `env`).
    pub fn new(env: &Env) -> napi::Result<Arc<Settler>> {
        let mailbox = Arc::new(Mailbox {
            ready: Mutex::new(Vec::new()),
            outstanding: Mutex::new(0),
            tsfn: Mutex::new(Tsfn(ptr::null_mut())),
        });
        let context = Box::into_raw(Box::new(Arc::clone(&mailbox))).cast::<c_void>();
        let name = env.create_string("karma-client")?;
        let mut tsfn = ptr::null_mut();
        // SAFETY: `env` is the live env of this call. No JavaScript function:
        // `drain` does the work. `context` is freed by `finalize`, which Node
        // calls once, after the last release.
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                ptr::null_mut(),
                ptr::null_mut(),
                name.raw(),
                0,
                1,
                context,
                Some(finalize),
                context,
                Some(drain),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to Node, so still ours to free.
            drop(unsafe { Box::from_raw(context.cast::<Arc<Mailbox>>()) });
            return Err(napi::Error::new(napi::Status::GenericFailure, "cannot create a threadsafe function"));
        }
        // SAFETY: created above on this thread. The hook's argument is the
        // context, alive until `finalize`, which removes the hook first.
        unsafe {
            sys::napi_unref_threadsafe_function(env.raw(), tsfn);
            sys::napi_add_env_cleanup_hook(env.raw(), Some(teardown), context);
        }
        mailbox.tsfn.lock().0 = tsfn;
        Ok(Arc::new(Settler { mailbox }))
    }

    /// A new Promise (returned to JavaScript) and its [`Pending`] end.
    pub fn promise<'env>(self: &Arc<Settler>, env: &'env Env) -> napi::Result<(Unknown<'env>, Pending)> {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: `env` is the live env of this call.
        napi::check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
        let mut outstanding = self.mailbox.outstanding.lock();
        if *outstanding == 0 {
            let tsfn = self.mailbox.tsfn.lock();
            if !tsfn.0.is_null() {
                // SAFETY: on the JavaScript thread; the tsfn is alive (not torn down).
                unsafe { sys::napi_ref_threadsafe_function(env.raw(), tsfn.0) };
            }
        }
        *outstanding += 1;
        drop(outstanding);
        // SAFETY: `promise` was just created in `env`.
        let promise = unsafe { Unknown::from_raw_unchecked(env.raw(), promise) };
        Ok((promise, Pending { deferred: Deferred(deferred), settler: Arc::clone(self) }))
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        let mut tsfn = self.mailbox.tsfn.lock();
        if !tsfn.0.is_null() {
            // SAFETY: the one release of the thread count taken at creation;
            // Node finalizes after the pokes already queued are handled.
            unsafe { sys::napi_release_threadsafe_function(tsfn.0, sys::ThreadsafeFunctionReleaseMode::release) };
            tsfn.0 = ptr::null_mut();
        }
    }
}

impl Pending {
    /// Settles the Promise with `outcome` (converted on the JavaScript thread).
    pub fn settle<T: ToNapiValue + Send + 'static>(self, outcome: Result<T, Failure>) {
        let settle: Settle = Box::new(move |env| match outcome {
            // SAFETY: runs in `drain`, on the JavaScript thread, with its live env.
            Ok(value) => unsafe { T::to_napi_value(env.raw(), value) },
            Err(failure) => Err(errors::to_js(env, failure)),
        });
        let mailbox = &self.settler.mailbox;
        let mut ready = mailbox.ready.lock();
        let first = ready.is_empty();
        ready.push((self.deferred, settle));
        drop(ready);
        if first {
            let tsfn = mailbox.tsfn.lock();
            if !tsfn.0.is_null() {
                // SAFETY: not released (the settler is alive while `self` is)
                // nor torn down (null then). A failure leaves nothing to do.
                unsafe {
                    sys::napi_call_threadsafe_function(
                        tsfn.0,
                        ptr::null_mut(),
                        sys::ThreadsafeFunctionCallMode::nonblocking,
                    )
                };
            }
        }
    }
}

/// The threadsafe function's call: settles every outcome in the mailbox.
unsafe extern "C" fn drain(env: sys::napi_env, _js: sys::napi_value, context: *mut c_void, _data: *mut c_void) {
    if env.is_null() {
        // The env is being torn down: no Promise can be settled any more.
        return;
    }
    // SAFETY: `context` is the `Arc<Mailbox>` boxed in `Settler::new`, freed
    // only by `finalize`, after the last call.
    let mailbox = unsafe { &*context.cast::<Arc<Mailbox>>() };
    let ready = std::mem::take(&mut *mailbox.ready.lock());
    if ready.is_empty() {
        return;
    }
    // Node calls this on the JavaScript thread with its live env.
    let env = Env::from_raw(env);
    let count = ready.len();
    for (deferred, settle) in ready {
        // SAFETY: each deferred was created on this thread and is settled once.
        unsafe {
            match settle(&env) {
                Ok(value) => sys::napi_resolve_deferred(env.raw(), deferred.0, value),
                Err(error) => {
                    sys::napi_reject_deferred(env.raw(), deferred.0, JsError::from(error).into_value(env.raw()))
                }
            };
        }
    }
    let mut outstanding = mailbox.outstanding.lock();
    *outstanding = outstanding.saturating_sub(count);
    let tsfn = mailbox.tsfn.lock();
    if *outstanding == 0 && !tsfn.0.is_null() {
        // SAFETY: on the JavaScript thread, inside a call of this tsfn.
        unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn.0) };
    }
}

/// The env is going away (a worker thread ends, the process exits): aborts
/// the threadsafe function before Node finalizes it (cleanup hooks run in
/// reverse order, and Node registered its own when the tsfn was created),
/// so answers arriving later find it gone instead of freed.
unsafe extern "C" fn teardown(context: *mut c_void) {
    // SAFETY: the context box is alive: `finalize` removes this hook before freeing it.
    let mailbox = unsafe { &*context.cast::<Arc<Mailbox>>() };
    let mut tsfn = mailbox.tsfn.lock();
    if !tsfn.0.is_null() {
        // SAFETY: alive until this abort; nobody calls it after (null below).
        unsafe { sys::napi_release_threadsafe_function(tsfn.0, sys::ThreadsafeFunctionReleaseMode::abort) };
        tsfn.0 = ptr::null_mut();
    }
}

/// Frees the context once Node is done with the threadsafe function.
unsafe extern "C" fn finalize(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: the hook was added with this argument in `Settler::new`;
    // removing a hook that already ran is a no-op.
    unsafe { sys::napi_remove_env_cleanup_hook(env, Some(teardown), data) };
    // SAFETY: `data` is the box made in `Settler::new`; Node calls this once.
    drop(unsafe { Box::from_raw(data.cast::<Arc<Mailbox>>()) });
}
