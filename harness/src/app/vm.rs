//! `tierbench vm`: boot an emulated tiered machine and run a command in it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::check_out;
use crate::cli::{Cli, Command, VmArgs};
use crate::error::input;
use crate::report::utc_stamp;

pub fn vm(a: VmArgs) -> anyhow::Result<ExitCode> {
    let name = std::path::Path::new(&a.host)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("tierbench-results").join(format!("vm-{}-{name}", utc_stamp()))
    });
    check_out(&out)?;
    check_inner(&a.inner)?;
    crate::vm::run_vm(crate::vm::VmRequest {
        host: a.host,
        kernel: a.kernel,
        accel: a.accel,
        timeout: a.timeout,
        out,
        inner: a.inner,
        quiet: a.quiet,
        crash_init: a.crash_init_for_test,
        boot_retries: a.boot_retries,
    })
}

/// The inner command is parsed on the host, so a typo or a bad value is
/// refused before anything boots.
fn check_inner(inner: &[String]) -> anyhow::Result<()> {
    use clap::Parser;
    let argv = std::iter::once("tierbench".to_string()).chain(inner.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => match cli.command {
            Command::Vm(_) => Err(input(
                "the command after -- runs inside the guest: `vm` cannot nest there",
            )),
            _ => Ok(()),
        },
        Err(e) => {
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            Err(input(format!(
                "the command after -- ({}): {first}",
                inner.join(" ")
            )))
        }
    }
}
