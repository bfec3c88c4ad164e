//! The bodies of the functions that `KarmaEngine` and `KarmaClient` share,
//! written once over [`Karma`], the trait both `Engine` and `Client`
//! implement. The `extern "C"` functions in `engine.rs` and `client.rs` only
//! forward to these.

use std::ffi::{c_char, CString};
use std::ptr;

use karma_engine::api::Karma;
use serde_json::Value;

use crate::args::{self, KarmaItem, KarmaQuota, KarmaRange, Out};
use crate::last_error::{guard, Failure};
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

fn fail<E: ToStatus>(err: E) -> Failure {
    Failure::of(&err)
}

/// Which way a counter write goes.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Increment,
    Decrement,
}

/// `karma_*_increment` and `karma_*_decrement`.
///
/// # Safety
///
/// The contract of those functions: `h` NULL or a live handle, `series` NULL
/// or a NUL-terminated string, `out` NULL or writable.
pub(crate) unsafe fn write<H: Handle>(
    h: *const H,
    series: *const c_char,
    key: u64,
    bucket: u64,
    value: u64,
    out: *mut u64,
    direction: Direction,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: each pointer is as the helper requires (this function's contract).
        let (h, series, out) =
            unsafe { (args::handle(h, H::NAME)?, args::string(series, "series")?, Out::one(out, "out_value")?) };
        let bucket = args::bucket(bucket);
        let result = match direction {
            Direction::Increment => h.db().increment(series, key, bucket, value),
            Direction::Decrement => h.db().decrement(series, key, bucket, value),
        };
        out.set(result.map_err(fail)?);
        Ok(())
    })
}

/// `karma_*_consume`.
///
/// # Safety
///
/// `h` NULL or a live handle, `series` NULL or a NUL-terminated string,
/// `window` NULL or a NUL-terminated string, `out` NULL or writable.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn consume<H: Handle>(
    h: *const H,
    series: *const c_char,
    key: u64,
    bucket: u64,
    value: u64,
    limit: u64,
    window: *const c_char,
    days: u64,
    out: *mut KarmaQuota,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: each pointer is as the helper requires (this function's contract).
        let (h, series, window, out) = unsafe {
            (
                args::handle(h, H::NAME)?,
                args::string(series, "series")?,
                args::window(window, days)?,
                Out::one(out, "out_quota")?,
            )
        };
        let quota = h.db().consume(series, key, args::bucket(bucket), value, limit, window).map_err(fail)?;
        out.set(KarmaQuota::from(quota));
        Ok(())
    })
}

/// `karma_*_sum`.
///
/// # Safety
///
/// `h` NULL or a live handle, `series` NULL or a NUL-terminated string,
/// `range` NULL or valid, `out` NULL or writable.
pub(crate) unsafe fn sum<H: Handle>(
    h: *const H,
    series: *const c_char,
    key: u64,
    range: *const KarmaRange,
    out: *mut u64,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: each pointer is as the helper requires (this function's contract).
        let (h, series, range, out) = unsafe {
            (args::handle(h, H::NAME)?, args::string(series, "series")?, args::range(range)?, Out::one(out, "out")?)
        };
        out.set(h.db().sum(series, key, range).map_err(fail)?);
        Ok(())
    })
}

/// `karma_*_batch_sum`.
///
/// # Safety
///
/// As for [`sum`]; `keys` readable and `out_values` writable for `n`
/// elements (either may be NULL when `n` is 0).
pub(crate) unsafe fn batch_sum<H: Handle>(
    h: *const H,
    series: *const c_char,
    keys: *const u64,
    n: usize,
    range: *const KarmaRange,
    out_values: *mut u64,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: each pointer is as the helper requires (this function's contract).
        let (h, series, keys, range, out) = unsafe {
            (
                args::handle(h, H::NAME)?,
                args::string(series, "series")?,
                args::slice(keys, n, "keys")?,
                args::range(range)?,
                Out::many(out_values, n, "out_values")?,
            )
        };
        out.set_all(h.db().batch_sum(series, keys, range).map_err(fail)?)
    })
}

/// `karma_*_batch_add`.
///
/// # Safety
///
/// As for [`sum`]; `items` readable for `n` elements (NULL allowed when `n`
/// is 0), `out_total` NULL or writable.
pub(crate) unsafe fn batch_add<H: Handle>(
    h: *const H,
    series: *const c_char,
    items: *const KarmaItem,
    n: usize,
    out_total: *mut u64,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: each pointer is as the helper requires (this function's contract).
        let (h, series, items, out) = unsafe {
            (
                args::handle(h, H::NAME)?,
                args::string(series, "series")?,
                args::slice(items, n, "items")?,
                Out::one(out_total, "out_total")?,
            )
        };
        let items = args::items(items, h.today());
        out.set(h.db().batch_add(series, &items).map_err(fail)?);
        Ok(())
    })
}

/// The status and message of a response envelope: `KARMA_OK`, or the
/// status of its `error_code` with its `response` message.
fn envelope_status(line: &[u8]) -> Result<(), Failure> {
    let bad = || Failure::new(KarmaStatus::KARMA_INTERNAL_ERROR, "unparsable response envelope");
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(line) else {
        return Err(bad());
    };
    if envelope.get("success") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    let code = envelope.get("error_code").and_then(Value::as_str).and_then(karma_engine::ErrorCode::from_wire);
    let message = envelope.get("response").and_then(Value::as_str).unwrap_or("request failed");
    Err(Failure::new(code.map_or(KarmaStatus::KARMA_INTERNAL_ERROR, KarmaStatus::from_code), message))
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
