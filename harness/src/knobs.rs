//! System knobs the scenarios change, and the guard that puts them back.
//!
//! Before any knob is written, the old values of every knob about to change
//! go to a state file; the [`KnobGuard`] restores them when dropped (normal
//! end, error, panic unwind) and the interrupt handler restores them from
//! the state file on a second signal. After a SIGKILL or a power loss,
//! `tierbench knobs restore` reads the same file.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::sysfs::SysRoot;
use crate::userfile::read_capped;

/// Debugfs knobs of the NUMA-balancing scanner (5.13+ moved them there
/// from sysctl): `/sys/kernel/debug/sched/numa_balancing/NAME`.
pub const NUMAB_DEBUGFS: &str = "/sys/kernel/debug/sched/numa_balancing";

/// The scanner knobs tierbench knows (mainline `kernel/sched/debug.c`).
/// A state file or an option naming any other is refused: a path is
/// never built from a name the tool does not know.
pub const NUMAB_KNOWN: [&str; 5] = [
    "scan_delay_ms",
    "scan_period_min_ms",
    "scan_period_max_ms",
    "scan_size_mb",
    "hot_threshold_ms",
];

/// In a state file a knob is its name (`numa_balancing`,
/// `numab.scan_delay_ms`), read back through [`FromStr`]: only the names of
/// the fixed list parse, so a file can never name a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Knob {
    /// `kernel.numa_balancing`: 0 off, 1 NORMAL, 2 MEMORY_TIERING (5.18+),
    /// 3 both.
    NumaBalancing,
    /// `/sys/kernel/mm/numa/demotion_enabled` (5.15+): true/false.
    DemotionEnabled,
    /// `kernel.numa_balancing_promote_rate_limit_MBps` (6.1+).
    PromoteRateLimit,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`.
    ThpEnabled,
    /// `/sys/kernel/mm/transparent_hugepage/defrag`.
    ThpDefrag,
    /// A file under [`NUMAB_DEBUGFS`], e.g. `scan_period_min_ms`.
    Numab(String),
    /// `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN` (6.9+): the
    /// node's weight, 1-255. Writing one turns `auto` off.
    InterleaveWeight(u32),
    /// `/sys/kernel/mm/mempolicy/weighted_interleave/auto` (6.16+): true
    /// when the kernel derives the weights from HMAT/CDAT bandwidth.
    InterleaveAuto,
    /// `/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds`: how many sysfs
    /// kdamonds exist. Owning it owns the kdamonds: writing it first turns
    /// every one of them off (the kernel refuses EBUSY while one runs), so
    /// putting back "0" tears down whatever a run built.
    DamonKdamonds,
    /// `/sys/module/damon_stat/parameters/enabled` (DAMON_STAT, 6.17+):
    /// Y while the kernel's own kdamond watches the system. It runs
    /// exclusively, so a sysfs kdamond cannot start (EBUSY) until it is N.
    DamonStat,
    /// `/sys/devices/system/memory/memoryN/state`: a hot-pluggable memory
    /// block, `offline` or online in a zone (read as `online_movable` or
    /// `online_kernel`, from its `valid_zones`, so putting it back puts it
    /// in the zone it was in). `--offline-slow-at` takes the slow node's.
    MemoryBlock(u32),
}

/// Where the weighted-interleave weights live (6.9+).
pub const WI_DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";
/// Memory blocks (hot-plug granules).
pub const MEMORY_DIR: &str = "/sys/devices/system/memory";
/// The DAMON sysfs interface's kdamonds.
pub const KDAMONDS_DIR: &str = "/sys/kernel/mm/damon/admin/kdamonds";

impl From<Knob> for String {
    fn from(k: Knob) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for Knob {
    type Error = String;
    fn try_from(s: String) -> Result<Knob, String> {
        s.parse()
    }
}

impl Knob {
    /// A scanner knob by name, from the fixed list [`NUMAB_KNOWN`].
    pub fn numab(name: &str) -> Result<Knob, String> {
        if NUMAB_KNOWN.contains(&name) {
            Ok(Knob::Numab(name.to_string()))
        } else {
            Err(format!(
                "unknown numa_balancing scanner knob {name:?}: tierbench knows {}",
                NUMAB_KNOWN.join(", ")
            ))
        }
    }

    pub fn path(&self) -> String {
        match self {
            Knob::NumaBalancing => "/proc/sys/kernel/numa_balancing".into(),
            Knob::DemotionEnabled => "/sys/kernel/mm/numa/demotion_enabled".into(),
            Knob::PromoteRateLimit => {
                "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps".into()
            }
            Knob::ThpEnabled => "/sys/kernel/mm/transparent_hugepage/enabled".into(),
            Knob::ThpDefrag => "/sys/kernel/mm/transparent_hugepage/defrag".into(),
            Knob::Numab(name) => format!("{NUMAB_DEBUGFS}/{name}"),
            Knob::InterleaveWeight(n) => format!("{WI_DIR}/node{n}"),
            Knob::InterleaveAuto => format!("{WI_DIR}/auto"),
            Knob::DamonKdamonds => format!("{KDAMONDS_DIR}/nr_kdamonds"),
            Knob::DamonStat => "/sys/module/damon_stat/parameters/enabled".into(),
            Knob::MemoryBlock(n) => format!("{MEMORY_DIR}/memory{n}/state"),
        }
    }

    /// The interleave weights of every node that has one, `auto` first
    /// where the kernel has it: restored last-first, so the node weights go
    /// back before `auto` (writing a weight turns `auto` off; writing
    /// `auto` back recomputes them).
    pub fn interleave_knobs(sys: &SysRoot) -> Vec<Knob> {
        let mut nodes: Vec<u32> = sys
            .list(WI_DIR)
            .iter()
            .filter_map(|n| n.strip_prefix("node")?.parse().ok())
            .collect();
        nodes.sort_unstable();
        let auto = Some(Knob::InterleaveAuto).filter(|k| k.exists(sys));
        auto.into_iter()
            .chain(nodes.into_iter().map(Knob::InterleaveWeight))
            .collect()
    }

    /// The file this knob is on `sys`. Kernels that define `auto` as a
    /// macro for `__auto_type` (6.18 does, for C23) stringify the `auto`
    /// attribute's name through it: the file is then `__auto_type`.
    pub fn file(&self, sys: &SysRoot) -> String {
        let path = self.path();
        if *self == Knob::InterleaveAuto && !sys.exists(&path) {
            let mangled = format!("{WI_DIR}/__auto_type");
            if sys.exists(&mangled) {
                return mangled;
            }
        }
        path
    }

    pub fn exists(&self, sys: &SysRoot) -> bool {
        sys.exists(&self.file(sys))
    }

    /// Every knob this tool knows that exists on `sys`.
    pub fn all_present(sys: &SysRoot) -> Vec<Knob> {
        let mut knobs: Vec<Knob> = [
            Knob::NumaBalancing,
            Knob::DemotionEnabled,
            Knob::PromoteRateLimit,
            Knob::ThpEnabled,
            Knob::ThpDefrag,
        ]
        .into_iter()
        .filter(|k| k.exists(sys))
        .collect();
        knobs.extend(
            sys.list(NUMAB_DEBUGFS)
                .iter()
                .filter_map(|n| Knob::numab(n).ok()),
        );
        knobs.extend(Knob::interleave_knobs(sys));
        for k in [Knob::DamonKdamonds, Knob::DamonStat] {
            if k.exists(sys) {
                knobs.push(k);
            }
        }
        knobs
    }

    /// The current value. THP files list every choice with the current one
    /// in brackets (`always [madvise] never`): only that one is returned.
    pub fn read(&self, sys: &SysRoot) -> Result<String, KnobError> {
        let raw = sys
            .read(&self.file(sys))
            .map_err(|e| self.io_error("read", e))?;
        if let Knob::MemoryBlock(n) = self {
            if raw.trim() == "online" {
                let zone = crate::topology::blocks::online_zone(sys, *n);
                return Ok(match zone.as_deref() {
                    Some("Movable") => "online_movable",
                    _ => "online_kernel",
                }
                .into());
            }
        }
        Ok(selected_value(&raw))
    }

    fn write(&self, sys: &SysRoot, value: &str) -> Result<(), KnobError> {
        // A block already in the asked state: the kernel answers EINVAL to
        // `online` on an online block, so only a change is written.
        if let Knob::MemoryBlock(_) = self {
            let now = self.read(sys)?;
            if now == value || (value == "online" && now.starts_with("online")) {
                return Ok(());
            }
        }
        // DAMON_STAT starts exclusively: EBUSY while a kdamond runs.
        if *self == Knob::DamonStat && matches!(value, "Y" | "y" | "1") {
            stop_kdamonds(sys)?;
        }
        if *self == Knob::DamonKdamonds {
            stop_kdamonds(sys)?;
            // A kdamond told to stop may still be ending: EBUSY meanwhile.
            for _ in 0..50 {
                match fs::write(sys.path(&self.file(sys)), value) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(100))
                    }
                    other => return other.map_err(|e| self.io_error("write", e)),
                }
            }
        }
        fs::write(sys.path(&self.file(sys)), value).map_err(|e| self.io_error("write", e))
    }

    /// What must hold before a run may take this knob, beyond its file
    /// being there: nobody else's kdamonds are running or configured
    /// (changing `nr_kdamonds` would destroy them).
    fn precondition(&self, sys: &SysRoot) -> Result<(), KnobError> {
        if *self == Knob::InterleaveAuto {
            return auto_weights_restorable(sys);
        }
        if *self != Knob::DamonKdamonds {
            return Ok(());
        }
        let found = kdamonds(sys);
        if found.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = found
            .iter()
            .map(|k| match &k.pid {
                Some(pid) => format!("kdamond {} ({}, pid {pid})", k.index, k.state),
                None => format!("kdamond {} ({})", k.index, k.state),
            })
            .collect();
        Err(KnobError::Foreign {
            what: format!("DAMON is in use: {}", named.join(", ")),
            path: self.path(),
            fix: "stop it (echo off > .../kdamonds/N/state; echo 0 > .../nr_kdamonds) or drop \
                  the damon variants",
        })
    }

    /// Checks `value` before anything is written, so a typo changes nothing.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            Knob::NumaBalancing => matches!(value, "0" | "1" | "2" | "3"),
            Knob::DemotionEnabled => matches!(value, "true" | "false" | "1" | "0"),
            // Both are C ints in the kernel: a larger value is EINVAL.
            Knob::PromoteRateLimit | Knob::Numab(_) => {
                value.parse::<u64>().is_ok_and(|v| v <= i32::MAX as u64)
            }
            Knob::ThpEnabled => matches!(value, "always" | "madvise" | "never"),
            Knob::ThpDefrag => {
                matches!(
                    value,
                    "always" | "defer" | "defer+madvise" | "madvise" | "never"
                )
            }
            Knob::InterleaveWeight(_) => value.parse::<u8>().is_ok_and(|w| w >= 1),
            Knob::InterleaveAuto => matches!(value, "true" | "false" | "1" | "0" | "Y" | "N"),
            // One kdamond per node a DAMON variant watches, at most.
            Knob::DamonKdamonds => value.parse::<u32>().is_ok_and(|n| n <= 64),
            Knob::DamonStat => matches!(value, "Y" | "N" | "1" | "0" | "y" | "n"),
            Knob::MemoryBlock(_) => {
                matches!(
                    value,
                    "offline" | "online" | "online_movable" | "online_kernel"
                )
            }
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Knob::PromoteRateLimit | Knob::Numab(_) => {
                    format!(
                        "{value:?} is not a valid value for {self}: give 0 to {}",
                        i32::MAX
                    )
                }
                Knob::InterleaveWeight(_) => {
                    format!("{value:?} is not a valid value for {self}: give 1 to 255")
                }
                _ => format!("{value:?} is not a valid value for {self}"),
            })
        }
    }

    fn io_error(&self, op: &'static str, err: std::io::Error) -> KnobError {
        KnobError::Io {
            op,
            path: self.path(),
            err,
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Knob::NumaBalancing => f.write_str("numa_balancing"),
            Knob::DemotionEnabled => f.write_str("demotion_enabled"),
            Knob::PromoteRateLimit => f.write_str("numa_balancing_promote_rate_limit_MBps"),
            Knob::ThpEnabled => f.write_str("thp_enabled"),
            Knob::ThpDefrag => f.write_str("thp_defrag"),
            Knob::Numab(n) => write!(f, "numab.{n}"),
            Knob::InterleaveWeight(n) => write!(f, "weighted_interleave.node{n}"),
            Knob::InterleaveAuto => f.write_str("weighted_interleave.auto"),
            Knob::DamonKdamonds => f.write_str("damon.nr_kdamonds"),
            Knob::DamonStat => f.write_str("damon_stat.enabled"),
            Knob::MemoryBlock(n) => write!(f, "memory_block.{n}"),
        }
    }
}

impl FromStr for Knob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "numa_balancing" => Knob::NumaBalancing,
            "demotion_enabled" => Knob::DemotionEnabled,
            "numa_balancing_promote_rate_limit_MBps" | "promote_rate_limit" => {
                Knob::PromoteRateLimit
            }
            "thp_enabled" => Knob::ThpEnabled,
            "thp_defrag" => Knob::ThpDefrag,
            "weighted_interleave.auto" => Knob::InterleaveAuto,
            "damon.nr_kdamonds" => Knob::DamonKdamonds,
            "damon_stat.enabled" => Knob::DamonStat,
            other => {
                if let Some(name) = other.strip_prefix("numab.") {
                    Knob::numab(name)?
                } else if let Some(n) = other
                    .strip_prefix("memory_block.")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Knob::MemoryBlock(n)
                } else if let Some(n) = other
                    .strip_prefix("weighted_interleave.node")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Knob::InterleaveWeight(n)
                } else {
                    return Err(format!("unknown knob {other:?}"));
                }
            }
        })
    }
}

fn selected_value(raw: &str) -> String {
    let raw = raw.trim();
    match (raw.find('['), raw.find(']')) {
        (Some(a), Some(b)) if a < b => raw[a + 1..b].to_string(),
        _ => raw.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KnobError {
    // `err`, not `source`: the message holds it, and a source would be
    // printed twice when the error chain is joined.
    #[error("cannot {op} {path}: {err}")]
    Io {
        op: &'static str,
        path: String,
        err: std::io::Error,
    },
    #[error("{knob} is not available on this kernel ({path} is missing){hint}")]
    Missing {
        knob: Knob,
        path: String,
        hint: &'static str,
    },
    #[error("changing {knob} needs root: run as root (sudo), or drop the option that sets it")]
    NotRoot { knob: Knob },
    #[error(
        "a previous run left knobs changed (state file {0}): run `tierbench knobs restore` first"
    )]
    Pending(PathBuf),
    #[error(
        "the kernel knobs belong to another tierbench ({owner}): wait for it to end, or stop it \
         (lock {})", lock.display()
    )]
    Busy { lock: PathBuf, owner: OwnerText },
    #[error("state file {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("{what} ({path}): {fix}")]
    Foreign {
        what: String,
        path: String,
        fix: &'static str,
    },
    #[error("invalid knob value: {0}")]
    Invalid(String),
}

impl KnobError {
    /// Errors the user can fix by changing the command (exit code 2).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            KnobError::Missing { .. }
                | KnobError::NotRoot { .. }
                | KnobError::Pending(_)
                | KnobError::Busy { .. }
                | KnobError::State { .. }
                | KnobError::Foreign { .. }
                | KnobError::Invalid(_)
        )
    }

    /// For the glue: an input error becomes [`crate::error::InputError`]
    /// (exit 2, one line), anything else stays a runtime failure.
    pub fn into_anyhow(self) -> anyhow::Error {
        if self.is_input_error() {
            crate::error::input_from(self)
        } else {
            self.into()
        }
    }
}

/// What the state file holds: the values to put back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedKnobs {
    pub pid: u32,
    pub saved: Vec<(Knob, String)>,
}

/// Where the state file lives: `$TIERBENCH_STATE_DIR` or
/// `/var/lib/tierbench` (persistent, so it survives a power loss).
pub fn default_state_file() -> PathBuf {
    let dir = std::env::var_os("TIERBENCH_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/tierbench"));
    dir.join("knobs.json")
}

/// The process that holds the knobs, as its lock file says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub command: String,
    /// UTC, `YYYYmmddTHHMMSSZ`.
    pub since: String,
}

impl Owner {
    fn me() -> Owner {
        Owner {
            pid: std::process::id(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            since: crate::stamp::utc_stamp(),
        }
    }
}

/// An owner for messages: what the lock file said, or that it said nothing
/// readable (the lock itself is the truth, its text only a courtesy).
#[derive(Debug, Clone)]
pub struct OwnerText(pub Option<Owner>);

impl fmt::Display for OwnerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(o) => write!(f, "pid {}, `{}`, since {}", o.pid, o.command, o.since),
            None => f.write_str("a process that did not say who it is"),
        }
    }
}

/// Where the machine's one knob lock lives. The knobs are one per machine,
/// so the lock is too: a fixed path whatever state file a run names (two
/// runs with different `--state-file` used to both take "the" lock). Under
/// `/run`, so it is gone with the boot its owner ran in.
pub const LOCK_DIR: &str = "/run/tierbench";

/// The lock's file in [`LOCK_DIR`] of `sys`.
fn lock_file(sys: &SysRoot) -> PathBuf {
    sys.path(LOCK_DIR).join("knobs.lock")
}

/// The exclusive right to change knobs: an `flock` on `knobs.lock` in
/// [`LOCK_DIR`], held
/// from before the first value is read as "original" until after the last
/// one is put back. The kernel drops it when the process dies, however it
/// dies, so a dead owner never blocks anyone.
#[derive(Debug)]
pub struct KnobLock {
    file: fs::File,
}

/// `flock(fd, op | LOCK_NB)`: `Ok(false)` when another holds it.
fn try_flock(file: &fs::File, op: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; no memory passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl KnobLock {
    /// Takes the machine's lock without waiting, or says who holds it.
    pub fn acquire(sys: &SysRoot) -> Result<KnobLock, KnobError> {
        use std::io::{Seek, Write};
        let path = lock_file(sys);
        let err = |reason: String| KnobError::State {
            path: path.clone(),
            reason,
        };
        private_dir(&sys.path(LOCK_DIR)).map_err(err)?;
        let mut file = open_nofollow(&path, true).map_err(|e| err(e.to_string()))?;
        if !try_flock(&file, libc::LOCK_EX).map_err(|e| err(format!("flock: {e}")))? {
            return Err(KnobError::Busy {
                owner: OwnerText(read_owner(&path)),
                lock: path,
            });
        }
        let body = serde_json::to_string(&Owner::me()).expect("owner serializes");
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(body.as_bytes()))
            .map_err(|e| err(e.to_string()))?;
        Ok(KnobLock { file })
    }

    /// Who holds the machine's lock now, if anyone (nobody when there is
    /// no lock file, or this process cannot open it).
    pub fn holder(sys: &SysRoot) -> Option<OwnerText> {
        let path = lock_file(sys);
        let file = open_nofollow(&path, false).ok()?;
        match try_flock(&file, libc::LOCK_EX) {
            Ok(true) => None,
            _ => Some(OwnerText(read_owner(&path))),
        }
    }
}

/// Opens a file without following a symbolic link at its last component
/// (`ELOOP` then): root never writes through a link planted in a
/// directory. `create` makes it when absent, never truncating.
fn open_nofollow(path: &Path, create: bool) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Makes `dir` (mode 0755) if absent, then checks that nobody else can
/// plant files in it: it must belong to this user and be writable by no
/// group or other. Root writes its knob state and lock there, so a
/// directory another user controls could point those writes anywhere.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let m = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if m.uid() != me {
        return Err(format!(
            "directory {} belongs to uid {}, not to this user (uid {me}): \
             give a state directory of your own (TIERBENCH_STATE_DIR)",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "directory {} is writable by others (mode {:o}): chmod go-w it, or give another \
             (TIERBENCH_STATE_DIR)",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

impl Drop for KnobLock {
    fn drop(&mut self) {
        // The file stays (removing it would race a new owner's open); its
        // text is cleared so nobody reads a gone owner as present.
        let _ = self.file.set_len(0);
    }
}

/// The owner's text. The owner writes it just after taking the lock, so a
/// reader that finds the lock held and the text not there yet waits for it
/// a little.
fn read_owner(lock: &Path) -> Option<Owner> {
    for _ in 0..50 {
        let text = read_capped(lock, 64 * 1024).ok()?;
        if let Ok(o) = serde_json::from_str(&text) {
            return Some(o);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// What a state file held.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    /// No state file: nothing was changed by a dead run.
    NoState,
    /// A state file with no values in it; it was removed.
    Empty,
    /// These values were written back, last changed first.
    Values(Vec<(Knob, String)>),
}

/// Whether a state file is there: `Ok(false)` when absent, an error naming
/// it when something else than a regular file sits at its path.
fn state_file_present(state: &Path) -> Result<bool, KnobError> {
    let err = |reason: String| KnobError::State {
        path: state.into(),
        reason,
    };
    match fs::symlink_metadata(state) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err(e.to_string())),
        Ok(m) if !m.is_file() => Err(err(
            "is not a regular file, so not a tierbench state file: remove it by hand".into(),
        )),
        Ok(_) => Ok(true),
    }
}

/// Restores whatever a state file holds, then removes it. The caller owns
/// the knobs (holds the [`KnobLock`]) or was told to force.
pub fn restore_from_state(sys: &SysRoot, state: &Path) -> Result<Restored, KnobError> {
    let err = |reason: String| KnobError::State {
        path: state.into(),
        reason,
    };
    if !state_file_present(state)? {
        return Ok(Restored::NoState);
    }
    let text = read_capped(state, 1 << 20).map_err(|e| err(e.to_string()))?;
    let saved: SavedKnobs = serde_json::from_str(&text).map_err(|e| {
        err(format!(
            "not a tierbench state file ({e}); nothing restored"
        ))
    })?;
    write_back(sys, &saved.saved)?;
    fs::remove_file(state).map_err(|e| err(e.to_string()))?;
    Ok(if saved.saved.is_empty() {
        Restored::Empty
    } else {
        Restored::Values(saved.saved)
    })
}

/// Writes saved values back, last changed first; reports the first failure
/// after trying every one.
fn write_back(sys: &SysRoot, saved: &[(Knob, String)]) -> Result<(), KnobError> {
    let mut first_err = None;
    for (knob, value) in saved.iter().rev() {
        if let Err(e) = knob.write(sys, value) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A sysfs kdamond as its directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdamond {
    pub index: u32,
    /// `on` or `off`, as its `state` file says.
    pub state: String,
    /// The kernel thread's pid while on.
    pub pid: Option<u32>,
}

/// The sysfs kdamonds that exist now (none when DAMON's sysfs interface is
/// absent). A kernel-started kdamond (DAMON_STAT on 7.x, DAMON_RECLAIM)
/// is not one of them: it has no directory here.
pub fn kdamonds(sys: &SysRoot) -> Vec<Kdamond> {
    let n: u32 = sys
        .read_opt(&Knob::DamonKdamonds.path())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    (0..n)
        .map(|index| {
            let dir = format!("{KDAMONDS_DIR}/{index}");
            let state = sys
                .read_opt(&format!("{dir}/state"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "unreadable".into());
            let pid = sys
                .read_opt(&format!("{dir}/pid"))
                .and_then(|p| p.trim().parse::<i64>().ok())
                .filter(|p| *p > 0)
                .map(|p| p as u32);
            Kdamond { index, state, pid }
        })
        .collect()
}

/// `auto` mode can only be turned back on where some node reported its
/// bandwidth to the CPUs (`access1`, from HMAT or CDAT): elsewhere the
/// kernel refuses `true` (ENODEV), so a run that writes a weight there
/// could never put `auto` back.
fn auto_weights_restorable(sys: &SysRoot) -> Result<(), KnobError> {
    let auto = Knob::InterleaveAuto;
    let on = auto
        .read(sys)
        .is_ok_and(|v| matches!(v.as_str(), "true" | "1" | "Y"));
    let has_bandwidth = sys
        .list("/sys/devices/system/node")
        .iter()
        .filter(|n| n.starts_with("node"))
        .any(|n| {
            sys.exists(&format!(
                "/sys/devices/system/node/{n}/access1/initiators/read_bandwidth"
            ))
        });
    if !on || has_bandwidth {
        return Ok(());
    }
    Err(KnobError::Foreign {
        what: "interleave weights are in auto mode and no node reports its bandwidth \
               (no HMAT or CDAT): once a weight is written the kernel refuses auto mode again \
               (ENODEV), so tierbench could not put it back"
            .into(),
        path: auto.file(sys),
        fix: "run weighted-interleave without weights (the kernel's, all 1 here), or switch \
              to manual mode yourself first (echo 1 > .../weighted_interleave/node0)",
    })
}

/// Turns every sysfs kdamond off. Under the lock they are this run's.
fn stop_kdamonds(sys: &SysRoot) -> Result<(), KnobError> {
    for k in kdamonds(sys).iter().filter(|k| k.state == "on") {
        let path = format!("{KDAMONDS_DIR}/{}/state", k.index);
        fs::write(sys.path(&path), "off").map_err(|err| KnobError::Io {
            op: "write",
            path,
            err,
        })?;
    }
    Ok(())
}

/// Changes, mid-run, a knob this process saved at its start (a variant's
/// interleave weights): the state file already holds its old value, so a
/// kill still puts it back. A knob the run did not save is refused.
pub fn set_owned(knob: &Knob, value: &str) -> Result<(), KnobError> {
    knob.validate(value).map_err(KnobError::Invalid)?;
    let mut guard = owned();
    let Some(o) = guard.as_mut() else {
        return Err(KnobError::Invalid(format!(
            "{knob} is not owned by this run: it must be in the run's knob plan"
        )));
    };
    if !o.saved.iter().any(|(k, _)| k == knob) {
        return Err(KnobError::Invalid(format!(
            "{knob} is not owned by this run: it must be in the run's knob plan"
        )));
    }
    knob.write(&o.sys, value)?;
    o.set.retain(|(k, _)| k != knob);
    // What the kernel does to the other weight files follows: `auto`
    // rewrites every weight, a weight turns `auto` off.
    match knob {
        Knob::InterleaveAuto if matches!(value, "true" | "1" | "Y") => o
            .set
            .retain(|(k, _)| !matches!(k, Knob::InterleaveWeight(_))),
        Knob::InterleaveWeight(_) => o.set.retain(|(k, _)| *k != Knob::InterleaveAuto),
        _ => {}
    }
    o.set.push((knob.clone(), value.to_string()));
    Ok(())
}

/// What this process changed and has not put back yet: the signal thread's
/// second signal and the panic hook restore from here, so they never touch
/// knobs another run owns.
struct Owned {
    sys: SysRoot,
    state: PathBuf,
    saved: Vec<(Knob, String)>,
    /// The values this process wrote, to notice when someone else changes
    /// them under the run.
    set: Vec<(Knob, String)>,
}

static OWNED: std::sync::Mutex<Option<Owned>> = std::sync::Mutex::new(None);

/// Whether this process ever changed a knob (its last words after a panic
/// must not say "no knobs were changed" of a run that changed and restored
/// them).
static CHANGED_ANY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn changed_any() -> bool {
    CHANGED_ANY.load(std::sync::atomic::Ordering::SeqCst)
}

fn owned() -> std::sync::MutexGuard<'static, Option<Owned>> {
    OWNED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts back what this process changed, if anything, and removes its state
/// file. For the last-resort paths: a second signal, a panic.
pub fn restore_owned() -> Result<bool, KnobError> {
    let Some(o) = owned().take() else {
        return Ok(false);
    };
    write_back(&o.sys, &o.saved)?;
    let _ = fs::remove_file(&o.state);
    Ok(true)
}

/// The knobs this process set whose value is no longer what it wrote:
/// (knob, value set, value found). Read back every interval, so a run
/// notices `knobs restore --force` or another root changing them under it.
///
/// Memory blocks are left out (offlining moves their state under the
/// kernel's hand, and the run records what it did to them), and a check
/// that finds the knobs busy (a memory block being offlined holds them for
/// seconds) is skipped: the next row checks.
pub fn drifted() -> Vec<(Knob, String, String)> {
    let guard = match OWNED.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
    };
    let Some(o) = guard.as_ref() else {
        return Vec::new();
    };
    let set: Vec<(Knob, String)> = o
        .set
        .iter()
        .filter(|(k, _)| !matches!(k, Knob::MemoryBlock(_)))
        .cloned()
        .collect();
    changed_under(&o.sys, &set)
}

fn changed_under(sys: &SysRoot, set: &[(Knob, String)]) -> Vec<(Knob, String, String)> {
    set.iter()
        .filter_map(|(k, v)| {
            let found = k.read(sys).ok()?;
            let same = found == *v
                || (*k == Knob::DemotionEnabled
                    && matches!((v.as_str(), found.as_str()), ("1", "true") | ("0", "false")));
            (!same).then(|| (k.clone(), v.clone(), found))
        })
        .collect()
}

/// The changes a run asks for, checked up front.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KnobPlan {
    pub changes: Vec<(Knob, String)>,
    /// Saved and put back like the changes, but not written at the start:
    /// the variants write them in their own windows through [`set_owned`]
    /// (interleave weights, the kdamonds of a DAMON variant).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owned: Vec<Knob>,
}

/// A checked plan that may be applied: holds the lock when the plan changes
/// anything. Runs that change nothing never take it and never touch the
/// state file.
#[derive(Debug)]
pub struct KnobLease {
    plan: KnobPlan,
    lock: Option<KnobLock>,
}

impl KnobPlan {
    pub fn set(&mut self, knob: Knob, value: impl Into<String>) {
        let value = value.into();
        self.changes.retain(|(k, _)| *k != knob);
        self.changes.push((knob, value));
    }
    /// Takes `knob` for the run without writing it now.
    pub fn own(&mut self, knob: Knob) {
        if !self.owned.contains(&knob) && !self.changes.iter().any(|(k, _)| *k == knob) {
            self.owned.push(knob);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.owned.is_empty()
    }

    /// Everything that can be checked without writing: valid values, knobs
    /// present, root; then, for a plan that changes something, the lock and
    /// no state file left by a dead run. Run before any system change.
    pub fn check(
        &self,
        sys: &SysRoot,
        state: &Path,
        is_root: bool,
    ) -> Result<KnobLease, KnobError> {
        for (knob, value) in &self.changes {
            knob.validate(value).map_err(KnobError::Invalid)?;
        }
        let all = self.owned.iter().chain(self.changes.iter().map(|(k, _)| k));
        for knob in all {
            if !knob.exists(sys) {
                return Err(KnobError::Missing {
                    knob: knob.clone(),
                    path: knob.path(),
                    hint: match knob {
                        Knob::Numab(_) => {
                            " (is debugfs mounted? mount -t debugfs none /sys/kernel/debug)"
                        }
                        _ => "",
                    },
                });
            }
            if !is_root {
                return Err(KnobError::NotRoot { knob: knob.clone() });
            }
            knob.precondition(sys)?;
        }
        if self.is_empty() {
            return Ok(KnobLease {
                plan: self.clone(),
                lock: None,
            });
        }
        if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(|reason| KnobError::State {
                path: state.into(),
                reason,
            })?;
        }
        let lock = KnobLock::acquire(sys)?;
        // Under the lock, a state file can only be a dead run's.
        if state_file_present(state)? {
            return Err(KnobError::Pending(state.into()));
        }
        Ok(KnobLease {
            plan: self.clone(),
            lock: Some(lock),
        })
    }
}

impl KnobLease {
    /// Saves the old values to `state`, then writes the new ones. If a write
    /// fails, what was written is put back before the error returns.
    pub fn apply(self, sys: &SysRoot, state: &Path) -> Result<KnobGuard, KnobError> {
        let mut guard = KnobGuard {
            sys: sys.clone(),
            state: state.to_path_buf(),
            saved: Vec::new(),
            lock: self.lock,
        };
        if guard.lock.is_none() {
            return Ok(guard);
        }
        // Owned knobs first: restored last, after the changes.
        let all = self
            .plan
            .owned
            .iter()
            .chain(self.plan.changes.iter().map(|(k, _)| k));
        for knob in all {
            guard.saved.push((knob.clone(), knob.read(sys)?));
        }
        write_state(state, &guard.saved)?;
        *owned() = Some(Owned {
            sys: sys.clone(),
            state: state.to_path_buf(),
            saved: guard.saved.clone(),
            set: self.plan.changes.clone(),
        });
        CHANGED_ANY.store(true, std::sync::atomic::Ordering::SeqCst);
        for (knob, value) in &self.plan.changes {
            // On failure the guard drops here and restores every knob.
            knob.write(sys, value)?;
        }
        Ok(guard)
    }
}

fn write_state(state: &Path, saved: &[(Knob, String)]) -> Result<(), KnobError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |reason: String| KnobError::State {
        path: state.into(),
        reason,
    };
    let body = serde_json::to_string_pretty(&SavedKnobs {
        pid: std::process::id(),
        saved: saved.to_vec(),
    })
    .expect("knob state serializes");
    // Write then rename, so a crash mid-write never leaves half a file. The
    // directory is this user's alone (checked by KnobPlan::check), so a temp file there is
    // a dead run's: unlinked (a link itself, never its target), then made
    // anew exclusively.
    let tmp = state.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e.to_string())),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| err(format!("{}: {e}", tmp.display())))?;
    f.write_all(body.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| err(e.to_string()))?;
    fs::rename(&tmp, state).map_err(|e| err(e.to_string()))
}

/// Holds changed knobs and their lock; restores them, removes the state
/// file, then releases the lock, on `restore` or on drop.
#[derive(Debug)]
pub struct KnobGuard {
    sys: SysRoot,
    state: PathBuf,
    saved: Vec<(Knob, String)>,
    lock: Option<KnobLock>,
}

impl KnobGuard {
    /// The values in force before the run.
    pub fn saved(&self) -> &[(Knob, String)] {
        &self.saved
    }
    /// Restores now and reports errors (drop restores silently).
    pub fn restore(mut self) -> Result<(), KnobError> {
        self.restore_now()
    }

    fn restore_now(&mut self) -> Result<(), KnobError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        // From memory: the values this process read, whatever the file
        // says now.
        owned().take();
        let result = write_back(&self.sys, &self.saved);
        if result.is_ok() {
            let _ = fs::remove_file(&self.state);
        }
        drop(lock);
        result
    }
}

impl Drop for KnobGuard {
    fn drop(&mut self) {
        let _ = self.restore_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sys() -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        let sys = SysRoot::at(dir.path());
        for (knob, v) in [
            (Knob::NumaBalancing, "0\n"),
            (Knob::DemotionEnabled, "false\n"),
            (Knob::ThpEnabled, "always [madvise] never\n"),
        ] {
            let p = sys.path(&knob.path());
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        }
        (dir, sys)
    }

    #[test]
    fn thp_reads_the_bracketed_choice() {
        let (_d, sys) = fake_sys();
        assert_eq!(Knob::ThpEnabled.read(&sys).unwrap(), "madvise");
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
    }

    #[test]
    fn guard_restores_on_drop_and_removes_state() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("state/knobs.json");
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "2");
        plan.set(Knob::DemotionEnabled, "true");
        let guard = plan
            .check(&sys, &state, true)
            .unwrap()
            .apply(&sys, &state)
            .unwrap();
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "2");
        assert!(state.exists());
        drop(guard);
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
        assert_eq!(Knob::DemotionEnabled.read(&sys).unwrap(), "false");
        assert!(!state.exists());
    }

    #[test]
    fn restore_after_kill_uses_the_state_file() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("knobs.json");
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "3");
        let guard = plan
            .check(&sys, &state, true)
            .unwrap()
            .apply(&sys, &state)
            .unwrap();
        // What SIGKILL does: nothing runs, and the kernel drops the lock.
        let KnobGuard { lock, .. } = &guard;
        let fd = lock.as_ref().unwrap().file.try_clone().unwrap();
        std::mem::forget(guard);
        // SAFETY: unlocking a descriptor this test owns.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::LOCK_UN) };
        owned().take();
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "3");
        let restored = restore_from_state(&sys, &state).unwrap();
        assert_eq!(
            restored,
            Restored::Values(vec![(Knob::NumaBalancing, "0".to_string())])
        );
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
        assert_eq!(restore_from_state(&sys, &state).unwrap(), Restored::NoState);
    }

    #[test]
    fn check_refuses_before_writing() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("knobs.json");
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "2");
        assert!(matches!(
            plan.check(&sys, &state, false),
            Err(KnobError::NotRoot { .. })
        ));
        plan.set(Knob::NumaBalancing, "7");
        assert!(matches!(
            plan.check(&sys, &state, true),
            Err(KnobError::Invalid(_))
        ));
        let mut plan = KnobPlan::default();
        plan.set(Knob::PromoteRateLimit, "100");
        assert!(matches!(
            plan.check(&sys, &state, true),
            Err(KnobError::Missing { .. })
        ));
        assert!(Knob::PromoteRateLimit.validate("2147483648").is_err());
        assert!(Knob::PromoteRateLimit.validate("2147483647").is_ok());
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
    }

    #[test]
    fn leftover_state_blocks_a_new_run() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("knobs.json");
        fs::write(&state, "{}").unwrap();
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "2");
        assert!(matches!(
            plan.check(&sys, &state, true),
            Err(KnobError::Pending(_))
        ));
        // A directory where the state file should be is named as such.
        fs::remove_file(&state).unwrap();
        fs::create_dir(&state).unwrap();
        let e = plan.check(&sys, &state, true).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn one_owner_at_a_time_and_empty_plans_touch_nothing() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("knobs.json");
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "2");
        let first = plan.check(&sys, &state, true).unwrap();
        // The second owner is refused while the first holds the lock, and
        // told who holds it.
        match plan.check(&sys, &state, true) {
            Err(KnobError::Busy { owner, .. }) => {
                assert_eq!(owner.0.unwrap().pid, std::process::id())
            }
            other => panic!("{other:?}"),
        }
        assert!(KnobLock::holder(&sys).is_some());
        let guard = first.apply(&sys, &state).unwrap();
        // A run that changes nothing neither locks nor restores.
        let none = KnobPlan::default().check(&sys, &state, false).unwrap();
        none.apply(&sys, &state).unwrap().restore().unwrap();
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "2");
        assert!(state.exists());
        guard.restore().unwrap();
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
        assert!(KnobLock::holder(&sys).is_none());
    }

    #[test]
    fn the_lock_is_the_machines_whatever_the_state_file() {
        let (dir, sys) = fake_sys();
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "1");
        let _first = plan
            .check(&sys, &dir.path().join("a/knobs.json"), true)
            .unwrap();
        let mut other = KnobPlan::default();
        other.set(Knob::NumaBalancing, "3");
        assert!(matches!(
            other.check(&sys, &dir.path().join("b/knobs.json"), true),
            Err(KnobError::Busy { .. })
        ));
        // A state file named like the lock no longer refuses its own run.
        drop(_first);
        let lease = plan
            .check(&sys, &dir.path().join("c/knobs.lock"), true)
            .unwrap();
        drop(lease);
    }

    #[test]
    fn a_state_directory_others_control_is_refused_and_links_are_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, sys) = fake_sys();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, "2");
        let state = open.join("knobs.json");
        let e = plan.check(&sys, &state, true).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
        // In a private directory, a link where the temp file goes is
        // replaced, and its target left alone.
        let own = dir.path().join("own");
        fs::create_dir(&own).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, own.join("knobs.tmp")).unwrap();
        let state = own.join("knobs.json");
        let guard = plan
            .check(&sys, &state, true)
            .unwrap()
            .apply(&sys, &state)
            .unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        drop(guard);
        // A link as the state file is not a state file.
        std::os::unix::fs::symlink(&victim, &state).unwrap();
        let e = restore_from_state(&sys, &state).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn a_knob_changed_under_the_owner_is_noticed() {
        let (_dir, sys) = fake_sys();
        let set = vec![
            (Knob::NumaBalancing, "0".to_string()),
            (Knob::DemotionEnabled, "0".to_string()),
        ];
        assert!(changed_under(&sys, &set).is_empty(), "false reads as 0");
        fs::write(sys.path(&Knob::NumaBalancing.path()), "2\n").unwrap();
        assert_eq!(
            changed_under(&sys, &set),
            vec![(Knob::NumaBalancing, "0".to_string(), "2".to_string())]
        );
    }

    #[test]
    fn a_state_file_cannot_name_a_path() {
        let bad = r#"{"pid": 1, "saved": [["numab.../../../../tmp/victim", "1"]]}"#;
        let e = serde_json::from_str::<SavedKnobs>(bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown numa_balancing scanner knob"),
            "{e}"
        );
        let bad = r#"{"pid": 1, "saved": [["/etc/passwd", "1"]]}"#;
        assert!(serde_json::from_str::<SavedKnobs>(bad).is_err());
        let good = r#"{"pid":1,"saved":[["numab.scan_delay_ms","1000"]]}"#;
        let saved: SavedKnobs = serde_json::from_str(good).unwrap();
        assert_eq!(saved.saved[0].0, Knob::Numab("scan_delay_ms".into()));
        assert_eq!(serde_json::to_string(&saved).unwrap(), good);
    }

    #[test]
    fn an_empty_state_file_is_named_as_empty() {
        let (dir, sys) = fake_sys();
        let state = dir.path().join("knobs.json");
        fs::write(&state, r#"{"pid": 1, "saved": []}"#).unwrap();
        assert_eq!(restore_from_state(&sys, &state).unwrap(), Restored::Empty);
        assert!(!state.exists());
    }

    /// Putting `damon.nr_kdamonds` back turns every kdamond off first (the
    /// kernel refuses the count while one runs), then writes the count.
    #[test]
    fn restoring_the_kdamond_count_turns_them_off_first() {
        let dir = tempfile::tempdir().unwrap();
        let sys = SysRoot::at(dir.path());
        let kd = sys.path(KDAMONDS_DIR);
        for i in 0..2 {
            fs::create_dir_all(kd.join(i.to_string())).unwrap();
            fs::write(kd.join(format!("{i}/state")), "on\n").unwrap();
            fs::write(kd.join(format!("{i}/pid")), format!("{}\n", 100 + i)).unwrap();
        }
        fs::write(kd.join("nr_kdamonds"), "2\n").unwrap();
        let err = Knob::DamonKdamonds
            .precondition(&sys)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kdamond 0 (on, pid 100), kdamond 1 (on, pid 101)"),
            "{err}"
        );
        let state = dir.path().join("knobs.json");
        write_state(&state, &[(Knob::DamonKdamonds, "0".into())]).unwrap();
        restore_from_state(&sys, &state).unwrap();
        for i in 0..2 {
            assert_eq!(
                fs::read_to_string(kd.join(format!("{i}/state"))).unwrap(),
                "off"
            );
        }
        assert_eq!(fs::read_to_string(kd.join("nr_kdamonds")).unwrap(), "0");
    }

    /// A 6.18 kernel names the auto file `__auto_type`: the same knob.
    #[test]
    fn the_auto_weights_file_is_found_under_its_mangled_name() {
        let dir = tempfile::tempdir().unwrap();
        let sys = SysRoot::at(dir.path());
        let wi = sys.path(WI_DIR);
        fs::create_dir_all(&wi).unwrap();
        fs::write(wi.join("__auto_type"), "true\n").unwrap();
        fs::write(wi.join("node0"), "1\n").unwrap();
        assert_eq!(
            Knob::interleave_knobs(&sys),
            vec![Knob::InterleaveAuto, Knob::InterleaveWeight(0)]
        );
        assert_eq!(Knob::InterleaveAuto.read(&sys).unwrap(), "true");
        // Auto mode and no bandwidth data: writing a weight could never be
        // undone, so a plan that owns the weights is refused.
        let mut plan = KnobPlan::default();
        plan.own(Knob::InterleaveAuto);
        let state = dir.path().join("state/knobs.json");
        let err = plan.check(&sys, &state, true).unwrap_err().to_string();
        assert!(err.contains("no node reports its bandwidth"), "{err}");
        let bw = sys.path("/sys/devices/system/node/node0/access1/initiators");
        fs::create_dir_all(&bw).unwrap();
        fs::write(bw.join("read_bandwidth"), "20480\n").unwrap();
        assert!(plan.check(&sys, &state, true).is_ok());
    }

    #[test]
    fn knob_names_parse() {
        for s in ["numa_balancing", "thp_defrag", "numab.scan_period_min_ms"] {
            assert_eq!(s.parse::<Knob>().unwrap().to_string(), s);
        }
        assert!("numab./etc".parse::<Knob>().is_err());
        assert!("numab...".parse::<Knob>().is_err());
    }
}
