//! `tierbench compare`: changelog tables from results directories.
//!
//! One directory: its variants side by side (the first is the baseline).
//! Several: for each variant they share, one column per run (base kernel
//! vs patched, 6.1 vs 6.12), the first run the baseline. Per metric: mean
//! over the iterations, ± relative standard deviation, % change against
//! the baseline, and `*` where Welch's t-test gives p < 0.05; then the
//! vmstat rows. Plain text fits a 72-column changelog; Markdown on request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{col, CsvRows, MachineKind, SystemRecord};
use crate::error::InputError;
use crate::program::Better;
use crate::stats::{welch, Summary};

pub mod export;

use export::Exporter;

/// The significance level of the mark.
pub const ALPHA: f64 = 0.05;

/// A results directory as compare reads it.
#[derive(Debug, Clone)]
pub struct RunResults {
    pub dir: PathBuf,
    pub label: String,
    pub scenario: Option<String>,
    pub host_profile: Option<String>,
    pub node_shape: Option<String>,
    pub memory_mib: Vec<u64>,
    /// Run on a machine QEMU emulates: its throughput and latency depend on
    /// the emulator, not on the memory.
    pub emulated: bool,
    /// What defines the experiment, from system.json's plan (buffer size,
    /// page size, pattern, timing): runs that differ here measured
    /// different things.
    pub plan: Vec<(&'static str, String)>,
    /// A program run's plan, read back typed (what its score is).
    pub program: Option<crate::report::schema::PlanProgram>,
    /// `--bracket`: the variants that bound the run.
    pub bracket: Option<crate::report::schema::Bracket>,
    /// variant -> rows (column -> cell), in file order.
    pub rows: Vec<BTreeMap<String, String>>,
    /// Variants in the order of their first row.
    pub variants: Vec<String>,
}

fn bad(msg: String) -> InputError {
    InputError::new(msg)
}

impl RunResults {
    /// Reads a results directory through the results contract: a
    /// `system.json` of a readable version with every field compare uses,
    /// and a `summary.csv` with at least one complete row.
    pub fn read(dir: &Path) -> Result<RunResults, InputError> {
        if !dir.is_dir() {
            return Err(bad(format!(
                "{}: no such directory: give results directories of `tierbench run` \
                 (summary.csv + system.json)",
                dir.display()
            )));
        }
        let sys = SystemRecord::read(dir)?;
        let summary = CsvRows::read(&dir.join("summary.csv"))?;
        for n in &summary.notes {
            crate::errln!("tierbench compare: note: {n}");
        }
        if summary.rows.is_empty() {
            return Err(bad(format!(
                "{}: no summary rows: the run ended before its first variant finished",
                summary.path.display()
            )));
        }
        for c in [
            col::VARIANT,
            col::ITERATION,
            col::STATUS,
            col::ACCESSES_PER_S,
        ] {
            if summary.column(c).is_none() {
                return Err(bad(format!(
                    "{}: no `{c}` column: not a tierbench summary",
                    summary.path.display()
                )));
            }
        }
        let mut rows = summary.maps();
        check_rows(&summary.path, &rows)?;
        // Variant names become titles in every format: a control character
        // in one (an escape sequence) is shown escaped, never sent raw.
        for row in &mut rows {
            if let Some(v) = row.get_mut(col::VARIANT) {
                *v = crate::text::printable(v);
            }
        }
        let mut variants: Vec<String> = Vec::new();
        for row in &rows {
            let v = &row[col::VARIANT];
            if !variants.contains(v) {
                variants.push(v.clone());
            }
        }
        let program = typed_plan_key(&sys, dir, "program")?;
        let bracket = typed_plan_key(&sys, dir, "bracket")?;
        Ok(RunResults {
            dir: dir.to_path_buf(),
            label: short_release(&sys.kernel_release),
            scenario: sys.scenario.map(|s| s.name),
            host_profile: sys.machine.host_profile,
            node_shape: Some(sys.machine.node_shape),
            memory_mib: sys
                .machine
                .memory_mib_per_node
                .iter()
                .filter_map(|(_, m)| *m)
                .collect(),
            emulated: sys.machine.kind == MachineKind::Emulated,
            plan: PLAN_KEYS
                .iter()
                .filter_map(|&k| Some((k, sys.plan.get(k)?.to_string())))
                .collect(),
            program,
            bracket,
            rows,
            variants,
        })
    }

    /// The ok rows of a variant, and how many rows it has in all.
    fn ok_rows(&self, variant: &str) -> (Vec<&BTreeMap<String, String>>, usize) {
        let all: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.get("variant").map(String::as_str) == Some(variant))
            .collect();
        let n = all.len();
        let ok = all
            .into_iter()
            .filter(|r| r.get("status").map(String::as_str) == Some("ok"))
            .collect();
        (ok, n)
    }

    /// The status of a variant with no ok row (e.g. `unsupported`).
    fn status(&self, variant: &str) -> String {
        self.rows
            .iter()
            .find(|r| r.get("variant").map(String::as_str) == Some(variant))
            .and_then(|r| r.get("status").cloned())
            .unwrap_or_else(|| "absent".into())
    }
}

/// A key of system.json's plan read back as its type: absent or `null`
/// (older records, runs without it) is `None`, a malformed one a refusal
/// naming the key.
fn typed_plan_key<T: serde::de::DeserializeOwned>(
    sys: &SystemRecord,
    dir: &Path,
    key: &str,
) -> Result<Option<T>, InputError> {
    match sys.plan.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            bad(format!(
                "{}: plan.{key}: {e}",
                SystemRecord::path(dir).display()
            ))
        }),
    }
}

/// The plan's keys that decide what was measured. Iterations, the
/// sampling interval and the worker CPUs may differ between comparable
/// runs; these may not.
const PLAN_KEYS: [&str; 12] = [
    "program",
    "size_bytes",
    "page",
    "first_touch",
    "pattern",
    "hot_bytes",
    "warmup_s",
    "duration_s",
    "move_on_switch",
    "fill_fast_leave",
    "fill_fast_locked",
    "move_hot_at_s",
];

/// What no measurement produces is refused, naming the file and the row:
/// a metric that is not a finite number of at least 0 (NaN and negative
/// rates used to compare, and LAVA reported NaN as `pass`), and a variant
/// and iteration given twice (every row duplicated doubled n).
fn check_rows(path: &Path, rows: &[BTreeMap<String, String>]) -> Result<(), InputError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, row) in rows.iter().enumerate() {
        let at = |m: String| bad(format!("{} row {}: {m}", path.display(), i + 1));
        let key = (&row[col::VARIANT], &row[col::ITERATION]);
        if !seen.insert(key) {
            return Err(at(format!(
                "variant {} iteration {} appears twice: a summary has one row per variant \
                 and iteration",
                key.0, key.1
            )));
        }
        for m in METRICS {
            let c = m.column();
            let Some(cell) = row.get(&c).filter(|v| !v.is_empty()) else {
                continue;
            };
            // A score is what the program printed: it may be below 0.
            let signed = c == col::SCORE;
            match cell.parse::<f64>() {
                Ok(x) if x.is_finite() && (x >= 0.0 || signed) => {}
                _ => {
                    return Err(at(format!(
                        "{c} = {cell:?}: no measurement gives that (a finite number of at \
                         least 0)"
                    )))
                }
            }
        }
        for (c, cell) in row
            .iter()
            .filter(|(c, v)| c.starts_with("vmstat.") && !v.is_empty())
        {
            if !cell.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(at(format!("{c} = {cell:?} is not a finite number")));
            }
        }
    }
    Ok(())
}

/// `6.12.117+deb12-amd64` -> `6.12.117+deb12`: keeps columns narrow.
pub(crate) fn short_release(r: &str) -> String {
    r.trim_end_matches("-amd64").chars().take(16).collect()
}

/// Why these runs should not be compared, unless forced.
pub fn mismatch(runs: &[RunResults]) -> Option<String> {
    let first = &runs[0];
    for r in &runs[1..] {
        let pairs = [
            ("scenario", &first.scenario, &r.scenario),
            ("host profile", &first.host_profile, &r.host_profile),
            ("node shape", &first.node_shape, &r.node_shape),
        ];
        for (what, a, b) in pairs {
            if a != b {
                return Some(format!(
                    "{} and {} differ in {what} ({} vs {})",
                    first.dir.display(),
                    r.dir.display(),
                    a.as_deref().unwrap_or("none"),
                    b.as_deref().unwrap_or("none")
                ));
            }
        }
        for ((what, a), (_, b)) in first.plan.iter().zip(&r.plan) {
            if a != b {
                return Some(format!(
                    "{} and {} measured different experiments: plan {what} {a} vs {b}",
                    first.dir.display(),
                    r.dir.display()
                ));
            }
        }
        let keys = |r: &RunResults| r.plan.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        if keys(first) != keys(r) {
            return Some(format!(
                "{} and {} record different plan keys ({} vs {})",
                first.dir.display(),
                r.dir.display(),
                keys(first).join(","),
                keys(r).join(",")
            ));
        }
        for (a, b) in first.memory_mib.iter().zip(&r.memory_mib) {
            if (*a as f64 - *b as f64).abs() > 0.1 * (*a).max(1) as f64 {
                return Some(format!(
                    "{} and {} differ in memory per node by more than 10% ({a} vs {b} MiB)",
                    first.dir.display(),
                    r.dir.display()
                ));
            }
        }
    }
    None
}

/// The variants every run has, in the first run's order.
fn shared_variants(runs: &[RunResults]) -> impl Iterator<Item = &String> {
    runs[0]
        .variants
        .iter()
        .filter(|v| runs.iter().all(|r| r.variants.contains(v)))
}

/// What compare can say about these runs at all: they share at least one
/// variant (each run's rows are checked when it is read).
pub fn check(runs: &[RunResults]) -> Result<(), InputError> {
    if shared_variants(runs).next().is_none() {
        let list: Vec<String> = runs
            .iter()
            .map(|r| format!("{} has {}", r.dir.display(), r.variants.join(", ")))
            .collect();
        return Err(bad(format!(
            "no variant in common, nothing to compare: {}",
            list.join("; ")
        )));
    }
    Ok(())
}

/// A row of the table: which column of summary.csv, how it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Where the values come from.
    pub source: Source,
    pub label: &'static str,
    /// What one unit of the shown value is (LAVA's --units).
    pub units: &'static str,
    /// Shown value = column value x scale.
    pub scale: f64,
    /// Decided by the emulator under emulation (throughput, latency): not
    /// compared across emulated runs.
    pub by_emulator: bool,
    /// An ok iteration without a value never reached the mark (the
    /// time-to metrics), rather than did not measure it.
    pub empty_is_never: bool,
    /// Which runs the row is about: the built-in workers' (the hot set),
    /// a program's (its memory), or any.
    pub runs: Runs,
    /// Which way is better (mmtests' layout signs its changes by it).
    pub better: Direction,
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    Higher,
    Lower,
    /// Neither: an amount moved, a counter.
    Neither,
    /// As the program's score says (`plan.program.score.better`).
    AsScore,
}

/// The runs a metric's row is shown for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Runs {
    Any,
    Workers,
    Program,
}

/// The summary.csv column of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// A column of its own.
    Column(&'static str),
    /// The vmstat counter the label names (`vmstat.<label>`).
    Vmstat,
    /// `--bracket`: where the score (accesses/s for the built-in workers)
    /// sits between the slow bound (0%) and the fast bound (100%).
    GapRecovered,
}

impl Metric {
    fn column(&self) -> String {
        match self.source {
            Source::Column(c) => c.to_string(),
            Source::Vmstat => col::vmstat(self.label),
            Source::GapRecovered => "gap_recovered".into(),
        }
    }
}

/// The metrics of the table, then the vmstat rows. A metric no row has a
/// value for is left out (a program run has no accesses/s, a run of the
/// built-in workers no score).
const METRICS: [Metric; 21] = [
    // Normalised to the bounds, as tiering results are in changelogs.
    Metric {
        source: Source::GapRecovered,
        label: "gap recovered %",
        units: "percent",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Higher,
    },
    // An external program's: its score (unit in summary.csv's score_unit,
    // better as system.json's plan.program.score says), its wall time,
    // where its memory was at the end.
    Metric {
        source: Source::Column(col::SCORE),
        label: "score",
        units: "score",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::AsScore,
    },
    Metric {
        source: Source::Column(col::WALL_S),
        label: "wall s",
        units: "seconds",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::ANON_FAST_SHARE),
        label: "program on fast %",
        units: "percent",
        scale: 100.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Program,
        better: Direction::Higher,
    },
    // After --push-to-slow-at: when the program's share on the fast tier
    // got back to 50% and 90% of what it was before the push.
    Metric {
        source: Source::Column(col::TIME_TO_50PCT_S),
        label: "s to 50% back on fast",
        units: "seconds",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: true,
        runs: Runs::Program,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::TIME_TO_90PCT_S),
        label: "s to 90% back on fast",
        units: "seconds",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: true,
        runs: Runs::Program,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::ACCESSES_PER_S),
        label: "accesses/s",
        units: "accesses/s",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Higher,
    },
    Metric {
        source: Source::Column(col::HOT_FAST_SHARE),
        label: "hot set on fast %",
        units: "percent",
        scale: 100.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Higher,
    },
    // Iterations that never got there have no value: the cell's n says how
    // many did, and `hot_fast_share_peak` in summary.csv how far the rest
    // got. The scanner's periods are kernel time, so these are compared
    // across emulated runs too.
    Metric {
        source: Source::Column(col::TIME_TO_50PCT_S),
        label: "s to 50% hot on fast",
        units: "seconds",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: true,
        runs: Runs::Workers,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::TIME_TO_90PCT_S),
        label: "s to 90% hot on fast",
        units: "seconds",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: true,
        runs: Runs::Workers,
        better: Direction::Lower,
    },
    // The mechanisms: what DAMON's schemes moved (its migrations are not
    // NUMA-balancing promotions), how far weighted interleave placed the
    // pages from their weights.
    Metric {
        source: Source::Column(col::DAMOS_HOT_SZ_APPLIED),
        label: "DAMON promoted MiB",
        units: "MiB",
        scale: 1.0 / (1u64 << 20) as f64,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Neither,
    },
    Metric {
        source: Source::Column(col::DAMOS_COLD_SZ_APPLIED),
        label: "DAMON demoted MiB",
        units: "MiB",
        scale: 1.0 / (1u64 << 20) as f64,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Neither,
    },
    Metric {
        source: Source::Column(col::WEIGHT_ERROR_PTS),
        label: "off the weights pts",
        units: "points",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Lower,
    },
    // Quality, from the pages followed by identity: what was promoted,
    // how much of it was hot, what came back; and what the moves cost.
    Metric {
        source: Source::Column(col::PRECISION),
        label: "precision %",
        units: "percent",
        scale: 100.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Higher,
    },
    Metric {
        source: Source::Column(col::MOVES_PROMOTED_COLD),
        label: "cold pages promoted",
        units: "pages",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::PINGPONG_PAGES),
        label: "ping-pong pages",
        units: "pages",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::WORKERS_SYS_S),
        label: "workers sys s",
        units: "seconds",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::ACCESSES_PER_CPU_S),
        label: "accesses/CPU-s",
        units: "accesses/cpu-s",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Higher,
    },
    Metric {
        source: Source::Column(col::MIGRATED_MIB_PER_S),
        label: "migrated MiB/s",
        units: "MiB/s",
        scale: 1.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Workers,
        better: Direction::Neither,
    },
    Metric {
        source: Source::Column(col::LAT_P50_NS),
        label: "latency p50 ns",
        units: "ns",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Lower,
    },
    Metric {
        source: Source::Column(col::LAT_P99_NS),
        label: "latency p99 ns",
        units: "ns",
        scale: 1.0,
        by_emulator: true,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Lower,
    },
];

/// The change cell of a metric that emulation makes meaningless.
pub const NOT_COMPARABLE: &str = "n/c";
const COUNTERS: [(&str, &str); 7] = [
    ("pgpromote_success", "pages"),
    ("pgmigrate_success", "pages"),
    ("pgpromote_candidate", "pages"),
    ("pgdemote_kswapd", "pages"),
    ("pgdemote_direct", "pages"),
    ("numa_hint_faults", "faults"),
    ("numa_pages_migrated", "pages"),
];

/// One column of a block: a run's variant.
struct Column<'a> {
    title: String,
    run: &'a RunResults,
    variant: String,
}

/// One block before its numbers: a baseline column and the columns
/// compared with it.
struct Block<'a> {
    title: String,
    columns: Vec<Column<'a>>,
}

fn blocks(runs: &[RunResults]) -> Vec<Block<'_>> {
    let scenario = runs[0].scenario.clone().unwrap_or_else(|| "run".into());
    if runs.len() == 1 {
        let r = &runs[0];
        return vec![Block {
            title: format!("{scenario} on {}", r.label),
            columns: r
                .variants
                .iter()
                .map(|v| Column {
                    title: v.clone(),
                    run: r,
                    variant: v.clone(),
                })
                .collect(),
        }];
    }
    let mut labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    if labels
        .iter()
        .any(|l| labels.iter().filter(|m| *m == l).count() > 1)
    {
        labels = distinguishing_labels(runs);
    }
    shared_variants(runs)
        .map(|v| Block {
            title: format!("{scenario}: {v}"),
            columns: runs
                .iter()
                .zip(&labels)
                .map(|(r, l)| Column {
                    title: l.clone(),
                    run: r,
                    variant: v.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Same kernel in every run (hosts of a fleet, or repeats): each run is
/// named by the last part of its path that tells the runs apart
/// (`results/<host>/<kernel>/<scenario>` -> the host).
fn distinguishing_labels(runs: &[RunResults]) -> Vec<String> {
    let parts: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let abs = std::path::absolute(&r.dir).unwrap_or_else(|_| r.dir.clone());
            abs.components()
                .rev()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let depth = parts.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..depth {
        let at: Vec<&str> = parts
            .iter()
            .map(|p| p.get(i).map(String::as_str).unwrap_or(""))
            .collect();
        let distinct = at
            .iter()
            .all(|a| at.iter().filter(|b| *b == a).count() == 1);
        if distinct {
            return at.iter().map(|a| a.chars().take(16).collect()).collect();
        }
    }
    (1..=runs.len()).map(|i| format!("run {i}")).collect()
}

/// How a cell relates to the baseline column of its block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// This is the baseline.
    Baseline,
    /// No change to give: no value here or in the baseline, or a baseline
    /// mean of 0.
    Undefined,
    /// Emulated machine: the emulator decides this metric.
    NotComparable,
    /// Percent change of the mean, with Welch's two-sided p (None when a
    /// side has fewer than two values).
    Percent { pct: f64, p: Option<f64> },
}

impl Change {
    /// p < ALPHA: marked with `*`.
    pub fn significant(&self) -> bool {
        matches!(self, Change::Percent { p: Some(p), .. } if *p < ALPHA)
    }
}

/// One cell: the statistics of a metric over a column's ok iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// None when the column has no ok row with this metric.
    pub summary: Option<Summary>,
    /// The column's status when it has no ok row (e.g. `unsupported`), or
    /// `never` for a mark no ok iteration reached.
    pub status: String,
    pub change: Change,
    /// Ok iterations, when only `summary.n` of them reached the mark.
    pub reached_in: Option<usize>,
    /// The harmonic mean of the values, when all are above 0.
    pub hmean: Option<f64>,
}

impl Cell {
    /// `mean ±rel.sd%`, or the status.
    pub fn value_text(&self) -> String {
        let Some(s) = &self.summary else {
            return self.status.clone();
        };
        // One value has no spread; a mean of 0 has no relative one.
        let spread = match s.rel_sd() {
            Some(r) if s.n > 1 => format!(" ±{:.0}%", r * 100.0),
            _ => String::new(),
        };
        let partial = match self.reached_in {
            Some(of) => format!(" ({}/{of})", s.n),
            None => String::new(),
        };
        format!("{}{spread}{partial}", fmt_value(s.mean))
    }

    /// `+12.3%*`, `n/c`, or empty.
    pub fn change_text(&self) -> String {
        match self.change {
            Change::Baseline | Change::Undefined => String::new(),
            Change::NotComparable => NOT_COMPARABLE.to_string(),
            Change::Percent { pct, .. } => format!(
                "{pct:+.1}%{}",
                if self.change.significant() { "*" } else { "" }
            ),
        }
    }
}

fn values(col: &Column, metric: &Metric) -> Vec<f64> {
    let (rows, _) = col.run.ok_rows(&col.variant);
    if metric.source == Source::GapRecovered {
        return gap_recovered(col.run, &rows).unwrap_or_default();
    }
    let key = metric.column();
    rows.iter()
        .filter_map(|r| r.get(&key)?.parse::<f64>().ok())
        .map(|x| x * metric.scale)
        .collect()
}

/// The harmonic mean, the mean of rates mmtests reports: None unless
/// every value is above 0.
fn hmean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty() && xs.iter().all(|&x| x > 0.0))
        .then(|| xs.len() as f64 / xs.iter().map(|x| 1.0 / x).sum::<f64>())
}

/// Each of `rows`' share of the gap between its run's slow and fast
/// bounds, in percent: (x - slow) / (fast - slow) of the score, or of
/// accesses/s for the built-in workers. Either way round: for a time, the
/// fast bound is the smaller and the formula still gives 100% there.
fn gap_recovered(run: &RunResults, rows: &[&BTreeMap<String, String>]) -> Option<Vec<f64>> {
    let b = run.bracket.as_ref()?;
    let measure = if run
        .rows
        .iter()
        .any(|r| r.get(col::SCORE).is_some_and(|v| !v.is_empty()))
    {
        col::SCORE
    } else {
        col::ACCESSES_PER_S
    };
    let of = |r: &BTreeMap<String, String>| r.get(measure)?.parse::<f64>().ok();
    let mean = |variant: &str| {
        let xs: Vec<f64> = run.ok_rows(variant).0.into_iter().filter_map(of).collect();
        Summary::of(&xs).map(|s| s.mean)
    };
    let (fast, slow) = (mean(b.fast.as_deref()?)?, mean(b.slow.as_deref()?)?);
    if fast == slow {
        return None;
    }
    let xs: Vec<f64> = rows
        .iter()
        .filter_map(|r| of(r))
        .map(|x| (x - slow) / (fast - slow) * 100.0)
        .collect();
    Some(xs)
}

fn fmt_value(x: f64) -> String {
    if x.abs() >= 1e5 {
        format!("{x:.3e}")
    } else if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn change(
    base: Option<&Summary>,
    this: Option<&Summary>,
    is_base: bool,
    comparable: bool,
) -> Change {
    match (base, this) {
        _ if is_base => Change::Baseline,
        (Some(_), Some(_)) if !comparable => Change::NotComparable,
        (Some(b), Some(s)) if b.mean != 0.0 => Change::Percent {
            pct: (s.mean - b.mean) / b.mean.abs() * 100.0,
            p: welch(b, s).map(|w| w.p),
        },
        _ => Change::Undefined,
    }
}

/// A metric's row: one cell per column.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub metric: Metric,
    pub cells: Vec<Cell>,
    /// Which way is better for this table (a score's as its run says);
    /// None for amounts and counters.
    pub better: Option<Better>,
}

/// One column's identity in a computed table.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub title: String,
    pub dir: PathBuf,
    pub variant: String,
    /// Ok iterations and all iterations of the column's variant.
    pub ok: usize,
    pub iterations: usize,
}

/// A block with its numbers: what every format renders.
#[derive(Debug, Clone)]
pub struct TableBlock {
    pub title: String,
    pub scenario: Option<String>,
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<MetricRow>,
    /// Some change was not compared because the emulator decides it.
    pub emulated_not_compared: bool,
    /// What the score row is (a program run's parser, unit, direction).
    pub score: Option<String>,
}

impl TableBlock {
    /// `n = 3 iterations; ...` and the n/c legend.
    pub fn footer(&self) -> String {
        let counts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if c.ok == c.iterations {
                    c.iterations.to_string()
                } else {
                    format!("{}/{}", c.ok, c.iterations)
                }
            })
            .collect();
        let mut uniq = counts.clone();
        uniq.dedup();
        let n = if uniq.len() == 1 {
            uniq[0].clone()
        } else {
            counts.join(", ")
        };
        let mut foot =
            format!("n = {n} iterations; mean ±rel. stddev; * Welch's t-test p < {ALPHA}");
        if let Some(score) = &self.score {
            foot.push('\n');
            foot.push_str(score);
        }
        if self.emulated_not_compared {
            foot.push_str(&format!(
                "\n{NOT_COMPARABLE}: emulated machine: throughput and latency depend on QEMU,\n\
                 not on the kernel; placement and counters are real"
            ));
        }
        foot
    }
}

fn compute(block: Block) -> TableBlock {
    let base = &block.columns[0];
    // Across runs of an emulated machine, what the emulator decides is not
    // compared.
    let across_emulated = block
        .columns
        .iter()
        .any(|c| c.run.emulated && !std::ptr::eq(c.run, base.run));
    let counters = COUNTERS.iter().map(|(name, units)| Metric {
        source: Source::Vmstat,
        label: name,
        units,
        scale: 1.0,
        by_emulator: false,
        empty_is_never: false,
        runs: Runs::Any,
        better: Direction::Neither,
    });
    let mut rows = Vec::new();
    let mut not_compared = false;
    for metric in METRICS.into_iter().chain(counters) {
        let key = metric.column();
        // Where each variant sits between the bounds is the emulator's
        // doing on an emulated machine, even inside one run.
        let by_emulator = (metric.by_emulator && across_emulated)
            || (metric.source == Source::GapRecovered && base.run.emulated);
        let comparable = !by_emulator;
        not_compared |= !comparable;
        // An empty time-to cell is a measurement ("never") where the
        // census watched (a peak is there); any other empty cell is not.
        let key_of_values = match metric.empty_is_never {
            true => col::HOT_FAST_SHARE_PEAK.to_string(),
            false => key.clone(),
        };
        let measured = |r: &BTreeMap<String, String>| {
            r.get(&key_of_values).is_some_and(|v| !v.is_empty())
                || (metric.empty_is_never && !r.contains_key(col::HOT_FAST_SHARE_PEAK))
        };
        let for_run = |r: &RunResults| match metric.runs {
            Runs::Any => true,
            Runs::Workers => r.program.is_none(),
            Runs::Program => r.program.is_some(),
        };
        if !block.columns.iter().any(|c| for_run(c.run)) {
            continue;
        }
        let present = match metric.source {
            Source::GapRecovered => block.columns.iter().any(|c| c.run.bracket.is_some()),
            // The column's own variant: a DAMON variant's statistics are
            // no row of a block that holds none.
            _ => block.columns.iter().any(|c| {
                c.run.rows.iter().any(|r| {
                    r.get(col::VARIANT) == Some(&c.variant) && r.contains_key(&key) && measured(r)
                })
            }),
        };
        if !present {
            continue;
        }
        let b = Summary::of(&values(base, &metric));
        let cells = block
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let xs = values(c, &metric);
                let this = Summary::of(&xs);
                let ok = c.run.ok_rows(&c.variant).0.len();
                let n = this.as_ref().map_or(0, |s| s.n);
                let never = metric.empty_is_never && ok > 0 && n == 0;
                Cell {
                    change: change(b.as_ref(), this.as_ref(), i == 0, comparable),
                    summary: this,
                    status: if never {
                        "never".into()
                    } else if ok > 0 && n == 0 {
                        // Measured, but not this metric: a variant without
                        // DAMON has no DAMOS statistics.
                        "n/a".into()
                    } else {
                        c.run.status(&c.variant)
                    },
                    reached_in: (metric.empty_is_never && n > 0 && n < ok).then_some(ok),
                    hmean: hmean(&xs),
                }
            })
            .collect();
        let better = match metric.better {
            Direction::Higher => Some(Better::Higher),
            Direction::Lower => Some(Better::Lower),
            Direction::Neither => None,
            Direction::AsScore => base
                .run
                .program
                .as_ref()
                .and_then(|p| p.score.as_ref())
                .map(|s| s.better),
        };
        rows.push(MetricRow {
            metric,
            cells,
            better,
        });
    }
    TableBlock {
        title: block.title,
        scenario: base.run.scenario.clone(),
        columns: block
            .columns
            .iter()
            .map(|c| {
                let (ok, n) = c.run.ok_rows(&c.variant);
                ColumnInfo {
                    title: c.title.clone(),
                    dir: c.run.dir.clone(),
                    variant: c.variant.clone(),
                    ok: ok.len(),
                    iterations: n,
                }
            })
            .collect(),
        score: base
            .run
            .program
            .as_ref()
            .and_then(|p| p.score.as_ref())
            .map(|s| s.describe()),
        rows,
        emulated_not_compared: not_compared,
    }
}

/// Splits blocks wider than two columns into baseline-vs-one blocks, so
/// the text stays within 72 columns.
fn narrow(blocks: Vec<Block<'_>>) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    for b in blocks {
        if b.columns.len() <= 2 {
            out.push(b);
            continue;
        }
        let mut cols = b.columns.into_iter();
        let base = cols.next().expect("a column");
        for c in cols {
            out.push(Block {
                title: format!("{}: {} vs {}", b.title, c.title, base.title),
                columns: vec![
                    Column {
                        title: base.title.clone(),
                        run: base.run,
                        variant: base.variant.clone(),
                    },
                    c,
                ],
            });
        }
    }
    out
}

/// The table: one block per shared variant (several runs) or one block of
/// variants (one run); `narrow` splits blocks to baseline-vs-one.
pub fn table(runs: &[RunResults], narrow_blocks: bool) -> Vec<TableBlock> {
    let b = blocks(runs);
    let b = if narrow_blocks { narrow(b) } else { b };
    b.into_iter().map(compute).collect()
}

/// Plain text, every line within 72 columns.
pub fn text(runs: &[RunResults]) -> String {
    export::Text.render(&table(runs, true))
}

/// Markdown: one table per block, every column of the block.
pub fn markdown(runs: &[RunResults]) -> String {
    export::Markdown.render(&table(runs, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, rows: &[(&str, f64, &str)]) -> RunResults {
        RunResults {
            dir: PathBuf::from(label),
            label: label.into(),
            scenario: Some("promote-hot".into()),
            host_profile: Some("qemu-dram-cxl".into()),
            node_shape: Some("0:cpu+mem,1:mem".into()),
            memory_mib: vec![2048, 2048],
            emulated: false,
            plan: vec![
                ("size_bytes", "67108864".into()),
                ("duration_s", "8.0".into()),
            ],
            program: None,
            bracket: None,
            rows: rows
                .iter()
                .map(|(v, a, status)| {
                    [
                        ("variant", v.to_string()),
                        ("status", status.to_string()),
                        ("accesses_per_s", a.to_string()),
                        ("vmstat.pgpromote_success", "16384".into()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
                })
                .collect(),
            variants: {
                let mut v: Vec<String> = Vec::new();
                for (name, _, _) in rows {
                    if !v.contains(&name.to_string()) {
                        v.push(name.to_string());
                    }
                }
                v
            },
        }
    }

    /// With the bounds in the run, each variant's place between them: the
    /// slow bound 0%, the fast 100%, halfway 50% (of accesses/s here; of
    /// the score when the run has one, whichever way is better).
    #[test]
    fn the_gap_row_places_each_variant_between_the_bounds() {
        let rows = [
            ("bind:0", 100.0, "ok"),
            ("bind:1", 50.0, "ok"),
            ("pm", 70.0, "ok"),
            ("bind:0", 100.0, "ok"),
            ("bind:1", 50.0, "ok"),
            ("pm", 80.0, "ok"),
        ];
        let mut r = run("6.12", &rows);
        let gap = |r: &RunResults| {
            table(std::slice::from_ref(r), false)[0]
                .rows
                .iter()
                .find(|m| m.metric.label == "gap recovered %")
                .map(|m| {
                    m.cells
                        .iter()
                        .map(|c| c.summary.map(|s| s.mean))
                        .collect::<Vec<_>>()
                })
        };
        assert_eq!(gap(&r), None, "no bounds, no row");
        r.bracket = Some(crate::report::schema::Bracket {
            fast: Some("bind:0".into()),
            slow: Some("bind:1".into()),
        });
        assert_eq!(gap(&r).unwrap(), [Some(100.0), Some(0.0), Some(50.0)]);
        // A time: smaller is better, the fast bound still 100%.
        for row in &mut r.rows {
            let a: f64 = row["accesses_per_s"].parse().unwrap();
            row.insert(col::SCORE.into(), (1000.0 / a).to_string());
        }
        let g = gap(&r).unwrap();
        assert_eq!((g[0], g[1]), (Some(100.0), Some(0.0)));
        assert!(g[2].unwrap() > 50.0 && g[2].unwrap() < 90.0, "{g:?}");
    }

    /// Time-to rows: an iteration that never reached the mark has an empty
    /// cell; a column where none did says `never`, one where some did says
    /// how many.
    #[test]
    fn time_to_rows_say_never_and_how_many_reached() {
        let with_times = |label: &str, times: &[&str]| {
            let mut r = run(label, &vec![("pm", 1.0, "ok"); times.len()]);
            for (row, t) in r.rows.iter_mut().zip(times) {
                row.insert(col::TIME_TO_50PCT_S.into(), t.to_string());
                row.insert(col::TIME_TO_90PCT_S.into(), String::new());
            }
            r
        };
        let runs = [
            with_times("6.1", &["", "", ""]),
            with_times("6.12", &["2.0", "4.0", ""]),
        ];
        let blocks = table(&runs, true);
        let row = |label: &str| {
            blocks[0]
                .rows
                .iter()
                .find(|r| r.metric.label == label)
                .unwrap()
                .cells
                .iter()
                .map(Cell::value_text)
                .collect::<Vec<_>>()
        };
        assert_eq!(row("s to 50% hot on fast"), ["never", "3 ±47% (2/3)"]);
        assert_eq!(row("s to 90% hot on fast"), ["never", "never"]);
    }

    /// Known inputs: a = 10, 11, 12 vs b = 13, 14, 15 is +27.3% with
    /// p = 0.021 (marked); c = 10, 12, 14 vs d = 11, 13, 15 is +8.3% with
    /// p = 0.57 (not marked). See stats.rs for the hand computation.
    #[test]
    fn the_table_marks_what_welch_finds_significant() {
        let one = run(
            "6.1",
            &[("x", 10.0, "ok"), ("x", 11.0, "ok"), ("x", 12.0, "ok")]
                .iter()
                .chain(&[("y", 10.0, "ok"), ("y", 12.0, "ok"), ("y", 14.0, "ok")])
                .cloned()
                .collect::<Vec<_>>(),
        );
        let two = run(
            "6.12",
            &[("x", 13.0, "ok"), ("x", 14.0, "ok"), ("x", 15.0, "ok")]
                .iter()
                .chain(&[("y", 11.0, "ok"), ("y", 13.0, "ok"), ("y", 15.0, "ok")])
                .cloned()
                .collect::<Vec<_>>(),
        );
        let t = text(&[one, two]);
        assert!(t.lines().all(|l| l.chars().count() <= 72), "{t}");
        let x = t.split("promote-hot: y").next().unwrap();
        let y = t.split("promote-hot: y").nth(1).unwrap();
        assert!(x.contains("+27.3%*"), "{t}");
        assert!(y.contains("+8.3%") && !y.contains("+8.3%*"), "{t}");
        assert!(t.contains("n = 3 iterations"));
        assert!(t.contains("pgpromote_success"));
    }

    fn snapshot_runs() -> [RunResults; 2] {
        let one = run(
            "6.1",
            &[("x", 10.0, "ok"), ("x", 11.0, "ok"), ("x", 12.0, "ok")],
        );
        let mut two = run(
            "6.12",
            &[("x", 13.0, "ok"), ("x", 14.0, "ok"), ("x", 15.0, "ok")],
        );
        two.dir = PathBuf::from("b");
        [one, two]
    }

    /// The table as it goes into a changelog, byte for byte.
    #[test]
    fn text_snapshot() {
        let want = "\
promote-hot: x
                                      6.1                 6.12   change
accesses/s                         11 ±9%               14 ±7%  +27.3%*
pgpromote_success               16384 ±0%            16384 ±0%    +0.0%
n = 3 iterations; mean ±rel. stddev; * Welch's t-test p < 0.05

";
        assert_eq!(text(&snapshot_runs()), want);
    }

    #[test]
    fn markdown_snapshot() {
        let want = "\
**promote-hot: x**

| metric | 6.1 | 6.12 | change |
| --- | ---: | ---: | ---: |
| accesses/s | 11 ±9% | 14 ±7% | +27.3%* |
| pgpromote_success | 16384 ±0% | 16384 ±0% | +0.0% |

n = 3 iterations; mean ±rel. stddev; * Welch's t-test p < 0.05

";
        assert_eq!(markdown(&snapshot_runs()), want);
    }

    /// Emulated runs across kernels: throughput is not compared, counters
    /// are.
    #[test]
    fn emulated_snapshot() {
        let [mut one, mut two] = snapshot_runs();
        one.emulated = true;
        two.emulated = true;
        let t = text(&[one, two]);
        assert!(t.contains("14 ±7%      n/c\n"), "{t}");
        assert!(t.contains("16384 ±0%            16384 ±0%    +0.0%"), "{t}");
        assert!(t.contains("n/c: emulated machine"), "{t}");
        assert!(!t.contains("%*"), "{t}");
    }

    /// One run with one variant: a single column, no change.
    #[test]
    fn one_variant_snapshot() {
        let r = run("6.12", &[("x", 13.0, "ok"), ("x", 15.0, "ok")]);
        let want = "\
promote-hot on 6.12
                                        x
accesses/s                        14 ±10%
pgpromote_success               16384 ±0%
n = 2 iterations; mean ±rel. stddev; * Welch's t-test p < 0.05

";
        assert_eq!(text(&[r]), want);
    }

    /// A metric only one column measures (DAMOS statistics beside a
    /// variant without DAMON): the other column says `n/a`, not `ok`.
    #[test]
    fn a_metric_a_column_does_not_measure_reads_n_a() {
        let mut r = run("6.12", &[("pm", 10.0, "ok"), ("pm@damon", 8.0, "ok")]);
        r.rows[1].insert(col::DAMOS_HOT_SZ_APPLIED.into(), (4u64 << 20).to_string());
        let t = text(&[r]);
        let line = t.lines().find(|l| l.starts_with("DAMON promoted MiB"));
        let cells: Vec<&str> = line.expect(&t).split_whitespace().skip(3).collect();
        assert_eq!(cells[..2], ["n/a", "4"], "{t}");
    }

    #[test]
    fn unsupported_variants_and_mismatched_runs() {
        let a = run(
            "6.1",
            &[("x", 0.0, "unsupported"), ("x", 0.0, "unsupported")],
        );
        let b = run("6.12", &[("x", 5.0, "ok"), ("x", 6.0, "ok")]);
        let t = text(&[a.clone(), b.clone()]);
        assert!(t.contains("unsupported"), "{t}");
        assert!(t.contains("0/2, 2"), "{t}");
        assert!(mismatch(&[a.clone(), b.clone()]).is_none());
        let mut c = b.clone();
        c.host_profile = Some("lab-1".into());
        assert!(mismatch(&[a.clone(), c]).unwrap().contains("host profile"));
        let mut d = b.clone();
        d.memory_mib = vec![4096, 2048];
        assert!(mismatch(&[a.clone(), d]).unwrap().contains("10%"));
        let mut e = b;
        e.plan[1].1 = "30.0".into();
        let why = mismatch(&[a, e]).unwrap();
        assert!(why.contains("plan duration_s 8.0 vs 30.0"), "{why}");
    }

    #[test]
    fn rows_no_measurement_produces_are_refused() {
        let row = |v: &str, it: &str, a: &str| -> BTreeMap<String, String> {
            [("variant", v), ("iteration", it), ("accesses_per_s", a)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let p = Path::new("summary.csv");
        assert!(check_rows(p, &[row("x", "1", "5e8"), row("x", "2", "")]).is_ok());
        for bad_value in ["NaN", "inf", "-1", "fast"] {
            let e = check_rows(p, &[row("x", "1", bad_value)]).unwrap_err();
            assert!(e.to_string().contains("accesses_per_s"), "{e}");
        }
        let e = check_rows(p, &[row("x", "1", "1"), row("x", "1", "1")]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }
}
