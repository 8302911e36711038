//! `tierbench generate`: man pages and completions from the clap
//! definitions, so they never drift from `--help`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

use crate::cli::{GenerateArgs, Generated};
use crate::error::input;

pub fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::cli::command();
    let shell = match a.what {
        Generated::Man => {
            let Some(dir) = a.out else {
                return Err(input(
                    "generate man writes one page per subcommand: give a directory with --out DIR",
                ));
            };
            let pages = man_pages(cmd, &dir)?;
            crate::errln!("tierbench generate: {pages} man pages in {}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    let mut cmd = cmd;
    match a.out {
        Some(dir) => {
            super::check_out(&dir)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = clap_complete::generate_to(shell, &mut cmd, "tierbench", &dir)
                .with_context(|| format!("writing {shell} completions into {}", dir.display()))?;
            crate::errln!("tierbench generate: {}", path.display());
        }
        None => {
            // clap_complete panics on a failed write: it writes to memory,
            // and the write to stdout reports a full disk or closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tierbench", &mut script);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)
                .and_then(|_| out.flush())
                .with_context(|| format!("writing {shell} completions to standard output"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// tierbench.1 and tierbench-SUB.1 per visible subcommand; the count.
fn man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<usize> {
    super::check_out(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let mut n = 0;
    let mut write = |name: String, c: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c.name(name.clone())).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        n += 1;
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write(format!("tierbench-{}", sub.get_name()), sub.clone())?;
    }
    write("tierbench".into(), cmd)?;
    Ok(n)
}
