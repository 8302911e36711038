//! `tierbench vm`: boot an emulated tiered machine and run a command in it;
//! with several `--kernel`s, the same command on each kernel in turn and
//! the `compare` table across them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{Cli, Command, VmArgs};
use crate::error::input;
use crate::report::characterisation::{self, Characterisation};
use crate::report::compare;
use crate::report::outdir::{self, Existing, OutDir};
use crate::report::utc_stamp;
use crate::vm::kernel::{self, Kernel};
use crate::vm::VmRequest;

pub fn vm(a: VmArgs) -> anyhow::Result<ExitCode> {
    let name = std::path::Path::new(&a.host)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("tierbench-results").join(format!("vm-{}-{name}", utc_stamp()))
    });
    outdir::check(&out, Existing::from_flag(a.replace))?;
    check_inner(&a.inner)?;
    let cache = kernel::cache_dir();
    let kernels = a
        .kernel
        .iter()
        .map(|k| k.resolve(&cache).map_err(input))
        .collect::<Result<Vec<Kernel>, _>>()?;
    let carried: Vec<PathBuf> = a
        .carry
        .iter()
        .map(|p| {
            crate::program::resolve_program(p)
                .map_err(|e| crate::error::input(format!("--carry {e}")))
        })
        .collect::<anyhow::Result<_>>()?;
    let after: Vec<Vec<String>> = a
        .after
        .iter()
        .map(|c| {
            crate::program::split_words(c)
                .ok()
                .filter(|w| !w.is_empty())
                .ok_or_else(|| {
                    crate::error::input(format!(
                        "--after {c:?}: give a tierbench command, e.g. 'knobs restore'"
                    ))
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let request = |image: &Path, out: PathBuf| VmRequest {
        host: a.host.clone(),
        kernel: image.to_path_buf(),
        accel: a.accel,
        timeout: a.timeout,
        out,
        inner: a.inner.clone(),
        carry: carried.clone(),
        after: after.clone(),
        quiet: a.quiet,
        crash_init: a.crash_init_for_test,
        hypervisor_bit_for_test: a.hypervisor_bit_for_test,
        boot_retries: a.boot_retries,
    };
    let _claimed = OutDir::claim(&out, Existing::from_flag(a.replace))?;
    match kernels.as_slice() {
        [one] => crate::vm::run_vm(request(&one.image, out)).map(ExitCode::from),
        several => {
            let labels = kernel::unique_labels(several);
            let requests: Vec<VmRequest> = several
                .iter()
                .zip(&labels)
                .map(|(k, l)| request(&k.image, out.join(l)))
                .collect();
            a_b(&requests, &labels, &out)
        }
    }
}

/// Boots each kernel in turn with the same command, keeps going when one
/// fails, then prints the compare table of the runs that produced results.
fn a_b(requests: &[VmRequest], labels: &[String], out: &Path) -> anyhow::Result<ExitCode> {
    // Every kernel is checked before the first one boots.
    for r in requests {
        crate::vm::check(r)?;
    }
    let mut worst = 0u8;
    let mut failed = Vec::new();
    for (i, (r, label)) in requests.iter().zip(labels).enumerate() {
        crate::errln!(
            "tierbench vm: kernel {} of {}: {label} ({}) -> {}",
            i + 1,
            requests.len(),
            r.kernel.display(),
            r.out.display()
        );
        match crate::vm::run_vm(r.clone()) {
            Ok(code) => worst = worst.max(code),
            Err(e) if e.downcast_ref::<crate::error::Interrupted>().is_some() => return Err(e),
            Err(e) => {
                crate::errln!("tierbench vm: kernel {label}: {e:#}");
                failed.push(label.clone());
            }
        }
    }
    let dirs: Vec<&Path> = requests
        .iter()
        .map(|r| r.out.as_path())
        .filter(|d| d.join("summary.csv").is_file() || Characterisation::is_one(d))
        .collect();
    if dirs.len() >= 2 {
        print_comparison(&dirs, out)?;
    } else if requests
        .iter()
        .any(|r| r.inner.first().is_some_and(|c| c == "run"))
    {
        crate::errln!("tierbench vm: fewer than two kernels produced results: no comparison");
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} kernels failed: {} (their directories keep the console logs)",
            failed.len(),
            requests.len(),
            failed.join(", ")
        );
    }
    Ok(ExitCode::from(worst))
}

/// The compare table across the kernels' runs, on stdout and into
/// OUT/compare.txt and OUT/compare.md.
fn print_comparison(dirs: &[&Path], out: &Path) -> anyhow::Result<()> {
    let (text, markdown) = if dirs.iter().all(|d| Characterisation::is_one(d)) {
        let runs = dirs
            .iter()
            .map(|d| Characterisation::read(d))
            .collect::<Result<Vec<_>, _>>()?;
        (
            characterisation::compare_text(&runs, false),
            characterisation::compare_text(&runs, true),
        )
    } else {
        match run_comparison(dirs)? {
            Some(t) => t,
            None => return Ok(()),
        }
    };
    std::fs::write(out.join("compare.txt"), &text)?;
    std::fs::write(out.join("compare.md"), markdown)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "\n== compare across kernels ({})",
        out.join("compare.txt").display()
    )?;
    stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// The text and Markdown tables across the kernels' runs, or None (said
/// on stderr) when they cannot be compared.
fn run_comparison(dirs: &[&Path]) -> anyhow::Result<Option<(String, String)>> {
    let runs = dirs
        .iter()
        .map(|d| compare::RunResults::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    if let Err(e) = compare::check(&runs) {
        crate::errln!("tierbench vm: no table across kernels: {e}");
        return Ok(None);
    }
    if let Some(why) = compare::mismatch(&runs) {
        crate::errln!("tierbench vm: the kernels' runs are not comparable ({why}): no table");
        return Ok(None);
    }
    Ok(Some((compare::text(&runs), compare::markdown(&runs))))
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
