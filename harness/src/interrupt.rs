//! SIGINT, SIGTERM and SIGHUP: the first asks the run to stop at its next
//! check (so guards drop and knobs are restored in order, and finished CSV
//! rows stay); a second one restores the knobs from the state file and
//! exits at once with 130.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::sysfs::SysRoot;

/// Installs the handlers; the returned flag turns true on the first signal.
pub fn install(state_file: PathBuf) -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("tierbench-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if flag.swap(true, Ordering::SeqCst) {
                    let _ = crate::knobs::restore_from_state(&SysRoot::live(), &state_file);
                    std::process::exit(130);
                }
            }
        })?;
    Ok(stop)
}
