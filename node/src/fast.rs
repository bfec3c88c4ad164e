//! The Engine's synchronous hot path, `incrementSync` and `decrementSync`,
//! called millions of times a second: anything spent around the engine's
//! ~50 ns increment is the binding's overhead, so this path skips what the
//! other methods pay for.
//!
//! * The options object is read by `karma.js`, where a property read costs
//!   nanoseconds instead of an N-API call each (plus listing its names for
//!   the misspelling check). Anything but a plain object with known names
//!   goes to the full native method, whose errors are the reference.
//! * The call goes to a plain function bound to one engine (`bind`), with
//!   the engine's handle as the function's own data: no unwrapping of
//!   `this`, no type-tag check and no borrow bookkeeping per call (napi-rs
//!   does those for a class method; `bind` itself is one, checked once).
//!
//! Arguments are checked by the same conversions as everywhere else, in the
//! order the full method checks them.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use karma_engine::api::Change;
use napi::{sys, Env, JsError, Unknown};

use crate::conv::{self, Arg};
use crate::errors::{self, Failure};
use crate::task::{Backend, Handle};

/// What a bound function calls: its engine and its change.
struct Bound {
    handle: Arc<Handle>,
    change: Change,
}

/// A JavaScript function `(series, key, value, bucket) => bigint` doing
/// `change` on `handle` (`value`, `bucket`: the options' values, or
/// `undefined`). It owns a share of the handle until it is collected.
pub fn bind<'env>(env: &'env Env, handle: &Arc<Handle>, change: Change) -> napi::Result<Unknown<'env>> {
    let data = Box::into_raw(Box::new(Bound { handle: Arc::clone(handle), change })).cast::<c_void>();
    let name = match change {
        Change::Increment => c"incrementSync",
        Change::Decrement => c"decrementSync",
    };
    let mut function = ptr::null_mut();
    // SAFETY: `env` is the live env of this call; `data` stays valid until
    // `free_bound`, which Node calls once, when the function is collected.
    let status = unsafe {
        let made = sys::napi_create_function(env.raw(), name.as_ptr(), -1, Some(call_bound), data, &mut function);
        if made == sys::Status::napi_ok {
            sys::napi_add_finalizer(env.raw(), function, data, Some(free_bound), ptr::null_mut(), ptr::null_mut())
        } else {
            made
        }
    };
    if status != sys::Status::napi_ok {
        // SAFETY: no finalizer owns `data` (`napi_add_finalizer` failed or was never reached).
        drop(unsafe { Box::from_raw(data.cast::<Bound>()) });
        return Err(napi::Error::new(napi::Status::GenericFailure, "cannot create the incrementSync function"));
    }
    // SAFETY: created above in `env`.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), function) })
}

/// The bound function's body: converts, calls, returns a `bigint` or throws.
unsafe extern "C" fn call_bound(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = 4;
    let mut argv = [ptr::null_mut(); 4];
    let mut data = ptr::null_mut();
    // SAFETY: Node calls this on the JavaScript thread with a live env and
    // callback info; missing arguments are filled with `undefined`.
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) };
    let env = Env::from_raw(env);
    if status != sys::Status::napi_ok {
        return throw(&env, Failure::Type("cannot read the call's arguments".into()));
    }
    // SAFETY: `data` is the `Bound` made in `bind`, alive while its function is.
    let bound = unsafe { &*data.cast::<Bound>() };
    // SAFETY: each value came with this call, in this env.
    let [series, key, value, bucket] = argv.map(|v| unsafe { Unknown::from_raw_unchecked(env.raw(), v) });
    let mut out = ptr::null_mut();
    match change(&bound.handle, bound.change, series, key, value, bucket) {
        // SAFETY: live env, valid out pointer.
        Ok(v) if unsafe { sys::napi_create_bigint_uint64(env.raw(), v, &mut out) } == sys::Status::napi_ok => out,
        Ok(_) => throw(&env, Failure::Type("cannot create a bigint".into())),
        Err(failure) => throw(&env, failure),
    }
}

/// Throws the failure's error object; the returned null is ignored by Node.
fn throw(env: &Env, failure: Failure) -> sys::napi_value {
    // SAFETY: on the JavaScript thread, inside a callback, with its live env.
    unsafe { JsError::from(errors::to_js(env, failure)).throw_into(env.raw()) };
    ptr::null_mut()
}

/// Finalizer of a bound function: releases its share of the handle.
unsafe extern "C" fn free_bound(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the box made in `bind`; Node finalizes once.
    drop(unsafe { Box::from_raw(data.cast::<Bound>()) });
}

/// `series`, `key`, then the options' `value` and `bucket` (`undefined`
/// for absent), checked in the order the full method checks them.
fn change(
    handle: &Handle,
    change: Change,
    series: Unknown<'_>,
    key: Unknown<'_>,
    value: Unknown<'_>,
    bucket: Unknown<'_>,
) -> Arg<u64> {
    let series = conv::text(&series, "series")?;
    let key = conv::u64_arg(&key, "key")?;
    let (value, bucket) = crate::calls::change_values(Some(&value), Some(&bucket))?;
    let series = series.as_str();
    handle.run(|backend| match backend {
        Backend::Engine(e) => change.apply(e, series, key, bucket, value).map_err(Failure::from),
        Backend::Client(c) => change.apply(c, series, key, bucket, value).map_err(Failure::from),
    })
}
