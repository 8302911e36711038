//! CSV files written as rows are measured, each row one flushed line, and
//! a row that fails half way (a full disk) cut back, so a file only ever
//! holds whole rows: [`CsvSink`] for a run's sample rows (header from
//! [`Columns`]), [`TypedSink`] for rows that are serde records
//! (`conform.csv`, `matrix.csv`, `curve.csv`, ...).

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

/// Whole lines to `out`: each written in one write and flushed; one that
/// fails half way is cut back to the last whole line.
struct WholeLines<W: RowFile> {
    out: W,
    /// For messages: the file's path (or `<memory>`).
    name: PathBuf,
    /// Bytes of whole lines written so far.
    len: u64,
}

impl<W: RowFile> WholeLines<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self.out.write_all(bytes).and_then(|_| self.out.flush());
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
}

/// `path` created (its directory too), for whole lines.
fn create_lines(path: &Path) -> io::Result<WholeLines<File>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(named)?;
    }
    Ok(WholeLines {
        out: File::create(path).map_err(named)?,
        name: path.to_path_buf(),
        len: 0,
    })
}

/// The bytes of one CSV record (the header too when `header`), built whole
/// in memory so they go out in one write.
fn encode(
    header: bool,
    fill: impl FnOnce(&mut ::csv::Writer<Vec<u8>>) -> ::csv::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut w = ::csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    fill(&mut w).map_err(io::Error::other)?;
    w.into_inner().map_err(|e| e.into_error())
}

pub struct CsvSink<W: RowFile> {
    lines: WholeLines<W>,
    cols: Columns,
    kind: RowKind,
}

impl CsvSink<File> {
    pub fn create(path: &Path, cols: Columns, kind: RowKind) -> io::Result<Self> {
        Self::with_lines(create_lines(path)?, cols, kind)
    }
}

impl<W: RowFile> CsvSink<W> {
    pub fn new(w: W, cols: Columns, kind: RowKind) -> io::Result<Self> {
        let lines = WholeLines {
            out: w,
            name: PathBuf::from("<memory>"),
            len: 0,
        };
        Self::with_lines(lines, cols, kind)
    }

    fn with_lines(lines: WholeLines<W>, cols: Columns, kind: RowKind) -> io::Result<Self> {
        let mut sink = Self { lines, cols, kind };
        let header = sink.cols.header(kind);
        sink.write_line(&header)?;
        Ok(sink)
    }

    fn write_line(&mut self, fields: &[String]) -> io::Result<()> {
        let bytes = encode(false, |w| w.write_record(fields))?;
        self.lines.write(&bytes)
    }

    pub fn into_inner(self) -> W {
        self.lines.out
    }
}

/// Serde records to a CSV file, one whole flushed line each as they come;
/// the header (their field names) goes out with the first.
pub struct TypedSink {
    lines: WholeLines<File>,
}

impl TypedSink {
    pub fn create(path: &Path) -> io::Result<TypedSink> {
        Ok(TypedSink {
            lines: create_lines(path)?,
        })
    }

    pub fn push(&mut self, row: &impl serde::Serialize) -> io::Result<()> {
        let bytes = encode(self.lines.len == 0, |w| w.serialize(row))?;
        self.lines.write(&bytes)
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
            program: false,
            damon: false,
            weighted: false,
            quality: false,
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

    /// The header goes out once, with the first record; each record reads
    /// back as written.
    #[test]
    fn typed_rows_carry_one_header() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct R {
            node: u32,
            ns: f64,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("r.csv");
        let mut sink = TypedSink::create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 0, "no row, no header");
        sink.push(&R { node: 0, ns: 1.5 }).unwrap();
        sink.push(&R { node: 1, ns: 2.0 }).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "node,ns\n0,1.5\n1,2.0\n");
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
