//! `tierbench conform`: measures where NUMA balancing moves pages for each
//! policy x mask x executing node x page node x numa_balancing mode, and
//! checks the result against the rule derived in [`rule`] (as merged, and
//! as first proposed in the seed patch).
//!
//! Needs two nodes with CPUs (A, B) and a slow node; on the emulated
//! `qemu-2socket-cxl` machine: `tierbench vm --host qemu-2socket-cxl
//! --kernel K -- conform`. Each case runs in a child process
//! ([`case`]); knobs are set per mode and restored after.

pub mod case;
pub mod class;
pub mod rate_limit;
pub mod rule;
pub mod tap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::report::csv::TypedSink;
use crate::report::table::Table;
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::{NodeId, NodeSet, Topology};
use case::{CaseResult, CaseSpec, CaseStatus};
use class::{Class, Coverage, Machine};
use rule::{Expect, Rule, Situation};

/// kselftest's exit code for a skipped test.
pub const EXIT_SKIP: u8 = 4;

#[derive(Debug, Clone)]
pub struct ConformRequest {
    pub output: Output,
    pub modes: Vec<u8>,
    pub size_bytes: usize,
    pub period: Duration,
    pub out: PathBuf,
    pub quiet: bool,
    /// Print the cases and the coverage without running anything.
    pub list: bool,
    /// The rate-limit check, when asked for and a tiering mode is tested.
    pub rate_limit: Option<rate_limit::RateLimitSpec>,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table at the end, for a terminal.
    Table,
    /// TAP as the cases finish, for kselftest runners and CI.
    Tap,
}

/// One case of the matrix: a class with real nodes.
#[derive(Debug, Clone)]
struct Case {
    id: usize,
    class: Class,
    mask: NodeSet,
    exec: NodeId,
    page: NodeId,
}

fn cases(coverage: &Coverage) -> Vec<Case> {
    coverage
        .cases
        .iter()
        .enumerate()
        .map(|(i, (class, inst))| Case {
            id: i + 1,
            class: *class,
            mask: inst.mask.clone(),
            exec: inst.exec,
            page: inst.page,
        })
        .collect()
}

/// One row of `conform.csv`, written and read back as this type; the
/// header is derived from these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConformRow {
    pub case: usize,
    /// The class of the rule's inputs this case instantiates.
    pub class: String,
    pub numa_balancing: u8,
    pub policy: String,
    pub mask: String,
    pub exec_node: NodeId,
    pub page_node: NodeId,
    pub expect_merged: String,
    pub expect_first_version: String,
    pub measured: String,
    pub pages: u64,
    pub pages_on_exec: u64,
    pub pages_on_page_node: u64,
    pub numa_hint_faults: Option<u64>,
    pub numa_pages_migrated: Option<u64>,
    pub pgpromote_success: Option<u64>,
    pub verdict: Verdict,
    pub notes: String,
}

/// How a case's measured outcome relates to the two rules. The exit code
/// of `conform` follows from these, in [`exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "match (rules agree)")]
    RulesAgree,
    #[serde(rename = "matches merged")]
    MatchesMerged,
    #[serde(rename = "matches first version")]
    MatchesFirstVersion,
    #[serde(rename = "matches neither")]
    MatchesNeither,
    #[serde(rename = "unsupported")]
    Unsupported,
    #[serde(rename = "setup failed")]
    SetupFailed,
}

impl Verdict {
    /// The kernel did not do what the merged rule says (or the case could
    /// not be set up to tell).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::MatchesFirstVersion | Verdict::MatchesNeither | Verdict::SetupFailed
        )
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::RulesAgree => "match (rules agree)",
            Verdict::MatchesMerged => "matches merged",
            Verdict::MatchesFirstVersion => "matches first version",
            Verdict::MatchesNeither => "matches neither",
            Verdict::Unsupported => "unsupported",
            Verdict::SetupFailed => "setup failed",
        })
    }
}

/// kselftest's codes: 0 every supported case matches the merged rule, 1
/// some do not.
pub fn exit_code(rows: &[ConformRow]) -> ExitCode {
    if rows.iter().any(|r| r.verdict.is_failure()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What the census says happened: at least 90% of the pages in one place.
fn measured(res: &CaseResult, case: &Case) -> Option<Expect> {
    let share =
        |n: NodeId| res.per_node.get(&n).copied().unwrap_or(0) as f64 / res.pages.max(1) as f64;
    if share(case.page) >= 0.9 {
        Some(Expect::Stay)
    } else {
        res.per_node
            .keys()
            .find(|n| share(**n) >= 0.9)
            .map(|n| Expect::MigrateTo(*n))
    }
}

fn describe(res: &CaseResult, case: &Case, got: Option<Expect>) -> String {
    match got {
        Some(Expect::Stay) => "stayed".into(),
        Some(Expect::MigrateTo(n)) => format!("migrated->{n}"),
        None => {
            let on_exec = res.per_node.get(&case.exec).copied().unwrap_or(0);
            format!(
                "mixed ({:.0}% on exec node)",
                100.0 * on_exec as f64 / res.pages.max(1) as f64
            )
        }
    }
}

fn verdict(got: Option<Expect>, merged: Expect, first: Expect) -> Verdict {
    match (got == Some(merged), got == Some(first)) {
        (true, true) => Verdict::RulesAgree,
        (true, false) => Verdict::MatchesMerged,
        (false, true) => Verdict::MatchesFirstVersion,
        (false, false) => Verdict::MatchesNeither,
    }
}

/// How much the global vmstat counter `name` grew from `before` to
/// `after`; `None` when this kernel lacks it.
fn grew(name: &str, before: &Snapshot, after: &Snapshot) -> Option<u64> {
    Some(
        after
            .global
            .get(name)?
            .saturating_sub(before.global.get(name)?),
    )
}

/// A count for a terminal table: `-` when absent.
fn or_dash(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Starts a case in a process of its own; its result comes on stdout.
fn spawn_child(spec: &CaseSpec) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("locating tierbench")?;
    Command::new(exe)
        .arg("conform-case")
        .arg(serde_json::to_string(spec)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a conform-case process")
}

/// The result of a case process that ended with `status`, its stdout read.
fn finish_child(
    status: std::process::ExitStatus,
    stdout: &str,
    child: &mut std::process::Child,
) -> anyhow::Result<CaseResult> {
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        anyhow::bail!("conform-case failed: {}", err.trim());
    }
    serde_json::from_str(stdout).context("reading the case result")
}

fn run_child(spec: &CaseSpec) -> anyhow::Result<CaseResult> {
    let mut child = spawn_child(spec)?;
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out)?;
    }
    let status = child.wait()?;
    finish_child(status, &out, &mut child)
}

/// The knobs of one numa_balancing mode: the mode, and an eager scanner so
/// its first pass falls inside a case's period.
fn mode_plan(sys: &SysRoot, mode: u8) -> KnobPlan {
    let mut plan = KnobPlan::default();
    plan.set(Knob::NumaBalancing, mode.to_string());
    for (k, v) in [("scan_delay_ms", "0"), ("scan_period_min_ms", "100")] {
        let knob = Knob::Numab(k.into());
        if sys.exists(&knob.path()) {
            plan.set(knob, v);
        }
    }
    plan
}

/// What the rate-limit check came to: its two verdicts, or why it could
/// not run here.
enum RateOutcome {
    /// The verdicts, the CSV, and the intervals as a table.
    Judged(rate_limit::RateVerdict, PathBuf, String),
    Skipped(String),
}

impl RateOutcome {
    fn failed(&self) -> bool {
        matches!(self, RateOutcome::Judged(v, ..) if v.held.is_err() || v.faster.is_err())
    }
    fn summary(&self) -> String {
        let line = |r: &Result<String, String>| match r {
            Ok(t) => format!("held: {t}"),
            Err(t) => format!("FAILED: {t}"),
        };
        match self {
            RateOutcome::Skipped(why) => format!("rate limit: skipped: {why}"),
            RateOutcome::Judged(v, csv, _) => format!(
                "rate limit: {}\nrate limit lifted: {}\ncsv: {}",
                line(&v.held),
                match &v.faster {
                    Ok(t) => format!("faster: {t}"),
                    Err(t) => format!("FAILED: {t}"),
                },
                csv.display()
            ),
        }
    }
}

/// The promotion rate limit: a low limit, then lifted, in tiering mode;
/// rows to rate-limit.csv, two TAP points after the `done` matrix points.
fn rate_limit_check(
    spec: &rate_limit::RateLimitSpec,
    machine: &Machine,
    sys: &SysRoot,
    state: &Path,
    req: &ConformRequest,
    done: usize,
    interrupted: &dyn Fn() -> bool,
) -> anyhow::Result<RateOutcome> {
    let names = [
        format!("rate limit {} MB/s holds", spec.limit_mbps),
        "rate limit lifted promotes faster".to_string(),
    ];
    let skipped = |why: String| {
        if req.output == Output::Tap {
            for (i, n) in names.iter().enumerate() {
                crate::outln!(
                    "{}",
                    tap::check(done + i + 1, n, &Ok(String::new()), Some(&why))
                )?;
            }
        }
        Ok(RateOutcome::Skipped(why))
    };
    let at = match rate_limit::Placement::find(machine) {
        Ok(at) => at,
        Err(why) => return skipped(why),
    };
    if !sys.exists(&Knob::PromoteRateLimit.path()) {
        return skipped(format!(
            "this kernel has no {} (added in 6.0)",
            Knob::PromoteRateLimit.path()
        ));
    }
    if !req.quiet {
        crate::errln!(
            "conform: rate limit: {} MiB first-touched on node {}, read from CPU {} (node {}) for {:?}, at {} MB/s then lifted",
            spec.size_bytes >> 20,
            at.page,
            at.exec_cpu,
            at.exec,
            spec.period,
            spec.limit_mbps
        );
    }
    let limited = rate_limit::run_once(spec, spec.limit_mbps, at, sys, state)?;
    if interrupted() {
        return Err(crate::error::Interrupted.into());
    }
    let lifted = rate_limit::run_once(spec, rate_limit::LIFTED_MBPS, at, sys, state)?;
    let path = req.out.join("rate-limit.csv");
    let mut csv = TypedSink::create(&path)?;
    for row in limited.rows.iter().chain(&lifted.rows) {
        csv.push(row)?;
    }
    let verdict = rate_limit::judge(&limited, &lifted);
    if req.output == Output::Tap {
        for (i, (n, r)) in names
            .iter()
            .zip([&verdict.held, &verdict.faster])
            .enumerate()
        {
            crate::outln!("{}", tap::check(done + i + 1, n, r, None))?;
        }
    }
    Ok(RateOutcome::Judged(
        verdict,
        path,
        rate_table(&limited, &lifted),
    ))
}

fn rate_table(limited: &rate_limit::RateRun, lifted: &rate_limit::RateRun) -> String {
    let mut t = Table::new([
        "limit MB/s",
        "t s",
        "promoted",
        "candidates",
        "MB/s",
        "ceiling",
        "within",
    ]);
    for r in limited.rows.iter().chain(&lifted.rows) {
        t.push([
            r.limit_mbps.to_string(),
            format!("{:.2}", r.t_s),
            or_dash(r.pgpromote_success),
            or_dash(r.pgpromote_candidate),
            r.promoted_mb_per_s
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.ceiling_pages.to_string(),
            r.within
                .map_or("-", |w| if w { "yes" } else { "NO" })
                .to_string(),
        ]);
    }
    t.render()
}

/// Bad options are refused before anything else, on any machine.
fn check(req: &ConformRequest) -> Result<(), crate::error::InputError> {
    let bad = |m: String| crate::error::InputError::new(m);
    if let Some(m) = req.modes.iter().find(|m| !matches!(m, 1..=3)) {
        return Err(bad(format!(
            "--modes: {m} is not a numa_balancing mode with scanning (1, 2 or 3)"
        )));
    }
    if let Some(m) = req
        .modes
        .iter()
        .enumerate()
        .find_map(|(i, m)| req.modes[..i].contains(m).then_some(m))
    {
        return Err(bad(format!("--modes names mode {m} twice: give each once")));
    }
    if req.size_bytes < crate::buffer::BASE_PAGE {
        return Err(bad(format!(
            "--size {} is less than one page: give at least 4K, e.g. 2M",
            req.size_bytes
        )));
    }
    if let Some(r) = &req.rate_limit {
        let pages = (r.size_bytes / crate::buffer::BASE_PAGE) as u64;
        let admitted = rule::promotion_ceiling_pages(r.limit_mbps, r.period);
        if r.period < Duration::from_secs(1) {
            return Err(bad(format!(
                "--rate-limit-period {:?} is shorter than the kernel's one-second rate window: give e.g. 6s",
                r.period
            )));
        }
        if pages <= admitted {
            return Err(bad(format!(
                "--rate-limit {} MB/s admits {admitted} pages in --rate-limit-period {:?}, and the \
                 hot set (--rate-limit-size) has only {pages}: the limit would never be pressed; \
                 give a larger size or a lower limit",
                r.limit_mbps, r.period
            )));
        }
    }
    if req.period < Duration::from_millis(100) {
        return Err(bad(format!(
            "--period {:?} is shorter than one scan period (100ms): give e.g. 2s",
            req.period
        )));
    }
    Ok(())
}

pub fn run(req: ConformRequest) -> anyhow::Result<ExitCode> {
    check(&req)?;
    let topo = Topology::discover()?;
    let machine = Machine::of(&topo);
    let coverage = class::cover(&machine, &req.modes);
    let cases = cases(&coverage);
    if req.list {
        print_list(&cases, &coverage, &machine);
        return Ok(ExitCode::SUCCESS);
    }
    if !coverage.can_move_pages() {
        return Ok(skip(
            req.output,
            &format!(
                "no class where a page can move is expressible here ({}): every one needs a \
                 second memory node (use tierbench vm --host qemu-4node-3tier)",
                machine.describe()
            ),
        )?);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(skip(
            req.output,
            "needs root to set kernel.numa_balancing (run as root)",
        )?);
    }
    let sys = SysRoot::live();
    let state = knobs::default_state_file();
    let stop = crate::interrupt::install()?;
    std::fs::create_dir_all(&req.out).with_context(|| format!("creating {}", req.out.display()))?;
    let csv_path = req.out.join("conform.csv");
    let mut csv = TypedSink::create(&csv_path)?;

    let kernel = sys
        .read_opt("/proc/sys/kernel/osrelease")
        .unwrap_or_default();
    if !req.quiet {
        crate::errln!(
            "conform: {} cases on {kernel} ({}); {:?} per case",
            cases.len(),
            machine.describe(),
            req.period
        );
    }
    let rate_planned = req.rate_limit.is_some() && req.modes.iter().any(|m| m & 2 != 0);
    if req.output == Output::Tap {
        crate::outln!(
            "{}",
            tap::header(cases.len() + if rate_planned { 2 } else { 0 })
        )?;
    }
    let mut rows = Vec::new();
    for &mode in &req.modes {
        let guard = mode_plan(&sys, mode)
            .check(&sys, &state, true)
            .map_err(KnobError::into_anyhow)?
            .apply(&sys, &state)?;
        for case in cases.iter().filter(|c| c.class.mode.0 == mode) {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let row = run_one(case, &machine, &req, &sys, &topo)?;
            csv.push(&row)?;
            if !req.quiet {
                crate::errln!(
                    "  case {:>2} nb={} {:<24} mask={:<4} exec={} page={}: {:<12} {}",
                    row.case,
                    row.numa_balancing,
                    row.policy,
                    row.mask,
                    row.exec_node,
                    row.page_node,
                    row.measured,
                    row.verdict
                );
            }
            if req.output == Output::Tap {
                crate::outln!("{}", tap::point(rows.len() + 1, &row))?;
            }
            rows.push(row);
        }
        guard.restore()?;
    }
    let interrupted = || stop.load(std::sync::atomic::Ordering::SeqCst);
    let rate = match &req.rate_limit {
        Some(spec) if rate_planned && !interrupted() => Some(rate_limit_check(
            spec,
            &machine,
            &sys,
            &state,
            &req,
            rows.len(),
            &interrupted,
        )?),
        _ => None,
    };
    if interrupted() {
        if req.output == Output::Tap {
            crate::outln!("Bail out! interrupted after {} cases", rows.len())?;
        }
        return Err(crate::error::Interrupted.into());
    }
    let mut closing = format!(
        "{}\n{}",
        summary(&rows, &kernel, &csv_path),
        coverage.summary(&machine)
    );
    if let Some(r) = &rate {
        closing.push_str(&format!("\n{}", r.summary()));
    }
    match req.output {
        Output::Table => {
            let rate_rows = match &rate {
                Some(RateOutcome::Judged(_, _, table)) => Some(table.as_str()),
                _ => None,
            };
            print_report(&rows, rate_rows, &closing)
        }
        Output::Tap => crate::outln!("{}", tap::comment(&closing))?,
    }
    let rate_failed = rate.as_ref().is_some_and(RateOutcome::failed);
    if rate_failed {
        return Ok(ExitCode::FAILURE);
    }
    Ok(exit_code(&rows))
}

fn run_one(
    case: &Case,
    machine: &Machine,
    req: &ConformRequest,
    sys: &SysRoot,
    topo: &Topology,
) -> anyhow::Result<ConformRow> {
    let spec = CaseSpec {
        policy: case.class.policy,
        mask: case.mask.clone(),
        exec_cpu: machine.cpu(case.exec).expect("an executing node has CPUs"),
        page_node: case.page,
        size_bytes: req.size_bytes,
        period_ms: req.period.as_millis() as u64,
    };
    let nodes = topo.memory_nodes();
    let before = Snapshot::read(sys, &nodes)?;
    let res = run_child(&spec)?;
    let after = Snapshot::read(sys, &nodes)?;
    let delta = |name: &str| grew(name, &before, &after);
    let situation = situation(case, machine);
    let merged = rule::expected(Rule::Merged, &situation);
    let first = rule::expected(Rule::FirstVersion, &situation);
    let (measured_s, verdict_s) = match res.status {
        CaseStatus::Ok => {
            let got = measured(&res, case);
            (describe(&res, case, got), verdict(got, merged, first))
        }
        CaseStatus::Unsupported => ("unsupported".into(), Verdict::Unsupported),
        CaseStatus::SetupFailed => ("-".into(), Verdict::SetupFailed),
    };
    Ok(ConformRow {
        case: case.id,
        class: case.class.to_string(),
        numa_balancing: case.class.mode.0,
        policy: case.class.policy.to_string(),
        mask: mask_text(&case.mask),
        exec_node: case.exec,
        page_node: case.page,
        expect_merged: merged.to_string(),
        expect_first_version: first.to_string(),
        measured: measured_s,
        pages: res.pages,
        pages_on_exec: res.per_node.get(&case.exec).copied().unwrap_or(0),
        pages_on_page_node: res.per_node.get(&case.page).copied().unwrap_or(0),
        numa_hint_faults: delta("numa_hint_faults"),
        numa_pages_migrated: delta("numa_pages_migrated"),
        pgpromote_success: delta("pgpromote_success"),
        verdict: verdict_s,
        notes: res.reason,
    })
}

fn print_report(rows: &[ConformRow], rate_rows: Option<&str>, closing: &str) {
    let mut t = Table::new([
        "case",
        "nb",
        "policy",
        "mask",
        "exec",
        "page",
        "merged",
        "first version",
        "measured",
        "hint faults",
        "migrated",
        "verdict",
    ]);
    for r in rows {
        t.push([
            r.case.to_string(),
            r.numa_balancing.to_string(),
            r.policy.clone(),
            r.mask.clone(),
            r.exec_node.to_string(),
            r.page_node.to_string(),
            r.expect_merged.clone(),
            r.expect_first_version.clone(),
            r.measured.clone(),
            or_dash(r.numa_hint_faults),
            or_dash(r.numa_pages_migrated),
            r.verdict.to_string(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", t.render());
    if let Some(rate) = rate_rows {
        let _ = write!(out, "\npromotion rate limit, per interval:\n{rate}");
    }
    let _ = writeln!(out, "\n{closing}");
}

/// `--list`: the cases this machine would run and the classes it cannot
/// express, without running anything.
fn print_list(cases: &[Case], coverage: &Coverage, machine: &Machine) {
    let mut t = Table::new([
        "case",
        "class",
        "mask",
        "exec",
        "page",
        "merged",
        "first version",
    ]);
    for c in cases {
        let s = situation(c, machine);
        t.push([
            c.id.to_string(),
            c.class.to_string(),
            mask_text(&c.mask),
            c.exec.to_string(),
            c.page.to_string(),
            rule::expected(Rule::Merged, &s).to_string(),
            rule::expected(Rule::FirstVersion, &s).to_string(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", t.render());
    let _ = writeln!(out, "\n{}", coverage.summary(machine));
    for (class, need) in &coverage.missing {
        let _ = writeln!(out, "  not expressible: {class}: needs {need}");
    }
}

fn situation<'a>(c: &'a Case, machine: &'a Machine) -> Situation<'a> {
    Situation {
        policy: c.class.policy,
        mask: &c.mask,
        exec: c.exec,
        page: c.page,
        mode: c.class.mode,
        toptier: &machine.toptier,
    }
}

fn mask_text(mask: &NodeSet) -> String {
    if mask.is_empty() {
        "-".into()
    } else {
        mask.to_string()
    }
}

/// The closing lines: how many cases matched which rule, and the CSV.
fn summary(rows: &[ConformRow], kernel: &str, csv_path: &Path) -> String {
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let agree = count(Verdict::RulesAgree);
    let merged_only = count(Verdict::MatchesMerged);
    let unsupported = count(Verdict::Unsupported);
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict.is_failure())
        .map(|r| format!("{} ({})", r.case, r.verdict))
        .collect();
    format!(
        "conform on {kernel}: {} cases: {} match the merged rule ({} of them only the merged rule), {} unsupported, {} do not match{}\ncsv: {}",
        rows.len(),
        agree + merged_only,
        merged_only,
        unsupported,
        bad.len(),
        if bad.is_empty() { String::new() } else { format!(": cases {}", bad.join(", ")) },
        csv_path.display()
    )
}

/// The machine cannot run the matrix: kselftest's skip.
fn skip(output: Output, why: &str) -> std::io::Result<ExitCode> {
    match output {
        Output::Table => crate::outln!("conform: SKIP: {why}")?,
        Output::Tap => crate::outln!("{}", tap::skip_all(why))?,
    }
    Ok(ExitCode::from(EXIT_SKIP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conform_csv_reads_back_as_written() {
        let row = ConformRow {
            case: 7,
            class: "nb=2 preferred-many+balancing mask=top exec-in page-out page=lower1".into(),
            numa_balancing: 2,
            policy: "preferred-many+balancing".into(),
            mask: "0".into(),
            exec_node: 0,
            page_node: 2,
            expect_merged: "migrate->0".into(),
            expect_first_version: "migrate->0".into(),
            measured: "migrated->0".into(),
            pages: 512,
            pages_on_exec: 512,
            pages_on_page_node: 0,
            numa_hint_faults: Some(512),
            numa_pages_migrated: None,
            pgpromote_success: Some(512),
            verdict: Verdict::RulesAgree,
            notes: String::new(),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.contains(",match (rules agree),"), "{text}");
        let back: ConformRow = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn census_to_outcome() {
        let case = Case {
            id: 1,
            class: class::all(&[2], 1)[0],
            mask: NodeSet::new(),
            exec: 0,
            page: 2,
        };
        let res = |v: Vec<(u32, u64)>| CaseResult {
            status: CaseStatus::Ok,
            reason: String::new(),
            pages: v.iter().map(|x| x.1).sum(),
            per_node: v.into_iter().collect(),
        };
        assert_eq!(measured(&res(vec![(2, 512)]), &case), Some(Expect::Stay));
        assert_eq!(
            measured(&res(vec![(0, 500), (2, 12)]), &case),
            Some(Expect::MigrateTo(0))
        );
        assert_eq!(measured(&res(vec![(0, 256), (2, 256)]), &case), None);
        assert_eq!(
            verdict(Some(Expect::Stay), Expect::Stay, Expect::MigrateTo(1)),
            Verdict::MatchesMerged
        );
    }
}
