//! The C ABI of Karma: an in-process [`karma_engine::Engine`] and a network
//! [`karma_client::Client`] behind opaque handles, for C and anything
//! that speaks C (Go's cgo, Zig, Swift, ...). The header `include/karma.h` is
//! generated from this crate by cbindgen (`cbindgen.toml`); `tests/header.rs`
//! fails when the committed header is stale, and
//! `cargo run -p karma-ffi --example gen-header` rewrites it.
//!
//! Conventions, after y-crdt's C ABI:
//!
//! * Handles (`KarmaEngine *`, `KarmaClient *`) are opaque; each has one
//!   destroy function (`karma_engine_free`, `karma_client_free`), and every
//!   `char *` the library returns is freed with `karma_string_free`. All
//!   destroy functions accept NULL.
//! * Every fallible function returns a [`KarmaStatus`]; out-parameters are
//!   written only on `KARMA_OK` (except `*out_response` of the `execute`
//!   functions, see there). On failure, `karma_last_error()` holds a message
//!   for the calling thread.
//! * NULL where a value is required, misaligned pointers and strings that are
//!   not UTF-8 are `KARMA_INVALID_ARGUMENT`, checked before anything is done:
//!   a refused write was not applied.
//! * A Rust panic never unwinds into C: it becomes `KARMA_PANIC`.
//! * Handles are thread-safe: one handle may be used from many threads at
//!   once, but must not be freed while another thread still uses it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

mod args;
mod client;
mod engine;
mod last_error;
mod ops;
mod status;

use std::ffi::{c_char, CString};

pub use args::{KarmaItem, KarmaQuota, KarmaRange};
pub use client::{
    karma_client_batch_add, karma_client_batch_sum, karma_client_consume, karma_client_decrement, karma_client_execute,
    karma_client_free, karma_client_increment, karma_client_open, karma_client_sum, KarmaClient,
};
pub use engine::{
    karma_engine_batch_add, karma_engine_batch_sum, karma_engine_consume, karma_engine_decrement, karma_engine_execute,
    karma_engine_free, karma_engine_increment, karma_engine_open, karma_engine_snapshot_all, karma_engine_sum,
    KarmaEngine,
};
pub use last_error::{karma_last_error, karma_last_error_copy};
pub use status::{karma_status_name, KarmaStatus};

/// The version of this library, e.g. "0.1.0". A static string: do not free it.
#[no_mangle]
pub extern "C" fn karma_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// Frees a string returned by this library (the `out_response` of the
/// `execute` functions). NULL is ignored.
///
/// # Safety
///
/// `s` must be NULL or a string this library returned that has not been
/// freed yet.
#[no_mangle]
pub unsafe extern "C" fn karma_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: per the contract, `s` came from `CString::into_raw` in this
    // library and is freed once; dropping a CString cannot panic.
    drop(unsafe { CString::from_raw(s) });
}
