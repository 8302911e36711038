//! `tierbench bw`, `latency` (one point or the loaded-latency curve) and
//! `matrix` (latency, bandwidth per read/write mix, and the curve): from a
//! CPU node to a memory node.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::discover;
use crate::cli::{BwArgs, Format, LatencyArgs, MatrixArgs};
use crate::error::input;
use crate::knobs::{self, Knob, KnobError, KnobPlan};
use crate::report::characterisation;
use crate::report::csv::TypedSink;
use crate::report::outdir::{Existing, OutDir};
use crate::report::table::Table;
use crate::report::utc_stamp;
use crate::sysfs::SysRoot;
use crate::topology::Topology;
use crate::workload::bandwidth::BwKernel;
use crate::workload::measure;
use crate::workload::sweep::{SweepPoint, SweepSpec};

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
    let kernels = match (a.kernel, a.sweep) {
        (Some(k), _) => vec![k],
        (None, false) => vec![BwKernel::Read],
        (None, true) => vec![BwKernel::Read, BwKernel::Triad],
    };
    for k in &kernels {
        measure::check_bw_size(a.size, *k, a.threads, "--size").map_err(input)?;
    }
    if a.duration.is_zero() {
        return Err(input("--duration must be more than 0"));
    }
    if a.sweep {
        let spec = SweepSpec {
            kernels,
            ratios: a.ratios.clone(),
            size_bytes: a.size as usize,
            cpus: crate::buffer::worker_cpus(cpus, a.threads),
            cpu_node,
            page: a.page_size,
            duration: a.duration,
            fast: topo.roles.fast.clone(),
            slow: topo.roles.slow.clone(),
            emulated: crate::probe::is_emulated(),
        };
        return sweep(&a, &topo, spec);
    }
    let spec = crate::workload::measure::BwSpec {
        kernel: kernels[0],
        size_bytes: a.size as usize,
        cpus: crate::buffer::worker_cpus(cpus, a.threads),
        mem_node,
        page: a.page_size,
        duration: a.duration,
    };
    let r = crate::workload::measure::bandwidth(&spec)?;
    if a.json {
        crate::outln!("{}", serde_json::to_string(&r)?)?;
    } else {
        crate::outln!(
            "{} {} thread(s) cpu node {cpu_node} -> mem node {mem_node}, {} MiB: {:.0} MB/s \
             (MB = 10^6 bytes, STREAM counting; {} passes in {:.2} s)",
            r.kernel,
            r.threads,
            r.size_bytes >> 20,
            r.mb_per_s,
            r.passes,
            r.seconds
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The chase's working set: the one asked for, or the default for this
/// machine's caches with the line that says so, for stderr once the
/// input is checked (bad input gets its error line alone).
fn chase_size(asked: Option<u64>, command: &str) -> (u64, Option<String>) {
    match asked {
        Some(size) => (size, None),
        None => {
            let (size, why) =
                crate::workload::chase::default_size(crate::topology::hwloc::last_level_cache());
            let flag = if command == "matrix" {
                "--latency-size"
            } else {
                "--size"
            };
            let line = format!("tierbench {command}: chase working set {why} ({flag} to choose)");
            (size, Some(line))
        }
    }
}

fn say(line: &Option<String>) {
    if let Some(l) = line {
        crate::errln!("{l}");
    }
}

pub fn latency(mut a: LatencyArgs) -> anyhow::Result<ExitCode> {
    let topo = discover()?;
    let (size, size_line) = chase_size(a.size, "latency");
    a.size = Some(size);
    if a.sweep.curve {
        return curve(a, &topo, &size_line);
    }
    let (cpu_node, mem_node) = nodes_for(&topo, a.cpu_node, a.mem_node)?;
    if a.out.is_some() {
        return Err(input(
            "-o writes a curve's results: add --curve, or leave -o out for one point",
        ));
    }
    if a.stride < 8 || a.stride % 8 != 0 {
        return Err(input(format!(
            "--stride {} must be a multiple of 8 bytes",
            a.stride
        )));
    }
    if !(1..=8).contains(&a.chains) {
        return Err(input(format!("--chains {} must be 1 to 8", a.chains)));
    }
    if size < a.stride * 2 * a.chains as u64 {
        return Err(input(format!(
            "--size {size} is too small for the chase: it needs at least two slots per chain"
        )));
    }
    let duration = a.duration.unwrap_or(Duration::from_secs(3));
    measure::check_timing(duration, a.sample).map_err(input)?;
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let cpu = cpus.first().expect("node with CPUs");
    let threads = a.load_threads.unwrap_or(0);
    let load = if threads > 0 {
        let cpus = load_cpus(&topo, cpu_node, threads)?;
        measure::check_bw_size(a.load_size, a.load_kernel, threads, "--load-size")
            .map_err(input)?;
        Some(crate::workload::measure::LoadSpec {
            kernel: a.load_kernel,
            size_bytes: a.load_size as usize,
            cpus,
            delay: a.delay,
        })
    } else {
        None
    };
    let spec = crate::workload::measure::ChaseSpec {
        size_bytes: size as usize,
        stride: a.stride as usize,
        window: a.window as usize,
        chains: a.chains,
        cpu,
        mem_node,
        page: a.page_size.unwrap_or(crate::buffer::PageKind::Base),
        duration,
        sample: a.sample,
        load,
        seed: a.seed,
    };
    say(&size_line);
    let r = std::thread::spawn(move || crate::workload::measure::latency(&spec))
        .join()
        .expect("chase thread")?;
    if a.json {
        crate::outln!("{}", serde_json::to_string(&r)?)?;
    } else {
        let s = r.stats;
        crate::outln!(
            "chase cpu node {cpu_node} -> mem node {mem_node}, {} MiB, stride {} B, {} chain(s): \
             {:.2} ns/load mean; best {:.2}, median {:.2}, worst {:.2} over {} samples of {:.0} ms \
             ({} loads; cycle built in {:.2} s)",
            r.size_bytes >> 20,
            r.stride,
            r.chains,
            r.ns_per_load,
            s.best_ns,
            s.median_ns,
            s.worst_ns,
            s.samples,
            r.sample_ms,
            r.loads,
            r.build_seconds
        )?;
        if let (Some(k), Some(mb)) = (&r.load_kernel, r.load_mb_per_s) {
            crate::outln!(
                "load: {} x {k} ({}) on node {cpu_node}'s other CPUs: {mb:.0} MB/s during \
                 the chase",
                r.load_threads,
                delay_text(Some(a.delay), r.load_delay_ns)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A load's delay for the output: `idle`, `flat out`, or its spin steps
/// per line with their time.
fn delay_text(delay: Option<u32>, delay_ns: Option<f64>) -> String {
    match (delay, delay_ns) {
        (None, _) => "idle".into(),
        (Some(0), _) => "flat out".into(),
        (Some(d), Some(ns)) => format!("delay {d} ({ns:.1} ns/line)"),
        (Some(d), None) => format!("delay {d}"),
    }
}

/// `threads` CPUs of `cpu_node` besides its first (the chase's).
fn load_cpus(topo: &Topology, cpu_node: u32, threads: usize) -> anyhow::Result<Vec<u32>> {
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let chase = cpus.first().expect("node with CPUs");
    let others: Vec<u32> = cpus.iter().filter(|&c| c != chase).collect();
    if threads > others.len() {
        return Err(input(format!(
            "--load-threads {threads} is more than node {cpu_node}'s {} CPUs besides the \
             chase's (CPU {chase}): lower it",
            others.len()
        )));
    }
    Ok(others[..threads].to_vec())
}

/// The curve spec of `latency --curve` and `matrix --curve`.
#[allow(clippy::too_many_arguments)]
fn curve_spec(
    topo: &Topology,
    cpu_node: u32,
    mem_nodes: Vec<u32>,
    load_threads: Option<usize>,
    load_kernel: BwKernel,
    load_size: u64,
    chase_size: u64,
    page: crate::buffer::PageKind,
    delays: crate::workload::curve::Delays,
    duration: Duration,
    sample: Duration,
) -> anyhow::Result<crate::workload::curve::CurveSpec> {
    let cpus = &topo.node(cpu_node).expect("checked").cpus;
    let others = cpus.len() - 1;
    let load_cpus = load_cpus(topo, cpu_node, load_threads.unwrap_or(others))?;
    let spec = crate::workload::curve::CurveSpec {
        cpu_node,
        chase_cpu: cpus.first().expect("node with CPUs"),
        load_cpus,
        load_kernel,
        load_size: load_size as usize,
        chase_size: chase_size as usize,
        page,
        mem_nodes,
        delays,
        duration,
        sample,
    };
    spec.check(topo).map_err(input)?;
    Ok(spec)
}

/// `latency --curve`: the curve of every memory node (or --mem-node).
fn curve(a: LatencyArgs, topo: &Topology, size_line: &Option<String>) -> anyhow::Result<ExitCode> {
    let cpu_node = topo.cpu_node(a.cpu_node, "--cpu-node").map_err(input)?.id;
    let mem_nodes = match a.mem_node {
        Some(m) => vec![nodes_for(topo, Some(cpu_node), Some(m))?.1],
        None => topo.memory_nodes().iter().collect(),
    };
    if a.stride != 64 || a.chains != 1 {
        return Err(input(
            "--curve chases one chain of cache lines: leave --stride and --chains out",
        ));
    }
    if a.delay != 0 {
        return Err(input("--curve sweeps --delays: leave --delay out"));
    }
    let duration = a.duration.unwrap_or(Duration::from_secs(1));
    let spec = curve_spec(
        topo,
        cpu_node,
        mem_nodes,
        a.load_threads,
        a.load_kernel,
        a.load_size,
        a.size.expect("set by latency()"),
        a.page_size.unwrap_or(crate::buffer::PageKind::Thp),
        a.sweep.delays.clone(),
        duration,
        a.sample,
    )?;
    let _claimed = match &a.out {
        Some(dir) => Some(create_out(dir, Existing::from_flag(a.replace), topo, None)?),
        None => None,
    };
    say(size_line);
    let t0 = std::time::Instant::now();
    let points = run_curve(&spec, topo, a.out.as_deref())?;
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&points)?)?;
    } else {
        crate::out!("{}", characterisation::curve_table(&points))?;
        print_notes(topo, &mut std::io::stdout().lock())?;
    }
    crate::errln!(
        "tierbench latency: curve of {} node(s) in {:.0} s",
        spec.mem_nodes.len(),
        t0.elapsed().as_secs_f64()
    );
    if let Some(dir) = &a.out {
        chart(dir, &points);
    }
    Ok(ExitCode::SUCCESS)
}

/// `bw --sweep`: the interleave weights owned for the sweep (lock, state
/// file, guard), each point to `sweep.csv` as measured, then the table,
/// the best ratio per kernel and the chart.
fn sweep(a: &BwArgs, topo: &Topology, spec: SweepSpec) -> anyhow::Result<ExitCode> {
    if spec.fast.is_empty() || spec.slow.is_empty() {
        return Err(input(format!(
            "--sweep spreads the buffer over a fast and a slow tier, and this machine has {}: \
             see `tierbench topo`, or run it on an emulated machine (tierbench vm)",
            if spec.slow.is_empty() {
                "no slow tier"
            } else {
                "no fast tier"
            }
        )));
    }
    let sys = SysRoot::live();
    let mut plan = KnobPlan::default();
    if spec.ratios.iter().any(|r| r.sets_weights()) {
        for k in Knob::interleave_knobs(&sys) {
            plan.own(k);
        }
    }
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let state = knobs::default_state_file();
    let lease = plan
        .check(&sys, &state, is_root)
        .map_err(KnobError::into_anyhow)?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("tierbench-results/sweep-{}", utc_stamp())));
    let _claimed = create_out(&dir, Existing::from_flag(a.replace), topo, None)?;
    let mut file = TypedSink::create(&dir.join(SWEEP_CSV))?;
    let _stop = crate::interrupt::install()?;
    let guard = lease.apply(&sys, &state)?;
    let mut emit = |p: &SweepPoint| -> std::io::Result<()> {
        crate::errln!(
            "sweep: {} {}: {}",
            p.kernel,
            p.ratio,
            p.mb_per_s
                .map_or_else(|| p.note.clone(), |mb| format!("{mb:.0} MB/s"))
        );
        file.push(p)
    };
    let points = crate::workload::sweep::run(&spec, &sys, &mut emit);
    guard.restore()?;
    let points = points?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", sweep_table(&points).render())?;
    let best = if spec.emulated {
        "highest (emulated, not comparable)"
    } else {
        "best"
    };
    for b in crate::workload::sweep::best(&points) {
        writeln!(
            out,
            "{best} {}: {} (weights {}), {:.0} MB/s{}",
            b.kernel,
            b.ratio,
            b.weights,
            b.mb_per_s.unwrap_or(0.0),
            b.gain_vs_fast_only
                .map_or(String::new(), |g| format!(", {g:.2}x fast only"))
        )?;
    }
    if spec.emulated {
        writeln!(
            out,
            "note: emulated machine: the pages' placement is real, the bandwidths are the \
             host's and not comparable between nodes (comparable = false in {SWEEP_CSV})"
        )?;
    }
    match crate::report::plot::write_sweep(&points, &dir.join("sweep")) {
        Ok(files) => {
            for f in files {
                crate::errln!("tierbench: chart {}", f.display());
            }
        }
        Err(e) => crate::errln!("tierbench: note: no chart drawn: {e}"),
    }
    writeln!(out, "results: {}", dir.join(SWEEP_CSV).display())?;
    Ok(ExitCode::SUCCESS)
}

/// The file `bw --sweep` writes its points to.
pub const SWEEP_CSV: &str = "sweep.csv";

fn sweep_table(points: &[SweepPoint]) -> Table {
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    let mut t = Table::new([
        "kernel",
        "fast:slow",
        "weights",
        "MB/s",
        "vs fast only",
        "fast (weights)",
        "fast (found)",
        "off by",
        "note",
    ]);
    for p in points {
        t.push([
            p.kernel.clone(),
            p.ratio.clone(),
            p.weights.clone(),
            p.mb_per_s.map_or("-".into(), |m| format!("{m:.0}")),
            p.gain_vs_fast_only
                .map_or("-".into(), |g| format!("{g:.2}x")),
            pct(p.fast_share_expected),
            pct(p.fast_share),
            p.placement_error_pts
                .map_or("-".into(), |e| format!("{e:.1} pts")),
            p.note.clone(),
        ]);
    }
    t
}

/// Runs the curve, each point to stderr and to `dir/curve.csv` as measured.
fn run_curve(
    spec: &crate::workload::curve::CurveSpec,
    topo: &Topology,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<Vec<crate::workload::curve::CurvePoint>> {
    let mut file = dir
        .map(|d| TypedSink::create(&d.join(characterisation::CURVE_CSV)))
        .transpose()?;
    let mut emit = |p: &crate::workload::curve::CurvePoint| -> std::io::Result<()> {
        crate::errln!(
            "curve: node {} {}: load {:.0} MB/s, median {:.1} ns",
            p.mem_node,
            delay_text(p.delay, p.delay_ns),
            p.load_mb_per_s,
            p.latency_median_ns
        );
        match file.as_mut() {
            Some(f) => f.push(p),
            None => Ok(()),
        }
    };
    crate::workload::curve::measure(spec, topo, &mut emit)
}

/// Creates a characterisation directory with its `system.json`.
/// Claims the results directory (held until the measurement ends) and
/// writes its system.json.
fn create_out(
    dir: &std::path::Path,
    existing: Existing,
    topo: &Topology,
    scenario: Option<crate::report::schema::ScenarioRecord>,
) -> anyhow::Result<OutDir> {
    let claimed = OutDir::claim(dir, existing)?;
    let caps = crate::probe::Capabilities::probe(topo);
    super::run::system_record(topo, &caps, crate::probe::is_emulated(), None, scenario)?
        .write(dir)?;
    Ok(claimed)
}

/// Draws `dir/curve.svg` and `.png` from the points just measured; a
/// missing font is a note, not a failure of the measurement.
fn chart(dir: &std::path::Path, points: &[crate::workload::curve::CurvePoint]) {
    if points.is_empty() {
        return;
    }
    let panels = crate::report::plot::curve_panels(&[("", points)]);
    match crate::report::plot::write_curve(&panels, &dir.join("curve")) {
        Ok(files) => {
            for f in files {
                crate::errln!("tierbench: chart {}", f.display());
            }
        }
        Err(e) => crate::errln!("tierbench: note: no chart drawn: {e}"),
    }
}

fn print_notes(topo: &Topology, out: &mut impl Write) -> std::io::Result<()> {
    for n in &topo.notes {
        writeln!(out, "note: {n}")?;
    }
    // The topology's own notes may already say it.
    if crate::probe::is_emulated() && !topo.notes.iter().any(|n| n.contains("emulated")) {
        writeln!(
            out,
            "note: emulated NUMA (QEMU): nodes share host RAM, so the gaps between nodes are not \
             real"
        )?;
    }
    Ok(())
}

pub fn matrix(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    matrix_of(a, None)
}

/// `matrix`, or the `latency-bandwidth` scenario (its record kept in
/// system.json).
pub fn matrix_of(
    a: MatrixArgs,
    scenario: Option<crate::report::schema::ScenarioRecord>,
) -> anyhow::Result<ExitCode> {
    use crate::workload::matrix;
    let topo = discover()?;
    let (latency_size, size_line) = chase_size(a.latency_size, "matrix");
    let spec = matrix::MatrixSpec {
        latency_size: latency_size as usize,
        bw_size: a.bw_size as usize,
        threads: a.threads,
        page: a.page_size,
        duration: a.duration,
        mixes: a.mixes.clone(),
    };
    matrix::check(&spec, &topo).map_err(input)?;
    let curve = if a.sweep.curve {
        let cpu_node = topo.cpu_node(None, "--cpu-node").map_err(input)?.id;
        Some(curve_spec(
            &topo,
            cpu_node,
            topo.memory_nodes().iter().collect(),
            None,
            BwKernel::Read,
            a.bw_size,
            latency_size,
            a.page_size,
            a.sweep.delays.clone(),
            a.duration,
            a.duration.min(Duration::from_millis(100)),
        )?)
    } else {
        None
    };
    let _claimed = match &a.out {
        Some(dir) => Some(create_out(
            dir,
            Existing::from_flag(a.replace),
            &topo,
            scenario,
        )?),
        None => None,
    };
    let file = |name| {
        a.out
            .as_deref()
            .map(|d| TypedSink::create(&d.join(name)))
            .transpose()
    };
    let (mut cells_csv, mut mixes_csv) = (
        file(characterisation::MATRIX_CSV)?,
        file(characterisation::MIXES_CSV)?,
    );
    say(&size_line);
    let t0 = std::time::Instant::now();
    let mut cells = Vec::new();
    let mut mixes = Vec::new();
    for (c, m) in matrix::cells(&topo) {
        crate::errln!("matrix: cpu node {c} -> mem node {m} ...");
        let (cell, rows) = matrix::measure(&spec, &topo, c, m)?;
        if let Some(w) = cells_csv.as_mut() {
            w.push(&cell)?;
        }
        for r in &rows {
            if let Some(w) = mixes_csv.as_mut() {
                w.push(r)?;
            }
        }
        cells.push(cell);
        mixes.extend(rows);
    }
    let matrix_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let points = match &curve {
        Some(spec) => run_curve(spec, &topo, a.out.as_deref())?,
        None => Vec::new(),
    };
    let curve_s = t1.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cells": cells, "mixes": mixes, "curve": points
            }))?
        )?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for c in &cells {
                w.serialize(c)?;
            }
            w.flush()?;
        }
        Format::Table => {
            render_matrix(&mut out, &topo, &cells)?;
            writeln!(out, "{}", characterisation::mixes_table(&mixes))?;
            if !points.is_empty() {
                write!(out, "{}", characterisation::curve_table(&points))?;
            }
            print_notes(&topo, &mut out)?;
        }
    }
    crate::errln!(
        "tierbench matrix: {} cells x {} kernels in {matrix_s:.0} s{}",
        cells.len(),
        matrix::kernels(&spec).len(),
        if curve.is_some() {
            format!(", curve in {curve_s:.0} s")
        } else {
            String::new()
        }
    );
    if let Some(dir) = &a.out {
        chart(dir, &points);
    }
    Ok(ExitCode::SUCCESS)
}

/// The latency and read-bandwidth matrices as two tables.
fn render_matrix(
    out: &mut impl Write,
    topo: &Topology,
    cells: &[crate::workload::matrix::Cell],
) -> std::io::Result<()> {
    use crate::workload::matrix::Cell;
    let mems: Vec<u32> = topo.memory_nodes().iter().collect();
    let label = |m: u32| {
        let c = cells.iter().find(|c| c.mem_node == m).expect("measured");
        characterisation::node_title(m, c.mem_role, c.cpuless)
    };
    type Get = Box<dyn Fn(&Cell) -> String>;
    let tables: [(&str, Get); 2] = [
        (
            "idle latency, ns per load (pointer chase, one chain)",
            Box::new(|c: &Cell| format!("{:.1}", c.latency_ns)),
        ),
        (
            "read bandwidth, MB/s (10^6 bytes), all CPUs of the CPU node",
            Box::new(|c: &Cell| format!("{:.0}", c.read_mb_per_s)),
        ),
    ];
    for (title, get) in tables {
        writeln!(out, "{title}")?;
        let mut t = Table::new(
            std::iter::once("cpu node \\ memory".to_string()).chain(mems.iter().map(|&m| label(m))),
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
    Ok(())
}
