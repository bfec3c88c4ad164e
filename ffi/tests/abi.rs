//! The C ABI called from Rust exactly as C calls it: raw pointers, status
//! codes, the thread-local last error, NULL arguments everywhere.
//!
//! The client tests start the workspace's `target/debug/karma` (built with
//! `cargo build -p karma-server` when missing, or `$KARMA_SERVER_BIN`) on a
//! free port with a temporary directory, and kill it when done.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::thread;

use karma_ffi::KarmaStatus::*;
use karma_ffi::*;
use karma_testkit::free_port;

// ------------------------------------------------------------------ helpers

fn last_error() -> Option<String> {
    let p = karma_last_error();
    // SAFETY: the library returns NULL or a NUL-terminated string that stays
    // valid until the next status-returning call on this thread.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Asserts `status`, and for a failure that the last error contains `needle`.
#[track_caller]
fn expect(status: KarmaStatus, want: KarmaStatus, needle: &str) {
    let err = last_error();
    assert_eq!(status, want, "last error: {err:?}");
    if want == KARMA_OK {
        assert_eq!(err, None);
    } else {
        let err = err.expect("a failure sets the last error");
        assert!(err.contains(needle), "{err:?} should contain {needle:?}");
    }
}

fn open_memory() -> *mut KarmaEngine {
    let mut engine = null_mut();
    // SAFETY: NULL dir and options are allowed; `engine` is writable.
    expect(unsafe { karma_engine_open(null(), null(), &mut engine) }, KARMA_OK, "");
    assert!(!engine.is_null());
    engine
}

fn open_dir(dir: &Path, options: Option<&str>) -> (KarmaStatus, *mut KarmaEngine) {
    let dir = cstr(dir.to_str().unwrap());
    let options = options.map(cstr);
    let mut engine = null_mut();
    // SAFETY: valid strings (or NULL) and a writable out pointer.
    let status =
        unsafe { karma_engine_open(dir.as_ptr(), options.as_ref().map_or(null(), |o| o.as_ptr()), &mut engine) };
    (status, engine)
}

fn inc(engine: *mut KarmaEngine, series: &str, key: u64, bucket: u64, value: u64) -> KarmaStatus {
    let series = cstr(series);
    let mut out = 0;
    // SAFETY: a live handle (or NULL), a valid string, a writable out.
    let status = unsafe { karma_engine_increment(engine, series.as_ptr(), key, bucket, value, &mut out) };
    if status == KARMA_OK {
        assert_eq!(out, value);
    }
    status
}

fn sum(engine: *mut KarmaEngine, series: &str, key: u64, range: Option<KarmaRange>) -> Result<u64, KarmaStatus> {
    let series = cstr(series);
    let mut out = u64::MAX;
    let range_ptr = range.as_ref().map_or(null(), |r| r as *const KarmaRange);
    // SAFETY: a live handle, a valid string, NULL or a valid range, a writable out.
    match unsafe { karma_engine_sum(engine, series.as_ptr(), key, range_ptr, &mut out) } {
        KARMA_OK => Ok(out),
        other => Err(other),
    }
}

/// `(status, response line)` of karma_engine_execute.
fn execute(engine: *mut KarmaEngine, json: &str) -> (KarmaStatus, Option<String>) {
    let mut response: *mut c_char = null_mut();
    // SAFETY: `json` is readable for its length; `response` is writable.
    let status = unsafe { karma_engine_execute(engine, json.as_ptr().cast(), json.len(), &mut response) };
    let text =
        // SAFETY: NULL or a NUL-terminated string from the library.
        (!response.is_null()).then(|| unsafe { CStr::from_ptr(response) }.to_str().unwrap().to_string());
    // SAFETY: NULL or the library's string, freed once.
    unsafe { karma_string_free(response) };
    (status, text)
}

fn free(engine: *mut KarmaEngine) {
    // SAFETY: a handle from karma_engine_open, freed once.
    unsafe { karma_engine_free(engine) };
}

// ------------------------------------------------------------------ basics

#[test]
fn version_and_status_names() {
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(karma_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let name = |s: i32| {
        // SAFETY: a static NUL-terminated string.
        unsafe { CStr::from_ptr(karma_status_name(s)) }.to_str().unwrap().to_string()
    };
    assert_eq!(name(KARMA_OK as i32), "ok");
    assert_eq!(name(KARMA_VALIDATION_ERROR as i32), "validation_error");
    assert_eq!(name(KARMA_INTERNAL_ERROR as i32), "internal_error");
    assert_eq!(name(KARMA_CONNECTION_ERROR as i32), "connection_error");
    assert_eq!(name(KARMA_PANIC as i32), "panic");
    assert_eq!(name(KARMA_LIMIT_EXCEEDED as i32), "limit_exceeded");
    assert_eq!(name(-1), "unknown");
    assert_eq!(name(20), "unknown");
    assert_eq!(
        (KARMA_INVALID_JSON as i32, KARMA_INTERNAL_ERROR as i32, KARMA_PANIC as i32, KARMA_LIMIT_EXCEEDED as i32),
        (1, 14, 18, 19)
    );
}

#[test]
fn destroy_functions_accept_null() {
    // SAFETY: NULL is documented as accepted.
    unsafe {
        karma_engine_free(null_mut());
        karma_client_free(null_mut());
        karma_string_free(null_mut());
    }
}

// ------------------------------------------------------------------ NULL and bad arguments

#[test]
fn null_arguments_are_invalid_argument() {
    let engine = open_memory();
    let s = cstr("s");
    let keys = [1u64, 2];
    let items = [KarmaItem { key: 1, bucket: 20260101, value: 1 }];
    let mut out = 0u64;
    let mut outs = [0u64; 2];
    let mut resp: *mut c_char = null_mut();
    let json = r#"{"v":2,"op":"system.ping"}"#;
    // SAFETY: every pointer is valid or NULL; NULL where a value is required
    // must be refused before anything is read.
    unsafe {
        expect(karma_engine_open(null(), null(), null_mut()), KARMA_INVALID_ARGUMENT, "out must not be NULL");
        expect(karma_engine_increment(null_mut(), s.as_ptr(), 1, 0, 1, &mut out), KARMA_INVALID_ARGUMENT, "engine");
        expect(karma_engine_increment(engine, null(), 1, 0, 1, &mut out), KARMA_INVALID_ARGUMENT, "series");
        expect(karma_engine_increment(engine, s.as_ptr(), 1, 0, 1, null_mut()), KARMA_INVALID_ARGUMENT, "out_value");
        expect(karma_engine_decrement(engine, null(), 1, 0, 1, &mut out), KARMA_INVALID_ARGUMENT, "series");
        expect(karma_engine_sum(null_mut(), s.as_ptr(), 1, null(), &mut out), KARMA_INVALID_ARGUMENT, "engine");
        expect(karma_engine_sum(engine, s.as_ptr(), 1, null(), null_mut()), KARMA_INVALID_ARGUMENT, "out");
        expect(
            karma_engine_batch_sum(engine, s.as_ptr(), null(), 2, null(), outs.as_mut_ptr()),
            KARMA_INVALID_ARGUMENT,
            "keys",
        );
        expect(
            karma_engine_batch_sum(engine, s.as_ptr(), keys.as_ptr(), 2, null(), null_mut()),
            KARMA_INVALID_ARGUMENT,
            "out_values",
        );
        expect(karma_engine_batch_add(engine, s.as_ptr(), null(), 1, &mut out), KARMA_INVALID_ARGUMENT, "items");
        expect(
            karma_engine_batch_add(engine, s.as_ptr(), items.as_ptr(), 1, null_mut()),
            KARMA_INVALID_ARGUMENT,
            "out_total",
        );
        expect(karma_engine_snapshot_all(null_mut()), KARMA_INVALID_ARGUMENT, "engine");
        expect(karma_engine_execute(engine, null(), 5, &mut resp), KARMA_INVALID_ARGUMENT, "json");
        assert!(resp.is_null());
        expect(
            karma_engine_execute(engine, json.as_ptr().cast(), json.len(), null_mut()),
            KARMA_INVALID_ARGUMENT,
            "out_response",
        );
        expect(
            karma_engine_execute(null_mut(), json.as_ptr().cast(), json.len(), &mut resp),
            KARMA_INVALID_ARGUMENT,
            "engine",
        );
        assert!(resp.is_null(), "*out_response is NULL after a failure without a response");

        expect(karma_client_open(null(), null_mut()), KARMA_INVALID_ARGUMENT, "out");
        expect(karma_client_increment(null_mut(), s.as_ptr(), 1, 0, 1, &mut out), KARMA_INVALID_ARGUMENT, "client");
        expect(karma_client_decrement(null_mut(), s.as_ptr(), 1, 0, 1, &mut out), KARMA_INVALID_ARGUMENT, "client");
        expect(karma_client_sum(null_mut(), s.as_ptr(), 1, null(), &mut out), KARMA_INVALID_ARGUMENT, "client");
        expect(
            karma_client_batch_sum(null_mut(), s.as_ptr(), keys.as_ptr(), 2, null(), outs.as_mut_ptr()),
            KARMA_INVALID_ARGUMENT,
            "client",
        );
        expect(
            karma_client_batch_add(null_mut(), s.as_ptr(), items.as_ptr(), 1, &mut out),
            KARMA_INVALID_ARGUMENT,
            "client",
        );
        expect(
            karma_client_execute(null_mut(), json.as_ptr().cast(), json.len(), &mut resp),
            KARMA_INVALID_ARGUMENT,
            "client",
        );
    }
    // Nothing was written by the refused calls (the series was never created).
    assert_eq!(sum(engine, "s", 1, None), Err(KARMA_NOT_FOUND));
    free(engine);
}

#[test]
fn bad_utf8_and_misaligned_pointers_are_refused() {
    let engine = open_memory();
    let bad = [b's', 0xff, 0];
    let mut out = 0u64;
    // SAFETY: a NUL-terminated byte string and a writable out.
    let status = unsafe { karma_engine_increment(engine, bad.as_ptr().cast(), 1, 0, 1, &mut out) };
    expect(status, KARMA_INVALID_ARGUMENT, "not valid UTF-8");
    let s = cstr("s");
    let mut buf = [0u64; 2];
    let misaligned = buf.as_mut_ptr().cast::<u8>().wrapping_add(1).cast::<u64>();
    // SAFETY: the misaligned pointer must be refused before it is written.
    let status = unsafe { karma_engine_increment(engine, s.as_ptr(), 1, 0, 1, misaligned) };
    expect(status, KARMA_INVALID_ARGUMENT, "aligned");
    free(engine);
}

// ------------------------------------------------------------------ engine

#[test]
fn engine_typed_calls() {
    let engine = open_memory();
    let series = cstr("api");
    expect(inc(engine, "api", 7, 20260301, 5), KARMA_OK, "");
    expect(inc(engine, "api", 7, 20260302, 3), KARMA_OK, "");
    expect(inc(engine, "api", 7, 0, 2), KARMA_OK, ""); // today
    assert_eq!(sum(engine, "api", 7, None), Ok(10));
    assert_eq!(sum(engine, "api", 7, Some(KarmaRange { from: 20260301, to: 20260301 })), Ok(5));
    assert_eq!(sum(engine, "api", 8, None), Ok(0));
    assert_eq!(sum(engine, "nope", 7, None), Err(KARMA_NOT_FOUND));
    assert!(last_error().unwrap().contains("nope"));

    let mut out = 0u64;
    // SAFETY: live handle, valid string, writable out.
    let status = unsafe { karma_engine_decrement(engine, series.as_ptr(), 7, 20260301, 100, &mut out) };
    expect(status, KARMA_OK, "");
    assert_eq!(out, 100);
    assert_eq!(sum(engine, "api", 7, None), Ok(5), "never below zero within the bucket");

    let items = [
        KarmaItem { key: 1, bucket: 20260301, value: 10 },
        KarmaItem { key: 2, bucket: 20260302, value: 20 },
        KarmaItem { key: 1, bucket: 0, value: 1 },
    ];
    let mut total = 0u64;
    // SAFETY: `items` readable for 3 elements, `total` writable.
    let status = unsafe { karma_engine_batch_add(engine, series.as_ptr(), items.as_ptr(), items.len(), &mut total) };
    expect(status, KARMA_OK, "");
    assert_eq!(total, 31);

    let keys = [1u64, 2, 3, 7];
    let mut values = [u64::MAX; 4];
    // SAFETY: `keys` readable and `values` writable for 4 elements.
    let status = unsafe {
        karma_engine_batch_sum(engine, series.as_ptr(), keys.as_ptr(), keys.len(), null(), values.as_mut_ptr())
    };
    expect(status, KARMA_OK, "");
    assert_eq!(values, [11, 20, 0, 5]);
    let range = KarmaRange { from: 20260301, to: 20260301 };
    // SAFETY: as above, plus a valid range.
    let status = unsafe {
        karma_engine_batch_sum(engine, series.as_ptr(), keys.as_ptr(), keys.len(), &range, values.as_mut_ptr())
    };
    expect(status, KARMA_OK, "");
    assert_eq!(values, [10, 0, 0, 0]);

    // Bucket 0 is today (UTC), for increment and for batch items alike.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let today = karma_engine::clock::bucket_of_unix(now);
    let today = Some(KarmaRange { from: today, to: today });
    assert_eq!(sum(engine, "api", 7, today), Ok(2));
    assert_eq!(sum(engine, "api", 1, today), Ok(1));

    // A reversed range is a validation error, with its message.
    let bad = KarmaRange { from: 20260302, to: 20260301 };
    assert_eq!(sum(engine, "api", 7, Some(bad)), Err(KARMA_VALIDATION_ERROR));
    assert!(last_error().is_some());
    free(engine);
}

/// `karma_engine_consume` with Rust arguments; the quota or the status.
#[allow(clippy::too_many_arguments)]
fn consume(
    engine: *mut KarmaEngine,
    series: &str,
    key: u64,
    bucket: u64,
    value: u64,
    limit: u64,
    window: Option<&str>,
    days: u64,
) -> Result<KarmaQuota, KarmaStatus> {
    let series = cstr(series);
    let window = window.map(cstr);
    let mut out = KarmaQuota::default();
    // SAFETY: a live handle, valid strings (or NULL window), a writable out.
    let status = unsafe {
        karma_engine_consume(
            engine,
            series.as_ptr(),
            key,
            bucket,
            value,
            limit,
            window.as_ref().map_or(null(), |w| w.as_ptr()),
            days,
            &mut out,
        )
    };
    match status {
        KARMA_OK => Ok(out),
        other => Err(other),
    }
}

fn quota(allowed: bool, used: u64, limit: u64, range_from: u64, range_to: u64) -> KarmaQuota {
    let remaining = limit.saturating_sub(used);
    KarmaQuota { allowed: u8::from(allowed), used, remaining, limit, range_from, range_to }
}

#[test]
fn engine_consume() {
    let engine = open_memory();
    let day = |b| consume(engine, "q", 1, b, 2, 3, None, 0);
    assert_eq!(day(20260301), Ok(quota(true, 2, 3, 20260301, 20260301)));
    assert_eq!(day(20260301), Ok(quota(false, 2, 3, 20260301, 20260301)), "a refusal is KARMA_OK");
    assert_eq!(sum(engine, "q", 1, None), Ok(2), "and changes nothing");
    let days = consume(engine, "q", 1, 20260302, 1, 3, Some("days"), 2);
    assert_eq!(days, Ok(quota(true, 3, 3, 20260301, 20260302)));
    // `days` with a NULL window means a days window, as in the protocol.
    let implied = consume(engine, "q", 1, 20260302, 1, 3, None, 2);
    assert_eq!(implied, Ok(quota(false, 3, 3, 20260301, 20260302)));
    let month = consume(engine, "q", 1, 20260331, 1, 3, Some("month"), 0);
    assert_eq!(month, Ok(quota(false, 3, 3, 20260301, 20260331)));
    let april = consume(engine, "q", 1, 20260401, 3, 3, Some("month"), 0);
    assert_eq!(april, Ok(quota(true, 3, 3, 20260401, 20260401)));
    // Bucket 0 is today (UTC).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let today = karma_engine::clock::bucket_of_unix(now);
    assert_eq!(consume(engine, "q", 1, 0, 1, 1, Some("day"), 0), Ok(quota(true, 1, 1, today, today)));
    let before = sum(engine, "q", 1, None);

    let cases: [(u64, Option<&str>, u64, KarmaStatus, &str); 7] = [
        (0, None, 0, KARMA_VALIDATION_ERROR, "Field value must be greater than 0"),
        (1, Some("days"), 0, KARMA_INVALID_ARGUMENT, "Field days is required"),
        (1, Some("month"), 2, KARMA_INVALID_ARGUMENT, "Field days requires window days"),
        (1, Some("day"), 2, KARMA_INVALID_ARGUMENT, "Field days requires window days"),
        (1, Some("week"), 0, KARMA_INVALID_ARGUMENT, "Field window must be day, days or month, got week"),
        (1, None, 367, KARMA_VALIDATION_ERROR, "Field days exceeds max size of 366"),
        (1, Some("days"), 367, KARMA_VALIDATION_ERROR, "Field days exceeds max size of 366"),
    ];
    for (value, window, days, status, message) in cases {
        let got = consume(engine, "q", 1, 20260301, value, 10, window, days);
        assert_eq!(got, Err(status), "{window:?} {days}");
        assert_eq!(last_error().as_deref(), Some(message));
    }
    assert_eq!(consume(engine, "q", 1, 20260230, 1, 10, None, 0), Err(KARMA_VALIDATION_ERROR));
    assert_eq!(last_error().as_deref(), Some("Invalid bucket date"));
    let (s, w) = (cstr("q"), cstr("day"));
    let mut out = KarmaQuota::default();
    // SAFETY: NULL where a pointer is required is refused before anything is done.
    unsafe {
        expect(
            karma_engine_consume(engine, null(), 1, 0, 1, 5, w.as_ptr(), 0, &mut out),
            KARMA_INVALID_ARGUMENT,
            "series",
        );
        expect(
            karma_engine_consume(engine, s.as_ptr(), 1, 0, 1, 5, w.as_ptr(), 0, null_mut()),
            KARMA_INVALID_ARGUMENT,
            "out_quota",
        );
        expect(
            karma_engine_consume(null_mut(), s.as_ptr(), 1, 0, 1, 5, w.as_ptr(), 0, &mut out),
            KARMA_INVALID_ARGUMENT,
            "engine",
        );
    }
    assert_eq!(sum(engine, "q", 1, None), before, "no error changed anything");

    // A window total that would pass 2^64-1 is an overflow, not a refusal.
    let max = i64::MAX as u64;
    expect(inc(engine, "big", 7, 20260301, max), KARMA_OK, "");
    expect(inc(engine, "big", 7, 20260302, max), KARMA_OK, "");
    let over = consume(engine, "big", 7, 20260303, 2, max, None, 3);
    assert_eq!(over, Err(KARMA_VALIDATION_ERROR));
    assert_eq!(last_error().as_deref(), Some("Counter overflow key=7 bucket=20260303"));
    free(engine);
}

#[test]
fn eight_threads_consume_exactly_the_limit_through_one_handle() {
    struct Shared(*mut KarmaEngine);
    // SAFETY: the ABI documents handles as usable from many threads at once.
    unsafe impl Send for Shared {}
    // SAFETY: as above.
    unsafe impl Sync for Shared {}
    let engine = Shared(open_memory());
    let allowed: u64 = thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let e = &engine;
                scope.spawn(move || {
                    (0..5_000 / 8)
                        .map(|_| {
                            u64::from(consume(e.0, "race", 42, 20260528, 1, 1_000, Some("month"), 0).unwrap().allowed)
                        })
                        .sum::<u64>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(allowed, 1_000);
    assert_eq!(sum(engine.0, "race", 42, None), Ok(1_000));
    free(engine.0);
}

#[test]
fn engine_execute() {
    let engine = open_memory();
    let (status, resp) = execute(engine, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101}"#);
    assert_eq!(status, KARMA_OK, "{resp:?}");
    let resp = resp.unwrap();
    assert!(resp.starts_with(r#"{"protocol_version":2,"success":true"#), "{resp}");
    assert!(!resp.ends_with('\n') && !resp.ends_with('\r'));
    assert_eq!(last_error(), None);
    // A trailing newline is accepted.
    let (status, resp) = execute(engine, "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"s\",\"key\":1}\r\n");
    assert_eq!(status, KARMA_OK);
    assert!(resp.unwrap().contains(r#""response":1"#));

    // Error envelopes: the response line is still there, the status mirrors its code.
    let (status, resp) = execute(engine, "not json");
    assert_eq!(status, KARMA_INVALID_JSON);
    assert!(resp.unwrap().contains(r#""error_code":"invalid_json""#));
    assert!(last_error().is_some());
    let (status, resp) = execute(engine, r#"{"v":2,"op":"nope"}"#);
    assert_eq!(status, KARMA_UNKNOWN_COMMAND, "{resp:?}");
    let (status, resp) = execute(engine, r#"{"v":2,"op":"counter.increment","series":"s"}"#);
    assert_eq!(status, KARMA_VALIDATION_ERROR, "{resp:?}");
    let msg = last_error().unwrap();
    assert!(resp.unwrap().contains(&serde_json_escape(&msg)), "the message is the envelope's");
    let (status, _) = execute(engine, r#"{"v":1,"op":"system.ping"}"#);
    assert_eq!(status, KARMA_UNSUPPORTED_PROTOCOL);
    let (status, _) = execute(engine, "");
    assert_ne!(status, KARMA_OK);
    free(engine);
}

fn serde_json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[test]
fn engine_options() {
    let dir = tempfile::tempdir().unwrap();
    let (status, engine) = open_dir(dir.path(), Some("{not json"));
    expect(status, KARMA_INVALID_ARGUMENT, "options_json");
    assert!(engine.is_null());
    let (status, _) = open_dir(dir.path(), Some(r#"{"wal_fsinc":false}"#));
    expect(status, KARMA_INVALID_ARGUMENT, "wal_fsinc");
    let (status, _) = open_dir(dir.path(), Some(r#"{"role":"boss"}"#));
    expect(status, KARMA_INVALID_ARGUMENT, "boss");

    let (status, engine) =
        open_dir(dir.path(), Some(r#"{"wal_fsync":false,"max_request_bytes":64,"query_timeout_ms":0}"#));
    expect(status, KARMA_OK, "");
    let long = format!(r#"{{"v":2,"op":"counter.sum","series":"{}","key":1}}"#, "x".repeat(100));
    assert_eq!(execute(engine, &long).0, KARMA_REQUEST_TOO_LARGE);
    free(engine);

    let (status, engine) = open_dir(dir.path(), Some(r#"{"auth_token":"w"}"#));
    expect(status, KARMA_OK, "");
    assert_eq!(execute(engine, r#"{"v":2,"op":"system.ping"}"#).0, KARMA_UNAUTHORIZED);
    assert_eq!(execute(engine, r#"{"v":2,"op":"system.ping","token":"w"}"#).0, KARMA_OK);
    free(engine);
}

#[test]
fn engine_durability_and_directory_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (status, engine) = open_dir(dir.path(), None);
    expect(status, KARMA_OK, "");
    expect(inc(engine, "d", 1, 20260101, 40), KARMA_OK, "");
    expect(inc(engine, "d", 1, 20260102, 2), KARMA_OK, "");

    // A second engine on the same directory is refused while the first is open.
    let (status, second) = open_dir(dir.path(), None);
    expect(status, KARMA_VALIDATION_ERROR, "locked");
    assert!(second.is_null());

    // SAFETY: a live handle.
    expect(unsafe { karma_engine_snapshot_all(engine) }, KARMA_OK, "");
    expect(inc(engine, "d", 2, 20260101, 7), KARMA_OK, ""); // only in the WAL
    free(engine);

    let (status, engine) = open_dir(dir.path(), None);
    expect(status, KARMA_OK, "");
    assert_eq!(sum(engine, "d", 1, None), Ok(42));
    assert_eq!(sum(engine, "d", 2, None), Ok(7));
    free(engine);

    // An in-memory engine has nowhere to snapshot to.
    let engine = open_memory();
    // SAFETY: a live handle.
    let status = unsafe { karma_engine_snapshot_all(engine) };
    expect(status, KARMA_VALIDATION_ERROR, "no data directory");
    free(engine);
}

// ------------------------------------------------------------------ last error

#[test]
fn last_error_is_per_thread_and_cleared_by_success() {
    let engine = open_memory();
    assert_eq!(sum(engine, "missing", 1, None), Err(KARMA_NOT_FOUND));
    let msg = last_error().unwrap();
    assert_eq!(msg, r#"Tree "missing" not found"#);

    // karma_last_error_copy works like snprintf.
    // SAFETY: NULL with len 0 asks for the length.
    assert_eq!(unsafe { karma_last_error_copy(null_mut(), 0) }, msg.len());
    let mut small = [0x55 as c_char; 6];
    // SAFETY: `small` is writable for its length.
    assert_eq!(unsafe { karma_last_error_copy(small.as_mut_ptr(), small.len()) }, msg.len());
    // SAFETY: the copy is NUL-terminated inside `small`.
    assert_eq!(unsafe { CStr::from_ptr(small.as_ptr()) }.to_str().unwrap(), &msg[..5]);
    let mut big = [0 as c_char; 64];
    // SAFETY: `big` is writable for its length.
    unsafe { karma_last_error_copy(big.as_mut_ptr(), big.len()) };
    // SAFETY: NUL-terminated inside `big`.
    assert_eq!(unsafe { CStr::from_ptr(big.as_ptr()) }.to_str().unwrap(), msg);

    // Another thread has its own (empty) last error.
    thread::spawn(|| assert_eq!(last_error(), None)).join().unwrap();
    assert_eq!(last_error().as_deref(), Some(msg.as_str()));

    // Success clears it.
    expect(inc(engine, "x", 1, 0, 1), KARMA_OK, "");
    assert_eq!(last_error(), None);
    // SAFETY: as above.
    assert_eq!(unsafe { karma_last_error_copy(big.as_mut_ptr(), big.len()) }, 0);
    assert_eq!(big[0], 0);
    free(engine);
}

#[test]
fn handles_are_shared_across_threads() {
    struct Shared(*mut KarmaEngine);
    // SAFETY: the ABI documents handles as usable from many threads at once.
    unsafe impl Send for Shared {}
    // SAFETY: as above.
    unsafe impl Sync for Shared {}
    let engine = Shared(open_memory());
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let e = &engine;
                for _ in 0..100 {
                    assert_eq!(inc(e.0, "t", 1, 20260101, 1), KARMA_OK);
                }
            });
        }
    });
    assert_eq!(sum(engine.0, "t", 1, None), Ok(400));
    free(engine.0);
}

// ------------------------------------------------------------------ client

fn start_server() -> karma_testkit::Server {
    karma_testkit::Server::start(karma_testkit::karma_binary(), &[] as &[&str])
}

fn open_client(url: &str) -> (KarmaStatus, *mut KarmaClient) {
    let url = cstr(url);
    let mut client = null_mut();
    // SAFETY: a valid string and a writable out.
    (unsafe { karma_client_open(url.as_ptr(), &mut client) }, client)
}

#[test]
fn client_against_a_real_server() {
    let server = start_server();
    let (status, client) = open_client(&format!("karma://127.0.0.1:{}", server.port));
    expect(status, KARMA_OK, "");
    let s = cstr("net");
    let mut out = 0u64;
    // SAFETY: a live client handle, valid strings and arrays, writable outs.
    unsafe {
        expect(karma_client_increment(client, s.as_ptr(), 1, 20260101, 5, &mut out), KARMA_OK, "");
        assert_eq!(out, 5);
        expect(karma_client_decrement(client, s.as_ptr(), 1, 20260101, 2, &mut out), KARMA_OK, "");
        let items =
            [KarmaItem { key: 2, bucket: 20260101, value: 4 }, KarmaItem { key: 1, bucket: 20260102, value: 1 }];
        expect(karma_client_batch_add(client, s.as_ptr(), items.as_ptr(), 2, &mut out), KARMA_OK, "");
        assert_eq!(out, 5);
        expect(karma_client_sum(client, s.as_ptr(), 1, null(), &mut out), KARMA_OK, "");
        assert_eq!(out, 4);
        let keys = [1u64, 2, 9];
        let mut values = [0u64; 3];
        let range = KarmaRange { from: 20260101, to: 20260101 };
        expect(karma_client_batch_sum(client, s.as_ptr(), keys.as_ptr(), 3, &range, values.as_mut_ptr()), KARMA_OK, "");
        assert_eq!(values, [3, 4, 0]);
        let missing = cstr("missing");
        expect(karma_client_sum(client, missing.as_ptr(), 1, null(), &mut out), KARMA_NOT_FOUND, "missing");

        let (month, mut q) = (cstr("month"), KarmaQuota::default());
        let status = karma_client_consume(client, s.as_ptr(), 1, 20260131, 2, 6, month.as_ptr(), 0, &mut q);
        expect(status, KARMA_OK, "");
        assert_eq!(q, quota(true, 6, 6, 20260101, 20260131));
        let status = karma_client_consume(client, s.as_ptr(), 1, 20260131, 1, 6, month.as_ptr(), 0, &mut q);
        expect(status, KARMA_OK, "");
        assert_eq!(q, quota(false, 6, 6, 20260101, 20260131));
        let status = karma_client_consume(client, s.as_ptr(), 1, 20260102, 1, 3, null(), 2, &mut q);
        expect(status, KARMA_OK, "");
        assert_eq!(q, quota(false, 4, 3, 20260101, 20260102));
        let status = karma_client_consume(client, s.as_ptr(), 1, 20260102, 0, 3, null(), 0, &mut q);
        expect(status, KARMA_VALIDATION_ERROR, "Field value must be greater than 0");
        expect(karma_client_sum(client, s.as_ptr(), 1, null(), &mut out), KARMA_OK, "");
        assert_eq!(out, 6);

        let mut resp: *mut c_char = null_mut();
        let ping = r#"{"v":2,"op":"system.ping"}"#;
        expect(karma_client_execute(client, ping.as_ptr().cast(), ping.len(), &mut resp), KARMA_OK, "");
        let text = CStr::from_ptr(resp).to_str().unwrap().to_string();
        karma_string_free(resp);
        assert!(text.contains(r#""response":"pong""#) && text.contains(r#""success":true"#), "{text}");
        let bad = r#"{"v":2,"op":"counter.sum"}"#;
        expect(karma_client_execute(client, bad.as_ptr().cast(), bad.len(), &mut resp), KARMA_VALIDATION_ERROR, "");
        assert!(!resp.is_null());
        karma_string_free(resp);
        karma_client_free(client);
    }
}

#[test]
fn client_errors() {
    let (status, client) = open_client("http://nowhere");
    expect(status, KARMA_VALIDATION_ERROR, "Invalid Karma URL");
    assert!(client.is_null());

    // Nothing listens on a port we just released.
    let port = free_port();
    let (status, client) = open_client(&format!("karma://127.0.0.1:{port}?connect_timeout=2"));
    expect(status, KARMA_OK, "");
    let s = cstr("s");
    let mut out = 0u64;
    let mut resp: *mut c_char = null_mut();
    let ping = r#"{"v":2,"op":"system.ping"}"#;
    // SAFETY: a live client handle, valid strings, writable outs.
    unsafe {
        expect(karma_client_increment(client, s.as_ptr(), 1, 0, 1, &mut out), KARMA_CONNECTION_ERROR, "");
        expect(karma_client_execute(client, ping.as_ptr().cast(), ping.len(), &mut resp), KARMA_CONNECTION_ERROR, "");
        assert!(resp.is_null());
        karma_client_free(client);
    }
}
