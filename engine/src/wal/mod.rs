//! The write-ahead log (spec/persistence.md §3): NDJSON lines
//! `{"v":2,"lsn":N,"entry":{…}}`, group commit by one writer thread, segment
//! rotation with `.idx` sidecars, truncation and replication reads.

pub mod index;
pub mod reader;
pub mod segments;
pub mod writer;

#[cfg(test)]
mod tests;

pub use reader::{read_all, ReplayStats};
pub use segments::{list_files, parse_segment_name, segment_name, WalFile, ACTIVE_FILE, LSN_FILE};
pub use writer::{entry_cost, EntriesPage, Wal, WalConfig, WalStats};
