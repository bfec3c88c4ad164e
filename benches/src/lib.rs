//! Shared helpers of the benchmark binaries (`karma-load`, `karma-durability`,
//! `karma-memory`, `karma-idempotency`).

#![forbid(unsafe_code)]

/// Linear sub-buckets per power of two: 2^7 = 128, so a recorded value is
/// reported within 1/128 (< 0.8%) of what was measured.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Values 0..128 map 1:1, then 57 octaves (2^7 .. 2^64) of 128 buckets each.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A log-linear latency histogram of `u64` values (nanoseconds here), in the
/// spirit of HdrHistogram: fixed memory (7,424 counters), O(1) recording,
/// mergeable, relative error below 0.8% at any magnitude.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0, min: u64::MAX }
    }

    fn index(value: u64) -> usize {
        if value < SUB as u64 {
            return value as usize;
        }
        let msb = 63 - value.leading_zeros();
        let shift = msb - SUB_BITS;
        let sub = (value >> shift) as usize; // in SUB..2*SUB
        ((shift as usize + 1) << SUB_BITS) + (sub - SUB)
    }

    /// The smallest value that maps to bucket `index`, and the bucket width.
    fn bounds(index: usize) -> (u64, u64) {
        if index < SUB {
            return (index as u64, 1);
        }
        let shift = (index >> SUB_BITS) - 1;
        let sub = ((index & (SUB - 1)) + SUB) as u64;
        (sub << shift, 1u64 << shift)
    }

    pub fn record(&mut self, value: u64) {
        self.counts[Self::index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.min = self.min.min(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket that
    /// holds the ceil(q * n)-th smallest value, clamped to the recorded
    /// min/max (exactly min/max for the first/last rank). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        if rank == 1 {
            return self.min;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = Self::bounds(i);
                return (low + width / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Formats a count with thousands separators: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    let first = match digits.len() % 3 {
        0 => 3,
        n => n,
    };
    out.push_str(&digits[..first]);
    for group in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| b as char));
    }
    out
}

/// This process's resident set size in bytes (`VmRSS` of /proc/self/status,
/// which the kernel reports in KiB), or 0 where that file is unavailable.
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_monotonic_and_bounds_contain_the_value() {
        let mut last = 0;
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((0..64).map(|s| 1u64 << s));
        values.extend((1..64).map(|s| (1u64 << s) - 1));
        values.extend([u64::MAX, u64::MAX - 1, 123_456_789, 987_654_321_012]);
        values.sort_unstable();
        for v in values {
            let i = Histogram::index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last, "{v} not monotonic");
            last = i;
            let (low, width) = Histogram::bounds(i);
            assert!(low <= v && v - low < width, "{v} outside [{low}, +{width})");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.01, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.quantile(0.0), 1000);
        let mut other = Histogram::new();
        other.record(1);
        h.merge(&other);
        assert_eq!(h.count(), 10_001);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
