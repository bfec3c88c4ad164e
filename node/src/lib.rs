//! `karma-counters`: the native half of Karma's Node.js package (napi-rs).
//!
//! * `Engine` (in-process) and `Client` (network) share every method
//!   (`api.rs`'s table, written once over `karma_engine::api::Karma` in
//!   `calls.rs`); each returns a Promise computed on the libuv thread pool
//!   (`task.rs`), except a `Client`'s single-counter calls, which share
//!   pipelined connections and settle their Promises in batches
//!   (`settle.rs`); `Engine` also has blocking `...Sync` variants;
//! * counters are u64 end to end: `bigint` results, `number` (safe integers
//!   only) or `bigint` arguments (`conv.rs`);
//! * failures become the package's error classes (`errors.rs`, `errors.js`).
//!
//! `karma.js` is the package's entry point: it loads this addon through the
//! generated `index.js`, registers the error classes and re-exports both.

pub mod api;
pub mod calls;
pub mod conv;
pub mod errors;
pub mod fast;
pub mod ingest;
pub mod options;
pub mod settle;
pub mod shared;
pub mod task;
pub mod types;
