//! `tierbench hosts` and `tierbench scenarios`: what a bare name finds.

use std::io::Write;
use std::process::ExitCode;

use crate::named::{self, Kind, Origin};
use crate::report::table::Table;
use crate::vm::profile::Profile;

pub fn list(kind: Kind) -> anyhow::Result<ExitCode> {
    let mut t = Table::new(["name", "from", "description"]);
    let mut hidden = Vec::new();
    for l in named::list(kind) {
        // The description of the copy a bare name loads.
        let text = match &l.origin {
            Origin::File(p) => {
                crate::userfile::read_capped(p, crate::userfile::TEXT_MAX).unwrap_or_default()
            }
            Origin::BuiltIn => kind.built_in_text(&l.name).unwrap_or_default().to_string(),
        };
        let description = match toml::from_str::<toml::Table>(&text) {
            Ok(table) => first_line(
                table
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("-"),
            ),
            Err(_) => "(not valid TOML)".to_string(),
        };
        // The built-in copy always sits behind a file of the same name;
        // only a file hiding another file is worth a line.
        for s in l.shadowed.iter().filter(|s| **s != Origin::BuiltIn) {
            hidden.push(format!("{} in {s}", l.name));
        }
        t.push([l.name, l.origin.to_string(), description]);
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", t.render())?;
    writeln!(out, "\nsearched, first match wins:")?;
    for d in named::search_dirs(kind) {
        let state = if d.is_dir() { "" } else { " (absent)" };
        writeln!(out, "  {}/{state}", d.display())?;
    }
    writeln!(out, "  built into the binary")?;
    if !hidden.is_empty() {
        writeln!(out, "hidden by an earlier match: {}", hidden.join("; "))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tierbench hosts --check PROFILE`: is this the machine the profile
/// describes? The same check `run --host` makes before it changes anything.
pub fn check_host(spec: &str) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(spec).map_err(crate::error::input_from)?;
    let topo = super::discover()?;
    let shape = profile.check_shape(&topo);
    let tiers = profile.check_tiers(&topo);
    let expanders = profile.check_expanders(&topo);
    let mut out = std::io::stdout().lock();
    for m in &shape {
        writeln!(out, "mismatch: {m}")?;
    }
    for m in &tiers {
        writeln!(out, "tiers: {m}")?;
    }
    for m in &expanders {
        writeln!(out, "cxl: {m}")?;
    }
    if shape.is_empty() {
        let differ = match (tiers.is_empty(), expanders.is_empty()) {
            (true, true) => "",
            (false, true) => "; its tiers differ (recorded by run --host)",
            (true, false) => "; its CXL memory differs (recorded by run --host)",
            (false, false) => "; its tiers and CXL memory differ (recorded by run --host)",
        };
        writeln!(
            out,
            "this machine is {} ({}){differ}",
            profile.name,
            profile.path.display(),
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(
            out,
            "this machine is not {} ({}): run --host {} would refuse it",
            profile.name,
            profile.path.display(),
            spec
        )?;
        Ok(ExitCode::FAILURE)
    }
}

/// A description's first line, cut to fit a terminal row.
fn first_line(text: &str) -> String {
    const MAX: usize = 64;
    let line = text.lines().next().unwrap_or("").trim();
    let more = text.trim().lines().count() > 1;
    if line.chars().count() > MAX || more {
        let cut: String = line.chars().take(MAX).collect();
        format!("{}...", cut.trim_end())
    } else {
        line.to_string()
    }
}
