//! `karma_engine_*`: an in-process engine behind an opaque handle.

use std::ffi::{c_char, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use karma_engine::clock::bucket_of_unix;
use karma_engine::{Engine, OptionValue, Options, Session};
use serde_json::Value;

use crate::args::{self, Out};
use crate::last_error::{guard, Failure};
use crate::ops::{self, Handle};
use crate::status::KarmaStatus;

/// An open Karma engine (opaque). Create with karma_engine_open, destroy
/// with karma_engine_free.
pub struct KarmaEngine {
    engine: Engine,
}

impl Handle for KarmaEngine {
    type Db = Engine;
    const NAME: &'static str = "engine";

    fn db(&self) -> &Engine {
        &self.engine
    }

    fn today(&self) -> u64 {
        bucket_of_unix(self.engine.options().clock.unix_seconds())
    }

    fn execute_line(&self, line: &[u8]) -> Result<Vec<u8>, Failure> {
        // Acknowledged only once durable, as the server does.
        let mut bytes = self.engine.handle_line_acked(line, &Session::client());
        let body = bytes.strip_suffix(b"\r\n").map_or(bytes.len(), <[u8]>::len);
        bytes.truncate(body);
        Ok(bytes)
    }
}

/// The options document of `karma_engine_open` onto the engine's
/// [`Options`], through the engine's table of options by name (named like
/// the server's flags: `--wal-fsync` is `wal_fsync`). Unknown names are
/// refused.
fn options(dir: Option<&[u8]>, json: Option<&[u8]>) -> Result<Options, Failure> {
    let mut o = Options { directory: dir.map(|d| PathBuf::from(OsStr::from_bytes(d))), ..Options::default() };
    let json = match json {
        Some(j) if !j.iter().all(u8::is_ascii_whitespace) => j,
        _ => return Ok(o),
    };
    let refused = |message: String| Failure::invalid(format!("options_json is refused: {message}"));
    let document: serde_json::Map<String, Value> = serde_json::from_slice(json).map_err(|e| refused(e.to_string()))?;
    for (name, value) in &document {
        let value = match value {
            Value::Bool(b) => OptionValue::Bool(*b),
            Value::Number(n) => n.as_u64().map_or(OptionValue::Other, OptionValue::UInt),
            Value::String(s) => OptionValue::Str(s),
            Value::Null => OptionValue::Null,
            Value::Array(_) | Value::Object(_) => OptionValue::Other,
        };
        o.set(name, value).map_err(|e| refused(e.to_string()))?;
    }
    Ok(o)
}

/// Opens an engine and stores its handle in `*out` (on KARMA_OK only).
///
/// `dir_or_null`: the data directory (created if missing; it may hold a
/// Karma 1.0 directory), or NULL for an engine that lives in memory only.
/// With a directory, the snapshots and the write-ahead log are restored and
/// every acknowledged write is durable. The directory is locked: a second
/// engine on it (in this process or another) fails, with
/// KARMA_VALIDATION_ERROR and a message saying so.
///
/// `options_json_or_null`: NULL, "" or a JSON object whose fields are the
/// engine options: the names, values and defaults of the `karma` server's
/// flags, from the one table of them (docs/server.md, "Options"; e.g.
/// `{"wal_fsync":"everysec","max_request_bytes":65536}`). `auth_token`
/// and `read_auth_token` are checked by karma_engine_execute only. A
/// malformed document, an unknown field or a value the
/// option does not take is KARMA_INVALID_ARGUMENT.
///
/// # Safety
///
/// `dir_or_null` and `options_json_or_null` must be NULL or NUL-terminated
/// strings; `out` must be NULL or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn karma_engine_open(
    dir_or_null: *const c_char,
    options_json_or_null: *const c_char,
    out: *mut *mut KarmaEngine,
) -> KarmaStatus {
    guard(|| {
        // SAFETY: as the helpers require (this function's contract).
        let (dir, json, out) =
            unsafe { (args::opt_bytes(dir_or_null), args::opt_bytes(options_json_or_null), Out::one(out, "out")?) };
        let engine = Engine::open(options(dir, json)?).map_err(|e| Failure::of(&e))?;
        out.set(Box::into_raw(Box::new(KarmaEngine { engine })));
        Ok(())
    })
}

/// Closes the engine (flushing its write-ahead log) and frees the handle.
/// NULL is ignored. The handle must not be used afterwards.
///
/// # Safety
///
/// `engine` must be NULL or a handle from karma_engine_open, not yet freed,
/// that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn karma_engine_free(engine: *mut KarmaEngine) {
    // SAFETY: this function's contract is the helper's.
    unsafe {
        ops::free(engine, |engine| {
            // A close error cannot be reported: every acknowledged write was
            // already durable, and the WAL writer stops either way.
            let _ = engine.engine.close();
        })
    }
}

/// Runs one protocol v2 request, `len` bytes of JSON at `json` (no NUL
/// needed; one trailing "\n" or "\r\n" is ignored), exactly as the server
/// would for a client (tokens checked when the engine has them), and waits
/// until a write is durable.
///
/// `*out_response` is first set to NULL, then to the whole response line
/// (without "\r\n", NUL-terminated) whenever there is one: on KARMA_OK, and
/// also when the response is a v2 error envelope, whose `error_code` is then
/// the returned status and whose message is karma_last_error(). Always pass
/// `*out_response` to karma_string_free afterwards (it accepts NULL).
///
/// # Safety
///
/// `engine` must be NULL or a live handle; `json` readable for `len` bytes
/// (NULL allowed when `len` is 0); `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_engine_execute(
    engine: *mut KarmaEngine,
    json: *const c_char,
    len: usize,
    out_response: *mut *mut c_char,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::execute(engine.cast_const(), json, len, out_response) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use karma_engine::{FsyncPolicy, Role};
    use std::time::Duration;

    #[test]
    fn options_map_onto_the_engine_options() {
        let o = options(Some(b"/tmp/x"), None).unwrap();
        assert_eq!(o.directory, Some(PathBuf::from("/tmp/x")));
        assert!(o.wal_fsync == FsyncPolicy::Always && o.restore);
        let o = options(None, Some(b"  ")).unwrap();
        assert_eq!(o.directory, None);
        let json = br#"{"wal_fsync":false,"restore":false,"wal_batch_size":0,"wal_batch_wait_us":250,
            "max_request_bytes":100,"max_response_bytes":0,"query_timeout_ms":0,"auth_token":"w",
            "read_auth_token":"","role":"slave","dump_retention_per_tree":2,"idempotency_max_records":3,
            "idempotency_max_age_seconds":4,"wal":true,"wal_segment_bytes":5}"#;
        let o = options(None, Some(json)).unwrap();
        assert!(o.wal_fsync == FsyncPolicy::Never && !o.restore && o.wal);
        for (json, policy) in [
            (&br#"{"wal_fsync":"always"}"#[..], FsyncPolicy::Always),
            (br#"{"wal_fsync":"everysec"}"#, FsyncPolicy::EverySec),
            (br#"{"wal_fsync":"never"}"#, FsyncPolicy::Never),
            (br#"{"wal_fsync":true}"#, FsyncPolicy::Always),
        ] {
            assert_eq!(options(None, Some(json)).unwrap().wal_fsync, policy);
        }
        assert_eq!((o.wal_batch_size, o.wal_batch_wait), (1, Duration::from_micros(250)));
        assert_eq!((o.max_request_bytes, o.max_response_bytes, o.query_timeout), (100, 0, None));
        assert_eq!((o.auth_token.as_deref(), o.read_auth_token.as_deref()), (Some("w"), None));
        assert_eq!(o.role, Role::Slave);
        assert_eq!(
            (o.dump_retention_per_tree, o.idempotency_max_records, o.idempotency_max_age_seconds, o.wal_segment_bytes),
            (2, 3, 4, 5)
        );
        let o = options(None, Some(br#"{"query_timeout_ms":1500}"#)).unwrap();
        assert_eq!(o.query_timeout, Some(Duration::from_millis(1500)));
        for bad in [
            &br#"[]"#[..],
            br#"{"fsync":true}"#,
            br#"{"wal_fsync":"yes"}"#,
            br#"{"wal_fsync":1}"#,
            br#"{"max_request_bytes":-1}"#,
        ] {
            let err = options(None, Some(bad)).map(|_| ()).unwrap_err();
            assert_eq!(err.status, KarmaStatus::KARMA_INVALID_ARGUMENT, "{}", String::from_utf8_lossy(bad));
        }
    }
}
