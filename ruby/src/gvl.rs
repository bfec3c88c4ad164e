//! Running Rust work with the GVL released, so other Ruby threads (Puma,
//! Sidekiq) run meanwhile.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Call<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `&mut Call<F, R>` passed by `without_gvl` below,
    // alive and exclusively ours for the duration of this call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(f) = call.f.take() {
        // A panic must not unwind into Ruby's C frames: it is caught here and
        // resumed once the GVL is held again.
        call.result = Some(catch_unwind(AssertUnwindSafe(f)));
    }
    std::ptr::null_mut()
}

/// Runs `f` without the GVL. `f` must not touch any Ruby object. There is no
/// unblocking function: an interrupt (Thread#raise, Ctrl-C) is delivered
/// when `f` returns, which every call bounds by its timeouts.
pub fn without_gvl<F: FnOnce() -> R, R>(f: F) -> R {
    let mut call = Call { f: Some(f), result: None };
    // SAFETY: called on a Ruby thread holding the GVL (every native method
    // is); `trampoline::<F, R>` matches the data pointer's type, and `call`
    // outlives the call since rb_thread_call_without_gvl returns only after
    // the trampoline did.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(trampoline::<F, R>),
            &mut call as *mut Call<F, R> as *mut c_void,
            None,
            std::ptr::null_mut(),
        );
    }
    match call.result {
        Some(Ok(r)) => r,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        // Ruby ran no function only if it was interrupted before starting;
        // run it with the GVL instead of losing the call.
        None => match call.f.take() {
            Some(f) => f(),
            None => unreachable!("the trampoline took the function but left no result"),
        },
    }
}
