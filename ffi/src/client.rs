//! `karma_client_*`: a pooled connection to a `karma` server behind an
//! opaque handle, with the same functions as `karma_engine_*`.

use std::ffi::c_char;

use karma_client::Client;
use karma_engine::clock::{bucket_of_unix, Clock, SystemClock};

use crate::args::{self, KarmaItem, KarmaQuota, KarmaRange, Out};
use crate::last_error::{guard, guard_void, Failure};
use crate::ops::{self, Direction, Handle};
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
    if client.is_null() {
        return;
    }
    // SAFETY: per the contract, `client` came from `Box::into_raw` in
    // karma_client_open and nobody else holds it: we own it now.
    let client = unsafe { Box::from_raw(client) };
    guard_void(move || drop(client));
}

/// As karma_engine_consume, on the server (bucket 0 means the server's today).
///
/// # Safety
///
/// `client` must be NULL or a live handle; `series` and `window` NULL or
/// NUL-terminated strings; `out_quota` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn karma_client_consume(
    client: *mut KarmaClient,
    series: *const c_char,
    key: u64,
    bucket: u64,
    value: u64,
    limit: u64,
    window: *const c_char,
    days: u64,
    out_quota: *mut KarmaQuota,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::consume(client.cast_const(), series, key, bucket, value, limit, window, days, out_quota) }
}

/// As karma_engine_increment, on the server (bucket 0 means the server's today).
///
/// # Safety
///
/// `client` must be NULL or a live handle; `series` NULL or a NUL-terminated
/// string; `out_value` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_client_increment(
    client: *mut KarmaClient,
    series: *const c_char,
    key: u64,
    bucket: u64,
    value: u64,
    out_value: *mut u64,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::write(client.cast_const(), series, key, bucket, value, out_value, Direction::Increment) }
}

/// As karma_engine_decrement, on the server.
///
/// # Safety
///
/// As for karma_client_increment.
#[no_mangle]
pub unsafe extern "C" fn karma_client_decrement(
    client: *mut KarmaClient,
    series: *const c_char,
    key: u64,
    bucket: u64,
    value: u64,
    out_value: *mut u64,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::write(client.cast_const(), series, key, bucket, value, out_value, Direction::Decrement) }
}

/// As karma_engine_sum, on the server.
///
/// # Safety
///
/// `client` must be NULL or a live handle; `series` NULL or a NUL-terminated
/// string; `range_or_null` NULL or valid; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_client_sum(
    client: *mut KarmaClient,
    series: *const c_char,
    key: u64,
    range_or_null: *const KarmaRange,
    out: *mut u64,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::sum(client.cast_const(), series, key, range_or_null, out) }
}

/// As karma_engine_batch_sum, on the server.
///
/// # Safety
///
/// `client` must be NULL or a live handle; `series` NULL or a NUL-terminated
/// string; `keys` readable and `out_values` writable for `n` elements (NULL
/// allowed when `n` is 0); `range_or_null` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn karma_client_batch_sum(
    client: *mut KarmaClient,
    series: *const c_char,
    keys: *const u64,
    n: usize,
    range_or_null: *const KarmaRange,
    out_values: *mut u64,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::batch_sum(client.cast_const(), series, keys, n, range_or_null, out_values) }
}

/// As karma_engine_batch_add, on the server (an item's bucket 0 is this
/// machine's today, UTC).
///
/// # Safety
///
/// `client` must be NULL or a live handle; `series` NULL or a NUL-terminated
/// string; `items` readable for `n` elements (NULL allowed when `n` is 0);
/// `out_total` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_client_batch_add(
    client: *mut KarmaClient,
    series: *const c_char,
    items: *const KarmaItem,
    n: usize,
    out_total: *mut u64,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::batch_add(client.cast_const(), series, items, n, out_total) }
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
