//! `tierbench run`: a plan resolved against the machine, then for each
//! policy variant: map the buffer, place it, drive the access loop from
//! pinned workers, sample counters and the census every interval, and hand
//! each row to the sinks as it is measured.
//!
//! [`RunSpec`] is what the user typed; [`Plan::resolve`] checks it against
//! the topology and turns it into concrete node sets before anything on the
//! system changes. Only a `Plan` reaches the buffer, the workers or knobs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::buffer::{self, Buffer, Census, PageKind, BASE_PAGE};
use crate::error::InputError;
use crate::mempolicy::{Mode, MoveFlags, NodeSpec, Policy, PolicySpec};
use crate::pin::{self, PinMethod};
use crate::report::{Columns, RowKind, RowSink, SampleRow, Status};
use crate::sysfs::SysRoot;
use crate::telemetry::perf::{PerfCounters, EVENTS};
use crate::telemetry::vmstat::{self, CounterId, Snapshot};
use crate::topology::{NodeId, NodeSet, Topology};
use crate::workload::AccessLoop;

/// What each worker is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
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
    pub worker_node: Option<NodeId>,
    pub threads: usize,
    pub pin: PinUnit,
    pub hot_fraction: f64,
    pub stride: usize,
    pub write: bool,
    pub duration: Duration,
    pub interval: Duration,
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
    pub worker_node: NodeId,
    pub worker_cpus: Vec<u32>,
    pub hot_bytes: usize,
    pub stride: usize,
    pub write: bool,
    pub duration_s: f64,
    pub interval_s: f64,
    pub census: bool,
    pub fast: NodeSet,
    pub slow: NodeSet,
    /// Facts about the setup that every summary row repeats.
    pub notes: Vec<String>,
}

fn bad(msg: String) -> InputError {
    InputError(msg)
}

impl Plan {
    pub fn resolve(spec: &RunSpec, topo: &Topology) -> Result<Plan, InputError> {
        if spec.duration.is_zero() {
            return Err(bad(
                "--duration must be more than 0, e.g. --duration 10s".into()
            ));
        }
        if spec.interval.is_zero() || spec.interval > spec.duration {
            return Err(bad(format!(
                "--interval must be more than 0 and at most --duration ({:?}), e.g. --interval 1s",
                spec.duration
            )));
        }
        if !(spec.hot_fraction > 0.0 && spec.hot_fraction <= 1.0) {
            return Err(bad(format!(
                "--hot-fraction {} is outside (0, 1]: give the share of the buffer the workers touch, e.g. 0.25",
                spec.hot_fraction
            )));
        }
        if spec.stride < 8 || spec.stride % 8 != 0 {
            return Err(bad(format!(
                "--stride {} must be a multiple of 8 bytes (one word per access), e.g. 64",
                spec.stride
            )));
        }
        if spec.threads == 0 {
            return Err(bad("--threads must be at least 1".into()));
        }
        let node = topo
            .cpu_node(spec.worker_node, "--worker-node")
            .map_err(bad)?;
        let worker_node = node.id;
        let (targets, unit) = match spec.pin {
            PinUnit::Cpu => (node.cpus.clone(), "CPUs"),
            PinUnit::Core => (
                pin::one_per_core(&node.cpus).map_err(|e| bad(format!("--pin core: {e}")))?,
                "cores",
            ),
        };
        if spec.threads > targets.len() {
            return Err(bad(format!(
                "--threads {} is more than node {worker_node}'s {} {unit} ({}): lower --threads",
                spec.threads,
                targets.len(),
                targets
            )));
        }
        let worker_cpus = buffer::worker_cpus(&targets, spec.threads);

        let first_touch = match &spec.first_touch {
            None => None,
            Some(s) => Some(resolve_nodes(s, topo, "--first-touch")?),
        };
        let mut variants = Vec::new();
        for v in &spec.variants {
            variants.push(
                v.resolve(topo)
                    .map_err(|e| bad(format!("--policy {v}: {e}")))?,
            );
        }
        if variants.is_empty() {
            variants.push(Policy::default_policy());
        }

        let unit = spec.page.census_unit() as u64;
        let size_bytes = spec.size_bytes.div_ceil(unit) * unit;
        if size_bytes == 0 {
            return Err(bad("--size must be more than 0, e.g. --size 256M".into()));
        }
        let hot_bytes = ((size_bytes as f64 * spec.hot_fraction) as u64 / BASE_PAGE as u64
            * BASE_PAGE as u64)
            .max(BASE_PAGE as u64);
        if !spec.force {
            check_fits(size_bytes, spec.page, first_touch.as_ref(), &variants, topo)?;
        }

        let mut notes = Vec::new();
        if !topo.has_slow_tier() {
            notes.push("single memory tier: no slow tier, nothing can be promoted".to_string());
        }
        if crate::probe::is_emulated() {
            notes.push(
                "emulated NUMA (QEMU): nodes share host RAM, so latency/bandwidth gaps between \
                 them are not real; placement and promotion counts are"
                    .to_string(),
            );
        }
        Ok(Plan {
            size_bytes: size_bytes as usize,
            page: spec.page,
            first_touch,
            variants,
            move_on_switch: spec.move_on_switch,
            worker_node,
            worker_cpus,
            hot_bytes: hot_bytes as usize,
            stride: spec.stride,
            write: spec.write,
            duration_s: spec.duration.as_secs_f64(),
            interval_s: spec.interval.as_secs_f64(),
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
                "--size needs {need} free {page} huge pages, {dir}/free_hugepages has {free}: \
                 reserve more (echo {need} > {dir}/nr_hugepages) or use --page-size thp"
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
                "--size {} MiB does not fit in the {} MiB free on node(s) {nodes}: lower --size, \
                 or pass --force to allocate anyway",
                size >> 20,
                free >> 20
            )));
        }
    }
    Ok(())
}

/// What happened to one variant.
#[derive(Debug, Clone)]
pub struct VariantOutcome {
    pub summary: SampleRow,
    pub pin: Option<PinMethod>,
    /// Every vmstat counter's change over the variant (global), for the
    /// system record: nothing the kernel counted is dropped.
    pub vmstat_delta: std::collections::BTreeMap<String, i64>,
}

/// Runs every variant in turn. `stop` ends the run early (signals); the
/// rows written so far are complete.
pub fn execute(
    plan: &Plan,
    cols: &Columns,
    sinks: &mut [&mut dyn RowSink],
    stop: &AtomicBool,
) -> anyhow::Result<Vec<VariantOutcome>> {
    let mut outcomes = Vec::new();
    for policy in &plan.variants {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let outcome = run_variant(plan, policy, cols, sinks, stop)?;
        let interrupted = outcome.summary.status == Status::Interrupted;
        outcomes.push(outcome);
        if interrupted {
            break;
        }
    }
    Ok(outcomes)
}

fn emit(sinks: &mut [&mut dyn RowSink], row: &SampleRow) -> std::io::Result<()> {
    for s in sinks.iter_mut() {
        s.write(row)?;
    }
    Ok(())
}

fn run_variant(
    plan: &Plan,
    policy: &Policy,
    cols: &Columns,
    sinks: &mut [&mut dyn RowSink],
    stop: &AtomicBool,
) -> anyhow::Result<VariantOutcome> {
    let name = policy.to_string();
    let sys = SysRoot::live();
    let mut summary = SampleRow::empty(RowKind::Summary, &name, cols);
    let mut notes = plan.notes.clone();

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
            summary.status = Status::Unsupported;
            summary.notes = format!("{source}: {}", crate::probe::diagnose(policy, &source));
            emit(sinks, &summary)?;
            return Ok(VariantOutcome {
                summary,
                pin: None,
                vmstat_delta: Default::default(),
            });
        }
        Err(buffer::BufferError::Interrupted) => {
            summary.status = Status::Interrupted;
            summary.notes = "interrupted while populating".into();
            emit(sinks, &summary)?;
            return Ok(VariantOutcome {
                summary,
                pin: None,
                vmstat_delta: Default::default(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    // The kernel is the ground truth: check it holds the policy we set.
    let held = buf.policy()?;
    if held != *policy {
        notes.push(format!("kernel reports policy {held} for the buffer"));
    }

    let nodes = topo_nodes(cols);
    let first = Snapshot::read(&sys, &nodes)?;
    let mut perf = PerfCounters::open();
    perf.enable();

    let workers_stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let lp = AccessLoop {
        stride: plan.stride,
        write: plan.write,
    };
    let threads = plan.worker_cpus.len();
    let chunk = (plan.hot_bytes / threads) / 8 * 8;
    let base = buf.as_mut_ptr() as usize;
    let mut pin_method = PinMethod::Hwloc;

    let started = Instant::now();
    let mut rows_stopped_early = false;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = plan
            .worker_cpus
            .iter()
            .enumerate()
            .map(|(i, &cpu)| {
                let (ws, count) = (&workers_stop, &count);
                s.spawn(move || -> Result<PinMethod, pin::PinError> {
                    let m = pin::pin_current_thread(cpu)?;
                    let len = if i + 1 == threads {
                        plan.hot_bytes - i * chunk
                    } else {
                        chunk
                    } / 8
                        * 8;
                    // SAFETY: [base + i*chunk, +len) lies inside the buffer,
                    // which outlives this scope; workers write disjoint
                    // chunks.
                    unsafe { lp.run((base + i * chunk) as *mut u8, len, ws, count) };
                    Ok(m)
                })
            })
            .collect();

        let result = sample_loop(
            plan, cols, &name, &buf, &sys, &nodes, &first, &count, started, sinks, stop,
        );
        workers_stop.store(true, Ordering::SeqCst);
        for h in handles {
            if h.join().expect("worker panicked")? == PinMethod::CoreAffinity {
                pin_method = PinMethod::CoreAffinity;
            }
        }
        rows_stopped_early = result?;
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();

    let last = Snapshot::read(&sys, &nodes)?;
    let total = count.load(Ordering::Relaxed);
    summary.t_s = elapsed;
    summary.span_s = elapsed;
    summary.accesses = Some(total);
    summary.accesses_per_s = Some(total as f64 / elapsed);
    summary.counters = cols
        .counters
        .iter()
        .map(|c| c.delta(&first, &last))
        .collect();
    fill_census(&mut summary, plan, &buf, cols)?;
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
    if rows_stopped_early {
        summary.status = Status::Interrupted;
    }
    summary.notes = notes.join("; ");
    emit(sinks, &summary)?;
    Ok(VariantOutcome {
        summary,
        pin: Some(pin_method),
        vmstat_delta: last.global.delta(&first.global),
    })
}

fn topo_nodes(cols: &Columns) -> NodeSet {
    cols.nodes.iter().copied().collect()
}

fn populate(buf: &mut Buffer, plan: &Plan, stop: &AtomicBool) -> Result<(), buffer::BufferError> {
    buf.populate(&plan.worker_cpus, stop).map(drop)
}

/// Samples every interval until the duration is over or `stop` is set.
/// Returns whether it stopped early.
#[allow(clippy::too_many_arguments)]
fn sample_loop(
    plan: &Plan,
    cols: &Columns,
    name: &str,
    buf: &Buffer,
    sys: &SysRoot,
    nodes: &NodeSet,
    first: &Snapshot,
    count: &AtomicU64,
    started: Instant,
    sinks: &mut [&mut dyn RowSink],
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    let interval = Duration::from_secs_f64(plan.interval_s);
    let duration = Duration::from_secs_f64(plan.duration_s);
    let mut prev = first.clone();
    let mut prev_count = 0u64;
    let mut prev_t = Duration::ZERO;
    let mut tick = 1u32;
    loop {
        // Deadlines from the start, so sampling cost does not drift the grid.
        let deadline = (interval * tick).min(duration);
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(true);
            }
            let now = started.elapsed();
            if now >= deadline {
                break;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
        let t = started.elapsed();
        let c = count.load(Ordering::Relaxed);
        let snap = Snapshot::read(sys, nodes)?;
        let span = (t - prev_t).as_secs_f64();
        let mut row = SampleRow::empty(RowKind::Interval, name, cols);
        row.t_s = t.as_secs_f64();
        row.span_s = span;
        row.accesses = Some(c - prev_count);
        row.accesses_per_s = Some((c - prev_count) as f64 / span);
        row.counters = cols
            .counters
            .iter()
            .map(|id: &CounterId| id.delta(&prev, &snap))
            .collect();
        if plan.census {
            fill_census(&mut row, plan, buf, cols)?;
        }
        emit(sinks, &row)?;
        prev = snap;
        prev_count = c;
        prev_t = t;
        tick += 1;
        if deadline >= duration {
            return Ok(false);
        }
    }
}

fn fill_census(
    row: &mut SampleRow,
    plan: &Plan,
    buf: &Buffer,
    cols: &Columns,
) -> anyhow::Result<()> {
    let whole: Census = buf.census(0..buf.len())?;
    row.pages_on = cols
        .nodes
        .iter()
        .map(|n| Some(whole.per_node.get(n).copied().unwrap_or(0)))
        .collect();
    let hot = buf.census(0..plan.hot_bytes)?;
    row.hot_pages = Some(hot.total());
    row.hot_fast_pages = Some(hot.on(&plan.fast));
    row.hot_fast_share = hot.share_on(&plan.fast);
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
    Ok((n * mult as f64) as u64)
}

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
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            worker_node: None,
            threads: 1,
            pin: PinUnit::Cpu,
            hot_fraction: 0.5,
            stride: 64,
            write: false,
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
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
            (Box::new(|s| s.hot_fraction = 1.5), "--hot-fraction"),
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
