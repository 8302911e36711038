//! Weighted interleave's per-node weights (6.9+): what the kernel holds,
//! what it would derive from bandwidth in `auto` mode (6.16+), putting a
//! variant's weights in place, and checking the census against them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::knobs::{self, Knob, KnobError, WI_DIR};
use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};
use crate::variant::Weights;

/// The weights the kernel holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelWeights {
    pub weights: BTreeMap<NodeId, u8>,
    /// `None` before 6.16 (no `auto` file).
    pub auto: Option<bool>,
}

impl KernelWeights {
    /// `None` where the kernel has no weighted interleave (before 6.9).
    pub fn read(sys: &SysRoot) -> Option<KernelWeights> {
        if !sys.exists(WI_DIR) {
            return None;
        }
        let mut weights = BTreeMap::new();
        for knob in Knob::interleave_knobs(sys) {
            if let Knob::InterleaveWeight(n) = knob {
                if let Some(w) = knob.read(sys).ok().and_then(|v| v.parse().ok()) {
                    weights.insert(n, w);
                }
            }
        }
        let auto = Knob::InterleaveAuto
            .read(sys)
            .ok()
            .map(|v| matches!(v.as_str(), "true" | "1" | "Y"));
        Some(KernelWeights { weights, auto })
    }

    /// `0=1,1=1`.
    pub fn text(&self) -> String {
        weights_text(&self.weights)
    }
}

/// `0=9,1=1`.
pub fn weights_text(w: &BTreeMap<NodeId, u8>) -> String {
    w.iter()
        .map(|(n, w)| format!("{n}={w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A node's bandwidth as `auto` weighting takes it: the smaller of its read
/// and write bandwidth (MB/s) seen from CPUs (`access1`, the CPU access
/// class); for CXL memory whose node has none, the coordinates the kernel
/// put on its region (7.x keeps them there, and `auto` uses them: 17:14
/// on qemu-cxl-port-near where the node alone gave 32:1); 0 where the
/// firmware gave none.
pub fn cpu_bandwidth(sys: &SysRoot, node: NodeId) -> u64 {
    let dir = format!("/sys/devices/system/node/node{node}/access1/initiators");
    let read = |name: &str| -> Option<u64> { sys.read_opt(&format!("{dir}/{name}"))?.parse().ok() };
    let (mut r, mut w) = (read("read_bandwidth"), read("write_bandwidth"));
    if (r, w) == (None, None) {
        let inv = crate::topology::cxl::CxlInventory::read(sys);
        if let Some(c) = inv.region_of_node(node).and_then(|g| g.access1.clone()) {
            (r, w) = (c.read_bandwidth_mbps, c.write_bandwidth_mbps);
        }
    }
    match (r, w) {
        (Some(r), Some(w)) => r.min(w),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => 0,
    }
}

/// The weights `auto` mode gives these bandwidths, as mm/mempolicy.c
/// computes them (`reduce_interleave_weights`, 6.16): each node's share of
/// the summed bandwidth scaled to 32 and truncated, at least 1 (also for a
/// node without data), then divided by the weights' greatest common
/// divisor.
pub fn derive_auto(bandwidth: &BTreeMap<NodeId, u64>) -> BTreeMap<NodeId, u8> {
    const WEIGHTINESS: u64 = 32;
    let sum: u64 = bandwidth.values().sum();
    let mut out: BTreeMap<NodeId, u8> = bandwidth
        .iter()
        .map(|(&n, &bw)| {
            let scaled = WEIGHTINESS * bw;
            let w = if bw > 0 && sum < scaled {
                scaled / sum
            } else {
                1
            };
            (n, w.min(255) as u8)
        })
        .collect();
    let g = out.values().fold(0u8, |g, &w| gcd(g, w)).max(1);
    for w in out.values_mut() {
        *w /= g;
    }
    out
}

fn gcd(a: u8, b: u8) -> u8 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The weights tierbench derives for `nodes` from their `access1`
/// bandwidth, the way the kernel documents `auto`.
pub fn derive_for(sys: &SysRoot, nodes: &NodeSet) -> BTreeMap<NodeId, u8> {
    let bw = nodes.iter().map(|n| (n, cpu_bandwidth(sys, n))).collect();
    derive_auto(&bw)
}

/// Puts a variant's weights in place, through the knobs the run owns (so
/// a kill still puts the old ones back). Returns the weights in force
/// after, as the kernel reads them back.
pub fn apply(sys: &SysRoot, w: &Weights) -> Result<BTreeMap<NodeId, u8>, KnobError> {
    match w {
        Weights::Auto => knobs::set_owned(&Knob::InterleaveAuto, "true")?,
        Weights::Set(map) => {
            for (n, w) in map {
                knobs::set_owned(&Knob::InterleaveWeight(*n), &w.to_string())?;
            }
        }
    }
    Ok(KernelWeights::read(sys)
        .map(|k| k.weights)
        .unwrap_or_default())
}

/// How far the pages landed from the weights: the largest difference,
/// in percentage points, between a node's share of the pages and its share
/// of the weights over `nodes`. `None` when no page was counted.
pub fn placement_error_pts(
    weights: &BTreeMap<NodeId, u8>,
    nodes: &NodeSet,
    pages: &BTreeMap<NodeId, u64>,
) -> Option<f64> {
    let total_w: u64 = nodes
        .iter()
        .map(|n| u64::from(*weights.get(&n).unwrap_or(&1)))
        .sum();
    let total_p: u64 = pages.values().sum();
    if total_p == 0 || total_w == 0 {
        return None;
    }
    nodes
        .iter()
        .map(|n| {
            let want = f64::from(*weights.get(&n).unwrap_or(&1)) / total_w as f64;
            let got = *pages.get(&n).unwrap_or(&0) as f64 / total_p as f64;
            (got - want).abs() * 100.0
        })
        .reduce(f64::max)
}

/// What `probe` and `topo` say of weighted interleave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WeightSupport {
    /// The weight files are there (6.9+).
    pub files: bool,
    /// The weights in force, `0=1,1=1`.
    pub in_force: Option<String>,
    /// `auto` mode (6.16+): `None` without the file.
    pub auto: Option<bool>,
    /// What tierbench derives from the nodes' access1 bandwidth.
    pub derived: Option<String>,
    /// In auto mode, whether the kernel's weights differ from tierbench's.
    pub differ: Option<bool>,
}

impl WeightSupport {
    pub fn read(sys: &SysRoot, memory: &NodeSet) -> WeightSupport {
        let Some(k) = KernelWeights::read(sys) else {
            return WeightSupport::default();
        };
        let derived = derive_for(sys, memory);
        let derived_text = weights_text(&derived);
        WeightSupport {
            files: true,
            in_force: Some(k.text()),
            auto: k.auto,
            differ: (k.auto == Some(true)).then(|| derived != k.weights),
            derived: Some(derived_text),
        }
    }

    /// One line: `0=1,1=1 (manual); from access1 bandwidth: 0=28,1=3`.
    pub fn line(&self) -> String {
        let Some(in_force) = &self.in_force else {
            return "not on this kernel (no weight files, before 6.9)".into();
        };
        let mode = match self.auto {
            Some(true) => "auto",
            Some(false) => "manual",
            None => "manual; no auto mode before 6.16",
        };
        let derived = self.derived.as_deref().unwrap_or("");
        let verdict = match self.differ {
            Some(true) => ": THE KERNEL'S AUTO WEIGHTS DIFFER",
            Some(false) => ": the same as the kernel's",
            None => "",
        };
        format!("{in_force} ({mode}); from access1 bandwidth tierbench derives {derived}{verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_weights_follow_the_kernels_arithmetic() {
        // The cover letter's machine: DRAM 208.5 GB/s, CXL 24.5: 28:3.
        let bw = BTreeMap::from([(0, 208_500), (1, 24_500)]);
        assert_eq!(derive_auto(&bw), BTreeMap::from([(0, 28), (1, 3)]));
        // Equal nodes reduce to 1:1; a node without data gets 1.
        let bw = BTreeMap::from([(0, 100), (1, 100)]);
        assert_eq!(derive_auto(&bw), BTreeMap::from([(0, 1), (1, 1)]));
        let bw = BTreeMap::from([(0, 100), (1, 0)]);
        assert_eq!(derive_auto(&bw), BTreeMap::from([(0, 32), (1, 1)]));
        // 4:1 bandwidth: 25 and 6 (truncated), no common divisor.
        let bw = BTreeMap::from([(0, 4000), (1, 1000)]);
        assert_eq!(derive_auto(&bw), BTreeMap::from([(0, 25), (1, 6)]));
    }

    #[test]
    fn placement_error_is_the_worst_node_in_points() {
        let w = BTreeMap::from([(0, 9), (1, 1)]);
        let nodes: NodeSet = "0-1".parse().unwrap();
        let pages = BTreeMap::from([(0, 880), (1, 120)]);
        let e = placement_error_pts(&w, &nodes, &pages).unwrap();
        assert!((e - 2.0).abs() < 1e-9, "{e}");
        assert_eq!(placement_error_pts(&w, &nodes, &BTreeMap::new()), None);
    }
}
