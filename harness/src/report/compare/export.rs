//! The formats of `tierbench compare`, one exporter each behind one
//! trait: every format renders the same computed blocks, so a number in
//! one is in all of them.

use serde_json::json;

use super::{Cell, Change, TableBlock, ALPHA, NOT_COMPARABLE};

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
