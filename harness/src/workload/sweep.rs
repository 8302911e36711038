//! The bandwidth expansion sweep (what Intel MLC and the weighted-interleave
//! cover letter measure): read and triad bandwidth from a CPU node over a
//! buffer spread across the fast and slow tiers at a sweep of fast:slow
//! weighted-interleave ratios, from fast only through slow only and 1:1 to
//! 16:1, and the kernel's automatic weights. Where the pages landed is
//! counted for every point, so a ratio the kernel did not honour shows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::buffer::{BufferError, PageKind};
use crate::knobs::{self, Knob, WI_DIR};
use crate::mechanism::weights::{self, KernelWeights};
use crate::mempolicy::{Flags, Mode, Policy};
use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};
use crate::workload::bandwidth::BwKernel;
use crate::workload::measure::{self, BwSpec};

/// One point of the sweep: how the buffer is spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ratio {
    /// `1:0`: bound to the fast tier.
    FastOnly,
    /// `0:1`: bound to the slow tier.
    SlowOnly,
    /// `F:S`: weighted interleave, each fast node F, each slow node S.
    Weights(u8, u8),
    /// `auto`: weighted interleave at the kernel's weights (6.16+).
    Auto,
}

pub const DEFAULT_RATIOS: &str = "1:0,0:1,1:1,2:1,3:1,4:1,8:1,16:1,auto";

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Ratio, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(Ratio::Auto);
        }
        let bad = || {
            format!(
                "ratio {s:?}: write FAST:SLOW weights from 0 to 255 (1:0 fast only, 0:1 slow \
                 only, 4:1 ...) or auto"
            )
        };
        let (f, sl) = s.split_once(':').ok_or_else(bad)?;
        let f: u8 = f.trim().parse().map_err(|_| bad())?;
        let sl: u8 = sl.trim().parse().map_err(|_| bad())?;
        Ok(match (f, sl) {
            (0, 0) => return Err(bad()),
            (_, 0) => Ratio::FastOnly,
            (0, _) => Ratio::SlowOnly,
            (f, sl) => Ratio::Weights(f, sl),
        })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ratio::FastOnly => f.write_str("1:0"),
            Ratio::SlowOnly => f.write_str("0:1"),
            Ratio::Weights(a, b) => write!(f, "{a}:{b}"),
            Ratio::Auto => f.write_str("auto"),
        }
    }
}

/// `1:0,0:1,4:1,auto` as a list.
pub fn parse_ratios(s: &str) -> Result<Vec<Ratio>, String> {
    let ratios = s
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Ratio>, String>>()?;
    if ratios.is_empty() {
        return Err("give at least one ratio".into());
    }
    Ok(ratios)
}

impl Ratio {
    /// Whether the point writes interleave weights (so the run must own them).
    pub fn sets_weights(self) -> bool {
        matches!(self, Ratio::Weights(..) | Ratio::Auto)
    }
}

/// What the sweep measures.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub kernels: Vec<BwKernel>,
    pub ratios: Vec<Ratio>,
    pub size_bytes: usize,
    pub cpus: Vec<u32>,
    pub cpu_node: NodeId,
    pub page: PageKind,
    pub duration: Duration,
    pub fast: NodeSet,
    pub slow: NodeSet,
    /// QEMU's nodes share host memory: their bandwidths are not comparable.
    pub emulated: bool,
}

/// One measured (or refused) point: a row of `sweep.csv`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SweepPoint {
    pub kernel: String,
    pub ratio: String,
    /// `ok`, or `unsupported` with the reason in `note`.
    pub status: String,
    /// The weights in force for the point, as the kernel read them back.
    pub weights: String,
    pub cpu_node: NodeId,
    pub threads: usize,
    pub size_bytes: usize,
    pub mb_per_s: Option<f64>,
    /// The share of the buffer the weights put on the fast tier.
    pub fast_share_expected: Option<f64>,
    /// The share the census found there.
    pub fast_share: Option<f64>,
    /// Largest gap, in points, between a node's share of the pages and its
    /// share of the weights.
    pub placement_error_pts: Option<f64>,
    /// This point's bandwidth over the fast-only point's, same kernel.
    pub gain_vs_fast_only: Option<f64>,
    /// False on emulated machines: the bandwidths are the host's.
    pub comparable: bool,
    pub note: String,
}

/// Why a point was not measured.
struct Refused(String);

/// The policy and the weights in force for one ratio, set through the
/// knobs the sweep owns.
fn place(
    sys: &SysRoot,
    spec: &SweepSpec,
    ratio: Ratio,
) -> Result<(Policy, BTreeMap<NodeId, u8>), Refused> {
    let all = spec.fast.union(&spec.slow);
    let set = |knob: Knob, value: String| {
        knobs::set_owned(&knob, &value).map_err(|e| Refused(e.to_string()))
    };
    match ratio {
        Ratio::FastOnly => Ok((Policy::bind(spec.fast.clone()), weights_of(&spec.fast, 1))),
        Ratio::SlowOnly => Ok((Policy::bind(spec.slow.clone()), weights_of(&spec.slow, 1))),
        Ratio::Weights(f, s) => {
            if !sys.exists(WI_DIR) {
                return Err(Refused(
                    "this kernel has no weighted interleave (MPOL_WEIGHTED_INTERLEAVE, 6.9+)"
                        .into(),
                ));
            }
            for n in spec.fast.iter() {
                set(Knob::InterleaveWeight(n), f.to_string())?;
            }
            for n in spec.slow.iter() {
                set(Knob::InterleaveWeight(n), s.to_string())?;
            }
            Ok((wi(&all), in_force(sys)))
        }
        Ratio::Auto => {
            if !Knob::InterleaveAuto.exists(sys) {
                return Err(Refused(
                    "this kernel has no automatic interleave weights (6.16+)".into(),
                ));
            }
            set(Knob::InterleaveAuto, "true".into())?;
            Ok((wi(&all), in_force(sys)))
        }
    }
}

fn wi(nodes: &NodeSet) -> Policy {
    Policy::new(Mode::WeightedInterleave, Flags::NONE, nodes.clone())
}

fn weights_of(nodes: &NodeSet, w: u8) -> BTreeMap<NodeId, u8> {
    nodes.iter().map(|n| (n, w)).collect()
}

fn in_force(sys: &SysRoot) -> BTreeMap<NodeId, u8> {
    KernelWeights::read(sys)
        .map(|k| k.weights)
        .unwrap_or_default()
}

/// Runs every kernel at every ratio, each point to `emit` as measured.
/// The caller owns the interleave weights (a knob lease) when a ratio sets
/// them.
pub fn run(
    spec: &SweepSpec,
    sys: &SysRoot,
    emit: &mut dyn FnMut(&SweepPoint) -> std::io::Result<()>,
) -> anyhow::Result<Vec<SweepPoint>> {
    let mut out = Vec::new();
    for &kernel in &spec.kernels {
        let mut fast_only: Option<f64> = None;
        for &ratio in &spec.ratios {
            let mut p = SweepPoint {
                kernel: kernel.to_string(),
                ratio: ratio.to_string(),
                status: "ok".into(),
                weights: String::new(),
                cpu_node: spec.cpu_node,
                threads: spec.cpus.len(),
                size_bytes: spec.size_bytes,
                mb_per_s: None,
                fast_share_expected: None,
                fast_share: None,
                placement_error_pts: None,
                gain_vs_fast_only: None,
                comparable: !spec.emulated,
                note: String::new(),
            };
            match measure_point(spec, sys, kernel, ratio, &mut p) {
                Ok(()) => {
                    if ratio == Ratio::FastOnly {
                        fast_only = p.mb_per_s;
                    }
                    p.gain_vs_fast_only = p.mb_per_s.zip(fast_only).map(|(b, f)| b / f);
                }
                Err(Refused(why)) => {
                    p.status = "unsupported".into();
                    p.note = why;
                }
            }
            emit(&p)?;
            out.push(p);
        }
    }
    Ok(out)
}

fn measure_point(
    spec: &SweepSpec,
    sys: &SysRoot,
    kernel: BwKernel,
    ratio: Ratio,
    p: &mut SweepPoint,
) -> Result<(), Refused> {
    let (policy, weights) = place(sys, spec, ratio)?;
    let placed = match ratio {
        Ratio::FastOnly => spec.fast.clone(),
        Ratio::SlowOnly => spec.slow.clone(),
        _ => spec.fast.union(&spec.slow),
    };
    let bw = BwSpec {
        kernel,
        size_bytes: spec.size_bytes,
        cpus: spec.cpus.clone(),
        mem_node: placed.iter().next().unwrap_or(spec.cpu_node),
        page: spec.page,
        duration: spec.duration,
    };
    let (r, census) = match measure::bandwidth_placed(&bw, &policy) {
        Ok(x) => x,
        Err(BufferError::Policy { source, .. }) => {
            let why = crate::probe::diagnose(&policy, &source);
            return Err(Refused(format!("{source}: {why}")));
        }
        Err(e) => return Err(Refused(e.to_string())),
    };
    let on_placed: BTreeMap<NodeId, u8> = weights
        .iter()
        .filter(|(n, _)| placed.contains(**n))
        .map(|(n, w)| (*n, *w))
        .collect();
    p.weights = weights::weights_text(&on_placed);
    p.mb_per_s = Some(r.mb_per_s);
    p.threads = r.threads;
    p.size_bytes = r.size_bytes;
    let total_w: u64 = on_placed.values().map(|w| u64::from(*w)).sum();
    let fast_w: u64 = on_placed
        .iter()
        .filter(|(n, _)| spec.fast.contains(**n))
        .map(|(_, w)| u64::from(*w))
        .sum();
    p.fast_share_expected = (total_w > 0).then(|| fast_w as f64 / total_w as f64);
    p.fast_share = census.share_on(&spec.fast);
    p.placement_error_pts = weights::placement_error_pts(&on_placed, &placed, &census.per_node);
    Ok(())
}

/// The best point of each kernel: the highest bandwidth and its gain over
/// fast only.
pub fn best(points: &[SweepPoint]) -> Vec<&SweepPoint> {
    let mut kernels: Vec<&str> = points.iter().map(|p| p.kernel.as_str()).collect();
    kernels.dedup();
    kernels
        .into_iter()
        .filter_map(|k| {
            points
                .iter()
                .filter(|p| p.kernel == k && p.mb_per_s.is_some())
                .max_by(|a, b| {
                    a.mb_per_s
                        .unwrap_or(0.0)
                        .total_cmp(&b.mb_per_s.unwrap_or(0.0))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_parse_and_say_what_to_write() {
        let r = parse_ratios(DEFAULT_RATIOS).unwrap();
        assert_eq!(r[0], Ratio::FastOnly);
        assert_eq!(r[1], Ratio::SlowOnly);
        assert_eq!(r[2], Ratio::Weights(1, 1));
        assert_eq!(*r.last().unwrap(), Ratio::Auto);
        let shown: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        assert_eq!(shown.join(","), DEFAULT_RATIOS);
        for bad in ["0:0", "4", "4:x", "256:1", "auto:1", ""] {
            let e = parse_ratios(bad).unwrap_err();
            assert!(e.contains("FAST:SLOW"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_best_point_is_per_kernel() {
        let p = |kernel: &str, ratio: &str, mb: Option<f64>| SweepPoint {
            kernel: kernel.into(),
            ratio: ratio.into(),
            status: "ok".into(),
            weights: String::new(),
            cpu_node: 0,
            threads: 1,
            size_bytes: 1,
            mb_per_s: mb,
            fast_share_expected: None,
            fast_share: None,
            placement_error_pts: None,
            gain_vs_fast_only: None,
            comparable: true,
            note: String::new(),
        };
        let pts = [
            p("read", "1:0", Some(10.0)),
            p("read", "4:1", Some(12.0)),
            p("read", "auto", None),
            p("triad", "1:0", Some(8.0)),
            p("triad", "1:1", Some(7.0)),
        ];
        let b: Vec<(&str, &str)> = best(&pts)
            .iter()
            .map(|p| (p.kernel.as_str(), p.ratio.as_str()))
            .collect();
        assert_eq!(b, vec![("read", "4:1"), ("triad", "1:0")]);
    }
}
