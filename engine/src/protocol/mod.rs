//! Protocol v2: the op table, request parsing and validation, fingerprints,
//! WAL entry encoding and the response envelope.

pub mod fields;
pub mod fingerprint;
pub mod line;
pub mod ops;
pub mod plain;
pub mod request;
pub mod response;
pub mod validate;
pub mod wal_entry;

pub use ops::{Class, Cost, Field, FieldKind, Op};
pub use request::{Command, Idempotency, Item, MultiSumItem, PruneBefore, Range, Request, Window};
