//! The API surface, declared once: every method the engine and the network
//! client share (the [`Karma`](crate::api::Karma) trait), with its
//! arguments and result described by *kind*, so that each binding can
//! produce its wrappers from this one table instead of writing them out.
//!
//! [`for_each_method!`](crate::for_each_method) hands the table to a
//! callback macro. Each row reads
//!
//! ```text
//! /// What the method does (language-neutral).
//! name(arg: kind, ...) -> out: kind = Op;
//! ```
//!
//! where `out` names the answer (bindings use it for out-parameters and
//! field names), and `Op` is the [`Op`](crate::protocol::Op) the method
//! sends. A callback matches rows with
//!
//! ```text
//! $( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*
//! ```
//!
//! and turns each kind into what its language needs; in Rust,
//! [`arg_type!`](crate::arg_type) and [`ret_type!`](crate::ret_type) give
//! the types the trait uses. Adding a method: a row here, the method on
//! `Engine` and on the client; every binding expanding the table picks it up
//! (a new *kind* needs one converter per binding).

/// Calls `$callback! { rows }` with the table of the API surface (see the
/// [module docs](crate::surface) for the row syntax).
///
/// `for_each_method!(@with [tokens] callback)` calls `callback! { tokens rows }`
/// instead: for a callback that needs more than the rows (say the type to
/// implement the trait for), since a callback is named, not called with
/// arguments of its own.
#[macro_export]
macro_rules! for_each_method {
    (@with [$($extra:tt)*] $($callback:tt)+) => {
        $($callback)+! {
            $($extra)*
            /// Adds `value` to one day bucket of counter `key` (today, UTC, without
            /// a bucket), creating the series if missing. Answers `value`, as the
            /// protocol echoes it, once the write is durable.
            increment(series: series, key: key, bucket: opt_bucket, value: uint) -> value: uint = Increment;
            /// Subtracts up to `value` from one day bucket of counter `key`, never
            /// below zero. Answers the requested `value` (as the protocol does),
            /// even when less was left to subtract.
            decrement(series: series, key: key, bucket: opt_bucket, value: uint) -> value: uint = Decrement;
            /// The quota check and the increment it guards, in one atomic step:
            /// adds `value` to the bucket (today, UTC, without one) only if the
            /// window's total plus `value` stays within `limit`. A refusal
            /// (`allowed` false) changes nothing and is not an error.
            consume(series: series, key: key, bucket: opt_bucket, value: uint, limit: uint, window: window)
                -> quota: quota = Consume;
            /// The total of counter `key`, or the sum of its buckets inside the
            /// range. A missing series is `not_found`; a missing key sums to 0.
            sum(series: series, key: key, range: opt_range) -> sum: uint = Sum;
            /// One sum per key, in order (over the range, or every bucket).
            batch_sum(series: series, keys: keys, range: opt_range) -> values: uints = BatchSum;
            /// One sum per (series, key) item, in order.
            multi_sum(items: series_keys, range: opt_range) -> values: uints = MultiSum;
            /// The (bucket, value) points of counter `key` inside the range,
            /// ascending by bucket.
            points(series: series, key: key, range: range) -> points: pairs = CounterSeries;
            /// Adds the (key, bucket, value) items atomically (all or none),
            /// creating the series if missing. Answers the total added.
            batch_add(series: series, items: items) -> total: uint = BatchAdd;
            /// Sets exact bucket values (0 deletes the bucket), atomically.
            /// Answers the number of items.
            batch_set(series: series, items: items) -> count: count = BatchSet;
            /// Clears counter `key`, or every counter of the series without a key.
            reset(series: series, key: opt_key) -> done: unit = CounterReset;
            /// Clears many counters. Answers how many were reset and how many
            /// were missing.
            batch_reset(series: series, keys: keys) -> counts: counts = BatchReset;
            /// Deletes the buckets inside the range of counter `key`, or of every
            /// counter without a key.
            delete_range(series: series, key: opt_key, range: range) -> done: unit = CounterDeleteRange;
            /// Deletes the range from many counters. Answers how many had buckets
            /// deleted and how many were missing.
            batch_delete_range(series: series, keys: keys, range: range) -> counts: counts = BatchDeleteRange;
            /// Creates an empty series.
            create_series(series: series) -> done: unit = TreeCreate;
            /// Deletes a series and its snapshots.
            drop_series(series: series) -> done: unit = TreeDrop;
            /// The names of every series.
            list_series() -> names: names = TreeList;
            /// Key, bucket and value counts of one series.
            info(series: series) -> info: info = TreeInfo;
            /// One page of keys above `cursor` (from the first without one),
            /// ascending, with their totals; `limit` defaults to 100.
            keys(series: series, cursor: opt_uint, limit: opt_limit) -> page: page = TreeKeys;
            /// The largest counters, (key, value) largest first, over the range
            /// or all time; `limit` defaults to 50.
            top(series: series, limit: opt_limit, range: opt_range) -> top: pairs = TreeTop;
            /// The totals of a series, over the range or all time.
            summary(series: series, range: opt_range) -> summary: summary = TreeSummary;
            /// Retention: drops the buckets before `before` (YYYYMMDD), then
            /// compacts the series.
            delete_before(series: series, before: bucket) -> done: unit = DeleteBefore;
            /// Removes the empty counters of one series, or of every series
            /// without one.
            compact(series: opt_series) -> done: unit = SeriesCompact;
            /// Writes a snapshot of every series (and of the idempotency
            /// records), then truncates the write-ahead log.
            snapshot_all() -> done: unit = SnapshotCreateAll;
            /// `"pong"`.
            ping() -> pong: text = Ping;
            /// The `system.health` object.
            health() -> health: json = Health;
            /// The `system.stats` object.
            stats() -> stats: json = Stats;
            /// The Prometheus text of `system.metrics`.
            metrics() -> metrics: text = Metrics;
        }
    };
    ($($callback:tt)+) => {
        $crate::for_each_method! { @with [] $($callback)+ }
    };
}

/// The Rust type of an argument kind of the [`for_each_method!`] table.
///
/// | kind | type | meaning |
/// | --- | --- | --- |
/// | `series` | `&str` | a series name |
/// | `opt_series` | `Option<&str>` | a series name, or all series |
/// | `key` | `u64` | a counter key |
/// | `opt_key` | `Option<u64>` | a counter key, or every counter |
/// | `uint` | `u64` | an amount or a limit |
/// | `opt_uint` | `Option<u64>` | an optional number (a cursor) |
/// | `bucket` | `u64` | a day, YYYYMMDD |
/// | `opt_bucket` | `Option<u64>` | a day, or today (UTC) |
/// | `opt_limit` | `Option<usize>` | a page size, or the default |
/// | `window` | [`Window`](crate::Window) | a quota window |
/// | `range` | [`Range`](crate::Range) | an inclusive range of days |
/// | `opt_range` | `Option<Range>` | a range, or every bucket |
/// | `keys` | `&[u64]` | counter keys |
/// | `items` | `&[Item]` | `[key, bucket, value]` items |
/// | `series_keys` | `&[(&str, u64)]` | (series, key) pairs |
#[macro_export]
macro_rules! arg_type {
    (series) => { &str };
    (opt_series) => { ::core::option::Option<&str> };
    (key) => { u64 };
    (opt_key) => { ::core::option::Option<u64> };
    (uint) => { u64 };
    (opt_uint) => { ::core::option::Option<u64> };
    (bucket) => { u64 };
    (opt_bucket) => { ::core::option::Option<u64> };
    (opt_limit) => { ::core::option::Option<usize> };
    (window) => { $crate::Window };
    (range) => { $crate::Range };
    (opt_range) => { ::core::option::Option<$crate::Range> };
    (keys) => { &[u64] };
    (items) => { &[$crate::Item] };
    (series_keys) => { &[(&str, u64)] };
}

/// The Rust type of a result kind of the [`for_each_method!`] table.
///
/// | kind | type |
/// | --- | --- |
/// | `unit` | `()` |
/// | `uint` | `u64` |
/// | `count` | `usize` |
/// | `counts` | `(usize, usize)`: (done, missing) |
/// | `uints` | `Vec<u64>`, one per input item |
/// | `pairs` | `Vec<(u64, u64)>` |
/// | `quota` | [`Quota`](crate::Quota) |
/// | `names` | `Vec<String>` |
/// | `info` | [`TreeInfo`](crate::TreeInfo) |
/// | `page` | [`KeysPage`](crate::KeysPage) |
/// | `summary` | [`Summary`](crate::Summary) |
/// | `text` | `String` |
/// | `json` | [`Value`](crate::api::Value) |
#[macro_export]
macro_rules! ret_type {
    (unit) => { () };
    (uint) => { u64 };
    (count) => { usize };
    (counts) => { (usize, usize) };
    (uints) => { ::std::vec::Vec<u64> };
    (pairs) => { ::std::vec::Vec<(u64, u64)> };
    (quota) => { $crate::Quota };
    (names) => { ::std::vec::Vec<::std::string::String> };
    (info) => { $crate::TreeInfo };
    (page) => { $crate::KeysPage };
    (summary) => { $crate::Summary };
    (text) => { ::std::string::String };
    (json) => { $crate::api::Value };
}
