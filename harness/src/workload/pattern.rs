//! Hot/cold access patterns over the buffer's 4 KiB pages.
//!
//! Pages are ranked: ranks `0..hot` are the hot set, and rank `r` lives on
//! page `(r + shift) % pages`, so moving the hot set (`shift += hot`) puts
//! it on pages that were cold. A distribution weighs the ranks:
//!
//! - `sweep`: each worker walks its slice of the hot set at a stride (the
//!   pmbench-free, prefetch-friendly case; every access is hot);
//! - `hot-cold`: `hot_share` of the accesses fall uniformly on the hot set,
//!   the rest uniformly on the cold pages (10% of pages taking 90%);
//! - `uniform`: every page alike;
//! - `gaussian`: a normal around the middle of the hot set, sized so that
//!   `hot_share` of its mass falls inside the hot set;
//! - `zipf`: rank `r` weighs `1 / (r + 1)^theta`.
//!
//! An access draws a rank (one wyrand draw and, for gaussian and zipf, one
//! lookup in a 2^16-entry quantile table, uniform between two entries),
//! then one random cache line of that page, and reads (or, per the mix,
//! writes) one word. Words are accessed with relaxed atomics: workers may
//! meet on a word, and that must not be a data race.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use super::clock::AccessClock;
use super::histogram::Histogram;
use crate::buffer::BASE_PAGE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PatternKind {
    /// Each worker sweeps its slice of the hot set at --stride
    Sweep,
    /// --hot-share of the accesses on the hot set, the rest on cold pages
    HotCold,
    /// Every page equally likely
    Uniform,
    /// Normal around the hot set's middle; --hot-share of it inside the hot set
    Gaussian,
    /// Zipf over page ranks, 1/(rank+1)^--zipf-theta
    Zipf,
}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        f.write_str(
            self.to_possible_value()
                .expect("no skipped values")
                .get_name(),
        )
    }
}

/// Reads to writes, e.g. 3:1. A write is a load and a store of one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub reads: u32,
    pub writes: u32,
}

impl Mix {
    pub const READ_ONLY: Mix = Mix {
        reads: 1,
        writes: 0,
    };
}

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (r, w) = s
            .split_once(':')
            .and_then(|(r, w)| Some((r.trim().parse().ok()?, w.trim().parse().ok()?)))
            .ok_or_else(|| format!("bad mix {s:?}: write READS:WRITES, e.g. 3:1 or 1:0"))?;
        if r == 0 && w == 0 {
            return Err("mix 0:0 has no accesses: use e.g. 1:0 (read only) or 3:1".into());
        }
        Ok(Mix {
            reads: r,
            writes: w,
        })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.reads, self.writes)
    }
}

/// The pattern as asked for, before it meets a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PatternSpec {
    pub kind: PatternKind,
    pub hot_fraction: f64,
    pub hot_share: f64,
    pub zipf_theta: f64,
    /// Bytes between accesses of a sweep.
    pub stride: usize,
    pub mix: Mix,
}

impl PatternSpec {
    /// Checks the values a user typed; `flag` names them for the message
    /// (`--hot-fraction` on the command line, `hot_fraction` in a file).
    pub fn check(&self, buffer_bytes: usize, flag: &dyn Fn(&str) -> String) -> Result<(), String> {
        let pages = buffer_bytes / BASE_PAGE;
        if !(self.hot_fraction > 0.0 && self.hot_fraction <= 1.0) {
            return Err(format!(
                "{} {} is outside (0, 1]: give the share of the buffer that is hot, e.g. 0.1",
                flag("hot-fraction"),
                self.hot_fraction
            ));
        }
        if ((pages as f64) * self.hot_fraction) < 1.0 {
            return Err(format!(
                "{} {} of {pages} pages is less than one page: raise it or the size",
                flag("hot-fraction"),
                self.hot_fraction
            ));
        }
        let shared = matches!(self.kind, PatternKind::HotCold | PatternKind::Gaussian);
        if shared && !(self.hot_share > 0.0 && self.hot_share < 1.0) {
            return Err(format!(
                "{} {} must be inside (0, 1) for {}: the share of accesses on the hot set, e.g. 0.9",
                flag("hot-share"),
                self.hot_share,
                self.kind
            ));
        }
        if self.kind == PatternKind::HotCold && hot_pages(pages, self.hot_fraction) >= pages {
            return Err(format!(
                "{} {} leaves no cold pages for hot-cold: lower it (e.g. 0.1) or use --pattern uniform",
                flag("hot-fraction"),
                self.hot_fraction
            ));
        }
        if self.kind == PatternKind::Zipf && !(self.zipf_theta > 0.0 && self.zipf_theta <= 5.0) {
            return Err(format!(
                "{} {} is outside (0, 5]: typical values are 0.8 to 1.2",
                flag("zipf-theta"),
                self.zipf_theta
            ));
        }
        if self.kind == PatternKind::Sweep {
            if self.stride < 8 || self.stride % 8 != 0 {
                return Err(format!(
                    "{} {} must be a multiple of 8 bytes (one word per access), e.g. 64",
                    flag("stride"),
                    self.stride
                ));
            }
            let slice = hot_pages(pages, self.hot_fraction) * BASE_PAGE;
            if slice < self.stride {
                return Err(format!(
                    "{} {} is larger than the hot set ({slice} bytes): lower it or raise {}",
                    flag("stride"),
                    self.stride,
                    flag("hot-fraction")
                ));
            }
        }
        Ok(())
    }
}

fn hot_pages(pages: usize, fraction: f64) -> usize {
    ((pages as f64 * fraction) as usize).clamp(1, pages.max(1))
}

/// Entries of the quantile table (plus one end marker).
const TABLE_BITS: u32 = 16;

#[derive(Debug, Clone)]
enum Ranks {
    /// Sweeps do not draw ranks.
    Sweep,
    Uniform,
    /// Hot with probability `threshold / 2^64`.
    HotCold {
        threshold: u64,
    },
    /// `table[b]..table[b + 1]`: the ranks of quantile bucket `b`.
    Table(Box<[u32]>),
}

/// A pattern laid over a buffer of `pages` 4 KiB pages.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub spec: PatternSpec,
    pub pages: usize,
    pub hot: usize,
    ranks: Ranks,
    /// The share of accesses the distribution puts on the hot set.
    pub expected_hot_share: f64,
}

#[inline(always)]
fn mul_hi(x: u64, n: u64) -> u64 {
    ((x as u128 * n as u128) >> 64) as u64
}

/// wyrand: one multiply per draw, good enough statistics for page choice.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    #[inline(always)]
    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128) * ((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        (t >> 64) as u64 ^ t as u64
    }
}

impl Pattern {
    pub fn new(spec: PatternSpec, buffer_bytes: usize) -> Self {
        let pages = (buffer_bytes / BASE_PAGE).max(1);
        let hot = hot_pages(pages, spec.hot_fraction);
        let (ranks, expected) = match spec.kind {
            PatternKind::Sweep => (Ranks::Sweep, 1.0),
            PatternKind::Uniform => (Ranks::Uniform, hot as f64 / pages as f64),
            PatternKind::HotCold => (
                Ranks::HotCold {
                    threshold: (spec.hot_share * 2f64.powi(64)) as u64,
                },
                spec.hot_share,
            ),
            PatternKind::Gaussian => {
                // P(|X - c| <= hot/2) = share  <=>  hot/2 = sigma * sqrt(2) * erfinv(share)
                let half = hot as f64 / 2.0;
                let sigma = half / (2f64.sqrt() * statrs::function::erf::erf_inv(spec.hot_share));
                let weights: Vec<f64> = (0..pages)
                    .map(|r| {
                        // Distance from the centre, wrapped: the tails fold
                        // onto the other end of the buffer.
                        let mut d = (r as f64 + 0.5 - half).abs();
                        d = d.min(pages as f64 - d);
                        (-d * d / (2.0 * sigma * sigma)).exp()
                    })
                    .collect();
                table(&weights, hot)
            }
            PatternKind::Zipf => {
                let weights: Vec<f64> = (0..pages)
                    .map(|r| 1.0 / ((r + 1) as f64).powf(spec.zipf_theta))
                    .collect();
                table(&weights, hot)
            }
        };
        Pattern {
            spec,
            pages,
            hot,
            ranks,
            expected_hot_share: expected,
        }
    }

    /// One rank drawn from the distribution.
    #[inline(always)]
    pub fn draw(&self, rng: &mut Rng) -> usize {
        let (pages, hot) = (self.pages as u64, self.hot as u64);
        (match &self.ranks {
            Ranks::Uniform | Ranks::Sweep => mul_hi(rng.draw(), pages),
            Ranks::HotCold { threshold } => {
                if rng.draw() < *threshold {
                    mul_hi(rng.draw(), hot)
                } else {
                    hot + mul_hi(rng.draw(), pages - hot)
                }
            }
            Ranks::Table(t) => {
                let r = rng.draw();
                let b = (r >> (64 - TABLE_BITS)) as usize;
                let (lo, hi) = (t[b] as u64, t[b + 1] as u64);
                lo + mul_hi(r << TABLE_BITS, hi - lo + 1).min(hi - lo)
            }
        }) as usize
    }
}

/// The quantile table of `weights` (one per rank) and the share of the
/// weight on ranks `0..hot`.
fn table(weights: &[f64], hot: usize) -> (Ranks, f64) {
    let total: f64 = weights.iter().sum();
    let hot_w: f64 = weights[..hot].iter().sum();
    let n = 1usize << TABLE_BITS;
    let mut t = Vec::with_capacity(n + 1);
    let mut cum = 0.0;
    let mut r = 0usize;
    for b in 0..=n {
        let q = b as f64 / n as f64 * total;
        while r + 1 < weights.len() && cum + weights[r] <= q {
            cum += weights[r];
            r += 1;
        }
        t.push(r as u32);
    }
    (Ranks::Table(t.into_boxed_slice()), hot_w / total)
}

/// `x % n` for `x < 2n`, without a division on the access path (both
/// terms of every sum wrapped here are below `n`).
#[inline(always)]
fn wrap(x: usize, n: usize) -> usize {
    if x >= n {
        x - n
    } else {
        x
    }
}

/// What the workers share with the sampler.
#[derive(Default)]
pub struct Shared {
    pub accesses: AtomicU64,
    pub hot_accesses: AtomicU64,
    /// First page of the hot set (rank 0), below the page count.
    pub shift: AtomicUsize,
    pub stop: AtomicBool,
    pub latency: Histogram,
    /// The workers' thread ids, for their CPU times.
    pub tids: std::sync::Mutex<Vec<i32>>,
}

/// Accesses between updates of the shared counters (and checks of `stop`
/// and `shift`): keeps the shared lines out of the hot loop.
pub const BATCH: u64 = 4096;

/// One worker's loop.
pub struct Worker<'a> {
    pub pattern: &'a Pattern,
    pub shared: &'a Shared,
    pub clock: AccessClock,
    /// Time one access in this many (a power of two); 0: none.
    pub latency_every: u64,
    pub index: usize,
    pub workers: usize,
    pub seed: u64,
}

impl<'a> Worker<'a> {
    /// The only worker of a run, timing no access (conformance cases and
    /// tests).
    pub fn alone(pattern: &'a Pattern, shared: &'a Shared) -> Self {
        Worker {
            pattern,
            shared,
            clock: AccessClock::calibrate(std::time::Duration::from_millis(1)),
            latency_every: 0,
            index: 0,
            workers: 1,
            seed: 1,
        }
    }

    /// Runs until `shared.stop`. Returns a value derived from every load.
    ///
    /// # Safety
    /// `base` must point to `pattern.pages * 4096` bytes, mapped and
    /// writable for the whole call, that only atomics access meanwhile.
    pub unsafe fn run(&self, base: *mut u8) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let p = self.pattern;
            let mask = self.latency_every.wrapping_sub(1);
            let timed = self.latency_every > 0;
            let (mix_n, reads) = (
                (p.spec.mix.reads + p.spec.mix.writes) as u64,
                p.spec.mix.reads as u64,
            );
            let mut rng =
                Rng::new(self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ self.index as u64);
            let mut sum = 0u64;
            let mut n = 0u64;
            let mut mix_i = 0u64;
            // Sweep state: this worker's slice of the hot set, in bytes.
            let hot_bytes = p.hot * BASE_PAGE;
            let stride = p.spec.stride.max(8);
            let slice = (hot_bytes / self.workers).max(stride) / 8 * 8;
            let slice_start = (self.index * slice).min(hot_bytes.saturating_sub(slice));
            let mut sweep_off = 0usize;
            let len = p.pages * BASE_PAGE;
            loop {
                let shift = self.shared.shift.load(Ordering::Relaxed);
                let mut hot_n = 0u64;
                for _ in 0..BATCH {
                    let (off, is_hot) = if let Ranks::Sweep = p.ranks {
                        let o = wrap(shift * BASE_PAGE + slice_start + sweep_off, len);
                        sweep_off += stride;
                        if sweep_off + 8 > slice {
                            sweep_off = 0;
                        }
                        (o, true)
                    } else {
                        let rank = p.draw(&mut rng);
                        let page = wrap(rank + shift, p.pages);
                        let line = (rng.draw() >> 58) as usize;
                        (page * BASE_PAGE + line * 64, rank < p.hot)
                    };
                    hot_n += is_hot as u64;
                    let word = AtomicU64::from_ptr(base.add(off) as *mut u64);
                    let write = mix_i >= reads;
                    mix_i += 1;
                    if mix_i == mix_n {
                        mix_i = 0;
                    }
                    if timed && n & mask == 0 {
                        let t0 = self.clock.start();
                        let v = word.load(Ordering::Relaxed);
                        if write {
                            word.store(v.wrapping_add(1), Ordering::Relaxed);
                        }
                        let t1 = self.clock.end();
                        self.shared.latency.record(self.clock.ns(t0, t1));
                        sum = sum.wrapping_add(v);
                    } else {
                        let v = word.load(Ordering::Relaxed);
                        if write {
                            word.store(v.wrapping_add(1), Ordering::Relaxed);
                        }
                        sum = sum.wrapping_add(v);
                    }
                    n += 1;
                }
                self.shared.accesses.fetch_add(BATCH, Ordering::Relaxed);
                self.shared.hot_accesses.fetch_add(hot_n, Ordering::Relaxed);
                if self.shared.stop.load(Ordering::Relaxed) {
                    return sum;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: PatternKind) -> PatternSpec {
        PatternSpec {
            kind,
            hot_fraction: 0.1,
            hot_share: 0.9,
            zipf_theta: 1.0,
            stride: 64,
            mix: Mix {
                reads: 0,
                writes: 1,
            },
        }
    }

    /// Runs `accesses` (rounded to batches) of the pattern over `pages`
    /// pages with every access writing, then counts the increments on each
    /// page of the buffer itself: the counting does not trust the workers.
    fn per_page_counts(spec: PatternSpec, pages: usize, batches: u64, shift: usize) -> Vec<u64> {
        let mut buf = vec![0u64; pages * 512];
        let pattern = Pattern::new(spec, pages * BASE_PAGE);
        let shared = Shared::default();
        shared.shift.store(shift, Ordering::Relaxed);
        let w = Worker::alone(&pattern, &shared);
        // Stop after the wanted number of batches: a second thread flips
        // stop once the count is reached.
        let base = buf.as_mut_ptr() as usize;
        std::thread::scope(|s| {
            s.spawn(|| {
                while shared.accesses.load(Ordering::Relaxed) < (batches - 1) * BATCH {
                    std::hint::spin_loop();
                }
                shared.stop.store(true, Ordering::Relaxed);
            });
            // SAFETY: buf holds pages * 4096 bytes and only atomics touch it.
            unsafe { w.run(base as *mut u8) };
        });
        let total = shared.accesses.load(Ordering::Relaxed);
        let counts: Vec<u64> = buf.chunks(512).map(|p| p.iter().sum()).collect();
        assert_eq!(counts.iter().sum::<u64>(), total, "every access wrote once");
        counts
    }

    fn share(counts: &[u64], pages: std::ops::Range<usize>) -> f64 {
        let n = counts.len();
        let hot: u64 = pages.map(|p| counts[p % n]).sum();
        hot as f64 / counts.iter().sum::<u64>() as f64
    }

    #[test]
    fn the_hot_set_receives_its_share_counted_in_the_buffer() {
        let pages = 1000;
        let c = per_page_counts(spec(PatternKind::HotCold), pages, 500, 0);
        let s = share(&c, 0..100);
        assert!((s - 0.9).abs() < 0.005, "hot share {s}");
        // After a move that wraps around the end, the hot set is pages
        // 950..1050 (mod 1000).
        let c = per_page_counts(spec(PatternKind::HotCold), pages, 500, 950);
        let s = share(&c, 950..1050);
        assert!((s - 0.9).abs() < 0.005, "moved hot share {s}");
        // Cold pages all get some: the cold side is uniform.
        assert!(c[500] > 0);
    }

    #[test]
    fn every_distribution_keeps_its_promise() {
        let pages = 2000;
        for kind in [
            PatternKind::Uniform,
            PatternKind::Gaussian,
            PatternKind::Zipf,
        ] {
            let p = Pattern::new(spec(kind), pages * BASE_PAGE);
            let c = per_page_counts(spec(kind), pages, 500, 0);
            let s = share(&c, 0..p.hot);
            assert!(
                (s - p.expected_hot_share).abs() < 0.01,
                "{kind}: measured {s}, promised {}",
                p.expected_hot_share
            );
            if kind == PatternKind::Zipf {
                let ratio = c[0] as f64 / c[1] as f64;
                assert!((ratio - 2.0).abs() < 0.15, "zipf rank 0 / rank 1 = {ratio}");
            }
        }
        let g = Pattern::new(spec(PatternKind::Gaussian), pages * BASE_PAGE);
        assert!((g.expected_hot_share - 0.9).abs() < 0.01);
    }

    #[test]
    fn a_sweep_touches_its_slice_evenly() {
        let mut s = spec(PatternKind::Sweep);
        s.stride = 4096;
        let c = per_page_counts(s, 1000, 10, 0);
        let hot = &c[..100];
        assert!(hot.iter().all(|&v| v > 0));
        assert!(hot.iter().max().unwrap() - hot.iter().min().unwrap() <= 1);
        assert!(c[100..].iter().all(|&v| v == 0));
    }

    #[test]
    fn bad_patterns_are_refused() {
        let flag = |n: &str| format!("--{n}");
        let size = 1000 * BASE_PAGE;
        let mut s = spec(PatternKind::HotCold);
        s.hot_fraction = 1.0;
        assert!(s.check(size, &flag).unwrap_err().contains("no cold pages"));
        s.hot_fraction = 0.0001;
        assert!(s
            .check(size, &flag)
            .unwrap_err()
            .contains("less than one page"));
        s.hot_fraction = 1.5;
        assert!(s.check(size, &flag).unwrap_err().contains("outside (0, 1]"));
        let mut s = spec(PatternKind::Gaussian);
        s.hot_share = 1.0;
        assert!(s.check(size, &flag).unwrap_err().contains("--hot-share"));
        let mut s = spec(PatternKind::Zipf);
        s.zipf_theta = 0.0;
        assert!(s.check(size, &flag).unwrap_err().contains("--zipf-theta"));
        let mut s = spec(PatternKind::Sweep);
        s.hot_fraction = 0.001;
        s.stride = 8192;
        assert!(s
            .check(size, &flag)
            .unwrap_err()
            .contains("larger than the hot set"));
        assert!("3:1".parse::<Mix>().is_ok());
        assert!("0:0".parse::<Mix>().is_err());
        assert!("x".parse::<Mix>().is_err());
    }
}
