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
pub mod rule;
pub mod tap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::report::table::Table;
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::{NodeId, NodeSet, Topology};
use case::{CaseResult, CaseSpec, CaseStatus};
use rule::{BalancingMode, CasePolicy, Expect, Rule, Situation};

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
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table at the end, for a terminal.
    Table,
    /// TAP as the cases finish, for kselftest runners and CI.
    Tap,
}

/// The nodes the matrix is built from.
#[derive(Debug, Clone)]
struct Cast {
    a: NodeId,
    b: NodeId,
    slow: NodeId,
    cpu_of: Vec<(NodeId, u32)>,
    toptier: NodeSet,
}

impl Cast {
    fn find(topo: &Topology) -> Result<Cast, String> {
        let cpu_nodes: Vec<&crate::topology::Node> =
            topo.nodes.iter().filter(|n| !n.is_cpuless()).collect();
        if cpu_nodes.len() < 2 {
            return Err(format!(
                "needs two NUMA nodes with CPUs, this machine has {} (use tierbench vm --host qemu-2socket-cxl)",
                cpu_nodes.len()
            ));
        }
        let Some(slow) = topo.roles.slow.first() else {
            return Err("needs a slow memory node, this machine has none (use tierbench vm --host qemu-2socket-cxl)".into());
        };
        let cpu_of = cpu_nodes
            .iter()
            .map(|n| (n.id, n.cpus.first().expect("node with CPUs")))
            .collect();
        Ok(Cast {
            a: cpu_nodes[0].id,
            b: cpu_nodes[1].id,
            slow,
            cpu_of,
            toptier: topo.kernel_toptier(),
        })
    }
    fn cpu(&self, node: NodeId) -> u32 {
        self.cpu_of
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, c)| *c)
            .expect("CPU node")
    }
}

/// One case of the matrix.
#[derive(Debug, Clone)]
struct Case {
    id: usize,
    mode: BalancingMode,
    policy: CasePolicy,
    mask: NodeSet,
    exec: NodeId,
    page: NodeId,
}

fn matrix(cast: &Cast, modes: &[u8]) -> Vec<Case> {
    let masks = [
        NodeSet::single(cast.a),
        NodeSet::from_iter([cast.a, cast.slow]),
    ];
    let mut out = Vec::new();
    for &m in modes {
        for policy in [
            CasePolicy::PreferredManyBalancing,
            CasePolicy::BindBalancing,
            CasePolicy::Default,
        ] {
            let masks: Vec<NodeSet> = if policy == CasePolicy::Default {
                vec![NodeSet::new()]
            } else {
                masks.to_vec()
            };
            for mask in masks {
                for exec in [cast.a, cast.b] {
                    for page in [cast.slow, cast.a, cast.b] {
                        out.push(Case {
                            id: out.len() + 1,
                            mode: BalancingMode(m),
                            policy,
                            mask: mask.clone(),
                            exec,
                            page,
                        });
                    }
                }
            }
        }
    }
    out
}

/// One row of `conform.csv`, written and read back as this type; the
/// header is derived from these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConformRow {
    pub case: usize,
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

fn run_child(spec: &CaseSpec) -> anyhow::Result<CaseResult> {
    let exe = std::env::current_exe().context("locating tierbench")?;
    let out = Command::new(exe)
        .arg("conform-case")
        .arg(serde_json::to_string(spec)?)
        .output()
        .context("starting a conform-case process")?;
    if !out.status.success() {
        anyhow::bail!(
            "conform-case failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the case result")
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
    let cast = match Cast::find(&topo) {
        Ok(c) => c,
        Err(why) => return Ok(skip(req.output, &why)),
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(skip(
            req.output,
            "needs root to set kernel.numa_balancing (run as root)",
        ));
    }
    let sys = SysRoot::live();
    let state = knobs::default_state_file();
    let stop = crate::interrupt::install()?;
    std::fs::create_dir_all(&req.out).with_context(|| format!("creating {}", req.out.display()))?;
    let csv_path = req.out.join("conform.csv");
    let mut csv = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("creating {}", csv_path.display()))?;

    let cases = matrix(&cast, &req.modes);
    let kernel = sys
        .read_opt("/proc/sys/kernel/osrelease")
        .unwrap_or_default();
    if !req.quiet {
        eprintln!(
            "conform: {} cases on {kernel}: A = node {}, B = node {}, slow = node {}, top tier {}; {:?} per case",
            cases.len(), cast.a, cast.b, cast.slow, cast.toptier, req.period
        );
    }
    if req.output == Output::Tap {
        println!("{}", tap::header(cases.len()));
    }
    let mut rows = Vec::new();
    for &mode in &req.modes {
        let mut plan = KnobPlan::default();
        plan.set(Knob::NumaBalancing, mode.to_string());
        // An eager scanner, so its first pass falls inside the period.
        for (k, v) in [("scan_delay_ms", "0"), ("scan_period_min_ms", "100")] {
            let knob = Knob::Numab(k.into());
            if sys.exists(&knob.path()) {
                plan.set(knob, v);
            }
        }
        let guard = plan
            .check(&sys, &state, true)
            .map_err(KnobError::into_anyhow)?
            .apply(&sys, &state)?;
        for case in cases.iter().filter(|c| c.mode.0 == mode) {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let row = run_one(case, &cast, &req, &sys, &topo)?;
            csv.serialize(&row)?;
            csv.flush()?;
            if !req.quiet {
                eprintln!(
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
                println!("{}", tap::point(rows.len() + 1, &row));
            }
            rows.push(row);
        }
        guard.restore()?;
    }
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        if req.output == Output::Tap {
            println!("Bail out! interrupted after {} cases", rows.len());
        }
        return Err(crate::error::Interrupted.into());
    }
    match req.output {
        Output::Table => print_report(&rows, &kernel, &csv_path),
        Output::Tap => println!("{}", tap::comment(&summary(&rows, &kernel, &csv_path))),
    }
    Ok(exit_code(&rows))
}

fn run_one(
    case: &Case,
    cast: &Cast,
    req: &ConformRequest,
    sys: &SysRoot,
    topo: &Topology,
) -> anyhow::Result<ConformRow> {
    let spec = CaseSpec {
        policy: case.policy,
        mask: case.mask.clone(),
        exec_cpu: cast.cpu(case.exec),
        page_node: case.page,
        size_bytes: req.size_bytes,
        period_ms: req.period.as_millis() as u64,
    };
    let nodes = topo.memory_nodes();
    let before = Snapshot::read(sys, &nodes)?;
    let res = run_child(&spec)?;
    let after = Snapshot::read(sys, &nodes)?;
    let delta = |name: &str| {
        Some(
            after
                .global
                .get(name)?
                .saturating_sub(before.global.get(name)?),
        )
    };
    let situation = Situation {
        policy: case.policy,
        mask: &case.mask,
        exec: case.exec,
        page: case.page,
        mode: case.mode,
        toptier: &cast.toptier,
    };
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
        numa_balancing: case.mode.0,
        policy: case.policy.to_string(),
        mask: if case.mask.is_empty() {
            "-".into()
        } else {
            case.mask.to_string()
        },
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

fn print_report(rows: &[ConformRow], kernel: &str, csv_path: &Path) {
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
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
            opt(r.numa_hint_faults),
            opt(r.numa_pages_migrated),
            r.verdict.to_string(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", t.render());
    let _ = writeln!(out, "\n{}", summary(rows, kernel, csv_path));
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
fn skip(output: Output, why: &str) -> ExitCode {
    match output {
        Output::Table => println!("conform: SKIP: {why}"),
        Output::Tap => println!("{}", tap::skip_all(why)),
    }
    ExitCode::from(EXIT_SKIP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_covers_every_combination_once() {
        let cast = Cast {
            a: 0,
            b: 1,
            slow: 2,
            cpu_of: vec![(0, 0), (1, 1)],
            toptier: "0-1".parse().unwrap(),
        };
        let m = matrix(&cast, &[2, 3]);
        // (2 policies x 2 masks + 1 control) x 2 exec x 3 page x 2 modes
        assert_eq!(m.len(), 60);
        let separating: Vec<&Case> = m
            .iter()
            .filter(|c| {
                let s = Situation {
                    policy: c.policy,
                    mask: &c.mask,
                    exec: c.exec,
                    page: c.page,
                    mode: c.mode,
                    toptier: &cast.toptier,
                };
                rule::expected(Rule::Merged, &s) != rule::expected(Rule::FirstVersion, &s)
            })
            .collect();
        assert_eq!(separating.len(), 2, "one reviewed case per mode");
    }

    #[test]
    fn conform_csv_reads_back_as_written() {
        let row = ConformRow {
            case: 7,
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
            mode: BalancingMode(2),
            policy: CasePolicy::Default,
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
