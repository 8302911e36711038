//! `tierbench plot`: charts as SVG and PNG. The timeline of one or more
//! runs (promotion rate, share of the hot set on the fast tier, throughput
//! over time; each point the mean over the iterations of that interval),
//! and the loaded-latency curve of one or more characterisations (latency
//! against delivered bandwidth).
//!
//! Every chart reads the same way: one colour per variant (or memory
//! node), one dash style per run (or kernel), the legend beside the plot
//! and never over the data, and axes that start where the data starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::schema::{self, CsvRows, SystemRecord};
use crate::error::InputError;
use crate::workload::curve::CurvePoint;

/// Where the font comes from: Debian's fonts-dejavu-core.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One line: (x, y) points, its colour (variant or node) and dash style
/// (run or kernel) as indices.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub colour: usize,
    pub dash: usize,
}

/// The three panels' lines.
#[derive(Debug, Default)]
pub struct Timeline {
    pub promote_rate: Vec<Series>,
    pub hot_fast: Vec<Series>,
    pub throughput: Vec<Series>,
    /// Runs of an external program: the second panel is its memory on the
    /// fast tier, the third its resident memory, and each label has its
    /// score.
    pub program: bool,
}

/// Reads `timeseries.csv` of each directory and averages every interval
/// over the iterations.
pub fn read(dirs: &[PathBuf]) -> Result<Timeline, InputError> {
    let mut t = Timeline::default();
    // A variant keeps its colour across runs; a run keeps its dash.
    let mut colours: Vec<String> = Vec::new();
    for (dash, dir) in dirs.iter().enumerate() {
        let csv = CsvRows::read(&dir.join("timeseries.csv"))?;
        for n in &csv.notes {
            crate::errln!("tierbench plot: note: {n}");
        }
        let col = |n: &str| csv.column(n);
        let (v, it, ts, span) = (
            col(schema::col::VARIANT),
            col(schema::col::ITERATION),
            col(schema::col::T_S),
            col(schema::col::SPAN_S),
        );
        let (Some(v), Some(it), Some(ts), Some(span)) = (v, it, ts, span) else {
            return Err(InputError::new(format!(
                "{}: not a tierbench timeseries (schema {})",
                csv.path.display(),
                schema::SCHEMA_VERSION
            )));
        };
        let promote = col(&schema::col::vmstat("pgpromote_success"));
        // A program run: its memory on the fast tier, and how much it has
        // resident, in place of the hot set and the workers' throughput.
        let program = col(schema::col::ANON_FAST_SHARE).is_some();
        if dash > 0 && program != t.program {
            return Err(InputError::new(format!(
                "{}: a run of {} beside one of {}: plot them apart",
                dir.display(),
                if program {
                    "a program"
                } else {
                    "the built-in workers"
                },
                if program {
                    "the built-in workers"
                } else {
                    "a program"
                },
            )));
        }
        t.program = program;
        let (hot, acc) = match program {
            true => (col(schema::col::ANON_FAST_SHARE), None),
            false => (
                col(schema::col::HOT_FAST_SHARE),
                col(schema::col::ACCESSES_PER_S),
            ),
        };
        let anon: Vec<usize> = (0..csv.header.len())
            .filter(|&i| csv.header[i].starts_with("anon_kib_node"))
            .collect();
        let scores = if program {
            scores(dir)
        } else {
            BTreeMap::new()
        };
        // variant -> interval index -> metric -> values over iterations
        type Acc = BTreeMap<usize, [Vec<f64>; 4]>;
        let mut by: Vec<(String, Acc)> = Vec::new();
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (row, r) in csv.rows.iter().enumerate() {
            // What no run writes would stretch the axes to nothing (t_s =
            // -1e300) or draw no line at all (NaN): refused, naming the row.
            for (c, min) in [(Some(ts), 0.0), (promote, f64::MIN), (hot, 0.0), (acc, 0.0)] {
                let Some(c) = c.filter(|&c| !r[c].is_empty()) else {
                    continue;
                };
                if !r[c].parse::<f64>().is_ok_and(|x| x.is_finite() && x >= min) {
                    return Err(InputError::new(format!(
                        "{} row {}: {} = {:?}: no run writes that (a finite number{})",
                        csv.path.display(),
                        row + 1,
                        csv.header[c],
                        r[c],
                        if min == 0.0 { " of at least 0" } else { "" }
                    )));
                }
            }
            let key = (r[v].to_string(), r[it].to_string());
            let i = index.entry(key).or_insert(0);
            let slot = match by.iter().position(|(name, _)| name == &r[v]) {
                Some(p) => p,
                None => {
                    by.push((r[v].to_string(), Acc::new()));
                    by.len() - 1
                }
            };
            let num = |c: Option<usize>| c.and_then(|c| r[c].parse::<f64>().ok());
            let vals = by[slot].1.entry(*i).or_default();
            let sp = num(Some(span)).unwrap_or(1.0);
            let mib = || {
                let kib: Option<f64> = anon.iter().map(|&c| num(Some(c))).sum();
                kib.map(|k| k / 1024.0)
            };
            for (k, x) in [
                num(Some(ts)),
                num(promote).map(|p| p / sp),
                num(hot).map(|h| h * 100.0),
                if program { mib() } else { num(acc) },
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(x) = x {
                    vals[k].push(x);
                }
            }
            *i += 1;
        }
        let prefix = if dirs.len() > 1 {
            let sys = SystemRecord::read(dir)?;
            format!("{} ", sys.kernel_release.trim_end_matches("-amd64"))
        } else {
            String::new()
        };
        let mean =
            |xs: &Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        for (name, acc) in by {
            let colour = colours.iter().position(|c| c == &name).unwrap_or_else(|| {
                colours.push(name.clone());
                colours.len() - 1
            });
            let score = scores
                .get(&name)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let line = |k: usize| Series {
                colour,
                dash,
                label: format!("{prefix}{name}{score}"),
                points: acc
                    .values()
                    .filter_map(|vals| Some((mean(&vals[0])?, mean(&vals[k])?)))
                    .collect(),
            };
            t.promote_rate.push(line(1));
            t.hot_fast.push(line(2));
            t.throughput.push(line(3));
        }
    }
    Ok(t)
}

fn font_loaded() -> Result<(), String> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| {
                format!("{FONT}: {e} (install it: apt-get install fonts-dejavu-core)")
            })?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
                .map_err(|_| format!("{FONT}: not a font plotters can read"))
        })
        .clone()
}

/// Width of the legend strip right of every plot.
const LEGEND_W: u32 = 330;

/// Ten colours apart enough to tell lines by (Tableau's), none too pale
/// for white.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Dash and gap lengths in pixels of dash style `i`: solid, dashed, dotted,
/// long dashes.
fn dash_pattern(i: usize) -> Option<(u32, u32)> {
    [None, Some((10, 5)), Some((2, 4)), Some((18, 6))][i % 4]
}

/// Where an axis runs: from the data's smallest value to its largest, with
/// a little room, and a unit-wide range around a single value.
fn axis_range(values: impl Iterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if hi - lo < 1e-9 {
        let r = (lo.abs() * 0.05).max(0.5);
        return lo - r..hi + r;
    }
    let room = (hi - lo) * pad;
    lo - room..hi + room
}

/// A short sample of a line's style for the legend, from `x0` to `x1`.
fn legend_marks(x0: i32, x1: i32, y: i32, dash: usize) -> Vec<Vec<(i32, i32)>> {
    match dash_pattern(dash) {
        None => vec![vec![(x0, y), (x1, y)]],
        Some((on, off)) => (x0..x1)
            .step_by((on + off) as usize)
            .map(|x| vec![(x, y), ((x + on as i32).min(x1), y)])
            .collect(),
    }
}

/// Axis labels: plain below 10^5, exponent above.
fn tick(v: &f64) -> String {
    if v.abs() >= 1e5 {
        format!("{v:.1e}")
    } else if v.abs() >= 10.0 || *v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One chart: the plot on the left, its legend in a strip on the right.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Series],
    markers: bool,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (w, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(w.saturating_sub(LEGEND_W));
    let all = || lines.iter().flat_map(|s| s.points.iter());
    let x = axis_range(all().map(|p| p.0), 0.02);
    let y = axis_range(all().map(|p| p.1), 0.06);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .y_label_formatter(&tick)
        .x_label_formatter(&tick)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let colour = |s: &Series| {
        let (r, g, b) = COLOURS[s.colour % COLOURS.len()];
        RGBColor(r, g, b).stroke_width(2)
    };
    for s in lines {
        let style = colour(s);
        let pts = s.points.iter().copied();
        match dash_pattern(s.dash) {
            None => chart.draw_series(LineSeries::new(pts, style)).map(|_| ()),
            Some((on, off)) => chart
                .draw_series(DashedLineSeries::new(pts, on, off, style))
                .map(|_| ()),
        }
        .map_err(err)?;
        if markers {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, style.filled())))
                .map_err(err)?;
        }
    }
    // The legend strip: one entry per line, its colour and dash.
    let top = 40;
    for (i, s) in lines.iter().enumerate() {
        let y = top + 20 * i as i32;
        for seg in legend_marks(4, 34, y, s.dash) {
            legend
                .draw(&PathElement::new(seg, colour(s)))
                .map_err(err)?;
        }
        legend
            .draw(&Text::new(
                s.label.clone(),
                (40, y - 7),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// A program run's mean score per variant, with its unit (`9013
/// requests/s`), from summary.csv: what the legend says beside each line.
fn scores(dir: &Path) -> BTreeMap<String, String> {
    let Ok(summary) = CsvRows::read(&dir.join("summary.csv")) else {
        return BTreeMap::new();
    };
    let mut by: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
    for r in summary.maps() {
        let score = r
            .get(schema::col::SCORE)
            .and_then(|v| v.parse::<f64>().ok());
        if let (Some(v), Some(x)) = (r.get(schema::col::VARIANT), score) {
            let e = by.entry(v.clone()).or_default();
            e.0.push(x);
            e.1 = r.get(schema::col::SCORE_UNIT).cloned().unwrap_or_default();
        }
    }
    by.into_iter()
        .map(|(v, (xs, unit))| {
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            (v, format!("{} {unit}", tick(&mean)).trim_end().to_string())
        })
        .collect()
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, t: &Timeline) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    let s = "seconds";
    panel(
        &panels[0],
        "promotion rate",
        s,
        "pgpromote_success / s",
        &t.promote_rate,
        false,
    )?;
    let (middle, middle_unit, bottom, bottom_unit) = match t.program {
        true => (
            "program's anonymous memory on the fast tier",
            "% of it",
            "program's resident anonymous memory",
            "MiB",
        ),
        false => (
            "hot set on the fast tier",
            "% of hot pages",
            "throughput",
            "accesses / s",
        ),
    };
    panel(&panels[1], middle, s, middle_unit, &t.hot_fast, false)?;
    panel(&panels[2], bottom, s, bottom_unit, &t.throughput, false)?;
    root.present().map_err(|e| e.to_string())
}

/// The loaded-latency curves of one or more runs, each its label (e.g. the
/// kernel, used when there are several) and its points: one colour per
/// memory node, one dash style per run, median latency against the load's
/// delivered bandwidth.
pub fn curve_series(runs: &[(&str, &[CurvePoint])]) -> Vec<Series> {
    let mut nodes: Vec<u32> = runs
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.mem_node))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut out = Vec::new();
    for (dash, (label, curve)) in runs.iter().enumerate() {
        let prefix = if runs.len() > 1 {
            format!("{label} ")
        } else {
            String::new()
        };
        for (colour, &m) in nodes.iter().enumerate() {
            let mut pts: Vec<&CurvePoint> = curve.iter().filter(|p| p.mem_node == m).collect();
            let Some(first) = pts.first() else { continue };
            let title = super::characterisation::node_title(m, first.mem_role, first.cpuless);
            pts.sort_by(|a, b| a.load_mb_per_s.total_cmp(&b.load_mb_per_s));
            out.push(Series {
                label: format!("{prefix}{title}"),
                points: pts
                    .iter()
                    .map(|p| (p.load_mb_per_s, p.latency_median_ns))
                    .collect(),
                colour,
                dash,
            });
        }
    }
    out
}

/// One chart panel: its title and lines.
pub type Panel = (String, Vec<Series>);

/// The curves of several runs on one panel, or one panel per run where
/// their ranges differ tenfold or more (an emulated machine's 0.1 GB/s
/// beside a native 17 GB/s would be squeezed flat against the axis).
pub fn curve_panels(runs: &[(&str, &[CurvePoint])]) -> Vec<Panel> {
    const TITLE: &str = "loaded latency (median of samples)";
    let max =
        |pts: &[CurvePoint], f: fn(&CurvePoint) -> f64| pts.iter().map(f).fold(0.0f64, f64::max);
    let spread = |f: fn(&CurvePoint) -> f64| {
        let maxima: Vec<f64> = runs
            .iter()
            .map(|(_, p)| max(p, f))
            .filter(|m| *m > 0.0)
            .collect();
        let hi = maxima.iter().copied().fold(0.0f64, f64::max);
        let lo = maxima.iter().copied().fold(f64::INFINITY, f64::min);
        hi / lo
    };
    let apart = runs.len() > 1
        && (spread(|p| p.load_mb_per_s) >= 10.0 || spread(|p| p.latency_median_ns) >= 10.0);
    if !apart {
        return vec![(TITLE.to_string(), curve_series(runs))];
    }
    runs.iter()
        .map(|run| (format!("{TITLE}: {}", run.0), curve_series(&[*run])))
        .collect()
}

fn draw_curve<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, (title, lines)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        panel(
            area,
            title,
            "load's delivered bandwidth, MB/s (10^6 B)",
            "ns per load",
            lines,
            true,
        )?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes the curve chart as `stem.svg` and `stem.png`, one panel above
/// the other.
pub fn write_curve(panels: &[Panel], stem: &Path) -> Result<Vec<PathBuf>, String> {
    font_loaded()?;
    let size = (1050, 560 * panels.len().max(1) as u32);
    let (svg, png) = (with_ext(stem, "svg"), with_ext(stem, "png"));
    draw_curve(SVGBackend::new(&svg, size).into_drawing_area(), panels)?;
    draw_curve(BitMapBackend::new(&png, size).into_drawing_area(), panels)?;
    Ok(vec![svg, png])
}

/// The bandwidth expansion sweep: one line per kernel, bandwidth against
/// the share of the buffer the weights put on the fast tier.
pub fn write_sweep(
    points: &[crate::workload::sweep::SweepPoint],
    stem: &Path,
) -> Result<Vec<PathBuf>, String> {
    let mut kernels: Vec<&str> = points.iter().map(|p| p.kernel.as_str()).collect();
    kernels.dedup();
    let lines: Vec<Series> = kernels
        .iter()
        .enumerate()
        .map(|(colour, k)| {
            let mut pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.kernel == *k)
                .filter_map(|p| Some((p.fast_share_expected? * 100.0, p.mb_per_s?)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: k.to_string(),
                points: pts,
                colour,
                dash: 0,
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if lines.is_empty() {
        return Err("no point was measured".into());
    }
    let emulated = points.iter().any(|p| !p.comparable);
    let title = if emulated {
        "bandwidth expansion (emulated: placement real, bandwidth the host's)"
    } else {
        "bandwidth expansion under weighted interleave"
    };
    font_loaded()?;
    let size = (1050, 560);
    let (svg, png) = (with_ext(stem, "svg"), with_ext(stem, "png"));
    draw_xy(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        &lines,
    )?;
    draw_xy(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        &lines,
    )?;
    Ok(vec![svg, png])
}

fn draw_xy<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Series],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    panel(
        &root,
        title,
        "share of the buffer on the fast tier by the weights, % (100: fast only)",
        "MB/s (10^6 B)",
        lines,
        true,
    )?;
    root.present().map_err(|e| e.to_string())
}

/// `stem.ext`, appended rather than replaced: a stem like
/// `x-6.1-vs-6.12` has dots.
fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", stem.display()))
}

/// Writes `stem.svg` and `stem.png`.
pub fn write(t: &Timeline, stem: &Path) -> Result<Vec<PathBuf>, String> {
    font_loaded()?;
    let size = (1150, 1050);
    let (svg, png) = (with_ext(stem, "svg"), with_ext(stem, "png"));
    draw(SVGBackend::new(&svg, size).into_drawing_area(), t)?;
    draw(BitMapBackend::new(&png, size).into_drawing_area(), t)?;
    Ok(vec![svg, png])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(mb_per_s: f64, ns: f64) -> CurvePoint {
        CurvePoint {
            cpu_node: 0,
            mem_node: 0,
            mem_role: crate::workload::matrix::MemRole::Fast,
            cpuless: false,
            load_kernel: "read".into(),
            load_threads: 1,
            delay: Some(0),
            delay_ns: None,
            load_mb_per_s: mb_per_s,
            latency_best_ns: ns,
            latency_median_ns: ns,
            latency_mean_ns: ns,
            latency_worst_ns: ns,
            samples: 10,
            chase_size_bytes: None,
        }
    }

    #[test]
    fn curves_tenfold_apart_get_a_panel_each() {
        let native = [point(0.0, 90.0), point(17_000.0, 180.0)];
        let emulated = [point(0.0, 250.0), point(300.0, 650.0)];
        let close = [point(0.0, 100.0), point(9_000.0, 200.0)];
        let apart = curve_panels(&[("native", &native), ("emulated", &emulated)]);
        assert_eq!(apart.len(), 2);
        assert!(apart[1].0.ends_with(": emulated"), "{}", apart[1].0);
        assert_eq!(curve_panels(&[("a", &native), ("b", &close)]).len(), 1);
    }

    #[test]
    fn values_no_run_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let header = "variant,iteration,t_s,span_s,accesses_per_s,hot_fast_share\n";
        for (row, what) in [
            ("a,1,-1e300,1.0,10,0.5\n", "t_s"),
            ("a,1,1.0,1.0,NaN,0.5\n", "accesses_per_s"),
            ("a,1,1.0,1.0,10,inf\n", "hot_fast_share"),
        ] {
            std::fs::write(dir.path().join("timeseries.csv"), format!("{header}{row}")).unwrap();
            let e = read(&[dir.path().to_path_buf()]).unwrap_err().to_string();
            assert!(e.contains(&format!("row 1: {what}")), "{e}");
        }
    }

    #[test]
    fn a_program_run_plots_its_memory_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("timeseries.csv"),
            "variant,iteration,t_s,span_s,accesses_per_s,hot_fast_share,anon_kib_node0,\
             anon_kib_node1,anon_fast_share,vmstat.pgpromote_success\n\
             a,1,1.0,1.0,,,1024,1024,0.5,0\na,1,2.0,1.0,,,2048,0,1.0,10\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("summary.csv"),
            "variant,iteration,status,score,score_unit\na,1,ok,12.5,ops/s\n",
        )
        .unwrap();
        let t = read(&[dir.path().to_path_buf()]).unwrap();
        assert!(t.program);
        assert_eq!(t.hot_fast[0].points, vec![(1.0, 50.0), (2.0, 100.0)]);
        assert_eq!(t.throughput[0].points, vec![(1.0, 2.0), (2.0, 2.0)]);
        assert_eq!(t.hot_fast[0].label, "a (12 ops/s)");
    }

    #[test]
    fn intervals_are_averaged_over_iterations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("timeseries.csv"),
            "variant,iteration,t_s,span_s,accesses_per_s,hot_fast_share,vmstat.pgpromote_success\n\
             a,1,1.0,1.0,10,0.5,100\na,1,2.0,1.0,20,1.0,0\n\
             a,2,1.01,1.0,30,0.7,300\na,2,2.01,1.0,40,1.0,0\n",
        )
        .unwrap();
        let t = read(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(t.throughput[0].points, vec![(1.005, 20.0), (2.005, 30.0)]);
        assert_eq!(t.promote_rate[0].points[0].1, 200.0);
        assert!((t.hot_fast[0].points[0].1 - 60.0).abs() < 1e-9);
        if font_loaded().is_ok() {
            let files = write(&t, &dir.path().join("timeline")).unwrap();
            let svg = std::fs::read_to_string(&files[0]).unwrap();
            assert!(svg.contains("promotion rate") && svg.contains("<polyline"));
            assert!(std::fs::metadata(&files[1]).unwrap().len() > 1000);
        } else {
            crate::testing::skip("plot", &format!("no {FONT}: the charts are not drawn"));
        }
    }
}
