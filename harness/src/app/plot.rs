//! `tierbench plot`: timeline charts of runs, or loaded-latency curves of
//! characterisations (`matrix --curve`, `latency --curve`).

use std::process::ExitCode;

use crate::cli::PlotArgs;
use crate::error::input;
use crate::report::characterisation::Characterisation;
use crate::report::plot;

pub fn plot(a: PlotArgs) -> anyhow::Result<ExitCode> {
    let curves = a
        .dirs
        .iter()
        .filter(|d| Characterisation::is_one(d))
        .count();
    let files = if curves == 0 {
        let t = plot::read(&a.dirs)?;
        let stem = a.out.unwrap_or_else(|| a.dirs[0].join("timeline"));
        plot::write(&t, &stem)
    } else if curves == a.dirs.len() {
        let runs = a
            .dirs
            .iter()
            .map(|d| Characterisation::read(d))
            .collect::<Result<Vec<_>, _>>()?;
        let lines = plot::curve_series(&runs);
        if lines.is_empty() {
            return Err(input(format!(
                "{}: no curve.csv rows to draw: measure one with `tierbench latency --curve -o` \
                 or `tierbench matrix --curve -o`",
                a.dirs[0].display()
            )));
        }
        let stem = a.out.unwrap_or_else(|| a.dirs[0].join("curve"));
        plot::write_curve(&lines, &stem)
    } else {
        return Err(input(
            "give either results directories of `tierbench run` (timelines) or of `matrix`/\
             `latency --curve` (curves), not both",
        ));
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
