//! A results directory owned by one run: new or empty (or emptied on
//! request), and locked while the run writes to it. Two runs given the same
//! `-o` used to clobber each other, and a run into an old directory left
//! the old run's files (a curve.svg) beside its own, for the fleet play to
//! fetch as if they were new.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::input;

/// The lock is an `flock` on the directory itself: no lock file is left
/// among the results, and the kernel drops it when the owner dies.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    /// Made by this claim: removed again if the run wrote nothing (it was
    /// refused after the claim), so bad input leaves no trace.
    created: bool,
    _lock: fs::File,
}

/// Names a directory this run shares with the process that started it:
/// inside `tierbench vm`, the guest's init writes the guest's topology and
/// expectations into /results before the inner command writes its rows
/// there. Only that exact directory is shared; its files are kept.
pub const ENV_SHARED: &str = "TIERBENCH_OUT_SHARED";

/// What to do with a directory that already holds files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    Replace,
    /// Shared with its creator ([`ENV_SHARED`]): kept as it is.
    Shared,
}

impl Existing {
    pub fn from_flag(replace: bool) -> Existing {
        if replace {
            Existing::Replace
        } else {
            Existing::Refuse
        }
    }

    /// The choice for `dir`: shared when the environment names it so.
    fn for_dir(self, dir: &Path) -> Existing {
        match std::env::var_os(ENV_SHARED) {
            Some(shared) if Path::new(&shared) == dir => Existing::Shared,
            _ => self,
        }
    }
}

/// Checks `-o` before anything is created, changed or booted: a
/// directory, new or empty unless `--replace`.
pub fn check(dir: &Path, existing: Existing) -> anyhow::Result<()> {
    check_resolved(dir, existing.for_dir(dir))
}

fn check_resolved(dir: &Path, existing: Existing) -> anyhow::Result<()> {
    if !is_directory_or_absent(dir, "a new or empty directory")? {
        return Ok(());
    }
    admissible(dir, existing).map(|_| ())
}

/// Whether `dir` exists; an input error when something else than a
/// directory is there (`-o` naming a file), saying what to give instead.
pub fn is_directory_or_absent(dir: &Path, give: &str) -> anyhow::Result<bool> {
    match fs::metadata(dir) {
        Err(_) => Ok(false),
        Ok(m) if !m.is_dir() => Err(input(format!(
            "-o {}: exists and is not a directory: give {give}",
            dir.display()
        ))),
        Ok(_) => Ok(true),
    }
}

/// What `dir` holds that a run may remove first: nothing for a new or
/// empty or shared directory, everything for a results directory and
/// `--replace`; an error otherwise.
fn admissible(dir: &Path, existing: Existing) -> anyhow::Result<Vec<String>> {
    let held = entries(dir)?;
    if held.is_empty() || existing == Existing::Shared {
        return Ok(Vec::new());
    }
    if existing == Existing::Refuse {
        return Err(holds(dir, &held));
    }
    // `-o . --replace` in a checkout must not empty the checkout.
    if !is_results_dir(dir) {
        return Err(input(format!(
            "-o {} --replace: it holds {} and no tierbench results record ({}): --replace \
             only empties a directory tierbench wrote; remove it yourself or give a new \
             directory",
            dir.display(),
            preview(&held),
            MARKERS.join(", ")
        )));
    }
    Ok(held)
}

fn holds(dir: &Path, held: &[String]) -> anyhow::Error {
    input(format!(
        "-o {}: already holds {}: give a new or empty directory, or --replace to empty it \
         first",
        dir.display(),
        preview(held)
    ))
}

impl OutDir {
    /// Creates `dir` if needed, locks it, and (after the lock, so nobody
    /// is writing) empties it when asked or refuses it when it holds files.
    pub fn claim(dir: &Path, existing: Existing) -> anyhow::Result<OutDir> {
        let existing = existing.for_dir(dir);
        check_resolved(dir, existing)?;
        let created = !dir.exists();
        fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating results directory {}: {e}", dir.display()))?;
        let lock = fs::File::open(dir)
            .map_err(|e| anyhow::anyhow!("opening results directory {}: {e}", dir.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor owned by `lock`; no memory passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                anyhow::bail!("locking results directory {}: flock: {e}", dir.display());
            }
            return Err(input(format!(
                "-o {}: another tierbench is writing its results there: give another directory",
                dir.display()
            )));
        }
        // Again under the lock: a run that ended between the check and the
        // lock may have left files.
        for name in admissible(dir, existing)? {
            let p = dir.join(&name);
            let gone = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                _ => fs::remove_file(&p),
            };
            gone.map_err(|e| anyhow::anyhow!("--replace: removing {}: {e}", p.display()))?;
        }
        Ok(OutDir {
            path: dir.to_path_buf(),
            created,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.created {
            // Fails, as it should, when the run wrote anything.
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// Files only tierbench writes at the top of a results directory: the
/// record of a run, latency curve or matrix (system.json), of a vm
/// (vm.json, and console.log from its first second), of conform, and of
/// a kernel A/B (compare.txt).
const MARKERS: [&str; 5] = [
    "system.json",
    "vm.json",
    "console.log",
    "conform.csv",
    "compare.txt",
];

/// Whether `dir`, or a directory in it (a kernel of an A/B), holds a
/// results record: what `--replace` may empty.
fn is_results_dir(dir: &Path) -> bool {
    let marked = |d: &Path| MARKERS.iter().any(|m| d.join(m).is_file());
    if marked(dir) {
        return true;
    }
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()) && marked(&e.path()))
    })
}

fn entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading results directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_files_is_refused_replaced_on_request_and_locked() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let first = OutDir::claim(&out, Existing::Refuse).unwrap();
        // A second writer is refused while the first holds it.
        let e = OutDir::claim(&out, Existing::Replace).unwrap_err();
        assert!(e.to_string().contains("another tierbench"), "{e}");
        fs::write(first.path().join("curve.svg"), "old").unwrap();
        fs::create_dir(first.path().join("6.12")).unwrap();
        drop(first);
        // Not a results directory (no record): --replace does not empty it.
        let e = OutDir::claim(&out, Existing::Replace).unwrap_err();
        assert!(e.to_string().contains("no tierbench results record"), "{e}");
        assert!(out.join("curve.svg").exists());
        fs::write(out.join("6.12/console.log"), "").unwrap();
        let e = OutDir::claim(&out, Existing::Refuse).unwrap_err();
        assert!(
            e.to_string().contains("already holds 6.12, curve.svg"),
            "{e}"
        );
        assert!(out.join("curve.svg").exists());
        let again = OutDir::claim(&out, Existing::Replace).unwrap();
        assert!(entries(&out).unwrap().is_empty());
        drop(again);
        // A claim that wrote nothing leaves no directory behind.
        let unused = d.path().join("unused");
        drop(OutDir::claim(&unused, Existing::Refuse).unwrap());
        assert!(!unused.exists());
        let file = d.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(check(&file, Existing::Replace).is_err());
    }
}
