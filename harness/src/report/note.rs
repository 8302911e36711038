//! Facts about a run that its rows carry beside the numbers: typed while
//! the run goes on, turned into text only when a row is written (the CSV
//! `notes` column, `system.json`, the terminal).

use std::fmt;

/// One fact about a variant's setup or measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The machine has one memory tier: nothing can be promoted.
    SingleTier,
    /// The nodes are QEMU's: placement and counters are real, latency and
    /// bandwidth gaps between nodes are not.
    EmulatedNuma,
    /// More workers than CPUs (or cores) of the worker node.
    Oversubscribed {
        workers: usize,
        targets: usize,
        unit: &'static str,
    },
    /// The host profile's expected tiers differ from the kernel's.
    ProfileExpectation(String),
    /// Another tierbench held the kernel knobs while this run measured.
    KnobsHeldBy(String),
    /// The emulator warm-up before the first variant.
    EmulatorWarmup {
        seconds: f64,
        per_s: f64,
        steady: bool,
        spread_pct: f64,
        windows: usize,
        window_ms: u128,
    },
    /// The fast tier was filled by an eater of this many MiB.
    FastTierFilled { mib: usize },
    /// The fast tier was already full to its watermarks.
    FastTierAlreadyFull,
    /// `--first-touch` does not apply to a weighted-interleave variant.
    FirstTouchSkipped,
    /// The kernel holds another policy for the buffer than the one set.
    KernelPolicy(String),
    /// A perf event this machine does not count.
    PerfUnsupported {
        event: crate::telemetry::perf::PerfEvent,
        status: crate::telemetry::perf::PerfStatus,
    },
    /// hwloc could not bind; sched_setaffinity did.
    PinnedWithAffinity,
    /// What sampling cost: the sampler's CPU time per row against the
    /// interval, on spare CPUs (these) or on the workers' own.
    SamplerCost {
        cpu_ms_per_row: f64,
        interval_ms: f64,
        spare_cpus: Option<String>,
    },
    /// The kernel refused the variant's policy, and why.
    Unsupported(String),
    /// A signal stopped the variant at this step.
    InterruptedWhile(&'static str),
    /// Run with `--force` although CPU-less memory shares the DRAM tier.
    TierTrap(String),
    /// An interval took far longer than planned: the process was stopped
    /// (SIGSTOP, a debugger) or starved of CPU. Its rate is an average over
    /// the stall, and the missed intervals are skipped, not caught up.
    Stalled { took_s: f64, planned_s: f64 },
    /// A variant's rows that stalled, and the worst.
    StalledIntervals {
        rows: u32,
        worst_s: f64,
        planned_s: f64,
    },
    /// A knob this run set was changed under it (another root, `knobs
    /// restore --force`): the rows from here on were not measured under the
    /// setting the run claims.
    KnobChanged {
        knob: String,
        set: String,
        found: String,
    },
    /// An external program did not end well: how it ended (exit code,
    /// signal, timeout, a server that never got ready) and the last lines
    /// it printed.
    ProgramFailed { how: String, tail: String },
    /// An external program's output held no score for the parser.
    NoScore { parser: String, tail: String },
    /// `--push-to-slow-at`: what the push moved, and what the kernel
    /// could not move or refused.
    Pushed {
        at_s: f64,
        kib: u64,
        not_moved_pages: u64,
        error: Option<String>,
    },
    /// `--bracket`: this bound does not fit where it binds, so it was not run.
    BracketLeftOut(String),
    /// What the per-node census of the program cost.
    ProgramCensusCost { cpu_ms_per_row: f64, procs: u32 },
    /// The weighted-interleave weights in force for the variant, as the
    /// kernel read them back, and what tierbench derives for `auto`.
    Weights {
        in_force: String,
        auto: bool,
        derived: Option<String>,
    },
    /// The DAMON kdamonds the variant ran, and what this kernel's DAMON
    /// lacked of the setup.
    Damon {
        kdamonds: String,
        left_out: Vec<&'static str>,
    },
    /// DAMON under QEMU's TCG with the built-in workers: TCG caches
    /// translations until the guest flushes its TLB, so the accessed bits
    /// DAMON clears are not set again while one pinned process runs.
    DamonBlindUnderTcg,
    /// What reading the DAMOS statistics took per row (wall time: each
    /// read waits for the kdamonds to answer).
    DamosReadCost { ms_per_read: f64, reads: u32 },
    /// `--offline-slow-at`: the slow node's memory blocks written
    /// `offline` at `at_s`, and what the kernel did with each.
    Offlined {
        at_s: f64,
        nodes: String,
        outcomes: Vec<Outcome>,
    },
    /// A memory block `--offline-slow-at` took could not be put back
    /// online after the variant (the run's guard tries again at its end).
    PutBack(String),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::SingleTier => {
                f.write_str("single memory tier: no slow tier, nothing can be promoted")
            }
            Note::EmulatedNuma => f.write_str(
                "emulated NUMA (QEMU): nodes share host RAM, so latency/bandwidth gaps between \
                 them are not real, while placement and promotion counts are",
            ),
            Note::Oversubscribed {
                workers,
                targets,
                unit,
            } => write!(f, "oversubscribed: {workers} workers on {targets} {unit}"),
            Note::ProfileExpectation(m) => write!(f, "profile expectation not met: {m}"),
            Note::KnobsHeldBy(owner) => write!(
                f,
                "the kernel knobs belonged to another tierbench during this run ({owner}): \
                 measured under its settings"
            ),
            Note::EmulatorWarmup {
                seconds,
                per_s,
                steady: true,
                spread_pct,
                windows,
                window_ms,
            } => write!(
                f,
                "emulator warm-up: the workload ran {seconds:.1} s on a scratch buffer until \
                 its throughput was steady ({per_s:.3e} accesses/s, within {spread_pct:.0}% \
                 over {windows} windows of {window_ms} ms), so the first variant is measured \
                 like the last"
            ),
            Note::EmulatorWarmup {
                seconds,
                steady: false,
                ..
            } => write!(
                f,
                "emulator warm-up: throughput was not steady after {seconds:.1} s on a \
                 scratch buffer: early variants may run slower than later ones"
            ),
            Note::FastTierFilled { mib } => write!(f, "fast tier filled by a {mib} MiB eater"),
            Note::FastTierAlreadyFull => {
                f.write_str("fast tier already full to the watermark: no eater needed")
            }
            Note::FirstTouchSkipped => f.write_str(
                "populated under its own weights, not first-touched: weighted interleave is a \
                 placement, and switched in place it would leave every page where the first \
                 touch put it",
            ),
            Note::KernelPolicy(p) => write!(f, "kernel reports policy {p} for the buffer"),
            Note::PerfUnsupported { event, status } => write!(f, "perf {event}: {status}"),
            Note::PinnedWithAffinity => {
                f.write_str("workers pinned with sched_setaffinity (hwloc binding failed)")
            }
            Note::SamplerCost {
                cpu_ms_per_row,
                interval_ms,
                spare_cpus,
            } => {
                let share = cpu_ms_per_row / interval_ms * 100.0;
                write!(
                    f,
                    "sampler: {cpu_ms_per_row:.2} ms of CPU per {interval_ms:.0} ms row \
                     ({share:.2}% of one CPU), "
                )?;
                match spare_cpus {
                    Some(cpus) => write!(f, "on spare CPU(s) {cpus}, not the workers'"),
                    None => f.write_str("taken from the workers (no spare CPU)"),
                }
            }
            Note::Unsupported(why) => f.write_str(why),
            Note::InterruptedWhile(step) => write!(f, "interrupted while {step}"),
            Note::TierTrap(why) => write!(f, "run with --force: {why}"),
            Note::Stalled { took_s, planned_s } => write!(
                f,
                "stalled: this interval took {took_s:.2} s of a planned {planned_s:.2} s (the \
                 process was stopped or starved); missed intervals were skipped"
            ),
            Note::StalledIntervals {
                rows,
                worst_s,
                planned_s,
            } => write!(
                f,
                "{rows} interval(s) stalled (worst {worst_s:.2} s of a planned {planned_s:.2} s): \
                 the process was stopped or starved, its rates there are not comparable"
            ),
            Note::KnobChanged { knob, set, found } => write!(
                f,
                "{knob} was changed under the run: set to {set}, found {found}; rows from here \
                 on were not measured under the setting"
            ),
            Note::ProgramFailed { how, tail } => write!(f, "program {how}; output ends: {tail}"),
            Note::NoScore { parser, tail } => {
                write!(
                    f,
                    "no score for {parser} in the output; output ends: {tail}"
                )
            }
            Note::Pushed {
                at_s,
                kib,
                not_moved_pages,
                error,
            } => {
                write!(
                    f,
                    "pushed {kib} KiB off the fast tier at {at_s:.2} s (migrate_pages; \
                     {not_moved_pages} page(s) not moved)"
                )?;
                match error {
                    Some(e) => write!(f, ", {e}"),
                    None => Ok(()),
                }
            }
            Note::BracketLeftOut(p) => {
                write!(f, "bracket {p} left out: the buffer does not fit there")
            }
            Note::ProgramCensusCost {
                cpu_ms_per_row,
                procs,
            } => write!(
                f,
                "program census (numa_maps of {procs} process(es)): {cpu_ms_per_row:.2} ms of \
                 CPU per row"
            ),
            Note::Weights {
                in_force,
                auto,
                derived,
            } => {
                let how = if *auto { "auto, from bandwidth" } else { "set" };
                write!(f, "interleave weights {in_force} ({how})")?;
                match derived {
                    Some(d) if d != in_force => write!(
                        f,
                        "; tierbench derives {d} from the nodes' access1 bandwidth: they differ"
                    ),
                    Some(_) => f.write_str("; tierbench derives the same from access1 bandwidth"),
                    None => Ok(()),
                }
            }
            Note::Damon { kdamonds, left_out } => {
                write!(
                    f,
                    "DAMON: {kdamonds} (its migrations count in pgmigrate_success, not \
                     pgpromote_success)"
                )?;
                if !left_out.is_empty() {
                    write!(f, "; this kernel lacks {}", left_out.join(", "))?;
                }
                Ok(())
            }
            Note::Offlined {
                at_s,
                nodes,
                outcomes,
            } => write!(
                f,
                "offlined node {nodes}'s memory blocks at {at_s:.2} s: {}",
                outcomes_text(outcomes)
            ),
            Note::PutBack(e) => write!(f, "not put back online after the variant: {e}"),
            Note::DamosReadCost { ms_per_read, reads } => write!(
                f,
                "DAMOS statistics: {ms_per_read:.1} ms of wall time per read ({reads} reads; \
                 each waits for the kdamonds to answer update_schemes_stats)"
            ),
            Note::DamonBlindUnderTcg => f.write_str(
                "under QEMU TCG DAMON may see few accesses of the built-in workers: TCG keeps \
                 translations until the guest flushes its TLB, so the accessed bits DAMON \
                 clears can stay clear while one pinned process runs (native and KVM do not \
                 do this; under TCG DAMON is measured surely with a program of several \
                 processes)",
            ),
        }
    }
}

/// In `system.json`, a note is its text.
impl serde::Serialize for Note {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Notes as one CSV cell.
pub fn join(notes: &[Note]) -> String {
    notes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What offlining one block came to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub block: u32,
    pub seconds: f64,
    /// The kernel's refusal (errno and its name), `None` when it went
    /// offline.
    pub refused: Option<String>,
}

/// The note's text for its outcomes: `memory32 offline in 0.81 s,
/// memory33 refused: EBUSY (...)`.
pub fn outcomes_text(outcomes: &[Outcome]) -> String {
    if outcomes.is_empty() {
        return "no block tried".into();
    }
    outcomes
        .iter()
        .map(|o| match &o.refused {
            None => format!("memory{} offline in {:.2} s", o.block, o.seconds),
            Some(why) => format!("memory{} refused after {:.2} s: {why}", o.block, o.seconds),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
