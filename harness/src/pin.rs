//! Pinning threads to CPUs: hwloc first, `sched_setaffinity` through
//! core_affinity where hwloc cannot bind; which one worked is reported so
//! the output says how the threads were placed.

use hwlocality::cpu::binding::CpuBindingFlags;
use serde::Serialize;

use crate::topology::hwloc::hwloc;
use crate::topology::CpuSet;

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
        let cores = crate::topology::hwloc::one_per_core(&all).unwrap();
        let online: CpuSet = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .parse()
            .unwrap();
        assert!(cores.is_subset(&online) && !cores.is_empty());
    }

    #[test]
    fn hwloc_lists_node_zero() {
        let nodes = crate::topology::hwloc::hwloc_node_cpus().unwrap();
        assert!(nodes.contains_key(&0));
    }
}
