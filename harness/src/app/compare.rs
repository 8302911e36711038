//! `tierbench compare`: the changelog table.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{CompareArgs, CompareFormat};
use crate::error::input;

pub fn compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::report::characterisation::{self as ch, Characterisation};
    use crate::report::compare;
    if let Some(runs) = Characterisation::read_all(&a.dirs)? {
        let text = match a.format {
            CompareFormat::Text => ch::compare_text(&runs, false),
            CompareFormat::Markdown => ch::compare_text(&runs, true),
            CompareFormat::Json => serde_json::to_string_pretty(&ch::figures(&runs))? + "\n",
            CompareFormat::Lava | CompareFormat::Mmtests => {
                return Err(input(
                    "--format lava and mmtests report a run's metrics: use text, markdown or \
                     json for a characterisation",
                ))
            }
        };
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
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
        crate::errln!("tierbench compare: forced although {why}");
    }
    use compare::export;
    // Text narrows wide blocks to baseline-vs-one so it fits a changelog;
    // the others keep every column.
    let (exporter, narrow): (&dyn export::Exporter, bool) = match a.format {
        CompareFormat::Text => (&export::Text, true),
        CompareFormat::Markdown => (&export::Markdown, false),
        CompareFormat::Json => (&export::Json, false),
        CompareFormat::Lava => (&export::Lava, false),
        CompareFormat::Mmtests => (&export::Mmtests, false),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(exporter.render(&compare::table(&runs, narrow)).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
