//! Node matrices: idle latency and bandwidth from every node with CPUs to
//! every node with memory (CPU-less nodes included), as MLC's latency and
//! bandwidth matrices. One cell at a time, each with its own buffer bound
//! to the memory node, so cells do not disturb each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bandwidth::BwKernel;
use super::measure::{self, BwSpec, ChaseSpec};
use crate::buffer::{BufferError, PageKind};
use crate::topology::{NodeId, Topology};

#[derive(Debug, Clone)]
pub struct MatrixSpec {
    pub latency_size: usize,
    pub bw_size: usize,
    /// Bandwidth threads per CPU node; `None`: all its CPUs.
    pub threads: Option<usize>,
    pub page: PageKind,
    pub duration: Duration,
    /// Bandwidth kernels measured per cell besides `read` (MLC's
    /// --peak_injection_bandwidth rows: 3:1, 2:1, 1:1, triad).
    pub mixes: Vec<BwKernel>,
}

/// MLC's peak-injection rows, in its order: all reads, 3:1, 2:1 and 1:1
/// reads:writes, and a STREAM triad.
pub const DEFAULT_MIXES: &[BwKernel] = &[
    BwKernel::Read,
    BwKernel::Mix {
        reads: 3,
        writes: 1,
    },
    BwKernel::Mix {
        reads: 2,
        writes: 1,
    },
    BwKernel::Mix {
        reads: 1,
        writes: 1,
    },
    BwKernel::Triad,
];

/// A memory node's role, from the kernel's tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemRole {
    #[serde(rename = "fast")]
    Fast,
    #[serde(rename = "slow")]
    Slow,
    #[serde(rename = "-")]
    Neither,
}

impl MemRole {
    /// The node's role from the kernel's tiers.
    pub fn of(topo: &Topology, node: NodeId) -> MemRole {
        if topo.roles.fast.contains(node) {
            MemRole::Fast
        } else if topo.roles.slow.contains(node) {
            MemRole::Slow
        } else {
            MemRole::Neither
        }
    }
}

impl std::fmt::Display for MemRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemRole::Fast => "fast",
            MemRole::Slow => "slow",
            MemRole::Neither => "-",
        })
    }
}

/// One measured cell: a row of `matrix.csv`, written and read back as this
/// type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub cpu_node: NodeId,
    pub mem_node: NodeId,
    pub mem_role: MemRole,
    pub cpuless: bool,
    pub latency_ns: f64,
    pub bw_threads: usize,
    /// Read bandwidth, 10^6 bytes per second.
    pub read_mb_per_s: f64,
    /// The latency chase's working set (empty in files written before it
    /// was recorded).
    #[serde(default)]
    pub latency_size_bytes: Option<u64>,
}

/// One kernel's bandwidth in one cell: a row of `mixes.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixRow {
    pub cpu_node: NodeId,
    pub mem_node: NodeId,
    pub mem_role: MemRole,
    pub cpuless: bool,
    pub kernel: String,
    /// Share of the counted bytes that are reads (read 1, mix:3:1 0.75,
    /// triad 0.667).
    pub read_share: f64,
    pub threads: usize,
    /// Counted bytes (loads + stores of the kernel), 10^6 per second.
    pub mb_per_s: f64,
}

/// Share of a kernel's counted bytes that are reads.
pub fn read_share(k: BwKernel) -> f64 {
    match k {
        BwKernel::Read => 1.0,
        BwKernel::Write | BwKernel::WriteNt => 0.0,
        BwKernel::Copy => 0.5,
        BwKernel::Triad => 2.0 / 3.0,
        BwKernel::Mix { reads, writes } => f64::from(reads) / f64::from(reads + writes),
    }
}

/// The kernels a cell measures: `read` first (the matrix's own column),
/// then the others asked for, each once.
pub fn kernels(spec: &MatrixSpec) -> Vec<BwKernel> {
    let mut out = vec![BwKernel::Read];
    for &k in &spec.mixes {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The cells in measuring order: CPU nodes outer, memory nodes inner.
pub fn cells(topo: &Topology) -> Vec<(NodeId, NodeId)> {
    let cpu_nodes: Vec<NodeId> = topo
        .nodes
        .iter()
        .filter(|n| !n.is_cpuless())
        .map(|n| n.id)
        .collect();
    let mem_nodes = topo.memory_nodes();
    cpu_nodes
        .iter()
        .flat_map(|&c| mem_nodes.iter().map(move |m| (c, m)))
        .collect()
}

/// Checks the spec against the machine before anything is measured.
pub fn check(spec: &MatrixSpec, topo: &Topology) -> Result<(), String> {
    if spec.duration.is_zero() {
        return Err("--duration must be more than 0, e.g. 2s".into());
    }
    for (c, _) in cells(topo) {
        let cpus = topo.node(c).expect("listed").cpus.len();
        let threads = spec.threads.unwrap_or(cpus);
        if threads == 0 || threads > cpus {
            return Err(format!(
                "--threads {threads} must be between 1 and node {c}'s {cpus} CPUs"
            ));
        }
        for k in kernels(spec) {
            measure::check_bw_size(spec.bw_size as u64, k, threads, "--bw-size")?;
        }
    }
    if spec.latency_size < 2 * 64 {
        return Err("--latency-size must hold at least two cache lines".into());
    }
    let free_min = topo
        .memory_nodes()
        .iter()
        .map(|m| topo.free_bytes(&crate::topology::NodeSet::single(m)))
        .min()
        .unwrap_or(0);
    let need = spec.bw_size.max(spec.latency_size) as u64;
    if need > free_min {
        return Err(format!(
            "a cell needs {} MiB on each memory node, and one has only {} MiB free: lower \
             --bw-size/--latency-size",
            need >> 20,
            free_min >> 20
        ));
    }
    Ok(())
}

/// Measures one cell: its latency, then each kernel's bandwidth.
pub fn measure(
    spec: &MatrixSpec,
    topo: &Topology,
    cpu_node: NodeId,
    mem_node: NodeId,
) -> Result<(Cell, Vec<MixRow>), BufferError> {
    let cpus = &topo.node(cpu_node).expect("listed").cpus;
    let threads = spec.threads.unwrap_or(cpus.len());
    let chase = ChaseSpec {
        size_bytes: spec.latency_size,
        stride: 64,
        window: spec.latency_size,
        chains: 1,
        cpu: cpus.first().expect("a CPU node"),
        mem_node,
        page: spec.page,
        duration: spec.duration,
        sample: spec.duration.min(Duration::from_millis(100)),
        load: None,
        seed: super::chase::DEFAULT_DRAW,
    };
    // The chase pins the thread it runs on: give it one of its own.
    let lat = std::thread::spawn(move || measure::latency(&chase))
        .join()
        .expect("chase thread")?;
    let role = MemRole::of(topo, mem_node);
    let cpuless = topo.node(mem_node).is_some_and(|n| n.is_cpuless());
    let mut mixes = Vec::new();
    for kernel in kernels(spec) {
        let bw = measure::bandwidth(&BwSpec {
            kernel,
            size_bytes: spec.bw_size,
            cpus: crate::buffer::worker_cpus(cpus, threads),
            mem_node,
            page: spec.page,
            duration: spec.duration,
        })?;
        mixes.push(MixRow {
            cpu_node,
            mem_node,
            mem_role: role,
            cpuless,
            kernel: kernel.to_string(),
            read_share: read_share(kernel),
            threads,
            mb_per_s: bw.mb_per_s,
        });
    }
    let cell = Cell {
        cpu_node,
        mem_node,
        mem_role: role,
        cpuless,
        latency_ns: lat.ns_per_load,
        bw_threads: threads,
        read_mb_per_s: mixes[0].mb_per_s,
        latency_size_bytes: Some(spec.latency_size as u64),
    };
    Ok((cell, mixes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::SysRoot;

    #[test]
    fn cells_cover_cpu_nodes_times_memory_nodes_cpuless_included() {
        let t = Topology::from_sysfs(&SysRoot::at(format!(
            "{}/tests/data/dram-cxl-6.12",
            env!("CARGO_MANIFEST_DIR")
        )))
        .unwrap();
        assert_eq!(cells(&t), vec![(0, 0), (0, 1)]);
    }

    #[test]
    fn matrix_csv_reads_back_as_written() {
        let cell = Cell {
            cpu_node: 0,
            mem_node: 1,
            mem_role: MemRole::Slow,
            cpuless: true,
            latency_ns: 301.5,
            bw_threads: 2,
            read_mb_per_s: 5120.0,
            latency_size_bytes: Some(128 << 20),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&cell).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.contains(",slow,true,"), "{text}");
        let back: Cell = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back, cell);
    }

    #[test]
    fn read_comes_first_and_every_kernel_once() {
        let spec = MatrixSpec {
            latency_size: 1 << 20,
            bw_size: 1 << 20,
            threads: None,
            page: PageKind::Base,
            duration: Duration::from_secs(1),
            mixes: vec![BwKernel::Triad, BwKernel::Read, BwKernel::Triad],
        };
        assert_eq!(kernels(&spec), vec![BwKernel::Read, BwKernel::Triad]);
        let shares: Vec<f64> = DEFAULT_MIXES.iter().map(|&k| read_share(k)).collect();
        assert_eq!(shares[..4], [1.0, 0.75, 2.0 / 3.0, 0.5]);
    }
}
