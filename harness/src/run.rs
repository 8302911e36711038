//! `tierbench run`: a plan resolved against the machine, then for each
//! iteration and each policy variant (interleaved, so drift hits every
//! variant alike): map the buffer, place it, drive the access pattern from
//! pinned workers, sample counters, latency and the census every interval,
//! and hand each row to the sinks as it is measured.
//!
//! [`RunSpec`] is what the user typed (or a scenario file said);
//! [`Plan::resolve`] checks it against the topology and turns it into
//! concrete node sets before anything on the system changes. Only a `Plan`
//! reaches the buffer, the workers or knobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::buffer::{self, Buffer, Census, PageKind, BASE_PAGE};
use crate::error::InputError;
use crate::mempolicy::{Mode, MoveFlags, NodeSpec, Policy, PolicySpec};
use crate::pin::{self, PinMethod};
use crate::report::{Columns, RowKind, RunObserver, SampleRow, Status};
use crate::sysfs::SysRoot;
use crate::telemetry::perf::{PerfCounters, EVENTS};
use crate::telemetry::vmstat::{self, CounterId, Snapshot};
use crate::topology::{NodeId, NodeSet, Topology};
use crate::workload::clock::AccessClock;
use crate::workload::histogram::Counts;
use crate::workload::pattern::{Pattern, PatternSpec, Shared, Worker};

/// What each worker is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PinUnit {
    /// One worker per CPU (hardware thread) of the node
    Cpu,
    /// One worker per physical core of the node (hwloc's cores)
    Core,
}

/// The run as typed: node roles unresolved.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub size_bytes: u64,
    pub page: PageKind,
    /// Populate under BIND(these nodes) first, then switch to the variant's
    /// policy; `None`: populate under the variant's policy.
    pub first_touch: Option<NodeSpec>,
    pub variants: Vec<PolicySpec>,
    /// Switch policies with MPOL_MF_MOVE instead of leaving pages in place.
    pub move_on_switch: bool,
    /// Before each variant, fill the fast tier with a memory eater the
    /// harness owns until only this many bytes above the high watermarks
    /// stay free; freed after the variant.
    pub fill_fast_leave: Option<u64>,
    pub worker_node: Option<NodeId>,
    pub threads: usize,
    pub oversubscribe: bool,
    pub pin: PinUnit,
    pub pattern: PatternSpec,
    /// Move the hot set onto cold pages at this time.
    pub move_hot_at: Option<Duration>,
    /// Time one access in this many (a power of two), 0 for none.
    pub latency_every: u64,
    pub warmup: Duration,
    pub duration: Duration,
    pub interval: Duration,
    pub iterations: u32,
    pub census: bool,
    pub force: bool,
}

/// The run resolved against this machine.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub size_bytes: usize,
    pub page: PageKind,
    pub first_touch: Option<NodeSet>,
    pub variants: Vec<Policy>,
    pub move_on_switch: bool,
    pub fill_fast_leave: Option<u64>,
    pub worker_node: NodeId,
    pub worker_cpus: Vec<u32>,
    pub pattern: PatternSpec,
    pub hot_bytes: usize,
    /// The share of accesses the distribution puts on the hot set.
    pub expected_hot_share: f64,
    pub move_hot_at_s: Option<f64>,
    pub latency_every: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub interval_s: f64,
    pub iterations: u32,
    pub census: bool,
    pub fast: NodeSet,
    pub slow: NodeSet,
    /// Facts about the setup that every summary row repeats.
    pub notes: Vec<String>,
}

fn bad(msg: String) -> InputError {
    InputError(msg)
}

/// How an option is named in messages: `--hot-fraction` on the command
/// line, `hot_fraction` in a scenario file.
pub type FlagName<'a> = &'a dyn Fn(&str) -> String;

pub fn cli_flag(name: &str) -> String {
    format!("--{name}")
}

impl Plan {
    pub fn resolve(spec: &RunSpec, topo: &Topology) -> Result<Plan, InputError> {
        Self::resolve_named(spec, topo, &cli_flag)
    }

    pub fn resolve_named(
        spec: &RunSpec,
        topo: &Topology,
        flag: FlagName,
    ) -> Result<Plan, InputError> {
        if spec.duration.is_zero() {
            return Err(bad(format!(
                "{} must be more than 0, e.g. 10s",
                flag("duration")
            )));
        }
        if spec.interval.is_zero() || spec.interval > spec.duration {
            return Err(bad(format!(
                "{} must be more than 0 and at most the duration ({:?}), e.g. 1s",
                flag("interval"),
                spec.duration
            )));
        }
        if spec.iterations == 0 {
            return Err(bad(format!("{} must be at least 1", flag("iterations"))));
        }
        if spec.latency_every != 0 && !spec.latency_every.is_power_of_two() {
            return Err(bad(format!(
                "{} {} must be a power of two (e.g. 1024), or 0 to time no access",
                flag("latency-every"),
                spec.latency_every
            )));
        }
        if spec.threads == 0 {
            return Err(bad(format!("{} must be at least 1", flag("threads"))));
        }
        let node = topo
            .cpu_node(spec.worker_node, &flag("worker-node"))
            .map_err(bad)?;
        let worker_node = node.id;
        let (targets, unit) = match spec.pin {
            PinUnit::Cpu => (node.cpus.clone(), "CPUs"),
            PinUnit::Core => (
                crate::topology::hwloc::one_per_core(&node.cpus)
                    .map_err(|e| bad(format!("{} core: {e}", flag("pin"))))?,
                "cores",
            ),
        };
        if spec.threads > targets.len() && !spec.oversubscribe {
            return Err(bad(format!(
                "{} {} is more than node {worker_node}'s {} {unit} ({}): lower it, or pass \
                 --oversubscribe to share CPUs",
                flag("threads"),
                spec.threads,
                targets.len(),
                targets
            )));
        }
        if spec.threads > targets.len() * MAX_WORKERS_PER_CPU {
            return Err(bad(format!(
                "{} {} is more than {MAX_WORKERS_PER_CPU} workers per CPU on node {worker_node}'s \
                 {} {unit}: at most {} with --oversubscribe",
                flag("threads"),
                spec.threads,
                targets.len(),
                targets.len() * MAX_WORKERS_PER_CPU
            )));
        }
        let worker_cpus = buffer::worker_cpus(&targets, spec.threads);

        let first_touch = match &spec.first_touch {
            None => None,
            Some(s) => Some(resolve_nodes(s, topo, &flag("first-touch"))?),
        };
        let mut variants = Vec::new();
        for v in &spec.variants {
            variants.push(
                v.resolve(topo)
                    .map_err(|e| bad(format!("{} {v}: {e}", flag("policy"))))?,
            );
        }
        if variants.is_empty() {
            variants.push(Policy::default_policy());
        }
        if spec.fill_fast_leave.is_some() && topo.roles.fast.is_empty() {
            return Err(bad(format!(
                "{} needs a fast tier, and this machine reports none",
                flag("fill-fast-leave")
            )));
        }

        let unit = spec.page.census_unit() as u64;
        let size_bytes = spec.size_bytes.div_ceil(unit) * unit;
        if size_bytes == 0 {
            return Err(bad(format!(
                "{} must be more than 0, e.g. 256M",
                flag("size")
            )));
        }
        spec.pattern.check(size_bytes as usize, flag).map_err(bad)?;
        let pattern = Pattern::new(spec.pattern, size_bytes as usize);
        let hot_bytes = pattern.hot * BASE_PAGE;
        if let Some(t) = spec.move_hot_at {
            if t.is_zero() || t >= spec.duration {
                return Err(bad(format!(
                    "{} must be inside the run (0 < T < duration {:?})",
                    flag("move-hot-at"),
                    spec.duration
                )));
            }
            if pattern.hot * 2 > pattern.pages {
                return Err(bad(format!(
                    "{} needs at most half the buffer hot (the set moves onto cold pages): \
                     lower {}",
                    flag("move-hot-at"),
                    flag("hot-fraction")
                )));
            }
        }
        if !spec.force {
            check_fits(
                size_bytes,
                spec.page,
                first_touch.as_ref(),
                &variants,
                topo,
                flag,
            )?;
        }

        let mut notes = Vec::new();
        if !topo.has_slow_tier() {
            notes.push("single memory tier: no slow tier, nothing can be promoted".to_string());
        }
        if crate::probe::is_emulated() {
            notes.push(
                "emulated NUMA (QEMU): nodes share host RAM, so latency/bandwidth gaps between \
                 them are not real, while placement and promotion counts are"
                    .to_string(),
            );
        }
        if spec.threads > targets.len() {
            notes.push(format!(
                "oversubscribed: {} workers on {} {unit}",
                spec.threads,
                targets.len()
            ));
        }
        Ok(Plan {
            size_bytes: size_bytes as usize,
            page: spec.page,
            first_touch,
            variants,
            move_on_switch: spec.move_on_switch,
            fill_fast_leave: spec.fill_fast_leave,
            worker_node,
            worker_cpus,
            pattern: spec.pattern,
            hot_bytes,
            expected_hot_share: pattern.expected_hot_share,
            move_hot_at_s: spec.move_hot_at.map(|d| d.as_secs_f64()),
            latency_every: spec.latency_every,
            warmup_s: spec.warmup.as_secs_f64(),
            duration_s: spec.duration.as_secs_f64(),
            interval_s: spec.interval.as_secs_f64(),
            iterations: spec.iterations,
            census: spec.census,
            fast: topo.roles.fast.clone(),
            slow: topo.roles.slow.clone(),
            notes,
        })
    }

    /// The CSV columns for this plan on this kernel.
    pub fn columns(&self, topo: &Topology, first: &Snapshot) -> Columns {
        Columns {
            nodes: topo.memory_nodes().iter().collect(),
            counters: vmstat::tiering_counters(first),
            perf: EVENTS.to_vec(),
        }
    }

    /// How many variant runs the plan holds (iterations x variants).
    pub fn runs(&self) -> usize {
        self.iterations as usize * self.variants.len()
    }
}

fn resolve_nodes(spec: &NodeSpec, topo: &Topology, flag: &str) -> Result<NodeSet, InputError> {
    let set = spec.resolve(topo);
    if set.is_empty() {
        return Err(bad(format!(
            "{flag} {spec} names no node on this machine ({}); see `tierbench topo`",
            topo.roles.source
        )));
    }
    if let Some(n) = set.iter().find(|n| topo.node(*n).is_none()) {
        return Err(bad(format!(
            "unknown node {n} in {flag}: this machine has nodes {}; see `tierbench topo`",
            topo.node_ids()
        )));
    }
    Ok(set)
}

/// Refuses a buffer that cannot fit where it will be placed, before
/// anything is allocated.
fn check_fits(
    size: u64,
    page: PageKind,
    first_touch: Option<&NodeSet>,
    variants: &[Policy],
    topo: &Topology,
    flag: FlagName,
) -> Result<(), InputError> {
    if let Some(dir) = page.hugetlb_dir() {
        let sys = SysRoot::live();
        let free: u64 = sys
            .read_opt(&format!("{dir}/free_hugepages"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let need = size / page.census_unit() as u64;
        if free < need {
            return Err(bad(format!(
                "{} needs {need} free {page} huge pages, {dir}/free_hugepages has {free}: \
                 reserve more (echo {need} > {dir}/nr_hugepages) or use {} thp",
                flag("size"),
                flag("page-size")
            )));
        }
        return Ok(());
    }
    let targets: Vec<NodeSet> = match first_touch {
        Some(ft) => vec![ft.clone()],
        None => variants
            .iter()
            .map(|p| match p.mode {
                Mode::Default | Mode::Local => topo.memory_nodes(),
                _ => p.nodes.clone(),
            })
            .collect(),
    };
    for nodes in targets {
        let free = topo.free_bytes(&nodes);
        if size > free {
            return Err(bad(format!(
                "{} {} MiB does not fit in the {} MiB free on node(s) {nodes}: lower it, or pass \
                 --force to allocate anyway",
                flag("size"),
                size >> 20,
                free >> 20
            )));
        }
    }
    Ok(())
}

/// What happened to one variant in one iteration.
#[derive(Debug, Clone)]
pub struct VariantOutcome {
    pub summary: SampleRow,
    pub pin: Option<PinMethod>,
    /// Every vmstat counter's change over the variant (global), for the
    /// system record: nothing the kernel counted is dropped.
    pub vmstat_delta: std::collections::BTreeMap<String, i64>,
    /// Bytes the fast-tier eater held, when the plan fills the fast tier.
    pub eater_bytes: Option<u64>,
}

/// Runs every iteration of every variant. `stop` ends the run early
/// (signals); the rows written so far are complete.
pub fn execute(
    plan: &Plan,
    cols: &Columns,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
) -> anyhow::Result<Vec<VariantOutcome>> {
    let mut outcomes = Vec::new();
    let clock = AccessClock::calibrate(Duration::from_millis(20));
    for iteration in 1..=plan.iterations {
        for policy in &plan.variants {
            if stop.load(Ordering::SeqCst) {
                return Ok(outcomes);
            }
            let name = policy.to_string();
            for s in sinks.iter_mut() {
                s.starting(iteration, &name);
            }
            let outcome = run_variant(plan, policy, iteration, clock, cols, sinks, stop)?;
            let interrupted = outcome.summary.status == Status::Interrupted;
            outcomes.push(outcome);
            if interrupted {
                return Ok(outcomes);
            }
        }
    }
    Ok(outcomes)
}

fn emit(sinks: &mut [&mut dyn RunObserver], row: &SampleRow) -> std::io::Result<()> {
    for s in sinks.iter_mut() {
        s.row(row)?;
    }
    Ok(())
}

/// The memory eater of `fill_fast_leave`: fills the fast nodes until only
/// `leave` bytes above their zones' high watermarks are free. Stopping at
/// the high watermark matters: below it kswapd works, and below min the
/// OOM killer takes the run. `None` when the fast tier is already that
/// full.
fn fill_fast(plan: &Plan, leave: u64, stop: &AtomicBool) -> anyhow::Result<Option<Buffer>> {
    let sys = SysRoot::live();
    // Free memory now, not when the run started: the last variant's buffer
    // and eater are gone, the kernel may still be settling.
    let free = Topology::from_sysfs(&sys)
        .map_err(|e| anyhow::anyhow!("reading free memory of the fast nodes: {e}"))?
        .free_bytes(&plan.fast);
    let high = high_watermark_bytes(&sys, &plan.fast);
    let want = free.saturating_sub(high + leave) / (2 << 20) * (2 << 20);
    if want == 0 {
        return Ok(None);
    }
    let mut eater = Buffer::map(want as usize, PageKind::Base)?;
    eater.set_policy(&Policy::bind(plan.fast.clone()), MoveFlags::NONE)?;
    eater.populate(&plan.worker_cpus, stop)?;
    Ok(Some(eater))
}

/// Sum of the `high` watermarks of `nodes`' zones, from /proc/zoneinfo.
fn high_watermark_bytes(sys: &SysRoot, nodes: &NodeSet) -> u64 {
    let text = sys.read_opt("/proc/zoneinfo").unwrap_or_default();
    let mut node: Option<u32> = None;
    let mut pages = 0u64;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Node ") {
            node = rest.split(',').next().and_then(|n| n.trim().parse().ok());
        } else if let Some(v) = t.strip_prefix("high ") {
            if node.is_some_and(|n| nodes.contains(n)) {
                pages += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    pages * BASE_PAGE as u64
}

fn run_variant(
    plan: &Plan,
    policy: &Policy,
    iteration: u32,
    clock: AccessClock,
    cols: &Columns,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
) -> anyhow::Result<VariantOutcome> {
    let name = policy.to_string();
    let sys = SysRoot::live();
    let mut summary = SampleRow::empty(RowKind::Summary, &name, iteration, cols);
    let mut notes = plan.notes.clone();
    let refused = |mut summary: SampleRow, status: Status, why: String| {
        summary.status = status;
        summary.notes = why;
        VariantOutcome {
            summary,
            pin: None,
            vmstat_delta: Default::default(),
            eater_bytes: None,
        }
    };

    let eater = match plan
        .fill_fast_leave
        .map(|leave| fill_fast(plan, leave, stop))
    {
        None => None,
        Some(Ok(eater)) => {
            notes.push(match &eater {
                Some(e) => format!("fast tier filled by a {} MiB eater", e.len() >> 20),
                None => "fast tier already full to the watermark: no eater needed".into(),
            });
            eater
        }
        Some(Err(e))
            if matches!(
                e.downcast_ref::<buffer::BufferError>(),
                Some(buffer::BufferError::Interrupted)
            ) =>
        {
            let o = refused(
                summary,
                Status::Interrupted,
                "interrupted while filling the fast tier".into(),
            );
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Some(Err(e)) => return Err(e),
    };
    let eater_bytes = eater.as_ref().map(|e| e.len() as u64);

    let mut buf = Buffer::map(plan.size_bytes, plan.page)?;
    // Placement. A policy the kernel refuses is recorded, not fatal: that
    // is the answer for this kernel (e.g. PREFERRED_MANY|NUMA_BALANCING on
    // 6.1).
    let placed = match &plan.first_touch {
        Some(ft) => buf
            .set_policy(&Policy::bind(ft.clone()), MoveFlags::NONE)
            .and_then(|_| populate(&mut buf, plan, stop))
            .and_then(|_| {
                let mv = if plan.move_on_switch {
                    MoveFlags::MOVE
                } else {
                    MoveFlags::NONE
                };
                buf.set_policy(policy, mv)
            }),
        None => buf
            .set_policy(policy, MoveFlags::NONE)
            .and_then(|_| populate(&mut buf, plan, stop)),
    };
    match placed {
        Ok(()) => {}
        Err(buffer::BufferError::Policy { source, .. }) => {
            let why = format!("{source}: {}", crate::probe::diagnose(policy, &source));
            let o = refused(summary, Status::Unsupported, why);
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(buffer::BufferError::Interrupted) => {
            let o = refused(
                summary,
                Status::Interrupted,
                "interrupted while populating".into(),
            );
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(e) => return Err(e.into()),
    }
    // The kernel is the ground truth: check it holds the policy we set.
    let held = buf.policy()?;
    if held != *policy {
        notes.push(format!("kernel reports policy {held} for the buffer"));
    }

    let pattern = Pattern::new(plan.pattern, plan.size_bytes);
    let shared = Shared::default();
    let nodes = topo_nodes(cols);
    let mut perf = PerfCounters::open();
    let threads = plan.worker_cpus.len();
    let base = buf.as_mut_ptr() as usize;
    let mut pin_method = PinMethod::Hwloc;
    let mut window = Window::default();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = plan
            .worker_cpus
            .iter()
            .enumerate()
            .map(|(index, &cpu)| {
                let worker = Worker {
                    pattern: &pattern,
                    shared: &shared,
                    clock,
                    latency_every: plan.latency_every,
                    index,
                    workers: threads,
                    seed: u64::from(iteration),
                };
                s.spawn(move || -> Result<PinMethod, pin::PinError> {
                    let m = pin::pin_current_thread(cpu)?;
                    // SAFETY: the buffer outlives this scope and is only
                    // accessed through atomics while the workers run.
                    unsafe { worker.run(base as *mut u8) };
                    Ok(m)
                })
            })
            .collect();

        warm_up(plan, stop);
        let result = {
            perf.enable();
            let ctx = SampleCtx {
                plan,
                cols,
                name: &name,
                iteration,
                buf: &buf,
                pattern: &pattern,
                shared: &shared,
                sys: &sys,
                nodes: &nodes,
            };
            sample_loop(&ctx, sinks, stop, &mut window)
        };
        shared.stop.store(true, Ordering::SeqCst);
        for h in handles {
            if h.join().expect("worker panicked")? == PinMethod::CoreAffinity {
                pin_method = PinMethod::CoreAffinity;
            }
        }
        result
    })?;
    drop(eater);

    let (first, last) = (
        window.first.expect("sampled"),
        window.last.expect("sampled"),
    );
    let elapsed = window.elapsed;
    let total = window.accesses;
    summary.t_s = elapsed;
    summary.span_s = elapsed;
    summary.accesses = Some(total);
    summary.accesses_per_s = Some(total as f64 / elapsed);
    summary.hot_access_share = (total > 0).then(|| window.hot as f64 / total as f64);
    summary.latency = window
        .latency_end
        .as_ref()
        .zip(window.latency_start.as_ref())
        .and_then(|(e, s)| e.since(s).percentiles());
    summary.hot_first_page = Some(shared.shift.load(Ordering::Relaxed) as u64);
    summary.counters = cols
        .counters
        .iter()
        .map(|c| c.delta(&first, &last))
        .collect();
    fill_census(&mut summary, plan, &pattern, &buf, cols, &shared)?;
    let readings = perf.read();
    summary.perf = cols
        .perf
        .iter()
        .map(|name| {
            readings
                .iter()
                .find(|r| r.name == *name)
                .and_then(|r| r.value)
        })
        .collect();
    let unsupported: Vec<String> = readings
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| format!("perf {}: {}", r.name, r.status))
        .collect();
    notes.extend(unsupported);
    if pin_method == PinMethod::CoreAffinity {
        notes.push("workers pinned with sched_setaffinity (hwloc binding failed)".into());
    }
    if window.stopped_early {
        summary.status = Status::Interrupted;
    }
    summary.notes = notes.join("; ");
    emit(sinks, &summary)?;
    Ok(VariantOutcome {
        summary,
        pin: Some(pin_method),
        vmstat_delta: last.global.delta(&first.global),
        eater_bytes,
    })
}

fn topo_nodes(cols: &Columns) -> NodeSet {
    cols.nodes.iter().copied().collect()
}

fn populate(buf: &mut Buffer, plan: &Plan, stop: &AtomicBool) -> Result<(), buffer::BufferError> {
    buf.populate(&plan.worker_cpus, stop).map(drop)
}

/// Lets the workers run for the warm-up before the measured window.
fn warm_up(plan: &Plan, stop: &AtomicBool) {
    let until = Instant::now() + Duration::from_secs_f64(plan.warmup_s);
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(20).min(until - now));
    }
}

/// What the sampler hands back for the summary row.
#[derive(Default)]
struct Window {
    first: Option<Snapshot>,
    last: Option<Snapshot>,
    elapsed: f64,
    accesses: u64,
    hot: u64,
    latency_start: Option<Counts>,
    latency_end: Option<Counts>,
    stopped_early: bool,
}

/// Everything the sampler reads from.
struct SampleCtx<'a> {
    plan: &'a Plan,
    cols: &'a Columns,
    name: &'a str,
    iteration: u32,
    buf: &'a Buffer,
    pattern: &'a Pattern,
    shared: &'a Shared,
    sys: &'a SysRoot,
    nodes: &'a NodeSet,
}

/// Samples every interval until the duration is over or `stop` is set;
/// moves the hot set when its time comes.
fn sample_loop(
    ctx: &SampleCtx,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
    window: &mut Window,
) -> anyhow::Result<()> {
    let plan = ctx.plan;
    let interval = Duration::from_secs_f64(plan.interval_s);
    let duration = Duration::from_secs_f64(plan.duration_s);
    let move_at = plan.move_hot_at_s.map(Duration::from_secs_f64);
    let shared = ctx.shared;
    let first = Snapshot::read(ctx.sys, ctx.nodes)?;
    let started = Instant::now();
    let count0 = shared.accesses.load(Ordering::Relaxed);
    let hot0 = shared.hot_accesses.load(Ordering::Relaxed);
    let lat0 = shared.latency.snapshot();
    let (mut prev, mut prev_count, mut prev_hot, mut prev_lat) =
        (first.clone(), count0, hot0, lat0.clone());
    window.first = Some(first);
    window.latency_start = Some(lat0);
    let mut prev_t = Duration::ZERO;
    let mut moved = false;
    let mut tick = 1u32;
    loop {
        // Deadlines from the start, so sampling cost does not drift the grid.
        let deadline = (interval * tick).min(duration);
        loop {
            if stop.load(Ordering::SeqCst) {
                window.stopped_early = true;
                break;
            }
            let now = started.elapsed();
            if move_at.is_some_and(|at| !moved && now >= at) {
                shared.shift.store(ctx.pattern.hot, Ordering::Relaxed);
                moved = true;
            }
            if now >= deadline {
                break;
            }
            let mut wake = deadline - now;
            if let Some(at) = move_at.filter(|_| !moved) {
                wake = wake.min(at.saturating_sub(now));
            }
            std::thread::sleep(wake.min(Duration::from_millis(50)));
        }
        let t = started.elapsed();
        let c = shared.accesses.load(Ordering::Relaxed);
        let h = shared.hot_accesses.load(Ordering::Relaxed);
        let lat = shared.latency.snapshot();
        let snap = Snapshot::read(ctx.sys, ctx.nodes)?;
        window.elapsed = t.as_secs_f64();
        window.accesses = c - count0;
        window.hot = h - hot0;
        window.latency_end = Some(lat.clone());
        window.last = Some(snap.clone());
        if window.stopped_early {
            return Ok(());
        }
        let span = (t - prev_t).as_secs_f64();
        let mut row = SampleRow::empty(RowKind::Interval, ctx.name, ctx.iteration, ctx.cols);
        row.t_s = t.as_secs_f64();
        row.span_s = span;
        row.accesses = Some(c - prev_count);
        row.accesses_per_s = Some((c - prev_count) as f64 / span);
        row.hot_access_share =
            (c > prev_count).then(|| (h - prev_hot) as f64 / (c - prev_count) as f64);
        row.latency = lat.since(&prev_lat).percentiles();
        row.hot_first_page = Some(shared.shift.load(Ordering::Relaxed) as u64);
        row.counters = ctx
            .cols
            .counters
            .iter()
            .map(|id: &CounterId| id.delta(&prev, &snap))
            .collect();
        if plan.census {
            fill_census(&mut row, plan, ctx.pattern, ctx.buf, ctx.cols, shared)?;
        }
        emit(sinks, &row)?;
        (prev, prev_count, prev_hot, prev_lat) = (snap, c, h, lat);
        prev_t = t;
        tick += 1;
        if deadline >= duration {
            return Ok(());
        }
    }
}

/// The census of the whole buffer and of the hot set where it is now (it
/// may wrap around the end of the buffer after a move).
fn fill_census(
    row: &mut SampleRow,
    plan: &Plan,
    pattern: &Pattern,
    buf: &Buffer,
    cols: &Columns,
    shared: &Shared,
) -> anyhow::Result<()> {
    let whole: Census = buf.census(0..buf.len())?;
    row.pages_on = cols
        .nodes
        .iter()
        .map(|n| Some(whole.per_node.get(n).copied().unwrap_or(0)))
        .collect();
    let start = shared.shift.load(Ordering::Relaxed) % pattern.pages * BASE_PAGE;
    let end = start + plan.hot_bytes;
    let mut hot = buf.census(start..end.min(buf.len()))?;
    if end > buf.len() {
        hot.add(&buf.census(0..end - buf.len())?);
    }
    row.hot_pages = Some(hot.total());
    row.hot_fast_pages = Some(hot.on(&plan.fast));
    row.hot_fast_share = hot.share_on(&plan.fast);
    row.hot_slow_share = if plan.slow.is_empty() {
        None
    } else {
        hot.share_on(&plan.slow)
    };
    Ok(())
}

/// Parses sizes like `256M`, `1G`, `4096`, `1.5GiB` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("bad size {s:?}: write a number with an optional unit, e.g. 256M or 1G")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "bad size unit {u:?} in {s:?}: use K, M, G or T (powers of 1024)"
            ))
        }
    };
    let bytes = n * mult as f64;
    if bytes >= MAX_SIZE as f64 {
        return Err(format!(
            "size {s:?} is larger than any machine's memory: at most {}T",
            MAX_SIZE >> 40
        ));
    }
    Ok(bytes as u64)
}

/// The most workers `--oversubscribe` puts on one CPU. Beyond a few, the
/// run measures the scheduler, and thousands of spinning threads starve the
/// sampler and the stop path.
pub const MAX_WORKERS_PER_CPU: usize = 4;

/// The largest size any option takes (1 PiB): beyond any machine's memory,
/// and far from where byte arithmetic overflows.
pub const MAX_SIZE: u64 = 1 << 50;

/// The longest duration any option takes (7 days): longer than any
/// benchmark, and far from where adding it to the clock overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses durations like `10s`, `500ms`, `2m`, `1.5` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: write e.g. 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "bad duration unit {u:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "duration {s:?} is too long: at most {}h (7 days)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::pattern::PatternKind;

    fn topo(name: &str) -> Topology {
        Topology::from_sysfs(&SysRoot::at(format!(
            "{}/tests/data/{name}",
            env!("CARGO_MANIFEST_DIR")
        )))
        .unwrap()
    }

    fn spec() -> RunSpec {
        RunSpec {
            size_bytes: 64 << 20,
            page: PageKind::Base,
            first_touch: Some(NodeSpec::Slow),
            variants: vec![
                "preferred-many:fast".parse().unwrap(),
                "preferred-many:fast+balancing".parse().unwrap(),
            ],
            move_on_switch: false,
            fill_fast_leave: None,
            worker_node: None,
            threads: 1,
            oversubscribe: false,
            pin: PinUnit::Cpu,
            pattern: PatternSpec {
                kind: PatternKind::Sweep,
                hot_fraction: 0.5,
                hot_share: 0.9,
                zipf_theta: 1.0,
                stride: 64,
                mix: crate::workload::pattern::Mix::READ_ONLY,
            },
            move_hot_at: None,
            latency_every: 1024,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            iterations: 1,
            census: true,
            force: false,
        }
    }

    #[test]
    fn resolves_roles_against_the_tiers() {
        let plan = Plan::resolve(&spec(), &topo("dram-cxl-6.12")).unwrap();
        assert_eq!(plan.first_touch.unwrap().to_string(), "1");
        assert_eq!(plan.variants[1].to_string(), "preferred-many:0+balancing");
        assert_eq!(plan.worker_node, 0);
        assert_eq!(plan.hot_bytes, 32 << 20);
    }

    #[test]
    fn bad_input_is_refused_with_a_fix() {
        let t = topo("dram-cxl-6.12");
        type Edit = Box<dyn Fn(&mut RunSpec)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|s| s.worker_node = Some(1)), "has no CPUs"),
            (Box::new(|s| s.worker_node = Some(7)), "unknown node 7"),
            (Box::new(|s| s.size_bytes = 8 << 30), "does not fit"),
            (Box::new(|s| s.threads = 3), "more than node 0's 2 CPUs"),
            (Box::new(|s| s.duration = Duration::ZERO), "--duration"),
            (Box::new(|s| s.pattern.hot_fraction = 1.5), "--hot-fraction"),
            (Box::new(|s| s.iterations = 0), "--iterations"),
            (Box::new(|s| s.latency_every = 1000), "power of two"),
            (
                Box::new(|s| {
                    s.pattern.hot_fraction = 0.6;
                    s.move_hot_at = Some(Duration::from_secs(4));
                }),
                "at most half the buffer hot",
            ),
            (
                Box::new(|s| {
                    s.pattern.hot_fraction = 0.25;
                    s.move_hot_at = Some(Duration::from_secs(10));
                }),
                "inside the run",
            ),
            (
                Box::new(|s| s.first_touch = Some("5".parse().unwrap())),
                "unknown node 5",
            ),
            (
                Box::new(|s| s.variants = vec!["bind:9".parse().unwrap()]),
                "unknown node 9",
            ),
        ];
        for (edit, needle) in cases {
            let mut s = spec();
            edit(&mut s);
            let err = Plan::resolve(&s, &t).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut s = spec();
        s.size_bytes = 8 << 30;
        s.force = true;
        assert!(Plan::resolve(&s, &t).is_ok());
        let mut s = spec();
        s.threads = 3;
        s.oversubscribe = true;
        let p = Plan::resolve(&s, &t).unwrap();
        assert_eq!(p.worker_cpus.len(), 3);
        assert!(p.notes.iter().any(|n| n.contains("oversubscribed")));
    }

    #[test]
    fn slow_on_a_single_tier_machine_is_an_error() {
        let err = Plan::resolve(&spec(), &topo("one-node"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--first-touch slow names no node"), "{err}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
    }
}
