//! Reading the kernel's pseudo-files through a root that tests can replace.
//!
//! Everything that reads `/sys` or `/proc` goes through a [`SysRoot`], so a
//! sysfs tree captured from another machine (see `harness/tests/data/`) can
//! stand in for the live one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SysRoot {
    root: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        Self::live()
    }
}

impl SysRoot {
    /// The running system's `/`.
    pub fn live() -> Self {
        Self {
            root: PathBuf::from("/"),
        }
    }
    /// A captured tree whose `sys/` and `proc/` stand for the real ones.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }
    /// `rel` is an absolute system path such as `/proc/vmstat`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    pub fn read(&self, rel: &str) -> io::Result<String> {
        fs::read_to_string(self.path(rel))
    }
    /// The file's content without the trailing newline, or `None` where the
    /// kernel does not have the file.
    pub fn read_opt(&self, rel: &str) -> Option<String> {
        self.read(rel).ok().map(|s| s.trim_end().to_string())
    }
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }
    /// The last part of a symbolic link's target (`driver` -> `kmem`), or
    /// `None` where there is no such link.
    pub fn link_name(&self, rel: &str) -> Option<String> {
        let target = fs::read_link(self.path(rel)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }
    /// Names of the entries of a directory, sorted; empty where it is absent.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}
