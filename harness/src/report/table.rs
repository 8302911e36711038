//! Plain-text tables for the terminal, and the console sink that prints one
//! line per interval while a run goes.

use std::io::Write;

use super::{RowKind, RowSink, SampleRow};

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
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
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

/// Prints one progress line per row to stderr (stdout stays for results).
pub struct ConsoleSink;

impl RowSink for ConsoleSink {
    fn write(&mut self, r: &SampleRow) -> std::io::Result<()> {
        let share = r
            .hot_fast_share
            .map(|s| format!("{:5.1}%", s * 100.0))
            .unwrap_or_else(|| "    -".into());
        let rate = r
            .accesses_per_s
            .map(|a| format!("{:.3e}", a))
            .unwrap_or_else(|| "-".into());
        let kind = match r.kind {
            RowKind::Interval => "  ",
            RowKind::Summary => "=>",
        };
        writeln!(
            std::io::stderr(),
            "{kind} {:<34} t={:7.2}s  accesses/s={rate:<10} hot on fast={share}  {}",
            r.variant,
            r.t_s,
            r.status
        )
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
