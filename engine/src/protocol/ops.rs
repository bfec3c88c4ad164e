//! The op table: every v2 op name and alias, its internal command name, and
//! the flags that decide auth, roles, WAL logging and idempotency
//! (spec/protocol.md §8.1), and its cost, which decides whether the server
//! runs it on the blocking pool. Server, engine and bindings all read this
//! one table.

/// What an op may do, which decides the read token and slave rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Allowed with the read token and on a slave.
    Read,
    /// Changes data; logged in the WAL (except `recovery.checkpoint`).
    Mutating,
    /// Snapshot and reconciliation administration: not logged, write token only.
    Admin,
}

/// How an op's cost grows, which decides where the server runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Bounded work on one counter or a few atomics: runs inline on the
    /// server's async workers.
    Light,
    /// Grows with the data (whole-series or whole-engine scans, batches,
    /// snapshot, ingest and replication work, file I/O): the server runs it
    /// on the blocking pool under a heavy-request permit.
    Heavy,
}

macro_rules! ops {
    ($( $variant:ident => $canonical:literal $(| $alias:literal)*, $internal:literal, $class:ident, $idem:literal, $cost:ident; )*) => {
        /// One v2 operation (aliases resolved).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op { $( $variant, )* }

        impl Op {
            /// Every op, in table order.
            pub const ALL: &'static [Op] = &[ $( Op::$variant, )* ];

            /// Resolves an op string or alias.
            pub fn from_name(name: &str) -> Option<Op> {
                match name {
                    $( $canonical $(| $alias)* => Some(Op::$variant), )*
                    _ => None,
                }
            }

            /// The canonical op string (what the WAL records).
            pub const fn name(self) -> &'static str {
                match self { $( Op::$variant => $canonical, )* }
            }

            /// The other names this op answers to (e.g. `series.sum`).
            pub const fn aliases(self) -> &'static [&'static str] {
                match self { $( Op::$variant => &[$($alias),*], )* }
            }

            /// Karma 1.0's internal command name, used in `forbidden`
            /// messages, fingerprints and idempotency records.
            pub const fn internal_name(self) -> &'static str {
                match self { $( Op::$variant => $internal, )* }
            }

            pub const fn class(self) -> Class {
                match self { $( Op::$variant => Class::$class, )* }
            }

            /// Honours `idempotency_key` (spec/protocol.md §12.1).
            pub const fn idempotency_eligible(self) -> bool {
                match self { $( Op::$variant => $idem, )* }
            }

            pub const fn cost(self) -> Cost {
                match self { $( Op::$variant => Cost::$cost, )* }
            }
        }
    };
}

ops! {
    Ping => "system.ping", "ping", Read, false, Light;
    Health => "system.health", "health", Read, false, Light;
    Stats => "system.stats", "stats", Read, false, Heavy;
    Metrics => "system.metrics", "metrics", Read, false, Heavy;
    // An extension (not in Karma 1.0): the WAL's fsync policy and counters.
    Wal => "system.wal", "wal", Read, false, Light;
    TreeList => "tree.list", "trees", Read, false, Heavy;
    TreeInfo => "tree.info", "tree_info", Read, false, Heavy;
    TreeKeys => "tree.keys", "tree_keys", Read, false, Heavy;
    TreeSummary => "tree.summary", "tree_summary", Read, false, Heavy;
    TreeTop => "tree.top", "tree_top", Read, false, Heavy;
    TreeSeries => "tree.series", "find", Read, false, Heavy;
    Sum => "counter.sum" | "series.sum", "sum", Read, false, Light;
    BatchSum => "counter.batch_sum" | "series.batch_sum", "batch_sum", Read, false, Heavy;
    MultiSum => "counter.multi_sum", "multi_sum", Read, false, Heavy;
    CounterSeries => "counter.series" | "series.points", "find", Read, false, Light;
    SnapshotList => "snapshot.list", "dumps", Read, false, Heavy;
    SnapshotInfo => "snapshot.info", "snapshot_info", Read, false, Heavy;
    SnapshotFetch => "snapshot.fetch", "snapshot_fetch", Read, false, Heavy;
    SnapshotFetchChunk => "snapshot.fetch_chunk", "snapshot_fetch_chunk", Read, false, Heavy;
    SnapshotVerify => "snapshot.verify", "verify", Read, false, Heavy;
    RecoveryStatus => "recovery.status", "recovery_status", Read, false, Light;
    ReplicationStatus => "replication.status", "replication_status", Read, false, Heavy;
    ReplicationEntries => "replication.entries", "replication_entries", Read, false, Heavy;
    IdempotencySnapshotFetchChunk => "idempotency.snapshot_fetch_chunk", "idempotency_snapshot_fetch_chunk", Read, false, Heavy;
    TreeCreate => "tree.create", "create", Mutating, false, Heavy;
    TreeDrop => "tree.drop", "drop", Mutating, false, Heavy;
    TreeReset => "tree.reset", "reset", Mutating, true, Heavy;
    TreeDeleteRange => "tree.delete_range", "delete", Mutating, true, Heavy;
    SystemCompact => "system.compact", "compact", Mutating, false, Heavy;
    SeriesCompact => "series.compact" | "tree.compact", "compact", Mutating, false, Heavy;
    Increment => "counter.increment" | "series.increment", "increment", Mutating, true, Light;
    Decrement => "counter.decrement", "decrement", Mutating, true, Light;
    BatchAdd => "series.batch_add" | "counter.batch_increment", "batch_add", Mutating, true, Heavy;
    BatchSet => "series.batch_set", "batch_set", Mutating, true, Heavy;
    CounterReset => "counter.reset", "reset", Mutating, true, Light;
    BatchReset => "counter.batch_reset", "batch_reset", Mutating, true, Heavy;
    CounterDeleteRange => "counter.delete_range", "delete", Mutating, true, Light;
    BatchDeleteRange => "counter.batch_delete_range", "batch_delete_range", Mutating, true, Heavy;
    // An extension (not in Karma 1.0): an atomic quota check-and-add, logged
    // as the counter.increment it amounts to (docs/protocol.md).
    Consume => "counter.consume", "consume", Mutating, true, Light;
    DeleteBefore => "series.delete_before" | "tree.delete_before", "delete_before", Mutating, false, Heavy;
    IngestBegin => "ingest.begin", "ingest_begin", Mutating, false, Heavy;
    IngestChunk => "ingest.chunk", "ingest_chunk", Mutating, false, Heavy;
    IngestCommit => "ingest.commit", "ingest_commit", Mutating, false, Heavy;
    IngestAbort => "ingest.abort", "ingest_abort", Mutating, false, Heavy;
    IdempotencyPrune => "idempotency.prune", "idempotency_prune", Mutating, false, Heavy;
    RecoveryCheckpoint => "recovery.checkpoint", "recovery_checkpoint", Mutating, false, Light;
    SnapshotCreate => "snapshot.create", "dump", Admin, false, Heavy;
    SnapshotCreateAll => "snapshot.create_all", "dump_all", Admin, false, Heavy;
    SnapshotLoad => "snapshot.load", "load", Admin, false, Heavy;
    ReconciliationReport => "reconciliation.report", "reconciliation_report", Admin, false, Light;
}

impl Op {
    /// Allowed with the read-only token and on a slave.
    pub const fn is_read_only(self) -> bool {
        matches!(self.class(), Class::Read)
    }

    /// Its cost grows with the data, so the server keeps it off the async
    /// workers (see [`Cost`]).
    pub const fn is_heavy(self) -> bool {
        matches!(self.cost(), Cost::Heavy)
    }

    /// Appended to the WAL when it succeeds.
    pub const fn is_logged(self) -> bool {
        matches!(self.class(), Class::Mutating) && !matches!(self, Op::RecoveryCheckpoint)
    }
}

/// How a request field's value is written, so that tools can build a
/// request from `name=value` words and list what each op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A JSON string (`series` also accepts its alias `tree`).
    Str,
    /// An unsigned integer.
    Uint,
    /// A signed integer (`limit`, reconciliation counts).
    Int,
    /// A day bucket: `YYYYMMDD` as an integer, or a `YYYY-MM-DD` string.
    Bucket,
    /// A string or an integer (recovery offsets and event ids).
    Text,
    /// Unix seconds or an RFC 3339 timestamp string.
    Timestamp,
    /// `[u64, ...]`.
    Keys,
    /// `[[key, bucket, value], ...]`.
    Items,
    /// `[{"series": s, "key": k}, ...]`.
    SeriesKeys,
    /// `{"from": bucket, "to": bucket}`.
    Range,
}

/// One field an op reads from its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

const fn req(name: &'static str, kind: FieldKind) -> Field {
    Field { name, kind, required: true }
}

const fn opt(name: &'static str, kind: FieldKind) -> Field {
    Field { name, kind, required: false }
}

const SERIES: Field = req("series", FieldKind::Str);
const KEY: Field = req("key", FieldKind::Uint);
const KEYS: Field = req("keys", FieldKind::Keys);
const ITEMS: Field = req("items", FieldKind::Items);
const RANGE: Field = req("range", FieldKind::Range);
const OPT_RANGE: Field = opt("range", FieldKind::Range);
const LIMIT: Field = opt("limit", FieldKind::Int);
const STREAM_ID: Field = req("stream_id", FieldKind::Str);
const FILE: Field = req("file", FieldKind::Str);

impl Op {
    /// The fields this op reads (besides `v`, `op`, `token` and the
    /// idempotency fields of §12), required ones first. Mirrors
    /// `request::parse_command`; a test keeps the two in step.
    pub const fn fields(self) -> &'static [Field] {
        use FieldKind::*;
        use Op::*;
        match self {
            Ping | Health | Stats | Metrics | Wal | TreeList | SnapshotList | SnapshotInfo | SnapshotVerify
            | ReplicationStatus | SystemCompact | SnapshotCreateAll => const { &[] },
            TreeInfo | TreeCreate | TreeDrop | TreeReset | SeriesCompact | SnapshotCreate => const { &[SERIES] },
            TreeKeys => const { &[SERIES, opt("cursor", Uint), LIMIT] },
            TreeSummary => const { &[SERIES, OPT_RANGE] },
            TreeSeries | TreeDeleteRange => const { &[SERIES, RANGE] },
            TreeTop => const { &[SERIES, LIMIT, OPT_RANGE] },
            Sum => const { &[SERIES, KEY, OPT_RANGE] },
            CounterReset => const { &[SERIES, KEY] },
            CounterSeries | CounterDeleteRange => const { &[SERIES, KEY, RANGE] },
            BatchSum => const { &[SERIES, KEYS, OPT_RANGE] },
            BatchReset => const { &[SERIES, KEYS] },
            BatchDeleteRange => const { &[SERIES, KEYS, RANGE] },
            MultiSum => const { &[req("items", SeriesKeys), OPT_RANGE] },
            Increment | Decrement => const { &[SERIES, KEY, opt("bucket", Bucket), opt("value", Uint)] },
            Consume => {
                const {
                    &[
                        SERIES,
                        KEY,
                        req("limit", Uint),
                        opt("bucket", Bucket),
                        opt("value", Uint),
                        opt("window", Str),
                        opt("days", Uint),
                    ]
                }
            }
            BatchAdd | BatchSet => const { &[SERIES, ITEMS] },
            DeleteBefore => const { &[SERIES, req("before", Bucket)] },
            SnapshotFetch | SnapshotLoad => const { &[FILE] },
            SnapshotFetchChunk => const { &[FILE, opt("offset", Uint), LIMIT] },
            IdempotencySnapshotFetchChunk => const { &[opt("offset", Uint), LIMIT] },
            RecoveryStatus => const { &[opt("source", Str), opt("after_source", Str)] },
            RecoveryCheckpoint => const { &[req("source", Str), opt("offset", Text), opt("event_id", Text)] },
            ReplicationEntries => const { &[req("after_lsn", Uint), LIMIT] },
            IngestBegin => const { &[STREAM_ID, req("mode", Str), opt("granularity", Str)] },
            IngestChunk => const { &[STREAM_ID, SERIES, req("chunk_seq", Uint), ITEMS] },
            IngestCommit | IngestAbort => const { &[STREAM_ID] },
            IdempotencyPrune => const { &[req("before", Timestamp), LIMIT] },
            ReconciliationReport => {
                const {
                    &[
                        req("checked_points", Int),
                        req("mismatch_count", Int),
                        opt("absolute_drift", Int),
                        opt("max_abs_delta", Int),
                    ]
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_five_names_map_onto_the_table() {
        let aliases = [
            "series.sum",
            "series.batch_sum",
            "series.points",
            "tree.compact",
            "series.increment",
            "counter.batch_increment",
            "tree.delete_before",
        ];
        // Karma 1.0's 55 names plus the extensions system.wal and counter.consume.
        assert_eq!(Op::ALL.len() + aliases.len(), 57);
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(*op));
        }
        for a in aliases {
            assert!(Op::from_name(a).is_some(), "{a}");
        }
        assert_eq!(Op::from_name("system.verify"), None);
        let listed: Vec<&str> = Op::ALL.iter().flat_map(|op| op.aliases().iter().copied()).collect();
        assert_eq!(listed.len(), aliases.len());
        for a in aliases {
            assert!(listed.contains(&a), "{a}");
        }
    }

    #[test]
    fn read_only_set_matches_the_spec() {
        let read: Vec<&str> = Op::ALL.iter().filter(|o| o.is_read_only()).map(|o| o.internal_name()).collect();
        // Karma 1.0's 23 read ops plus the extension system.wal.
        assert_eq!(read.len(), 24);
        assert!(!Op::SnapshotCreate.is_read_only());
        assert!(!Op::ReconciliationReport.is_logged());
        assert!(!Op::RecoveryCheckpoint.is_logged());
        assert!(Op::IngestChunk.is_logged());
    }
    #[test]
    fn heaviness_follows_what_an_op_touches() {
        for &op in Op::ALL {
            let takes = |name: &str| op.fields().iter().any(|f| f.name == name);
            let namespace = op.name().split('.').next().unwrap_or_default();
            if takes("keys") || takes("items") || matches!(namespace, "tree" | "snapshot" | "ingest") {
                assert!(op.is_heavy(), "{}: batches, whole series and files are heavy", op.name());
            }
            if takes("key") {
                assert!(!op.is_heavy(), "{}: one counter is light", op.name());
            }
        }
        let light: Vec<&str> = Op::ALL.iter().filter(|o| !o.is_heavy()).map(|o| o.name()).collect();
        assert_eq!(
            light,
            [
                "system.ping",
                "system.health",
                "system.wal",
                "counter.sum",
                "counter.series",
                "recovery.status",
                "counter.increment",
                "counter.decrement",
                "counter.reset",
                "counter.delete_range",
                "counter.consume",
                "recovery.checkpoint",
                "reconciliation.report",
            ]
        );
    }

    /// A value of `kind` that the parser accepts.
    fn sample(field: &Field) -> &'static str {
        match (field.name, field.kind) {
            ("file", _) => "\"links.20260101.tree\"",
            ("mode", _) => "\"add\"",
            ("window", _) => "\"days\"",
            (_, FieldKind::Str) => "\"s\"",
            (_, FieldKind::Uint | FieldKind::Int | FieldKind::Text | FieldKind::Timestamp) => "1",
            (_, FieldKind::Bucket) => "20260101",
            (_, FieldKind::Keys) => "[1]",
            (_, FieldKind::Items) => "[[1,20260101,1]]",
            (_, FieldKind::SeriesKeys) => "[{\"series\":\"s\",\"key\":1}]",
            (_, FieldKind::Range) => "{\"from\":20260101,\"to\":20260102}",
        }
    }

    fn parses(op: Op, fields: &[&Field]) -> bool {
        let mut line = format!("{{\"v\":2,\"op\":\"{}\"", op.name());
        for f in fields {
            line.push_str(&format!(",\"{}\":{}", f.name, sample(f)));
        }
        line.push('}');
        let doc = crate::protocol::request::parse_document(line.as_bytes()).unwrap();
        crate::protocol::request::parse_request(&doc).is_ok()
    }

    #[test]
    fn field_table_matches_the_parser() {
        for &op in Op::ALL {
            let all: Vec<&Field> = op.fields().iter().collect();
            assert!(parses(op, &all), "{}: every listed field accepted", op.name());
            let required: Vec<&Field> = all.iter().copied().filter(|f| f.required).collect();
            assert!(parses(op, &required), "{}: required fields are enough", op.name());
            for (i, f) in required.iter().enumerate() {
                let mut without = required.clone();
                without.remove(i);
                assert!(!parses(op, &without), "{}: {} is really required", op.name(), f.name);
            }
            let names: std::collections::HashSet<&str> = all.iter().map(|f| f.name).collect();
            assert_eq!(names.len(), all.len(), "{}: no field listed twice", op.name());
        }
    }
}
