//! One variant of a run whose workload is an external program: the
//! program (or its server) started under the variant's policy and CPUs,
//! a row every interval with where its memory is and what the kernel
//! counted, its score and how it ended in the summary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::mechanisms::{InForce, Refusal};
use super::{
    emit, next_tick, thread_cpu_time, topo_nodes, Plan, VariantOutcome, STALL_FACTOR, STALL_SLACK_S,
};
use crate::program::census::{self, GroupCensus};
use crate::program::group::{Ended, Group};
use crate::program::{tail, ProgramSpec, Ready};
use crate::report::{
    Columns, Note, ProgramCells, Reached, RowKind, RunObserver, SampleRow, Status,
};
use crate::sysfs::SysRoot;
use crate::telemetry::vmstat::Snapshot;
use crate::topology::CpuSet;
use crate::variant::Variant;

/// How long a server gets to end after SIGTERM before it is killed.
const SERVER_GRACE: Duration = Duration::from_secs(5);
/// How often the loop looks at the program between rows.
const POLL: Duration = Duration::from_millis(5);
/// Lines of output a failed row quotes.
const TAIL_LINES: usize = 3;

/// Why the measured window ended.
enum End {
    Exited(Ended),
    TimedOut(Duration),
    ServerEnded(Ended),
    Stopped,
}

/// The logs of one variant run: `output/<iteration>-<variant>.log` (and
/// `.server.log`) in the results directory.
fn log_paths(plan: &Plan, name: &str, iteration: u32) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = plan
        .output_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join("output");
    std::fs::create_dir_all(&dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let stem: String = format!("{iteration}-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-+_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.server.log")),
    ))
}

fn read_output(path: &Path) -> String {
    crate::userfile::read_capped_bytes(path, crate::userfile::TEXT_MAX)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Runs one variant of `prog`.
pub(super) fn run_variant(
    plan: &Plan,
    prog: &ProgramSpec,
    variant: &Variant,
    iteration: u32,
    cols: &Columns,
    sinks: &mut [&mut dyn RunObserver],
    stop: &AtomicBool,
) -> anyhow::Result<VariantOutcome> {
    let policy = &variant.policy;
    let name = variant.to_string();
    let sys = SysRoot::live();
    let mut summary = SampleRow::empty(RowKind::Summary, &name, iteration, cols);
    let mut notes = plan.notes.clone();
    // The kernel's answer to the policy, asked on a scratch thread: a
    // refusal is this variant's result, as for the built-in workers.
    let probe = policy.clone();
    let answer = std::thread::spawn(move || probe.apply_to_thread())
        .join()
        .expect("policy probe thread");
    if let Err(e) = answer {
        let why = format!("{e}: {}", crate::probe::diagnose(policy, &e));
        return ended_as(sinks, summary, Status::Unsupported, Note::Unsupported(why));
    }
    let mut in_force = match InForce::before_placement(&sys, variant) {
        Ok(f) => f,
        Err(Refusal::Unsupported(why)) => {
            return ended_as(sinks, summary, Status::Unsupported, Note::Unsupported(why))
        }
        Err(Refusal::Failed(e)) => return Err(e),
    };
    let (log, server_log) = log_paths(plan, &name, iteration)?;
    let cpus: CpuSet = plan.worker_cpus.iter().copied().collect();
    let nodes = topo_nodes(cols);
    let first = Snapshot::read(&sys, &nodes)?;

    // The server (when there is one) holds the memory that is counted; the
    // measured command is its client, on other CPUs where there are any.
    let mut server = None;
    if let Some(argv) = &prog.server {
        let mut s = match Group::spawn(argv, Some(policy), &cpus, &server_log) {
            Ok(s) => s,
            Err(e) => {
                let how = format!("server could not start: {e}");
                return ended_as(sinks, summary, Status::Failed, failed(how, &server_log));
            }
        };
        match wait_ready(&mut s, prog, &server_log, stop) {
            Ok(()) => server = Some(s),
            Err(None) => {
                s.stop(SERVER_GRACE);
                let why = Note::InterruptedWhile("waiting for the server");
                return ended_as(sinks, summary, Status::Interrupted, why);
            }
            Err(Some(how)) => {
                s.stop(SERVER_GRACE);
                return ended_as(sinks, summary, Status::Failed, failed(how, &server_log));
            }
        }
    }
    let (measured_policy, measured_cpus) = match &server {
        Some(_) => (None, client_cpus(&cpus)),
        None => (Some(policy), cpus.clone()),
    };
    let mut measured = match Group::spawn(&prog.command, measured_policy, &measured_cpus, &log) {
        Ok(m) => m,
        Err(e) => {
            if let Some(s) = server.as_mut() {
                s.stop(SERVER_GRACE);
            }
            return ended_as(sinks, summary, Status::Failed, failed(format!("{e}"), &log));
        }
    };
    // DAMON watches physical memory: it starts with the program, whose
    // memory it finds as the program places it.
    if let Err(r) = in_force.start_moving(&sys, plan, variant) {
        measured.stop(Duration::ZERO);
        if let Some(s) = server.as_mut() {
            s.stop(SERVER_GRACE);
        }
        return match r {
            Refusal::Unsupported(why) => {
                ended_as(sinks, summary, Status::Unsupported, Note::Unsupported(why))
            }
            Refusal::Failed(e) => Err(e),
        };
    }

    // A bound of --bracket is a placement, not a subject of the push: it
    // stays where its policy put it.
    let is_bound = plan.bracket.as_ref().is_some_and(|b| {
        [&b.fast, &b.slow]
            .iter()
            .any(|n| n.as_deref() == Some(name.as_str()))
    });
    let started = Instant::now();
    let mut prev = first.clone();
    let mut last;
    let mut prev_t = Duration::ZERO;
    let mut tick = 1u32;
    let mut reached = Reached::default();
    let mut push: Option<Push> = None;
    let mut offline = super::offline::VariantOffline::new(plan.offline.as_ref());
    let mut last_census = GroupCensus::default();
    let mut peak_kib = 0u64;
    let (mut census_cpu, mut census_rows) = (Duration::ZERO, 0u32);
    let mut knobs_changed: Vec<Note> = Vec::new();
    let (mut stalled, mut worst_stall) = (0u32, 0.0f64);
    let end = loop {
        let deadline = plan.interval * tick;
        let end = loop {
            if stop.load(Ordering::SeqCst) {
                break Some(End::Stopped);
            }
            if let Some(e) = measured.poll() {
                break Some(End::Exited(e));
            }
            if let Some(e) = server.as_mut().and_then(Group::poll) {
                break Some(End::ServerEnded(e));
            }
            if let Some(t) = prog.timeout.filter(|t| measured.elapsed() >= *t) {
                break Some(End::TimedOut(t));
            }
            let counted = server.as_ref().unwrap_or(&measured).pgid();
            if let Some(at) = prog.push_to_slow_at.filter(|_| !is_bound) {
                if push.is_none() && started.elapsed() >= at {
                    let p = Push::now(&sys, counted, plan, started.elapsed());
                    notes.push(p.note.clone());
                    push = Some(p);
                }
            }
            offline.tick(started.elapsed());
            if started.elapsed() >= deadline {
                break None;
            }
            std::thread::sleep(POLL);
        };
        let t = started.elapsed();
        let snap = Snapshot::read(&sys, &nodes)?;
        last = snap.clone();
        let mut row = SampleRow::empty(RowKind::Interval, &name, iteration, cols);
        let span = (t - prev_t).as_secs_f64();
        let planned = deadline.min(t).saturating_sub(prev_t).as_secs_f64();
        if end.is_none() && span > planned * STALL_FACTOR + STALL_SLACK_S {
            row.notes.push(Note::Stalled {
                took_s: span,
                planned_s: planned,
            });
            stalled += 1;
            worst_stall = worst_stall.max(span);
        }
        for (knob, set, found) in crate::knobs::drifted() {
            let note = Note::KnobChanged {
                knob: knob.to_string(),
                set,
                found,
            };
            if !knobs_changed.contains(&note) {
                crate::errln!("tierbench run: warning: {note}");
                knobs_changed.push(note.clone());
            }
            row.notes.push(note);
        }
        row.t_s = t.as_secs_f64();
        row.span_s = span;
        row.counters = cols
            .counters
            .iter()
            .map(|id| id.delta(&prev, &snap))
            .collect();
        // Once the measured program has ended (without a server), its
        // memory is gone: the last census stands for it.
        let counted = server.as_ref().unwrap_or(&measured);
        if server.is_some() || end.is_none() {
            let cpu0 = thread_cpu_time();
            let c = GroupCensus::of_group(&sys, counted.pgid());
            census_cpu += thread_cpu_time().saturating_sub(cpu0);
            census_rows += 1;
            if c.procs > 0 {
                if let (Some(p), Some(share)) = (&push, c.share_in(&plan.fast)) {
                    if p.before_share > 0.0 {
                        reached.observe(row.t_s - p.at_s, share / p.before_share);
                    }
                }
                row.program = Some(cells(&c, cols, plan));
                // The summary's census is the program's memory while it
                // held it: a census of its teardown (workers gone, the
                // parent reaping them) would stand for a few KiB.
                peak_kib = peak_kib.max(c.total_kib());
                if c.total_kib() * 10 >= peak_kib * 9 {
                    last_census = c;
                }
            }
        }
        if let Some(note) = offline.poll() {
            crate::errln!("tierbench run: {name}: {note}");
            row.notes.push(note);
        }
        row.damos = in_force.damos()?;
        emit(sinks, &row)?;
        prev = snap;
        prev_t = t;
        // A program runs until it ends: no last tick.
        tick = next_tick(tick, plan.interval, t, Duration::MAX);
        if let Some(end) = end {
            break end;
        }
    };

    // The measured command has ended (or is ended now); then the server.
    let (status, ended, how) = match end {
        End::Exited(e) => (
            if e.code == 0 {
                Status::Ok
            } else {
                Status::Failed
            },
            e,
            ended_how(&e),
        ),
        End::TimedOut(t) => {
            let e = measured.stop(Duration::ZERO);
            (Status::Failed, e, format!("timed out after {t:?}"))
        }
        End::ServerEnded(se) => {
            let e = measured.stop(Duration::ZERO);
            let how = format!("server {} while its client ran", ended_how(&se));
            (Status::Failed, e, how)
        }
        End::Stopped => {
            let e = measured.stop(Duration::from_millis(500));
            (Status::Interrupted, e, "interrupted".into())
        }
    };
    let server_ended = server.as_mut().map(|s| s.stop(SERVER_GRACE));
    let output = read_output(&log);
    let mut cells = cells(&last_census, cols, plan);
    cells.wall_s = Some(ended.wall.as_secs_f64());
    cells.exit_code = Some(ended.code);
    cells.user_s = Some(ended.user_s);
    cells.sys_s = Some(ended.sys_s);
    // The counted program's peak: the server's when there is one.
    cells.max_rss_kib = Some(server_ended.unwrap_or(ended).max_rss_kib);
    if let Some(p) = &push {
        cells.pushed_kib = Some(p.kib);
        cells.returned_share = (p.kib > 0).then(|| {
            let back = last_census
                .kib_in(&plan.fast)
                .saturating_sub(p.after_fast_kib);
            back as f64 / p.kib as f64
        });
    }
    summary.status = status;
    match status {
        Status::Failed => notes.push(Note::ProgramFailed {
            how,
            tail: tail(&output, TAIL_LINES),
        }),
        Status::Interrupted => notes.push(Note::InterruptedWhile("the program ran")),
        _ => {}
    }
    if let (Some(spec), Status::Ok) = (&prog.score, status) {
        match spec.parse(&output) {
            Some(s) => {
                cells.score = Some(s.value);
                cells.score_unit = Some(s.unit);
            }
            None => {
                summary.status = Status::NoScore;
                notes.push(Note::NoScore {
                    parser: spec.source.clone(),
                    tail: tail(&output, TAIL_LINES),
                });
            }
        }
    }
    if census_rows > 0 {
        notes.push(Note::ProgramCensusCost {
            cpu_ms_per_row: census_cpu.as_secs_f64() * 1e3 / f64::from(census_rows),
            procs: last_census.procs,
        });
    }
    if stalled > 0 {
        notes.push(Note::StalledIntervals {
            rows: stalled,
            worst_s: worst_stall,
            planned_s: plan.interval.as_secs_f64(),
        });
    }
    notes.extend(knobs_changed);
    if offline.finish() {
        last = Snapshot::read(&sys, &nodes)?;
    }
    notes.extend(offline.end());
    summary.damos = in_force.damos()?;
    let anon: std::collections::BTreeMap<crate::topology::NodeId, u64> = cols
        .nodes
        .iter()
        .zip(&cells.anon_kib_on)
        .filter_map(|(n, k)| Some((*n, (*k)?)))
        .collect();
    summary.weight_error_pts = in_force.weight_error_pts(&policy.nodes, &anon);
    notes.append(&mut in_force.notes);
    notes.extend(in_force.cost_note());
    in_force.end()?;
    summary.t_s = ended.wall.as_secs_f64();
    summary.span_s = ended.wall.as_secs_f64();
    summary.counters = cols
        .counters
        .iter()
        .map(|id| id.delta(&first, &last))
        .collect();
    summary.promotion = push.is_some().then_some(reached);
    summary.program = Some(cells);
    summary.notes = notes;
    emit(sinks, &summary)?;
    Ok(VariantOutcome {
        summary,
        pin: None,
        vmstat_delta: last.global.delta(&first.global),
        eater_bytes: None,
    })
}

/// A variant that ended before its program ran: one summary row saying why.
fn ended_as(
    sinks: &mut [&mut dyn RunObserver],
    mut summary: SampleRow,
    status: Status,
    why: Note,
) -> anyhow::Result<VariantOutcome> {
    summary.status = status;
    summary.notes = vec![why];
    emit(sinks, &summary)?;
    Ok(VariantOutcome {
        summary,
        pin: None,
        vmstat_delta: Default::default(),
        eater_bytes: None,
    })
}

/// The cells a census fills.
fn cells(c: &GroupCensus, cols: &Columns, plan: &Plan) -> ProgramCells {
    ProgramCells {
        anon_kib_on: cols
            .nodes
            .iter()
            .map(|n| (c.procs > 0).then(|| c.kib_on.get(n).copied().unwrap_or(0)))
            .collect(),
        fast_share: c.share_in(&plan.fast),
        procs: (c.procs > 0).then_some(c.procs),
        ..ProgramCells::default()
    }
}

fn ended_how(e: &Ended) -> String {
    match e.signal {
        Some(s) => format!("killed by signal {s}"),
        None => format!("exited with {}", e.code),
    }
}

fn failed(how: String, log: &Path) -> Note {
    Note::ProgramFailed {
        how,
        tail: tail(&read_output(log), TAIL_LINES),
    }
}

/// The client's CPUs: those tierbench may use that the server does not,
/// or the server's own when there are no others.
fn client_cpus(server: &CpuSet) -> CpuSet {
    let others: CpuSet = crate::pin::current_affinity()
        .map(|all| all.iter().filter(|c| !server.contains(*c)).collect())
        .unwrap_or_default();
    if others.is_empty() {
        server.clone()
    } else {
        others
    }
}

/// Waits for the server to be ready. `Err(None)`: a signal stopped the
/// wait; `Err(Some(why))`: it ended or never got ready.
fn wait_ready(
    s: &mut Group,
    prog: &ProgramSpec,
    log: &Path,
    stop: &AtomicBool,
) -> Result<(), Option<String>> {
    let re = match &prog.ready {
        Some(Ready::Output(r)) => Some(regex::Regex::new(r).map_err(|e| Some(e.to_string()))?),
        _ => None,
    };
    let until = Instant::now() + prog.ready_timeout;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(None);
        }
        if let Some(e) = s.poll() {
            return Err(Some(format!(
                "server {} before it was ready",
                ended_how(&e)
            )));
        }
        let ready = match (&prog.ready, &re) {
            (Some(Ready::Port(p)), _) => std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], *p)),
                Duration::from_millis(200),
            )
            .is_ok(),
            (_, Some(re)) => re.is_match(&read_output(log)),
            // No readiness test: started is ready.
            _ => true,
        };
        if ready {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(Some(format!(
                "server not ready after {:?} (--ready-timeout)",
                prog.ready_timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `--push-to-slow-at` did.
struct Push {
    at_s: f64,
    /// Share of the program's memory on the fast tier just before.
    before_share: f64,
    /// KiB that left the fast tier, and what stayed on it.
    kib: u64,
    after_fast_kib: u64,
    note: Note,
}

impl Push {
    fn now(sys: &SysRoot, pgid: i32, plan: &Plan, at: Duration) -> Push {
        let before = GroupCensus::of_group(sys, pgid);
        let (not_moved, err) = census::migrate_group(sys, pgid, &plan.fast, &plan.slow);
        let after = GroupCensus::of_group(sys, pgid);
        let kib = before
            .kib_in(&plan.fast)
            .saturating_sub(after.kib_in(&plan.fast));
        let at_s = at.as_secs_f64();
        Push {
            at_s,
            before_share: before.share_in(&plan.fast).unwrap_or(0.0),
            kib,
            after_fast_kib: after.kib_in(&plan.fast),
            note: Note::Pushed {
                at_s,
                kib,
                not_moved_pages: not_moved,
                error: err.map(|e| e.to_string()),
            },
        }
    }
}
