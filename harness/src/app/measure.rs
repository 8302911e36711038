//! `tierbench bw`, `latency` and `matrix`: bandwidth and latency from a
//! CPU node to a memory node.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::{check_out, discover};
use crate::cli::{BwArgs, Format, LatencyArgs, MatrixArgs};
use crate::error::input;
use crate::report::table::Table;
use crate::topology::Topology;
use crate::workload::bandwidth::BwKernel;

/// The CPU node (first with CPUs by default) and memory node (the CPU node
/// by default), checked against the machine.
fn nodes_for(topo: &Topology, cpu: Option<u32>, mem: Option<u32>) -> anyhow::Result<(u32, u32)> {
    let cpu_node = topo.cpu_node(cpu, "--cpu-node").map_err(input)?.id;
    let mem_node = mem.unwrap_or(cpu_node);
    if !topo.memory_nodes().contains(mem_node) {
        return Err(input(format!(
            "--mem-node {mem_node} is not a node with memory: this machine has {}",
            topo.memory_nodes()
        )));
    }
    Ok((cpu_node, mem_node))
}

/// Refuses a working set too small for `threads` workers of `kernel`.
fn check_bw_size(size: u64, kernel: BwKernel, threads: usize, flag: &str) -> anyhow::Result<()> {
    let min = crate::workload::measure::min_bw_size(kernel, threads);
    if size < min {
        return Err(input(format!(
            "{flag} {size} is too small for {kernel} x {threads} threads: at least {min} bytes \
             (one page per array per thread)"
        )));
    }
    Ok(())
}

pub fn bw(a: BwArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let limit = cpus.len()
        * if a.oversubscribe {
            crate::run::MAX_WORKERS_PER_CPU
        } else {
            1
        };
    if a.threads == 0 || a.threads > limit {
        return Err(input(format!(
            "--threads {} must be between 1 and node {cpu_node}'s {} CPUs ({cpus}), or up to \
             {} per CPU with --oversubscribe",
            a.threads,
            cpus.len(),
            crate::run::MAX_WORKERS_PER_CPU
        )));
    }
    check_bw_size(a.size, a.kernel, a.threads, "--size")?;
    if a.duration.is_zero() {
        return Err(input("--duration must be more than 0"));
    }
    let spec = crate::workload::measure::BwSpec {
        kernel: a.kernel,
        size_bytes: a.size as usize,
        cpus: crate::buffer::worker_cpus(cpus, a.threads),
        mem_node,
        page: a.page_size,
        duration: a.duration,
    };
    let r = crate::workload::measure::bandwidth(&spec)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} {} thread(s) cpu node {cpu_node} -> mem node {mem_node}, {} MiB: {:.0} MB/s \
             (MB = 10^6 bytes, STREAM counting; {} passes in {:.2} s)",
            r.kernel,
            r.threads,
            r.size_bytes >> 20,
            r.mb_per_s,
            r.passes,
            r.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn latency(a: LatencyArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    if a.stride < 8 || a.stride % 8 != 0 {
        return Err(input(format!(
            "--stride {} must be a multiple of 8 bytes",
            a.stride
        )));
    }
    if !(1..=8).contains(&a.chains) {
        return Err(input(format!("--chains {} must be 1 to 8", a.chains)));
    }
    if a.size < a.stride * 2 * a.chains as u64 {
        return Err(input(format!(
            "--size {} is too small for the chase: it needs at least two slots per chain",
            a.size
        )));
    }
    if a.duration.is_zero() {
        return Err(input("--duration must be more than 0"));
    }
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let cpu = cpus.first().expect("node with CPUs");
    let load = if a.load_threads > 0 {
        let others: Vec<u32> = cpus.iter().filter(|&c| c != cpu).collect();
        if a.load_threads > others.len() {
            return Err(input(format!(
                "--load-threads {} is more than node {cpu_node}'s {} CPUs besides the chase's \
                 (CPU {cpu}): lower it",
                a.load_threads,
                others.len()
            )));
        }
        check_bw_size(a.load_size, a.load_kernel, a.load_threads, "--load-size")?;
        Some(crate::workload::measure::LoadSpec {
            kernel: a.load_kernel,
            size_bytes: a.load_size as usize,
            cpus: others[..a.load_threads].to_vec(),
        })
    } else {
        None
    };
    let spec = crate::workload::measure::ChaseSpec {
        size_bytes: a.size as usize,
        stride: a.stride as usize,
        window: a.window as usize,
        chains: a.chains,
        cpu,
        mem_node,
        page: a.page_size,
        duration: a.duration,
        load,
    };
    let r = std::thread::spawn(move || crate::workload::measure::latency(&spec))
        .join()
        .expect("chase thread")?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "chase cpu node {cpu_node} -> mem node {mem_node}, {} MiB, stride {} B, {} chain(s): \
             {:.2} ns/load ({} loads; cycle built in {:.2} s)",
            r.size_bytes >> 20,
            r.stride,
            r.chains,
            r.ns_per_load,
            r.loads,
            r.build_seconds
        );
        if let (Some(k), Some(mb)) = (&r.load_kernel, r.load_mb_per_s) {
            println!(
                "load: {} x {k} on node {cpu_node}'s other CPUs: {mb:.0} MB/s during the chase",
                r.load_threads
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn matrix(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    use crate::workload::matrix;
    let topo = discover()?;
    let spec = matrix::MatrixSpec {
        latency_size: a.latency_size as usize,
        bw_size: a.bw_size as usize,
        threads: a.threads,
        page: a.page_size,
        duration: a.duration,
    };
    matrix::check(&spec, &topo).map_err(input)?;
    if let Some(dir) = &a.out {
        check_out(dir)?;
    }
    let mut csv = match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("matrix.csv");
            let f = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Some(csv::Writer::from_writer(f))
        }
        None => None,
    };
    let mut cells = Vec::new();
    for (c, m) in matrix::cells(&topo) {
        eprintln!("matrix: cpu node {c} -> mem node {m} ...");
        let cell = matrix::measure(&spec, &topo, c, m)?;
        if let Some(w) = csv.as_mut() {
            w.serialize(&cell)?;
            w.flush()?;
        }
        cells.push(cell);
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&cells)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for c in &cells {
                w.serialize(c)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mems: Vec<u32> = topo.memory_nodes().iter().collect();
            let label = |m: u32| {
                let c = cells.iter().find(|c| c.mem_node == m).expect("measured");
                format!(
                    "node{m} ({}{})",
                    c.mem_role,
                    if c.cpuless { ", no CPUs" } else { "" }
                )
            };
            for (title, get) in [
                (
                    "idle latency, ns per load (pointer chase, one chain)",
                    Box::new(|c: &matrix::Cell| format!("{:.1}", c.latency_ns))
                        as Box<dyn Fn(&matrix::Cell) -> String>,
                ),
                (
                    "read bandwidth, MB/s (10^6 bytes), all CPUs of the CPU node",
                    Box::new(|c: &matrix::Cell| format!("{:.0}", c.read_mb_per_s)),
                ),
            ] {
                writeln!(out, "{title}")?;
                let mut t = Table::new(
                    std::iter::once("cpu node \\ memory".to_string())
                        .chain(mems.iter().map(|&m| label(m))),
                );
                let mut cpu_nodes: Vec<u32> = cells.iter().map(|c| c.cpu_node).collect();
                cpu_nodes.dedup();
                for c in cpu_nodes {
                    t.push(
                        std::iter::once(format!("node{c}")).chain(mems.iter().map(|&m| {
                            cells
                                .iter()
                                .find(|x| x.cpu_node == c && x.mem_node == m)
                                .map(&get)
                                .unwrap_or_default()
                        })),
                    );
                }
                writeln!(out, "{}", t.render())?;
            }
            for n in &topo.notes {
                writeln!(out, "note: {n}")?;
            }
            if crate::probe::is_emulated() {
                writeln!(
                    out,
                    "note: emulated NUMA (QEMU): nodes share host RAM, so the gaps between \
                     columns are not real"
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
