//! Results: the row types a run produces and the sinks that write them.
//! Measurement code fills rows; it never formats output. Column names are
//! derived in one place, [`Columns`], from the row type and from what this
//! machine has (its nodes, its kernel's counters).

pub mod characterisation;
pub mod compare;
pub mod csv;
pub mod note;
pub mod outdir;
pub mod plot;
pub mod progress;
pub mod quality;
pub mod schema;
pub mod table;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::mechanism::damon::{DamosStats, Role};
use crate::telemetry::vmstat::CounterId;
use crate::topology::NodeId;
use crate::workload::histogram::Percentiles;

/// Whether a row covers one sampling interval or a whole variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    Interval,
    Summary,
}

/// How a variant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    /// The kernel refused the policy (e.g. PREFERRED_MANY|NUMA_BALANCING
    /// before 6.10): nothing was measured, the notes say why.
    Unsupported,
    /// Stopped by a signal: the rows up to here are complete.
    Interrupted,
    /// An external program exited non-zero, was killed or timed out: the
    /// notes hold its exit and the tail of its output.
    Failed,
    /// An external program succeeded but its output held no score.
    NoScore,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Unsupported => "unsupported",
            Status::Interrupted => "interrupted",
            Status::Failed => "failed",
            Status::NoScore => "no-score",
        })
    }
}

/// One measured row. `None` cells are written empty: not measured, or the
/// kernel lacks the counter; never a made-up zero.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRow {
    pub kind: RowKind,
    pub variant: String,
    /// 1-based; variants are interleaved inside each iteration.
    pub iteration: u32,
    pub status: Status,
    /// Seconds since the measured window started, at the end of this row.
    pub t_s: f64,
    /// Seconds this row covers.
    pub span_s: f64,
    pub accesses: Option<u64>,
    pub accesses_per_s: Option<f64>,
    /// Share of the row's accesses that fell on the hot set, as counted by
    /// the workers.
    pub hot_access_share: Option<f64>,
    /// Per-access latency percentiles of the row (one access in
    /// `latency_every` timed), ns.
    pub latency: Option<Percentiles>,
    /// First page of the hot set (it moves with `--move-hot-at`).
    pub hot_first_page: Option<u64>,
    /// Pages (census unit) of the whole buffer on each node, in
    /// [`Columns::nodes`] order.
    pub pages_on: Vec<Option<u64>>,
    /// Pages of the hot set, and how many of them are on fast and on slow
    /// nodes.
    pub hot_pages: Option<u64>,
    pub hot_fast_pages: Option<u64>,
    pub hot_fast_share: Option<f64>,
    pub hot_slow_share: Option<f64>,
    /// Half-width of the 95% interval of `hot_fast_share` (0 for a full
    /// census; wider for a sampled one).
    pub hot_fast_share_ci95: Option<f64>,
    /// Census units `move_pages` examined for this row.
    pub census_pages: Option<u64>,
    /// Summary rows: how fast the hot set reached the fast tier.
    pub promotion: Option<Reached>,
    /// Counter deltas over the row, in [`Columns::counters`] order.
    pub counters: Vec<Option<u64>>,
    /// perf event counts (summary rows), in [`Columns::perf`] order.
    pub perf: Vec<Option<u64>>,
    /// An external program's cells (runs of `tierbench run -- COMMAND`).
    pub program: Option<ProgramCells>,
    /// DAMOS statistics by scheme role (`hot`, `cold`), cumulative since
    /// the variant's kdamonds started.
    pub damos: BTreeMap<&'static str, DamosStats>,
    /// Largest gap in points between a node's share of the buffer's pages
    /// and its share of the interleave weights.
    pub weight_error_pts: Option<f64>,
    /// What the tracked pages did in the row (interval rows), or in the
    /// window (summary rows).
    pub moves: Option<quality::Moves>,
    /// Summary rows: precision and ping-pong of the window.
    pub quality: Option<quality::Quality>,
    /// Summary rows: what the window cost.
    pub cost: Option<quality::Cost>,
    pub notes: Vec<Note>,
}

/// What a row says of an external program: where its memory was (every
/// row), and how it ended and scored (summary rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProgramCells {
    /// Resident anonymous KiB of the program's process group on each node,
    /// in [`Columns::nodes`] order, from `/proc/PID/numa_maps`.
    pub anon_kib_on: Vec<Option<u64>>,
    /// Share of that memory on the fast tier.
    pub fast_share: Option<f64>,
    /// Processes of the group the census read.
    pub procs: Option<u32>,
    /// Summary rows: the measured command's wall time, exit code (128 +
    /// signal when killed), CPU times and peak resident set.
    pub wall_s: Option<f64>,
    pub exit_code: Option<i32>,
    pub user_s: Option<f64>,
    pub sys_s: Option<f64>,
    pub max_rss_kib: Option<u64>,
    pub score: Option<f64>,
    pub score_unit: Option<String>,
    /// `--push-to-slow-at`: KiB that left the fast tier at the push, and
    /// the share of them back on it at the end.
    pub pushed_kib: Option<u64>,
    pub returned_share: Option<f64>,
}

impl SampleRow {
    /// A row with nothing measured yet.
    pub fn empty(kind: RowKind, variant: &str, iteration: u32, cols: &Columns) -> Self {
        Self {
            kind,
            variant: variant.to_string(),
            iteration,
            status: Status::Ok,
            t_s: 0.0,
            span_s: 0.0,
            accesses: None,
            accesses_per_s: None,
            hot_access_share: None,
            latency: None,
            hot_first_page: None,
            pages_on: vec![None; cols.nodes.len()],
            hot_pages: None,
            hot_fast_pages: None,
            hot_fast_share: None,
            hot_slow_share: None,
            hot_fast_share_ci95: None,
            census_pages: None,
            promotion: None,
            counters: vec![None; cols.counters.len()],
            perf: vec![None; cols.perf.len()],
            program: cols.program.then(|| ProgramCells {
                anon_kib_on: vec![None; cols.nodes.len()],
                ..ProgramCells::default()
            }),
            damos: BTreeMap::new(),
            weight_error_pts: None,
            moves: None,
            quality: None,
            cost: None,
            notes: Vec::new(),
        }
    }
}

/// When the hot set first sat on the fast tier at 50% and at 90%, by the
/// interval censuses: seconds since the measured window started, at the
/// end of the first interval whose census reached the share (0 when the
/// census before the window already did), so the resolution is
/// `--interval`. `None` when never reached; `peak` is then the most it
/// reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reached {
    pub half_s: Option<f64>,
    pub ninety_s: Option<f64>,
    pub peak: Option<f64>,
}

impl Reached {
    /// Takes in a census share seen at `t_s`.
    pub fn observe(&mut self, t_s: f64, share: f64) {
        self.peak = Some(self.peak.map_or(share, |p| p.max(share)));
        if self.half_s.is_none() && share >= 0.5 {
            self.half_s = Some(t_s);
        }
        if self.ninety_s.is_none() && share >= 0.9 {
            self.ninety_s = Some(t_s);
        }
    }

    /// `2.0s` per mark, or `never (peak 41%)`.
    pub fn times_text(&self) -> [String; 2] {
        [self.half_s, self.ninety_s].map(|t| match (t, self.peak) {
            (Some(t), _) => format!("{t:.1}s"),
            (None, Some(p)) => format!("never (peak {:.0}%)", p * 100.0),
            (None, None) => String::new(),
        })
    }
}

/// The variable part of the schema, fixed at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub nodes: Vec<NodeId>,
    pub counters: Vec<CounterId>,
    pub perf: Vec<crate::telemetry::perf::PerfEvent>,
    /// The workload is an external program: its columns are added.
    pub program: bool,
    /// A variant runs DAMON: each scheme's statistics are added.
    pub damon: bool,
    /// A variant sets interleave weights: the summary says how far the
    /// pages landed from them.
    pub weighted: bool,
    /// The built-in workers with a census: the tracked pages' moves and
    /// the window's cost are added.
    pub quality: bool,
}

pub use crate::stamp::utc_stamp;
pub use note::Note;
use schema::col;
pub use schema::SCHEMA_VERSION;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}
fn f3(v: Option<f64>) -> String {
    opt(v.map(|x| format!("{x:.4}")))
}

impl Columns {
    /// The header of the file that holds rows of `kind`: `summary.csv`
    /// (one row per variant and iteration) or `timeseries.csv` (one per
    /// interval).
    pub fn header(&self, kind: RowKind) -> Vec<String> {
        let mut h: Vec<String> = [col::VARIANT, col::ITERATION, col::STATUS]
            .map(String::from)
            .to_vec();
        match kind {
            RowKind::Interval => {
                h.extend([col::T_S, col::SPAN_S, col::HOT_FIRST_PAGE].map(String::from))
            }
            RowKind::Summary => h.push(col::SECONDS.into()),
        }
        h.extend(
            [
                col::ACCESSES,
                col::ACCESSES_PER_S,
                col::HOT_ACCESS_SHARE,
                col::LAT_SAMPLES,
                col::LAT_P50_NS,
                col::LAT_P90_NS,
                col::LAT_P99_NS,
                col::LAT_MAX_NS,
            ]
            .map(String::from),
        );
        h.extend(self.nodes.iter().map(|n| format!("pages_node{n}")));
        h.extend(
            [
                col::HOT_PAGES,
                col::HOT_FAST_PAGES,
                col::HOT_FAST_SHARE,
                col::HOT_SLOW_SHARE,
                col::HOT_FAST_SHARE_CI95,
                col::CENSUS_PAGES,
            ]
            .map(String::from),
        );
        if kind == RowKind::Summary {
            h.extend(
                [
                    col::TIME_TO_50PCT_S,
                    col::TIME_TO_90PCT_S,
                    col::HOT_FAST_SHARE_PEAK,
                ]
                .map(String::from),
            );
        }
        if self.program {
            h.extend(self.nodes.iter().map(|n| col::anon_kib_node(*n)));
            h.extend([col::ANON_FAST_SHARE, col::PROGRAM_PROCS].map(String::from));
            if kind == RowKind::Summary {
                h.extend(
                    [
                        col::WALL_S,
                        col::EXIT_CODE,
                        col::USER_S,
                        col::SYS_S,
                        col::MAX_RSS_KIB,
                        col::SCORE,
                        col::SCORE_UNIT,
                        col::PUSHED_KIB,
                        col::RETURNED_SHARE,
                    ]
                    .map(String::from),
                );
            }
        }
        if self.damon {
            for role in Role::ALL {
                h.extend(DamosStats::NAMES.iter().map(|s| col::damos(role.name(), s)));
            }
        }
        if self.weighted && kind == RowKind::Summary {
            h.push(col::WEIGHT_ERROR_PTS.into());
        }
        if self.quality {
            h.extend(col::MOVES.map(String::from));
            if kind == RowKind::Summary {
                h.extend(col::QUALITY.map(String::from));
                h.extend(col::COST.map(String::from));
            }
        }
        h.extend(self.counters.iter().map(|c| c.column()));
        if kind == RowKind::Summary {
            h.extend(self.perf.iter().map(|p| format!("perf.{p}")));
        }
        h.push(col::NOTES.into());
        h
    }

    pub fn record(&self, r: &SampleRow) -> Vec<String> {
        let mut out = vec![
            r.variant.clone(),
            r.iteration.to_string(),
            r.status.to_string(),
        ];
        match r.kind {
            RowKind::Interval => out.extend([
                format!("{:.3}", r.t_s),
                format!("{:.3}", r.span_s),
                opt(r.hot_first_page),
            ]),
            RowKind::Summary => out.push(format!("{:.3}", r.span_s)),
        }
        let l = r.latency;
        out.extend([
            opt(r.accesses),
            opt(r.accesses_per_s.map(|x| format!("{x:.0}"))),
            f3(r.hot_access_share),
            opt(l.map(|l| l.samples)),
            opt(l.map(|l| l.p50)),
            opt(l.map(|l| l.p90)),
            opt(l.map(|l| l.p99)),
            opt(l.map(|l| l.max)),
        ]);
        out.extend(r.pages_on.iter().map(|v| opt(*v)));
        out.extend([
            opt(r.hot_pages),
            opt(r.hot_fast_pages),
            f3(r.hot_fast_share),
            f3(r.hot_slow_share),
            f3(r.hot_fast_share_ci95),
            opt(r.census_pages),
        ]);
        if r.kind == RowKind::Summary {
            let p = r.promotion.unwrap_or_default();
            out.extend([
                opt(p.half_s.map(|t| format!("{t:.3}"))),
                opt(p.ninety_s.map(|t| format!("{t:.3}"))),
                f3(p.peak),
            ]);
        }
        if self.program {
            let p = r.program.clone().unwrap_or_default();
            let anon = (0..self.nodes.len()).map(|i| opt(p.anon_kib_on.get(i).copied().flatten()));
            out.extend(anon);
            out.extend([f3(p.fast_share), opt(p.procs)]);
            if r.kind == RowKind::Summary {
                out.extend([
                    opt(p.wall_s.map(|t| format!("{t:.3}"))),
                    opt(p.exit_code),
                    opt(p.user_s.map(|t| format!("{t:.3}"))),
                    opt(p.sys_s.map(|t| format!("{t:.3}"))),
                    opt(p.max_rss_kib),
                    opt(p.score),
                    p.score_unit.unwrap_or_default(),
                    opt(p.pushed_kib),
                    f3(p.returned_share),
                ]);
            }
        }
        if self.damon {
            for role in Role::ALL {
                let stats = r.damos.get(role.name());
                out.extend((0..DamosStats::NAMES.len()).map(|i| opt(stats.map(|s| s.values()[i]))));
            }
        }
        if self.weighted && r.kind == RowKind::Summary {
            out.push(opt(r.weight_error_pts.map(|e| format!("{e:.2}"))));
        }
        if self.quality {
            let pages = |v: Option<f64>| opt(v.map(|x| format!("{x:.0}")));
            let m = r.moves.as_ref();
            out.extend([
                pages(m.map(|m| m.promoted_hot)),
                pages(m.map(|m| m.promoted_cold)),
                pages(m.map(|m| m.demoted_hot)),
                pages(m.map(|m| m.demoted_cold)),
                pages(m.map(|m| m.round_trips)),
                pages(m.map(|m| m.promoted_ci95)),
            ]);
            if r.kind == RowKind::Summary {
                let q = r.quality.as_ref();
                out.extend([
                    f3(q.and_then(|q| q.precision)),
                    pages(q.map(|q| q.pingpong_pages)),
                    opt(q
                        .and_then(|q| q.round_trip_s_p50)
                        .map(|t| format!("{t:.3}"))),
                    opt(q.map(|q| q.tracked)),
                ]);
                let c = r.cost.clone().unwrap_or_default();
                let g = |v: Option<f64>| opt(v.map(|x| format!("{x:.4}")));
                out.extend([
                    opt(c.user_s.map(|t| format!("{t:.3}"))),
                    opt(c.sys_s.map(|t| format!("{t:.3}"))),
                    opt(c.accesses_per_cpu_s.map(|x| format!("{x:.0}"))),
                    g(c.hint_faults_per_s),
                    g(c.migrated_mib_per_s),
                    g(c.accesses_per_migrated_page),
                ]);
            }
        }
        out.extend(r.counters.iter().map(|v| opt(*v)));
        if r.kind == RowKind::Summary {
            out.extend(r.perf.iter().map(|v| opt(*v)));
        }
        out.push(note::join(&r.notes));
        debug_assert_eq!(out.len(), self.header(r.kind).len());
        out
    }
}

/// What a run tells as it goes: rows to the CSV files, the terminal table
/// and the progress display. Every file sink makes each row durable before
/// returning, so a run killed half way keeps every finished row.
pub trait RunObserver {
    /// A row, as soon as it is measured.
    fn row(&mut self, row: &SampleRow) -> std::io::Result<()>;
    /// The next variant run is about to start (progress display).
    fn starting(&mut self, _iteration: u32, _variant: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reached_keeps_the_first_crossing_and_the_peak() {
        let mut r = Reached::default();
        for (t, share) in [
            (0.0, 0.1),
            (1.0, 0.55),
            (2.0, 0.4),
            (3.0, 0.95),
            (4.0, 0.92),
        ] {
            r.observe(t, share);
        }
        assert_eq!(r.half_s, Some(1.0));
        assert_eq!(r.ninety_s, Some(3.0));
        assert_eq!(r.peak, Some(0.95));
        let mut never = Reached::default();
        never.observe(1.0, 0.3);
        assert_eq!(
            (never.half_s, never.ninety_s, never.peak),
            (None, None, Some(0.3))
        );
    }
}
