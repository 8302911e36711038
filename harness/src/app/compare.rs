//! `tierbench compare`: the changelog table.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{CompareArgs, CompareFormat};
use crate::error::input;

pub fn compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::report::compare;
    let runs = a
        .dirs
        .iter()
        .map(|d| compare::RunResults::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    compare::check(&runs)?;
    if let Some(why) = compare::mismatch(&runs) {
        if !a.force {
            return Err(input(format!(
                "not comparable: {why}; pass --force to compare anyway"
            )));
        }
        eprintln!("tierbench compare: forced although {why}");
    }
    use compare::export;
    // Text narrows wide blocks to baseline-vs-one so it fits a changelog;
    // the others keep every column.
    let (exporter, narrow): (&dyn export::Exporter, bool) = match a.format {
        CompareFormat::Text => (&export::Text, true),
        CompareFormat::Markdown => (&export::Markdown, false),
        CompareFormat::Json => (&export::Json, false),
        CompareFormat::Lava => (&export::Lava, false),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(exporter.render(&compare::table(&runs, narrow)).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
