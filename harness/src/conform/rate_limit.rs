//! The promotion rate limit as a second checked rule: in tiering mode,
//! `kernel.numa_balancing_promote_rate_limit_MBps` caps how fast pages are
//! promoted. One case first-touches a hot set larger than the limit admits
//! in the period on a lower-tier node and reads it from a top-tier CPU
//! under PREFERRED_MANY({exec})|NUMA_BALANCING, twice: with a low limit
//! and with the limit lifted. Promoted pages per interval (pgpromote_success)
//! must stay within [`rule::promotion_ceiling_pages`] while the candidates
//! (pgpromote_candidate) outgrow them, and the lifted run must promote more.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::case::{CaseResult, CaseSpec, CaseStatus};
use super::class::Machine;
use super::rule::{self, CasePolicy};
use crate::knobs::{Knob, KnobError};
use crate::sysfs::SysRoot;
use crate::telemetry::Snapshot;
use crate::topology::{NodeId, NodeSet};

/// The limit the kernel ships with (MB/s): "lifted".
pub const LIFTED_MBPS: u64 = 65536;

/// How the case is run.
#[derive(Debug, Clone)]
pub struct RateLimitSpec {
    pub limit_mbps: u64,
    pub size_bytes: usize,
    pub period: Duration,
    pub interval: Duration,
}

/// Where the case runs: a top-tier CPU node and a lower-tier page node.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub exec: NodeId,
    pub exec_cpu: u32,
    pub page: NodeId,
}

impl Placement {
    /// The first CPU node of the top tier and the first lower-tier node, or
    /// why the machine has none.
    pub fn find(machine: &Machine) -> Result<Placement, String> {
        let page = machine
            .ranks
            .iter()
            .find(|(_, r)| *r > 0)
            .map(|(n, _)| *n)
            .ok_or_else(|| {
                format!(
                    "needs a memory node below the top tier to promote from ({})",
                    machine.describe()
                )
            })?;
        let (exec, exec_cpu) = machine
            .cpu_of
            .iter()
            .find(|(n, _)| machine.toptier.contains(*n))
            .copied()
            .ok_or("needs a top-tier node with CPUs to promote into")?;
        Ok(Placement {
            exec,
            exec_cpu,
            page,
        })
    }
}

/// One row of `rate-limit.csv`: one interval of one of the two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    pub limit_mbps: u64,
    pub t_s: f64,
    pub span_s: f64,
    pub pgpromote_success: Option<u64>,
    pub pgpromote_candidate: Option<u64>,
    pub promoted_mb_per_s: Option<f64>,
    /// The most the rule allows in this interval.
    pub ceiling_pages: u64,
    pub within: Option<bool>,
}

/// One run: its rows and totals.
#[derive(Debug, Clone)]
pub struct RateRun {
    pub limit_mbps: u64,
    /// The node the pages started on.
    pub page: NodeId,
    pub rows: Vec<RateRow>,
    pub elapsed: Duration,
    pub promoted: Option<u64>,
    pub candidates: Option<u64>,
    pub result: CaseResult,
}

impl RateRun {
    pub fn ceiling(&self) -> u64 {
        rule::promotion_ceiling_pages(self.limit_mbps, self.elapsed)
    }
}

/// The two checks.
#[derive(Debug, Clone)]
pub struct RateVerdict {
    /// The limit held in every interval and overall, and candidates kept
    /// coming beyond what was promoted.
    pub held: Result<String, String>,
    /// The lifted run promoted more.
    pub faster: Result<String, String>,
}

fn mb(pages: u64) -> f64 {
    (pages * crate::buffer::BASE_PAGE as u64) as f64 / 1e6
}

pub fn judge(limited: &RateRun, lifted: &RateRun) -> RateVerdict {
    let held = match (limited.promoted, limited.candidates) {
        _ if limited.result.status != CaseStatus::Ok => {
            Err(format!("the case did not run: {}", limited.result.reason))
        }
        (None, _) => Err("the kernel has no pgpromote_success counter".into()),
        (Some(p), cand) => {
            let over: Vec<String> = limited
                .rows
                .iter()
                .filter(|r| r.within == Some(false))
                .map(|r| {
                    format!(
                        "{} pages in {:.2}s at t={:.2}s (ceiling {})",
                        r.pgpromote_success.unwrap_or(0),
                        r.span_s,
                        r.t_s,
                        r.ceiling_pages
                    )
                })
                .collect();
            let text = format!(
                "limit {} MB/s: promoted {p} pages ({:.1} MB) in {:.1}s, ceiling {} pages; {} candidates",
                limited.limit_mbps,
                mb(p),
                limited.elapsed.as_secs_f64(),
                limited.ceiling(),
                cand.map_or("no count of".into(), |c| c.to_string()),
            );
            let left = limited
                .result
                .per_node
                .get(&limited.page)
                .copied()
                .unwrap_or(0);
            if !over.is_empty() {
                Err(format!("{text}; over the ceiling: {}", over.join(", ")))
            } else if p > limited.ceiling() {
                Err(format!("{text}: over the ceiling overall"))
            } else if cand.is_some_and(|c| c <= p) {
                // Candidates arrive in scan passes, not evenly: what shows
                // the limit at work is that they outgrew what was admitted.
                Err(format!(
                    "{text}: candidates did not outgrow promotions, so the limit was never pressed"
                ))
            } else if left == 0 {
                Err(format!(
                    "{text}: every page was promoted, so the limit was never pressed (a larger hot set?)"
                ))
            } else {
                Ok(format!(
                    "{text}; {left} pages still on node {}",
                    limited.page
                ))
            }
        }
    };
    let faster = match (limited.promoted, lifted.promoted) {
        (Some(a), Some(b)) => {
            let text = format!(
                "lifted ({} MB/s): promoted {b} pages in {:.1}s vs {a} with the limit",
                lifted.limit_mbps,
                lifted.elapsed.as_secs_f64()
            );
            if b > a {
                Ok(text)
            } else {
                Err(format!("{text}: not faster"))
            }
        }
        _ => Err("the kernel has no pgpromote_success counter".into()),
    };
    RateVerdict { held, faster }
}

/// Runs the case once with the rate limit at `limit_mbps` (knobs set for
/// the run and restored after), sampling the promotion counters every
/// interval while the case's child process reads.
pub fn run_once(
    spec: &RateLimitSpec,
    limit_mbps: u64,
    at: Placement,
    sys: &SysRoot,
    state: &std::path::Path,
) -> anyhow::Result<RateRun> {
    let mut plan = super::mode_plan(sys, 2);
    plan.set(Knob::PromoteRateLimit, limit_mbps.to_string());
    let guard = plan
        .check(sys, state, true)
        .map_err(KnobError::into_anyhow)?
        .apply(sys, state)?;
    let case = CaseSpec {
        policy: CasePolicy::PreferredManyBalancing,
        mask: NodeSet::single(at.exec),
        exec_cpu: at.exec_cpu,
        page_node: at.page,
        size_bytes: spec.size_bytes,
        period_ms: spec.period.as_millis() as u64,
    };
    let none = NodeSet::new();
    let mut child = super::spawn_child(&case)?;
    let started = Instant::now();
    let first = Snapshot::read(sys, &none)?;
    let (mut prev, mut prev_t) = (first.clone(), Duration::ZERO);
    let mut rows = Vec::new();
    let status = loop {
        std::thread::sleep(spec.interval);
        let done = child.try_wait()?;
        let now = Snapshot::read(sys, &none)?;
        let t = started.elapsed();
        let span = t - prev_t;
        let delta = |name: &str| super::grew(name, &prev, &now);
        let success = delta("pgpromote_success");
        let ceiling = rule::promotion_ceiling_pages(limit_mbps, span);
        rows.push(RateRow {
            limit_mbps,
            t_s: t.as_secs_f64(),
            span_s: span.as_secs_f64(),
            pgpromote_success: success,
            pgpromote_candidate: delta("pgpromote_candidate"),
            promoted_mb_per_s: success.map(|p| mb(p) / span.as_secs_f64()),
            ceiling_pages: ceiling,
            within: success.map(|p| p <= ceiling),
        });
        (prev, prev_t) = (now, t);
        if let Some(status) = done {
            break status;
        }
    };
    let elapsed = started.elapsed();
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)?;
    guard.restore()?;
    let result = super::finish_child(status, &out, &mut child)?;
    let total = |name: &str| super::grew(name, &first, &prev);
    Ok(RateRun {
        limit_mbps,
        page: at.page,
        rows,
        elapsed,
        promoted: total("pgpromote_success"),
        candidates: total("pgpromote_candidate"),
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(limit: u64, secs: u64, promoted: u64, candidates: u64, rows: &[(f64, u64)]) -> RateRun {
        RateRun {
            limit_mbps: limit,
            page: 2,
            rows: rows
                .iter()
                .map(|(span, p)| {
                    let ceiling =
                        rule::promotion_ceiling_pages(limit, Duration::from_secs_f64(*span));
                    RateRow {
                        limit_mbps: limit,
                        t_s: 0.0,
                        span_s: *span,
                        pgpromote_success: Some(*p),
                        pgpromote_candidate: Some(candidates / rows.len() as u64),
                        promoted_mb_per_s: None,
                        ceiling_pages: ceiling,
                        within: Some(*p <= ceiling),
                    }
                })
                .collect(),
            elapsed: Duration::from_secs(secs),
            promoted: Some(promoted),
            candidates: Some(candidates),
            result: CaseResult {
                status: CaseStatus::Ok,
                reason: String::new(),
                per_node: BTreeMap::from([(0, promoted), (2, 16384 - promoted)]),
                pages: 16384,
            },
        }
    }

    #[test]
    fn a_held_limit_and_a_faster_lifted_run_pass() {
        let limited = run(4, 6, 6000, 20000, &[(0.5, 1500), (0.5, 1000)]);
        let lifted = run(LIFTED_MBPS, 6, 16384, 16384, &[(0.5, 16384)]);
        let v = judge(&limited, &lifted);
        assert!(v.held.is_ok(), "{:?}", v.held);
        assert!(v.faster.is_ok(), "{:?}", v.faster);
    }

    #[test]
    fn an_interval_over_the_ceiling_or_an_unpressed_limit_fails() {
        let lifted = run(LIFTED_MBPS, 6, 16384, 16384, &[]);
        let burst = run(4, 6, 6000, 20000, &[(0.5, 2049)]);
        let e = judge(&burst, &lifted).held.unwrap_err();
        assert!(e.contains("over the ceiling: 2049 pages"), "{e}");
        let unpressed = run(1000, 6, 16384, 20000, &[(0.5, 500), (0.5, 500)]);
        let e = judge(&unpressed, &lifted).held.unwrap_err();
        assert!(e.contains("every page was promoted"), "{e}");
        let quiet = run(4, 6, 3000, 3000, &[(0.5, 1500)]);
        let e = judge(&quiet, &lifted).held.unwrap_err();
        assert!(e.contains("candidates did not outgrow"), "{e}");
        let slow = run(LIFTED_MBPS, 6, 100, 100, &[]);
        assert!(judge(&burst, &slow).faster.is_err());
    }
}
