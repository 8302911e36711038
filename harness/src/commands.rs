//! One function per subcommand: the glue between parsed arguments and the
//! library. Output formatting for the terminal lives here and in
//! `report`; measurement lives in the modules these call.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{
    BwArgs, ConformArgs, Format, KnobsAction, KnobsArgs, LatencyArgs, ProbeArgs, RunArgs, TopoArgs,
    VmArgs,
};
use crate::error::{input, Interrupted};
use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::probe::{Capabilities, Support};
use crate::report::csv::CsvSink;
use crate::report::table::{ConsoleSink, Table, TimelineSink};
use crate::report::{RowSink, SCHEMA_VERSION};
use crate::run::{Plan, RunSpec, VariantOutcome};
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::Topology;

fn discover() -> anyhow::Result<Topology> {
    Topology::discover().context("discovering the NUMA topology")
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn topo(args: TopoArgs) -> anyhow::Result<ExitCode> {
    let t = discover()?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&t)?)?,
        Format::Csv | Format::Table => {
            let mut nodes = Table::new([
                "node",
                "cpus",
                "mem_total_mib",
                "mem_free_mib",
                "tier",
                "role",
                "hmat_initiators",
                "read_lat_ns",
                "write_lat_ns",
                "read_bw_mbps",
                "write_bw_mbps",
            ]);
            for n in &t.nodes {
                let role = if t.roles.fast.contains(n.id) {
                    "fast"
                } else if t.roles.slow.contains(n.id) {
                    "slow"
                } else {
                    "-"
                };
                let h = n.hmat.clone().unwrap_or_default();
                nodes.push([
                    n.id.to_string(),
                    if n.cpus.is_empty() {
                        "(none)".into()
                    } else {
                        n.cpus.to_string()
                    },
                    opt(n.mem_total_kib.map(|k| k / 1024)),
                    opt(n.mem_free_kib.map(|k| k / 1024)),
                    opt(n.tier.map(|t| format!("memory_tier{t}"))),
                    role.into(),
                    if n.hmat.is_some() {
                        h.initiators.to_string()
                    } else {
                        "-".into()
                    },
                    opt(h.read_latency_ns),
                    opt(h.write_latency_ns),
                    opt(h.read_bandwidth_mbps),
                    opt(h.write_bandwidth_mbps),
                ]);
            }
            if args.format == Format::Csv {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&nodes.header)?;
                for r in &nodes.rows {
                    w.write_record(r)?;
                }
                w.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            write!(out, "{}", nodes.render())?;
            writeln!(out)?;
            let ids: Vec<String> = t.nodes.iter().map(|n| format!("node{}", n.id)).collect();
            let mut dist = Table::new(std::iter::once("distance".to_string()).chain(ids));
            for (i, n) in t.nodes.iter().enumerate() {
                let row = t.distances.get(i).cloned().unwrap_or_default();
                dist.push(
                    std::iter::once(format!("node{}", n.id))
                        .chain(row.iter().map(|d| d.to_string())),
                );
            }
            write!(out, "{}", dist.render())?;
            writeln!(out)?;
            writeln!(
                out,
                "tiers: {}",
                if t.tiers.is_empty() {
                    "(none reported)".to_string()
                } else {
                    t.tiers
                        .iter()
                        .map(|x| format!("memory_tier{}={}", x.id, x.nodes))
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            )?;
            writeln!(
                out,
                "fast nodes: {}  slow nodes: {}  (from {})",
                if t.roles.fast.is_empty() {
                    "-".into()
                } else {
                    t.roles.fast.to_string()
                },
                if t.roles.slow.is_empty() {
                    "-".into()
                } else {
                    t.roles.slow.to_string()
                },
                t.roles.source
            )?;
            let source = match t.cpu_source {
                crate::topology::CpuSource::Hwloc => "hwloc",
                crate::topology::CpuSource::Sysfs => "sysfs",
            };
            writeln!(out, "cpu lists from: {source}")?;
            for n in &t.notes {
                writeln!(out, "note: {n}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

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

pub fn knobs(args: KnobsArgs) -> anyhow::Result<ExitCode> {
    let sys = SysRoot::live();
    let state = args.state_file.unwrap_or_else(knobs::default_state_file);
    match args.action {
        KnobsAction::Show => {
            let mut t = Table::new(["knob", "value", "path"]);
            for k in Knob::all_present(&sys) {
                t.push([
                    k.to_string(),
                    k.read(&sys).unwrap_or_else(|e| e.to_string()),
                    k.path(),
                ]);
            }
            print!("{}", t.render());
            if state.exists() {
                println!(
                    "\npending state file {}: run `tierbench knobs restore`",
                    state.display()
                );
            }
        }
        KnobsAction::Restore => {
            if state.exists() && unsafe { libc::geteuid() } != 0 {
                return Err(input(
                    "restoring knobs needs root: run `sudo tierbench knobs restore`",
                ));
            }
            let restored = knobs::restore_from_state(&sys, &state)?;
            if restored.is_empty() {
                println!("nothing to restore ({} does not exist)", state.display());
            }
            for (k, v) in restored {
                println!("restored {k} = {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `system.json` holds: enough to reproduce and to trust the CSV.
#[derive(Serialize)]
struct SystemRecord<'a> {
    schema_version: u32,
    tool_version: &'static str,
    command_line: Vec<String>,
    kernel_release: String,
    kernel_cmdline: String,
    emulated: bool,
    topology: &'a Topology,
    capabilities: &'a Capabilities,
    plan: &'a Plan,
    knobs_requested: &'a KnobPlan,
    knobs_before: Vec<(String, String)>,
    variants: Vec<VariantRecord>,
}

#[derive(Serialize)]
struct VariantRecord {
    variant: String,
    status: String,
    pin_method: Option<String>,
    notes: String,
    /// Every global vmstat counter's change over the variant.
    vmstat_delta: std::collections::BTreeMap<String, i64>,
}

fn knob_plan(a: &RunArgs) -> anyhow::Result<KnobPlan> {
    let mut plan = KnobPlan::default();
    if let Some(m) = a.numa_balancing {
        plan.set(Knob::NumaBalancing, m.value());
    }
    if let Some(d) = a.demotion {
        plan.set(
            Knob::DemotionEnabled,
            if d == crate::cli::OnOff::On {
                "true"
            } else {
                "false"
            },
        );
    }
    if let Some(r) = a.promote_rate_limit {
        plan.set(Knob::PromoteRateLimit, r.to_string());
    }
    if let Some(t) = a.thp {
        plan.set(Knob::ThpEnabled, format!("{t:?}").to_lowercase());
    }
    if let Some(d) = a.thp_defrag {
        use crate::cli::ThpDefrag::*;
        let v = match d {
            Always => "always",
            Defer => "defer",
            DeferMadvise => "defer+madvise",
            Madvise => "madvise",
            Never => "never",
        };
        plan.set(Knob::ThpDefrag, v);
    }
    for (k, v) in &a.numab {
        let knob: Knob = format!("numab.{k}")
            .parse()
            .map_err(|e: String| input(format!("--numab {k}={v}: {e}")))?;
        plan.set(knob, v.clone());
    }
    Ok(plan)
}

fn default_out_dir() -> PathBuf {
    PathBuf::from("tierbench-results").join(format!("run-{}", utc_stamp()))
}

/// `YYYYmmddTHHMMSSZ` from the system clock (civil-from-days, no tz data).
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let spec = RunSpec {
        size_bytes: a.size,
        page: a.page_size,
        first_touch: a.first_touch.clone(),
        variants: a.policies.clone(),
        move_on_switch: a.move_on_switch,
        worker_node: a.worker_node,
        threads: a.threads,
        pin: a.pin,
        hot_fraction: a.hot_fraction,
        stride: a.stride,
        write: a.write,
        duration: a.duration,
        interval: a.interval,
        census: !a.no_census,
        force: a.force,
    };
    // Everything that can be refused is refused here, before any change.
    let mut plan = Plan::resolve(&spec, &topo)?;
    if let Some(host) = &a.host {
        let profile = crate::vm::profile::Profile::load(host).map_err(|e| input(e.to_string()))?;
        let shape = profile.check_shape(&topo);
        if !shape.is_empty() {
            return Err(input(format!(
                "this machine is not the one --host {host} describes: {}",
                shape.join("; ")
            )));
        }
        for m in profile.check_tiers(&topo) {
            eprintln!("tierbench run: profile expectation not met: {m}");
            plan.notes.push(format!("profile expectation not met: {m}"));
        }
    }
    let knob_plan = knob_plan(&a)?;
    let sys = SysRoot::live();
    let state = a
        .state_file
        .clone()
        .unwrap_or_else(knobs::default_state_file);
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    knob_plan
        .check(&sys, &state, is_root)
        .map_err(KnobError::into_anyhow)?;

    let caps = Capabilities::probe(&topo);
    let out_dir = a.out.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating results directory {}", out_dir.display()))?;
    let first = Snapshot::read(&sys, &topo.memory_nodes())?;
    let cols = plan.columns(&topo, &first);
    let csv_path = out_dir.join("samples.csv");
    let mut csv = CsvSink::create(&csv_path, cols.clone())
        .with_context(|| format!("creating {}", csv_path.display()))?;

    let stop = crate::interrupt::install(state.clone()).context("installing signal handlers")?;
    let guard = knob_plan.apply(&sys, &state)?;
    let mut record = SystemRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION"),
        command_line: std::env::args().collect(),
        kernel_release: caps.kernel_release.clone(),
        kernel_cmdline: sys.read_opt("/proc/cmdline").unwrap_or_default(),
        emulated: crate::probe::is_emulated(),
        topology: &topo,
        capabilities: &caps,
        plan: &plan,
        knobs_requested: &knob_plan,
        knobs_before: guard
            .saved()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        variants: Vec::new(),
    };
    let record_path = out_dir.join("system.json");
    let write_record = |r: &SystemRecord| -> anyhow::Result<()> {
        std::fs::write(&record_path, serde_json::to_string_pretty(r)?)
            .with_context(|| format!("writing {}", record_path.display()))
    };
    write_record(&record)?;
    if !a.quiet {
        eprintln!(
            "tierbench run: {} variant(s), {} each, results in {}",
            plan.variants.len(),
            humantime(plan.duration_s),
            out_dir.display()
        );
        for n in &plan.notes {
            eprintln!("note: {n}");
        }
    }

    let mut console = ConsoleSink;
    let mut timeline = TimelineSink::default();
    let mut sinks: Vec<&mut dyn RowSink> = vec![&mut csv, &mut timeline];
    if !a.quiet {
        sinks.push(&mut console);
    }
    let outcomes = crate::run::execute(&plan, &cols, &mut sinks, &stop);
    let restored = guard.restore();
    let outcomes: Vec<VariantOutcome> = outcomes?;
    record.variants = outcomes
        .iter()
        .map(|o| VariantRecord {
            variant: o.summary.variant.clone(),
            status: o.summary.status.to_string(),
            pin_method: o.pin.map(|p| p.to_string()),
            notes: o.summary.notes.clone(),
            vmstat_delta: o.vmstat_delta.clone(),
        })
        .collect();
    write_record(&record)?;
    restored.context("restoring knobs")?;

    print_summary(&outcomes, &cols);
    if let Some(t) = timeline.render() {
        print!("\nhot set on fast nodes ({}) over time:\n{t}", plan.fast);
    }
    println!(
        "\nresults: {}  {}",
        csv_path.display(),
        record_path.display()
    );
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vm(a: VmArgs) -> anyhow::Result<ExitCode> {
    let name = std::path::Path::new(&a.host)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("tierbench-results").join(format!("vm-{}-{name}", utc_stamp()))
    });
    crate::vm::run_vm(crate::vm::VmRequest {
        host: a.host,
        kernel: a.kernel,
        accel: a.accel,
        timeout: a.timeout,
        out,
        inner: a.inner,
        quiet: a.quiet,
        crash_init: a.crash_init_for_test,
        boot_retries: a.boot_retries,
    })
}

pub fn conform(a: ConformArgs) -> anyhow::Result<ExitCode> {
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("tierbench-results").join(format!("conform-{}", utc_stamp()))
    });
    crate::conform::run(crate::conform::ConformRequest {
        modes: a.modes,
        size_bytes: a.size as usize,
        period: a.period,
        out,
        quiet: a.quiet,
    })
}

/// The child side of `conform`: one case, its result as JSON on stdout.
pub fn conform_case(spec: &str) -> anyhow::Result<ExitCode> {
    let spec: crate::conform::case::CaseSpec =
        serde_json::from_str(spec).map_err(|e| input(format!("conform-case: bad case: {e}")))?;
    let result = crate::conform::case::run_case(&spec)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(ExitCode::SUCCESS)
}

/// The CPU node (first with CPUs by default) and memory node (the CPU node
/// by default), checked against the machine.
fn nodes_for(topo: &Topology, cpu: Option<u32>, mem: Option<u32>) -> anyhow::Result<(u32, u32)> {
    let cpu_node = topo.cpu_node(cpu, "--cpu-node").map_err(input)?.id;
    let mem_node = mem.unwrap_or(cpu_node);
    if !topo.memory_nodes().contains(mem_node) {
        return Err(input(format!(
            "--mem-node {mem_node} is not a node with memory: this machine has {}",
            topo.memory_nodes()
        )));
    }
    Ok((cpu_node, mem_node))
}

pub fn bw(a: BwArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    if a.threads == 0 || a.threads > cpus.len() {
        return Err(input(format!(
            "--threads {} must be between 1 and node {cpu_node}'s {} CPUs ({cpus})",
            a.threads,
            cpus.len()
        )));
    }
    let min = (a.threads * a.kernel.arrays() * 4096) as u64;
    if a.size < min {
        return Err(input(format!(
            "--size must be at least {min} bytes for {} x {} threads",
            a.kernel, a.threads
        )));
    }
    if a.duration.is_zero() {
        return Err(input("--duration must be more than 0"));
    }
    let spec = crate::workload::measure::BwSpec {
        kernel: a.kernel,
        size_bytes: a.size as usize,
        cpus: crate::buffer::worker_cpus(cpus, a.threads),
        mem_node,
        page: a.page_size,
        duration: a.duration,
    };
    let r = crate::workload::measure::bandwidth(&spec)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} {} thread(s) cpu node {cpu_node} -> mem node {mem_node}, {} MiB: {:.0} MB/s ({} passes in {:.2} s)",
            r.kernel, r.threads, r.size_bytes >> 20, r.mb_per_s, r.passes, r.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn latency(a: LatencyArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    if a.stride < 8 || a.stride % 8 != 0 {
        return Err(input(format!(
            "--stride {} must be a multiple of 8 bytes",
            a.stride
        )));
    }
    if a.size < a.stride * 2 * a.chains.max(1) as u64 {
        return Err(input(format!(
            "--size {} is too small for the chase: it needs at least two slots per chain",
            a.size
        )));
    }
    if a.chains == 0 || a.duration.is_zero() {
        return Err(input("--chains and --duration must be more than 0"));
    }
    let cpu = topo
        .node(cpu_node)
        .expect("checked")
        .cpus
        .first()
        .expect("node with CPUs");
    let spec = crate::workload::measure::ChaseSpec {
        size_bytes: a.size as usize,
        stride: a.stride as usize,
        window: a.window as usize,
        chains: a.chains,
        cpu,
        mem_node,
        page: a.page_size,
        duration: a.duration,
    };
    let r = std::thread::spawn(move || crate::workload::measure::latency(&spec))
        .join()
        .expect("chase thread")?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "chase cpu node {cpu_node} -> mem node {mem_node}, {} MiB, stride {} B, {} chain(s): {:.2} ns/load ({} loads; cycle built in {:.2} s)",
            r.size_bytes >> 20, r.stride, r.chains, r.ns_per_load, r.loads, r.build_seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn humantime(s: f64) -> String {
    if s >= 1.0 {
        format!("{s}s")
    } else {
        format!("{}ms", s * 1000.0)
    }
}

fn print_summary(outcomes: &[VariantOutcome], cols: &crate::report::Columns) {
    let promote: Vec<usize> = cols
        .counters
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            matches!(
                c.name.as_str(),
                "pgpromote_success" | "numa_hint_faults" | "numa_pages_migrated"
            ) && c.scope == crate::telemetry::vmstat::Scope::Global
        })
        .map(|(i, _)| i)
        .collect();
    let mut header = vec![
        "variant".to_string(),
        "status".into(),
        "accesses/s".into(),
        "hot on fast".into(),
    ];
    header.extend(promote.iter().map(|&i| cols.counters[i].name.clone()));
    let mut t = Table::new(header);
    for o in outcomes {
        let s = &o.summary;
        let mut row = vec![
            s.variant.clone(),
            s.status.to_string(),
            opt(s.accesses_per_s.map(|x| format!("{x:.4e}"))),
            opt(s.hot_fast_share.map(|x| format!("{:.1}%", x * 100.0))),
        ];
        row.extend(promote.iter().map(|&i| opt(s.counters[i])));
        t.push(row);
    }
    print!("\n{}", t.render());
    // Notes every variant shares are printed once.
    let split = |o: &VariantOutcome| -> Vec<String> {
        o.summary
            .notes
            .split("; ")
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect()
    };
    let common: Vec<String> = outcomes
        .first()
        .map(split)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| outcomes.iter().all(|o| split(o).contains(n)))
        .collect();
    for n in &common {
        println!("note: {n}");
    }
    for o in outcomes {
        let own: Vec<String> = split(o)
            .into_iter()
            .filter(|n| !common.contains(n))
            .collect();
        if !own.is_empty() {
            println!("{}: {}", o.summary.variant, own.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamp_has_the_right_shape() {
        let s = super::utc_stamp();
        assert_eq!(s.len(), 16, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
