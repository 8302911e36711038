//! A lock-free log-linear latency histogram: workers add samples with one
//! relaxed atomic increment, the sampler copies it every interval and takes
//! percentiles of the difference.
//!
//! Values below 16 ns have a bucket each; above, every power of two is
//! split into 16 equal buckets, so a bucket is at most 1/16 of its lower
//! bound wide. Percentiles report a bucket's upper bound (the value is at
//! most that), so they never flatter.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Covers up to 2^48 ns (about three days).
const MAX_EXP: u32 = 48;
const BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS) as u64 * SUB) as usize;

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = (63 - v.leading_zeros()).min(MAX_EXP - 1);
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    let b = SUB + (exp - SUB_BITS) as u64 * SUB + sub;
    (b as usize).min(BUCKETS - 1)
}

/// The largest value a bucket holds.
fn upper_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let exp = (b - SUB) / SUB + SUB_BITS as u64;
    let sub = (b - SUB) % SUB;
    let width = 1u64 << (exp - SUB_BITS as u64);
    (1u64 << exp) + (sub + 1) * width - 1
}

pub struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&self, ns: u64) {
        self.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// A copy of the counts so far.
    pub fn snapshot(&self) -> Counts {
        Counts {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// Counts of a histogram at one moment; differences give an interval's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    counts: Vec<u64>,
    max: u64,
}

/// Percentiles of one interval, in ns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Counts {
    /// What was recorded between `earlier` and `self`. The maximum is the
    /// largest bucket bound seen in the interval (the exact one when the
    /// run-wide maximum fell in it).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(a, b)| a - b)
            .collect();
        let top = counts.iter().rposition(|&c| c > 0);
        let max = match top {
            Some(b) if bucket_of(self.max) == b => self.max,
            Some(b) => upper_bound(b),
            None => 0,
        };
        Counts { counts, max }
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        let n: u64 = self.counts.iter().sum();
        if n == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for (b, &c) in self.counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper_bound(b).min(self.max);
                }
            }
            self.max
        };
        Some(Percentiles {
            samples: n,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_contains_it() {
        let mut v = 0u64;
        while v < 1 << 40 {
            let b = bucket_of(v);
            assert!(upper_bound(b) >= v, "{v} above bucket {b}");
            if b > 0 {
                assert!(upper_bound(b - 1) < v, "{v} belongs lower than {b}");
            }
            // Width at most 1/16 of the value.
            if v >= SUB {
                let lo = upper_bound(b - 1) + 1;
                assert!(upper_bound(b) - lo < lo / 16 + 1, "bucket {b} too wide");
            }
            v = v * 9 / 8 + 1;
        }
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_are_within_a_bucket() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p = h.snapshot().percentiles().unwrap();
        assert_eq!(p.samples, 1000);
        assert_eq!(p.max, 1000);
        for (got, want) in [(p.p50, 500), (p.p90, 900), (p.p99, 990)] {
            assert!(got >= want && got <= want + want / 16, "{got} vs {want}");
        }
    }

    #[test]
    fn an_interval_sees_only_its_own_samples() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(10_000);
        }
        let a = h.snapshot();
        for _ in 0..100 {
            h.record(100);
        }
        let d = h.snapshot().since(&a);
        let p = d.percentiles().unwrap();
        assert_eq!(p.samples, 100);
        assert!(p.p99 <= 103 && p.max <= 103, "{p:?}");
        assert!(h.snapshot().since(&h.snapshot()).percentiles().is_none());
    }
}
