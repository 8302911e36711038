//! The process's one hwloc topology, and what tierbench asks of it: the
//! NUMA nodes' CPU sets and one CPU per physical core. Binding threads
//! (`crate::pin`) uses the same handle.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hwlocality::object::types::ObjectType;
use hwlocality::Topology as HwlocTopology;

use super::{CpuSet, NodeId};

/// hwloc's topology is loaded once per process: loading it walks sysfs and
/// takes milliseconds, and it is `Send + Sync`.
pub fn hwloc() -> Result<&'static HwlocTopology, String> {
    static TOPO: OnceLock<Result<HwlocTopology, String>> = OnceLock::new();
    TOPO.get_or_init(|| HwlocTopology::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// CPU sets of the NUMA nodes, as hwloc sees them.
pub fn hwloc_node_cpus() -> Result<BTreeMap<NodeId, CpuSet>, String> {
    let topo = hwloc()?;
    let mut out = BTreeMap::new();
    for node in topo.objects_with_type(ObjectType::NUMANode) {
        let Some(id) = node.os_index() else { continue };
        let cpus: CpuSet = node
            .cpuset()
            .map(|set| set.iter_set().map(|i| usize::from(i) as u32).collect())
            .unwrap_or_default();
        out.insert(id as NodeId, cpus);
    }
    Ok(out)
}

/// A CPU cache as hwloc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cache {
    /// 1 for L1, 3 for L3, ...
    pub level: u8,
    /// Bytes of one instance (the largest, where instances differ).
    pub bytes: u64,
}

/// The last-level data (or unified) cache: the deepest level hwloc lists,
/// its largest instance. None where hwloc lists no cache (some virtual
/// machines).
pub fn last_level_cache() -> Option<Cache> {
    let topo = hwloc().ok()?;
    let mut best: Option<Cache> = None;
    for obj in topo.objects() {
        let ty = obj.object_type();
        if !ty.is_cpu_data_cache() {
            continue;
        }
        let Some(hwlocality::object::attributes::ObjectAttributes::Cache(attr)) = obj.attributes()
        else {
            continue;
        };
        let Some(size) = attr.size() else { continue };
        let c = Cache {
            level: attr.depth() as u8,
            bytes: size.get(),
        };
        if best.is_none_or(|b| (c.level, c.bytes) > (b.level, b.bytes)) {
            best = Some(c);
        }
    }
    best
}

/// One CPU per physical core among `cpus` (the first hardware thread of
/// each core, as hwloc groups them), in order.
pub fn one_per_core(cpus: &CpuSet) -> Result<CpuSet, String> {
    let topo = hwloc()?;
    let mut out = CpuSet::new();
    for core in topo.objects_with_type(ObjectType::Core) {
        let first = core.cpuset().and_then(|set| {
            set.iter_set()
                .map(|i| usize::from(i) as u32)
                .find(|c| cpus.contains(*c))
        });
        if let Some(c) = first {
            out.insert(c);
        }
    }
    if out.is_empty() {
        return Err(format!("hwloc lists no cores among CPUs {cpus}"));
    }
    Ok(out)
}
