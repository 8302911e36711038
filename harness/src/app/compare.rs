//! `tierbench compare`: the changelog table.

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
    print!(
        "{}",
        match a.format {
            CompareFormat::Text => compare::text(&runs),
            CompareFormat::Markdown => compare::markdown(&runs),
        }
    );
    Ok(ExitCode::SUCCESS)
}
