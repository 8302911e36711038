//! Why a memory node sits in the tier it does: the kernel's abstract
//! distance, recomputed from the numbers it used (mm/memory-tiers.c).
//!
//! A node with performance data (HMAT, or CXL CDAT plus the generic port's
//! HMAT entry) is ranked against the DRAM nodes' own HMAT numbers, as seen
//! from CPUs (`access1`): `adist = 576 * (rl + wl) / (drl + dwl) * (drb + dwb)
//! / (rb + wb)`, evaluated left to right in integers (mt_perf_to_adistance),
//! and the tier is `adist / 128` (MEMTIER_CHUNK_BITS). A node onlined by
//! kmem without data gets kmem's default, 5 x DRAM's distance (2880,
//! memory_tier22). Recomputing it tells a lab which numbers put a node
//! where it is, and whether the kernel used them at all.

use serde::Serialize;

use super::{Hmat, NodeId, Topology};

/// DRAM's abstract distance (MEMTIER_ADISTANCE_DRAM = 4.5 chunks).
pub const DRAM_ADISTANCE: u64 = 576;
/// What kmem gives a node without performance data
/// (MEMTIER_DEFAULT_DAX_ADISTANCE).
pub const KMEM_DEFAULT_ADISTANCE: u64 = 5 * DRAM_ADISTANCE;
/// The abstract distance one tier spans (MEMTIER_CHUNK_SIZE).
pub const CHUNK: u64 = 128;

/// The tier an abstract distance falls in.
pub fn tier_of(adistance: u64) -> u32 {
    (adistance / CHUNK) as u32
}

/// The kernel's abstract distance for memory with the coordinates `perf`
/// against DRAM's `dram`; `None` where a number is missing or zero (the
/// kernel then refuses the data, -EINVAL).
pub fn abstract_distance(perf: &Hmat, dram: &Hmat) -> Option<u64> {
    let sum = |a: Option<u64>, b: Option<u64>| Some(a? + b?).filter(|&s| s > 0);
    let lat = sum(perf.read_latency_ns, perf.write_latency_ns)?;
    let bw = sum(perf.read_bandwidth_mbps, perf.write_bandwidth_mbps)?;
    let dram_lat = sum(dram.read_latency_ns, dram.write_latency_ns)?;
    let dram_bw = sum(dram.read_bandwidth_mbps, dram.write_bandwidth_mbps)?;
    Some(DRAM_ADISTANCE * lat / dram_lat * dram_bw / bw)
}

/// One CPU-less node's tier, and the numbers that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierReason {
    pub node: NodeId,
    /// The tier the kernel put it in.
    pub tier: Option<u32>,
    /// Its coordinates as seen from CPUs (`access1`), or from its nearest
    /// initiators (`access0`) where sysfs has no CPU class (the same
    /// numbers when the nearest initiators have CPUs), if it has any.
    pub perf: Option<Hmat>,
    /// Which of the two `perf` is.
    pub class: &'static str,
    /// The DRAM node whose numbers are the baseline, and those numbers.
    pub dram_node: Option<NodeId>,
    pub dram: Option<Hmat>,
    /// The abstract distance those numbers give, and its tier; `None`
    /// without data (then kmem's default applies to CXL memory).
    pub adistance: Option<u64>,
    pub expected_tier: Option<u32>,
    /// The memory is CXL onlined by kmem (its default applies without
    /// data).
    pub kmem: bool,
}

impl TierReason {
    /// The tier the numbers (or kmem's default) give, if anything says.
    pub fn predicted(&self) -> Option<u32> {
        self.expected_tier
            .or(self.kmem.then_some(tier_of(KMEM_DEFAULT_ADISTANCE)))
    }

    /// Whether the kernel's tier is not the one its numbers give.
    pub fn unexpected(&self) -> bool {
        matches!((self.tier, self.predicted()), (Some(t), Some(p)) if t != p)
    }

    /// One line: the numbers, the arithmetic's result, the kernel's tier.
    pub fn line(&self) -> String {
        let tier = |t: Option<u32>| t.map_or("no tier".into(), |t| format!("memory_tier{t}"));
        let coords = |h: &Hmat| {
            format!(
                "{}/{} ns, {}/{} MB/s",
                num(h.read_latency_ns),
                num(h.write_latency_ns),
                num(h.read_bandwidth_mbps),
                num(h.write_bandwidth_mbps)
            )
        };
        let why = match (&self.perf, &self.dram, self.adistance) {
            (Some(p), Some(d), Some(a)) => format!(
                "{} {} against DRAM node {}'s {}: abstract distance {a} -> {}",
                self.class,
                coords(p),
                self.dram_node.map_or("?".into(), |n| n.to_string()),
                coords(d),
                tier(Some(tier_of(a)))
            ),
            (Some(p), None, _) => format!(
                "{} {}, but no DRAM node has HMAT numbers to rank it against{}",
                self.class,
                coords(p),
                self.default_clause()
            ),
            (Some(p), Some(_), None) => format!(
                "{} {} is incomplete (a zero or missing number){}",
                self.class,
                coords(p),
                self.default_clause()
            ),
            (None, ..) => format!("no performance data{}", self.default_clause()),
        };
        let verdict = match (self.tier, self.predicted()) {
            (Some(t), Some(p)) if t != p => {
                format!(
                    "; the kernel put it in memory_tier{t}, not {}",
                    tier(Some(p))
                )
            }
            (Some(_), Some(_)) => "; the kernel agrees".into(),
            (t, None) => format!("; the kernel put it in {}", tier(t)),
            (None, Some(_)) => "; the kernel reports no tier".into(),
        };
        format!("node {}: {why}{verdict}", self.node)
    }

    fn default_clause(&self) -> String {
        if self.kmem {
            format!(
                ": kmem's default, abstract distance {KMEM_DEFAULT_ADISTANCE} -> memory_tier{}",
                tier_of(KMEM_DEFAULT_ADISTANCE)
            )
        } else {
            String::new()
        }
    }
}

fn num(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

impl Topology {
    /// The reasons for every CPU-less memory node's tier, on a kernel that
    /// reports tiers (none before 6.1's memory_tiering, where tiers do not
    /// exist).
    pub fn explain_tiers(&self) -> Vec<TierReason> {
        if self.tiers.is_empty() {
            return Vec::new();
        }
        // The kernel's baseline: the first DRAM node (memory and CPUs)
        // with CPU-class HMAT numbers (hmat_set_default_dram_perf).
        let dram = self
            .nodes
            .iter()
            .filter(|n| !n.is_cpuless() && n.has_memory())
            .find_map(|n| Some((n.id, n.hmat_cpu.clone().or_else(|| n.hmat.clone())?)));
        self.nodes
            .iter()
            .filter(|n| n.is_cpuless() && n.has_memory())
            .map(|n| {
                let (perf, class) = match (&n.hmat_cpu, &n.hmat) {
                    (Some(c), _) => (Some(c.clone()), "access1"),
                    (None, Some(a)) => (Some(a.clone()), "access0"),
                    (None, None) => (None, "access1"),
                };
                let adistance = match (&perf, &dram) {
                    (Some(p), Some((_, d))) => abstract_distance(p, d),
                    _ => None,
                };
                TierReason {
                    node: n.id,
                    tier: n.tier,
                    perf,
                    class,
                    dram_node: dram.as_ref().map(|d| d.0),
                    dram: dram.as_ref().map(|d| d.1.clone()),
                    adistance,
                    expected_tier: adistance.map(tier_of),
                    kmem: self.cxl.dax_of_node(n.id).is_some(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(rl: u64, wl: u64, rb: u64, wb: u64) -> Hmat {
        Hmat {
            initiators: "0".parse().unwrap(),
            read_latency_ns: Some(rl),
            write_latency_ns: Some(wl),
            read_bandwidth_mbps: Some(rb),
            write_bandwidth_mbps: Some(wb),
        }
    }

    #[test]
    fn dram_itself_is_tier_4_and_kmems_default_tier_22() {
        let d = h(100, 100, 20480, 20480);
        assert_eq!(abstract_distance(&d, &d), Some(576));
        assert_eq!(tier_of(576), 4);
        assert_eq!(tier_of(KMEM_DEFAULT_ADISTANCE), 22);
    }

    #[test]
    fn the_arithmetic_is_the_kernels_integer_order() {
        // Port 100 ns / 20 GiB/s + QEMU's CDAT (150/250 ns, 16 GB/s) + a
        // 2 ns link: 576 * 604 / 200 = 1739 (integer), * 40960 / 32000.
        let d = h(100, 100, 20480, 20480);
        assert_eq!(
            abstract_distance(&h(252, 352, 16000, 16000), &d),
            Some(2225)
        );
        assert_eq!(tier_of(2225), 17);
        assert_eq!(abstract_distance(&h(0, 0, 1, 1), &d), None, "-EINVAL");
        let mut missing = h(252, 352, 16000, 16000);
        missing.write_bandwidth_mbps = None;
        assert_eq!(abstract_distance(&missing, &d), None);
    }

    #[test]
    fn a_reason_says_when_the_kernel_disagrees_with_the_numbers() {
        let r = TierReason {
            node: 2,
            tier: Some(22),
            perf: Some(h(252, 352, 16000, 16000)),
            class: "access1",
            dram_node: Some(0),
            dram: Some(h(100, 100, 20480, 20480)),
            adistance: Some(2225),
            expected_tier: Some(17),
            kmem: true,
        };
        assert!(r.unexpected());
        let line = r.line();
        assert!(
            line.contains("abstract distance 2225 -> memory_tier17"),
            "{line}"
        );
        assert!(
            line.contains("put it in memory_tier22, not memory_tier17"),
            "{line}"
        );
        let none = TierReason {
            perf: None,
            adistance: None,
            expected_tier: None,
            ..r.clone()
        };
        assert!(!none.unexpected(), "kmem's default is tier 22");
        assert!(
            none.line().contains("no performance data: kmem's default"),
            "{}",
            none.line()
        );
        let agrees = TierReason {
            tier: Some(17),
            ..r
        };
        assert!(!agrees.unexpected());
        assert!(
            agrees.line().ends_with("the kernel agrees"),
            "{}",
            agrees.line()
        );
    }
}
