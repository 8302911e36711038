//! Loaded-latency curves, as Intel MLC's `--loaded_latency` and google's
//! multiload `-d`: for each memory node, a pointer chase from one CPU while
//! load threads on the same CPU node read the same node, their intensity
//! set by an injection delay. One point per delay (from the heaviest load,
//! delay 0, to the lightest) plus the chase alone; each point records the
//! load's delivered MB/s and the chase's best and median latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bandwidth::BwKernel;
use super::matrix::MemRole;
use super::measure::{spin_step_ns, Chase, ChaseSpec, ChaseStats, Load, LoadReading, LoadSpec};
use crate::buffer::{BufferError, PageKind};
use crate::topology::{NodeId, Topology};

/// With no delays given, the loaded points after the flat-out one ask for
/// these shares of the flat-out rate: the delay of each is the flat-out
/// time per line divided by its share, so the curve steps down evenly from
/// the bandwidth flat out to idle on any machine (fixed delays bunched
/// their points on a fast machine and skipped the bend on a slow one).
pub const DEFAULT_SHARES: &[f64] = &[
    0.6, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002,
];

/// With the default delays the sweep stops once this many loaded points in
/// a row have a median within [`SETTLED`] of the idle one: lighter loads
/// would only repeat the idle latency.
const SETTLED_POINTS: usize = 2;
/// Relative distance from the idle median counted as "no longer moved".
pub const SETTLED: f64 = 0.02;

/// Which delays to sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Delays {
    /// Flat out, then [`DEFAULT_SHARES`] of the flat-out rate, stopping
    /// where the load no longer moves the latency.
    Default,
    /// Exactly these, strictly increasing.
    Given(Vec<u32>),
}

impl Delays {
    /// Parses `0,100,1000`: whole numbers, strictly increasing.
    pub fn parse(s: &str) -> Result<Delays, String> {
        if s == "default" {
            return Ok(Delays::Default);
        }
        let mut out: Vec<u32> = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let d: u32 = part.parse().map_err(|_| {
                format!(
                    "delay {part:?} is not a whole number of spin steps >= 0: write e.g. \
                     0,100,1000"
                )
            })?;
            if let Some(&last) = out.last() {
                if d <= last {
                    return Err(format!(
                        "delays must increase: {d} comes after {last} (write e.g. 0,100,1000)"
                    ));
                }
            }
            out.push(d);
        }
        Ok(Delays::Given(out))
    }

    /// The delays after the flat-out point that ask `threads` threads for
    /// [`DEFAULT_SHARES`] of `flat_mb_per_s`, given a spin step's
    /// `step_ns`: strictly increasing, at least 1.
    fn shares_of(flat_mb_per_s: f64, kernel: BwKernel, threads: usize, step_ns: f64) -> Vec<u32> {
        let per_line = kernel.bytes_per_pass(crate::workload::bandwidth::LINE_BYTES) as f64;
        // Flat out, one thread moves a line every this many ns.
        let line_ns = threads as f64 * per_line / flat_mb_per_s * 1e3;
        let mut out: Vec<u32> = Vec::new();
        for share in DEFAULT_SHARES {
            let d = (line_ns / share / step_ns).round().max(1.0) as u32;
            let d = out.last().map_or(d, |&last| d.max(last + 1));
            out.push(d);
        }
        out
    }
}

impl std::str::FromStr for Delays {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Delays::parse(s)
    }
}

#[derive(Debug, Clone)]
pub struct CurveSpec {
    pub cpu_node: NodeId,
    /// The chase's CPU (the CPU node's first).
    pub chase_cpu: u32,
    /// The load threads' CPUs: others of the CPU node.
    pub load_cpus: Vec<u32>,
    pub load_kernel: BwKernel,
    pub load_size: usize,
    pub chase_size: usize,
    pub page: PageKind,
    pub mem_nodes: Vec<NodeId>,
    pub delays: Delays,
    /// How long each point is timed.
    pub duration: Duration,
    pub sample: Duration,
}

/// One point of a curve: a row of `curve.csv`, written and read back as
/// this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub cpu_node: NodeId,
    pub mem_node: NodeId,
    pub mem_role: MemRole,
    pub cpuless: bool,
    pub load_kernel: String,
    /// 0 for the idle point.
    pub load_threads: usize,
    /// Spin steps after every cache line per load thread; empty for the
    /// idle point.
    pub delay: Option<u32>,
    /// The delay as time (its steps times a step's cost measured on the
    /// load CPUs); empty for the idle and flat-out points and in files
    /// written before it was recorded.
    #[serde(default)]
    pub delay_ns: Option<f64>,
    /// What the load delivered while the chase was timed (0 when idle).
    pub load_mb_per_s: f64,
    pub latency_best_ns: f64,
    pub latency_median_ns: f64,
    pub latency_mean_ns: f64,
    pub latency_worst_ns: f64,
    pub samples: usize,
    /// The chase's working set (empty in files written before it was
    /// recorded).
    #[serde(default)]
    pub chase_size_bytes: Option<u64>,
}

impl CurveSpec {
    /// Checks the spec against the machine before anything runs.
    pub fn check(&self, topo: &Topology) -> Result<(), String> {
        if self.load_cpus.is_empty() {
            return Err(format!(
                "the curve needs a load thread: node {} has no CPU besides the chase's \
                 (CPU {}); pick a --cpu-node with two CPUs or more",
                self.cpu_node, self.chase_cpu
            ));
        }
        if self.mem_nodes.is_empty() {
            return Err("no memory node to measure".into());
        }
        if let Delays::Given(d) = &self.delays {
            if d.is_empty() {
                return Err("--delays is empty: give e.g. 0,100,1000".into());
            }
        }
        super::measure::check_timing(self.duration, self.sample)?;
        super::measure::check_bw_size(
            self.load_size as u64,
            self.load_kernel,
            self.load_cpus.len(),
            "--load-size",
        )?;
        let need = (self.load_size + self.chase_size) as u64;
        for &m in &self.mem_nodes {
            let free = topo.free_bytes(&crate::topology::NodeSet::single(m));
            if need > free {
                return Err(format!(
                    "a point needs {} MiB on node {m} (chase + load) and it has {} MiB free: \
                     lower --size/--load-size",
                    need >> 20,
                    free >> 20
                ));
            }
        }
        Ok(())
    }
}

/// Whether the sweep with default delays can stop: the last
/// [`SETTLED_POINTS`] loaded medians are within [`SETTLED`] of the idle one.
fn settled(idle_median: f64, loaded: &[CurvePoint]) -> bool {
    loaded.len() > SETTLED_POINTS
        && loaded[loaded.len() - SETTLED_POINTS..]
            .iter()
            .all(|p| (p.latency_median_ns - idle_median).abs() <= SETTLED * idle_median)
}

/// Measures the curve of every memory node in turn, calling `emit` with
/// each point as it is measured (the CSV keeps what finished). Runs on a
/// thread of its own, pinned to the chase's CPU. Returns the points and,
/// per node stopped early, the delay it stopped after.
pub fn measure(
    spec: &CurveSpec,
    topo: &Topology,
    emit: &mut (dyn FnMut(&CurvePoint) -> std::io::Result<()> + Send),
) -> anyhow::Result<Vec<CurvePoint>> {
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Vec<CurvePoint>> {
            crate::pin::pin_current_thread(spec.chase_cpu)?;
            let mut all = Vec::new();
            for &m in &spec.mem_nodes {
                all.extend(node_curve(spec, topo, m, emit)?);
            }
            Ok(all)
        })
        .join()
        .expect("curve thread panicked")
    })
}

fn node_curve(
    spec: &CurveSpec,
    topo: &Topology,
    mem_node: NodeId,
    emit: &mut (dyn FnMut(&CurvePoint) -> std::io::Result<()> + Send),
) -> anyhow::Result<Vec<CurvePoint>> {
    let chase_spec = ChaseSpec {
        size_bytes: spec.chase_size,
        stride: 64,
        window: spec.chase_size,
        chains: 1,
        cpu: spec.chase_cpu,
        mem_node,
        page: spec.page,
        duration: spec.duration,
        sample: spec.sample,
        load: None,
        seed: super::chase::DEFAULT_DRAW,
    };
    let mut chase = Chase::build(&chase_spec)?;
    let load = Load::new(
        &LoadSpec {
            kernel: spec.load_kernel,
            size_bytes: spec.load_size,
            cpus: spec.load_cpus.clone(),
            delay: 0,
        },
        mem_node,
        spec.page,
    )
    .map_err(|e: BufferError| anyhow::anyhow!(e))?;
    chase.warm_up();
    let point = |delay: Option<u32>, load: Option<LoadReading>, stats: ChaseStats| CurvePoint {
        cpu_node: spec.cpu_node,
        mem_node,
        mem_role: MemRole::of(topo, mem_node),
        cpuless: topo.node(mem_node).is_some_and(|n| n.is_cpuless()),
        load_kernel: spec.load_kernel.to_string(),
        load_threads: if delay.is_some() {
            spec.load_cpus.len()
        } else {
            0
        },
        delay,
        delay_ns: load.and_then(|l| l.delay_ns),
        load_mb_per_s: load.map_or(0.0, |l| l.mb_per_s),
        latency_best_ns: stats.best_ns,
        latency_median_ns: stats.median_ns,
        latency_mean_ns: stats.mean_ns,
        latency_worst_ns: stats.worst_ns,
        samples: stats.samples,
        chase_size_bytes: Some(spec.chase_size as u64),
    };
    let (_, idle) = chase.time(spec.duration, spec.sample);
    let idle = point(None, None, idle);
    emit(&idle)?;
    let mut loaded: Vec<CurvePoint> = Vec::new();
    let mut at = |d: u32, loaded: &mut Vec<CurvePoint>| -> anyhow::Result<()> {
        let ((_, stats), reading) = load.beside(d, || chase.time(spec.duration, spec.sample))?;
        let p = point(Some(d), Some(reading), stats);
        emit(&p)?;
        loaded.push(p);
        Ok(())
    };
    match &spec.delays {
        Delays::Given(delays) => {
            for &d in delays {
                at(d, &mut loaded)?;
            }
        }
        Delays::Default => {
            at(0, &mut loaded)?;
            let flat = loaded[0].load_mb_per_s;
            let step_ns = spin_step_ns();
            let threads = spec.load_cpus.len();
            for d in Delays::shares_of(flat, spec.load_kernel, threads, step_ns) {
                at(d, &mut loaded)?;
                if settled(idle.latency_median_ns, &loaded) {
                    break;
                }
            }
        }
    }
    let mut out = vec![idle];
    out.extend(loaded);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_must_be_increasing_whole_numbers() {
        assert_eq!(
            Delays::parse("0, 100,1000").unwrap(),
            Delays::Given(vec![0, 100, 1000])
        );
        assert_eq!(Delays::parse("default").unwrap(), Delays::Default);
        assert!(Delays::parse("0,100,50").unwrap_err().contains("increase"));
        assert!(Delays::parse("0,0").unwrap_err().contains("increase"));
        assert!(Delays::parse("-5,10").unwrap_err().contains("whole number"));
        assert!(Delays::parse("1e3").unwrap_err().contains("whole number"));
        assert!(Delays::parse("").is_err());
    }

    fn at(median: f64) -> CurvePoint {
        CurvePoint {
            cpu_node: 0,
            mem_node: 0,
            mem_role: MemRole::Fast,
            cpuless: false,
            load_kernel: "read".into(),
            load_threads: 1,
            delay: Some(0),
            delay_ns: None,
            load_mb_per_s: 1.0,
            latency_best_ns: median,
            latency_median_ns: median,
            latency_mean_ns: median,
            latency_worst_ns: median,
            samples: 1,
            chase_size_bytes: None,
        }
    }

    #[test]
    fn the_default_sweep_stops_once_the_load_no_longer_moves_the_latency() {
        let idle = 100.0;
        assert!(!settled(idle, &[at(200.0), at(101.0)]));
        assert!(!settled(idle, &[at(200.0), at(150.0), at(101.0)]));
        assert!(settled(idle, &[at(200.0), at(101.0), at(99.0)]));
        assert!(
            !settled(idle, &[at(101.0), at(99.0)]),
            "needs a loaded point first"
        );
    }

    #[test]
    fn curve_csv_reads_back_as_written() {
        let mut idle = at(90.0);
        idle.delay = None;
        idle.load_threads = 0;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&idle).unwrap();
        w.serialize(at(120.0)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let back: Vec<CurvePoint> = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![idle, at(120.0)]);
    }
}
