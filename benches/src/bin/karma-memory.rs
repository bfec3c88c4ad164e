//! Memory per stored point: loads the 50,000 keys x 356 days profile into an
//! in-memory engine and reports bytes per point two ways:
//!
//! - live heap: bytes requested from the allocator and not yet freed, counted
//!   exactly by a wrapping global allocator (the `cap` crate; excludes
//!   malloc's own headers and rounding);
//! - RSS: resident memory from /proc/self/status (includes them, and whatever
//!   the allocator keeps cached).
//!
//! Usage: `cargo run --release -p karma-benches --bin karma-memory [-- --key-major]`.
//! The default loads day by day (every key gets one new bucket per day, the way
//! live traffic grows a counter); `--key-major` loads each key's whole year at once.

#![forbid(unsafe_code)]

use std::alloc::System;

use cap::Cap;
use karma_benches::rss_bytes;
use karma_engine::clock::{bucket_of_unix, days_from_civil};
use karma_engine::{Engine, Item};

const KEYS: u64 = 50_000;
const DAYS: u64 = 356;
const CHUNK: usize = 10_000;
const TARGET_BYTES_PER_POINT: f64 = 12.0;

/// `System`, counting the bytes currently allocated through it (no limit).
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn value(key: u64, day: u64) -> u64 {
    1 + (key * 7919 + day * 104_729) % 1000
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn main() {
    let key_major = std::env::args().any(|a| a == "--key-major");
    let first_day = days_from_civil(2025, 1, 1) as u64;
    let buckets: Vec<u64> = (0..DAYS).map(|d| bucket_of_unix((first_day + d) * 86_400)).collect();
    let mut chunk: Vec<Item> = Vec::with_capacity(CHUNK);
    let engine = Engine::in_memory();
    engine.create_series("api").expect("create series");

    let (live_before, rss_before) = (ALLOCATOR.allocated(), rss_bytes());
    let started = std::time::Instant::now();
    let mut expected_total = 0u64;
    let mut peak = 0usize;
    let mut push = |chunk: &mut Vec<Item>, item: Item| {
        expected_total += item[2];
        chunk.push(item);
        if chunk.len() == CHUNK {
            engine.batch_add("api", chunk).expect("batch_add");
            chunk.clear();
            peak = peak.max(ALLOCATOR.allocated());
        }
    };
    if key_major {
        for key in 0..KEYS {
            for (d, &b) in buckets.iter().enumerate() {
                push(&mut chunk, [key, b, value(key, d as u64)]);
            }
        }
    } else {
        for (d, &b) in buckets.iter().enumerate() {
            for key in 0..KEYS {
                push(&mut chunk, [key, b, value(key, d as u64)]);
            }
        }
    }
    if !chunk.is_empty() {
        engine.batch_add("api", &chunk).expect("batch_add");
    }
    let elapsed = started.elapsed();
    let (live_after, rss_after) = (ALLOCATOR.allocated(), rss_bytes());

    let info = engine.info("api").expect("tree.info");
    let points = (KEYS * DAYS) as usize;
    assert_eq!(info.key_count, KEYS as usize, "key count");
    assert_eq!(info.bucket_count, points, "bucket count");
    assert_eq!(info.total, expected_total, "series total");

    let live = live_after - live_before;
    let rss = rss_after.saturating_sub(rss_before);
    let live_per_point = live as f64 / points as f64;
    let rss_per_point = rss as f64 / points as f64;
    let verdict = |b: f64| if b <= TARGET_BYTES_PER_POINT { "met" } else { "MISSED" };
    println!("profile: {KEYS} keys x {DAYS} days ({} .. {}), {} load", buckets[0], buckets[DAYS as usize - 1], {
        if key_major {
            "key-major"
        } else {
            "day-major"
        }
    });
    println!("points: {points}");
    println!(
        "load time: {:.2} s ({:.1} M points/s)",
        elapsed.as_secs_f64(),
        points as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "live heap: {:.1} MiB total, {live_per_point:.2} bytes/point (target <= {TARGET_BYTES_PER_POINT}: {})",
        mb(live),
        verdict(live_per_point)
    );
    println!(
        "RSS:       {:.1} MiB total, {rss_per_point:.2} bytes/point (target <= {TARGET_BYTES_PER_POINT}: {})",
        mb(rss),
        verdict(rss_per_point)
    );
    println!("peak live heap after a chunk during load: {:.1} MiB", mb(peak));
    std::hint::black_box(&engine);
}
