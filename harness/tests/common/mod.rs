//! What the test files share: reading a results CSV by column name.

#![allow(dead_code)]

use std::path::Path;

/// A CSV read whole: header and rows, cells looked up by column name.
pub struct Table {
    pub header: csv::StringRecord,
    pub rows: Vec<csv::StringRecord>,
}

impl Table {
    /// Reads `path`; every row must parse and have the header's width.
    pub fn read(path: &Path) -> Table {
        let mut rd = csv::Reader::from_path(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let header = rd.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = rd
            .records()
            .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .collect();
        for r in &rows {
            assert_eq!(r.len(), header.len(), "{}: ragged row", path.display());
        }
        Table { header, rows }
    }
    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }
    pub fn cell<'a>(&self, row: &'a csv::StringRecord, name: &str) -> &'a str {
        &row[self.col(name)]
    }
    pub fn num(&self, row: &csv::StringRecord, name: &str) -> f64 {
        let v = self.cell(row, name);
        v.parse()
            .unwrap_or_else(|_| panic!("{name} = {v:?} is not a number"))
    }
    /// Rows whose `column` is `value`.
    pub fn filter<'a>(&'a self, column: &str, value: &str) -> Vec<&'a csv::StringRecord> {
        self.rows
            .iter()
            .filter(|r| self.cell(r, column) == value)
            .collect()
    }
}

#[allow(unused_imports)]
pub use tierbench::testing::{skip, system_record};

/// A run that goes on until a test stops it: 16 MiB, rows every 200 ms.
#[allow(dead_code)]
pub const LONG_RUN: [&str; 8] = [
    "run",
    "--size",
    "16M",
    "--duration",
    "60s",
    "--interval",
    "200ms",
    "-q",
];

/// A command's output that must be a success: its stderr otherwise.
pub fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JSON file the tool wrote, parsed (the test fails naming it otherwise).
#[allow(dead_code)]
pub fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A copy of the shipped host profile `name` with the first `from`
/// replaced by `to`, written into `dir` as `file`; its path.
#[allow(dead_code)]
pub fn edited_profile(dir: &Path, file: &str, name: &str, from: &str, to: &str) -> String {
    let shipped = format!("{}/../hosts/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&shipped).unwrap();
    assert!(text.contains(from), "{from:?} is not in {shipped}");
    let path = dir.join(file);
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path.display().to_string()
}
