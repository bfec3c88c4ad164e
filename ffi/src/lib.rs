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
mod results;
mod status;
mod surface;

use std::ffi::{c_char, CString};

pub use args::{KarmaItem, KarmaQuota, KarmaRange, KarmaSeriesKey};
pub use client::{karma_client_execute, karma_client_free, karma_client_open, KarmaClient};
pub use engine::{karma_engine_execute, karma_engine_free, karma_engine_open, KarmaEngine};
pub use last_error::{karma_last_error, karma_last_error_copy};
pub use results::{
    karma_info_free, karma_keys_page_free, karma_pairs_free, karma_strings_free, karma_summary_free, KarmaCounts,
    KarmaInfo, KarmaKeysPage, KarmaPair, KarmaPairs, KarmaStrings, KarmaSummary,
};
pub use status::{karma_status_name, KarmaStatus};
/// `karma_engine_<method>` and `karma_client_<method>` for every method of
/// the surface table, generated in `surface.rs`.
pub use surface::exported::*;

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

/// The generated functions as Rust source that cbindgen can read (it does
/// not expand macros): their signatures and documentation, bodies empty.
/// For the header generator (`tests/support/header.rs`), not for callers.
#[doc(hidden)]
pub fn generated_header_source() -> String {
    let mut source = String::from("// The C functions generated from the surface table (ffi/src/surface.rs).\n");
    for sig in surface::SIGNATURES {
        for (handle, ty) in [("engine", "KarmaEngine"), ("client", "KarmaClient")] {
            for line in sig.docs.iter().flat_map(|line| wrap(line, 76)) {
                source.push_str(&format!("///{line}\n"));
            }
            source.push_str(&format!(
                "#[no_mangle]\npub unsafe extern \"C\" fn karma_{handle}_{}({handle}: *mut {ty}, {}) -> KarmaStatus {{}}\n\n",
                sig.method, sig.params
            ));
        }
    }
    source
}

/// `line` (a doc line with its leading space) cut at spaces into lines of
/// at most `width` characters where the words allow, each with a leading
/// space, so the header's comments stay readable.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty() && current.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut current));
        }
        current.push(' ');
        current.push_str(word);
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_cuts_doc_lines_at_spaces_within_the_width() {
        assert_eq!(wrap("", 10), vec![String::new()]);
        assert_eq!(wrap(" # Safety", 10), vec![" # Safety"]);
        assert_eq!(wrap(" one two three four", 10), vec![" one two", " three", " four"]);
        // A word longer than the width stands alone, uncut.
        assert_eq!(wrap(" a karma_keys_page_free b", 10), vec![" a", " karma_keys_page_free", " b"]);
    }

    #[test]
    fn the_header_source_declares_both_functions_of_every_method() {
        let source = super::generated_header_source();
        for sig in super::surface::SIGNATURES {
            for handle in ["engine", "client"] {
                let name = format!("fn karma_{handle}_{}(", sig.method);
                assert_eq!(source.matches(&name).count(), 1, "{name}");
            }
        }
        assert!(super::surface::SIGNATURES.iter().any(|s| s.method == "batch_delete_range"));
    }
}
