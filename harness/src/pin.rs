//! Pinning threads to CPUs: hwloc first, `sched_setaffinity` through
//! core_affinity where hwloc cannot bind; which one worked is reported so
//! the output says how the threads were placed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hwlocality::cpu::binding::CpuBindingFlags;
use hwlocality::object::types::ObjectType;
use hwlocality::Topology as HwlocTopology;
use serde::Serialize;

use crate::topology::{CpuSet, NodeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMethod {
    Hwloc,
    CoreAffinity,
}

impl std::fmt::Display for PinMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinMethod::Hwloc => "hwloc",
            PinMethod::CoreAffinity => "core_affinity",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot pin thread to CPU {cpu}: hwloc said {hwloc}; sched_setaffinity failed too")]
pub struct PinError {
    pub cpu: u32,
    pub hwloc: String,
}

/// hwloc's topology is loaded once per process: loading it walks sysfs and
/// takes milliseconds, and it is `Send + Sync`.
fn hwloc() -> Result<&'static HwlocTopology, String> {
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

/// Binds the calling thread to one CPU.
pub fn pin_current_thread(cpu: u32) -> Result<PinMethod, PinError> {
    let hwloc_err = match hwloc() {
        Ok(topo) => {
            let mut set = hwlocality::cpu::cpuset::CpuSet::new();
            set.set(cpu as usize);
            match topo.bind_cpu(&set, CpuBindingFlags::THREAD | CpuBindingFlags::STRICT) {
                Ok(()) => return Ok(PinMethod::Hwloc),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e,
    };
    let core = core_affinity::CoreId { id: cpu as usize };
    if core_affinity::set_for_current(core) {
        Ok(PinMethod::CoreAffinity)
    } else {
        Err(PinError {
            cpu,
            hwloc: hwloc_err,
        })
    }
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only returns a value.
    let cpu = unsafe { libc::sched_getcpu() };
    (cpu >= 0).then_some(cpu as u32)
}

/// The CPU for worker `index` of a node: one thread per CPU, in order.
pub fn cpu_for_worker(cpus: &CpuSet, index: usize) -> Option<u32> {
    cpus.iter().nth(index % cpus.len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_cpu_zero_and_the_kernel_agrees() {
        let method = std::thread::spawn(|| {
            let m = pin_current_thread(0).expect("CPU 0 exists on every machine");
            // Give the scheduler a chance to move us, then ask the kernel.
            std::thread::yield_now();
            assert_eq!(current_cpu(), Some(0));
            m
        })
        .join()
        .unwrap();
        assert_eq!(method, PinMethod::Hwloc);
    }

    #[test]
    fn one_cpu_per_core_is_a_subset() {
        let all: CpuSet = (0..crate::topology::idset::MAX_ID).collect();
        let cores = one_per_core(&all).unwrap();
        let online: CpuSet = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .parse()
            .unwrap();
        assert!(cores.is_subset(&online) && !cores.is_empty());
    }

    #[test]
    fn hwloc_lists_node_zero() {
        let nodes = hwloc_node_cpus().unwrap();
        assert!(nodes.contains_key(&0));
    }
}
