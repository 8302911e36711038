//! `tierbench probe`: what this kernel supports, measured.

use std::io::Write;
use std::process::ExitCode;

use super::{discover, opt};
use crate::cli::{Format, ProbeArgs};
use crate::knobs::{self, Knob, KnobPlan};
use crate::mechanism::damon;
use crate::probe::{Capabilities, Support};
use crate::report::table::Table;
use crate::sysfs::SysRoot;

pub fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let t = discover()?;
    let mut caps = Capabilities::probe(&t);
    scratch_damon(&mut caps);
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
            writeln!(out, "DAMON: {}", damon_line(&caps.damon))?;
            if let Some(s) = &caps.damon.scratch {
                writeln!(out, "       {}", scratch_line(s))?;
            }
            writeln!(
                out,
                "weighted interleave: {}",
                caps.weighted_interleave.line()
            )?;
            for n in &t.notes {
                writeln!(out, "note: {n}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// As root, with DAMON's sysfs interface free, builds a scratch kdamond
/// (never started) under the knob lock to see which actions, goal metrics
/// and filters this kernel takes; the guard removes it.
fn scratch_damon(caps: &mut Capabilities) {
    let sys = SysRoot::live();
    let d = &mut caps.damon;
    let skip = if !d.sysfs {
        Some("no DAMON sysfs interface".to_string())
    } else if !caps.is_root {
        Some("run as root to try actions and goals on a scratch kdamond".to_string())
    } else {
        None
    };
    if let Some(why) = skip {
        d.scratch_skipped = Some(why);
        return;
    }
    let mut plan = KnobPlan::default();
    plan.own(Knob::DamonKdamonds);
    let state = knobs::default_state_file();
    let result = plan
        .check(&sys, &state, true)
        .and_then(|lease| lease.apply(&sys, &state))
        .map_err(|e| e.to_string())
        .and_then(|guard| {
            let scratch = damon::probe_scratch(&sys).map_err(|e| e.to_string());
            guard.restore().map_err(|e| e.to_string())?;
            scratch
        });
    match result {
        Ok(s) => d.scratch = Some(s),
        Err(why) => d.scratch_skipped = Some(why),
    }
}

fn damon_line(d: &damon::DamonSupport) -> String {
    if !d.sysfs {
        return "no sysfs interface (CONFIG_DAMON_SYSFS off, or before 5.18): DAMON variants \
                are unsupported"
            .into();
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut line = format!(
        "sysfs interface present; sysfs kdamonds: {}; started by the kernel (DAMON_STAT, \
         DAMON_RECLAIM, ...): {}",
        list(&d.sysfs_kdamonds),
        list(&d.kernel_kdamonds)
    );
    match d.damon_stat {
        Some(true) => line.push_str(
            "; DAMON_STAT on (it runs exclusively: DAMON variants turn it off for their window)",
        ),
        Some(false) => line.push_str("; DAMON_STAT off"),
        None => {}
    }
    if let Some(why) = &d.scratch_skipped {
        line.push_str(&format!("; scratch kdamond not tried: {why}"));
    }
    line
}

fn scratch_line(s: &damon::Scratch) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let tried = |m: &std::collections::BTreeMap<String, bool>| {
        m.iter()
            .map(|(k, ok)| format!("{k} {}", yes(*ok)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "operations: {}; actions: {}; target_nid: {}; goal metrics: {}; goal nid: {}; \
         young filter: {}; interval tuning: {}",
        s.avail_operations.join(" "),
        tried(&s.actions),
        yes(s.target_nid),
        tried(&s.goal_metrics),
        yes(s.goal_nid),
        yes(s.young_filter),
        yes(s.intervals_goal)
    )
}

fn join_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(" ")
    }
}
