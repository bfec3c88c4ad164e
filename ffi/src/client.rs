//! `karma_client_*`: a pooled connection to a `karma` server behind an
//! opaque handle, with the same functions as `karma_engine_*`.

use std::ffi::c_char;

use karma_client::Client;
use karma_engine::clock::{bucket_of_unix, Clock, SystemClock};

use crate::args::{self, Out};
use crate::last_error::{guard, Failure};
use crate::ops::{self, Handle};
use crate::status::KarmaStatus;

/// A pool of connections to one Karma server (opaque). Create with
/// karma_client_open, destroy with karma_client_free.
pub struct KarmaClient {
    client: Client,
}

impl Handle for KarmaClient {
    type Db = Client;
    const NAME: &'static str = "client";

    fn db(&self) -> &Client {
        &self.client
    }

    /// This machine's date: the server would use its own, which differs only
    /// if the two clocks disagree around midnight UTC.
    fn today(&self) -> u64 {
        bucket_of_unix(SystemClock.unix_seconds())
    }

    fn execute_line(&self, line: &[u8]) -> Result<Vec<u8>, Failure> {
        let line = std::str::from_utf8(line).map_err(|e| Failure::invalid(format!("json is not valid UTF-8 ({e})")))?;
        let reply = self.client.request_line(line).map_err(|e| Failure::of(&e))?;
        Ok(reply.into_bytes())
    }
}

/// Creates a client and stores its handle in `*out` (on KARMA_OK only).
/// Nothing is connected yet: an unreachable server shows on the first call
/// as KARMA_CONNECTION_ERROR (or KARMA_TIMEOUT).
///
/// `url_or_null`: `karma://host:port` (or `tcp://`; IPv6 in brackets; port
/// 8080 by default) with an optional query `?token=..&pool_size=..&
/// checkout_timeout=..&connect_timeout=..&read_timeout=..&write_timeout=..`
/// (timeouts in seconds, fractions allowed, 0 disables). NULL reads the
/// environment instead: KARMA_URL, or KARMA_HOST and KARMA_PORT, then
/// KARMA_TOKEN, KARMA_POOL_SIZE and KARMA_*_TIMEOUT. A bad URL or variable
/// is KARMA_VALIDATION_ERROR, with a message naming it.
///
/// # Safety
///
/// `url_or_null` must be NULL or a NUL-terminated string; `out` must be NULL
/// or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn karma_client_open(url_or_null: *const c_char, out: *mut *mut KarmaClient) -> KarmaStatus {
    guard(|| {
        // SAFETY: as the helper requires (this function's contract).
        let out = unsafe { Out::one(out, "out")? };
        let client = if url_or_null.is_null() {
            Client::from_env()
        } else {
            // SAFETY: non-null and NUL-terminated (this function's contract).
            Client::from_url(unsafe { args::string(url_or_null, "url")? })
        };
        let client = client.map_err(|e| Failure::of(&e))?;
        out.set(Box::into_raw(Box::new(KarmaClient { client })));
        Ok(())
    })
}

/// Closes the client's connections and frees the handle. NULL is ignored.
/// The handle must not be used afterwards.
///
/// # Safety
///
/// `client` must be NULL or a handle from karma_client_open, not yet freed,
/// that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn karma_client_free(client: *mut KarmaClient) {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::free(client, drop) }
}

/// As karma_engine_execute, over the network: the line (which must be
/// UTF-8) is sent with the client's token added, and `*out_response` is the
/// server's envelope exactly as it was sent (key order and number text
/// preserved, without the `\r\n`). Transport failures
/// (KARMA_CONNECTION_ERROR, KARMA_TIMEOUT) leave `*out_response` NULL.
///
/// # Safety
///
/// `client` must be NULL or a live handle; `json` readable for `len` bytes
/// (NULL allowed when `len` is 0); `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_client_execute(
    client: *mut KarmaClient,
    json: *const c_char,
    len: usize,
    out_response: *mut *mut c_char,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::execute(client.cast_const(), json, len, out_response) }
}
