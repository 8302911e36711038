//! What the user asked for ([`RunSpec`], from options or a scenario file)
//! resolved against what the machine is ([`MachineFacts`]) into a
//! [`Plan`]: concrete node sets, CPUs, sizes. Resolving reads nothing live,
//! so every refusal is tested on captured machines; only a `Plan` reaches
//! the buffer, the workers or the knobs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::buffer::{self, PageKind, BASE_PAGE};
use crate::error::InputError;
use crate::mechanism::damon::DamonConfig;
use crate::mempolicy::{Mode, NodeSpec, Policy};
use crate::report::schema::Bracket;
use crate::report::{Columns, Note};
use crate::sysfs::SysRoot;
use crate::telemetry::perf::EVENTS;
use crate::telemetry::vmstat::{self, Snapshot};
use crate::topology::{CpuSet, NodeId, NodeSet, Topology};
use crate::units::parse_size;
use crate::variant::{Mechanism, Variant, VariantSpec};
use crate::workload::pattern::{Pattern, PatternSpec};

/// What each worker is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PinUnit {
    /// One worker per CPU (hardware thread) of the node
    Cpu,
    /// One worker per physical core of the node (hwloc's cores)
    Core,
}

/// A buffer size: bytes, or a share of a tier's memory (`75% of fast`),
/// which only the machine can turn into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizeSpec {
    Bytes(u64),
    ShareOf { percent: f64, tier: TierRole },
}

/// The fast or the slow tier, as the kernel's memory tiers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierRole {
    Fast,
    Slow,
}

impl std::str::FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((pct, tier)) = s.split_once("% of ") else {
            return parse_size(s).map(SizeSpec::Bytes);
        };
        let percent: f64 = pct
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .ok_or_else(|| {
                format!("{s:?}: the share must be a number in (0, 100], e.g. \"75% of fast\"")
            })?;
        let tier = match tier.trim() {
            "fast" => TierRole::Fast,
            "slow" => TierRole::Slow,
            t => return Err(format!("{s:?}: unknown tier {t:?}, use fast or slow")),
        };
        Ok(SizeSpec::ShareOf { percent, tier })
    }
}

impl std::fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeSpec::Bytes(b) => write!(f, "{b}"),
            SizeSpec::ShareOf { percent, tier } => write!(
                f,
                "{percent}% of {}",
                match tier {
                    TierRole::Fast => "fast",
                    TierRole::Slow => "slow",
                }
            ),
        }
    }
}

impl SizeSpec {
    /// Bytes on this machine.
    pub fn bytes(&self, topo: &Topology) -> Result<u64, String> {
        let (percent, tier) = match *self {
            SizeSpec::Bytes(b) => return Ok(b),
            SizeSpec::ShareOf { percent, tier } => (percent, tier),
        };
        let nodes = match tier {
            TierRole::Fast => &topo.roles.fast,
            TierRole::Slow => &topo.roles.slow,
        };
        let total: u64 = nodes
            .iter()
            .filter_map(|n| topo.node(n)?.mem_total_kib)
            .sum::<u64>()
            * 1024;
        if total == 0 {
            return Err(format!("{self}: the tier has no memory on this machine"));
        }
        Ok((total as f64 * percent / 100.0) as u64)
    }
}

/// What resolving a plan needs to know about the machine, read once by
/// [`MachineFacts::live`] (or built from a captured machine in tests).
#[derive(Debug, Clone)]
pub struct MachineFacts {
    pub topo: Topology,
    /// Running under QEMU: bandwidth and latency gaps between nodes are not
    /// real.
    pub emulated: bool,
    /// Free hugetlb pages per huge page kind (absent: no pool).
    pub hugetlb_free: BTreeMap<PageKind, u64>,
    /// One CPU per physical core, per node with CPUs (hwloc's answer, or
    /// why it had none).
    pub cores: BTreeMap<NodeId, Result<CpuSet, String>>,
}

impl MachineFacts {
    pub fn live(topo: &Topology) -> MachineFacts {
        let sys = SysRoot::live();
        let hugetlb_free = [PageKind::Huge2M, PageKind::Huge1G]
            .into_iter()
            .filter_map(|k| {
                let dir = k.hugetlb_dir()?;
                let free = sys
                    .read_opt(&format!("{dir}/free_hugepages"))?
                    .parse()
                    .ok()?;
                Some((k, free))
            })
            .collect();
        let cores = topo
            .nodes
            .iter()
            .filter(|n| !n.is_cpuless())
            .map(|n| (n.id, crate::topology::hwloc::one_per_core(&n.cpus)))
            .collect();
        MachineFacts {
            topo: topo.clone(),
            emulated: crate::probe::is_emulated(),
            hugetlb_free,
            cores,
        }
    }

    /// A captured machine: no huge pages reserved, one core per CPU, native.
    pub fn captured(topo: Topology) -> MachineFacts {
        let cores = topo
            .nodes
            .iter()
            .filter(|n| !n.is_cpuless())
            .map(|n| (n.id, Ok(n.cpus.clone())))
            .collect();
        MachineFacts {
            topo,
            emulated: false,
            hugetlb_free: BTreeMap::new(),
            cores,
        }
    }
}

/// The run as typed: node roles unresolved.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub size: SizeSpec,
    pub page: PageKind,
    /// Populate under BIND(these nodes) first, then switch to the variant's
    /// policy; `None`: populate under the variant's policy.
    pub first_touch: Option<NodeSpec>,
    pub variants: Vec<VariantSpec>,
    /// DAMON settings over the mtier defaults (`--damon KEY=VALUE`).
    pub damon: Vec<String>,
    /// Switch policies with MPOL_MF_MOVE instead of leaving pages in place.
    pub move_on_switch: bool,
    /// Before each variant, fill the fast tier with a memory eater the
    /// harness owns until only this many bytes above the high watermarks
    /// stay free; freed after the variant.
    pub fill_fast_leave: Option<u64>,
    /// The eater is locked in memory: reclaim cannot demote it.
    pub fill_fast_locked: bool,
    pub worker_node: Option<NodeId>,
    pub threads: usize,
    pub oversubscribe: bool,
    pub pin: PinUnit,
    pub pattern: PatternSpec,
    /// Move the hot set onto cold pages at this time.
    pub move_hot_at: Option<Duration>,
    /// Take the slow node's memory blocks offline at this time.
    pub offline_slow_at: Option<Duration>,
    /// Time one access in this many (a power of two), 0 for none.
    pub latency_every: u64,
    pub warmup: Duration,
    pub duration: Duration,
    pub interval: Duration,
    pub iterations: u32,
    pub census: bool,
    /// Most census units an interval row examines (0: all of them).
    pub census_sample: usize,
    pub force: bool,
    /// An external program is the workload: the buffer, pattern and
    /// workers above do not apply.
    pub program: Option<crate::program::ProgramSpec>,
    /// Add BIND(fast) and BIND(slow) as the bounds of the comparison.
    pub bracket: bool,
}

/// The run resolved against this machine.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub size_bytes: usize,
    pub page: PageKind,
    pub first_touch: Option<NodeSet>,
    pub variants: Vec<Variant>,
    /// The DAMON setup of the `@damon` variants (none without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damon: Option<DamonConfig>,
    pub move_on_switch: bool,
    pub fill_fast_leave: Option<u64>,
    /// Written only when set: records without it compare with runs that
    /// did not lock.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fill_fast_locked: bool,
    pub worker_node: NodeId,
    pub worker_cpus: Vec<u32>,
    pub pattern: PatternSpec,
    pub hot_bytes: usize,
    /// The share of accesses the distribution puts on the hot set.
    pub expected_hot_share: f64,
    #[serde(rename = "move_hot_at_s", serialize_with = "crate::units::secs_opt")]
    pub move_hot_at: Option<Duration>,
    /// `--offline-slow-at`: the blocks and when (filled in against the
    /// live machine by the caller, [`super::offline::OfflinePlan::resolve`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<super::offline::OfflinePlan>,
    pub latency_every: u64,
    #[serde(rename = "warmup_s", serialize_with = "crate::units::secs")]
    pub warmup: Duration,
    #[serde(rename = "duration_s", serialize_with = "crate::units::secs")]
    pub duration: Duration,
    #[serde(rename = "interval_s", serialize_with = "crate::units::secs")]
    pub interval: Duration,
    pub iterations: u32,
    pub census: bool,
    pub census_sample: usize,
    /// Before the first variant, run the workload on a scratch buffer until
    /// its throughput is steady (emulated machines: see `run::execute`).
    pub steady_warmup: bool,
    pub fast: NodeSet,
    pub slow: NodeSet,
    /// Facts about the setup that every summary row repeats.
    pub notes: Vec<Note>,
    /// The external workload, when there is one.
    pub program: Option<crate::program::ProgramSpec>,
    /// `--bracket`: the bounding variants it added (first in `variants`).
    pub bracket: Option<Bracket>,
    /// Where an external program's output goes (the results directory).
    #[serde(skip)]
    pub output_dir: Option<std::path::PathBuf>,
}

fn bad(msg: String) -> InputError {
    InputError::new(msg)
}

/// How an option is named in messages: `--hot-fraction` on the command
/// line, `hot_fraction` in a scenario file.
pub type FlagName<'a> = &'a dyn Fn(&str) -> String;

pub fn cli_flag(name: &str) -> String {
    format!("--{name}")
}

impl Plan {
    /// Messages name options by their command-line flags.
    pub fn resolve(spec: &RunSpec, facts: &MachineFacts) -> Result<Plan, InputError> {
        Self::resolve_named(spec, facts, &cli_flag)
    }

    /// Messages name options through `flag` (a scenario's keys).
    pub fn resolve_named(
        spec: &RunSpec,
        facts: &MachineFacts,
        flag: FlagName,
    ) -> Result<Plan, InputError> {
        let topo = &facts.topo;
        if spec.duration.is_zero() {
            return Err(bad(format!(
                "{} must be more than 0, e.g. 10s",
                flag("duration")
            )));
        }
        if spec.interval.is_zero() || spec.interval > spec.duration {
            return Err(bad(format!(
                "{} must be more than 0 and at most the duration ({:?}), e.g. 1s",
                flag("interval"),
                spec.duration
            )));
        }
        if spec.iterations == 0 {
            return Err(bad(format!("{} must be at least 1", flag("iterations"))));
        }
        if spec.latency_every != 0 && !spec.latency_every.is_power_of_two() {
            return Err(bad(format!(
                "{} {} must be a power of two (e.g. 1024), or 0 to time no access",
                flag("latency-every"),
                spec.latency_every
            )));
        }
        if spec.threads == 0 {
            return Err(bad(format!("{} must be at least 1", flag("threads"))));
        }
        let node = topo
            .cpu_node(spec.worker_node, &flag("worker-node"))
            .map_err(bad)?;
        let worker_node = node.id;
        let (targets, unit) = match spec.pin {
            PinUnit::Cpu => (node.cpus.clone(), "CPUs"),
            PinUnit::Core => (
                match facts.cores.get(&node.id) {
                    Some(Ok(cores)) => cores.clone(),
                    Some(Err(e)) => return Err(bad(format!("{} core: {e}", flag("pin")))),
                    None => return Err(bad(format!("{} core: no core list", flag("pin")))),
                },
                "cores",
            ),
        };
        if spec.threads > targets.len() && !spec.oversubscribe {
            return Err(bad(format!(
                "{} {} is more than node {worker_node}'s {} {unit} ({}): lower it, or pass \
                 --oversubscribe to share CPUs",
                flag("threads"),
                spec.threads,
                targets.len(),
                targets
            )));
        }
        if spec.threads > targets.len() * MAX_WORKERS_PER_CPU {
            return Err(bad(format!(
                "{} {} is more than {MAX_WORKERS_PER_CPU} workers per CPU on node {worker_node}'s \
                 {} {unit}: at most {} with --oversubscribe",
                flag("threads"),
                spec.threads,
                targets.len(),
                targets.len() * MAX_WORKERS_PER_CPU
            )));
        }
        let worker_cpus = buffer::worker_cpus(&targets, spec.threads);

        let first_touch = match &spec.first_touch {
            None => None,
            Some(s) => Some(resolve_nodes(s, topo, &flag("first-touch"))?),
        };
        let mut variants = Vec::new();
        for v in &spec.variants {
            variants.push(
                v.resolve(topo)
                    .map_err(|e| bad(format!("{} {v}: {e}", flag("policy"))))?,
            );
        }
        if variants.is_empty() {
            variants.push(Variant::plain(Policy::default_policy()));
        }
        let damon = if variants.iter().any(|v| v.mechanism == Mechanism::Damon) {
            let mut cfg = DamonConfig::default();
            for kv in &spec.damon {
                cfg.set(kv)
                    .map_err(|e| bad(format!("{} {kv}: {e}", flag("damon"))))?;
            }
            Some(cfg)
        } else if !spec.damon.is_empty() {
            return Err(bad(format!(
                "{} is set, and no variant runs DAMON: add @damon to a policy (e.g. \
                 preferred-many:fast@damon), or drop it",
                flag("damon")
            )));
        } else {
            None
        };
        if spec.fill_fast_leave.is_some() && topo.roles.fast.is_empty() {
            return Err(bad(format!(
                "{} needs a fast tier, and this machine reports none",
                flag("fill-fast-leave")
            )));
        }

        let census_unit = spec.page.census_unit() as u64;
        let size_bytes = spec
            .size
            .bytes(topo)
            .map_err(|e| bad(format!("{} {e}", flag("size"))))?
            .div_ceil(census_unit)
            * census_unit;
        if size_bytes == 0 {
            return Err(bad(format!(
                "{} must be more than 0, e.g. 256M",
                flag("size")
            )));
        }
        spec.pattern.check(size_bytes as usize, flag).map_err(bad)?;
        let pattern = Pattern::new(spec.pattern, size_bytes as usize);
        let hot_bytes = pattern.hot * BASE_PAGE;
        if let Some(t) = spec.move_hot_at {
            if t.is_zero() || t >= spec.duration {
                return Err(bad(format!(
                    "{} must be inside the run (0 < T < duration {:?})",
                    flag("move-hot-at"),
                    spec.duration
                )));
            }
            if pattern.hot * 2 > pattern.pages {
                return Err(bad(format!(
                    "{} needs at most half the buffer hot (the set moves onto cold pages): \
                     lower {}",
                    flag("move-hot-at"),
                    flag("hot-fraction")
                )));
            }
        }
        if let Some(t) = spec.offline_slow_at {
            // A program runs until it ends: only the built-in workers'
            // window has a duration to fall inside.
            if t.is_zero() || (spec.program.is_none() && t >= spec.duration) {
                return Err(bad(format!(
                    "{} must be inside the run (0 < T < duration {:?})",
                    flag("offline-slow-at"),
                    spec.duration
                )));
            }
        }
        if let Some(at) = spec.program.as_ref().and_then(|p| p.push_to_slow_at) {
            if topo.roles.fast.is_empty() || !topo.has_slow_tier() {
                return Err(bad(format!(
                    "{} needs a fast and a slow tier, and this machine has {} ({}): run it on \
                     a tiered machine (tierbench vm)",
                    flag("push-to-slow-at"),
                    if topo.has_slow_tier() {
                        "no fast tier"
                    } else {
                        "one tier"
                    },
                    topo.roles.source
                )));
            }
            if at.is_zero() {
                return Err(bad(format!(
                    "{} must be after the program started, e.g. 2s",
                    flag("push-to-slow-at")
                )));
            }
        }
        let mut notes = Vec::new();
        let bracket = if spec.bracket {
            if topo.roles.fast.is_empty() || !topo.has_slow_tier() {
                return Err(bad(format!(
                    "{} needs a fast and a slow tier, and this machine has one ({}): run it on \
                     a tiered machine (tierbench vm)",
                    flag("bracket"),
                    topo.roles.source
                )));
            }
            // A program's size is its own: its bounds are always run. The
            // built-in buffer's bound is left out where it cannot fit.
            let fits = |nodes: &NodeSet| {
                spec.program.is_some() || spec.force || {
                    let size = spec.size.bytes(topo).unwrap_or(u64::MAX);
                    size <= topo.free_bytes(nodes)
                }
            };
            let mut added = Vec::new();
            let mut bound = |nodes: &NodeSet| {
                let p = Policy::bind(nodes.clone());
                if !fits(nodes) {
                    notes.push(Note::BracketLeftOut(p.to_string()));
                    return None;
                }
                let name = p.to_string();
                let bound = Variant::plain(p);
                variants.retain(|v| *v != bound);
                added.push(bound);
                Some(name)
            };
            let b = Bracket {
                fast: bound(&topo.roles.fast),
                slow: bound(&topo.roles.slow),
            };
            variants.splice(0..0, added);
            Some(b)
        } else {
            None
        };
        if !spec.force && spec.program.is_none() {
            check_fits(
                size_bytes,
                spec.page,
                first_touch.as_ref(),
                &variants,
                facts,
                flag,
            )?;
        }

        if !topo.has_slow_tier() {
            notes.push(Note::SingleTier);
        }
        if facts.emulated {
            notes.push(Note::EmulatedNuma);
        }
        if spec.threads > targets.len() {
            notes.push(Note::Oversubscribed {
                workers: spec.threads,
                targets: targets.len(),
                unit,
            });
        }
        Ok(Plan {
            size_bytes: size_bytes as usize,
            page: spec.page,
            first_touch,
            variants,
            damon,
            move_on_switch: spec.move_on_switch,
            fill_fast_leave: spec.fill_fast_leave,
            fill_fast_locked: spec.fill_fast_locked,
            worker_node,
            worker_cpus,
            pattern: spec.pattern,
            hot_bytes,
            expected_hot_share: pattern.expected_hot_share,
            move_hot_at: spec.move_hot_at,
            offline: None,
            latency_every: spec.latency_every,
            warmup: spec.warmup,
            duration: spec.duration,
            interval: spec.interval,
            iterations: spec.iterations,
            census: spec.census,
            census_sample: spec.census_sample,
            steady_warmup: facts.emulated && spec.program.is_none(),
            fast: topo.roles.fast.clone(),
            slow: topo.roles.slow.clone(),
            notes,
            program: spec.program.clone(),
            bracket,
            output_dir: None,
        })
    }

    /// The CSV columns for this plan on this kernel.
    pub fn columns(&self, topo: &Topology, first: &Snapshot) -> Columns {
        Columns {
            nodes: topo.memory_nodes().iter().collect(),
            counters: vmstat::tiering_counters(first),
            perf: EVENTS.to_vec(),
            program: self.program.is_some(),
            damon: self.damon.is_some(),
            weighted: self.variants.iter().any(|v| v.weights.is_some()),
            quality: self.census && self.program.is_none(),
        }
    }

    /// How many variant runs the plan holds (iterations x variants).
    pub fn runs(&self) -> usize {
        self.iterations as usize * self.variants.len()
    }
}

fn resolve_nodes(spec: &NodeSpec, topo: &Topology, flag: &str) -> Result<NodeSet, InputError> {
    let set = spec.resolve(topo);
    if set.is_empty() {
        return Err(bad(format!(
            "{flag} {spec} names no node on this machine ({}); see `tierbench topo`",
            topo.roles.source
        )));
    }
    if let Some(n) = set.iter().find(|n| topo.node(*n).is_none()) {
        return Err(bad(format!(
            "unknown node {n} in {flag}: this machine has nodes {}; see `tierbench topo`",
            topo.node_ids()
        )));
    }
    Ok(set)
}

/// Refuses a buffer that cannot fit where it will be placed, before
/// anything is allocated.
fn check_fits(
    size: u64,
    page: PageKind,
    first_touch: Option<&NodeSet>,
    variants: &[Variant],
    facts: &MachineFacts,
    flag: FlagName,
) -> Result<(), InputError> {
    let topo = &facts.topo;
    if let Some(dir) = page.hugetlb_dir() {
        let free = facts.hugetlb_free.get(&page).copied().unwrap_or(0);
        let need = size / page.census_unit() as u64;
        if free < need {
            return Err(bad(format!(
                "{} needs {need} free {page} huge pages, {dir}/free_hugepages has {free}: \
                 reserve more (echo {need} > {dir}/nr_hugepages) or use {} thp",
                flag("size"),
                flag("page-size")
            )));
        }
        return Ok(());
    }
    let targets: Vec<NodeSet> = match first_touch {
        Some(ft) => vec![ft.clone()],
        None => variants
            .iter()
            .map(|v| match v.policy.mode {
                Mode::Default | Mode::Local => topo.memory_nodes(),
                _ => v.policy.nodes.clone(),
            })
            .collect(),
    };
    for nodes in targets {
        let free = topo.free_bytes(&nodes);
        if size > free {
            return Err(bad(format!(
                "{} {} MiB does not fit in the {} MiB free on node(s) {nodes}: lower it, or pass \
                 --force to allocate anyway",
                flag("size"),
                size >> 20,
                free >> 20
            )));
        }
    }
    Ok(())
}

/// The most workers `--oversubscribe` puts on one CPU. Beyond a few, the
/// run measures the scheduler, and thousands of spinning threads starve the
/// sampler and the stop path.
pub const MAX_WORKERS_PER_CPU: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::pattern::PatternKind;

    fn topo(name: &str) -> Topology {
        Topology::from_sysfs(&SysRoot::at(format!(
            "{}/tests/data/{name}",
            env!("CARGO_MANIFEST_DIR")
        )))
        .unwrap()
    }

    fn facts(name: &str) -> MachineFacts {
        MachineFacts::captured(topo(name))
    }

    fn spec() -> RunSpec {
        RunSpec {
            size: SizeSpec::Bytes(64 << 20),
            page: PageKind::Base,
            first_touch: Some(NodeSpec::Slow),
            variants: vec![
                "preferred-many:fast".parse().unwrap(),
                "preferred-many:fast+balancing".parse().unwrap(),
            ],
            damon: Vec::new(),
            move_on_switch: false,
            fill_fast_leave: None,
            fill_fast_locked: false,
            worker_node: None,
            threads: 1,
            oversubscribe: false,
            pin: PinUnit::Cpu,
            pattern: PatternSpec {
                kind: PatternKind::Sweep,
                hot_fraction: 0.5,
                hot_share: 0.9,
                zipf_theta: 1.0,
                stride: 64,
                mix: crate::workload::pattern::Mix::READ_ONLY,
            },
            move_hot_at: None,
            offline_slow_at: None,
            latency_every: 1024,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            iterations: 1,
            census: true,
            census_sample: 4096,
            force: false,
            program: None,
            bracket: false,
        }
    }

    #[test]
    fn resolves_roles_against_the_tiers() {
        let plan = Plan::resolve(&spec(), &facts("dram-cxl-6.12")).unwrap();
        assert_eq!(plan.first_touch.unwrap().to_string(), "1");
        assert_eq!(plan.variants[1].to_string(), "preferred-many:0+balancing");
        assert_eq!(plan.worker_node, 0);
        assert_eq!(plan.hot_bytes, 32 << 20);
    }

    #[test]
    fn bad_input_is_refused_with_a_fix() {
        let t = facts("dram-cxl-6.12");
        type Edit = Box<dyn Fn(&mut RunSpec)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|s| s.worker_node = Some(1)), "has no CPUs"),
            (Box::new(|s| s.worker_node = Some(7)), "unknown node 7"),
            (
                Box::new(|s| s.size = SizeSpec::Bytes(8 << 30)),
                "does not fit",
            ),
            (Box::new(|s| s.threads = 3), "more than node 0's 2 CPUs"),
            (Box::new(|s| s.duration = Duration::ZERO), "--duration"),
            (Box::new(|s| s.pattern.hot_fraction = 1.5), "--hot-fraction"),
            (Box::new(|s| s.iterations = 0), "--iterations"),
            (Box::new(|s| s.latency_every = 1000), "power of two"),
            (
                Box::new(|s| {
                    s.pattern.hot_fraction = 0.6;
                    s.move_hot_at = Some(Duration::from_secs(4));
                }),
                "at most half the buffer hot",
            ),
            (
                Box::new(|s| {
                    s.pattern.hot_fraction = 0.25;
                    s.move_hot_at = Some(Duration::from_secs(10));
                }),
                "inside the run",
            ),
            (
                Box::new(|s| s.first_touch = Some("5".parse().unwrap())),
                "unknown node 5",
            ),
            (
                Box::new(|s| s.variants = vec!["bind:9".parse().unwrap()]),
                "unknown node 9",
            ),
        ];
        for (edit, needle) in cases {
            let mut s = spec();
            edit(&mut s);
            let err = Plan::resolve(&s, &t).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut s = spec();
        s.size = SizeSpec::Bytes(8 << 30);
        s.force = true;
        assert!(Plan::resolve(&s, &t).is_ok());
        let mut s = spec();
        s.threads = 3;
        s.oversubscribe = true;
        let p = Plan::resolve(&s, &t).unwrap();
        assert_eq!(p.worker_cpus.len(), 3);
        assert!(p.notes.contains(&Note::Oversubscribed {
            workers: 3,
            targets: 2,
            unit: "CPUs"
        }));
    }

    /// The refusals that read the machine, on captured facts: hugetlb
    /// pools, hwloc's cores, tier shares, emulation.
    #[test]
    fn machine_facts_decide_refusals() {
        let mut f = facts("dram-cxl-6.12");
        let mut s = spec();
        s.page = PageKind::Huge2M;
        let e = Plan::resolve(&s, &f).unwrap_err().to_string();
        assert!(
            e.contains("needs 32 free 2m huge pages") && e.contains("has 0"),
            "{e}"
        );
        f.hugetlb_free.insert(PageKind::Huge2M, 32);
        assert!(Plan::resolve(&s, &f).is_ok());
        let mut s = spec();
        s.pin = PinUnit::Core;
        f.cores.insert(0, Err("hwloc lists no cores".into()));
        let e = Plan::resolve(&s, &f).unwrap_err().to_string();
        assert!(e.contains("--pin core: hwloc lists no cores"), "{e}");
        let mut s = spec();
        s.size = "50% of slow".parse().unwrap();
        let p = Plan::resolve(&s, &f).unwrap();
        assert!(p.size_bytes > 0 && p.size_bytes % 4096 == 0);
        s.size = "50% of slow".parse().unwrap();
        s.first_touch = None;
        let e = Plan::resolve(&s, &facts("one-node"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--size 50% of slow: the tier has no memory"),
            "{e}"
        );
        f.emulated = true;
        let p = Plan::resolve(&spec(), &f).unwrap();
        assert!(p.notes.contains(&Note::EmulatedNuma));
    }

    /// --bracket puts the bounds first, once each, and leaves out a bound
    /// the buffer does not fit.
    #[test]
    fn the_bounds_come_first_where_they_fit() {
        let f = facts("dram-cxl-6.12");
        let mut s = spec();
        s.bracket = true;
        s.variants.push("bind:0".parse().unwrap());
        let p = Plan::resolve(&s, &f).unwrap();
        let names: Vec<String> = p.variants.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            names,
            [
                "bind:0",
                "bind:1",
                "preferred-many:0",
                "preferred-many:0+balancing"
            ]
        );
        let b = p.bracket.unwrap();
        assert_eq!(
            (b.fast.as_deref(), b.slow.as_deref()),
            (Some("bind:0"), Some("bind:1"))
        );
        // A buffer just larger than the smaller side's free memory.
        let free_fast = f.topo.free_bytes(&f.topo.roles.fast);
        let free_slow = f.topo.free_bytes(&f.topo.roles.slow);
        let (small, bound, touch) = if free_fast < free_slow {
            (free_fast, "bind:0", NodeSpec::Slow)
        } else {
            (free_slow, "bind:1", NodeSpec::Fast)
        };
        assert_ne!(free_fast, free_slow);
        s.size = SizeSpec::Bytes(small / 4096 * 4096 + 4096);
        s.first_touch = Some(touch);
        let p = Plan::resolve(&s, &f).unwrap();
        assert!(
            p.notes.contains(&Note::BracketLeftOut(bound.into())),
            "{:?}",
            p.notes
        );
        assert!(!p.variants.iter().any(|v| v.to_string() == bound) || bound == "bind:0");
        s.first_touch = None;
        s.size = SizeSpec::Bytes(64 << 20);
        let e = Plan::resolve(&s, &facts("one-node"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bracket needs a fast and a slow tier"), "{e}");
    }

    #[test]
    fn slow_on_a_single_tier_machine_is_an_error() {
        let err = Plan::resolve(&spec(), &facts("one-node"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--first-touch slow names no node"), "{err}");
    }
}
