//! Memory per stored point: loads the 50,000 keys x 356 days profile into an
//! in-memory engine and reports bytes per point two ways:
//!
//! - live heap: bytes requested from the allocator and not yet freed, counted
//!   exactly by a wrapping global allocator (excludes malloc's own headers and
//!   rounding);
//! - RSS: resident pages from /proc/self/statm (includes them, and whatever
//!   the allocator keeps cached).
//!
//! Usage: `cargo run --release -p karma-benches --bin karma-memory [-- --key-major]`.
//! The default loads day by day (every key gets one new bucket per day, the way
//! live traffic grows a counter); `--key-major` loads each key's whole year at once.

// The few unsafe blocks (each with a SAFETY comment) are allowed one by one.
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use karma_engine::clock::{bucket_of_unix, days_from_civil};
use karma_engine::{Engine, Item};

const KEYS: u64 = 50_000;
const DAYS: u64 = 356;
const CHUNK: usize = 10_000;
const TARGET_BYTES_PER_POINT: f64 = 12.0;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// `System`, counting the bytes currently allocated through it.
struct Counting;

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly; the only addition is bookkeeping on two
// atomics, which neither allocates nor touches the returned memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence
        // from `System`) with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from `System` with `layout`
        // and that `new_size` is valid for `layout.align()`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // On failure the old block is untouched and still counted.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident set size in bytes (second field of /proc/self/statm, in pages).
#[allow(unsafe_code)]
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize =
        statm.split_whitespace().nth(1).and_then(|f| f.parse().ok()).expect("resident field of /proc/self/statm");
    // SAFETY: sysconf only reads a configuration value; _SC_PAGESIZE is always valid.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).expect("positive page size")
}

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

    let (live_before, rss_before) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let started = std::time::Instant::now();
    let mut expected_total = 0u64;
    let mut push = |chunk: &mut Vec<Item>, item: Item| {
        expected_total += item[2];
        chunk.push(item);
        if chunk.len() == CHUNK {
            engine.batch_add("api", chunk).expect("batch_add");
            chunk.clear();
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
    let (live_after, rss_after) = (LIVE.load(Ordering::Relaxed), rss_bytes());

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
    println!("peak live heap during load: {:.1} MiB", mb(PEAK.load(Ordering::Relaxed)));
    std::hint::black_box(&engine);
}
