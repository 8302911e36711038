//! The machine's NUMA layout: nodes, their CPUs and memory, memory tiers,
//! HMAT access attributes and distances, and the fast/slow roles derived
//! from the tiers.
//!
//! sysfs is read for everything (it is the only source of tiers and HMAT);
//! on the live system hwloc then supplies the CPU sets, which are what the
//! pinning code binds to. This module does not pin or allocate.

pub mod adistance;
pub mod blocks;
pub mod cxl;
pub mod hwloc;
pub mod idset;

use std::fmt;

use serde::Serialize;

pub use idset::{CpuSet, IdListError, NodeSet};

use crate::sysfs::SysRoot;

/// A NUMA node id as the kernel numbers it.
pub type NodeId = u32;

/// A memory tier: `memory_tierN` under `/sys/devices/virtual/memory_tiering`.
/// A lower N is a faster tier (N is the abstract distance divided by the
/// chunk size, see mm/memory-tiers.c).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tier {
    pub id: u32,
    pub nodes: NodeSet,
}

/// HMAT access attributes of a memory node, as seen from its nearest
/// initiators (`nodeN/access0/initiators/`). Present only where firmware
/// (or QEMU's `hmat=on`) provides an HMAT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hmat {
    pub initiators: NodeSet,
    pub read_latency_ns: Option<u64>,
    pub write_latency_ns: Option<u64>,
    pub read_bandwidth_mbps: Option<u64>,
    pub write_bandwidth_mbps: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: NodeId,
    pub cpus: CpuSet,
    pub mem_total_kib: Option<u64>,
    pub mem_free_kib: Option<u64>,
    /// The memory tier the kernel put this node in, if it reports tiers.
    pub tier: Option<u32>,
    pub hmat: Option<Hmat>,
    /// The same as seen from CPUs (`access1`): the class the kernel ranks
    /// tiers by, and where CXL nodes get the coordinates the kernel
    /// computed from CDAT and the generic port.
    pub hmat_cpu: Option<Hmat>,
    /// The CXL region whose coordinates `hmat` and `hmat_cpu` are, where
    /// the node itself has none (kernels put CXL coordinates on the
    /// region, not always on the node).
    pub coordinates_from: Option<String>,
    /// Its memory blocks, online and by zone.
    pub memory_blocks: Option<blocks::NodeBlocks>,
}

impl Node {
    pub fn is_cpuless(&self) -> bool {
        self.cpus.is_empty()
    }
    pub fn has_memory(&self) -> bool {
        self.mem_total_kib.unwrap_or(0) > 0
    }
}

/// Where the fast/slow split came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSource {
    /// The kernel reports two or more memory tiers: fast = the top tier.
    KernelTiers,
    /// The kernel puts every node in one tier (or has no tiering sysfs), but
    /// some nodes have memory and no CPUs: those are taken as slow. This is
    /// what a pre-6.10 kernel shows for an HMAT-described slow node.
    CpulessNodes,
    /// One tier and no CPU-less node: there is no slow memory to study.
    SingleTier,
}

impl fmt::Display for RoleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleSource::KernelTiers => "kernel memory tiers",
            RoleSource::CpulessNodes => "CPU-less nodes (the kernel puts all nodes in one tier)",
            RoleSource::SingleTier => "single tier: no slow memory on this machine",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Roles {
    pub fast: NodeSet,
    pub slow: NodeSet,
    pub source: RoleSource,
}

/// Where the CPU sets came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuSource {
    Hwloc,
    Sysfs,
}

#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub tiers: Vec<Tier>,
    /// `distance[i][j]`, in the order of `nodes`, from `nodeN/distance`.
    pub distances: Vec<Vec<u32>>,
    pub roles: Roles,
    pub cpu_source: CpuSource,
    /// CXL memory devices, decoders, regions and DAX devices (empty
    /// without CXL).
    pub cxl: cxl::CxlInventory,
    pub hotplug: blocks::Hotplug,
    /// Why each CPU-less memory node is in its tier: the numbers the
    /// kernel ranked it by and the tier they give.
    pub tier_reasons: Vec<adistance::TierReason>,
    /// Things discovery noticed and the user should know.
    pub notes: Vec<String>,
}

/// CPU-less memory the kernel left in the top (DRAM) tier: to the kernel
/// it is DRAM, so NUMA balancing's tiering mode never promotes from it nor
/// demotes to it, whatever the memory policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierTrap {
    pub nodes: NodeSet,
    pub tier: u32,
    /// Why, and what fixes it, in one line.
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source} (is sysfs mounted at /sys?)")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: String, source: IdListError },
}

impl Topology {
    /// Discovers the running machine: sysfs, then hwloc's CPU sets.
    pub fn discover() -> Result<Self, TopologyError> {
        let mut topo = Self::from_sysfs(&SysRoot::live())?;
        topo.overlay_hwloc();
        Ok(topo)
    }

    /// Discovers from sysfs alone (used directly by tests on captured trees).
    pub fn from_sysfs(sys: &SysRoot) -> Result<Self, TopologyError> {
        let online_path = "/sys/devices/system/node/online";
        let online = sys
            .read(online_path)
            .map_err(|source| TopologyError::Read {
                path: online_path.into(),
                source,
            })?;
        let online: NodeSet = online.parse().map_err(|source| TopologyError::Parse {
            path: online_path.into(),
            source,
        })?;
        let tiers = read_tiers(sys)?;
        let mut nodes = Vec::new();
        let mut distances = Vec::new();
        for id in online.iter() {
            let dir = format!("/sys/devices/system/node/node{id}");
            let cpulist = format!("{dir}/cpulist");
            let cpus: CpuSet =
                sys.read_opt(&cpulist)
                    .unwrap_or_default()
                    .parse()
                    .map_err(|source| TopologyError::Parse {
                        path: cpulist.clone(),
                        source,
                    })?;
            let meminfo = sys.read_opt(&format!("{dir}/meminfo")).unwrap_or_default();
            let tier = tiers.iter().find(|t| t.nodes.contains(id)).map(|t| t.id);
            nodes.push(Node {
                id,
                cpus,
                mem_total_kib: meminfo_kib(&meminfo, "MemTotal"),
                mem_free_kib: meminfo_kib(&meminfo, "MemFree"),
                tier,
                hmat: read_hmat(sys, &dir, "access0")?,
                hmat_cpu: read_hmat(sys, &dir, "access1")?,
                coordinates_from: None,
                memory_blocks: blocks::NodeBlocks::read(sys, id),
            });
            let row: Vec<u32> = sys
                .read_opt(&format!("{dir}/distance"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect();
            distances.push(row);
        }
        let roles = derive_roles(&nodes, &tiers);
        let mut notes = Vec::new();
        if tiers.is_empty() {
            notes.push(
                "no /sys/devices/virtual/memory_tiering: this kernel predates memory tiers (6.1)"
                    .to_string(),
            );
        }
        if roles.source == RoleSource::CpulessNodes {
            notes.push(format!(
                "the kernel puts all nodes in one memory tier; CPU-less node(s) {} taken as slow",
                roles.slow
            ));
        }
        if roles.source == RoleSource::SingleTier {
            notes.push(
                "single memory tier and no CPU-less node: no slow tier, promotion and \
                 demotion cannot be shown here (use `tierbench vm` for emulated tiers)"
                    .to_string(),
            );
        }
        let cxl = cxl::CxlInventory::read(sys);
        for n in nodes.iter_mut().filter(|n| n.hmat_cpu.is_none()) {
            if let Some(r) = cxl.region_of_node(n.id).filter(|r| r.access1.is_some()) {
                n.hmat_cpu = r.access1.clone();
                n.hmat = n.hmat.take().or_else(|| r.access0.clone());
                n.coordinates_from = Some(r.name.clone());
            }
        }
        let mut topo = Self {
            nodes,
            tiers,
            distances,
            roles,
            cpu_source: CpuSource::Sysfs,
            cxl,
            hotplug: blocks::Hotplug::read(sys),
            tier_reasons: Vec::new(),
            notes,
        };
        if let Some(trap) = topo.tier_trap() {
            topo.notes.push(trap.why);
        }
        topo.tier_reasons = topo.explain_tiers();
        for r in topo.tier_reasons.iter().filter(|r| r.unexpected()) {
            topo.notes.push(format!("tier check: {}", r.line()));
        }
        Ok(topo)
    }

    /// CPU-less memory nodes in the same memory tier as the nodes with
    /// CPUs, on a kernel that reports tiers: the trap that makes every
    /// promotion count zero.
    pub fn tier_trap(&self) -> Option<TierTrap> {
        let top = self.tiers.iter().find(|t| {
            t.nodes.iter().any(|n| {
                self.node(n)
                    .is_some_and(|n| !n.is_cpuless() && n.has_memory())
            })
        })?;
        let nodes: NodeSet = top
            .nodes
            .iter()
            .filter(|&n| {
                self.node(n)
                    .is_some_and(|n| n.is_cpuless() && n.has_memory())
            })
            .collect();
        if nodes.is_empty() {
            return None;
        }
        let cause = if nodes.iter().any(|n| self.cxl.dax_of_node(n).is_some()) {
            "CXL memory onlined without a tier of its own (kmem found CDAT/HMAT numbers that \
             rank it as DRAM)"
        } else if nodes
            .iter()
            .any(|n| self.node(n).is_some_and(|n| n.hmat.is_some()))
        {
            "the kernel ignores HMAT numbers when it builds tiers before 6.10"
        } else {
            "no performance data for it reached the kernel (no HMAT/CDAT entry, or a kernel \
             before 6.10, which ignores HMAT when it builds tiers), so it takes it for DRAM"
        };
        Some(TierTrap {
            why: format!(
                "tier check: CPU-less node(s) {nodes} share memory_tier{} with the DRAM node(s): \
                 {cause}; NUMA balancing's tiering mode (numa_balancing=2) then never promotes \
                 from them or demotes to them, so promotion counts stay zero whatever the \
                 policy. Fix: a 6.10+ kernel with HMAT entries for the node, or CXL memory \
                 onlined through kmem",
                top.id
            ),
            nodes,
            tier: top.id,
        })
    }

    /// Takes hwloc's CPU sets, which are what binding uses, for nodes that
    /// have CPUs. hwloc gives a CPU-less node the cpuset of the object it
    /// hangs from (often the whole machine), so for those sysfs's empty
    /// `cpulist` stays the truth. If hwloc cannot load, sysfs stays and the
    /// fact is noted.
    pub fn overlay_hwloc(&mut self) {
        match hwloc::hwloc_node_cpus() {
            Ok(by_node) => {
                for node in self.nodes.iter_mut().filter(|n| !n.is_cpuless()) {
                    if let Some(cpus) = by_node.get(&node.id) {
                        if *cpus != node.cpus {
                            self.notes.push(format!(
                                "node {}: hwloc lists CPUs {} where sysfs lists {}",
                                node.id, cpus, node.cpus
                            ));
                        }
                        node.cpus = cpus.clone();
                    }
                }
                self.cpu_source = CpuSource::Hwloc;
            }
            Err(e) => self
                .notes
                .push(format!("hwloc unavailable ({e}); CPU lists from sysfs")),
        }
    }

    /// The node whose CPUs run a workload: `requested` (named by the
    /// option `flag` in messages), or by default the first fast node with
    /// CPUs. Refuses unknown and CPU-less nodes, naming the ones to use.
    pub fn cpu_node(&self, requested: Option<NodeId>, flag: &str) -> Result<&Node, String> {
        let Some(id) = requested else {
            return self
                .nodes
                .iter()
                .find(|n| self.roles.fast.contains(n.id) && !n.is_cpuless())
                .or_else(|| self.nodes.iter().find(|n| !n.is_cpuless()))
                .ok_or_else(|| "no NUMA node with CPUs found".to_string());
        };
        let node = self.node(id).ok_or_else(|| {
            format!(
                "unknown node {id} in {flag}: this machine has nodes {}; see `tierbench topo`",
                self.node_ids()
            )
        })?;
        if node.is_cpuless() {
            let with_cpus: NodeSet = self
                .nodes
                .iter()
                .filter(|n| !n.is_cpuless())
                .map(|n| n.id)
                .collect();
            return Err(format!(
                "node {id} has no CPUs (a memory-only node) and cannot run workers: choose {flag} from {with_cpus}"
            ));
        }
        Ok(node)
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
    pub fn node_ids(&self) -> NodeSet {
        self.nodes.iter().map(|n| n.id).collect()
    }
    pub fn memory_nodes(&self) -> NodeSet {
        self.nodes
            .iter()
            .filter(|n| n.has_memory())
            .map(|n| n.id)
            .collect()
    }
    /// Free memory summed over `nodes`, in bytes (nodes without a reading
    /// count as 0).
    pub fn free_bytes(&self, nodes: &NodeSet) -> u64 {
        nodes
            .iter()
            .filter_map(|id| self.node(id)?.mem_free_kib)
            .sum::<u64>()
            * 1024
    }
    /// The nodes the kernel treats as top tier (`node_is_toptier()`): the
    /// lowest memory tier holding memory, or, on kernels without memory
    /// tiers, the nodes with CPUs.
    pub fn kernel_toptier(&self) -> NodeSet {
        let memory = self.memory_nodes();
        match self
            .tiers
            .iter()
            .find(|t| t.nodes.iter().any(|n| memory.contains(n)))
        {
            Some(t) => t.nodes.clone(),
            None => self
                .nodes
                .iter()
                .filter(|n| !n.is_cpuless())
                .map(|n| n.id)
                .collect(),
        }
    }
    pub fn has_slow_tier(&self) -> bool {
        !self.roles.slow.is_empty()
    }
    /// The distance from `a` to `b`, from the kernel's SLIT table.
    pub fn distance(&self, a: NodeId, b: NodeId) -> Option<u32> {
        let i = self.nodes.iter().position(|n| n.id == a)?;
        let j = self.nodes.iter().position(|n| n.id == b)?;
        self.distances.get(i)?.get(j).copied()
    }
}

fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    // Lines look like "Node 0 MemTotal:       24576000 kB".
    meminfo.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if !name.trim_end().ends_with(key) {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn read_tiers(sys: &SysRoot) -> Result<Vec<Tier>, TopologyError> {
    let base = "/sys/devices/virtual/memory_tiering";
    let mut tiers = Vec::new();
    for name in sys.list(base) {
        let Some(id) = name
            .strip_prefix("memory_tier")
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let path = format!("{base}/{name}/nodelist");
        let Some(list) = sys.read_opt(&path) else {
            continue;
        };
        let nodes = list
            .parse()
            .map_err(|source| TopologyError::Parse { path, source })?;
        tiers.push(Tier { id, nodes });
    }
    tiers.sort_by_key(|t| t.id);
    Ok(tiers)
}

/// The four access coordinates in `dir` (a CXL region's `accessN`), or
/// `None` when the kernel wrote none (absent, or all zero).
fn read_coordinates(sys: &SysRoot, dir: &str) -> Option<Hmat> {
    let attr = |name: &str| -> Option<u64> {
        sys.read_opt(&format!("{dir}/{name}"))?
            .parse()
            .ok()
            .filter(|&v| v > 0)
    };
    let h = Hmat {
        initiators: NodeSet::new(),
        read_latency_ns: attr("read_latency"),
        write_latency_ns: attr("write_latency"),
        read_bandwidth_mbps: attr("read_bandwidth"),
        write_bandwidth_mbps: attr("write_bandwidth"),
    };
    (h != Hmat::default()).then_some(h)
}

fn read_hmat(sys: &SysRoot, node_dir: &str, class: &str) -> Result<Option<Hmat>, TopologyError> {
    let dir = format!("{node_dir}/{class}/initiators");
    if !sys.exists(&dir) {
        return Ok(None);
    }
    let attr = |name: &str| -> Option<u64> { sys.read_opt(&format!("{dir}/{name}"))?.parse().ok() };
    let initiators = sys
        .list(&dir)
        .iter()
        .filter_map(|e| e.strip_prefix("node")?.parse().ok())
        .collect();
    Ok(Some(Hmat {
        initiators,
        read_latency_ns: attr("read_latency"),
        write_latency_ns: attr("write_latency"),
        read_bandwidth_mbps: attr("read_bandwidth"),
        write_bandwidth_mbps: attr("write_bandwidth"),
    }))
}

/// Fast = the top tier, slow = the rest, where the kernel reports tiers
/// that actually separate the memory nodes; see [`RoleSource`].
fn derive_roles(nodes: &[Node], tiers: &[Tier]) -> Roles {
    let memory: NodeSet = nodes
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id)
        .collect();
    let populated: Vec<&Tier> = tiers
        .iter()
        .filter(|t| t.nodes.iter().any(|n| memory.contains(n)))
        .collect();
    if populated.len() >= 2 {
        let fast = populated[0].nodes.clone();
        let slow = memory.difference(&fast);
        return Roles {
            fast,
            slow,
            source: RoleSource::KernelTiers,
        };
    }
    let cpuless: NodeSet = nodes
        .iter()
        .filter(|n| n.has_memory() && n.is_cpuless())
        .map(|n| n.id)
        .collect();
    if !cpuless.is_empty() && cpuless != memory {
        return Roles {
            fast: memory.difference(&cpuless),
            slow: cpuless,
            source: RoleSource::CpulessNodes,
        };
    }
    Roles {
        fast: memory,
        slow: NodeSet::new(),
        source: RoleSource::SingleTier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> SysRoot {
        SysRoot::at(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
    }

    #[test]
    fn dram_cxl_with_hmat_tiers() {
        let t = Topology::from_sysfs(&data("dram-cxl-6.12")).unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0].cpus.to_string(), "0-1");
        assert!(t.nodes[1].is_cpuless());
        assert_eq!(t.nodes[1].tier, Some(54));
        assert_eq!(t.roles.source, RoleSource::KernelTiers);
        assert_eq!(t.roles.fast.to_string(), "0");
        assert_eq!(t.roles.slow.to_string(), "1");
        assert_eq!(t.nodes[1].hmat.as_ref().unwrap().read_latency_ns, Some(300));
        assert_eq!(t.nodes[0].mem_total_kib, Some(2_031_616));
        assert_eq!(t.distance(0, 1), Some(20));
    }

    #[test]
    fn old_kernel_one_tier_falls_back_to_cpuless() {
        let t = Topology::from_sysfs(&data("dram-cxl-6.1")).unwrap();
        assert_eq!(t.nodes[0].tier, Some(4));
        assert_eq!(t.nodes[1].tier, Some(4));
        assert_eq!(t.roles.source, RoleSource::CpulessNodes);
        assert_eq!(t.roles.slow.to_string(), "1");
        assert!(t.notes.iter().any(|n| n.contains("one memory tier")));
        // The tier check names the node, the tier and the cause.
        let trap = t.tier_trap().unwrap();
        assert_eq!((trap.nodes.to_string(), trap.tier), ("1".to_string(), 4));
        assert!(trap.why.contains("before 6.10"), "{}", trap.why);
        assert!(t.notes.contains(&trap.why));
    }

    #[test]
    fn cxl_memory_onlined_by_kmem_has_its_own_tier() {
        let t = Topology::from_sysfs(&data("cxl-type3-6.12")).unwrap();
        assert_eq!(t.nodes[1].tier, Some(22));
        assert_eq!(t.roles.source, RoleSource::KernelTiers);
        assert!(t.tier_trap().is_none());
        assert_eq!(t.cxl.memdevs.len(), 1);
        let blocks = t.nodes[1].memory_blocks.as_ref().unwrap();
        assert_eq!(blocks.zones.get("Movable"), Some(&2));
        assert_eq!(t.hotplug.auto_online_blocks.as_deref(), Some("online"));
        // 6.12 with HMAT numbers: no trap either.
        assert!(Topology::from_sysfs(&data("dram-cxl-6.12"))
            .unwrap()
            .tier_trap()
            .is_none());
    }

    #[test]
    fn single_node_has_no_slow_tier() {
        let t = Topology::from_sysfs(&data("one-node")).unwrap();
        assert_eq!(t.roles.source, RoleSource::SingleTier);
        assert!(!t.has_slow_tier());
        assert_eq!(t.roles.fast.to_string(), "0");
    }

    #[test]
    fn meminfo_lines() {
        let m = "Node 0 MemTotal:       2031616 kB\nNode 0 MemFree:        1900000 kB\n";
        assert_eq!(meminfo_kib(m, "MemTotal"), Some(2_031_616));
        assert_eq!(meminfo_kib(m, "MemFree"), Some(1_900_000));
        assert_eq!(meminfo_kib(m, "MemUsed"), None);
    }
}
