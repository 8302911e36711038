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

/// The calling thread bound to some CPUs until this drops, then back to
/// the CPUs it had (the sampler, kept off the workers' CPUs).
pub struct ThreadBinding {
    previous: libc::cpu_set_t,
}

/// The CPUs the calling thread may run on now.
pub fn current_affinity() -> std::io::Result<CpuSet> {
    let set = get_affinity()?;
    Ok((0..libc::CPU_SETSIZE as u32)
        // SAFETY: CPU_ISSET reads a bit of a set this function owns.
        .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
        .collect())
}

fn get_affinity() -> std::io::Result<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(set)
    }
}

fn set_affinity(set: &libc::cpu_set_t) -> std::io::Result<()> {
    // SAFETY: set points at a whole cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Binds the calling thread to `cpus` (non-empty) until the binding drops.
pub fn bind_current_thread(cpus: &CpuSet) -> std::io::Result<ThreadBinding> {
    let previous = get_affinity()?;
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes one
    // bit inside it (ids below CPU_SETSIZE).
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cpus
            .iter()
            .filter(|&c| (c as usize) < libc::CPU_SETSIZE as usize)
        {
            libc::CPU_SET(c as usize, &mut set);
        }
        set
    };
    set_affinity(&set)?;
    Ok(ThreadBinding { previous })
}

impl Drop for ThreadBinding {
    fn drop(&mut self) {
        let _ = set_affinity(&self.previous);
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
    fn a_binding_is_undone_when_it_drops() {
        std::thread::spawn(|| {
            let before = current_affinity().unwrap();
            let one: CpuSet = before.iter().take(1).collect();
            {
                let _b = bind_current_thread(&one).unwrap();
                assert_eq!(current_affinity().unwrap(), one);
            }
            assert_eq!(current_affinity().unwrap(), before);
        })
        .join()
        .unwrap();
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
