//! The conformance matrix, derived from the inputs of the rule in
//! [`super::rule`] rather than from a fixed cast of nodes: a class is one
//! combination of what the rule looks at (policy, numa_balancing mode,
//! executing node in the mask or not, page node in the mask or not, page
//! already on the executing node or not, the page node's tier) plus which
//! tiers the mask is made of. Each class is then given real nodes of the
//! machine it runs on, or is reported as not expressible there, with what
//! it would need.

use std::fmt;

use super::rule::{BalancingMode, CasePolicy};
use crate::topology::{NodeId, NodeSet, Topology};

/// A tier by rank: 0 is the kernel's top tier, 1 the first tier below it,
/// and so on.
pub type TierRank = usize;

/// Lower tiers every matrix enumerates, whatever the machine has, so a
/// machine with fewer says which classes it cannot express.
pub const LOWER_TIERS: usize = 2;

/// Which tiers the policy's mask draws its nodes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskTiers {
    Top,
    Lower,
    Both,
}

impl MaskTiers {
    fn has_top(self) -> bool {
        self != MaskTiers::Lower
    }
    fn has_lower(self) -> bool {
        self != MaskTiers::Top
    }
}

/// The mask's side of a class (BIND and PREFERRED_MANY only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskClass {
    pub exec_in: bool,
    pub page_in: bool,
    pub tiers: MaskTiers,
}

/// One class of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub mode: BalancingMode,
    pub policy: CasePolicy,
    /// `None` for the default policy, which has no mask.
    pub mask: Option<MaskClass>,
    pub page_on_exec: bool,
    pub page_tier: TierRank,
}

fn tier_name(rank: TierRank) -> String {
    match rank {
        0 => "top".into(),
        r => format!("lower{r}"),
    }
}

impl fmt::Display for Class {
    /// e.g. `preferred-many+balancing mask=top exec-out page-out page=lower1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nb={} {}", self.mode.0, self.policy)?;
        if let Some(m) = self.mask {
            let io = |b: bool| if b { "in" } else { "out" };
            let tiers = match m.tiers {
                MaskTiers::Top => "top",
                MaskTiers::Lower => "lower",
                MaskTiers::Both => "top+lower",
            };
            write!(
                f,
                " mask={tiers} exec-{} page-{}",
                io(m.exec_in),
                io(m.page_in)
            )?;
        }
        if self.page_on_exec {
            f.write_str(" page=exec")
        } else {
            write!(f, " page={}", tier_name(self.page_tier))
        }
    }
}

/// Every class, for `modes` and `lower_tiers` tiers below the top one.
/// Combinations that contradict themselves are not classes (a page on the
/// executing node is in the mask exactly when the executing node is; the
/// executing node, having CPUs, is top tier, so a mask of lower-tier nodes
/// cannot hold it).
pub fn all(modes: &[u8], lower_tiers: usize) -> Vec<Class> {
    let mut out = Vec::new();
    let tiers = 0..=lower_tiers;
    for &m in modes {
        let mode = BalancingMode(m);
        for policy in [
            CasePolicy::PreferredManyBalancing,
            CasePolicy::BindBalancing,
            CasePolicy::Default,
        ] {
            for page_on_exec in [true, false] {
                for page_tier in tiers.clone() {
                    if page_on_exec && page_tier != 0 {
                        continue;
                    }
                    let masks: Vec<Option<MaskClass>> = if policy == CasePolicy::Default {
                        vec![None]
                    } else {
                        mask_classes(page_on_exec, page_tier)
                    };
                    for mask in masks {
                        out.push(Class {
                            mode,
                            policy,
                            mask,
                            page_on_exec,
                            page_tier,
                        });
                    }
                }
            }
        }
    }
    out
}

fn mask_classes(page_on_exec: bool, page_tier: TierRank) -> Vec<Option<MaskClass>> {
    let mut out = Vec::new();
    for exec_in in [true, false] {
        for page_in in [true, false] {
            if page_on_exec && exec_in != page_in {
                continue;
            }
            for tiers in [MaskTiers::Top, MaskTiers::Lower, MaskTiers::Both] {
                let holds_exec = !exec_in || tiers.has_top();
                let holds_page = !page_in
                    || if page_tier == 0 {
                        tiers.has_top()
                    } else {
                        tiers.has_lower()
                    };
                if holds_exec && holds_page {
                    out.push(Some(MaskClass {
                        exec_in,
                        page_in,
                        tiers,
                    }));
                }
            }
        }
    }
    out
}

/// The machine as the classes see it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Memory nodes and their tier rank.
    pub ranks: Vec<(NodeId, TierRank)>,
    /// Nodes with CPUs, with the CPU a case runs on.
    pub cpu_of: Vec<(NodeId, u32)>,
    pub toptier: NodeSet,
}

impl Machine {
    pub fn of(topo: &Topology) -> Machine {
        let toptier = topo.kernel_toptier();
        let memory = topo.memory_nodes();
        // Lower tiers ranked by the kernel's tier id (abstract distance);
        // a node with no tier (a kernel without memory tiers) ranks first
        // below the top.
        let mut lower_ids: Vec<u32> = topo
            .nodes
            .iter()
            .filter(|n| memory.contains(n.id) && !toptier.contains(n.id))
            .filter_map(|n| n.tier)
            .collect();
        lower_ids.sort_unstable();
        lower_ids.dedup();
        let ranks = topo
            .nodes
            .iter()
            .filter(|n| memory.contains(n.id))
            .map(|n| {
                let rank = if toptier.contains(n.id) {
                    0
                } else {
                    n.tier
                        .and_then(|t| lower_ids.iter().position(|l| *l == t))
                        .map_or(1, |p| p + 1)
                };
                (n.id, rank)
            })
            .collect();
        let cpu_of = topo
            .nodes
            .iter()
            .filter_map(|n| Some((n.id, n.cpus.first()?)))
            .collect();
        Machine {
            ranks,
            cpu_of,
            toptier,
        }
    }

    fn rank(&self, n: NodeId) -> Option<TierRank> {
        self.ranks.iter().find(|(m, _)| *m == n).map(|(_, r)| *r)
    }

    pub fn cpu(&self, n: NodeId) -> Option<u32> {
        self.cpu_of.iter().find(|(m, _)| *m == n).map(|(_, c)| *c)
    }

    pub fn lower_tiers(&self) -> usize {
        self.ranks.iter().map(|(_, r)| *r).max().unwrap_or(0)
    }

    /// One line: the tiers and their nodes, and which have CPUs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for rank in 0..=self.lower_tiers() {
            let nodes: NodeSet = self
                .ranks
                .iter()
                .filter(|(_, r)| *r == rank)
                .map(|(n, _)| *n)
                .collect();
            if !nodes.is_empty() {
                parts.push(format!("{} {{{nodes}}}", tier_name(rank)));
            }
        }
        let cpus: NodeSet = self.cpu_of.iter().map(|(n, _)| *n).collect();
        format!("tiers {}; CPUs on {{{cpus}}}", parts.join(", "))
    }
}

/// A class given real nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub exec: NodeId,
    pub page: NodeId,
    pub mask: NodeSet,
}

impl Class {
    /// Whether `i` on `machine` is this class.
    fn fits(&self, i: &Instance, machine: &Machine) -> bool {
        let Some(page_rank) = machine.rank(i.page) else {
            return false;
        };
        if (i.page == i.exec) != self.page_on_exec || page_rank != self.page_tier {
            return false;
        }
        match self.mask {
            None => i.mask.is_empty(),
            Some(m) => {
                let ranks: Vec<TierRank> = i.mask.iter().filter_map(|n| machine.rank(n)).collect();
                let top = ranks.contains(&0);
                let lower = ranks.iter().any(|r| *r > 0);
                ranks.len() == i.mask.len()
                    && i.mask.contains(i.exec) == m.exec_in
                    && i.mask.contains(i.page) == m.page_in
                    && top == m.tiers.has_top()
                    && lower == m.tiers.has_lower()
            }
        }
    }

    /// The first nodes of `machine` that make this class: executing nodes
    /// and page nodes in id order, smallest masks first.
    pub fn instantiate(&self, machine: &Machine) -> Option<Instance> {
        let nodes: Vec<NodeId> = machine.ranks.iter().map(|(n, _)| *n).collect();
        let masks: Vec<NodeSet> = if self.mask.is_none() {
            vec![NodeSet::new()]
        } else {
            subsets(&nodes, 3)
        };
        for (exec, _) in &machine.cpu_of {
            for page in &nodes {
                for mask in &masks {
                    let i = Instance {
                        exec: *exec,
                        page: *page,
                        mask: mask.clone(),
                    };
                    if self.fits(&i, machine) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// The nodes this class needs besides a node with CPUs to run on, in
    /// words, for a machine that lacks them.
    pub fn needs(&self) -> String {
        let mut need = Vec::new();
        if !self.page_on_exec {
            need.push(match self.page_tier {
                0 => "a second top-tier node for the pages".into(),
                r => format!("a node in {} for the pages", tier_name(r)),
            });
        }
        if let Some(m) = self.mask {
            let page_top = self.page_tier == 0;
            let top_given = m.exec_in || (m.page_in && page_top);
            let lower_given = m.page_in && !page_top;
            if m.tiers.has_top() && !top_given {
                need.push("another top-tier node for the mask".into());
            }
            if m.tiers.has_lower() && !lower_given {
                need.push("another lower-tier node for the mask".into());
            }
        }
        if need.is_empty() {
            return "a node with both CPUs and memory".into();
        }
        need.join(", ")
    }
}

/// Non-empty subsets of `nodes` of at most `max` members, smallest first.
fn subsets(nodes: &[NodeId], max: usize) -> Vec<NodeSet> {
    let n = nodes.len().min(16);
    let mut out: Vec<NodeSet> = (1u32..(1 << n))
        .filter(|bits| bits.count_ones() as usize <= max)
        .map(|bits| {
            (0..n)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| nodes[i])
                .collect()
        })
        .collect();
    out.sort_by_key(|s: &NodeSet| s.len());
    out
}

/// What a machine makes of the classes: the cases to run, and the classes
/// it cannot express with what each needs.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub cases: Vec<(Class, Instance)>,
    pub missing: Vec<(Class, String)>,
}

pub fn cover(machine: &Machine, modes: &[u8]) -> Coverage {
    let mut cov = Coverage {
        cases: Vec::new(),
        missing: Vec::new(),
    };
    for class in all(modes, machine.lower_tiers().max(LOWER_TIERS)) {
        match class.instantiate(machine) {
            Some(i) => cov.cases.push((class, i)),
            None => cov.missing.push((class, class.needs())),
        }
    }
    cov
}

impl Coverage {
    /// Whether any case can move a page at all: without one the matrix
    /// says nothing about the rule.
    pub fn can_move_pages(&self) -> bool {
        self.cases.iter().any(|(c, _)| !c.page_on_exec)
    }

    /// The closing lines: classes run, and the ones not expressible here
    /// grouped by what they need.
    pub fn summary(&self, machine: &Machine) -> String {
        let total = self.cases.len() + self.missing.len();
        let mut out = format!(
            "coverage: {} of {total} classes run on this machine ({}); {} not expressible here",
            self.cases.len(),
            machine.describe(),
            self.missing.len()
        );
        let mut needs: Vec<(&str, usize)> = Vec::new();
        for (_, need) in &self.missing {
            match needs.iter_mut().find(|(n, _)| n == need) {
                Some(e) => e.1 += 1,
                None => needs.push((need, 1)),
            }
        }
        for (need, count) in needs {
            out.push_str(&format!("\n  {count} need {need}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::rule::{self, Rule, Situation};

    fn machine(ranks: &[(NodeId, TierRank)], cpus: &[NodeId]) -> Machine {
        Machine {
            ranks: ranks.to_vec(),
            cpu_of: cpus.iter().map(|n| (*n, *n)).collect(),
            toptier: ranks
                .iter()
                .filter(|(_, r)| *r == 0)
                .map(|(n, _)| *n)
                .collect(),
        }
    }

    /// Per mode: 30 classes per masked policy (5 with the page on the
    /// executing node, 9 with it on another top-tier node, 8 per lower
    /// tier) and 4 for the default policy.
    #[test]
    fn the_class_count_follows_from_the_rule_inputs() {
        assert_eq!(all(&[2], 2).len(), 2 * 30 + 4);
        assert_eq!(all(&[2, 3], 2).len(), 2 * 64);
    }

    /// Two CPU nodes, one node in each of two lower tiers: everything but
    /// the classes that need a third top-tier node is expressed, and every
    /// instance is of its class.
    #[test]
    fn four_nodes_in_three_tiers_express_all_but_a_third_top_node() {
        let m = machine(&[(0, 0), (1, 0), (2, 1), (3, 2)], &[0, 1]);
        let cov = cover(&m, &[2]);
        for (class, i) in &cov.cases {
            assert!(class.fits(i, &m), "{class}: {i:?}");
        }
        for (class, need) in &cov.missing {
            assert!(need.contains("another top-tier node"), "{class}: {need}");
        }
        assert_eq!(cov.missing.len(), 4, "{:?}", cov.missing);
        // Pages on the second lower tier, and masks of lower nodes only.
        assert!(cov.cases.iter().any(|(_, i)| i.page == 3));
        assert!(cov
            .cases
            .iter()
            .any(|(c, i)| c.mask.is_some_and(|m| m.tiers == MaskTiers::Lower)
                && i.mask.iter().all(|n| n >= 2)));
    }

    /// The reviewed case is a class of its own: PREFERRED_MANY with both
    /// the executing node and the page outside the mask, page not on the
    /// executing node; the rules differ exactly there (in a scanning mode).
    #[test]
    fn the_rules_differ_only_where_both_nodes_are_outside_the_mask() {
        let m = machine(&[(0, 0), (1, 0), (2, 1), (3, 2)], &[0, 1]);
        for (class, i) in cover(&m, &[3]).cases {
            let s = Situation {
                policy: class.policy,
                mask: &i.mask,
                exec: i.exec,
                page: i.page,
                mode: class.mode,
                toptier: &m.toptier,
            };
            let differ = rule::expected(Rule::Merged, &s) != rule::expected(Rule::FirstVersion, &s);
            let reviewed = class.policy == CasePolicy::PreferredManyBalancing
                && class.mask.is_some_and(|m| !m.exec_in && !m.page_in)
                && !class.page_on_exec;
            assert_eq!(differ, reviewed, "{class}");
        }
    }

    #[test]
    fn one_node_cannot_move_a_page_and_says_what_is_missing() {
        let m = machine(&[(0, 0)], &[0]);
        let cov = cover(&m, &[2]);
        assert!(!cov.can_move_pages());
        let s = cov.summary(&m);
        assert!(s.contains("need a node in lower1 for the pages"), "{s}");
        // Two CPU nodes, no slow node: top-tier classes only.
        let two = machine(&[(0, 0), (1, 0)], &[0, 1]);
        let cov = cover(&two, &[3]);
        assert!(cov.can_move_pages());
        assert!(cov.cases.iter().all(|(c, _)| c.page_tier == 0));
    }
}
