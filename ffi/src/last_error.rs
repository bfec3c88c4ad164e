//! The thread-local last error message, and [`guard`]: the wrapper every
//! status-returning entry point runs its body in (panics caught, the last
//! error set or cleared).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::status::{KarmaStatus, ToStatus};

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Why a call failed: its status and the message for `karma_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: KarmaStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: KarmaStatus, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(KarmaStatus::KARMA_INVALID_ARGUMENT, message)
    }

    pub fn of<E: ToStatus>(err: &E) -> Failure {
        Failure::new(err.status(), err.message())
    }
}

fn set_last_error(message: Option<String>) {
    let message = message.map(|m| {
        // A message with an interior NUL would be cut short in C; show it.
        CString::new(m).unwrap_or_else(|e| {
            let bytes: Vec<u8> = e.into_vec().into_iter().map(|b| if b == 0 { b'?' } else { b }).collect();
            CString::new(bytes).unwrap_or_default()
        })
    });
    // `try_with` fails only while the thread is being torn down; then there
    // is nobody left to read the message.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `body`, never letting a panic unwind out of it. `Ok` clears the
/// thread's last error and gives `KARMA_OK`; a failure sets the last error
/// and gives its status; a panic gives `KARMA_PANIC`.
///
/// `AssertUnwindSafe`: after a panic the handles stay consistent (the
/// engine's locks do not poison, and every write is all-or-nothing under its
/// lock), which is what the caller is told in `KARMA_PANIC`'s documentation.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> KarmaStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error(None);
            KarmaStatus::KARMA_OK
        }
        Ok(Err(failure)) => {
            set_last_error(Some(failure.message));
            failure.status
        }
        Err(payload) => {
            let message = format!("panic in karma-ffi: {}", panic_message(payload.as_ref()));
            // Dropping the payload runs its destructor, which could itself panic.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            set_last_error(Some(message));
            KarmaStatus::KARMA_PANIC
        }
    }
}

/// For the functions that return nothing (the destroy functions): runs
/// `body`, swallowing a panic. The last error is left as it was.
pub(crate) fn guard_void(body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}

/// The message of the most recent call on this thread that returned a
/// status other than KARMA_OK; NULL if that call succeeded or there was none.
/// Every function returning a KarmaStatus sets or clears it; the other
/// functions leave it alone. The string belongs to the library and stays
/// valid until the next KarmaStatus-returning call on the same thread: copy
/// it (or use karma_last_error_copy) to keep it. Do not free it.
#[no_mangle]
pub extern "C" fn karma_last_error() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ref().map_or(ptr::null(), |m| m.as_ptr())).unwrap_or(ptr::null())
}

/// Copies the last error message (see karma_last_error) into `buf`, like
/// snprintf: at most `len - 1` bytes and a terminating NUL when `len > 0`.
/// Returns the full length of the message without its NUL (so a return
/// value >= len means it was truncated), or 0 when there is no last error.
/// `buf` may be NULL when `len` is 0, to ask for the length.
///
/// # Safety
///
/// `buf` must be NULL or point to at least `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn karma_last_error_copy(buf: *mut c_char, len: usize) -> usize {
    let copy = |slot: &RefCell<Option<CString>>| {
        let slot = slot.borrow();
        let bytes = slot.as_ref().map_or(&[][..], |m| m.as_bytes());
        if !buf.is_null() && len > 0 {
            let n = bytes.len().min(len - 1);
            // SAFETY: `buf` is valid for `len` bytes (the contract) and
            // `n + 1 <= len`; `bytes` is a separate Rust allocation, so the
            // ranges do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        bytes.len()
    };
    catch_unwind(AssertUnwindSafe(|| LAST_ERROR.try_with(copy).unwrap_or(0))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last() -> Option<String> {
        let p = karma_last_error();
        // SAFETY: NULL or the thread's NUL-terminated message, read before any other call.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    #[test]
    fn a_panic_becomes_karma_panic_and_the_thread_goes_on() {
        assert_eq!(guard(|| panic!("boom")), KarmaStatus::KARMA_PANIC);
        assert_eq!(last().as_deref(), Some("panic in karma-ffi: boom"));
        let n = 7;
        assert_eq!(guard(|| panic!("formatted {n}")), KarmaStatus::KARMA_PANIC);
        assert_eq!(last().as_deref(), Some("panic in karma-ffi: formatted 7"));
        assert_eq!(guard(|| std::panic::panic_any(42_u8)), KarmaStatus::KARMA_PANIC);
        assert_eq!(last().as_deref(), Some("panic in karma-ffi: unknown panic payload"));
        guard_void(|| panic!("swallowed"));
        assert_eq!(guard(|| Ok(())), KarmaStatus::KARMA_OK);
        assert_eq!(last(), None);
    }

    #[test]
    fn failures_set_the_message_and_nul_bytes_do_not_cut_it() {
        let status = guard(|| Err(Failure::new(KarmaStatus::KARMA_NOT_FOUND, "a\0b")));
        assert_eq!(status, KarmaStatus::KARMA_NOT_FOUND);
        assert_eq!(last().as_deref(), Some("a?b"));
    }
}
