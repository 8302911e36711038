//! `tierbench plot`: the timeline of one or more runs as SVG and PNG —
//! promotion rate, share of the hot set on the fast tier, and throughput
//! over time, one line per variant (per run and variant with several
//! runs). Each point is the mean over the iterations of that interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::schema::{self, CsvRows, SystemRecord};
use crate::error::InputError;

/// Where the font comes from: Debian's fonts-dejavu-core.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One line: (seconds, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The three panels' lines.
#[derive(Debug, Default)]
pub struct Timeline {
    pub promote_rate: Vec<Series>,
    pub hot_fast: Vec<Series>,
    pub throughput: Vec<Series>,
}

/// Reads `timeseries.csv` of each directory and averages every interval
/// over the iterations.
pub fn read(dirs: &[PathBuf]) -> Result<Timeline, InputError> {
    let mut t = Timeline::default();
    for dir in dirs {
        let csv = CsvRows::read(&dir.join("timeseries.csv"))?;
        for n in &csv.notes {
            eprintln!("tierbench plot: note: {n}");
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
        let (hot, acc) = (
            col(schema::col::HOT_FAST_SHARE),
            col(schema::col::ACCESSES_PER_S),
        );
        // variant -> interval index -> metric -> values over iterations
        type Acc = BTreeMap<usize, [Vec<f64>; 4]>;
        let mut by: Vec<(String, Acc)> = Vec::new();
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in &csv.rows {
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
            for (k, x) in [
                num(Some(ts)),
                num(promote).map(|p| p / sp),
                num(hot).map(|h| h * 100.0),
                num(acc),
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
            let line = |k: usize| Series {
                label: format!("{prefix}{name}"),
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

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    lines: &[Series],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let all = || lines.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0f64, f64::max).max(1.0) * 1.08;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .y_label_formatter(&|v: &f64| {
            if v.abs() >= 1e5 {
                format!("{v:.1e}")
            } else {
                format!("{v:.0}")
            }
        })
        .x_label_formatter(&|v: &f64| format!("{v:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (i, s) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba().stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color))
            .map_err(err)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, t: &Timeline) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    panel(
        &panels[0],
        "promotion rate",
        "pgpromote_success / s",
        &t.promote_rate,
    )?;
    panel(
        &panels[1],
        "hot set on the fast tier",
        "% of hot pages",
        &t.hot_fast,
    )?;
    panel(&panels[2], "throughput", "accesses / s", &t.throughput)?;
    root.present().map_err(|e| e.to_string())
}

/// Writes `stem.svg` and `stem.png`.
pub fn write(t: &Timeline, stem: &Path) -> Result<Vec<PathBuf>, String> {
    font_loaded()?;
    let size = (900, 1050);
    // Appended, not replaced: a stem like `x-6.1-vs-6.12` has dots.
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", stem.display()));
    let svg = with("svg");
    draw(SVGBackend::new(&svg, size).into_drawing_area(), t)?;
    let png = with("png");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), t)?;
    Ok(vec![svg, png])
}

#[cfg(test)]
mod tests {
    use super::*;

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
