//! The guest's initramfs: this very binary as `/init`, the shared libraries
//! it links (resolved with `ldd`, as the dynamic loader would), and the
//! empty mount points. Written as an uncompressed cpio `newc` archive: the
//! kernel takes it as is, and skipping gzip saves boot time under TCG.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("ldd {binary}: {reason}")]
    Ldd { binary: String, reason: String },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// The shared objects `binary` loads, the dynamic loader included.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, InitramfsError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| InitramfsError::Ldd {
            binary: binary.display().to_string(),
            reason: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        return Err(InitramfsError::Ldd {
            binary: binary.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso has no path.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if text.contains("not found") {
        return Err(InitramfsError::Ldd {
            binary: binary.display().to_string(),
            reason: format!("a library is missing: {}", text.trim()),
        });
    }
    Ok(libs)
}

/// A cpio `newc` archive being written.
pub struct Cpio<W: Write> {
    out: W,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        pad(&mut self.out, 110 + name.len() + 1)?;
        self.out.write_all(data)?;
        pad(&mut self.out, data.len())
    }

    /// A directory and every missing parent.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut cur = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            if self.dirs.insert(cur.clone()) {
                let c = cur.clone();
                self.entry(&c, 0o040755, (0, 0), &[])?;
            }
        }
        Ok(())
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        if let Some(parent) = Path::new(path).parent() {
            self.dir(&parent.to_string_lossy())?;
        }
        self.entry(path, 0o100000 | mode, (0, 0), data)
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, 0o020600, (major, minor), &[])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn pad<W: Write>(w: &mut W, len: usize) -> io::Result<()> {
    let rem = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..rem])
}

/// The guest's mount points and result directory.
const BASE_DIRS: [&str; 6] = ["/dev", "/proc", "/sys", "/tmp", "/results", "/run"];

/// Writes the initramfs for `binary`, the host `programs` to carry in (at
/// their own paths, with their libraries), and `extra` files (path,
/// contents).
pub fn build(
    binary: &Path,
    programs: &[PathBuf],
    extra: &[(String, Vec<u8>)],
    dest: &Path,
) -> Result<(), InitramfsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| InitramfsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let werr = |source: io::Error| InitramfsError::Write {
        path: dest.display().to_string(),
        source,
    };
    let file = std::fs::File::create(dest).map_err(werr)?;
    let mut cpio = Cpio::new(io::BufWriter::new(file));
    (|| -> Result<(), InitramfsError> {
        for d in BASE_DIRS {
            cpio.dir(d).map_err(werr)?;
        }
        // Without /dev/console the kernel starts /init with no stdio.
        cpio.char_device("/dev/console", 5, 1).map_err(werr)?;
        cpio.file("/init", 0o755, &read(binary)?).map_err(werr)?;
        // Each file once, whoever needs it (`file` makes its directories).
        let mut files: BTreeSet<PathBuf> = shared_libraries(binary)?.into_iter().collect();
        for p in programs {
            files.insert(p.clone());
            files.extend(shared_libraries(p)?);
        }
        for f in &files {
            let mode = std::fs::metadata(f)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o755);
            cpio.file(&f.to_string_lossy(), mode, &read(f)?)
                .map_err(werr)?;
        }
        for (path, data) in extra {
            cpio.file(path, 0o644, data).map_err(werr)?;
        }
        Ok(())
    })()?;
    cpio.finish().map_err(werr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_terminated() {
        let mut c = Cpio::new(Vec::new());
        c.file("/a/b", 0o644, b"hello").unwrap();
        let out = c.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("a/b\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        // Parent directory entry came first.
        assert!(text.find("a\0").unwrap() < text.find("a/b\0").unwrap());
    }

    /// The archive cpio(1) reads back holds what was put in.
    #[test]
    fn cpio_tool_lists_the_archive() {
        if Command::new("cpio").arg("--version").output().is_err() {
            crate::testing::skip("cpio_tool_lists_the_archive", "cpio not installed");
            return;
        }
        let mut c = Cpio::new(Vec::new());
        c.file("/x/y.txt", 0o644, b"data").unwrap();
        c.char_device("/dev/console", 5, 1).unwrap();
        let bytes = c.finish().unwrap();
        let mut child = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            ["x", "x/y.txt", "dev/console"]
        );
    }

    #[test]
    fn this_test_binary_has_libc() {
        let exe = std::env::current_exe().unwrap();
        let libs = shared_libraries(&exe).unwrap();
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
    }
}
