//! What this kernel and machine can do, measured: each policy mode with each
//! flag (tried in a scratch thread and on a scratch mapping, so the
//! caller's own policy is never touched), the tiering counters, knobs, THP,
//! hugetlb, perf events and privileges.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::knobs::Knob;
use crate::mempolicy::{Errno, Flags, Mode, MoveFlags, Policy, SysError};
use crate::sysfs::SysRoot;
use crate::telemetry::perf::PerfCounters;
use crate::telemetry::vmstat::{Snapshot, TIERING_GLOBAL};
use crate::topology::{NodeSet, Topology};

/// The verdict on one mode x flag combination through one system call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Support {
    Supported,
    /// The call failed; `why` explains the errno for this combination.
    Unsupported {
        errno: String,
        why: String,
    },
}

impl Support {
    pub fn is_supported(&self) -> bool {
        *self == Support::Supported
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyProbe {
    pub mode: String,
    pub flag: String,
    pub set_mempolicy: Support,
    pub mbind: Support,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub kernel_release: String,
    pub is_root: bool,
    /// Nodes used for the policy probes.
    pub probe_nodes: NodeSet,
    pub policies: Vec<PolicyProbe>,
    /// Current value of each knob present (`None`: file absent).
    pub knobs: BTreeMap<String, Option<String>>,
    /// NUMA_BALANCING_MEMORY_TIERING (numa_balancing=2, 5.18+), inferred
    /// from the pgpromote_success counter that came with it.
    pub tiering_mode: bool,
    /// Tiering counters present in /proc/vmstat.
    pub counters_present: Vec<String>,
    pub counters_absent: Vec<String>,
    /// hugetlb pages reserved, by size.
    pub hugetlb: BTreeMap<String, Option<u64>>,
    /// perf events: "ok" or why not.
    pub perf: BTreeMap<String, String>,
    /// The kernel options the experiment relies on.
    pub kernel_config: crate::kconfig::KernelConfig,
    /// CPU-less memory the kernel left in the DRAM tier, if any.
    pub tier_trap: Option<crate::topology::TierTrap>,
    /// DAMON: the sysfs interface, who runs kdamonds.
    pub damon: crate::mechanism::damon::DamonSupport,
    /// Weighted interleave: the weights, `auto`, what tierbench derives.
    pub weighted_interleave: crate::mechanism::weights::WeightSupport,
}

impl Capabilities {
    pub fn probe(topo: &Topology) -> Self {
        let sys = SysRoot::live();
        // Probe on the first node with memory, plus a second where one
        // exists: PREFERRED_MANY and INTERLEAVE mean most with two.
        let memory = topo.memory_nodes();
        let probe_nodes: NodeSet = memory.iter().take(2).collect();
        let policies = probe_policies(&probe_nodes);

        let mut knobs = BTreeMap::new();
        for knob in [
            Knob::NumaBalancing,
            Knob::DemotionEnabled,
            Knob::PromoteRateLimit,
            Knob::ThpEnabled,
            Knob::ThpDefrag,
        ]
        .into_iter()
        .chain(
            Knob::all_present(&sys)
                .into_iter()
                .filter(|k| matches!(k, Knob::Numab(_))),
        ) {
            knobs.insert(knob.to_string(), knob.read(&sys).ok());
        }

        let snap = Snapshot::read(&sys, &NodeSet::new()).unwrap_or_default();
        let (present, absent): (Vec<&str>, Vec<&str>) =
            TIERING_GLOBAL.iter().partition(|c| snap.global.has(c));

        let mut hugetlb = BTreeMap::new();
        for (name, dir) in [
            ("2MiB", "/sys/kernel/mm/hugepages/hugepages-2048kB"),
            ("1GiB", "/sys/kernel/mm/hugepages/hugepages-1048576kB"),
        ] {
            let n = sys
                .read_opt(&format!("{dir}/nr_hugepages"))
                .and_then(|v| v.parse().ok());
            hugetlb.insert(name.to_string(), n);
        }

        let mut pc = PerfCounters::open();
        let perf = pc
            .read()
            .into_iter()
            .map(|r| (r.name.to_string(), r.status.to_string()))
            .collect();

        let kernel_release = sys
            .read_opt("/proc/sys/kernel/osrelease")
            .unwrap_or_default();
        Self {
            kernel_config: crate::kconfig::KernelConfig::read(&sys, &kernel_release),
            tier_trap: topo.tier_trap(),
            kernel_release,
            // SAFETY: geteuid has no preconditions.
            is_root: unsafe { libc::geteuid() } == 0,
            probe_nodes,
            policies,
            knobs,
            tiering_mode: snap.global.has("pgpromote_success"),
            counters_present: present.into_iter().map(String::from).collect(),
            counters_absent: absent.into_iter().map(String::from).collect(),
            hugetlb,
            perf,
            damon: crate::mechanism::damon::DamonSupport::read(&sys),
            weighted_interleave: crate::mechanism::weights::WeightSupport::read(&sys, &memory),
        }
    }

    /// The probe result for `mode` with `flag` (NONE for the plain mode).
    pub fn policy(&self, mode: Mode, flag: Flags) -> Option<&PolicyProbe> {
        self.policies
            .iter()
            .find(|p| p.mode == mode.name() && p.flag == flag_name(flag))
    }
}

fn flag_name(flag: Flags) -> String {
    if flag.is_empty() {
        "-".into()
    } else {
        flag.name()
    }
}

const PROBE_FLAGS: [Flags; 4] = [
    Flags::NONE,
    Flags::NUMA_BALANCING,
    Flags::STATIC_NODES,
    Flags::RELATIVE_NODES,
];

fn probe_policies(nodes: &NodeSet) -> Vec<PolicyProbe> {
    let mut out = Vec::new();
    for mode in Mode::ALL {
        let nodes = if mode.takes_nodes() {
            nodes.clone()
        } else {
            NodeSet::new()
        };
        let plain = try_both(&Policy::new(mode, Flags::NONE, nodes.clone()));
        for flag in PROBE_FLAGS {
            let (set, mb) = if flag.is_empty() {
                plain.clone()
            } else {
                try_both(&Policy::new(mode, flag, nodes.clone()))
            };
            out.push(PolicyProbe {
                mode: mode.name(),
                flag: flag_name(flag),
                set_mempolicy: explain(mode, flag, set, plain.0.is_ok()),
                mbind: explain(mode, flag, mb, plain.1.is_ok()),
            });
        }
    }
    out
}

type Attempt = Result<(), SysError>;

/// Tries `policy` with set_mempolicy in a scratch thread (policies are per
/// thread, so the caller's stays as it was) and with mbind on a scratch
/// one-page mapping.
fn try_both(policy: &Policy) -> (Attempt, Attempt) {
    let p = policy.clone();
    let set = std::thread::spawn(move || p.apply_to_thread())
        .join()
        .expect("probe thread panicked");
    let mb =
        match crate::buffer::Buffer::map(crate::buffer::BASE_PAGE, crate::buffer::PageKind::Base) {
            Ok(mut buf) => {
                let (ptr, len) = (buf.as_mut_ptr(), buf.len());
                // SAFETY: the scratch mapping is ours and dropped right after.
                unsafe { policy.apply_to_range(ptr, len, MoveFlags::NONE) }
            }
            Err(_) => Err(SysError {
                call: "mmap",
                errno: Errno::last(),
            }),
        };
    (set, mb)
}

/// Turns an errno into a reason. EINVAL is ambiguous, so the reason depends
/// on whether the plain mode worked: only then is the flag to blame.
fn explain(mode: Mode, flag: Flags, attempt: Attempt, plain_ok: bool) -> Support {
    let e = match attempt {
        Ok(()) => return Support::Supported,
        Err(e) => e,
    };
    let why =
        if e.errno != Errno::EINVAL {
            format!("{} refused it", e.call)
        } else if !plain_ok {
            match mode {
                Mode::PreferredMany => {
                    "this kernel predates MPOL_PREFERRED_MANY (added in 5.15)".into()
                }
                Mode::WeightedInterleave => {
                    "this kernel predates MPOL_WEIGHTED_INTERLEAVE (added in 6.9)".into()
                }
                _ => format!("the kernel refuses {mode} itself on these nodes"),
            }
        } else if flag == Flags::NUMA_BALANCING {
            match mode {
            Mode::PreferredMany => "this kernel predates PREFERRED_MANY with NUMA_BALANCING \
                                    (added in 6.10, commit 133d04b1eee9)"
                .into(),
            Mode::Bind => "this kernel predates BIND with NUMA_BALANCING (added in 5.12)".into(),
            _ => "the kernel takes NUMA_BALANCING only with BIND (5.12+) and PREFERRED_MANY (6.10+)"
                .into(),
        }
        } else if !mode.takes_nodes() {
            format!("{mode} takes no node list, so node flags do not apply")
        } else {
            format!("the kernel refuses {} with {mode}", flag.name())
        };
    Support::Unsupported {
        errno: e.errno.name(),
        why,
    }
}

/// Why the kernel refused `policy` with `err`, in words: tries the plain
/// mode (no flags) in a scratch thread to tell a missing flag from a bad
/// mode or node set.
pub fn diagnose(policy: &Policy, err: &SysError) -> String {
    let plain = Policy::new(policy.mode, Flags::NONE, policy.nodes.clone());
    let (set, mb) = try_both(&plain);
    let plain_ok = if err.call == "mbind" {
        mb.is_ok()
    } else {
        set.is_ok()
    };
    match explain(policy.mode, policy.flags, Err(err.clone()), plain_ok) {
        Support::Unsupported { why, .. } => why,
        Support::Supported => "supported".into(),
    }
}

/// Whether this machine is a QEMU guest (DMI says so): its NUMA nodes are
/// then emulated and share host memory.
pub fn is_emulated() -> bool {
    let sys = SysRoot::live();
    [
        "/sys/class/dmi/id/sys_vendor",
        "/sys/class/dmi/id/product_name",
    ]
    .iter()
    .filter_map(|p| sys.read_opt(p))
    .any(|v| v.contains("QEMU"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einval_blames_the_flag_only_when_the_plain_mode_works() {
        let einval = || {
            Err(SysError {
                call: "mbind",
                errno: Errno::EINVAL,
            })
        };
        let with_plain = explain(Mode::PreferredMany, Flags::NUMA_BALANCING, einval(), true);
        assert!(matches!(&with_plain, Support::Unsupported { why, .. } if why.contains("6.10")));
        let without = explain(Mode::PreferredMany, Flags::NUMA_BALANCING, einval(), false);
        assert!(matches!(&without, Support::Unsupported { why, .. } if why.contains("5.15")));
        assert!(explain(Mode::Bind, Flags::NONE, Ok(()), true).is_supported());
    }

    /// On the running kernel, BIND on a node with memory works through both
    /// calls, and the caller's own thread policy is left as it was.
    #[test]
    fn probe_leaves_the_callers_policy_alone() {
        let topo = Topology::from_sysfs(&SysRoot::live()).unwrap();
        let before = Policy::of_thread().unwrap();
        let caps = Capabilities::probe(&topo);
        assert_eq!(Policy::of_thread().unwrap(), before);
        let bind = caps.policy(Mode::Bind, Flags::NONE).unwrap();
        assert!(bind.set_mempolicy.is_supported() && bind.mbind.is_supported());
        assert!(!caps.kernel_release.is_empty());
    }
}
