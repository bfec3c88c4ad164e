//! The write-ahead log (spec/persistence.md §3): NDJSON lines
//! `{"v":2,"lsn":N,"entry":{…}}`, group commit by one writer thread, segment
//! rotation with `.idx` sidecars, truncation and replication reads.

mod durability;
mod handle;
pub mod index;
mod pending;
pub mod reader;
mod replication;
mod resume;
pub mod segments;
mod writer;

#[cfg(test)]
mod tests;

pub use handle::{Wal, WalConfig, WalStats};
pub use reader::{read_all, ReplayStats};
pub use replication::{entry_cost, EntriesPage};
pub use resume::FILLER_ENTRY;
pub use segments::{list_files, parse_segment_name, segment_name, WalFile, ACTIVE_FILE, LSN_FILE};
