//! SIGINT, SIGTERM, SIGHUP and every other signal whose default action
//! would end the process (SIGUSR1, SIGALRM, ...: see [`STOPPING`]): the
//! first asks the run to stop at its next check (so guards drop and knobs
//! are restored in order, and finished CSV rows stay); a second one
//! restores the knobs this process changed (never another run's) and exits
//! at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libc::{SIGPWR, SIGSTKFLT};
use signal_hook::consts::signal::{
    SIGALRM, SIGHUP, SIGINT, SIGIO, SIGPROF, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGXCPU, SIGXFSZ,
};
use signal_hook::iterator::Signals;

/// Signals whose default action would end the process with the knobs
/// changed (signal(7): "Term", and SIGXCPU/SIGXFSZ, which also dump core):
/// each stops the run as SIGINT does. SIGPIPE stays ignored (Rust's
/// default): a closed pipe is an error on the write that met it. SIGQUIT
/// keeps its core dump, for debugging a hang.
pub const STOPPING: [i32; 13] = [
    SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,
    SIGSTKFLT, SIGXCPU, SIGXFSZ,
];

/// Installs the handlers; the returned flag turns true on the first signal.
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = Signals::new(STOPPING)?;
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
            Ok(false) if crate::knobs::changed_any() => "knobs already restored",
            Ok(false) => "no knobs were changed",
            Err(_) => "restoring knobs failed: run `tierbench knobs restore`",
        };
        crate::errln!("tierbench: internal error (a bug: please report it): {restored}");
        std::process::exit(101);
    }));
}
