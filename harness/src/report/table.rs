//! Plain-text tables for the terminal, and the placement timeline printed
//! after a run.

use super::{RowKind, RunObserver, SampleRow};

/// A left-aligned text table with a rule under the header.
#[derive(Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }
    /// A row; control characters in a cell (a variant name read from a
    /// results file) are shown escaped.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(
            row.into_iter()
                .map(|c| crate::text::printable(&c.into()))
                .collect(),
        );
    }
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |row: &Vec<String>| {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = row.get(i).map(String::as_str).unwrap_or("");
                    format!("{c:<w$}", w = width[i])
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(["a", "long header"]);
        t.push(["wide cell", "x"]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "a          long header");
        assert_eq!(lines[1], "---------  -----------");
        assert_eq!(lines[2], "wide cell  x");
    }
}

/// Keeps the interval rows' hot-set share per variant, to print the
/// placement timeline side by side once the run is over.
#[derive(Default)]
pub struct TimelineSink {
    /// (variant, t_s, hot_fast_share) in arrival order.
    points: Vec<(String, f64, Option<f64>)>,
}

impl RunObserver for TimelineSink {
    fn row(&mut self, r: &SampleRow) -> std::io::Result<()> {
        // The first iteration stands for the others on the terminal; the
        // CSV has them all.
        if r.kind == RowKind::Interval && r.iteration == 1 {
            self.points
                .push((r.variant.clone(), r.t_s, r.hot_fast_share));
        }
        Ok(())
    }
}

impl TimelineSink {
    /// One row per interval index, one column per variant: the share of
    /// the hot set on fast nodes at the end of that interval.
    pub fn render(&self) -> Option<String> {
        let mut variants: Vec<&str> = Vec::new();
        for (v, _, _) in &self.points {
            if !variants.contains(&v.as_str()) {
                variants.push(v);
            }
        }
        if self.points.iter().all(|p| p.2.is_none()) {
            return None;
        }
        let series: Vec<Vec<&(String, f64, Option<f64>)>> = variants
            .iter()
            .map(|v| self.points.iter().filter(|p| p.0 == *v).collect())
            .collect();
        let len = series.iter().map(Vec::len).max().unwrap_or(0);
        let mut t = Table::new(
            std::iter::once("t_s".to_string())
                .chain(variants.iter().map(|v| format!("{v} hot on fast"))),
        );
        for i in 0..len {
            let ts = series
                .iter()
                .find_map(|s| s.get(i))
                .map(|p| p.1)
                .unwrap_or(0.0);
            let mut row = vec![format!("{ts:.1}")];
            for s in &series {
                row.push(match s.get(i).and_then(|p| p.2) {
                    Some(x) => format!("{:.1}%", x * 100.0),
                    None => "-".into(),
                });
            }
            t.push(row);
        }
        Some(t.render())
    }
}
