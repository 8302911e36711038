//! Reading files a user names (scenarios, profiles, results, state files):
//! regular files only, with a size cap. A FIFO given as a scenario used to
//! hang the process forever, and a `system.json` linked to /dev/zero grew
//! to gigabytes of memory; both are now one clear error.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The cap for the text files tierbench reads back (profiles, scenarios,
/// system.json, state files): far above any it writes.
pub const TEXT_MAX: u64 = 64 << 20;

/// The cap for result tables (summary.csv, timeseries.csv): a day of
/// 100 ms rows is about 100 MB.
pub const TABLE_MAX: u64 = 1 << 30;

/// The whole file as bytes, if it is a regular file of at most `max`
/// bytes. The open does not block (a FIFO with no writer would), and the
/// type is checked on the opened descriptor, so nothing swapped in between
/// is read.
pub fn read_capped_bytes(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", kind_of(&meta)),
        ));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the stat: read one byte past the cap to know.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(bytes)
}

/// [`read_capped_bytes`] as UTF-8 text.
pub fn read_capped(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_capped_bytes(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "is larger than {} MiB, more than tierbench ever writes",
            max >> 20
        ),
    )
}

fn kind_of(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_oversized_files_are_refused_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_capped(&fifo, TEXT_MAX).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let link = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_capped(&link, TEXT_MAX).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let e = read_capped(d.path(), TEXT_MAX).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert!(read_capped(&big, 99).is_err());
        assert_eq!(read_capped(&big, 100).unwrap().len(), 100);
    }
}
