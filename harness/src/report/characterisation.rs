//! A machine's characterisation as a results directory: `matrix.csv` (idle
//! latency and read bandwidth per CPU node x memory node), `mixes.csv`
//! (bandwidth per read/write mix), `curve.csv` (loaded-latency curves) and
//! `system.json`. Written row by row as measured (`report::csv::TypedSink`),
//! read back as typed rows,
//! shown as tables, and compared across directories (two machines, or one
//! before and after a firmware or kernel change).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::schema::{CsvRows, MachineKind, SystemRecord};
use super::table::Table;
use crate::error::InputError;
use crate::workload::curve::CurvePoint;
use crate::workload::matrix::{Cell, MixRow};

pub const MATRIX_CSV: &str = "matrix.csv";
pub const MIXES_CSV: &str = "mixes.csv";
pub const CURVE_CSV: &str = "curve.csv";

/// A characterisation directory as `compare` and `plot` read it.
#[derive(Debug, Clone)]
pub struct Characterisation {
    pub dir: PathBuf,
    /// The kernel, short: a column title.
    pub label: String,
    pub emulated: bool,
    pub cells: Vec<Cell>,
    pub mixes: Vec<MixRow>,
    pub curve: Vec<CurvePoint>,
}

impl Characterisation {
    /// A directory `tierbench matrix -o` or `latency --curve -o` wrote
    /// (and not `tierbench run`).
    pub fn is_one(dir: &Path) -> bool {
        !dir.join("summary.csv").exists()
            && [MATRIX_CSV, CURVE_CSV].iter().any(|f| dir.join(f).exists())
    }

    /// Reads `dirs` when every one is a characterisation; `None` when none
    /// is (results of `tierbench run`); mixing the two is refused.
    pub fn read_all(dirs: &[PathBuf]) -> Result<Option<Vec<Characterisation>>, InputError> {
        let n = dirs.iter().filter(|d| Characterisation::is_one(d)).count();
        if n == 0 {
            return Ok(None);
        }
        if n < dirs.len() {
            return Err(InputError::new(
                "give either results directories of `tierbench run` or characterisations \
                 (`matrix -o`, `latency --curve -o`), not both"
                    .to_string(),
            ));
        }
        dirs.iter()
            .map(|d| Characterisation::read(d))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    pub fn read(dir: &Path) -> Result<Characterisation, InputError> {
        let sys = SystemRecord::read(dir)?;
        let file = |name: &str| -> Result<CsvRows, InputError> {
            let rows = CsvRows::read_keyed(&dir.join(name), "mem_node")?;
            for n in &rows.notes {
                crate::errln!("tierbench: note: {n}");
            }
            Ok(rows)
        };
        // A file created but never written to: no row was measured.
        let has_rows = |name: &str| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0);
        let maybe = |name: &str| has_rows(name).then(|| file(name)).transpose();
        let cells = maybe(MATRIX_CSV)?.map(|f| f.typed()).transpose()?;
        let mixes = maybe(MIXES_CSV)?.map(|f| f.typed()).transpose()?;
        let curve = maybe(CURVE_CSV)?.map(|f| f.typed()).transpose()?;
        let c = Characterisation {
            dir: dir.to_path_buf(),
            label: super::compare::short_release(&sys.kernel_release),
            emulated: sys.machine.kind == MachineKind::Emulated,
            cells: cells.unwrap_or_default(),
            mixes: mixes.unwrap_or_default(),
            curve: curve.unwrap_or_default(),
        };
        if c.cells.is_empty() && c.curve.is_empty() {
            return Err(InputError::new(format!(
                "{}: no measured rows in {MATRIX_CSV} or {CURVE_CSV}: the run ended before its \
                 first cell",
                dir.display()
            )));
        }
        Ok(c)
    }
}

/// `node1 (slow, no CPUs)`: how tables and charts name a memory node.
pub fn node_title(m: u32, role: impl std::fmt::Display, cpuless: bool) -> String {
    format!("node{m} ({role}{})", if cpuless { ", no CPUs" } else { "" })
}

/// The curve as a table: one block per memory node, its idle point first.
pub fn curve_table(points: &[CurvePoint]) -> String {
    let mut out = String::new();
    let mut nodes: Vec<u32> = points.iter().map(|p| p.mem_node).collect();
    nodes.dedup();
    for m in nodes {
        let pts: Vec<&CurvePoint> = points.iter().filter(|p| p.mem_node == m).collect();
        let p0 = pts[0];
        out.push_str(&format!(
            "loaded latency: cpu node {} -> mem {}, load {} x {}\n",
            p0.cpu_node,
            node_title(m, p0.mem_role, p0.cpuless),
            pts.iter().map(|p| p.load_threads).max().unwrap_or(0),
            p0.load_kernel
        ));
        let mut t = Table::new([
            "delay",
            "load MB/s",
            "best ns",
            "median ns",
            "worst ns",
            "samples",
        ]);
        for p in pts {
            t.push([
                p.delay.map_or("idle".into(), |d| d.to_string()),
                format!("{:.0}", p.load_mb_per_s),
                format!("{:.1}", p.latency_best_ns),
                format!("{:.1}", p.latency_median_ns),
                format!("{:.1}", p.latency_worst_ns),
                p.samples.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// The mixes as one table: a row per CPU node and kernel, a column per
/// memory node.
pub fn mixes_table(rows: &[MixRow]) -> String {
    let mut mems: Vec<&MixRow> = Vec::new();
    for r in rows {
        if !mems.iter().any(|m| m.mem_node == r.mem_node) {
            mems.push(r);
        }
    }
    let mut t = Table::new(
        ["cpu node", "kernel (reads share)"]
            .into_iter()
            .map(String::from)
            .chain(
                mems.iter()
                    .map(|m| node_title(m.mem_node, m.mem_role, m.cpuless)),
            ),
    );
    let mut keys: Vec<(u32, &str, f64)> = Vec::new();
    for r in rows {
        if !keys.iter().any(|k| k.0 == r.cpu_node && k.1 == r.kernel) {
            keys.push((r.cpu_node, &r.kernel, r.read_share));
        }
    }
    for (c, k, share) in keys {
        t.push(
            [format!("node{c}"), format!("{k} ({:.0}%)", share * 100.0)]
                .into_iter()
                .chain(mems.iter().map(|m| {
                    rows.iter()
                        .find(|r| r.cpu_node == c && r.kernel == k && r.mem_node == m.mem_node)
                        .map_or(String::new(), |r| format!("{:.0}", r.mb_per_s))
                })),
        );
    }
    format!(
        "bandwidth per read/write mix, MB/s (10^6 bytes counted as loaded + stored)\n{}",
        t.render()
    )
}

/// One compared figure: its name, unit, and value in each directory.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub figure: String,
    pub units: &'static str,
    pub values: Vec<Option<f64>>,
    /// % change of each directory against the first (None for the first,
    /// or where a side is missing).
    pub change_pct: Vec<Option<f64>>,
}

/// How a figure's value is found in a directory.
type Getter = Box<dyn Fn(&Characterisation) -> Option<f64>>;

/// Every figure of the first directory, with the others' values for it.
pub fn figures(runs: &[Characterisation]) -> Vec<Figure> {
    let base = &runs[0];
    let mut out: Vec<(String, &'static str, Getter)> = Vec::new();
    for c in &base.cells {
        let (cn, mn) = (c.cpu_node, c.mem_node);
        out.push((
            format!("idle latency {cn}->{mn}"),
            "ns",
            Box::new(move |r: &Characterisation| {
                r.cells
                    .iter()
                    .find(|x| x.cpu_node == cn && x.mem_node == mn)
                    .map(|x| x.latency_ns)
            }),
        ));
    }
    for m in &base.mixes {
        let (cn, mn, k) = (m.cpu_node, m.mem_node, m.kernel.clone());
        out.push((
            format!("{k} {cn}->{mn}"),
            "MB/s",
            Box::new(move |r: &Characterisation| {
                r.mixes
                    .iter()
                    .find(|x| x.cpu_node == cn && x.mem_node == mn && x.kernel == k)
                    .map(|x| x.mb_per_s)
            }),
        ));
    }
    for p in &base.curve {
        let (mn, d) = (p.mem_node, p.delay);
        let at = d.map_or("idle".into(), |d| format!("delay {d}"));
        let find = move |r: &Characterisation| {
            r.curve
                .iter()
                .find(|x| x.mem_node == mn && x.delay == d)
                .cloned()
        };
        let f2 = find;
        out.push((
            format!("curve node{mn} {at} median"),
            "ns",
            Box::new(move |r: &Characterisation| find(r).map(|x| x.latency_median_ns)),
        ));
        if d.is_some() {
            out.push((
                format!("curve node{mn} {at} load"),
                "MB/s",
                Box::new(move |r: &Characterisation| f2(r).map(|x| x.load_mb_per_s)),
            ));
        }
    }
    out.into_iter()
        .map(|(figure, units, get)| {
            let values: Vec<Option<f64>> = runs.iter().map(&get).collect();
            let change_pct = values
                .iter()
                .enumerate()
                .map(|(i, v)| match (i, values[0], v) {
                    (0, ..) => None,
                    (_, Some(b), Some(v)) if b != 0.0 => Some((v - b) / b.abs() * 100.0),
                    _ => None,
                })
                .collect();
            Figure {
                figure,
                units,
                values,
                change_pct,
            }
        })
        .collect()
}

/// Column titles: the kernels when they differ, else the directories'
/// names, else `run N`.
fn titles(runs: &[Characterisation]) -> Vec<String> {
    let distinct = |xs: &[String]| {
        let mut s = xs.to_vec();
        s.sort();
        s.dedup();
        s.len() == xs.len()
    };
    let kernels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    if distinct(&kernels) {
        return kernels;
    }
    let names: Vec<String> = runs
        .iter()
        .map(|r| {
            r.dir
                .file_name()
                .map(|n| n.to_string_lossy().chars().take(16).collect())
                .unwrap_or_default()
        })
        .collect();
    if distinct(&names) {
        return names;
    }
    (1..=runs.len()).map(|i| format!("run {i}")).collect()
}

fn value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

/// The figures side by side with the change against the first directory:
/// plain text (`markdown` false) or a Markdown table.
pub fn compare_text(runs: &[Characterisation], markdown: bool) -> String {
    let titles = titles(runs);
    let mut header = vec!["figure".to_string()];
    for (i, t) in titles.iter().enumerate() {
        header.push(t.clone());
        if i > 0 {
            header.push("change".into());
        }
    }
    let rows: Vec<Vec<String>> = figures(runs)
        .into_iter()
        .map(|f| {
            let mut row = vec![format!("{} {}", f.figure, f.units)];
            for (i, v) in f.values.iter().enumerate() {
                row.push(value(*v));
                if i > 0 {
                    row.push(f.change_pct[i].map_or(String::new(), |c| format!("{c:+.1}%")));
                }
            }
            row
        })
        .collect();
    let mut out = if markdown {
        let mut s = format!(
            "| {} |\n|{}\n",
            header.join(" | "),
            " --- |".repeat(header.len())
        );
        for r in &rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s
    } else {
        let mut t = Table::new(header);
        for r in rows {
            t.push(r);
        }
        t.render()
    };
    out.push_str("one measurement per figure (no iterations): changes within a few % are noise\n");
    if runs.iter().any(|r| r.emulated) {
        out.push_str(
            "emulated machine among these: latency and bandwidth are the emulator's, not the \
             memory's\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::matrix::MemRole;

    fn point(m: u32, delay: Option<u32>, mb: f64, ns: f64) -> CurvePoint {
        CurvePoint {
            cpu_node: 0,
            mem_node: m,
            mem_role: if m == 0 { MemRole::Fast } else { MemRole::Slow },
            cpuless: m != 0,
            load_kernel: "read".into(),
            load_threads: if delay.is_some() { 1 } else { 0 },
            delay,
            delay_ns: None,
            load_mb_per_s: mb,
            latency_best_ns: ns - 1.0,
            latency_median_ns: ns,
            latency_mean_ns: ns,
            latency_worst_ns: ns + 5.0,
            samples: 10,
            chase_size_bytes: None,
        }
    }

    fn dir_with(kernel: &str, curve: &[CurvePoint]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        crate::testing::system_record(kernel, None, "0:cpu+mem,1:mem")
            .write(d.path())
            .unwrap();
        let mut f = crate::report::csv::TypedSink::create(&d.path().join(CURVE_CSV)).unwrap();
        for p in curve {
            f.push(p).unwrap();
        }
        d
    }

    #[test]
    fn a_characterisation_reads_back_and_compares_point_by_point() {
        let a = dir_with(
            "6.1.0-57-amd64",
            &[point(1, None, 0.0, 300.0), point(1, Some(0), 4000.0, 450.0)],
        );
        let b = dir_with(
            "6.12.117+deb12-amd64",
            &[point(1, None, 0.0, 330.0), point(1, Some(0), 5000.0, 450.0)],
        );
        assert!(Characterisation::is_one(a.path()));
        let runs = [
            Characterisation::read(a.path()).unwrap(),
            Characterisation::read(b.path()).unwrap(),
        ];
        let figs = figures(&runs);
        let names: Vec<&str> = figs.iter().map(|f| f.figure.as_str()).collect();
        assert_eq!(
            names,
            [
                "curve node1 idle median",
                "curve node1 delay 0 median",
                "curve node1 delay 0 load"
            ]
        );
        assert_eq!(figs[0].change_pct[0], None);
        assert!((figs[0].change_pct[1].unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(figs[2].values, vec![Some(4000.0), Some(5000.0)]);
        let text = compare_text(&runs, false);
        assert!(
            text.contains("6.12.117+deb12") && text.contains("+25.0%"),
            "{text}"
        );
        let table = curve_table(&runs[0].curve);
        assert!(
            table.contains("idle") && table.contains("node1 (slow, no CPUs)"),
            "{table}"
        );
    }

    #[test]
    fn a_directory_without_rows_is_refused() {
        let d = dir_with("6.12", &[]);
        let e = Characterisation::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("no measured rows"), "{e}");
    }
}
