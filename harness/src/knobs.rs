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

/// Debugfs knobs of the NUMA-balancing scanner (5.13+ moved them there
/// from sysctl): `/sys/kernel/debug/sched/numa_balancing/NAME`.
pub const NUMAB_DEBUGFS: &str = "/sys/kernel/debug/sched/numa_balancing";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
}

impl Knob {
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
        }
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
        .filter(|k| sys.exists(&k.path()))
        .collect();
        knobs.extend(sys.list(NUMAB_DEBUGFS).into_iter().map(Knob::Numab));
        knobs
    }

    /// The current value. THP files list every choice with the current one
    /// in brackets (`always [madvise] never`): only that one is returned.
    pub fn read(&self, sys: &SysRoot) -> Result<String, KnobError> {
        let raw = sys
            .read(&self.path())
            .map_err(|e| self.io_error("read", e))?;
        Ok(selected_value(&raw))
    }

    fn write(&self, sys: &SysRoot, value: &str) -> Result<(), KnobError> {
        fs::write(sys.path(&self.path()), value).map_err(|e| self.io_error("write", e))
    }

    /// Checks `value` before anything is written, so a typo changes nothing.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            Knob::NumaBalancing => matches!(value, "0" | "1" | "2" | "3"),
            Knob::DemotionEnabled => matches!(value, "true" | "false" | "1" | "0"),
            Knob::PromoteRateLimit | Knob::Numab(_) => value.parse::<u64>().is_ok(),
            Knob::ThpEnabled => matches!(value, "always" | "madvise" | "never"),
            Knob::ThpDefrag => {
                matches!(
                    value,
                    "always" | "defer" | "defer+madvise" | "madvise" | "never"
                )
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{value:?} is not a valid value for {self}"))
        }
    }

    fn io_error(&self, op: &'static str, source: std::io::Error) -> KnobError {
        KnobError::Io {
            op,
            path: self.path(),
            source,
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
            other => match other.strip_prefix("numab.") {
                Some(name) if !name.is_empty() && !name.contains('/') => {
                    Knob::Numab(name.to_string())
                }
                _ => return Err(format!("unknown knob {other:?}")),
            },
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
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
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
    #[error("state file {path}: {reason}")]
    State { path: PathBuf, reason: String },
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
                | KnobError::Invalid(_)
        )
    }

    /// For the glue: an input error becomes [`crate::error::InputError`]
    /// (exit 2, one line), anything else stays a runtime failure.
    pub fn into_anyhow(self) -> anyhow::Error {
        if self.is_input_error() {
            crate::error::input(self.to_string())
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

/// Restores whatever a state file holds, then removes it. Returns what was
/// restored; `Ok(empty)` when there is no state file.
pub fn restore_from_state(sys: &SysRoot, state: &Path) -> Result<Vec<(Knob, String)>, KnobError> {
    let text = match fs::read_to_string(state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(KnobError::State {
                path: state.into(),
                reason: e.to_string(),
            })
        }
    };
    let saved: SavedKnobs = serde_json::from_str(&text).map_err(|e| KnobError::State {
        path: state.into(),
        reason: format!("not a tierbench state file ({e})"),
    })?;
    let mut first_err = None;
    for (knob, value) in saved.saved.iter().rev() {
        if let Err(e) = knob.write(sys, value) {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    fs::remove_file(state).map_err(|e| KnobError::State {
        path: state.into(),
        reason: e.to_string(),
    })?;
    Ok(saved.saved)
}

/// The changes a run asks for, checked up front.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KnobPlan {
    pub changes: Vec<(Knob, String)>,
}

impl KnobPlan {
    pub fn set(&mut self, knob: Knob, value: impl Into<String>) {
        let value = value.into();
        self.changes.retain(|(k, _)| *k != knob);
        self.changes.push((knob, value));
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Everything that can be checked without writing: valid values, knobs
    /// present, root, no leftover state file. Run before any system change.
    pub fn check(&self, sys: &SysRoot, state: &Path, is_root: bool) -> Result<(), KnobError> {
        for (knob, value) in &self.changes {
            knob.validate(value).map_err(KnobError::Invalid)?;
            if !sys.exists(&knob.path()) {
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
        }
        if !self.is_empty() && state.exists() {
            return Err(KnobError::Pending(state.into()));
        }
        Ok(())
    }

    /// Saves the old values to `state`, then writes the new ones. If a write
    /// fails, what was written is put back before the error returns.
    pub fn apply(&self, sys: &SysRoot, state: &Path) -> Result<KnobGuard, KnobError> {
        let mut saved = Vec::new();
        for (knob, _) in &self.changes {
            saved.push((knob.clone(), knob.read(sys)?));
        }
        let guard = KnobGuard {
            sys: sys.clone(),
            state: state.to_path_buf(),
            saved: saved.clone(),
            restored: self.is_empty(),
        };
        if self.is_empty() {
            return Ok(guard);
        }
        write_state(state, &saved)?;
        for (knob, value) in &self.changes {
            // On failure the guard drops here and restores every knob.
            knob.write(sys, value)?;
        }
        Ok(guard)
    }
}

fn write_state(state: &Path, saved: &[(Knob, String)]) -> Result<(), KnobError> {
    let err = |reason: String| KnobError::State {
        path: state.into(),
        reason,
    };
    if let Some(dir) = state.parent() {
        fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let body = serde_json::to_string_pretty(&SavedKnobs {
        pid: std::process::id(),
        saved: saved.to_vec(),
    })
    .expect("knob state serializes");
    // Write then rename, so a crash mid-write never leaves half a file.
    let tmp = state.with_extension("tmp");
    fs::write(&tmp, body).map_err(|e| err(e.to_string()))?;
    fs::rename(&tmp, state).map_err(|e| err(e.to_string()))
}

/// Holds changed knobs; restores them and removes the state file on drop.
#[derive(Debug)]
pub struct KnobGuard {
    sys: SysRoot,
    state: PathBuf,
    saved: Vec<(Knob, String)>,
    restored: bool,
}

impl KnobGuard {
    /// The values in force before the run.
    pub fn saved(&self) -> &[(Knob, String)] {
        &self.saved
    }
    /// Restores now and reports errors (drop restores silently).
    pub fn restore(mut self) -> Result<(), KnobError> {
        self.restored = true;
        restore_from_state(&self.sys, &self.state).map(drop)
    }
}

impl Drop for KnobGuard {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        if restore_from_state(&self.sys, &self.state).is_err() {
            // The state file is unreadable or gone: write from memory.
            for (knob, value) in self.saved.iter().rev() {
                let _ = knob.write(&self.sys, value);
            }
        }
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
        plan.check(&sys, &state, true).unwrap();
        let guard = plan.apply(&sys, &state).unwrap();
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
        let guard = plan.apply(&sys, &state).unwrap();
        std::mem::forget(guard); // what SIGKILL does
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "3");
        let restored = restore_from_state(&sys, &state).unwrap();
        assert_eq!(restored, vec![(Knob::NumaBalancing, "0".to_string())]);
        assert_eq!(Knob::NumaBalancing.read(&sys).unwrap(), "0");
        assert!(restore_from_state(&sys, &state).unwrap().is_empty());
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
    }

    #[test]
    fn knob_names_parse() {
        for s in ["numa_balancing", "thp_defrag", "numab.scan_period_min_ms"] {
            assert_eq!(s.parse::<Knob>().unwrap().to_string(), s);
        }
        assert!("numab./etc".parse::<Knob>().is_err());
    }
}
