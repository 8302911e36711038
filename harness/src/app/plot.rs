//! `tierbench plot`: timeline charts.

use std::process::ExitCode;

use crate::cli::PlotArgs;

pub fn plot(a: PlotArgs) -> anyhow::Result<ExitCode> {
    let t = crate::report::plot::read(&a.dirs)?;
    let stem = a.out.unwrap_or_else(|| a.dirs[0].join("timeline"));
    let files = crate::report::plot::write(&t, &stem).map_err(|e| anyhow::anyhow!(e))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
