//! Progress of a run on stderr: a bar (variant, iteration, time left) when
//! stderr is a terminal, one plain line per row otherwise (CI logs, pipes).
//! `--quiet` uses neither. It is used through a shared reference (its count
//! is a `Cell`), so the caller can finish it after the run.

use std::cell::Cell;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::{RowKind, RunObserver, SampleRow};

pub enum RunProgress {
    Bar {
        bar: ProgressBar,
        /// Measured seconds of one variant run (warm-up included).
        per_run_s: f64,
        done_runs: Cell<u64>,
        iterations: u32,
    },
    Lines,
}

impl RunProgress {
    /// A bar on a terminal, lines elsewhere.
    pub fn for_stderr(runs: usize, per_run_s: f64, iterations: u32) -> Self {
        if !std::io::stderr().is_terminal() {
            return RunProgress::Lines;
        }
        let bar = ProgressBar::new((runs as f64 * per_run_s * 1000.0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% left {eta} {msg}",
            )
            .expect("valid template"),
        );
        RunProgress::Bar {
            bar,
            per_run_s,
            done_runs: Cell::new(0),
            iterations,
        }
    }

    pub fn finish(&self) {
        if let RunProgress::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

impl RunObserver for &RunProgress {
    fn starting(&mut self, iteration: u32, variant: &str) {
        match *self {
            RunProgress::Bar {
                bar,
                per_run_s,
                done_runs,
                iterations,
            } => {
                bar.set_position((done_runs.get() as f64 * *per_run_s * 1000.0) as u64);
                bar.set_message(format!("{variant} (iteration {iteration}/{iterations})"));
                done_runs.set(done_runs.get() + 1);
            }
            RunProgress::Lines => {
                crate::errln!("-- {variant}, iteration {iteration}");
            }
        }
    }
    fn row(&mut self, r: &SampleRow) -> std::io::Result<()> {
        match *self {
            RunProgress::Bar {
                bar,
                per_run_s,
                done_runs,
                ..
            } => {
                let base = done_runs.get().saturating_sub(1) as f64 * *per_run_s;
                bar.set_position(((base + r.t_s) * 1000.0) as u64);
                if r.kind == RowKind::Summary {
                    bar.println(summary_line(r));
                }
                Ok(())
            }
            RunProgress::Lines => {
                let line = match r.kind {
                    RowKind::Interval => interval_line(r),
                    RowKind::Summary => summary_line(r),
                };
                // Progress is a courtesy: a closed stderr (`2>&1 | head`)
                // must not abandon a measurement whose rows go to files.
                crate::errln!("{line}");
                Ok(())
            }
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|s| format!("{:5.1}%", s * 100.0))
        .unwrap_or_else(|| "    -".into())
}

fn interval_line(r: &SampleRow) -> String {
    if let Some(p) = &r.program {
        let mib = p.anon_kib_on.iter().flatten().sum::<u64>() >> 10;
        return format!(
            "   t={:7.2}s  resident={mib} MiB  on fast={}",
            r.t_s,
            pct(p.fast_share)
        );
    }
    format!(
        "   t={:7.2}s  accesses/s={:<10}  p99={:>7}  hot on fast={}",
        r.t_s,
        r.accesses_per_s
            .map(|a| format!("{a:.3e}"))
            .unwrap_or_else(|| "-".into()),
        r.latency
            .map(|l| format!("{}ns", l.p99))
            .unwrap_or_else(|| "-".into()),
        pct(r.hot_fast_share)
    )
}

fn summary_line(r: &SampleRow) -> String {
    if let Some(p) = &r.program {
        return format!(
            "=> {} #{}: {}  wall={}  score={} {}",
            r.variant,
            r.iteration,
            r.status,
            p.wall_s.map_or("-".into(), |w| format!("{w:.2}s")),
            p.score.map_or("-".into(), |s| s.to_string()),
            p.score_unit.as_deref().unwrap_or("")
        );
    }
    format!(
        "=> {} #{}: {}  accesses/s={}  hot on fast={}",
        r.variant,
        r.iteration,
        r.status,
        r.accesses_per_s
            .map(|a| format!("{a:.3e}"))
            .unwrap_or_else(|| "-".into()),
        pct(r.hot_fast_share)
    )
}
