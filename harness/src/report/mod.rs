//! Results: the row types a run produces and the sinks that write them.
//! Measurement code fills rows; it never formats output. Column names are
//! derived in one place, [`Columns`], from the row type and from what this
//! machine has (its nodes, its kernel's counters).

pub mod csv;
pub mod table;

use serde::Serialize;

use crate::telemetry::vmstat::CounterId;
use crate::topology::NodeId;

/// Whether a row covers one sampling interval or a whole variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    Interval,
    Summary,
}

/// How a variant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    /// The kernel refused the policy (e.g. PREFERRED_MANY|NUMA_BALANCING
    /// before 6.10): nothing was measured, the notes say why.
    Unsupported,
    /// Stopped by a signal: the rows up to here are complete.
    Interrupted,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Unsupported => "unsupported",
            Status::Interrupted => "interrupted",
        })
    }
}

/// One measured row. `None` cells are written empty: not measured, or the
/// kernel lacks the counter; never a made-up zero.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRow {
    pub kind: RowKind,
    pub variant: String,
    pub status: Status,
    /// Seconds since the access loop started, at the end of this row.
    pub t_s: f64,
    /// Seconds this row covers.
    pub span_s: f64,
    pub accesses: Option<u64>,
    pub accesses_per_s: Option<f64>,
    /// Pages (census unit) of the whole buffer on each node, in
    /// [`Columns::nodes`] order.
    pub pages_on: Vec<Option<u64>>,
    /// Pages of the hot range, and how many of them are on fast nodes.
    pub hot_pages: Option<u64>,
    pub hot_fast_pages: Option<u64>,
    pub hot_fast_share: Option<f64>,
    /// Counter deltas over the row, in [`Columns::counters`] order.
    pub counters: Vec<Option<u64>>,
    /// perf event counts (summary rows), in [`Columns::perf`] order.
    pub perf: Vec<Option<u64>>,
    pub notes: String,
}

impl SampleRow {
    /// A row with nothing measured yet.
    pub fn empty(kind: RowKind, variant: &str, cols: &Columns) -> Self {
        Self {
            kind,
            variant: variant.to_string(),
            status: Status::Ok,
            t_s: 0.0,
            span_s: 0.0,
            accesses: None,
            accesses_per_s: None,
            pages_on: vec![None; cols.nodes.len()],
            hot_pages: None,
            hot_fast_pages: None,
            hot_fast_share: None,
            counters: vec![None; cols.counters.len()],
            perf: vec![None; cols.perf.len()],
            notes: String::new(),
        }
    }
}

/// The variable part of the schema, fixed at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub nodes: Vec<NodeId>,
    pub counters: Vec<CounterId>,
    pub perf: Vec<&'static str>,
}

/// Version of the CSV layout; bump when a column changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

impl Columns {
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "row",
            "variant",
            "status",
            "t_s",
            "span_s",
            "accesses",
            "accesses_per_s",
        ]
        .map(String::from)
        .to_vec();
        h.extend(self.nodes.iter().map(|n| format!("pages_node{n}")));
        h.extend(["hot_pages", "hot_fast_pages", "hot_fast_share"].map(String::from));
        h.extend(self.counters.iter().map(|c| c.column()));
        h.extend(self.perf.iter().map(|p| format!("perf.{p}")));
        h.push("notes".into());
        h
    }

    pub fn record(&self, r: &SampleRow) -> Vec<String> {
        fn opt<T: ToString>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let f3 = |v: Option<f64>| opt(v.map(|x| format!("{x:.3}")));
        let mut out = vec![
            match r.kind {
                RowKind::Interval => "interval".to_string(),
                RowKind::Summary => "summary".to_string(),
            },
            r.variant.clone(),
            r.status.to_string(),
            format!("{:.3}", r.t_s),
            format!("{:.3}", r.span_s),
            opt(r.accesses),
            opt(r.accesses_per_s.map(|x| format!("{x:.0}"))),
        ];
        out.extend(r.pages_on.iter().map(|v| opt(*v)));
        out.extend([
            opt(r.hot_pages),
            opt(r.hot_fast_pages),
            f3(r.hot_fast_share),
        ]);
        out.extend(r.counters.iter().map(|v| opt(*v)));
        out.extend(r.perf.iter().map(|v| opt(*v)));
        out.push(r.notes.clone());
        debug_assert_eq!(out.len(), self.header().len());
        out
    }
}

/// Where rows go. Every sink makes each row durable before returning, so a
/// run killed half way keeps every finished row.
pub trait RowSink {
    fn write(&mut self, row: &SampleRow) -> std::io::Result<()>;
}
