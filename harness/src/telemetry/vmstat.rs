//! `/proc/vmstat` and `/sys/devices/system/node/nodeN/vmstat` parsing and
//! deltas. Every counter the kernel prints is kept; a counter it does not
//! print is `None`, never 0.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};

/// One vmstat file: counter name to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Vmstat(pub BTreeMap<String, u64>);

#[derive(Debug, thiserror::Error)]
#[error("{path} line {line}: {text:?} is not `name value`")]
pub struct VmstatError {
    pub path: String,
    pub line: usize,
    pub text: String,
}

impl Vmstat {
    pub fn parse(text: &str, path: &str) -> Result<Self, VmstatError> {
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let parsed = match (it.next(), it.next(), it.next()) {
                (Some(name), Some(value), None) => value.parse::<u64>().ok().map(|v| (name, v)),
                _ => None,
            };
            let (name, value) = parsed.ok_or_else(|| VmstatError {
                path: path.to_string(),
                line: i + 1,
                text: line.to_string(),
            })?;
            map.insert(name.to_string(), value);
        }
        Ok(Self(map))
    }
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    /// `self - before` for every counter present in both. Gauges (nr_*)
    /// can shrink: their delta is signed.
    pub fn delta(&self, before: &Vmstat) -> BTreeMap<String, i64> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let b = before.0.get(k)?;
                Some((k.clone(), *v as i64 - *b as i64))
            })
            .collect()
    }
}

/// Global and per-node counters read at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub global: Vmstat,
    pub nodes: BTreeMap<NodeId, Vmstat>,
}

impl Snapshot {
    pub fn read(sys: &SysRoot, nodes: &NodeSet) -> Result<Self, VmstatError> {
        let read = |path: &str| -> Result<Vmstat, VmstatError> {
            match sys.read(path) {
                Ok(text) => Vmstat::parse(&text, path),
                // A missing file means the kernel has no such counters.
                Err(_) => Ok(Vmstat::default()),
            }
        };
        let global = read("/proc/vmstat")?;
        let mut per_node = BTreeMap::new();
        for n in nodes.iter() {
            per_node.insert(
                n,
                read(&format!("/sys/devices/system/node/node{n}/vmstat"))?,
            );
        }
        Ok(Self {
            global,
            nodes: per_node,
        })
    }

    /// The counter `name` in `scope`, if the kernel has it.
    pub fn get(&self, scope: Scope, name: &str) -> Option<u64> {
        match scope {
            Scope::Global => self.global.get(name),
            Scope::Node(n) => self.nodes.get(&n)?.get(name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Global,
    Node(NodeId),
}

/// Counters that tell the tiering story, in the order the CSV lists them.
/// Which exist depends on the kernel (see design.md): only those present
/// become columns.
pub const TIERING_GLOBAL: &[&str] = &[
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "numa_hint_faults_local",
    "numa_pages_migrated",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "pgpromote_success",
    "pgpromote_candidate",
    "pgpromote_candidate_nrl",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
];

/// Per-node counters: promotion is counted on the target (fast) node,
/// demotion on the source node.
pub const TIERING_NODE: &[&str] = &[
    "pgpromote_success",
    "pgpromote_candidate",
    "pgpromote_candidate_nrl",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
];

/// A counter column: scope + name, e.g. `node0.pgpromote_success`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterId {
    pub scope: Scope,
    pub name: String,
}

impl CounterId {
    pub fn column(&self) -> String {
        match self.scope {
            Scope::Global => format!("vmstat.{}", self.name),
            Scope::Node(n) => format!("node{n}.{}", self.name),
        }
    }
    /// `after - before`, or `None` where either side lacks the counter.
    pub fn delta(&self, before: &Snapshot, after: &Snapshot) -> Option<u64> {
        let (b, a) = (
            before.get(self.scope, &self.name)?,
            after.get(self.scope, &self.name)?,
        );
        Some(a.saturating_sub(b))
    }
}

/// The tiering counters this kernel has, global first, then node by node.
pub fn tiering_counters(snap: &Snapshot) -> Vec<CounterId> {
    let mut out: Vec<CounterId> = TIERING_GLOBAL
        .iter()
        .filter(|n| snap.global.has(n))
        .map(|n| CounterId {
            scope: Scope::Global,
            name: n.to_string(),
        })
        .collect();
    for (node, stat) in &snap.nodes {
        out.extend(
            TIERING_NODE
                .iter()
                .filter(|n| stat.has(n))
                .map(|n| CounterId {
                    scope: Scope::Node(*node),
                    name: n.to_string(),
                }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line_and_keeps_unknown_counters() {
        let v = Vmstat::parse(
            "nr_free_pages 10\npgpromote_success 7\nsome_future_counter 3\n",
            "t",
        )
        .unwrap();
        assert_eq!(v.get("pgpromote_success"), Some(7));
        assert_eq!(v.get("some_future_counter"), Some(3));
        assert_eq!(v.get("pgpromote_candidate_nrl"), None);
    }

    #[test]
    fn rejects_malformed_lines_with_their_place() {
        let err = Vmstat::parse("a 1\nb two\n", "/proc/vmstat").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("/proc/vmstat line 2"));
        assert!(Vmstat::parse("a 1 2\n", "x").is_err());
    }

    #[test]
    fn deltas_only_for_counters_on_both_sides() {
        let a = Vmstat::parse("x 5\ny 9\n", "a").unwrap();
        let b = Vmstat::parse("x 8\nz 1\n", "b").unwrap();
        let d = b.delta(&a);
        assert_eq!(d.get("x"), Some(&3));
        assert_eq!(d.get("y"), None);
        assert_eq!(d.get("z"), None);
    }

    #[test]
    fn tiering_columns_follow_what_the_kernel_has() {
        let sys = SysRoot::at(format!(
            "{}/tests/data/dram-cxl-6.12",
            env!("CARGO_MANIFEST_DIR")
        ));
        let snap = Snapshot::read(&sys, &"0-1".parse().unwrap()).unwrap();
        let cols: Vec<String> = tiering_counters(&snap).iter().map(|c| c.column()).collect();
        assert_eq!(
            cols,
            [
                "node0.pgpromote_success",
                "node0.pgdemote_kswapd",
                "node1.pgpromote_success",
                "node1.pgdemote_kswapd"
            ]
        );
    }

    #[test]
    fn live_vmstat_parses() {
        let snap = Snapshot::read(&SysRoot::live(), &NodeSet::single(0)).unwrap();
        assert!(snap.global.has("pgfault"));
        assert!(snap.nodes[&0].has("nr_free_pages"));
    }
}
