//! `tierbench probe`: what this kernel supports, measured.

use std::io::Write;
use std::process::ExitCode;

use super::{discover, opt};
use crate::cli::{Format, ProbeArgs};
use crate::probe::{Capabilities, Support};
use crate::report::table::Table;

pub fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let t = discover()?;
    let caps = Capabilities::probe(&t);
    let mut out = std::io::stdout().lock();
    let cell = |s: &Support| match s {
        Support::Supported => "ok".to_string(),
        Support::Unsupported { errno, .. } => errno.clone(),
    };
    let mut table = Table::new(["mode", "flag", "set_mempolicy", "mbind", "why not"]);
    for p in &caps.policies {
        let why = match (&p.set_mempolicy, &p.mbind) {
            (Support::Unsupported { why, .. }, _) | (_, Support::Unsupported { why, .. }) => {
                why.clone()
            }
            _ => String::new(),
        };
        table.push([
            p.mode.clone(),
            p.flag.clone(),
            cell(&p.set_mempolicy),
            cell(&p.mbind),
            why,
        ]);
    }
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&caps)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&table.header)?;
            for r in &table.rows {
                w.write_record(r)?;
            }
            w.flush()?;
        }
        Format::Table => {
            writeln!(
                out,
                "kernel: {}   root: {}   policy probes on node(s) {}",
                caps.kernel_release,
                if caps.is_root { "yes" } else { "no" },
                caps.probe_nodes
            )?;
            writeln!(out)?;
            write!(out, "{}", table.render())?;
            writeln!(out)?;
            writeln!(
                out,
                "numa_balancing tiering mode (2): {}",
                if caps.tiering_mode {
                    "available (pgpromote_success present, 5.18+)"
                } else {
                    "not available (no pgpromote_success counter)"
                }
            )?;
            writeln!(
                out,
                "tiering counters present: {}",
                join_or_none(&caps.counters_present)
            )?;
            writeln!(
                out,
                "tiering counters absent:  {}",
                join_or_none(&caps.counters_absent)
            )?;
            let knobs: Vec<String> = caps
                .knobs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("(absent)")))
                .collect();
            writeln!(out, "knobs: {}", knobs.join("  "))?;
            if !caps.knobs.keys().any(|k| k.starts_with("numab.")) {
                writeln!(out, "       (no debugfs sched/numa_balancing knobs: debugfs not mounted, or kernel without them)")?;
            }
            let huge: Vec<String> = caps
                .hugetlb
                .iter()
                .map(|(k, v)| format!("{k}: {}", opt(*v)))
                .collect();
            writeln!(out, "hugetlb pages reserved: {}", huge.join("  "))?;
            let perf: Vec<String> = caps.perf.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(out, "perf events: {}", perf.join("  "))?;
            writeln!(
                out,
                "kernel command line: {}",
                crate::sysfs::SysRoot::live()
                    .read_opt("/proc/cmdline")
                    .unwrap_or_else(|| "(no /proc/cmdline)".into())
            )?;
            match &caps.kernel_config.source {
                Some(src) => writeln!(
                    out,
                    "kernel config ({src}): {}",
                    caps.kernel_config.summary()
                )?,
                None => writeln!(
                    out,
                    "kernel config: not found (no /proc/config.gz, no /boot/config-{})",
                    caps.kernel_release
                )?,
            }
            writeln!(
                out,
                "tier check: {}",
                match &caps.tier_trap {
                    Some(trap) => format!("FAILED: node(s) {} (see the note below)", trap.nodes),
                    None => "ok (no CPU-less memory in the DRAM tier)".into(),
                }
            )?;
            for n in &t.notes {
                writeln!(out, "note: {n}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn join_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(" ")
    }
}
