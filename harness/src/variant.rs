//! A variant: the policy pages are placed under, the interleave weights it
//! places them with, and the mechanism that moves them afterwards. One
//! table compares "PREFERRED_MANY(fast) + DAMON tiering" with
//! "PREFERRED_MANY(fast)|NUMA_BALANCING" because both are variants.
//!
//! Spelling: `POLICY[@MECHANISM]`. POLICY is the mempolicy spelling
//! (`preferred-many:fast+balancing`); under `weighted-interleave` every
//! node may carry its weight (`weighted-interleave:fast=9,slow=1`), or
//! `=auto` on every node for the weights the kernel derives from
//! bandwidth (6.16+). MECHANISM is `damon` (DAMON's migrate_hot and
//! migrate_cold schemes run while the variant does). Without `@`, pages
//! move only as the run's knobs let the kernel move them (NUMA balancing,
//! demotion).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::mempolicy::{Mode, NodeSpec, Policy, PolicySpec};
use crate::topology::{NodeId, Topology};

/// What moves pages after they are placed, beyond the run's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mechanism {
    /// Only what the kernel does on its own under the run's knobs.
    #[default]
    Kernel,
    /// A DAMON kdamond per tiered node: migrate_hot slow->fast,
    /// migrate_cold fast->slow (see [`crate::mechanism::damon`]).
    Damon,
}

impl Mechanism {
    fn parse(s: &str) -> Result<Mechanism, String> {
        match s {
            "damon" => Ok(Mechanism::Damon),
            _ => Err(format!(
                "unknown mechanism {s:?}: write POLICY@damon (DAMON migrate_hot/migrate_cold), \
                 or no @ for the kernel's own NUMA balancing and demotion"
            )),
        }
    }
}

/// Weights as typed: per node spec, or the kernel's automatic ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSpec {
    Auto,
    Set(Vec<(NodeSpec, u8)>),
}

/// Weights resolved against the machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Weights {
    /// `weighted_interleave/auto` = true: the kernel's bandwidth-derived
    /// weights (6.16+).
    Auto,
    /// Node -> weight, 1-255.
    Set(BTreeMap<NodeId, u8>),
}

/// A variant as typed, roles unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSpec {
    pub policy: PolicySpec,
    /// Only under weighted-interleave; `None`: the weights in force.
    pub weights: Option<WeightsSpec>,
    pub mechanism: Mechanism,
}

/// A variant resolved against this machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    pub policy: Policy,
    pub weights: Option<Weights>,
    pub mechanism: Mechanism,
}

impl Variant {
    /// A bare policy: no weights, no mechanism.
    pub fn plain(policy: Policy) -> Variant {
        Variant {
            policy,
            weights: None,
            mechanism: Mechanism::Kernel,
        }
    }
}

impl From<Policy> for Variant {
    fn from(p: Policy) -> Variant {
        Variant::plain(p)
    }
}

const WEIGHT_HELP: &str = "give every node a weight from 1 to 255 \
     (weighted-interleave:fast=9,slow=1), =auto on every node for the kernel's \
     bandwidth-derived weights, or no weights for the ones in force";

impl FromStr for VariantSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (policy_s, mechanism) = match s.rsplit_once('@') {
            Some((p, m)) => (p, Mechanism::parse(m.trim())?),
            None => (s, Mechanism::Kernel),
        };
        // Weights sit in the node list (between `:` and the first `+`):
        // taken out here, the rest is the mempolicy spelling.
        let (head, flags) = match policy_s.find('+') {
            Some(i) => policy_s.split_at(i),
            None => (policy_s, ""),
        };
        let (plain, weights) = match head.split_once(':') {
            Some((mode, nodes)) if nodes.contains('=') => {
                let mut kept = Vec::new();
                let mut set = Vec::new();
                let mut auto = 0;
                for item in nodes.split(',') {
                    let (node, w) = item.split_once('=').ok_or_else(|| {
                        format!("policy {s:?}: node {item:?} has no weight: {WEIGHT_HELP}")
                    })?;
                    let spec: NodeSpec = node
                        .trim()
                        .parse()
                        .map_err(|e| format!("in policy {s:?}: {e}"))?;
                    kept.push(node.trim().to_string());
                    match w.trim() {
                        "auto" => auto += 1,
                        w => {
                            let w = w.parse::<u8>().ok().filter(|w| *w >= 1).ok_or_else(|| {
                                format!("policy {s:?}: weight {w:?} of {node}: {WEIGHT_HELP}")
                            })?;
                            set.push((spec, w));
                        }
                    }
                }
                let weights = match (auto, set.is_empty()) {
                    (0, _) => WeightsSpec::Set(set),
                    (_, true) => WeightsSpec::Auto,
                    _ => {
                        return Err(format!(
                            "policy {s:?} mixes auto and numbers: the kernel derives every \
                             weight or none; {WEIGHT_HELP}"
                        ))
                    }
                };
                (format!("{mode}:{}{flags}", kept.join(",")), Some(weights))
            }
            _ => (policy_s.to_string(), None),
        };
        let policy: PolicySpec = plain.parse()?;
        if weights.is_some() && policy.mode != Mode::WeightedInterleave {
            return Err(format!(
                "policy {s:?}: only weighted-interleave takes node weights (NODE=WEIGHT)"
            ));
        }
        Ok(VariantSpec {
            policy,
            weights,
            mechanism,
        })
    }
}

impl VariantSpec {
    pub fn resolve(&self, topo: &Topology) -> Result<Variant, String> {
        let policy = self.policy.resolve(topo)?;
        let weights = match &self.weights {
            None => None,
            Some(WeightsSpec::Auto) => Some(Weights::Auto),
            Some(WeightsSpec::Set(items)) => {
                let mut map = BTreeMap::new();
                for (spec, w) in items {
                    for n in spec.resolve(topo).iter() {
                        if map.insert(n, *w).is_some_and(|old| old != *w) {
                            return Err(format!("node {n} is given two weights"));
                        }
                    }
                }
                Some(Weights::Set(map))
            }
        };
        if self.mechanism == Mechanism::Damon
            && (topo.roles.fast.is_empty() || topo.roles.slow.is_empty())
        {
            return Err(format!(
                "@damon moves pages between a fast and a slow tier, and this machine has {}: \
                 see `tierbench topo`",
                if topo.roles.slow.is_empty() {
                    "no slow tier"
                } else {
                    "no fast tier"
                }
            ));
        }
        Ok(Variant {
            policy,
            weights,
            mechanism: self.mechanism,
        })
    }
}

/// `weighted-interleave:0=9,1=1`: the policy with each node's weight.
fn write_policy(f: &mut fmt::Formatter<'_>, p: &Policy, w: Option<&Weights>) -> fmt::Result {
    let Some(w) = w else {
        return write!(f, "{p}");
    };
    let items: Vec<String> = p
        .nodes
        .iter()
        .map(|n| match w {
            Weights::Auto => format!("{n}=auto"),
            Weights::Set(map) => match map.get(&n) {
                Some(w) => format!("{n}={w}"),
                None => n.to_string(),
            },
        })
        .collect();
    write!(f, "{}:{}", p.mode, items.join(","))?;
    if !p.flags.is_empty() {
        write!(f, "+{}", p.flags.name())?;
    }
    Ok(())
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_policy(f, &self.policy, self.weights.as_ref())?;
        match self.mechanism {
            Mechanism::Kernel => Ok(()),
            Mechanism::Damon => f.write_str("@damon"),
        }
    }
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.weights {
            None => write!(f, "{}", self.policy)?,
            Some(w) => {
                let items: Vec<String> = match w {
                    WeightsSpec::Auto => match &self.policy.nodes {
                        Some(NodeSpec::Union(parts)) => {
                            parts.iter().map(|p| format!("{p}=auto")).collect()
                        }
                        Some(n) => vec![format!("{n}=auto")],
                        None => Vec::new(),
                    },
                    WeightsSpec::Set(set) => set.iter().map(|(n, w)| format!("{n}={w}")).collect(),
                };
                write!(f, "{}:{}", self.policy.mode, items.join(","))?;
                if !self.policy.flags.is_empty() {
                    write!(f, "+{}", self.policy.flags.name())?;
                }
            }
        }
        match self.mechanism {
            Mechanism::Kernel => Ok(()),
            Mechanism::Damon => f.write_str("@damon"),
        }
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for s in [
            "preferred-many:fast+balancing",
            "preferred-many:fast@damon",
            "bind:0-1",
            "weighted-interleave:0=9,1=1",
            "weighted-interleave:fast=9,slow=1",
            "weighted-interleave:fast=auto,slow=auto",
            "weighted-interleave:0-1",
        ] {
            let spec: VariantSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let spec: VariantSpec = "weighted-interleave:0=9,1=1".parse().unwrap();
        assert_eq!(
            spec.weights,
            Some(WeightsSpec::Set(vec![
                ("0".parse().unwrap(), 9),
                ("1".parse().unwrap(), 1)
            ]))
        );
    }

    #[test]
    fn spelling_errors_say_what_to_write() {
        for (bad, needle) in [
            ("preferred-many:fast@numa", "unknown mechanism"),
            ("weighted-interleave:0=9,1", "has no weight"),
            ("weighted-interleave:0=0,1=1", "from 1 to 255"),
            ("weighted-interleave:0=256,1=1", "from 1 to 255"),
            ("weighted-interleave:0=auto,1=3", "mixes auto and numbers"),
            ("interleave:0=9,1=1", "only weighted-interleave"),
            ("weighted-interleave:x=9", "expected a list"),
        ] {
            let err = bad.parse::<VariantSpec>().unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
