//! `tierbench conform` and its per-case child process.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{ConformArgs, ConformFormat};
use crate::error::input;
use crate::report::outdir::{Existing, OutDir};
use crate::report::utc_stamp;

pub fn conform(a: ConformArgs) -> anyhow::Result<ExitCode> {
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("tierbench-results").join(format!("conform-{}", utc_stamp()))
    });
    let _claimed = OutDir::claim(&out, Existing::from_flag(a.replace))?;
    crate::conform::run(crate::conform::ConformRequest {
        output: match a.format {
            ConformFormat::Table => crate::conform::Output::Table,
            ConformFormat::Tap => crate::conform::Output::Tap,
        },
        modes: a.modes,
        size_bytes: a.size as usize,
        period: a.period,
        out,
        quiet: a.quiet,
        list: a.list,
        rate_limit: (!a.no_rate_limit).then(|| crate::conform::rate_limit::RateLimitSpec {
            limit_mbps: a.rate_limit,
            size_bytes: a.rate_limit_size as usize,
            period: a.rate_limit_period,
            interval: std::time::Duration::from_millis(500),
        }),
    })
}

/// The child side of `conform`: one case, its result as JSON on stdout.
pub fn conform_case(spec: &str) -> anyhow::Result<ExitCode> {
    let spec: crate::conform::case::CaseSpec =
        serde_json::from_str(spec).map_err(|e| input(format!("conform-case: bad case: {e}")))?;
    let result = crate::conform::case::run_case(&spec)?;
    crate::outln!("{}", serde_json::to_string(&result)?)?;
    Ok(ExitCode::SUCCESS)
}
