//! For tests only (unit and integration): how a test that cannot run on
//! this machine says so.

/// A test that cannot run here says so: a `SKIP` line on stderr and in the
/// skip log scripts/test counts (`$TIERBENCH_SKIP_LOG`). Under `CI=true`,
/// where root, QEMU, cpio, the font and the kernels are always there, a
/// skip is a failure.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} must run in CI, but: {why}"
    );
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("TIERBENCH_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
