//! The CSV sink: header from [`Columns`], one flushed line per row of its
//! kind (summary rows to `summary.csv`, interval rows to `timeseries.csv`).

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use super::{Columns, RowKind, RunObserver, SampleRow};

/// Where a sink's bytes go, and how a row that failed half way is taken
/// back, so the file only ever holds whole rows.
pub trait RowFile: Write {
    fn rollback(&mut self, len: u64) -> io::Result<()>;
}

impl RowFile for File {
    fn rollback(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.seek(io::SeekFrom::Start(len)).map(drop)
    }
}

impl RowFile for Vec<u8> {
    fn rollback(&mut self, len: u64) -> io::Result<()> {
        self.truncate(len as usize);
        Ok(())
    }
}

pub struct CsvSink<W: RowFile> {
    out: W,
    /// For messages: the file's path (or `<memory>`).
    name: PathBuf,
    /// Bytes of whole rows written so far.
    len: u64,
    cols: Columns,
    kind: RowKind,
}

impl CsvSink<File> {
    pub fn create(path: &Path, cols: Columns, kind: RowKind) -> io::Result<Self> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(named)?;
        }
        let file = File::create(path).map_err(named)?;
        Self::with_name(file, path.to_path_buf(), cols, kind)
    }
}

impl<W: RowFile> CsvSink<W> {
    pub fn new(w: W, cols: Columns, kind: RowKind) -> io::Result<Self> {
        Self::with_name(w, PathBuf::from("<memory>"), cols, kind)
    }

    fn with_name(out: W, name: PathBuf, cols: Columns, kind: RowKind) -> io::Result<Self> {
        let mut sink = Self {
            out,
            name,
            len: 0,
            cols,
            kind,
        };
        let header = sink.cols.header(kind);
        sink.write_line(&header)?;
        Ok(sink)
    }

    /// One line, built whole in memory, then one write: on a failure (a
    /// full disk) the file is cut back to its last whole row.
    fn write_line(&mut self, fields: &[String]) -> io::Result<()> {
        let mut line = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        line.write_record(fields)?;
        let bytes = line.into_inner().map_err(|e| e.into_error())?;
        let result = self.out.write_all(&bytes).and_then(|_| self.out.flush());
        if let Err(e) = result {
            let _ = self.out.rollback(self.len);
            return Err(io::Error::new(
                e.kind(),
                format!("writing a row to {}: {e}", self.name.display()),
            ));
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: RowFile> RunObserver for CsvSink<W> {
    fn row(&mut self, row: &SampleRow) -> io::Result<()> {
        if row.kind != self.kind {
            return Ok(());
        }
        let fields = self.cols.record(row);
        self.write_line(&fields)
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
            perf: vec![crate::telemetry::perf::PerfEvent::Cycles],
        };
        let mut sink = CsvSink::new(Vec::new(), cols.clone(), RowKind::Summary).unwrap();
        let mut row = SampleRow::empty(RowKind::Summary, "preferred-many:0+balancing", 1, &cols);
        row.status = Status::Unsupported;
        row.notes = vec![crate::report::Note::Unsupported(
            "EINVAL, with a comma".into(),
        )];
        sink.row(&row).unwrap();
        // An interval row is not this sink's kind: it is skipped.
        sink.row(&SampleRow::empty(RowKind::Interval, "x", 1, &cols))
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

    /// Accepts `room` bytes, then fails like a full disk.
    struct Full {
        data: Vec<u8>,
        room: usize,
    }
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.data.len().min(self.room));
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl RowFile for Full {
        fn rollback(&mut self, len: u64) -> io::Result<()> {
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_keeps_only_whole_rows() {
        let cols = Columns::default();
        let header_len = cols.header(RowKind::Summary).join(",").len() + 1;
        let full = Full {
            data: Vec::new(),
            room: header_len + 10,
        };
        let mut sink = CsvSink::new(full, cols.clone(), RowKind::Summary).unwrap();
        let row = SampleRow::empty(RowKind::Summary, "a-long-variant-name", 1, &cols);
        let e = sink.row(&row).unwrap_err();
        assert!(e.to_string().contains("<memory>"), "{e}");
        let data = sink.into_inner().data;
        assert_eq!(data.len(), header_len);
        assert!(data.ends_with(b"\n"));
    }
}
