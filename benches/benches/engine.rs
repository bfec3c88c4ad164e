//! In-process engine benches: the typed API (what the bindings call) against
//! `handle_line` (what the server runs per request line), on in-memory
//! engines (no WAL), so they measure the store, validation and JSON only.
//!
//! Run with `cargo bench -p karma-benches`; results and targets are recorded
//! in docs/benchmarks.md.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use karma_engine::clock::{bucket_day_number, bucket_of_unix};
use karma_engine::{Engine, Item, Options, Range, Session};

/// Keys written and read round-robin by the per-key benches.
const KEYS: u64 = 10_000;
/// Days of history per key in the "api" series (so a 30-day range is full).
const DAYS: u64 = 60;
/// The bucket every write bench adds to: the last day of the history.
const BUCKET: u64 = 20260501;
/// Items per batch request.
const BATCH: usize = 1_000;
/// Keys of the series `tree.summary` scans.
const SUMMARY_KEYS: u64 = 100_000;
/// Days per key of that series.
const SUMMARY_DAYS: u64 = 10;
/// Largest items-per-request the engine accepts (spec/protocol.md §13).
const MAX_ITEMS: usize = 10_000;

/// The `YYYYMMDD` bucket `back` days before `BUCKET`.
fn days_before(back: u64) -> u64 {
    let day = bucket_day_number(BUCKET).expect("BUCKET is a real date") as u64;
    bucket_of_unix((day - back) * 86_400)
}

/// Adds `items` through the typed API in requests of at most `MAX_ITEMS`.
fn load(engine: &Engine, series: &str, items: &[Item]) {
    for chunk in items.chunks(MAX_ITEMS) {
        engine.batch_add(series, chunk).expect("batch_add while loading");
    }
}

/// `keys` counters, each with `days` consecutive daily buckets ending at `BUCKET`.
fn history(keys: u64, days: u64) -> Vec<Item> {
    let buckets: Vec<u64> = (0..days).rev().map(days_before).collect();
    (0..keys).flat_map(|k| buckets.iter().map(move |&b| [k, b, 1 + (k + b) % 1000])).collect()
}

/// An engine whose "api" series holds `KEYS` keys x `DAYS` days.
fn api_engine(options: Options) -> Engine {
    let engine = Engine::open(options).expect("in-memory engine");
    load(&engine, "api", &history(KEYS, DAYS));
    engine
}

/// Like `Engine::in_memory()` but accepting 1,000-item request lines (the
/// default `max_request_bytes` of 4096 fits about 200 items).
fn wide_options() -> Options {
    Options { max_request_bytes: 1 << 20, ..Options::default() }
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
}

/// Runs one line and fails loudly if the engine answered with an error, so a
/// bench never silently measures the error path.
fn check_ok(engine: &Engine, line: &[u8]) {
    let reply = engine.handle_line(line, &Session::client());
    let text = String::from_utf8_lossy(&reply.bytes);
    assert!(text.starts_with(r#"{"protocol_version":2,"success":true,"#), "request failed: {text}");
}

fn items_line(op: &str, items: &[Item]) -> Vec<u8> {
    let body: Vec<String> = items.iter().map(|[k, b, v]| format!("[{k},{b},{v}]")).collect();
    format!(r#"{{"v":2,"op":"{op}","series":"api","items":[{}]}}"#, body.join(",")).into_bytes()
}

fn keys_line(op: &str, keys: &[u64]) -> Vec<u8> {
    let body: Vec<String> = keys.iter().map(u64::to_string).collect();
    format!(r#"{{"v":2,"op":"{op}","series":"api","keys":[{}]}}"#, body.join(",")).into_bytes()
}

/// `KEYS / BATCH` batches of `BATCH` items that together touch every key once.
fn write_batches() -> Vec<Vec<Item>> {
    (0..KEYS).map(|k| [k, BUCKET, 1]).collect::<Vec<Item>>().chunks(BATCH).map(<[Item]>::to_vec).collect()
}

fn single_key(c: &mut Criterion) {
    let engine = api_engine(Options::default());
    let session = Session::client();
    let month = Range { from: days_before(29), to: BUCKET };
    // Key 7's last 30 days, as `history` wrote them.
    let expected: u64 = history(8, 30).iter().filter(|i| i[0] == 7).map(|i| i[2]).sum();
    assert_eq!(engine.sum("api", 7, Some(month)).unwrap(), expected);

    let mut g = c.benchmark_group("engine");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));

    let mut k = 0u64;
    g.bench_function("typed increment", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            engine.increment("api", black_box(k), Some(BUCKET), 1).unwrap()
        })
    });
    g.bench_function("typed sum", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            engine.sum("api", black_box(k), None).unwrap()
        })
    });
    g.bench_function("typed sum 30-day range", |b| {
        b.iter(|| {
            k = if k + 1 == KEYS { 0 } else { k + 1 };
            engine.sum("api", black_box(k), Some(month)).unwrap()
        })
    });

    // Pre-built lines, one per key, so formatting is not measured.
    let increments: Vec<Vec<u8>> = (0..KEYS)
        .map(|k| {
            format!(r#"{{"v":2,"op":"counter.increment","series":"api","key":{k},"bucket":{BUCKET},"value":1}}"#)
                .into_bytes()
        })
        .collect();
    let sums: Vec<Vec<u8>> =
        (0..KEYS).map(|k| format!(r#"{{"v":2,"op":"counter.sum","series":"api","key":{k}}}"#).into_bytes()).collect();
    check_ok(&engine, &increments[7]);
    check_ok(&engine, &sums[7]);
    let mut i = 0usize;
    g.bench_function("handle_line increment", |b| {
        b.iter(|| {
            i = if i + 1 == increments.len() { 0 } else { i + 1 };
            engine.handle_line(black_box(&increments[i]), &session)
        })
    });
    g.bench_function("handle_line sum", |b| {
        b.iter(|| {
            i = if i + 1 == sums.len() { 0 } else { i + 1 };
            engine.handle_line(black_box(&sums[i]), &session)
        })
    });
    g.finish();
}

fn batches(c: &mut Criterion) {
    let engine = api_engine(wide_options());
    let session = Session::client();
    let batches = write_batches();
    let add_lines: Vec<Vec<u8>> = batches.iter().map(|b| items_line("series.batch_add", b)).collect();
    let key_sets: Vec<Vec<u64>> = batches.iter().map(|b| b.iter().map(|i| i[0]).collect()).collect();
    let sum_lines: Vec<Vec<u8>> = key_sets.iter().map(|k| keys_line("counter.batch_sum", k)).collect();
    check_ok(&engine, &add_lines[0]);
    check_ok(&engine, &sum_lines[0]);
    assert_eq!(engine.batch_sum("api", &key_sets[0], None).unwrap().len(), BATCH);

    let mut g = c.benchmark_group("engine batch");
    configure(&mut g);
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut i = 0usize;
    g.bench_function("typed batch_add 1000", |b| {
        b.iter(|| {
            i = (i + 1) % batches.len();
            engine.batch_add("api", black_box(&batches[i])).unwrap()
        })
    });
    g.bench_function("handle_line batch_add 1000", |b| {
        b.iter(|| {
            i = (i + 1) % add_lines.len();
            engine.handle_line(black_box(&add_lines[i]), &session)
        })
    });
    g.bench_function("typed batch_sum 1000", |b| {
        b.iter(|| {
            i = (i + 1) % key_sets.len();
            engine.batch_sum("api", black_box(&key_sets[i]), None).unwrap()
        })
    });
    g.bench_function("handle_line batch_sum 1000", |b| {
        b.iter(|| {
            i = (i + 1) % sum_lines.len();
            engine.handle_line(black_box(&sum_lines[i]), &session)
        })
    });
    g.finish();
}

fn summary(c: &mut Criterion) {
    let engine = Engine::open(Options { query_timeout: None, ..Options::default() }).expect("in-memory engine");
    load(&engine, "big", &history(SUMMARY_KEYS, SUMMARY_DAYS));
    let line = br#"{"v":2,"op":"tree.summary","series":"big"}"#;
    check_ok(&engine, line);
    let session = Session::client();

    let mut g = c.benchmark_group("engine scan");
    configure(&mut g);
    g.throughput(Throughput::Elements(SUMMARY_KEYS));
    g.bench_function("handle_line tree.summary 100k keys", |b| {
        b.iter(|| engine.handle_line(black_box(line), &session))
    });
    g.finish();
}

criterion_group!(benches, single_key, batches, summary);
criterion_main!(benches);
