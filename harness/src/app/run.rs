//! `tierbench run`: a scenario or the options lowered to a plan, the knobs
//! taken, the variants executed, every row written as measured.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{discover, opt};
use crate::cli::RunArgs;
use crate::error::{input, Interrupted};
use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::probe::Capabilities;
use crate::program::{resolve_program, split_words, ProgramSpec, Ready, ScoreSpec};
use crate::report::csv::CsvSink;
use crate::report::outdir::{self, Existing, OutDir};
use crate::report::progress::RunProgress;
use crate::report::schema::{Machine, MachineKind, SystemRecord, VariantRecord};
use crate::report::table::{Table, TimelineSink};
use crate::report::{utc_stamp, Note, RowKind, RunObserver, SCHEMA_VERSION};
use crate::run::{MachineFacts, Plan, RunSpec, VariantOutcome};
use crate::scenario::{Lowered, Scenario};
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::Topology;
use crate::workload::pattern::{Mix, PatternSpec};

/// Where the run ran, for `system.json`: native or emulated, and inside
/// `tierbench vm` the host profile and accelerator (the guest's init says
/// which).
fn machine_of(topo: &Topology, emulated: bool, host: Option<&str>) -> Machine {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Machine {
        kind: if emulated {
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

/// `system.json` of this process on this machine; what a run planned and
/// changed (plan, knobs, variants) is left empty for the caller to fill.
pub(crate) fn system_record(
    topo: &Topology,
    caps: &Capabilities,
    emulated: bool,
    host: Option<&str>,
    scenario: Option<crate::report::schema::ScenarioRecord>,
) -> anyhow::Result<SystemRecord> {
    Ok(SystemRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: option_env!("TIERBENCH_GIT_REVISION").map(String::from),
        command_line: std::env::args().collect(),
        kernel_release: caps.kernel_release.clone(),
        kernel_cmdline: SysRoot::live()
            .read_opt("/proc/cmdline")
            .unwrap_or_default(),
        emulated,
        machine: machine_of(topo, emulated, host),
        scenario,
        topology: serde_json::to_value(topo)?,
        capabilities: serde_json::to_value(caps)?,
        plan: serde_json::Value::Null,
        knobs_requested: serde_json::Value::Null,
        knobs_before: Vec::new(),
        variants: Vec::new(),
    })
}

/// A promotion run (NUMA balancing in tiering mode) on a machine whose
/// CPU-less memory shares the DRAM tier would print zeros for a reason
/// that has nothing to do with the policy: refused unless forced.
fn check_tier_trap(
    topo: &Topology,
    a: &RunArgs,
    name: Namer,
    plan: &mut Plan,
) -> anyhow::Result<()> {
    use crate::cli::BalancingMode;
    let Some(trap) = topo.tier_trap() else {
        return Ok(());
    };
    if !matches!(
        a.numa_balancing,
        Some(BalancingMode::Tiering | BalancingMode::Both)
    ) {
        return Ok(());
    }
    if !a.force {
        return Err(input(format!(
            "{} = tiering on this machine measures nothing: {}; pass --force to run anyway",
            name("numa-balancing"),
            trap.why
        )));
    }
    crate::errln!("tierbench run: --force: {}", trap.why);
    plan.notes.push(Note::TierTrap(trap.why));
    Ok(())
}

/// How messages name an option: its flag, or the scenario key that set it.
type Namer<'a> = &'a dyn Fn(&str) -> String;

/// The knob changes the arguments ask for, each value checked and named as
/// the user gave it.
fn knob_plan(a: &RunArgs, name: Namer) -> anyhow::Result<KnobPlan> {
    // The spelling the kernel file takes is the option's own value name.
    fn value(v: impl clap::ValueEnum) -> String {
        let p = v.to_possible_value().expect("no skipped values");
        p.get_name().to_string()
    }
    let mut changes: Vec<(&str, Knob, String)> = Vec::new();
    if let Some(m) = a.numa_balancing {
        changes.push(("numa-balancing", Knob::NumaBalancing, m.value().into()));
    }
    if let Some(d) = a.demotion {
        let v = if d == crate::cli::OnOff::On {
            "true"
        } else {
            "false"
        };
        changes.push(("demotion", Knob::DemotionEnabled, v.into()));
    }
    if let Some(r) = a.promote_rate_limit {
        changes.push(("promote-rate-limit", Knob::PromoteRateLimit, r.to_string()));
    }
    if let Some(t) = a.thp {
        changes.push(("thp", Knob::ThpEnabled, value(t)));
    }
    if let Some(d) = a.thp_defrag {
        changes.push(("thp-defrag", Knob::ThpDefrag, value(d)));
    }
    let mut plan = KnobPlan::default();
    for (flag, knob, v) in changes {
        knob.validate(&v)
            .map_err(|e| input(format!("{} {v}: {e}", name(flag))))?;
        plan.set(knob, v);
    }
    for (k, v) in &a.numab {
        let named = match name("numab") {
            n if n.starts_with("--") => format!("--numab {k}={v}"),
            n => format!("{n}.{k}"),
        };
        let knob = Knob::numab(k).map_err(|e| input(format!("{named}: {e}")))?;
        knob.validate(v)
            .map_err(|e| input(format!("{named}: {e}")))?;
        plan.set(knob, v.clone());
    }
    Ok(plan)
}

fn default_out_dir() -> PathBuf {
    PathBuf::from("tierbench-results").join(format!("run-{}", utc_stamp()))
}

/// The external program the arguments describe, each part checked: the
/// programs exist and are executable, the score and readiness expressions
/// compile. Nothing has changed on the system yet.
fn program_spec(a: &RunArgs, names: Namer) -> anyhow::Result<Option<ProgramSpec>> {
    // The program has no flag of its own on the command line.
    let name = |f: &str| match names(f) {
        n if n == "--command" => "COMMAND".to_string(),
        n => n,
    };
    // Options of a program without one would be parsed and ignored.
    let given = [
        ("server", a.server.is_some()),
        ("ready", a.ready.is_some()),
        ("ready-port", a.ready_port.is_some()),
        ("timeout", a.timeout.is_some()),
        ("metric", a.metric.is_some()),
        ("metric-unit", a.metric_unit.is_some()),
        ("lower-is-better", a.lower_is_better),
        ("parser", a.parser.is_some()),
        ("push-to-slow-at", a.push_to_slow_at.is_some()),
    ];
    if a.command.is_empty() {
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            return Err(input(format!(
                "{} needs a program to run: give it after --, e.g. -- stress-ng --vm 1 -t 10",
                name(flag)
            )));
        }
        return Ok(None);
    }
    for (flag, needs, has) in [
        ("ready", "server", a.server.is_some()),
        ("ready-port", "server", a.server.is_some()),
        ("metric-unit", "metric", a.metric.is_some()),
        ("lower-is-better", "metric", a.metric.is_some()),
    ] {
        if given.iter().any(|(f, set)| *f == flag && *set) && !has {
            return Err(input(format!("{} needs {}", name(flag), name(needs))));
        }
    }
    let server = match &a.server {
        Some(s) => Some(split_words(s).map_err(|e| input(format!("{}: {e}", name("server"))))?),
        None => None,
    };
    for (flag, argv) in [("command", Some(&a.command)), ("server", server.as_ref())] {
        if let Some(argv) = argv {
            resolve_program(&argv[0]).map_err(|e| input(format!("{}: {e}", name(flag))))?;
        }
    }
    let ready = match (&a.ready, a.ready_port) {
        (Some(r), _) => {
            regex::Regex::new(r).map_err(|e| {
                let last = e.to_string().lines().last().unwrap_or_default().to_string();
                input(format!(
                    "{} {r:?} is not a regular expression: {last}",
                    name("ready")
                ))
            })?;
            Some(Ready::Output(r.clone()))
        }
        (None, Some(p)) => Some(Ready::Port(p)),
        (None, None) => None,
    };
    let score = match (&a.metric, &a.parser) {
        (Some(m), _) => Some(
            ScoreSpec::regex(m, a.metric_unit.clone(), a.lower_is_better)
                .map_err(|e| input(format!("{} {e}", name("metric"))))?,
        ),
        (None, Some(p)) => {
            Some(ScoreSpec::builtin(p).map_err(|e| input(format!("{} {e}", name("parser"))))?)
        }
        (None, None) => None,
    };
    if a.timeout.is_some_and(|t| t.is_zero()) {
        return Err(input(format!(
            "{} must be more than 0, e.g. 10m",
            name("timeout")
        )));
    }
    Ok(Some(ProgramSpec {
        command: a.command.clone(),
        server,
        ready,
        ready_timeout: a.ready_timeout,
        timeout: a.timeout,
        score,
        push_to_slow_at: a.push_to_slow_at,
    }))
}

/// The run the arguments describe.
fn run_spec(a: &RunArgs, program: Option<ProgramSpec>) -> RunSpec {
    RunSpec {
        program,
        bracket: a.bracket,
        size: a.size,
        page: a.page_size,
        first_touch: a.first_touch.clone(),
        variants: a.policies.clone(),
        damon: a.damon.clone(),
        move_on_switch: a.move_on_switch,
        fill_fast_leave: a.fill_fast_leave,
        fill_fast_locked: a.fill_fast_locked,
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
        offline_slow_at: a.offline_slow_at,
        latency_every: a.latency_every,
        warmup: a.warmup,
        duration: a.duration,
        interval: a.interval,
        iterations: a.iterations.unwrap_or(1),
        census: !a.no_census,
        census_sample: a.census_sample,
        force: a.force,
    }
}

/// A lowered scenario parsed by the same parser as a command line: the
/// subcommand its kind names, with that subcommand's defaults.
fn parse_lowered(s: &Scenario, lowered: &Lowered) -> anyhow::Result<crate::cli::Command> {
    let (sub, _) = s.kind.subcommand();
    let argv = ["tierbench", sub]
        .into_iter()
        .map(String::from)
        .chain(lowered.argv.iter().cloned());
    crate::cli::try_parse_from(argv)
        .map(|cli| cli.command)
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            input(format!(
                "scenario {}: {}",
                s.path.display(),
                first.trim_start_matches("error: ")
            ))
        })
}

/// What the command line may still say beside `--scenario`: its "Run"
/// options, and `--iterations`, which wins over the file's.
fn with_run_options(mut a: RunArgs, cli: &RunArgs) -> RunArgs {
    a.scenario = cli.scenario.clone();
    a.host = cli.host.clone();
    a.force = cli.force;
    a.state_file = cli.state_file.clone();
    a.out = cli.out.clone();
    a.replace = cli.replace;
    a.quiet = cli.quiet;
    if cli.iterations.is_some() {
        a.iterations = cli.iterations;
    }
    a
}

pub fn run(cli: RunArgs) -> anyhow::Result<ExitCode> {
    // Before anything else: bad input on the command line is refused on
    // any machine.
    if cli.iterations == Some(0) {
        return Err(input("--iterations must be at least 1"));
    }
    if let Some(dir) = &cli.out {
        outdir::check(dir, Existing::from_flag(cli.replace))?;
    }
    let topo = discover()?;
    // A scenario lowers into the same options; its keys name them in
    // errors, the command line's flags name the rest.
    let (a, scenario, lowered) = match &cli.scenario {
        Some(name) => {
            let s = Scenario::load(name)?;
            s.check_host(&topo)?;
            let command = crate::cli::command();
            let (sub, _) = s.kind.subcommand();
            let lowered = s.lower(command.find_subcommand(sub).expect("scenario subcommand"))?;
            match parse_lowered(&s, &lowered)? {
                crate::cli::Command::Matrix(mut m) => {
                    m.out = Some(cli.out.clone().unwrap_or_else(default_out_dir));
                    m.replace = cli.replace;
                    return super::measure::matrix_of(m, Some(s.record()));
                }
                crate::cli::Command::Run(a) => (with_run_options(*a, &cli), Some(s), lowered),
                _ => unreachable!("a scenario lowers into run or matrix"),
            }
        }
        None => (cli, None, Lowered::default()),
    };
    let names: Box<dyn Fn(&str) -> String + '_> = match &scenario {
        Some(s) => Box::new(s.namer(&lowered)),
        None => Box::new(crate::run::cli_flag),
    };
    if a.iterations == Some(0) {
        return Err(input(format!("{} must be at least 1", names("iterations"))));
    }
    let spec = run_spec(&a, program_spec(&a, &*names)?);
    // Everything that can be refused is refused here, before any change.
    let facts = MachineFacts::live(&topo);
    let mut plan = Plan::resolve_named(&spec, &facts, &*names)?;
    if let Some(host) = &a.host {
        let profile = crate::vm::profile::Profile::load(host).map_err(crate::error::input_from)?;
        let shape = profile.check_shape(&topo);
        if !shape.is_empty() {
            return Err(input(format!(
                "this machine is not the one --host {host} describes: {}",
                shape.join("; ")
            )));
        }
        let mut expected = profile.check_tiers(&topo);
        expected.extend(profile.check_expanders(&topo));
        for m in expected {
            crate::errln!("tierbench run: profile expectation not met: {m}");
            plan.notes.push(Note::ProfileExpectation(m));
        }
    }
    let mut knob_plan = knob_plan(&a, &*names)?;
    check_tier_trap(&topo, &a, &*names, &mut plan)?;
    let sys = SysRoot::live();
    if let Some(at) = spec.offline_slow_at {
        let blocks = crate::run::offline::OfflinePlan::resolve(&sys, &plan.slow, at)
            .map_err(|e| input(format!("{}: {e}", names("offline-slow-at"))))?;
        plan.offline = Some(blocks);
    }
    own_mechanism_state(&plan, &sys, &mut knob_plan);
    let state = a
        .state_file
        .clone()
        .unwrap_or_else(knobs::default_state_file);
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if knob_plan.is_empty() {
        if let Some(owner) = knobs::KnobLock::holder(&sys) {
            plan.notes.push(Note::KnobsHeldBy(owner.to_string()));
        }
    }
    let lease = knob_plan
        .check(&sys, &state, is_root)
        .map_err(KnobError::into_anyhow)?;

    let caps = Capabilities::probe(&topo);
    let claimed = OutDir::claim(
        &a.out.clone().unwrap_or_else(default_out_dir),
        Existing::from_flag(a.replace),
    )?;
    let out_dir = claimed.path().to_path_buf();
    plan.output_dir = Some(out_dir.clone());
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
        plan: plan_record(&plan)?,
        knobs_requested: serde_json::to_value(&knob_plan)?,
        knobs_before: guard
            .saved()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..system_record(
            &topo,
            &caps,
            facts.emulated,
            a.host.as_deref(),
            scenario.as_ref().map(Scenario::record),
        )?
    };
    let record_path = SystemRecord::path(&out_dir);
    let write_record = |r: &SystemRecord| -> anyhow::Result<()> { Ok(r.write(&out_dir)?) };
    write_record(&record)?;
    if !a.quiet {
        let each = match &plan.program {
            Some(p) => format!("running {}", crate::text::printable(&p.command.join(" "))),
            None => format!("{} each", humantime(plan.duration.as_secs_f64())),
        };
        crate::errln!(
            "tierbench run: {} variant(s) x {} iteration(s), {each}, results in {}",
            plan.variants.len(),
            plan.iterations,
            out_dir.display()
        );
        for n in &plan.notes {
            crate::errln!("note: {n}");
        }
    }

    // A program's length is its own: no bar can say what is left.
    let progress = match plan.program {
        Some(_) => RunProgress::Lines,
        None => RunProgress::for_stderr(
            plan.runs(),
            (plan.warmup + plan.duration).as_secs_f64(),
            plan.iterations,
        ),
    };
    let mut timeline = TimelineSink::default();
    let outcomes = {
        let mut shown = &progress;
        let mut sinks: Vec<&mut dyn RunObserver> =
            vec![&mut summary_csv, &mut series_csv, &mut timeline];
        if !a.quiet {
            sinks.push(&mut shown);
        }
        crate::run::execute(&plan, &cols, &mut sinks, &stop)
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
            notes: crate::report::note::join(&o.summary.notes),
            vmstat_delta: o.vmstat_delta.clone(),
        })
        .collect();
    write_record(&record)?;
    restored.context("restoring knobs")?;

    if plan.program.is_some() {
        print_program_summary(&outcomes, &cols)?;
    } else {
        print_summary(&outcomes, &cols)?;
    }
    if let Some(t) = timeline.render() {
        crate::out!("\nhot set on fast nodes ({}) over time:\n{t}", plan.fast)?;
    }
    crate::outln!(
        "\nresults: {}  {}  {}",
        summary_path.display(),
        series_path.display(),
        record_path.display()
    )?;
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The system state the variants' mechanisms change in their own windows,
/// taken for the whole run so the one guard puts it back: the kdamonds of
/// `@damon` variants, the interleave weights of weighted variants. What
/// this kernel lacks is not taken: those variants are `unsupported` rows.
fn own_mechanism_state(plan: &Plan, sys: &SysRoot, knobs: &mut KnobPlan) {
    if plan.damon.is_some() {
        // DAMON_STAT first, so it is put back last: it cannot start while
        // the run's kdamonds run (EBUSY).
        for k in [Knob::DamonStat, Knob::DamonKdamonds] {
            if k.exists(sys) {
                knobs.own(k);
            }
        }
    }
    if plan.variants.iter().any(|v| v.weights.is_some()) {
        for k in Knob::interleave_knobs(sys) {
            knobs.own(k);
        }
    }
    if let Some(offline) = &plan.offline {
        for k in offline.knobs() {
            knobs.own(k);
        }
    }
}

/// The plan as system.json keeps it. A program run leaves out the keys of
/// the built-in workers' buffer and pattern: they did not apply.
fn plan_record(plan: &Plan) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(plan)?;
    if plan.program.is_some() {
        if let Some(m) = v.as_object_mut() {
            for k in BUILT_IN_PLAN_KEYS {
                m.remove(k);
            }
        }
    }
    Ok(v)
}

const BUILT_IN_PLAN_KEYS: [&str; 15] = [
    "size_bytes",
    "page",
    "first_touch",
    "move_on_switch",
    "fill_fast_leave",
    "fill_fast_locked",
    "pattern",
    "hot_bytes",
    "expected_hot_share",
    "move_hot_at_s",
    "latency_every",
    "warmup_s",
    "duration_s",
    "census",
    "census_sample",
];

fn humantime(s: f64) -> String {
    if s >= 1.0 {
        format!("{s}s")
    } else {
        format!("{}ms", s * 1000.0)
    }
}

/// The global promotion counters the terminal tables show.
fn promotion_counters(cols: &crate::report::Columns) -> Vec<usize> {
    cols.counters
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            matches!(
                c.name.as_str(),
                "pgpromote_success" | "numa_hint_faults" | "numa_pages_migrated"
            ) && c.scope == crate::telemetry::vmstat::Scope::Global
        })
        .map(|(i, _)| i)
        .collect()
}

/// A program run's table: how each variant ended, its score, where its
/// memory was, what the kernel promoted.
fn print_program_summary(
    outcomes: &[VariantOutcome],
    cols: &crate::report::Columns,
) -> std::io::Result<()> {
    let promote = promotion_counters(cols);
    let mut header: Vec<String> = [
        "variant", "iter", "status", "wall s", "exit", "score", "unit", "MiB", "on fast",
        "50% back", "90% back",
    ]
    .map(String::from)
    .to_vec();
    header.extend(promote.iter().map(|&i| cols.counters[i].name.clone()));
    let mut t = Table::new(header);
    for o in outcomes {
        let s = &o.summary;
        let p = s.program.clone().unwrap_or_default();
        let mut row = vec![
            s.variant.clone(),
            s.iteration.to_string(),
            s.status.to_string(),
            opt(p.wall_s.map(|w| format!("{w:.2}"))),
            opt(p.exit_code),
            opt(p.score),
            p.score_unit.clone().unwrap_or_default(),
            opt(p
                .anon_kib_on
                .iter()
                .copied()
                .sum::<Option<u64>>()
                .map(|k| k >> 10)),
            opt(p.fast_share.map(|x| format!("{:.1}%", x * 100.0))),
        ];
        row.extend(
            s.promotion
                .map_or([String::new(), String::new()], |p| p.times_text()),
        );
        row.extend(promote.iter().map(|&i| opt(s.counters[i])));
        t.push(row);
    }
    crate::out!("\n{}", t.render())?;
    print_notes(outcomes)
}

fn print_summary(
    outcomes: &[VariantOutcome],
    cols: &crate::report::Columns,
) -> std::io::Result<()> {
    let promote = promotion_counters(cols);
    let mut header = vec![
        "variant".to_string(),
        "iter".into(),
        "status".into(),
        "accesses/s".into(),
        "hot share".into(),
        "p50 ns".into(),
        "p99 ns".into(),
        "hot on fast".into(),
        "50% at".into(),
        "90% at".into(),
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
        row.extend(
            s.promotion
                .map_or([String::new(), String::new()], |p| p.times_text()),
        );
        row.extend(promote.iter().map(|&i| opt(s.counters[i])));
        t.push(row);
    }
    crate::out!("\n{}", t.render())?;
    print_notes(outcomes)
}

fn print_notes(outcomes: &[VariantOutcome]) -> std::io::Result<()> {
    // Notes every variant shares are printed once. Refused variants carry
    // only their reason: they do not decide what is common.
    let measured: Vec<&VariantOutcome> = outcomes
        .iter()
        .filter(|o| o.summary.status != crate::report::Status::Unsupported)
        .collect();
    let common: Vec<&Note> = measured
        .first()
        .map(|o| o.summary.notes.iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| measured.iter().all(|o| o.summary.notes.contains(n)))
        .collect();
    for n in &common {
        crate::outln!("note: {n}")?;
    }
    // Each variant's own notes once, however many iterations repeat them.
    let mut printed: Vec<String> = Vec::new();
    for o in outcomes {
        let own: Vec<String> = o
            .summary
            .notes
            .iter()
            .filter(|n| !common.contains(n))
            .map(|n| n.to_string())
            .collect();
        let line = format!("{}: {}", o.summary.variant, own.join("; "));
        if !own.is_empty() && !printed.contains(&line) {
            crate::outln!("{line}")?;
            printed.push(line);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let argv = ["tierbench", "run"].iter().chain(argv);
        match crate::cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Run(a) => *a,
            _ => unreachable!(),
        }
    }

    /// Every option of the "Run" heading is carried beside a scenario: a
    /// new one there must be added to `with_run_options`.
    #[test]
    fn the_command_line_run_options_survive_a_scenario() {
        let command = crate::cli::command();
        let run = command.find_subcommand("run").unwrap();
        let ids: Vec<&str> = run
            .get_arguments()
            .filter(|a| a.get_help_heading() == Some("Run"))
            .map(|a| a.get_id().as_str())
            .collect();
        assert_eq!(
            ids.len(),
            7,
            "{ids:?}: carry every Run option in with_run_options"
        );
        let cli = run_args(&[
            "--scenario",
            "s",
            "--host",
            "h",
            "--force",
            "--state-file",
            "st",
            "-o",
            "o",
            "-q",
            "--replace",
            "--iterations",
            "3",
        ]);
        let a = with_run_options(run_args(&["--iterations", "7", "--duration", "2s"]), &cli);
        assert_eq!(a.scenario.as_deref(), Some("s"));
        assert_eq!(a.host.as_deref(), Some("h"));
        assert!(a.force && a.quiet && a.replace);
        assert_eq!(a.state_file, Some(PathBuf::from("st")));
        assert_eq!(a.out, Some(PathBuf::from("o")));
        assert_eq!(a.iterations, Some(3));
        assert_eq!(a.duration, std::time::Duration::from_secs(2));
    }
}
