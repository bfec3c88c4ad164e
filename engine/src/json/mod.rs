//! A small, exact JSON reader and writer for the request/response hot path.
//!
//! Why not `serde_json::Value`: the protocol needs the literal text of every
//! number (an integer literal outside the signed 64-bit range makes the whole
//! request `invalid_json`, `1e3` is a type error, and u64 must never pass
//! through f64), duplicate keys resolved last-wins, and borrowed strings so a
//! request parses without allocating. This reader does exactly that.

mod read;
mod write;

pub use read::{parse, Value};
pub use write::{write_str, write_u128, write_u64, JsonOut};
