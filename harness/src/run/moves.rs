//! Pages followed by identity through a variant's window: which of them a
//! mechanism moved, which way, whether they were hot, and which came back.
//!
//! The interval census draws a fresh sample every row, which estimates
//! where the hot set is but cannot tell a page that moved from one that did
//! not. A [`Tracker`] draws its sample once, at the start of the window, in
//! two strata of known size (hot set and the rest of the buffer), and asks
//! the kernel (`move_pages`) where each of those pages is every row; a page
//! whose tier changed between two rows moved. Each tracked page stands for
//! `stratum size / stratum sample` pages of the buffer, so the counts are
//! estimates of the buffer's totals, with a 95% interval, to hold against
//! the kernel's own counters (pgpromote_success, pgdemote_*).
//!
//! What a row cannot see: a page that moved and moved back between two
//! rows. Round trips shorter than the interval are not counted, so the
//! ping-pong figures are lower bounds.

use crate::report::quality::{Moves, Quality};
use crate::topology::{NodeId, NodeSet};

/// Pages a tracker follows at most, per stratum: one `move_pages` call of
/// up to 8192 pages a row, in runs of consecutive pages (a 256 MiB run's
/// sampler, census and tracker together, measured 1.9 ms of CPU a row
/// natively and 22 ms under TCG).
pub const TRACKED_PER_STRATUM: usize = 4096;

/// Which way a page moved between tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Promoted,
    Demoted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Fast,
    Slow,
}

/// A stratum of the sample: units drawn in runs of `run` consecutive ones
/// from a population of `population` units.
#[derive(Debug, Clone)]
struct Stratum {
    /// Index range into the tracker's units.
    range: std::ops::Range<usize>,
    population: u64,
    run: usize,
}

/// A fixed sample of the buffer's census units and each one's history.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Census-unit indices into the buffer.
    units: Vec<usize>,
    /// Buffer units each tracked unit stands for.
    weights: Vec<f64>,
    strata: Vec<Stratum>,
    /// Last tier each unit was seen on (absent and other nodes keep it).
    tier: Vec<Option<Tier>>,
    /// Each unit's last move, and when.
    last_move: Vec<Option<(Way, f64)>>,
    trips: Vec<u32>,
    /// Units promoted at least once in the window.
    promoted_once: Vec<bool>,
    round_trip_s: Vec<f64>,
    total: Moves,
}

impl Tracker {
    /// Draws up to `per_stratum` units of the hot set (`hot_units` from
    /// `first_hot`, wrapping) and as many of the rest of the `units`, each
    /// in runs of `run` consecutive units spread evenly from a random start.
    pub fn draw(
        units: usize,
        first_hot: usize,
        hot_units: usize,
        per_stratum: usize,
        run: usize,
    ) -> Tracker {
        let hot_units = hot_units.min(units);
        let cold_units = units - hot_units;
        let mut picked = Vec::new();
        let mut weights = Vec::new();
        let mut strata = Vec::new();
        for (first, size) in [(first_hot, hot_units), (first_hot + hot_units, cold_units)] {
            if size == 0 {
                continue;
            }
            let n = per_stratum.min(size);
            let run = run.clamp(1, n);
            let begin = picked.len();
            if n == size {
                // The whole stratum fits: every unit, no estimate.
                picked.extend((first..first + size).map(|u| u % units));
            } else {
                let runs = n / run;
                let step = size as f64 / runs as f64;
                let start = rand::random::<f64>() * (step - run as f64 + 1.0).max(0.0);
                for i in 0..runs {
                    let at = first + (start + i as f64 * step) as usize;
                    picked.extend((at..at + run).map(|u| u % units));
                }
            }
            let drawn = picked.len() - begin;
            weights.extend(std::iter::repeat_n(size as f64 / drawn as f64, drawn));
            strata.push(Stratum {
                range: begin..picked.len(),
                population: size as u64,
                run,
            });
        }
        let n = picked.len();
        Tracker {
            units: picked,
            weights,
            strata,
            tier: vec![None; n],
            last_move: vec![None; n],
            trips: vec![0; n],
            promoted_once: vec![false; n],
            round_trip_s: Vec::new(),
            total: Moves::default(),
        }
    }

    /// The census-unit indices to ask the kernel about, in the order
    /// [`Tracker::observe`] takes their answers.
    pub fn units(&self) -> &[usize] {
        &self.units
    }

    /// Takes in where each tracked unit is at `t_s` (`move_pages` answers:
    /// a node, or -errno for an absent page). `is_hot` says whether a unit
    /// is in the hot set now (it moves with `--move-hot-at`). The first
    /// call only records where the pages start.
    pub fn observe(
        &mut self,
        t_s: f64,
        status: &[i32],
        fast: &NodeSet,
        slow: &NodeSet,
        is_hot: impl Fn(usize) -> bool,
    ) -> Moves {
        debug_assert_eq!(status.len(), self.units.len());
        let mut m = Moves::default();
        let mut promoted = vec![false; self.units.len()];
        for (i, &s) in status.iter().enumerate() {
            let now = match NodeId::try_from(s) {
                Ok(n) if fast.contains(n) => Tier::Fast,
                Ok(n) if slow.contains(n) => Tier::Slow,
                _ => continue,
            };
            let Some(before) = self.tier[i].replace(now) else {
                continue;
            };
            let way = match (before, now) {
                (Tier::Slow, Tier::Fast) => Way::Promoted,
                (Tier::Fast, Tier::Slow) => Way::Demoted,
                _ => continue,
            };
            let (w, hot) = (self.weights[i], is_hot(self.units[i]));
            match (way, hot) {
                (Way::Promoted, true) => m.promoted_hot += w,
                (Way::Promoted, false) => m.promoted_cold += w,
                (Way::Demoted, true) => m.demoted_hot += w,
                (Way::Demoted, false) => m.demoted_cold += w,
            }
            promoted[i] = way == Way::Promoted;
            self.promoted_once[i] |= promoted[i];
            if let Some((last, at)) = self.last_move[i] {
                if last != way {
                    m.round_trips += w;
                    self.trips[i] += 1;
                    self.round_trip_s.push(t_s - at);
                }
            }
            self.last_move[i] = Some((way, t_s));
        }
        m.promoted_ci95 = self.ci95(&promoted);
        let t = &mut self.total;
        t.promoted_hot += m.promoted_hot;
        t.promoted_cold += m.promoted_cold;
        t.demoted_hot += m.demoted_hot;
        t.demoted_cold += m.demoted_cold;
        t.round_trips += m.round_trips;
        m
    }

    /// The window so far: totals, precision, ping-pong. The promoted
    /// total's interval is that of the pages promoted at least once.
    pub fn quality(&self) -> Quality {
        let mut moves = self.total.clone();
        moves.promoted_ci95 = self.ci95(&self.promoted_once);
        let mut trips = self.round_trip_s.clone();
        trips.sort_by(f64::total_cmp);
        Quality {
            precision: moves.precision(),
            pingpong_pages: self
                .trips
                .iter()
                .zip(&self.weights)
                .filter(|(t, _)| **t > 0)
                .fold(0.0, |sum, (_, w)| sum + w),
            round_trip_s_p50: median(&trips),
            tracked: self.units.len() as u64,
            moves,
        }
    }

    /// Half-width of the 95% interval of the estimated number of buffer
    /// units with `flag` set: per stratum the wider of the page-level
    /// (Wilson) and run-level interval, as the interval census does, the
    /// strata combined as independent.
    fn ci95(&self, flag: &[bool]) -> f64 {
        self.strata
            .iter()
            .map(|s| {
                let flags = &flag[s.range.clone()];
                let n = flags.len() as u64;
                let k = flags.iter().filter(|f| **f).count() as f64;
                let p = k / n as f64;
                let page = super::ci95_half_width(p, n, s.population);
                let shares: Vec<f64> = flags
                    .chunks(s.run)
                    .map(|c| c.iter().filter(|f| **f).count() as f64 / c.len() as f64)
                    .collect();
                let runs = super::cluster_ci95(&shares, s.population / s.run as u64);
                (page.max(runs) * s.population as f64).powi(2)
            })
            .sum::<f64>()
            .sqrt()
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(s: &str) -> NodeSet {
        s.parse().unwrap()
    }

    /// A tracker over given units, each standing for `w` units, in one
    /// stratum.
    fn tracker(units: Vec<usize>, w: f64) -> Tracker {
        let n = units.len();
        Tracker {
            weights: vec![w; n],
            strata: vec![Stratum {
                range: 0..n,
                population: (n as f64 * w) as u64,
                run: 1,
            }],
            tier: vec![None; n],
            last_move: vec![None; n],
            trips: vec![0; n],
            promoted_once: vec![false; n],
            round_trip_s: Vec::new(),
            total: Moves::default(),
            units,
        }
    }

    /// Four pages with known histories (node 0 fast, node 1 slow; pages 0
    /// and 1 hot): the counts, precision, round trips and their times are
    /// exact.
    #[test]
    fn synthetic_histories_give_exact_precision_and_ping_pong() {
        let (fast, slow) = (nodes("0"), nodes("1"));
        let mut t = tracker(vec![0, 1, 2, 3], 10.0);
        let hot = |u: usize| u < 2;
        let enoent = -libc::ENOENT;
        let rows: [(f64, [i32; 4]); 5] = [
            (0.0, [1, 1, 1, 0]),
            // hot 0 and cold 2 promoted; 3 demoted.
            (1.0, [0, 1, 0, 1]),
            // hot 1 promoted; 2 demoted again (round trip of 1.5 s); 3 absent.
            (2.5, [0, 0, 1, enoent]),
            // 3 back on fast (round trip of 3 s, absence skipped).
            (3.0, [0, 0, 1, 0]),
            // 0 demoted while hot.
            (4.0, [1, 0, 1, 0]),
        ];
        let per_row: Vec<Moves> = rows
            .iter()
            .map(|(at, s)| t.observe(*at, s, &fast, &slow, hot))
            .collect();
        assert_eq!(per_row[0].promoted(), 0.0, "the first row only records");
        assert_eq!(per_row[0].demoted_hot + per_row[0].demoted_cold, 0.0);
        assert_eq!(
            (
                per_row[1].promoted_hot,
                per_row[1].promoted_cold,
                per_row[1].demoted_cold
            ),
            (10.0, 10.0, 10.0)
        );
        assert_eq!(
            (
                per_row[2].promoted_hot,
                per_row[2].demoted_cold,
                per_row[2].round_trips
            ),
            (10.0, 10.0, 10.0)
        );
        assert_eq!(
            (per_row[3].promoted_cold, per_row[3].round_trips),
            (10.0, 10.0)
        );
        assert_eq!(
            (per_row[4].demoted_hot, per_row[4].round_trips),
            (10.0, 10.0)
        );
        let q = t.quality();
        assert_eq!(q.moves.promoted_hot, 20.0);
        assert_eq!(q.moves.promoted_cold, 20.0);
        assert_eq!(q.precision, Some(0.5));
        // Pages 0, 2 and 3 went both ways; 1 only up.
        assert_eq!(q.pingpong_pages, 30.0);
        // 1.5 s (page 2), 2 s (page 3: demoted at 1.0, back at 3.0), 3 s
        // (page 0: promoted at 1.0, demoted at 4.0).
        assert_eq!(q.round_trip_s_p50, Some(2.0));
        assert_eq!(q.tracked, 4);
    }

    /// Moves between two fast nodes, or to a node of neither tier, are not
    /// promotions or demotions.
    #[test]
    fn moves_within_a_tier_are_not_counted() {
        let (fast, slow) = (nodes("0,2"), nodes("1"));
        let mut t = tracker(vec![0, 1], 1.0);
        t.observe(0.0, &[0, 1], &fast, &slow, |_| true);
        let m = t.observe(1.0, &[2, 3], &fast, &slow, |_| true);
        assert_eq!(
            m,
            Moves {
                promoted_ci95: m.promoted_ci95,
                ..Moves::default()
            }
        );
    }

    /// The drawn sample: both strata, weights that add up to the buffer,
    /// hot units inside the hot set (wrapping past the end).
    #[test]
    fn the_sample_covers_both_strata_with_weights_summing_to_the_buffer() {
        let t = Tracker::draw(100_000, 95_000, 10_000, 4096, 32);
        let total: f64 = t.weights.iter().sum();
        assert!((total - 100_000.0).abs() < 1e-6, "{total}");
        let hot = &t.units[t.strata[0].range.clone()];
        assert!(hot.iter().all(|&u| !(5_000..95_000).contains(&u)));
        assert_eq!(t.strata.len(), 2);
        assert!(t.units.len() <= 2 * 4096);
        // A buffer smaller than the sample: every unit, weight 1.
        let small = Tracker::draw(64, 0, 16, 4096, 32);
        assert_eq!(small.units.len(), 64);
        assert!(small.weights.iter().all(|w| *w == 1.0));
    }

    /// With every tracked unit promoted the estimate is the population,
    /// and a full census has no interval.
    #[test]
    fn a_full_sample_has_no_interval() {
        let (fast, slow) = (nodes("0"), nodes("1"));
        let mut t = Tracker::draw(64, 0, 16, 4096, 8);
        t.observe(0.0, &[1; 64], &fast, &slow, |u| u < 16);
        let m = t.observe(1.0, &[0; 64], &fast, &slow, |u| u < 16);
        assert_eq!((m.promoted_hot, m.promoted_cold), (16.0, 48.0));
        assert_eq!(m.promoted_ci95, 0.0);
    }
}
