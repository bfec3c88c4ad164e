//! Argument shapes for `index.d.ts`. The methods read these objects field by
//! field (`conv.rs`: exact u64, unknown names refused), so the structs here
//! exist for their TypeScript declarations only.
#![allow(dead_code)]

use napi_derive::napi;

/// A range of day buckets, both ends included. A bucket is a `YYYYMMDD`
/// number (`20260505`), a `'YYYY-MM-DD'` string or a `Date` (its UTC day).
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct Range {
    #[napi(ts_type = "Date | string | number")]
    pub from: (),
    #[napi(ts_type = "Date | string | number")]
    pub to: (),
}

/// Options of `increment` and `decrement`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ChangeOptions {
    /// The amount (default 1): a safe-integer `number` or a `bigint`.
    #[napi(ts_type = "number | bigint")]
    pub value: Option<()>,
    /// The day bucket (default today, UTC).
    #[napi(ts_type = "Date | string | number")]
    pub bucket: Option<()>,
}

/// Options of `consume`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ConsumeOptions {
    /// The amount (default 1): a safe-integer `number` or a `bigint`.
    #[napi(ts_type = "number | bigint")]
    pub value: Option<()>,
    /// The day bucket written and the window's reference day (default today, UTC).
    #[napi(ts_type = "Date | string | number")]
    pub bucket: Option<()>,
    /// `'day'` (default), `'days'` (the last `days` days up to `bucket`) or
    /// `'month'` (the calendar month of `bucket`).
    #[napi(ts_type = "'day' | 'days' | 'month'")]
    pub window: Option<()>,
    /// The length of a `'days'` window (giving it implies `window: 'days'`).
    #[napi(ts_type = "number")]
    pub days: Option<()>,
}

/// Options of `keys`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct KeysOptions {
    /// Start after this key (a page's `nextCursor`).
    #[napi(ts_type = "number | bigint | null")]
    pub cursor: Option<()>,
    /// Keys per page.
    #[napi(ts_type = "number")]
    pub limit: Option<()>,
}

/// Options of `top`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct TopOptions {
    /// How many keys (the engine's default when absent).
    #[napi(ts_type = "number")]
    pub limit: Option<()>,
    /// Sum only these buckets (all time when absent).
    #[napi(ts_type = "Range")]
    pub range: Option<()>,
}

/// Options of `idempotencyPrune`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct PruneOptions {
    /// Delete at most this many records.
    #[napi(ts_type = "number")]
    pub limit: Option<()>,
}

/// Options of `new Engine(path, options)`: the `karma` server's flags. Only
/// the TypeScript type: the values are read through the engine's table of
/// options (`options.rs`), and test/options.test.js checks that this list
/// is that table (`__engineOptions()`), in its order.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct EngineOptions {
    /// Load snapshots and replay the WAL when opening (default true).
    pub restore: Option<bool>,
    /// Write a WAL (default true for a directory).
    pub wal: Option<bool>,
    /// When the WAL reaches the disk: `'always'` (default; every
    /// acknowledged write is fsynced, so `...Sync` write methods block for
    /// an fsync), `'everysec'`, `'never'`; `true`/`false` mean always/never.
    #[napi(ts_type = "'always' | 'everysec' | 'never' | boolean")]
    pub wal_fsync: Option<()>,
    pub wal_segment_bytes: Option<f64>,
    pub wal_batch_size: Option<f64>,
    pub wal_batch_wait_us: Option<f64>,
    pub max_request_bytes: Option<f64>,
    pub max_response_bytes: Option<f64>,
    /// 0 = no timeout.
    pub query_timeout_ms: Option<f64>,
    pub auth_token: Option<String>,
    pub read_auth_token: Option<String>,
    #[napi(ts_type = "'master' | 'slave'")]
    pub role: Option<()>,
    pub dump_retention_per_tree: Option<f64>,
    pub idempotency_max_records: Option<f64>,
    pub idempotency_max_age_seconds: Option<f64>,
    pub ingest_max_streams: Option<f64>,
    pub ingest_max_staged_items: Option<f64>,
    pub ingest_stream_ttl_seconds: Option<f64>,
    pub recovery_max_sources: Option<f64>,
}

/// Options of `new Client(url, options)`; they override the URL and the
/// `KARMA_*` environment variables. Only the TypeScript type: the values
/// are read through the client's table of options (`options.rs`), and
/// test/options.test.js checks that this list is that table
/// (`__clientOptions()`), in its order.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ClientOptions {
    /// The server's auth token.
    pub token: Option<String>,
    /// Pooled connections (and so requests in flight at once).
    pub pool_size: Option<f64>,
    /// Milliseconds to wait for a free pooled connection; 0 disables.
    pub checkout_timeout_ms: Option<f64>,
    /// Milliseconds; 0 disables.
    pub connect_timeout_ms: Option<f64>,
    /// Milliseconds; 0 disables.
    pub read_timeout_ms: Option<f64>,
    /// Milliseconds; 0 disables.
    pub write_timeout_ms: Option<f64>,
    /// Longest answer accepted, in bytes; 0 (the default) = no limit.
    pub max_response_bytes: Option<f64>,
}
