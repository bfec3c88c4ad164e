//! One (series, key) counter: its non-zero day buckets and a cached total.
//!
//! Buckets are kept in insertion order (Karma 1.0 shows them in that order in
//! `counter.series`) in a flat vector searched from the back, where the
//! newest days live. Almost every bucket is a `YYYYMMDD` date and almost every
//! daily value fits in 32 bits, so points are stored as two `u32` (8 bytes)
//! until one does not fit; then the counter widens to two `u64`.

/// Why a write was refused: it would push a bucket or the total past u64::MAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    total: u64,
    points: Points,
    /// Buckets were created in ascending order (the normal case: days go
    /// forward), so lookups can binary-search instead of scanning.
    ascending: bool,
}

impl Default for Counter {
    fn default() -> Counter {
        Counter { total: 0, points: Points::default(), ascending: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Points {
    Narrow(Vec<(u32, u32)>),
    Wide(Vec<(u64, u64)>),
}

impl Default for Points {
    fn default() -> Points {
        Points::Narrow(Vec::new())
    }
}

/// Grow by 1/8 instead of doubling: counters grow one day at a time and live
/// for years, so slack capacity is most of the memory bill.
#[inline]
fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(4));
    }
}

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    /// Rebuilds a counter from stored points (a snapshot); the total is taken
    /// as stored, as Karma 1.0 does.
    pub fn from_parts(total: u64, points: impl IntoIterator<Item = (u64, u64)>) -> Counter {
        let mut c = Counter { total, ..Counter::default() };
        for (b, v) in points {
            if v != 0 {
                c.push_new(b, v);
            }
        }
        c
    }

    #[inline]
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn bucket_count(&self) -> usize {
        match &self.points {
            Points::Narrow(p) => p.len(),
            Points::Wide(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bucket_count() == 0
    }

    /// The value of one bucket (0 when absent).
    #[inline]
    pub fn get(&self, bucket: u64) -> u64 {
        self.position(bucket).map_or(0, |i| self.value_at(i))
    }

    /// Whether adding `value` to `bucket` keeps bucket and total within u64.
    #[inline]
    pub fn check_add(&self, bucket: u64, value: u64) -> Result<(), Overflow> {
        self.total.checked_add(value).ok_or(Overflow)?;
        self.get(bucket).checked_add(value).ok_or(Overflow)?;
        Ok(())
    }

    /// Adds `value` to `bucket`, refusing (and changing nothing) on overflow.
    #[inline]
    pub fn add(&mut self, bucket: u64, value: u64) -> Result<(), Overflow> {
        if value == 0 {
            return Ok(());
        }
        let total = self.total.checked_add(value).ok_or(Overflow)?;
        match self.position(bucket) {
            Some(i) => {
                let v = self.value_at(i).checked_add(value).ok_or(Overflow)?;
                self.set_at(i, v);
            }
            None => self.push_new(bucket, value),
        }
        self.total = total;
        Ok(())
    }

    /// Subtracts up to `value` from `bucket`, removing it when it reaches 0.
    /// Returns what was actually removed.
    pub fn subtract(&mut self, bucket: u64, value: u64) -> u64 {
        let Some(i) = self.position(bucket) else { return 0 };
        let current = self.value_at(i);
        let removed = if current > value {
            self.set_at(i, current - value);
            value
        } else {
            self.remove_at(i);
            current
        };
        self.total = self.total.saturating_sub(removed);
        removed
    }

    /// Sets `bucket` to exactly `value` (0 removes it).
    pub fn set(&mut self, bucket: u64, value: u64) {
        let old = match self.position(bucket) {
            Some(i) if value == 0 => {
                let old = self.value_at(i);
                self.remove_at(i);
                old
            }
            Some(i) => {
                let old = self.value_at(i);
                self.set_at(i, value);
                old
            }
            None if value == 0 => 0,
            None => {
                self.push_new(bucket, value);
                0
            }
        };
        self.total = self.total.wrapping_sub(old).wrapping_add(value);
    }

    /// Sum of buckets with `from <= bucket <= to`.
    #[inline]
    pub fn sum_range(&self, from: u64, to: u64) -> u64 {
        match &self.points {
            Points::Narrow(p) => {
                if from > u64::from(u32::MAX) {
                    return 0;
                }
                let (f, t) = (from as u32, to.min(u64::from(u32::MAX)) as u32);
                p.iter()
                    .filter(|(b, _)| (f..=t).contains(b))
                    .fold(0u64, |acc, (_, v)| acc.saturating_add(u64::from(*v)))
            }
            Points::Wide(p) => {
                p.iter().filter(|(b, _)| (from..=to).contains(b)).fold(0u64, |acc, (_, v)| acc.saturating_add(*v))
            }
        }
    }

    /// Number of buckets with `from <= bucket <= to`.
    pub fn count_range(&self, from: u64, to: u64) -> usize {
        self.iter().filter(|(b, _)| (from..=to).contains(b)).count()
    }

    /// Removes every bucket in `from..=to`; returns how many were removed.
    pub fn remove_range(&mut self, from: u64, to: u64) -> usize {
        self.remove_where(|b| (from..=to).contains(&b))
    }

    /// Removes every bucket `< before`; returns how many were removed.
    pub fn remove_before(&mut self, before: u64) -> usize {
        self.remove_where(|b| b < before)
    }

    fn remove_where(&mut self, pred: impl Fn(u64) -> bool) -> usize {
        let mut removed_sum = 0u64;
        let removed = match &mut self.points {
            Points::Narrow(p) => {
                let before = p.len();
                p.retain(|&(b, v)| {
                    let gone = pred(u64::from(b));
                    if gone {
                        removed_sum = removed_sum.saturating_add(u64::from(v));
                    }
                    !gone
                });
                before - p.len()
            }
            Points::Wide(p) => {
                let before = p.len();
                p.retain(|&(b, v)| {
                    let gone = pred(b);
                    if gone {
                        removed_sum = removed_sum.saturating_add(v);
                    }
                    !gone
                });
                before - p.len()
            }
        };
        self.total = self.total.saturating_sub(removed_sum);
        removed
    }

    /// Removes every bucket (the counter stays, empty).
    pub fn clear(&mut self) {
        self.points = Points::default();
        self.total = 0;
        self.ascending = true;
    }

    /// Drops zero buckets and recomputes the total (saturating) from the rest.
    pub fn compact(&mut self) {
        self.remove_where(|_| false);
        let sum = self.iter().fold(0u64, |acc, (_, v)| acc.saturating_add(v));
        self.total = sum;
    }

    /// Buckets in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let (narrow, wide) = match &self.points {
            Points::Narrow(p) => (Some(p.iter().map(|&(b, v)| (u64::from(b), u64::from(v)))), None),
            Points::Wide(p) => (None, Some(p.iter().copied())),
        };
        narrow.into_iter().flatten().chain(wide.into_iter().flatten())
    }

    /// Heap bytes used by the points (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        match &self.points {
            Points::Narrow(p) => p.capacity() * 8,
            Points::Wide(p) => p.capacity() * 16,
        }
    }

    #[inline]
    fn position(&self, bucket: u64) -> Option<usize> {
        match &self.points {
            Points::Narrow(p) => {
                let b = u32::try_from(bucket).ok()?;
                if self.ascending {
                    p.binary_search_by_key(&b, |(pb, _)| *pb).ok()
                } else {
                    p.iter().rposition(|(pb, _)| *pb == b)
                }
            }
            Points::Wide(p) => {
                if self.ascending {
                    p.binary_search_by_key(&bucket, |(pb, _)| *pb).ok()
                } else {
                    p.iter().rposition(|(pb, _)| *pb == bucket)
                }
            }
        }
    }

    #[inline]
    fn value_at(&self, i: usize) -> u64 {
        match &self.points {
            Points::Narrow(p) => u64::from(p[i].1),
            Points::Wide(p) => p[i].1,
        }
    }

    #[inline]
    fn set_at(&mut self, i: usize, value: u64) {
        if let Points::Narrow(p) = &mut self.points {
            if let Ok(v) = u32::try_from(value) {
                p[i].1 = v;
                return;
            }
            self.widen();
        }
        if let Points::Wide(p) = &mut self.points {
            p[i].1 = value;
        }
    }

    fn remove_at(&mut self, i: usize) {
        match &mut self.points {
            Points::Narrow(p) => {
                p.remove(i);
            }
            Points::Wide(p) => {
                p.remove(i);
            }
        }
    }

    #[inline]
    fn push_new(&mut self, bucket: u64, value: u64) {
        if self.ascending {
            let last = match &self.points {
                Points::Narrow(p) => p.last().map(|(b, _)| u64::from(*b)),
                Points::Wide(p) => p.last().map(|(b, _)| *b),
            };
            if last.is_some_and(|l| l >= bucket) {
                self.ascending = false;
            }
        }
        if let Points::Narrow(p) = &mut self.points {
            if let (Ok(b), Ok(v)) = (u32::try_from(bucket), u32::try_from(value)) {
                reserve_one(p);
                p.push((b, v));
                return;
            }
            self.widen();
        }
        if let Points::Wide(p) = &mut self.points {
            reserve_one(p);
            p.push((bucket, value));
        }
    }

    fn widen(&mut self) {
        if let Points::Narrow(p) = &self.points {
            let wide: Vec<(u64, u64)> = p.iter().map(|&(b, v)| (u64::from(b), u64::from(v))).collect();
            self.points = Points::Wide(wide);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_subtract_set_keep_total_consistent() {
        let mut c = Counter::new();
        c.add(20260410, 4).unwrap();
        c.add(20260408, 6).unwrap();
        assert_eq!(c.total(), 10);
        assert_eq!(c.subtract(20260408, 10), 6);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![(20260410, 4)]);
        c.set(20260410, 0);
        assert!(c.is_empty());
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn widens_for_large_values_and_buckets() {
        let mut c = Counter::new();
        c.add(1, 1).unwrap();
        c.add(1, u64::from(u32::MAX)).unwrap();
        c.add(u64::MAX, 5).unwrap();
        assert_eq!(c.get(1), u64::from(u32::MAX) + 1);
        assert_eq!(c.get(u64::MAX), 5);
        assert_eq!(c.total(), u64::from(u32::MAX) + 6);
    }

    #[test]
    fn overflow_changes_nothing() {
        let mut c = Counter::new();
        c.add(1, u64::MAX - 1).unwrap();
        assert_eq!(c.add(2, 2), Err(Overflow));
        assert_eq!(c.add(1, 2), Err(Overflow));
        assert_eq!(c.total(), u64::MAX - 1);
        assert_eq!(c.bucket_count(), 1);
        c.add(2, 1).unwrap();
        assert_eq!(c.total(), u64::MAX);
    }

    #[test]
    fn lookups_work_in_and_out_of_order() {
        let mut c = Counter::new();
        for b in [20260101, 20260102, 20260105] {
            c.add(b, 1).unwrap();
        }
        assert_eq!(c.get(20260102), 1);
        c.add(20260103, 5).unwrap();
        c.add(20260102, 1).unwrap();
        assert_eq!(c.get(20260102), 2);
        assert_eq!(c.get(20260103), 5);
        assert_eq!(c.iter().map(|(b, _)| b).collect::<Vec<_>>(), vec![20260101, 20260102, 20260105, 20260103]);
        c.subtract(20260105, 1);
        assert_eq!(c.get(20260103), 5);
        assert_eq!(c.total(), 8);
    }

    #[test]
    fn ranges() {
        let mut c = Counter::new();
        for (b, v) in [(20260301, 1), (20260305, 2), (20260310, 3)] {
            c.add(b, v).unwrap();
        }
        assert_eq!(c.sum_range(20260302, 20260310), 5);
        assert_eq!(c.remove_range(20260301, 20260305), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.remove_before(20260311), 1);
        assert_eq!(c.total(), 0);
    }

    proptest::proptest! {
        /// The packed, maybe-ascending representation behaves like a plain map.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..4, 0u64..12, 1u64..5_000_000_000), 0..200)) {
            let mut c = Counter::new();
            let mut model = std::collections::BTreeMap::<u64, u64>::new();
            for (op, b, v) in ops {
                let bucket = 20260100 + b;
                match op {
                    0 => {
                        c.add(bucket, v).unwrap();
                        *model.entry(bucket).or_default() += v;
                    }
                    1 => {
                        c.subtract(bucket, v / 2);
                        if let Some(x) = model.get_mut(&bucket) {
                            if *x > v / 2 { *x -= v / 2 } else { model.remove(&bucket); }
                        }
                    }
                    2 => {
                        c.set(bucket, v % 3);
                        if v % 3 == 0 { model.remove(&bucket); } else { model.insert(bucket, v % 3); }
                    }
                    _ => {
                        c.remove_range(bucket, bucket + 2);
                        model.retain(|k, _| !(bucket..=bucket + 2).contains(k));
                    }
                }
                let mut got: Vec<(u64, u64)> = c.iter().collect();
                got.sort();
                let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(c.total(), model.values().sum::<u64>());
                for b in 0..12 {
                    proptest::prop_assert_eq!(c.get(20260100 + b), model.get(&(20260100 + b)).copied().unwrap_or(0));
                }
            }
        }
    }
}
