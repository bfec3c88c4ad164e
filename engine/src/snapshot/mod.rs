//! Snapshot files: the `.tree` MessagePack format, the snapshot directory
//! (naming, sidecars, retention) and the idempotency snapshot
//! (spec/persistence.md §4, §5).

pub mod dir;
pub mod format;
pub mod idem;

pub use dir::{file_name, parse_file_name, SnapshotDir, SnapshotMeta};
pub use format::{decode_tree, decode_tree_named, encode_tree, CounterImage, SeriesImage, BRANCHES};
pub use idem::{
    decode_idempotency, encode_idempotency, encode_idempotency_with_active, idempotency_meta, read_active_streams,
    read_idempotency, read_idempotency_bytes, write_idempotency, write_idempotency_with_active, IdempotencyMeta,
    RecordImage, StreamImage, IDEMPOTENCY_FILE, IDEMPOTENCY_META_FILE,
};
