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
use crate::stats::{welch, Summary};

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
            eprintln!("tierbench compare: note: {n}");
        }
        if summary.rows.is_empty() {
            return Err(bad(format!(
                "{}: no summary rows: the run ended before its first variant finished",
                summary.path.display()
            )));
        }
        for c in [col::VARIANT, col::STATUS] {
            if summary.column(c).is_none() {
                return Err(bad(format!(
                    "{}: no `{c}` column: not a tierbench summary",
                    summary.path.display()
                )));
            }
        }
        let rows = summary.maps();
        let mut variants: Vec<String> = Vec::new();
        for row in &rows {
            let v = &row[col::VARIANT];
            if !variants.contains(v) {
                variants.push(v.clone());
            }
        }
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

/// `6.12.117+deb12-amd64` -> `6.12.117+deb12`: keeps columns narrow.
fn short_release(r: &str) -> String {
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

/// The metrics of the table: (column, label, scale, what the emulator
/// decides). Under emulation, throughput and latency measure QEMU, so
/// their change across kernels is not marked or starred.
const METRICS: [(&str, &str, f64, bool); 4] = [
    (col::ACCESSES_PER_S, "accesses/s", 1.0, true),
    (col::HOT_FAST_SHARE, "hot set on fast %", 100.0, false),
    (col::LAT_P50_NS, "latency p50 ns", 1.0, true),
    (col::LAT_P99_NS, "latency p99 ns", 1.0, true),
];

/// The change cell of a metric that emulation makes meaningless.
const NOT_COMPARABLE: &str = "n/c";
const COUNTERS: [&str; 6] = [
    "pgpromote_success",
    "pgpromote_candidate",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "numa_hint_faults",
    "numa_pages_migrated",
];

/// One column of a block: a run's variant.
struct Column<'a> {
    title: String,
    run: &'a RunResults,
    variant: String,
}

/// One block: a baseline column and the columns compared with it.
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
        labels = runs
            .iter()
            .map(|r| {
                r.dir
                    .file_name()
                    .map(|f| f.to_string_lossy().chars().take(16).collect())
                    .unwrap_or_default()
            })
            .collect();
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

/// One cell: the value text, and the change against the baseline.
struct Cell {
    value: String,
    change: String,
}

fn values(col: &Column, key: &str, scale: f64) -> Option<Summary> {
    let (rows, _) = col.run.ok_rows(&col.variant);
    let xs: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.get(key)?.parse::<f64>().ok())
        .map(|x| x * scale)
        .collect();
    Summary::of(&xs)
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

fn cell(
    base: Option<&Summary>,
    this: Option<Summary>,
    status: &str,
    is_base: bool,
    comparable: bool,
) -> Cell {
    let Some(s) = this else {
        return Cell {
            value: status.to_string(),
            change: String::new(),
        };
    };
    // One value has no spread; a mean of 0 has no relative one.
    let spread = match s.rel_sd() {
        Some(r) if s.n > 1 => format!(" ±{:.0}%", r * 100.0),
        _ => String::new(),
    };
    let value = format!("{}{spread}", fmt_value(s.mean));
    let change = match base {
        Some(_) if !is_base && !comparable => NOT_COMPARABLE.to_string(),
        Some(b) if !is_base && b.mean != 0.0 => {
            let pct = (s.mean - b.mean) / b.mean.abs() * 100.0;
            let mark = welch(b, &s).is_some_and(|w| w.p < ALPHA);
            format!("{pct:+.1}%{}", if mark { "*" } else { "" })
        }
        _ => String::new(),
    };
    Cell { value, change }
}

/// A table row: label, then (value, change) per column.
type Row = (String, Vec<Cell>);

fn rows_of(block: &Block) -> (Vec<Row>, String) {
    let base = &block.columns[0];
    let mut rows = Vec::new();
    // Across runs of an emulated machine, what the emulator decides is not
    // compared.
    let across_emulated = block
        .columns
        .iter()
        .any(|c| c.run.emulated && !std::ptr::eq(c.run, base.run));
    let metric_rows = METRICS
        .iter()
        .map(|(k, l, s, emu)| (k.to_string(), l.to_string(), *s, *emu));
    let counter_rows = COUNTERS
        .iter()
        .map(|c| (col::vmstat(c), c.to_string(), 1.0, false));
    let mut marked = false;
    for (key, label, scale, by_emulator) in metric_rows.chain(counter_rows) {
        let comparable = !(by_emulator && across_emulated);
        marked |= !comparable;
        if !block
            .columns
            .iter()
            .any(|c| c.run.rows.iter().any(|r| r.contains_key(&key)))
        {
            continue;
        }
        let b = values(base, &key, scale);
        let cells = block
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cell(
                    b.as_ref(),
                    values(c, &key, scale),
                    &c.run.status(&c.variant),
                    i == 0,
                    comparable,
                )
            })
            .collect();
        rows.push((label, cells));
    }
    let counts: Vec<String> = block
        .columns
        .iter()
        .map(|c| {
            let (ok, n) = c.run.ok_rows(&c.variant);
            if ok.len() == n {
                n.to_string()
            } else {
                format!("{}/{n}", ok.len())
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
    let mut foot = format!("n = {n} iterations; mean ±rel. stddev; * Welch's t-test p < {ALPHA}");
    if marked {
        foot.push_str(&format!(
            "\n{NOT_COMPARABLE}: emulated machine: throughput and latency depend on QEMU,\n\
             not on the kernel; placement and counters are real"
        ));
    }
    (rows, foot)
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

/// Plain text, every line within 72 columns.
pub fn text(runs: &[RunResults]) -> String {
    let mut out = String::new();
    for block in narrow(blocks(runs)) {
        let (rows, foot) = rows_of(&block);
        out.push_str(&block.title);
        out.push('\n');
        let titles: Vec<String> = block
            .columns
            .iter()
            .map(|c| c.title.chars().take(20).collect())
            .collect();
        // One column (a run with one variant) has nothing to change against.
        let header = match titles.get(1) {
            Some(t1) => format!("{:<20} {:>20} {:>20} {:>8}", "", titles[0], t1, "change"),
            None => format!("{:<20} {:>20}", "", titles[0]),
        };
        out.push_str(&header);
        out.push('\n');
        for (label, cells) in rows {
            let line = match cells.get(1) {
                Some(c1) => format!(
                    "{label:<20} {:>20} {:>20} {:>8}",
                    cells[0].value, c1.value, c1.change
                ),
                None => format!("{label:<20} {:>20}", cells[0].value),
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&foot);
        out.push_str("\n\n");
    }
    out
}

/// Markdown: one table per block, every column of the block.
pub fn markdown(runs: &[RunResults]) -> String {
    let mut out = String::new();
    for block in blocks(runs) {
        let (rows, foot) = rows_of(&block);
        out.push_str(&format!("**{}**\n\n| metric |", block.title));
        for (i, c) in block.columns.iter().enumerate() {
            out.push_str(&format!(" {} |", c.title));
            if i > 0 {
                out.push_str(" change |");
            }
        }
        out.push_str("\n| --- |");
        for i in 0..block.columns.len() {
            out.push_str(if i > 0 { " ---: | ---: |" } else { " ---: |" });
        }
        out.push('\n');
        for (label, cells) in rows {
            out.push_str(&format!("| {label} |"));
            for (i, c) in cells.iter().enumerate() {
                out.push_str(&format!(" {} |", c.value));
                if i > 0 {
                    out.push_str(&format!(" {} |", c.change));
                }
            }
            out.push('\n');
        }
        out.push_str(&format!("\n{foot}\n\n"));
    }
    out
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
        let mut d = b;
        d.memory_mib = vec![4096, 2048];
        assert!(mismatch(&[a, d]).unwrap().contains("10%"));
    }
}
