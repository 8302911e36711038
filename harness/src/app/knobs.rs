//! `tierbench knobs show|restore`.

use std::process::ExitCode;

use crate::cli::{KnobsAction, KnobsArgs};
use crate::error::input;
use crate::knobs::{self, Knob, KnobError};
use crate::report::table::Table;
use crate::sysfs::SysRoot;

pub fn knobs(args: KnobsArgs) -> anyhow::Result<ExitCode> {
    let sys = SysRoot::live();
    let state = args.state_file.unwrap_or_else(knobs::default_state_file);
    match args.action {
        KnobsAction::Show => {
            let mut t = Table::new(["knob", "value", "path"]);
            for k in Knob::all_present(&sys) {
                t.push([
                    k.to_string(),
                    k.read(&sys).unwrap_or_else(|e| e.to_string()),
                    k.file(&sys),
                ]);
            }
            crate::out!("{}", t.render())?;
            if let Some(owner) = knobs::KnobLock::holder(&sys) {
                crate::outln!("\nheld by a running tierbench: {owner}")?;
            } else if state.exists() {
                crate::outln!(
                    "\npending state file {}: run `tierbench knobs restore`",
                    state.display()
                )?;
            }
        }
        KnobsAction::Restore { force } => {
            // SAFETY: geteuid has no preconditions.
            if state.exists() && unsafe { libc::geteuid() } != 0 {
                return Err(input(
                    "restoring knobs needs root: run `sudo tierbench knobs restore`",
                ));
            }
            // The owner's lock, held while restoring, so no run starts from
            // half-restored values; a live owner's knobs are its own.
            let lock = match knobs::KnobLock::acquire(&sys) {
                Ok(l) => Some(l),
                Err(KnobError::Busy { owner, .. }) if force => {
                    crate::errln!(
                        "tierbench knobs: --force: restoring although {owner} holds them"
                    );
                    None
                }
                Err(KnobError::Busy { owner, lock }) => {
                    return Err(input(format!(
                        "the knobs belong to a live run ({owner}): it restores them when it \
                         ends; stop it, or pass --force to restore now (lock {})",
                        lock.display()
                    )))
                }
                // No lock to be had (not root, no state dir) and nothing to
                // restore: restore_from_state says so.
                Err(_) if !state.exists() => None,
                Err(e) => return Err(e.into_anyhow()),
            };
            let restored =
                knobs::restore_from_state(&sys, &state).map_err(KnobError::into_anyhow)?;
            drop(lock);
            match restored {
                knobs::Restored::NoState => {
                    crate::outln!("nothing to restore ({} does not exist)", state.display())?
                }
                knobs::Restored::Empty => crate::outln!(
                    "nothing to restore: {} held no knob values; removed it",
                    state.display()
                )?,
                knobs::Restored::Values(v) => {
                    for (k, v) in v {
                        crate::outln!("restored {k} = {v}")?;
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
