//! The CSV sink: header from [`Columns`], one flushed line per row of its
//! kind (summary rows to `summary.csv`, interval rows to `timeseries.csv`).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::{Columns, RowKind, RowSink, SampleRow};

pub struct CsvSink<W: Write> {
    out: ::csv::Writer<W>,
    cols: Columns,
    kind: RowKind,
}

impl CsvSink<File> {
    pub fn create(path: &Path, cols: Columns, kind: RowKind) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Self::new(File::create(path)?, cols, kind)
    }
}

impl<W: Write> CsvSink<W> {
    pub fn new(w: W, cols: Columns, kind: RowKind) -> io::Result<Self> {
        let mut out = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(w);
        out.write_record(cols.header(kind))?;
        out.flush()?;
        Ok(Self { out, cols, kind })
    }
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .map_err(|e| e.into_error())
            .expect("flushed")
    }
}

impl<W: Write> RowSink for CsvSink<W> {
    fn write(&mut self, row: &SampleRow) -> io::Result<()> {
        if row.kind != self.kind {
            return Ok(());
        }
        self.out.write_record(self.cols.record(row))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RowKind, Status};
    use crate::telemetry::vmstat::{CounterId, Scope};

    #[test]
    fn absent_values_are_empty_cells_and_header_matches_rows() {
        let cols = Columns {
            nodes: vec![0, 1],
            counters: vec![CounterId {
                scope: Scope::Node(0),
                name: "pgpromote_success".into(),
            }],
            perf: vec!["cycles"],
        };
        let mut sink = CsvSink::new(Vec::new(), cols.clone(), RowKind::Summary).unwrap();
        let mut row = SampleRow::empty(RowKind::Summary, "preferred-many:0+balancing", 1, &cols);
        row.status = Status::Unsupported;
        row.notes = "EINVAL, with a comma".into();
        sink.write(&row).unwrap();
        // An interval row is not this sink's kind: it is skipped.
        sink.write(&SampleRow::empty(RowKind::Interval, "x", 1, &cols))
            .unwrap();
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let mut rd = ::csv::Reader::from_reader(text.as_bytes());
        let header = rd.headers().unwrap().clone();
        assert!(header.iter().any(|h| h == "node0.pgpromote_success"));
        assert!(header.iter().any(|h| h == "perf.cycles"));
        let recs: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 1);
        let rec = &recs[0];
        assert_eq!(rec.len(), header.len());
        assert_eq!(&rec[2], "unsupported");
        let i = header
            .iter()
            .position(|h| h == "node0.pgpromote_success")
            .unwrap();
        assert_eq!(&rec[i], "");
        assert_eq!(&rec[rec.len() - 1], "EINVAL, with a comma");
    }
}
