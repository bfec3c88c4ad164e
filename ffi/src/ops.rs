//! What `KarmaEngine` and `KarmaClient` have in common: [`Handle`], over
//! which the generated method bodies (`surface.rs`) are written once, and
//! the body of the `execute` functions.

use std::ffi::{c_char, CString};
use std::ptr;

use karma_engine::api::Karma;
use karma_engine::protocol::response::read_envelope;

use crate::args::{self, Out};
use crate::last_error::{guard, guard_void, Failure};
use crate::status::{KarmaStatus, ToStatus};

/// What a handle adds to its [`Karma`] implementation.
pub(crate) trait Handle {
    type Db: Karma<Error: ToStatus>;

    /// The argument name in messages: `"engine"` or `"client"`.
    const NAME: &'static str;

    fn db(&self) -> &Self::Db;

    /// Today's bucket (YYYYMMDD, UTC), for batch items with bucket 0.
    fn today(&self) -> u64;

    /// One v2 request line in, the whole response envelope out (without
    /// `\r\n`). `Err` only when there is no envelope (a transport failure).
    fn execute_line(&self, line: &[u8]) -> Result<Vec<u8>, Failure>;
}

/// The status and message of a response envelope: `KARMA_OK`, or the
/// status of its `error_code` with its `response` message (read by the
/// engine's one envelope reader).
fn envelope_status(line: &[u8]) -> Result<(), Failure> {
    match read_envelope(line) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(KarmaStatus::from_code(e.code()), e.message())),
        Err(e) => Err(Failure::new(KarmaStatus::KARMA_INTERNAL_ERROR, e.to_string())),
    }
}

/// `karma_*_execute`.
///
/// # Safety
///
/// `h` NULL or a live handle, `json` readable for `len` bytes (NULL allowed
/// when `len` is 0), `out_response` NULL or writable.
pub(crate) unsafe fn execute<H: Handle>(
    h: *const H,
    json: *const c_char,
    len: usize,
    out_response: *mut *mut c_char,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: as the helper requires (this function's contract).
        let out = unsafe { Out::one(out_response, "out_response")? };
        // Set first, so that freeing `*out_response` after any call is right.
        out.set(ptr::null_mut());
        // SAFETY: as the helpers require (this function's contract).
        let (h, line) = unsafe { (args::handle(h, H::NAME)?, args::slice(json.cast::<u8>(), len, "json")?) };
        let line = line.strip_suffix(b"\n").map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
        let response = h.execute_line(line)?;
        let status = envelope_status(&response);
        let response = CString::new(response)
            .map_err(|_| Failure::new(KarmaStatus::KARMA_INTERNAL_ERROR, "response contains a NUL byte"))?;
        out.set(response.into_raw());
        status
    })
}

/// `karma_*_free`: takes back a handle made by `Box::into_raw` and hands it
/// to `close`. NULL is ignored; a panic in `close` does not unwind into C.
///
/// # Safety
///
/// `h` must be NULL or a handle from the matching open function, not yet
/// freed, that no other thread is using.
pub(crate) unsafe fn free<H>(h: *mut H, close: impl FnOnce(Box<H>)) {
    if h.is_null() {
        return;
    }
    // SAFETY: per the contract, `h` came from `Box::into_raw` in the open
    // function and nobody else holds it: we own it now.
    let h = unsafe { Box::from_raw(h) };
    guard_void(move || close(h));
}
