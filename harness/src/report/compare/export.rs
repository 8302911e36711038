//! The formats of `tierbench compare`, one exporter each behind one
//! trait: every format renders the same computed blocks, so a number in
//! one is in all of them.

use serde_json::json;

use super::{Cell, Change, MetricRow, Source, TableBlock, ALPHA, NOT_COMPARABLE};
use crate::program::Better;

/// A format of the comparison.
pub trait Exporter {
    fn render(&self, blocks: &[TableBlock]) -> String;
}

/// The formats that are a sequence of blocks, each rendered on its own.
trait PerBlock {
    fn block(&self, block: &TableBlock, out: &mut String);
}

impl<T: PerBlock> Exporter for T {
    fn render(&self, blocks: &[TableBlock]) -> String {
        let mut out = String::new();
        for b in blocks {
            self.block(b, &mut out);
        }
        out
    }
}

/// Plain text for a changelog: label, baseline, one column and its change
/// (the caller narrows wider blocks), within 72 columns.
pub struct Text;

impl PerBlock for Text {
    fn block(&self, block: &TableBlock, out: &mut String) {
        out.push_str(&block.title);
        out.push('\n');
        // Names longer than a column (`weighted-interleave:0=3,1=1`) would
        // be cut to the same 20 characters: they are lettered, and spelled
        // out under the title.
        let long = block.columns.iter().any(|c| c.title.chars().count() > 20);
        let titles: Vec<String> = block
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if long {
                    let letter = format!("({})", (b'a' + (i % 26) as u8) as char);
                    out.push_str(&format!("  {letter} {}\n", c.title));
                    letter
                } else {
                    c.title.clone()
                }
            })
            .collect();
        // One column (a run with one variant) has nothing to change against.
        let header = match titles.get(1) {
            Some(t1) => format!("{:<20} {:>20} {:>20} {:>8}", "", titles[0], t1, "change"),
            None => format!("{:<20} {:>20}", "", titles[0]),
        };
        out.push_str(&header);
        out.push('\n');
        for row in &block.rows {
            let label = row.metric.label;
            let cells = &row.cells;
            let line = match cells.get(1) {
                Some(c1) => format!(
                    "{label:<20} {:>20} {:>20} {:>8}",
                    cells[0].value_text(),
                    c1.value_text(),
                    c1.change_text()
                ),
                None => format!("{label:<20} {:>20}", cells[0].value_text()),
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&block.footer());
        out.push_str("\n\n");
    }
}

/// Markdown: one table per block, every column of the block.
pub struct Markdown;

impl PerBlock for Markdown {
    fn block(&self, block: &TableBlock, out: &mut String) {
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
        for row in &block.rows {
            out.push_str(&format!("| {} |", row.metric.label));
            for (i, c) in row.cells.iter().enumerate() {
                out.push_str(&format!(" {} |", c.value_text()));
                if i > 0 {
                    out.push_str(&format!(" {} |", c.change_text()));
                }
            }
            out.push('\n');
        }
        out.push_str(&format!("\n{}\n\n", block.footer()));
    }
}

/// One JSON document: every block, column and cell with its numbers
/// (mean, sd, relative sd, n, change, p-value), for CI dashboards.
pub struct Json;

/// The version of the JSON document's shape.
pub const JSON_VERSION: u32 = 1;

impl Exporter for Json {
    fn render(&self, blocks: &[TableBlock]) -> String {
        let doc = json!({
            "tierbench_compare": JSON_VERSION,
            "alpha": ALPHA,
            "not_comparable": NOT_COMPARABLE,
            "blocks": blocks.iter().map(json_block).collect::<Vec<_>>(),
        });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("a JSON value")
        )
    }
}

fn json_block(block: &TableBlock) -> serde_json::Value {
    let columns: Vec<_> = block
        .columns
        .iter()
        .map(|c| {
            json!({
                "title": c.title,
                "dir": c.dir.display().to_string(),
                "variant": c.variant,
                "ok_iterations": c.ok,
                "iterations": c.iterations,
            })
        })
        .collect();
    let rows: Vec<_> = block
        .rows
        .iter()
        .map(|r| {
            json!({
                "metric": r.metric.label,
                "units": r.metric.units,
                "cells": r.cells.iter().map(json_cell).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "title": block.title,
        "scenario": block.scenario,
        "columns": columns,
        "rows": rows,
        "footer": block.footer(),
    })
}

fn json_cell(c: &Cell) -> serde_json::Value {
    let (pct, p) = match c.change {
        Change::Percent { pct, p } => (Some(pct), p),
        _ => (None, None),
    };
    json!({
        "mean": c.summary.map(|s| s.mean),
        "sd": c.summary.map(|s| s.sd),
        "rel_sd": c.summary.and_then(|s| s.rel_sd()),
        "n": c.summary.map(|s| s.n).unwrap_or(0),
        "status": if c.summary.is_some() { "ok" } else { c.status.as_str() },
        "baseline": c.change == Change::Baseline,
        "comparable": c.change != Change::NotComparable,
        "change_pct": pct,
        "p_value": p,
        "significant": c.change.significant(),
        "text": c.value_text(),
        "change_text": c.change_text(),
    })
}

/// mmtests' compare-kernels layout, for where MM reviewers expect it: per
/// block an `Amean` line for every metric (the text table's means), an
/// `Hmean` line for the rates (accesses/s and per CPU-second, a
/// higher-is-better score), a
/// `Stddev` line for every metric, then the vmstat counters as `Ops` lines.
/// Changes are signed as mmtests signs them, positive when better (so a
/// latency that fell is positive), in parentheses, between `*` where
/// Welch's test gives p < 0.05; a metric better neither way (an amount
/// moved) keeps the plain change. `Stddev` changes are mmtests' `pndiff`:
/// positive when the spread fell.
pub struct Mmtests;

/// Width of a change field: ` (%7.2f%)`.
const MM_CHANGE: usize = 11;

impl PerBlock for Mmtests {
    fn block(&self, block: &TableBlock, out: &mut String) {
        let (metrics, ops): (Vec<&MetricRow>, Vec<&MetricRow>) = block
            .rows
            .iter()
            .partition(|r| r.metric.source != Source::Vmstat);
        let field = block
            .rows
            .iter()
            .flat_map(|r| &r.cells)
            .filter_map(|c| c.summary.map(|s| format!("{:.2}", s.mean).len()))
            .max()
            .unwrap_or(0)
            .max(12);
        let label = metrics
            .iter()
            .chain(&ops)
            .map(|r| r.metric.label.len())
            .max()
            .unwrap_or(0);
        out.push_str(&block.title);
        out.push('\n');
        // Titles wider than a column are lettered, as in the text table.
        let width = field + MM_CHANGE;
        let long = block.columns.iter().any(|c| c.title.len() > width - 1);
        let mut header = format!("{:<1$}", "", 10 + label);
        for (i, c) in block.columns.iter().enumerate() {
            let title = if long {
                let letter = format!("({})", (b'a' + (i % 26) as u8) as char);
                out.push_str(&format!("  {letter} {}\n", c.title));
                letter
            } else {
                c.title.clone()
            };
            header.push_str(&format!("{title:>width$}"));
        }
        out.push_str(header.trim_end());
        out.push('\n');
        let line =
            |out: &mut String, stat: &str, row: &MetricRow, cell: &dyn Fn(&Cell) -> String| {
                let mut l = format!("{stat:<9} {:<label$}", row.metric.label);
                for c in &row.cells {
                    l.push_str(&cell(c));
                }
                out.push_str(l.trim_end());
                out.push('\n');
            };
        for row in &metrics {
            line(out, "Amean", row, &|c| {
                mm_cell(field, c, c.summary.map(|s| s.mean), row.better)
            });
        }
        for row in metrics.iter().filter(|r| mm_is_rate(r)) {
            let base = row.cells[0].hmean;
            line(out, "Hmean", row, &|c| {
                let mut c = c.clone();
                // The change of the harmonic means, Welch's mark kept.
                if let Change::Percent { p, .. } = c.change {
                    c.change = match (base, c.hmean) {
                        (Some(b), Some(h)) => Change::Percent {
                            pct: (h - b) / b * 100.0,
                            p,
                        },
                        _ => Change::Undefined,
                    };
                }
                mm_cell(field, &c, c.hmean, row.better)
            });
        }
        for row in &metrics {
            let base = row.cells[0].summary.map(|s| s.sd);
            line(out, "Stddev", row, &|c| {
                let sd = c.summary.map(|s| s.sd);
                let mut c = c.clone();
                if let (Change::Percent { .. }, Some(b), Some(s)) = (c.change, base, sd) {
                    // Already signed better-is-positive: not flipped again.
                    c.change = Change::Percent {
                        pct: pndiff(s, b),
                        p: None,
                    };
                }
                mm_cell(field, &c, sd, None)
            });
        }
        if !ops.is_empty() {
            out.push('\n');
            for row in &ops {
                line(out, "Ops", row, &|c| match c.summary {
                    Some(s) => format!("{:>field$.2}{:MM_CHANGE$}", s.mean, ""),
                    None => format!("{:>field$}{:MM_CHANGE$}", c.status, ""),
                });
            }
        }
        out.push_str(&format!("\n{}\n\n", block.footer()));
    }
}

/// A row mmtests would summarise by its harmonic mean: a rate, higher
/// better.
fn mm_is_rate(row: &MetricRow) -> bool {
    row.better == Some(Better::Higher)
        && matches!(row.metric.units, "accesses/s" | "accesses/cpu-s" | "score")
}

/// mmtests' `pndiff`: the change of a lower-is-better value, positive when
/// it fell, with its conventions at 0.
fn pndiff(new: f64, base: f64) -> f64 {
    if new == base {
        0.0
    } else if new == 0.0 {
        100.0
    } else if base == 0.0 {
        -99.0
    } else {
        100.0 - new * 100.0 / base
    }
}

/// ` 1234.56 (   1.26%)`, `*` for parentheses where significant; the
/// status where there is no value.
fn mm_cell(field: usize, c: &Cell, value: Option<f64>, better: Option<Better>) -> String {
    let Some(v) = value else {
        let status = if c.summary.is_some() {
            "n/a"
        } else {
            &c.status
        };
        return format!("{status:>field$}{:MM_CHANGE$}", "");
    };
    let change = match c.change {
        Change::Baseline => "(   0.00%)".to_string(),
        Change::Undefined => format!("({:>8})", "n/a"),
        Change::NotComparable => format!("({NOT_COMPARABLE:>8})"),
        Change::Percent { pct, .. } => {
            // + 0.0: no `-0.00%` for an unchanged lower-is-better value.
            let signed = if better == Some(Better::Lower) {
                -pct
            } else {
                pct
            } + 0.0;
            let text = format!("({signed:7.2}%)");
            if c.change.significant() {
                text.replace(['(', ')'], "*")
            } else {
                text
            }
        }
    };
    format!("{v:>field$.2} {change}")
}

/// Lines a LAVA test job records: one `lava-test-case` per column and
/// metric, its mean as the measurement. A column whose iterations all
/// ended ok passes; one with failed iterations fails; one the kernel does
/// not support (no ok iteration, status `unsupported`) is a skip.
pub struct Lava;

impl PerBlock for Lava {
    fn block(&self, block: &TableBlock, out: &mut String) {
        let scenario = block.scenario.as_deref().unwrap_or("run");
        for row in &block.rows {
            for (col, cell) in block.columns.iter().zip(&row.cells) {
                let name = lava_name(&[scenario, &col.title, &col.variant, row.metric.label]);
                let result = if col.ok == col.iterations && col.ok > 0 {
                    "pass"
                } else if col.ok == 0 && cell.status == "unsupported" {
                    "skip"
                } else {
                    "fail"
                };
                out.push_str(&format!("lava-test-case {name} --result {result}"));
                if let Some(s) = cell.summary {
                    out.push_str(&format!(
                        " --measurement {} --units {}",
                        s.mean,
                        lava_name(&[row.metric.units])
                    ));
                }
                out.push('\n');
            }
        }
    }
}

/// LAVA test case names and units: letters, digits, `_`, `-`, `.` and `/`
/// only; parts joined with `.`; a repeated part (a one-run table's column
/// is its variant) once.
fn lava_name(parts: &[&str]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for p in parts {
        if kept.last() != Some(p) {
            kept.push(p);
        }
    }
    kept.iter()
        .map(|p| {
            p.chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' | '/' => c,
                    '%' => 'p',
                    _ => '_',
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mmtests' cells: the baseline `(0.00%)`, a lower-is-better value
    /// that fell positive, a significant change between `*`, and
    /// `pndiff`'s conventions at 0.
    #[test]
    fn mmtests_cells_sign_changes_as_mmtests_does() {
        let cell = |pct: f64, p: Option<f64>| Cell {
            summary: Some(crate::stats::Summary {
                n: 3,
                mean: 80.0,
                sd: 1.0,
            }),
            status: "ok".into(),
            change: Change::Percent { pct, p },
            reached_in: None,
            hmean: None,
        };
        let c = cell(-20.0, Some(0.01));
        assert_eq!(
            mm_cell(12, &c, Some(80.0), Some(Better::Lower)),
            "       80.00 *  20.00%*"
        );
        assert_eq!(
            mm_cell(12, &c, Some(80.0), Some(Better::Higher)),
            "       80.00 * -20.00%*"
        );
        let c = cell(-20.0, Some(0.2));
        assert_eq!(mm_cell(12, &c, Some(80.0), None), "       80.00 ( -20.00%)");
        let mut base = cell(0.0, None);
        base.change = Change::Baseline;
        assert_eq!(
            mm_cell(12, &base, Some(100.0), None),
            "      100.00 (   0.00%)"
        );
        assert_eq!(mm_cell(12, &base, None, None), "         n/a           ");
        assert_eq!(
            (pndiff(5.0, 10.0), pndiff(0.0, 3.0), pndiff(3.0, 0.0)),
            (50.0, 100.0, -99.0)
        );
    }

    #[test]
    fn lava_names_keep_to_the_allowed_characters() {
        assert_eq!(
            lava_name(&[
                "promote-hot",
                "6.12",
                "preferred-many:0+balancing",
                "hot set on fast %"
            ]),
            "promote-hot.6.12.preferred-many_0_balancing.hot_set_on_fast_p"
        );
        assert_eq!(
            lava_name(&["run", "x", "x", "accesses/s"]),
            "run.x.accesses/s"
        );
    }
}
