//! One function per subcommand: the glue between parsed arguments and the
//! library. Output formatting for the terminal lives here and in
//! `report`; measurement lives in the modules these call.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{
    BwArgs, CompareArgs, CompareFormat, ConformArgs, Format, KnobsAction, KnobsArgs, LatencyArgs,
    MatrixArgs, PlotArgs, ProbeArgs, RunArgs, TopoArgs, VmArgs,
};
use crate::error::{input, Interrupted};
use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::probe::{Capabilities, Support};
use crate::report::csv::CsvSink;
use crate::report::progress::RunProgress;
use crate::report::schema::{Machine, MachineKind, SystemRecord, VariantRecord};
use crate::report::table::{Table, TimelineSink};
use crate::report::{utc_stamp, RowKind, RowSink, SCHEMA_VERSION};
use crate::run::{Plan, RunSpec, VariantOutcome};
use crate::scenario::Scenario;
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::Topology;
use crate::workload::bandwidth::BwKernel;
use crate::workload::pattern::{Mix, PatternSpec};

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
            if let Some(owner) = knobs::KnobLock::holder(&state) {
                println!("\nheld by a running tierbench: {owner}");
            } else if state.exists() {
                println!(
                    "\npending state file {}: run `tierbench knobs restore`",
                    state.display()
                );
            }
        }
        KnobsAction::Restore { force } => {
            // SAFETY: geteuid has no preconditions.
            if state.exists() && unsafe { libc::geteuid() } != 0 {
                return Err(input(
                    "restoring knobs needs root: run `sudo tierbench knobs restore`",
                ));
            }
            // The owner's lock, held while restoring, so no run starts from
            // half-restored values; a live owner's knobs are its own.
            let lock = match knobs::KnobLock::acquire(&state) {
                Ok(l) => Some(l),
                Err(KnobError::Busy { owner, .. }) if force => {
                    eprintln!("tierbench knobs: --force: restoring although {owner} holds them");
                    None
                }
                Err(KnobError::Busy { owner, lock }) => {
                    return Err(input(format!(
                        "the knobs belong to a live run ({owner}): it restores them when it \
                         ends; stop it, or pass --force to restore now (lock {})",
                        lock.display()
                    )))
                }
                Err(e) if !state.exists() => {
                    // Nothing to restore, and no right to the lock: say so.
                    drop(e);
                    None
                }
                Err(e) => return Err(e.into_anyhow()),
            };
            let restored =
                knobs::restore_from_state(&sys, &state).map_err(KnobError::into_anyhow)?;
            drop(lock);
            match restored {
                knobs::Restored::NoState => {
                    println!("nothing to restore ({} does not exist)", state.display())
                }
                knobs::Restored::Empty => println!(
                    "nothing to restore: {} held no knob values; removed it",
                    state.display()
                ),
                knobs::Restored::Values(v) => {
                    for (k, v) in v {
                        println!("restored {k} = {v}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the run ran, for `system.json`: native or emulated, and inside
/// `tierbench vm` the host profile and accelerator (the guest's init says
/// which).
fn machine_of(topo: &Topology, host: Option<&str>) -> Machine {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Machine {
        kind: if crate::probe::is_emulated() {
            MachineKind::Emulated
        } else {
            MachineKind::Native
        },
        host_profile: env(crate::vm::guest::ENV_PROFILE).or(host.map(String::from)),
        accelerator: env(crate::vm::guest::ENV_ACCEL),
        node_shape: topo
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{}:{}",
                    n.id,
                    if n.is_cpuless() { "mem" } else { "cpu+mem" }
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        memory_mib_per_node: topo
            .nodes
            .iter()
            .map(|n| (n.id, n.mem_total_kib.map(|k| k / 1024)))
            .collect(),
    }
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

/// `-o` must name a directory, new or existing: checked before anything is
/// created, changed or booted.
fn check_out(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(input(format!(
            "-o {}: exists and is not a directory: give a new or existing directory",
            dir.display()
        )));
    }
    Ok(())
}

fn default_out_dir() -> PathBuf {
    PathBuf::from("tierbench-results").join(format!("run-{}", utc_stamp()))
}

/// The run the arguments describe.
fn run_spec(a: &RunArgs) -> RunSpec {
    RunSpec {
        size_bytes: a.size,
        page: a.page_size,
        first_touch: a.first_touch.clone(),
        variants: a.policies.clone(),
        move_on_switch: a.move_on_switch,
        fill_fast_leave: a.fill_fast_leave,
        worker_node: a.worker_node,
        threads: a.threads,
        oversubscribe: a.oversubscribe,
        pin: a.pin,
        pattern: PatternSpec {
            kind: a.pattern,
            hot_fraction: a.hot_fraction,
            hot_share: a.hot_share,
            zipf_theta: a.zipf_theta,
            stride: a.stride,
            mix: if a.write {
                Mix {
                    reads: 0,
                    writes: 1,
                }
            } else {
                a.mix
            },
        },
        move_hot_at: a.move_hot_at,
        latency_every: a.latency_every,
        warmup: a.warmup,
        duration: a.duration,
        interval: a.interval,
        iterations: a.iterations.unwrap_or(1),
        census: !a.no_census,
        force: a.force,
    }
}

pub fn run(mut a: RunArgs) -> anyhow::Result<ExitCode> {
    // Checked here, not in the plan: the plan would blame a scenario's key
    // for what the command line said.
    if a.iterations == Some(0) {
        return Err(input("--iterations must be at least 1"));
    }
    if let Some(dir) = &a.out {
        check_out(dir)?;
    }
    let topo = discover()?;
    // A scenario fills the arguments; its keys name the options in errors.
    let scenario = match &a.scenario {
        Some(name) => {
            let s = Scenario::load(name)?;
            s.check_host(&topo)?;
            if s.file.kind == crate::scenario::Kind::Matrix {
                let mut m = s.matrix_args()?;
                m.out = Some(a.out.clone().unwrap_or_else(default_out_dir));
                return matrix(m);
            }
            s.apply(&mut a, &topo)?;
            Some(s)
        }
        None => None,
    };
    let spec = run_spec(&a);
    // Everything that can be refused is refused here, before any change.
    let mut plan = match &scenario {
        Some(s) => Plan::resolve_named(&spec, &topo, &|f| s.key_for(f))?,
        None => Plan::resolve(&spec, &topo)?,
    };
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
    if knob_plan.is_empty() {
        if let Some(owner) = knobs::KnobLock::holder(&state) {
            plan.notes.push(format!(
                "the kernel knobs belonged to another tierbench during this run ({owner}): \
                 measured under its settings"
            ));
        }
    }
    let lease = knob_plan
        .check(&sys, &state, is_root)
        .map_err(KnobError::into_anyhow)?;

    let caps = Capabilities::probe(&topo);
    let out_dir = a.out.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating results directory {}", out_dir.display()))?;
    let first = Snapshot::read(&sys, &topo.memory_nodes())?;
    let cols = plan.columns(&topo, &first);
    let summary_path = out_dir.join("summary.csv");
    let series_path = out_dir.join("timeseries.csv");
    let mut summary_csv = CsvSink::create(&summary_path, cols.clone(), RowKind::Summary)
        .with_context(|| format!("creating {}", summary_path.display()))?;
    let mut series_csv = CsvSink::create(&series_path, cols.clone(), RowKind::Interval)
        .with_context(|| format!("creating {}", series_path.display()))?;

    let stop = crate::interrupt::install().context("installing signal handlers")?;
    let guard = lease.apply(&sys, &state)?;
    // Test hook: a bug after the knobs changed (the panic hook must put
    // them back and end the process).
    if std::env::var_os("TIERBENCH_TEST_PANIC_AFTER_KNOBS").is_some() {
        panic!("TIERBENCH_TEST_PANIC_AFTER_KNOBS is set");
    }
    let mut record = SystemRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: option_env!("TIERBENCH_GIT_REVISION").map(String::from),
        command_line: std::env::args().collect(),
        kernel_release: caps.kernel_release.clone(),
        kernel_cmdline: sys.read_opt("/proc/cmdline").unwrap_or_default(),
        emulated: crate::probe::is_emulated(),
        machine: machine_of(&topo, a.host.as_deref()),
        scenario: scenario.as_ref().map(Scenario::record),
        topology: serde_json::to_value(&topo)?,
        capabilities: serde_json::to_value(&caps)?,
        plan: serde_json::to_value(&plan)?,
        knobs_requested: serde_json::to_value(&knob_plan)?,
        knobs_before: guard
            .saved()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        variants: Vec::new(),
    };
    let record_path = SystemRecord::path(&out_dir);
    let write_record = |r: &SystemRecord| -> anyhow::Result<()> { Ok(r.write(&out_dir)?) };
    write_record(&record)?;
    if !a.quiet {
        eprintln!(
            "tierbench run: {} variant(s) x {} iteration(s), {} each, results in {}",
            plan.variants.len(),
            plan.iterations,
            humantime(plan.duration_s),
            out_dir.display()
        );
        for n in &plan.notes {
            eprintln!("note: {n}");
        }
    }

    let progress = RunProgress::for_stderr(
        plan.runs(),
        plan.warmup_s + plan.duration_s,
        plan.iterations,
    );
    let mut timeline = TimelineSink::default();
    let outcomes = {
        let (mut shown, mut hook) = (&progress, &progress);
        let mut sinks: Vec<&mut dyn RowSink> =
            vec![&mut summary_csv, &mut series_csv, &mut timeline];
        if a.quiet {
            crate::run::execute(&plan, &cols, &mut sinks, &mut (), &stop)
        } else {
            sinks.push(&mut shown);
            crate::run::execute(&plan, &cols, &mut sinks, &mut hook, &stop)
        }
    };
    progress.finish();
    let restored = guard.restore();
    let outcomes: Vec<VariantOutcome> = outcomes?;
    record.variants = outcomes
        .iter()
        .map(|o| VariantRecord {
            variant: o.summary.variant.clone(),
            iteration: o.summary.iteration,
            eater_bytes: o.eater_bytes,
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
        "\nresults: {}  {}  {}",
        summary_path.display(),
        series_path.display(),
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
    check_out(&out)?;
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
    check_out(&out)?;
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

/// Refuses a working set too small for `threads` workers of `kernel`.
fn check_bw_size(size: u64, kernel: BwKernel, threads: usize, flag: &str) -> anyhow::Result<()> {
    let min = crate::workload::measure::min_bw_size(kernel, threads);
    if size < min {
        return Err(input(format!(
            "{flag} {size} is too small for {kernel} x {threads} threads: at least {min} bytes \
             (one page per array per thread)"
        )));
    }
    Ok(())
}

pub fn bw(a: BwArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let limit = cpus.len()
        * if a.oversubscribe {
            crate::run::MAX_WORKERS_PER_CPU
        } else {
            1
        };
    if a.threads == 0 || a.threads > limit {
        return Err(input(format!(
            "--threads {} must be between 1 and node {cpu_node}'s {} CPUs ({cpus}), or up to \
             {} per CPU with --oversubscribe",
            a.threads,
            cpus.len(),
            crate::run::MAX_WORKERS_PER_CPU
        )));
    }
    check_bw_size(a.size, a.kernel, a.threads, "--size")?;
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
            "{} {} thread(s) cpu node {cpu_node} -> mem node {mem_node}, {} MiB: {:.0} MB/s \
             (MB = 10^6 bytes, STREAM counting; {} passes in {:.2} s)",
            r.kernel,
            r.threads,
            r.size_bytes >> 20,
            r.mb_per_s,
            r.passes,
            r.seconds
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
    if !(1..=8).contains(&a.chains) {
        return Err(input(format!("--chains {} must be 1 to 8", a.chains)));
    }
    if a.size < a.stride * 2 * a.chains as u64 {
        return Err(input(format!(
            "--size {} is too small for the chase: it needs at least two slots per chain",
            a.size
        )));
    }
    if a.duration.is_zero() {
        return Err(input("--duration must be more than 0"));
    }
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let cpu = cpus.first().expect("node with CPUs");
    let load = if a.load_threads > 0 {
        let others: Vec<u32> = cpus.iter().filter(|&c| c != cpu).collect();
        if a.load_threads > others.len() {
            return Err(input(format!(
                "--load-threads {} is more than node {cpu_node}'s {} CPUs besides the chase's \
                 (CPU {cpu}): lower it",
                a.load_threads,
                others.len()
            )));
        }
        check_bw_size(a.load_size, a.load_kernel, a.load_threads, "--load-size")?;
        Some(crate::workload::measure::LoadSpec {
            kernel: a.load_kernel,
            size_bytes: a.load_size as usize,
            cpus: others[..a.load_threads].to_vec(),
        })
    } else {
        None
    };
    let spec = crate::workload::measure::ChaseSpec {
        size_bytes: a.size as usize,
        stride: a.stride as usize,
        window: a.window as usize,
        chains: a.chains,
        cpu,
        mem_node,
        page: a.page_size,
        duration: a.duration,
        load,
    };
    let r = std::thread::spawn(move || crate::workload::measure::latency(&spec))
        .join()
        .expect("chase thread")?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "chase cpu node {cpu_node} -> mem node {mem_node}, {} MiB, stride {} B, {} chain(s): \
             {:.2} ns/load ({} loads; cycle built in {:.2} s)",
            r.size_bytes >> 20,
            r.stride,
            r.chains,
            r.ns_per_load,
            r.loads,
            r.build_seconds
        );
        if let (Some(k), Some(mb)) = (&r.load_kernel, r.load_mb_per_s) {
            println!(
                "load: {} x {k} on node {cpu_node}'s other CPUs: {mb:.0} MB/s during the chase",
                r.load_threads
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn matrix(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    use crate::workload::matrix;
    let topo = discover()?;
    let spec = matrix::MatrixSpec {
        latency_size: a.latency_size as usize,
        bw_size: a.bw_size as usize,
        threads: a.threads,
        page: a.page_size,
        duration: a.duration,
    };
    matrix::check(&spec, &topo).map_err(input)?;
    if let Some(dir) = &a.out {
        check_out(dir)?;
    }
    let mut csv = match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("matrix.csv");
            let f = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Some(csv::Writer::from_writer(f))
        }
        None => None,
    };
    let mut cells = Vec::new();
    for (c, m) in matrix::cells(&topo) {
        eprintln!("matrix: cpu node {c} -> mem node {m} ...");
        let cell = matrix::measure(&spec, &topo, c, m)?;
        if let Some(w) = csv.as_mut() {
            w.serialize(&cell)?;
            w.flush()?;
        }
        cells.push(cell);
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&cells)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for c in &cells {
                w.serialize(c)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mems: Vec<u32> = topo.memory_nodes().iter().collect();
            let label = |m: u32| {
                let c = cells.iter().find(|c| c.mem_node == m).expect("measured");
                format!(
                    "node{m} ({}{})",
                    c.mem_role,
                    if c.cpuless { ", no CPUs" } else { "" }
                )
            };
            for (title, get) in [
                (
                    "idle latency, ns per load (pointer chase, one chain)",
                    Box::new(|c: &matrix::Cell| format!("{:.1}", c.latency_ns))
                        as Box<dyn Fn(&matrix::Cell) -> String>,
                ),
                (
                    "read bandwidth, MB/s (10^6 bytes), all CPUs of the CPU node",
                    Box::new(|c: &matrix::Cell| format!("{:.0}", c.read_mb_per_s)),
                ),
            ] {
                writeln!(out, "{title}")?;
                let mut t = Table::new(
                    std::iter::once("cpu node \\ memory".to_string())
                        .chain(mems.iter().map(|&m| label(m))),
                );
                let mut cpu_nodes: Vec<u32> = cells.iter().map(|c| c.cpu_node).collect();
                cpu_nodes.dedup();
                for c in cpu_nodes {
                    t.push(
                        std::iter::once(format!("node{c}")).chain(mems.iter().map(|&m| {
                            cells
                                .iter()
                                .find(|x| x.cpu_node == c && x.mem_node == m)
                                .map(&get)
                                .unwrap_or_default()
                        })),
                    );
                }
                writeln!(out, "{}", t.render())?;
            }
            for n in &topo.notes {
                writeln!(out, "note: {n}")?;
            }
            if crate::probe::is_emulated() {
                writeln!(
                    out,
                    "note: emulated NUMA (QEMU): nodes share host RAM, so the gaps between \
                     columns are not real"
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

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

pub fn plot(a: PlotArgs) -> anyhow::Result<ExitCode> {
    let t = crate::report::plot::read(&a.dirs)?;
    let stem = a.out.unwrap_or_else(|| a.dirs[0].join("timeline"));
    let files = crate::report::plot::write(&t, &stem).map_err(|e| anyhow::anyhow!(e))?;
    for f in files {
        println!("{}", f.display());
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
        "iter".into(),
        "status".into(),
        "accesses/s".into(),
        "hot share".into(),
        "p50 ns".into(),
        "p99 ns".into(),
        "hot on fast".into(),
    ];
    header.extend(promote.iter().map(|&i| cols.counters[i].name.clone()));
    let mut t = Table::new(header);
    for o in outcomes {
        let s = &o.summary;
        let mut row = vec![
            s.variant.clone(),
            s.iteration.to_string(),
            s.status.to_string(),
            opt(s.accesses_per_s.map(|x| format!("{x:.4e}"))),
            opt(s.hot_access_share.map(|x| format!("{:.1}%", x * 100.0))),
            opt(s.latency.map(|l| l.p50)),
            opt(s.latency.map(|l| l.p99)),
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
    // Refused variants carry only their reason: they do not decide what
    // is common.
    let measured: Vec<&VariantOutcome> = outcomes
        .iter()
        .filter(|o| o.summary.status != crate::report::Status::Unsupported)
        .collect();
    let common: Vec<String> = measured
        .first()
        .map(|o| split(o))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| measured.iter().all(|o| split(o).contains(n)))
        .collect();
    for n in &common {
        println!("note: {n}");
    }
    // Each variant's own notes once, however many iterations repeat them.
    let mut printed: Vec<String> = Vec::new();
    for o in outcomes {
        let own: Vec<String> = split(o)
            .into_iter()
            .filter(|n| !common.contains(n))
            .collect();
        let line = format!("{}: {}", o.summary.variant, own.join("; "));
        if !own.is_empty() && !printed.contains(&line) {
            println!("{line}");
            printed.push(line);
        }
    }
}
