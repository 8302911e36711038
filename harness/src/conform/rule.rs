//! The kernel's NUMA-fault migration rule, written once, from the source,
//! so each conformance case's expected outcome is derived, not typed in.
//!
//! A page is migrated by NUMA balancing in two steps:
//!
//! 1. Scanning (mm/mprotect.c, change_pte_range): the scanner makes pages
//!    PROT_NONE only in VMAs whose policy has MPOL_F_MOF (every policy in
//!    this matrix: the task default, and BIND/PREFERRED_MANY with
//!    MPOL_F_NUMA_BALANCING). With numa_balancing=2 (MEMORY_TIERING alone)
//!    pages on top-tier nodes are skipped; with the NORMAL bit (1 or 3)
//!    every page is scanned.
//! 2. The hint fault (mm/mempolicy.c, mpol_misplaced): with MPOL_F_MORON the
//!    only possible target is the executing node. The task default policy
//!    (MPOL_PREFERRED of the local node, MOF|MORON) migrates any page not on
//!    the executing node. For BIND and PREFERRED_MANY with the flag, the
//!    merged rule (6.10, commit 133d04b1eee9, after review) migrates only
//!    when the executing node is in the policy's node mask. The patch's
//!    first version (../shared/seeds/) also migrated PREFERRED_MANY pages
//!    when both the executing node and the page's node were outside the
//!    mask.
//!
//! A page already on the executing node never moves. The rate limit and hot
//! threshold of tiering mode do not change the answer for a page accessed
//! continuously by one thread, which is what the cases do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::topology::{NodeId, NodeSet};

/// Which rule to derive from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// What was merged in 6.10.
    Merged,
    /// The seed patch's first version.
    FirstVersion,
}

/// The policy of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CasePolicy {
    /// No VMA policy: the task default (MPOL_PREFERRED local, MOF|MORON).
    Default,
    /// MPOL_BIND | MPOL_F_NUMA_BALANCING.
    BindBalancing,
    /// MPOL_PREFERRED_MANY | MPOL_F_NUMA_BALANCING.
    PreferredManyBalancing,
}

impl fmt::Display for CasePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CasePolicy::Default => "default",
            CasePolicy::BindBalancing => "bind+balancing",
            CasePolicy::PreferredManyBalancing => "preferred-many+balancing",
        })
    }
}

/// `kernel.numa_balancing` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BalancingMode(pub u8);

impl BalancingMode {
    pub fn normal(self) -> bool {
        self.0 & 1 != 0
    }
}

/// Where a page should end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Stay,
    MigrateTo(NodeId),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Stay => f.write_str("stay"),
            Expect::MigrateTo(n) => write!(f, "migrate->{n}"),
        }
    }
}

/// The facts of one case the rule looks at.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    pub policy: CasePolicy,
    pub mask: &'a NodeSet,
    pub exec: NodeId,
    pub page: NodeId,
    pub mode: BalancingMode,
    /// The nodes of the kernel's top memory tier.
    pub toptier: &'a NodeSet,
}

pub fn expected(rule: Rule, s: &Situation) -> Expect {
    let scanned = s.mode.normal() || !s.toptier.contains(s.page);
    if !scanned || s.page == s.exec {
        return Expect::Stay;
    }
    let exec_in = s.mask.contains(s.exec);
    let migrate = match s.policy {
        CasePolicy::Default => true,
        CasePolicy::BindBalancing => exec_in,
        CasePolicy::PreferredManyBalancing => match rule {
            Rule::Merged => exec_in,
            Rule::FirstVersion => exec_in || !s.mask.contains(s.page),
        },
    };
    if migrate {
        Expect::MigrateTo(s.exec)
    } else {
        Expect::Stay
    }
}

/// The most pages tiering mode promotes into one node over `span` under
/// `kernel.numa_balancing_promote_rate_limit_MBps = limit_mbps`
/// (kernel/sched/fair.c, numa_promotion_rate_limit): each window admits
/// promotion candidates until `limit_mbps` worth of them have been counted
/// in it, then refuses the rest; a new window starts at the first candidate
/// more than a second after the last one started. So `span` overlaps the
/// window in progress at its start plus at most ceil(span) new ones, each
/// admitting one limit's worth.
pub fn promotion_ceiling_pages(limit_mbps: u64, span: std::time::Duration) -> u64 {
    let pages_per_window = (limit_mbps << 20) / crate::buffer::BASE_PAGE as u64;
    pages_per_window * (span.as_secs_f64().ceil() as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sit<'a>(
        policy: CasePolicy,
        mask: &'a NodeSet,
        exec: u32,
        page: u32,
        mode: u8,
        top: &'a NodeSet,
    ) -> Situation<'a> {
        Situation {
            policy,
            mask,
            exec,
            page,
            mode: BalancingMode(mode),
            toptier: top,
        }
    }

    /// The case the review turned on: PREFERRED_MANY({0}), executing on
    /// node 1, page on the slow node 2 — both outside the mask.
    #[test]
    fn the_reviewed_case_separates_the_rules() {
        let (mask, top) = ("0".parse().unwrap(), "0-1".parse().unwrap());
        let s = sit(CasePolicy::PreferredManyBalancing, &mask, 1, 2, 2, &top);
        assert_eq!(expected(Rule::Merged, &s), Expect::Stay);
        assert_eq!(expected(Rule::FirstVersion, &s), Expect::MigrateTo(1));
    }

    #[test]
    fn tiering_mode_alone_skips_top_tier_pages() {
        let (mask, top) = ("0".parse().unwrap(), "0-1".parse().unwrap());
        let s = sit(CasePolicy::Default, &mask, 0, 1, 2, &top);
        assert_eq!(expected(Rule::Merged, &s), Expect::Stay);
        let s = sit(CasePolicy::Default, &mask, 0, 1, 3, &top);
        assert_eq!(expected(Rule::Merged, &s), Expect::MigrateTo(0));
    }

    #[test]
    fn the_rate_limit_ceiling_is_the_limit_plus_one_window() {
        use std::time::Duration;
        // 4 MB/s is 1024 pages of 4 KiB a second.
        assert_eq!(promotion_ceiling_pages(4, Duration::from_secs(6)), 7 * 1024);
        // Half a second can hold the end of one window and a whole next one.
        assert_eq!(promotion_ceiling_pages(4, Duration::from_millis(500)), 2048);
    }

    #[test]
    fn bind_migrates_only_towards_its_mask() {
        let (mask, top) = ("0,2".parse().unwrap(), "0-1".parse().unwrap());
        let to0 = sit(CasePolicy::BindBalancing, &mask, 0, 2, 2, &top);
        assert_eq!(expected(Rule::Merged, &to0), Expect::MigrateTo(0));
        let to1 = sit(CasePolicy::BindBalancing, &mask, 1, 2, 2, &top);
        assert_eq!(expected(Rule::FirstVersion, &to1), Expect::Stay);
    }
}
