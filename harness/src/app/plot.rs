//! `tierbench plot`: timeline charts of runs, or loaded-latency curves of
//! characterisations (`matrix --curve`, `latency --curve`).

use std::process::ExitCode;

use crate::cli::PlotArgs;
use crate::error::input;
use crate::report::characterisation::Characterisation;
use crate::report::plot;

pub fn plot(a: PlotArgs) -> anyhow::Result<ExitCode> {
    // A bandwidth sweep (`bw --sweep -o DIR`): its chart again.
    if let [dir] = a.dirs.as_slice() {
        let csv = dir.join(super::measure::SWEEP_CSV);
        if csv.is_file() {
            let points = read_sweep(&csv)?;
            let stem = a.out.unwrap_or_else(|| dir.join("sweep"));
            for f in plot::write_sweep(&points, &stem).map_err(|e| anyhow::anyhow!(e))? {
                crate::outln!("{}", f.display())?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    let files = match Characterisation::read_all(&a.dirs)? {
        None => {
            let t = plot::read(&a.dirs)?;
            let stem = a.out.unwrap_or_else(|| a.dirs[0].join("timeline"));
            plot::write(&t, &stem)
        }
        Some(runs) => {
            let curves: Vec<(&str, &[_])> = runs
                .iter()
                .map(|r| (r.label.as_str(), r.curve.as_slice()))
                .collect();
            let panels = plot::curve_panels(&curves);
            if panels.iter().all(|(_, lines)| lines.is_empty()) {
                return Err(input(format!(
                    "{}: no curve.csv rows to draw: measure one with `tierbench latency --curve \
                     -o` or `tierbench matrix --curve -o`",
                    a.dirs[0].display()
                )));
            }
            let stem = a.out.unwrap_or_else(|| a.dirs[0].join("curve"));
            plot::write_curve(&panels, &stem)
        }
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    for f in files {
        crate::outln!("{}", f.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_sweep(csv: &std::path::Path) -> anyhow::Result<Vec<crate::workload::sweep::SweepPoint>> {
    let mut r =
        csv::Reader::from_path(csv).map_err(|e| input(format!("{}: {e}", csv.display())))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.map_err(|e| input(format!("{} row {}: {e}", csv.display(), i + 1))))
        .collect()
}
