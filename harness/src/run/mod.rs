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

use crate::buffer::{self, Buffer, Census, PageKind, BASE_PAGE};
use crate::mempolicy::{MoveFlags, Policy};
use crate::pin::{self, PinMethod};
use crate::report::quality::Cost;
use crate::report::{Columns, Note, RowKind, RunObserver, SampleRow, Status};
use crate::sysfs::SysRoot;
use crate::telemetry::perf::PerfCounters;
use crate::telemetry::taskcpu::CpuTimes;
use crate::telemetry::vmstat::{CounterId, Snapshot};
use crate::topology::{NodeId, NodeSet, Topology};
use crate::variant::Variant;
use crate::workload::clock::AccessClock;
use crate::workload::histogram::Counts;
use crate::workload::pattern::{Pattern, Shared, Worker};

mod mechanisms;
mod moves;
pub mod offline;
mod plan;
mod program;

use mechanisms::{InForce, Refusal};

pub use plan::*;

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
    let mut plan = plan.clone();
    if plan.steady_warmup {
        let w = warm_up_emulator(&plan, clock, stop)?;
        plan.notes.push(Note::EmulatorWarmup {
            seconds: w.seconds,
            per_s: w.per_s,
            steady: w.steady,
            spread_pct: (STEADY_SPREAD - 1.0) * 100.0,
            windows: STEADY_WINDOWS,
            window_ms: STEADY_WINDOW.as_millis(),
        });
    }
    let plan = &plan;
    for iteration in 1..=plan.iterations {
        for variant in &plan.variants {
            if stop.load(Ordering::SeqCst) {
                return Ok(outcomes);
            }
            let name = variant.to_string();
            for s in sinks.iter_mut() {
                s.starting(iteration, &name);
            }
            let outcome = match &plan.program {
                Some(p) => program::run_variant(plan, p, variant, iteration, cols, sinks, stop)?,
                None => run_variant(plan, variant, iteration, clock, cols, sinks, stop)?,
            };
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
    if plan.fill_fast_locked {
        eater.lock().map_err(|e| {
            anyhow::anyhow!(
                "locking the {} MiB fast-tier filler (mlock): {e}; run as root or raise \
                 RLIMIT_MEMLOCK (ulimit -l), or leave out --fill-fast-locked",
                want >> 20
            )
        })?;
    }
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
    variant: &Variant,
    iteration: u32,
    clock: AccessClock,
    cols: &Columns,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
) -> anyhow::Result<VariantOutcome> {
    let policy = &variant.policy;
    let name = variant.to_string();
    let sys = SysRoot::live();
    let mut summary = SampleRow::empty(RowKind::Summary, &name, iteration, cols);
    let mut notes = plan.notes.clone();
    let refused = |mut summary: SampleRow, status: Status, why: Note| {
        summary.status = status;
        summary.notes = vec![why];
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
                Some(e) => Note::FastTierFilled { mib: e.len() >> 20 },
                None => Note::FastTierAlreadyFull,
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
                Note::InterruptedWhile("filling the fast tier"),
            );
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Some(Err(e)) => return Err(e),
    };
    let eater_bytes = eater.as_ref().map(|e| e.len() as u64);

    let mut in_force = match InForce::before_placement(&sys, variant) {
        Ok(f) => f,
        Err(Refusal::Unsupported(why)) => {
            let o = refused(summary, Status::Unsupported, Note::Unsupported(why));
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(Refusal::Failed(e)) => return Err(e),
    };
    let mut buf = Buffer::map(plan.size_bytes, plan.page)?;
    // Placement. A policy the kernel refuses is recorded, not fatal: that
    // is the answer for this kernel (e.g. PREFERRED_MANY|NUMA_BALANCING on
    // 6.1).
    // Weighted interleave is a placement: populated elsewhere and switched
    // in place, its pages would stay where the first touch put them.
    let first_touch = plan
        .first_touch
        .as_ref()
        .filter(|_| policy.mode != crate::mempolicy::Mode::WeightedInterleave);
    if plan.first_touch.is_some() && first_touch.is_none() {
        notes.push(Note::FirstTouchSkipped);
    }
    let placed = match first_touch {
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
            let o = refused(summary, Status::Unsupported, Note::Unsupported(why));
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(buffer::BufferError::Interrupted) => {
            let o = refused(
                summary,
                Status::Interrupted,
                Note::InterruptedWhile("populating"),
            );
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(e) => return Err(e.into()),
    }
    // The kernel is the ground truth: check it holds the policy we set.
    let held = buf.policy()?;
    if held != *policy {
        notes.push(Note::KernelPolicy(held.to_string()));
    }
    match in_force.start_moving(&sys, plan, variant) {
        Ok(()) => {}
        Err(Refusal::Unsupported(why)) => {
            let o = refused(summary, Status::Unsupported, Note::Unsupported(why));
            emit(sinks, &o.summary)?;
            return Ok(o);
        }
        Err(Refusal::Failed(e)) => return Err(e),
    }

    let pattern = Pattern::new(plan.pattern, plan.size_bytes);
    let shared = Shared::default();
    let nodes = topo_nodes(cols);
    let mut perf = PerfCounters::open();
    let base = buf.as_mut_ptr() as usize;
    let mut window = Window::default();
    // The sampler keeps off the workers' CPUs where there are others.
    let spare: crate::topology::CpuSet = pin::current_affinity()
        .map(|all| {
            all.iter()
                .filter(|c| !plan.worker_cpus.contains(c))
                .collect()
        })
        .unwrap_or_default();
    let mut on_spare = None;
    let (result, pin_method) =
        with_workers(plan, &pattern, &shared, clock, iteration, base, || {
            // Bound once the workers exist, so they do not start there;
            // unbound when the variant ends.
            let binding = (!spare.is_empty())
                .then(|| pin::bind_current_thread(&spare).ok())
                .flatten();
            on_spare = binding.as_ref().map(|_| spare.to_string());
            warm_up(plan, stop);
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
                in_force: &in_force,
            };
            let sampled = sample_loop(&ctx, sinks, stop, &mut window);
            drop(binding);
            sampled
        })?;
    // The summary's counters run until the last block was tried: the
    // migrations the offlining caused belong to this variant.
    if window.offline.finish() && window.last.is_some() {
        window.last = Some(Snapshot::read(&sys, &nodes)?);
    }
    result?;
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
    fill_census(&mut summary, plan, &buf, cols, &shared, None)?;
    summary.promotion = plan.census.then_some(window.reached);
    summary.damos = in_force.damos()?;
    let pages: std::collections::BTreeMap<NodeId, u64> = cols
        .nodes
        .iter()
        .zip(&summary.pages_on)
        .filter_map(|(n, p)| Some((*n, (*p)?)))
        .collect();
    summary.weight_error_pts = in_force.weight_error_pts(&policy.nodes, &pages);
    if let Some(tracker) = &window.tracker {
        let q = tracker.quality();
        summary.moves = Some(q.moves.clone());
        summary.quality = Some(q);
    }
    if cols.quality {
        let cpu = window.cpu_end.zip(window.cpu_start);
        summary.cost = Some(cost(
            cpu.map(|(end, start)| end.since(&start)),
            elapsed,
            total,
            &last.global.delta(&first.global),
        ));
    }
    // Back online before the next variant, which starts from the same
    // machine; the run's guard would put them back at its end anyway.
    notes.extend(std::mem::take(&mut window.offline).end());
    notes.append(&mut in_force.notes);
    notes.extend(in_force.cost_note());
    in_force.end()?;
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
    let unsupported: Vec<Note> = readings
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| Note::PerfUnsupported {
            event: r.name,
            status: r.status,
        })
        .collect();
    notes.extend(unsupported);
    if pin_method == PinMethod::CoreAffinity {
        notes.push(Note::PinnedWithAffinity);
    }
    if window.rows > 0 {
        notes.push(Note::SamplerCost {
            cpu_ms_per_row: window.sampler_cpu.as_secs_f64() * 1e3 / f64::from(window.rows),
            interval_ms: plan.interval.as_secs_f64() * 1e3,
            spare_cpus: on_spare,
        });
    }
    if window.stalled > 0 {
        notes.push(Note::StalledIntervals {
            rows: window.stalled,
            worst_s: window.worst_stall_s,
            planned_s: plan.interval.as_secs_f64(),
        });
    }
    notes.extend(window.knobs_changed.iter().cloned());
    if window.stopped_early {
        summary.status = Status::Interrupted;
    }
    summary.notes = notes;
    emit(sinks, &summary)?;
    Ok(VariantOutcome {
        summary,
        pin: Some(pin_method),
        vmstat_delta: last.global.delta(&first.global),
        eater_bytes,
    })
}

/// What the window cost: the workers' CPU time, and the kernel's faults
/// and migrations over it, per second and per access.
fn cost(
    cpu: Option<CpuTimes>,
    elapsed: f64,
    accesses: u64,
    vmstat: &std::collections::BTreeMap<String, i64>,
) -> Cost {
    let per_s = |name: &str| {
        vmstat
            .get(name)
            .filter(|_| elapsed > 0.0)
            .map(|&n| n as f64 / elapsed)
    };
    let migrated = vmstat.get("pgmigrate_success").copied();
    let accesses = accesses as f64;
    Cost {
        user_s: cpu.map(|c| c.user_s),
        sys_s: cpu.map(|c| c.sys_s),
        accesses_per_cpu_s: cpu
            .filter(|c| c.total_s() > 0.0)
            .map(|c| accesses / c.total_s()),
        hint_faults_per_s: per_s("numa_hint_faults"),
        migrated_mib_per_s: per_s("pgmigrate_success")
            .map(|p| p * BASE_PAGE as f64 / (1u64 << 20) as f64),
        accesses_per_migrated_page: migrated.filter(|&m| m > 0).map(|m| accesses / m as f64),
    }
}

/// Runs `during` on this thread while the plan's workers, pinned, drive
/// `pattern` over the buffer at `base`; stops and joins them after. Returns
/// what `during` returned and how the workers were pinned.
fn with_workers<R>(
    plan: &Plan,
    pattern: &Pattern,
    shared: &Shared,
    clock: AccessClock,
    seed: u32,
    base: usize,
    during: impl FnOnce() -> R,
) -> anyhow::Result<(R, PinMethod)> {
    let threads = plan.worker_cpus.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .worker_cpus
            .iter()
            .enumerate()
            .map(|(index, &cpu)| {
                let worker = Worker {
                    pattern,
                    shared,
                    clock,
                    latency_every: plan.latency_every,
                    index,
                    workers: threads,
                    seed: u64::from(seed),
                };
                s.spawn(move || -> Result<PinMethod, pin::PinError> {
                    shared
                        .tids
                        .lock()
                        .expect("no worker panics holding it")
                        .push(crate::telemetry::taskcpu::gettid());
                    let m = pin::pin_current_thread(cpu)?;
                    // SAFETY: the buffer outlives this scope and is only
                    // accessed through atomics while the workers run.
                    unsafe { worker.run(base as *mut u8) };
                    Ok(m)
                })
            })
            .collect();
        let result = during();
        shared.stop.store(true, Ordering::SeqCst);
        let mut method = PinMethod::Hwloc;
        for h in handles {
            if h.join().expect("worker panicked")? == PinMethod::CoreAffinity {
                method = PinMethod::CoreAffinity;
            }
        }
        Ok((result, method))
    })
}

/// How the emulator warm-up ended.
#[derive(Debug, Clone, Copy)]
struct Steady {
    seconds: f64,
    per_s: f64,
    steady: bool,
}

/// Windows of this length are compared by the emulator warm-up.
const STEADY_WINDOW: Duration = Duration::from_millis(500);
/// Steady: the last windows' rates within this ratio of each other.
const STEADY_SPREAD: f64 = 1.10;
const STEADY_WINDOWS: usize = 3;
/// Longest the emulator warm-up runs before giving up (and saying so).
const STEADY_MAX: Duration = Duration::from_secs(60);

/// Under emulation, a variant's throughput depended on its place in the
/// run (measured: 6-7 M accesses/s for the first variants of a run, 25-51
/// M/s for the last, whichever policy came first; see [`TlbFlusher`] for
/// why). So before the first variant, the plan's workload runs on a scratch
/// buffer of the same size, with the TLB flushed every 50 ms, until its
/// throughput is steady; the variants' own buffers, placement and counters
/// are untouched.
fn warm_up_emulator(plan: &Plan, clock: AccessClock, stop: &AtomicBool) -> anyhow::Result<Steady> {
    let mut buf = Buffer::map(plan.size_bytes, plan.page)?;
    populate(&mut buf, plan, stop)?;
    let pattern = Pattern::new(plan.pattern, plan.size_bytes);
    let shared = Shared::default();
    let base = buf.as_mut_ptr() as usize;
    let mut flusher = TlbFlusher::new()?;
    let (steady, _) = with_workers(plan, &pattern, &shared, clock, 0, base, || {
        let t0 = Instant::now();
        let mut rates: Vec<f64> = Vec::new();
        let mut last = (Instant::now(), shared.accesses.load(Ordering::Relaxed));
        loop {
            for _ in 0..STEADY_WINDOW.as_millis() / FLUSH_EVERY.as_millis() {
                std::thread::sleep(FLUSH_EVERY);
                flusher.pulse();
            }
            let now = (Instant::now(), shared.accesses.load(Ordering::Relaxed));
            rates.push((now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64());
            last = now;
            let recent = &rates[rates.len().saturating_sub(STEADY_WINDOWS)..];
            let (lo, hi) = recent
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
            let steady = recent.len() == STEADY_WINDOWS && lo > 0.0 && hi / lo <= STEADY_SPREAD;
            if steady || t0.elapsed() >= STEADY_MAX || stop.load(Ordering::SeqCst) {
                break Steady {
                    seconds: t0.elapsed().as_secs_f64(),
                    per_s: recent.iter().sum::<f64>() / recent.len() as f64,
                    steady,
                };
            }
        }
    })?;
    Ok(steady)
}

/// How often the emulator warm-up flushes the workers' TLBs.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// QEMU (TCG) grows a vCPU's software TLB only when that TLB is flushed
/// while well used. A workload that causes no flush keeps the small
/// initial TLB (a miss per new page, ~150 ns here), until some flush
/// happens to come (a NUMA scan, an munmap) and everything after it runs
/// several times faster: the variant's position, not its policy, decided
/// its throughput. So the warm-up flushes: write-protecting a populated
/// 1 MiB mapping of this process (256 pages, above the kernel's 33-page
/// ceiling for single-page flushes) makes the kernel flush the whole TLB
/// of every CPU running this process, the workers' included.
struct TlbFlusher(Option<memmap2::MmapMut>);

impl TlbFlusher {
    fn new() -> std::io::Result<TlbFlusher> {
        let mut map = memmap2::MmapMut::map_anon(1 << 20)?;
        for page in map.chunks_mut(BASE_PAGE) {
            page[0] = 1;
        }
        Ok(TlbFlusher(Some(map)))
    }

    /// One flush; a failed mprotect only means one flush fewer.
    fn pulse(&mut self) {
        let Some(map) = self.0.take() else { return };
        self.0 = map.make_read_only().and_then(|ro| ro.make_mut()).ok();
    }
}

fn topo_nodes(cols: &Columns) -> NodeSet {
    cols.nodes.iter().copied().collect()
}

fn populate(buf: &mut Buffer, plan: &Plan, stop: &AtomicBool) -> Result<(), buffer::BufferError> {
    buf.populate(&plan.worker_cpus, stop).map(drop)
}

/// Lets the workers run for the warm-up before the measured window.
fn warm_up(plan: &Plan, stop: &AtomicBool) {
    let until = Instant::now() + plan.warmup;
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
    /// CPU time the sampler spent reading counters, counting pages and
    /// writing rows, over `rows` rows.
    sampler_cpu: Duration,
    rows: u32,
    /// When the interval censuses saw the hot set reach the fast tier.
    reached: crate::report::Reached,
    /// Rows that took far longer than planned, and the longest.
    stalled: u32,
    worst_stall_s: f64,
    /// Knobs found changed under the run (each reported once).
    knobs_changed: Vec<Note>,
    /// The pages followed by identity (runs with a census).
    tracker: Option<moves::Tracker>,
    /// The workers' CPU times at the window's start and its last row.
    cpu_start: Option<CpuTimes>,
    cpu_end: Option<CpuTimes>,
    /// `--offline-slow-at` in this variant.
    offline: offline::VariantOffline,
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    // SAFETY: a zeroed timespec is valid; clock_gettime writes into it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid timespec the call may write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
    in_force: &'a InForce,
}

/// An interval that took longer than this many times its plan, plus
/// [`STALL_SLACK_S`], stalled: scheduling noise on a shared machine stays
/// under it, a stopped or starved process does not.
/// The tick after `tick` whose deadline is still ahead of `t` (the last
/// one, at `duration`, at the latest).
pub(crate) fn next_tick(tick: u32, interval: Duration, t: Duration, duration: Duration) -> u32 {
    let mut next = tick + 1;
    while interval * next <= t && interval * next < duration {
        next += 1;
    }
    next
}

const STALL_FACTOR: f64 = 2.0;
const STALL_SLACK_S: f64 = 0.05;

/// Samples every interval until the duration is over or `stop` is set;
/// moves the hot set when its time comes.
fn sample_loop(
    ctx: &SampleCtx,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
    window: &mut Window,
) -> anyhow::Result<()> {
    let plan = ctx.plan;
    let (interval, duration, move_at) = (plan.interval, plan.duration, plan.move_hot_at);
    window.offline = offline::VariantOffline::new(plan.offline.as_ref());
    let shared = ctx.shared;
    if plan.census {
        let unit = plan.page.census_unit();
        let units = ctx.buf.len() / unit;
        window.tracker = Some(moves::Tracker::draw(
            units,
            hot_position(ctx, units).0,
            plan.hot_bytes.div_ceil(unit).max(1),
            moves::TRACKED_PER_STRATUM,
            CENSUS_RUN,
        ));
        // Where the hot set starts: a time-to-50% of 0 means it was
        // already there, not that promotion was instant. The tracked
        // pages' first positions.
        let mut at_start = SampleRow::empty(RowKind::Interval, ctx.name, ctx.iteration, ctx.cols);
        interval_census(ctx, &mut at_start, window)?;
    }
    let first = Snapshot::read(ctx.sys, ctx.nodes)?;
    window.cpu_start = workers_cpu(ctx);
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
            window.offline.tick(now);
            if now >= deadline {
                break;
            }
            let mut wake = deadline - now;
            if let Some(at) = move_at.filter(|_| !moved) {
                wake = wake.min(at.saturating_sub(now));
            }
            if let Some(due) = window.offline.due_in(now) {
                wake = wake.min(due);
            }
            std::thread::sleep(wake.min(Duration::from_millis(50)));
        }
        let t = started.elapsed();
        let cpu0 = thread_cpu_time();
        let c = shared.accesses.load(Ordering::Relaxed);
        let h = shared.hot_accesses.load(Ordering::Relaxed);
        let lat = shared.latency.snapshot();
        let snap = Snapshot::read(ctx.sys, ctx.nodes)?;
        window.cpu_end = workers_cpu(ctx);
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
        let planned = deadline.saturating_sub(prev_t).as_secs_f64();
        if span > planned * STALL_FACTOR + STALL_SLACK_S {
            row.notes.push(Note::Stalled {
                took_s: span,
                planned_s: planned,
            });
            window.stalled += 1;
            window.worst_stall_s = window.worst_stall_s.max(span);
        }
        for (knob, set, found) in crate::knobs::drifted() {
            let note = Note::KnobChanged {
                knob: knob.to_string(),
                set,
                found,
            };
            if !window.knobs_changed.contains(&note) {
                crate::errln!("tierbench run: warning: {note}");
                window.knobs_changed.push(note.clone());
            }
            row.notes.push(note);
        }
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
        if let Some(note) = window.offline.poll() {
            crate::errln!("tierbench run: {}: {note}", ctx.name);
            row.notes.push(note);
        }
        if plan.census {
            interval_census(ctx, &mut row, window)?;
        }
        row.damos = ctx.in_force.damos()?;
        emit(sinks, &row)?;
        window.sampler_cpu += thread_cpu_time().saturating_sub(cpu0);
        window.rows += 1;
        (prev, prev_count, prev_hot, prev_lat) = (snap, c, h, lat);
        prev_t = t;
        // Ticks whose deadline has passed (a stall, or a row whose census
        // took longer than the interval) are skipped: catching them up
        // would emit a burst of near-empty rows.
        tick = next_tick(tick, interval, t, duration);
        if deadline >= duration {
            return Ok(());
        }
    }
}

/// The sampled census of an interval row (or of the moment before the
/// window, with `t_s` 0), taken into the window's time-to marks.
fn interval_census(
    ctx: &SampleCtx,
    row: &mut SampleRow,
    window: &mut Window,
) -> anyhow::Result<()> {
    let plan = ctx.plan;
    fill_census(
        row,
        plan,
        ctx.buf,
        ctx.cols,
        ctx.shared,
        Some(plan.census_sample),
    )?;
    if let Some(share) = row.hot_fast_share {
        window.reached.observe(row.t_s, share);
    }
    if let Some(tracker) = &mut window.tracker {
        let status = ctx.buf.where_are(tracker.units())?;
        let units = ctx.buf.len() / plan.page.census_unit();
        let (first_hot, hot_units) = hot_position(ctx, units);
        let is_hot = |u: usize| (u + units - first_hot) % units < hot_units;
        row.moves = Some(tracker.observe(row.t_s, &status, &plan.fast, &plan.slow, is_hot));
    }
    Ok(())
}

/// The hot set's first census unit now and its length in units.
fn hot_position(ctx: &SampleCtx, units: usize) -> (usize, usize) {
    let unit = ctx.plan.page.census_unit();
    let first = ctx.shared.shift.load(Ordering::Relaxed) * BASE_PAGE / unit % units;
    (first, ctx.plan.hot_bytes.div_ceil(unit).clamp(1, units))
}

/// The workers' CPU times, once every worker has said its thread id (the
/// first thing each does; without a warm-up the window can start before a
/// thread has run at all, so this waits for them, a second at most); None
/// where /proc cannot say.
fn workers_cpu(ctx: &SampleCtx) -> Option<CpuTimes> {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let tids = ctx
            .shared
            .tids
            .lock()
            .expect("no worker panics holding it")
            .clone();
        if tids.len() >= ctx.plan.worker_cpus.len() {
            return CpuTimes::of_threads(&tids).ok();
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Consecutive units a sampled census examines together. move_pages costs
/// about 50 ns a page over consecutive pages and several times that over
/// pages scattered across the buffer (cold page-table lines and struct
/// pages, more of them the larger the buffer). Here, with the workers
/// streaming, runs of 32 cut the sampler's CPU per row from 2.8-3.3 ms to
/// 1.5-1.8 ms at 1 GiB and from 4.7-5.3 ms to 1.8-2.1 ms at 16 GiB. The
/// interval stays honest because it is also computed from the runs (see
/// [`cluster_ci95`]).
const CENSUS_RUN: usize = 32;

/// The census of the whole buffer and of the hot set where it is now (it
/// may wrap around the end of the buffer after a move). With `sample`, and
/// more units than it allows, only that many hot-set units are examined,
/// in runs of [`CENSUS_RUN`] consecutive units spread evenly from a random
/// start: a row's cost does not grow with the buffer.
fn fill_census(
    row: &mut SampleRow,
    plan: &Plan,
    buf: &Buffer,
    cols: &Columns,
    shared: &Shared,
    sample: Option<usize>,
) -> anyhow::Result<()> {
    let unit = plan.page.census_unit();
    // Units the hot set touches: a huge page partly hot counts, as the
    // range census counts it.
    let (units, hot_units) = (buf.len() / unit, plan.hot_bytes.div_ceil(unit).max(1));
    let first_hot = shared.shift.load(Ordering::Relaxed) * BASE_PAGE / unit % units;
    let sampled = sample.filter(|&n| n > 0 && units + hot_units > n);
    // For a sampled census, the interval the runs' spread gives.
    let mut runs_ci95 = None;
    let (hot, whole_examined) = match sampled {
        Some(n) => {
            let n = n.min(hot_units);
            let run = CENSUS_RUN.min(n);
            let runs = n / run;
            let step = hot_units as f64 / runs as f64;
            let start: f64 = rand::random::<f64>() * (step - run as f64 + 1.0);
            let picks: Vec<usize> = (0..runs)
                .flat_map(|i| {
                    let first = first_hot + (start + i as f64 * step) as usize;
                    (first..first + run).map(|u| u % units)
                })
                .collect();
            let mut hot = Census::default();
            let mut shares = Vec::with_capacity(runs);
            for c in buf.census_groups(&picks, run)? {
                shares.extend(c.share_on(&plan.fast));
                hot.add(&c);
            }
            runs_ci95 = Some(cluster_ci95(&shares, (hot_units / run) as u64));
            (hot, 0)
        }
        None => {
            let whole: Census = buf.census(0..buf.len())?;
            row.pages_on = cols
                .nodes
                .iter()
                .map(|n| Some(whole.per_node.get(n).copied().unwrap_or(0)))
                .collect();
            let start = first_hot * unit;
            let end = start + hot_units * unit;
            let mut hot = buf.census(start..end.min(buf.len()))?;
            if end > buf.len() {
                hot.add(&buf.census(0..end - buf.len())?);
            }
            row.hot_fast_pages = Some(hot.on(&plan.fast));
            (hot, whole.total())
        }
    };
    let examined = hot.total();
    row.census_pages = Some(whole_examined + examined);
    row.hot_pages = Some(hot_units as u64);
    row.hot_fast_share = hot.share_on(&plan.fast);
    // Pages of one run are not independent draws: a sampled share takes
    // the wider of the page-level (Wilson) and the run-level interval.
    row.hot_fast_share_ci95 = row.hot_fast_share.map(|p| match runs_ci95 {
        Some(runs) => ci95_half_width(p, examined, hot_units as u64).max(runs),
        None => 0.0,
    });
    row.hot_slow_share = if plan.slow.is_empty() {
        None
    } else {
        hot.share_on(&plan.slow)
    };
    Ok(())
}

/// Half-width of the 95% Wilson interval of a share `p` seen in `n` of
/// `population` units drawn without replacement (finite-population
/// correction): honest near 0 and 1, where promotion shares live.
fn ci95_half_width(p: f64, n: u64, population: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let z = 1.959_964;
    let n = n as f64;
    let fpc = if population > 1 {
        ((population as f64 - n) / (population as f64 - 1.0))
            .max(0.0)
            .sqrt()
    } else {
        0.0
    };
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    half * fpc
}

/// Half-width of the 95% interval of a share estimated as the mean of the
/// shares of `shares.len()` equal runs drawn from `population` runs
/// (Student's t on the between-run spread, finite-population corrected):
/// what clustering costs in precision. Runs that all agree give 0, so it is
/// used beside the page-level interval, never alone.
fn cluster_ci95(shares: &[f64], population: u64) -> f64 {
    let m = shares.len();
    if m < 2 {
        return 1.0;
    }
    let mean = shares.iter().sum::<f64>() / m as f64;
    let var = shares.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
    let fpc = if population > 1 {
        ((population as f64 - m as f64) / (population as f64 - 1.0)).max(0.0)
    } else {
        0.0
    };
    crate::stats::t_975(m - 1) * (var / m as f64 * fpc).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row that ended past the next deadline (its census or DAMON's
    /// statistics took longer than the interval) skips the ticks it
    /// swallowed, so no later deadline lies behind the last row: 6.12 under
    /// TCG once panicked subtracting such a deadline.
    #[test]
    fn ticks_a_slow_row_swallowed_are_skipped() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(next_tick(1, s(1), ms(1_000), s(30)), 2);
        assert_eq!(next_tick(2, s(1), ms(3_036), s(30)), 4);
        // Never past the last tick, the one at the duration.
        assert_eq!(next_tick(2, s(1), s(40), s(30)), 30);
        assert_eq!(next_tick(1, s(1), s(5), Duration::MAX), 6);
    }

    /// Runs that disagree widen the interval past the page-level one:
    /// 128 runs of 32 pages, half all fast and half all slow, are 128
    /// draws, not 4096.
    #[test]
    fn clustered_placement_widens_the_interval() {
        let shares: Vec<f64> = (0..128).map(|i| (i % 2) as f64).collect();
        let runs = cluster_ci95(&shares, 1 << 15);
        let pages = ci95_half_width(0.5, 4096, 1 << 20);
        assert!(runs > 5.0 * pages, "runs {runs}, pages {pages}");
        // 1.98 * sqrt(0.25 * 128 / 127 / 128) = 0.088
        assert!((runs - 0.088).abs() < 0.002, "{runs}");
        // Runs that agree add nothing; one run says nothing.
        assert_eq!(cluster_ci95(&[0.5; 10], 1000), 0.0);
        assert_eq!(cluster_ci95(&[0.5], 1000), 1.0);
    }

    #[test]
    fn census_interval_widths() {
        // p = 0.5 from 4096 of a million: 1.96 * sqrt(0.25 / 4096) = 0.0153.
        let w = ci95_half_width(0.5, 4096, 1 << 20);
        assert!((w - 0.0153).abs() < 0.0003, "{w}");
        // At the edges the Wilson interval keeps a width.
        assert!(ci95_half_width(1.0, 4096, 1 << 20) > 0.0);
        // The whole population examined: exact.
        assert_eq!(ci95_half_width(0.3, 4096, 4096), 0.0);
        assert_eq!(ci95_half_width(0.3, 0, 4096), 1.0);
    }
}
