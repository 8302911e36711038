//! SIGINT, SIGTERM and SIGHUP: the first asks the run to stop at its next
//! check (so guards drop and knobs are restored in order, and finished CSV
//! rows stay); a second one restores the knobs this process changed (never
//! another run's) and exits at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Installs the handlers; the returned flag turns true on the first signal.
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("tierbench-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if flag.swap(true, Ordering::SeqCst) {
                    let _ = crate::knobs::restore_owned();
                    std::process::exit(130);
                }
            }
        })?;
    Ok(stop)
}

/// A panic is a bug, and a bug must not leave the system changed or the
/// process hanging (a panicking sampler would otherwise wait forever for
/// workers nobody stops): print the panic, put back the knobs this process
/// changed, and exit 101 at once.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let restored = match crate::knobs::restore_owned() {
            Ok(true) => "knobs restored",
            Ok(false) => "no knobs were changed",
            Err(_) => "restoring knobs failed: run `tierbench knobs restore`",
        };
        eprintln!("tierbench: internal error (a bug: please report it): {restored}");
        std::process::exit(101);
    }));
}
