//! DAMON-based tiering, built through the DAMON sysfs interface
//! (`/sys/kernel/mm/damon/admin/kdamonds`), the way samples/damon/mtier.c
//! and damo's `mem_tier.sh` set it up: one kdamond per tiered node over the
//! node's physical ranges (operations `paddr`), `migrate_hot` on a slow
//! node toward the fast node, `migrate_cold` on a fast node toward the slow
//! node, each with a quota, a young-page filter and, where the kernel has
//! them (6.16+), quota goals on the fast node's use. Debian does not build
//! the mtier sample, so sysfs is the way in.
//!
//! The kdamonds are owned state: `nr_kdamonds` is a knob the run owns
//! ([`crate::knobs::Knob::DamonKdamonds`]), so the guard, the signal path
//! and `knobs restore` turn them off and remove them.
//!
//! DAMON's migrations are not NUMA-balancing promotions: `pgpromote_success`
//! does not move for them, `pgmigrate_success` does, and the census is the
//! ground truth for where pages are.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::knobs::{self, Knob, KnobError, KDAMONDS_DIR};
use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};

/// Where the DAMON sysfs interface lives.
pub const ADMIN_DIR: &str = "/sys/kernel/mm/damon/admin";

/// The mtier policy's values, each overridable (`--damon KEY=VALUE`, a
/// scenario's `[damon]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamonConfig {
    pub sample_us: u64,
    pub aggr_us: u64,
    pub update_us: u64,
    pub min_nr_regions: u64,
    pub max_nr_regions: u64,
    /// A region is hot from this many accesses per aggregation interval
    /// (samples that found it accessed): 1 of 20 is mtier's 5%.
    pub hot_min_accesses: u64,
    pub apply_interval_us: u64,
    /// Most each scheme migrates per quota interval.
    pub quota_mib: u64,
    pub quota_reset_ms: u64,
    /// Promote toward this use of the fast node, in basis points (6.16+).
    pub fast_used_goal_bp: u64,
    /// Demote toward this much free on the fast node, in basis points.
    pub fast_free_goal_bp: u64,
    /// Promote only young pages, demote only pages that are not.
    pub young_filter: bool,
    /// Tune the sampling interval toward this share of regions seen
    /// accessed, in basis points (6.15+; 0: off).
    pub intervals_goal_access_bp: u64,
}

impl Default for DamonConfig {
    fn default() -> Self {
        DamonConfig {
            sample_us: 5_000,
            aggr_us: 100_000,
            update_us: 1_000_000,
            min_nr_regions: 10,
            max_nr_regions: 1_000,
            hot_min_accesses: 1,
            apply_interval_us: 1_000_000,
            quota_mib: 200,
            quota_reset_ms: 1_000,
            fast_used_goal_bp: 9_970,
            fast_free_goal_bp: 50,
            young_filter: true,
            intervals_goal_access_bp: 400,
        }
    }
}

impl DamonConfig {
    pub const KEYS: [&'static str; 13] = [
        "sample_us",
        "aggr_us",
        "update_us",
        "min_nr_regions",
        "max_nr_regions",
        "hot_min_accesses",
        "apply_interval_us",
        "quota_mib",
        "quota_reset_ms",
        "fast_used_goal_bp",
        "fast_free_goal_bp",
        "young_filter",
        "intervals_goal_access_bp",
    ];

    /// Sets one value from `KEY=VALUE`.
    pub fn set(&mut self, kv: &str) -> Result<(), String> {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("{kv:?}: write KEY=VALUE, e.g. quota_mib=100"))?;
        let (k, v) = (k.trim(), v.trim());
        if k == "young_filter" {
            self.young_filter = match v {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => return Err(format!("young_filter={v:?}: give true or false")),
            };
            return Ok(());
        }
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{k}={v:?}: give a whole number"))?;
        let slot = match k {
            "sample_us" => &mut self.sample_us,
            "aggr_us" => &mut self.aggr_us,
            "update_us" => &mut self.update_us,
            "min_nr_regions" => &mut self.min_nr_regions,
            "max_nr_regions" => &mut self.max_nr_regions,
            "hot_min_accesses" => &mut self.hot_min_accesses,
            "apply_interval_us" => &mut self.apply_interval_us,
            "quota_mib" => &mut self.quota_mib,
            "quota_reset_ms" => &mut self.quota_reset_ms,
            "fast_used_goal_bp" => &mut self.fast_used_goal_bp,
            "fast_free_goal_bp" => &mut self.fast_free_goal_bp,
            "intervals_goal_access_bp" => &mut self.intervals_goal_access_bp,
            _ => {
                return Err(format!(
                    "unknown DAMON setting {k:?}: tierbench knows {}",
                    Self::KEYS.join(", ")
                ))
            }
        };
        *slot = n;
        self.check()
    }

    fn check(&self) -> Result<(), String> {
        if self.sample_us == 0 || self.aggr_us < self.sample_us {
            return Err("DAMON wants 0 < sample_us <= aggr_us".into());
        }
        if self.min_nr_regions < 3 || self.max_nr_regions < self.min_nr_regions {
            return Err("DAMON wants 3 <= min_nr_regions <= max_nr_regions".into());
        }
        if self.fast_used_goal_bp > 10_000 || self.fast_free_goal_bp > 10_000 {
            return Err("goals are basis points: 0 to 10000".into());
        }
        if self.hot_min_accesses == 0 {
            return Err("hot_min_accesses must be at least 1 (0 would take cold pages)".into());
        }
        Ok(())
    }
}

/// What a scheme does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `migrate_hot` from a slow node to a fast one.
    Hot,
    /// `migrate_cold` from a fast node to a slow one.
    Cold,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Hot, Role::Cold];
    pub fn action(self) -> &'static str {
        match self {
            Role::Hot => "migrate_hot",
            Role::Cold => "migrate_cold",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Hot => "hot",
            Role::Cold => "cold",
        }
    }
}

/// A scheme's cumulative statistics, as its `stats/` directory says after
/// `update_schemes_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DamosStats {
    pub nr_tried: u64,
    pub sz_tried: u64,
    pub nr_applied: u64,
    pub sz_applied: u64,
    pub qt_exceeds: u64,
}

impl DamosStats {
    pub const NAMES: [&'static str; 5] = [
        "nr_tried",
        "sz_tried",
        "nr_applied",
        "sz_applied",
        "qt_exceeds",
    ];
    pub fn values(&self) -> [u64; 5] {
        [
            self.nr_tried,
            self.sz_tried,
            self.nr_applied,
            self.sz_applied,
            self.qt_exceeds,
        ]
    }
    fn add(&mut self, o: &DamosStats) {
        self.nr_tried += o.nr_tried;
        self.sz_tried += o.sz_tried;
        self.nr_applied += o.nr_applied;
        self.sz_applied += o.sz_applied;
        self.qt_exceeds += o.qt_exceeds;
    }
}

/// A DAMON setup failed: which file, what was written, what the kernel
/// said.
#[derive(Debug, thiserror::Error)]
pub enum DamonError {
    #[error("DAMON: writing {value:?} to {path}: {err}")]
    Write {
        path: String,
        value: String,
        err: std::io::Error,
    },
    #[error(transparent)]
    Knob(#[from] KnobError),
    #[error("DAMON: {0}")]
    Unsupported(String),
}

/// What this kernel's DAMON took of the optional parts (goals, goal node,
/// filters, interval tuning), found by writing them: a kernel without one
/// refuses the value or lacks the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub node_goals: bool,
    pub young_filter: bool,
    pub intervals_goal: bool,
    /// What the configuration asked for: a part turned off is not "left
    /// out by the kernel".
    #[serde(skip)]
    pub asked: (bool, bool),
}

impl Accepted {
    /// What was left out, for the variant's notes.
    pub fn left_out(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.node_goals {
            out.push(
                "quota goals node_mem_used_bp/node_mem_free_bp (6.16+): quotas are fixed, \
                 migrate_cold demotes every cold page of the fast node up to its quota",
            );
        }
        if !self.young_filter && self.asked.0 {
            out.push("young-page filters (6.10+)");
        }
        if !self.intervals_goal && self.asked.1 {
            out.push("monitoring interval auto-tuning (6.15+)");
        }
        out
    }
}

/// One kdamond of the setup: which node it watches and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdamond {
    pub index: u32,
    pub role: Role,
    pub watched: NodeId,
    pub target: NodeId,
}

/// The kdamonds a DAMON variant runs, on. Dropping it turns them off and
/// removes them (as does the knob guard, should this not run).
#[derive(Debug)]
pub struct DamonRun {
    sys: SysRoot,
    pub kdamonds: Vec<Kdamond>,
    pub accepted: Accepted,
    /// DAMON_STAT was on and is off for the variant: turned back on at
    /// stop (and by the knob guard, should this not run).
    pub paused_damon_stat: bool,
}

fn w(sys: &SysRoot, path: &str, value: impl fmt::Display) -> Result<(), DamonError> {
    let value = value.to_string();
    std::fs::write(sys.path(path), &value).map_err(|err| DamonError::Write {
        path: path.to_string(),
        value,
        err,
    })
}

/// A node's online physical ranges, from its memory blocks (merged where
/// contiguous): what a paddr target must be given.
pub fn node_ranges(sys: &SysRoot, node: NodeId) -> Vec<(u64, u64)> {
    let Some(size) = sys
        .read_opt("/sys/devices/system/memory/block_size_bytes")
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
    else {
        return Vec::new();
    };
    let mut blocks: Vec<u64> = sys
        .list(&format!("/sys/devices/system/node/node{node}"))
        .iter()
        .filter_map(|n| n.strip_prefix("memory")?.parse::<u64>().ok())
        .filter(|b| {
            sys.read_opt(&format!("/sys/devices/system/memory/memory{b}/state"))
                .as_deref()
                == Some("online")
        })
        .collect();
    blocks.sort_unstable();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for b in blocks {
        let (start, end) = (b * size, (b + 1) * size);
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// The kdamonds for these tiers: each slow node promotes to the first fast
/// node, each fast node demotes to the first slow node.
pub fn layout(fast: &NodeSet, slow: &NodeSet) -> Vec<Kdamond> {
    let (Some(f0), Some(s0)) = (fast.iter().next(), slow.iter().next()) else {
        return Vec::new();
    };
    let hot = slow.iter().map(|s| (Role::Hot, s, f0));
    let cold = fast.iter().map(|f| (Role::Cold, f, s0));
    hot.chain(cold)
        .enumerate()
        .map(|(i, (role, watched, target))| Kdamond {
            index: i as u32,
            role,
            watched,
            target,
        })
        .collect()
}

impl DamonRun {
    /// Builds the kdamonds and turns them on. The run must own
    /// [`Knob::DamonKdamonds`] (its knob plan took it).
    pub fn start(
        sys: &SysRoot,
        fast: &NodeSet,
        slow: &NodeSet,
        cfg: &DamonConfig,
    ) -> Result<DamonRun, DamonError> {
        let paused = pause_damon_stat(sys)?;
        let mut run = match DamonRun::build(sys, fast, slow, cfg) {
            Ok(run) => run,
            Err(e) => {
                if paused {
                    knobs::set_owned(&Knob::DamonStat, "Y")?;
                }
                return Err(e);
            }
        };
        run.paused_damon_stat = paused;
        for k in &run.kdamonds {
            let path = format!("{KDAMONDS_DIR}/{}/state", k.index);
            if let Err(e) = w(sys, &path, "on") {
                run.stop()?;
                return Err(match e {
                    DamonError::Write { err, .. } if err.raw_os_error() == Some(libc::EBUSY) => {
                        DamonError::Unsupported(format!(
                            "the kernel refused to start a kdamond (EBUSY writing on to {path}): \
                             a DAMON module runs exclusively (DAMON_RECLAIM or DAMON_LRU_SORT \
                             enabled under /sys/module/damon_*/parameters): turn it off for the run"
                        ))
                    }
                    e => e,
                });
            }
        }
        Ok(run)
    }

    /// Writes the kdamonds' configuration, off. Used by `start` and by the
    /// probe (which tears it down unstarted).
    pub fn build(
        sys: &SysRoot,
        fast: &NodeSet,
        slow: &NodeSet,
        cfg: &DamonConfig,
    ) -> Result<DamonRun, DamonError> {
        if !sys.exists(KDAMONDS_DIR) {
            return Err(DamonError::Unsupported(format!(
                "this kernel has no DAMON sysfs interface ({KDAMONDS_DIR} is missing: \
                 CONFIG_DAMON_SYSFS is off, or the kernel is older than 5.18)"
            )));
        }
        let kdamonds = layout(fast, slow);
        knobs::set_owned(&Knob::DamonKdamonds, &kdamonds.len().to_string())?;
        let mut run = DamonRun {
            sys: sys.clone(),
            kdamonds: Vec::new(),
            accepted: Accepted {
                node_goals: true,
                young_filter: cfg.young_filter,
                intervals_goal: cfg.intervals_goal_access_bp > 0,
                asked: (cfg.young_filter, cfg.intervals_goal_access_bp > 0),
            },
            paused_damon_stat: false,
        };
        for k in kdamonds {
            let result = run.build_one(&k, cfg);
            run.kdamonds.push(k);
            if let Err(e) = result {
                run.stop()?;
                return Err(e);
            }
        }
        Ok(run)
    }

    fn build_one(&mut self, k: &Kdamond, cfg: &DamonConfig) -> Result<(), DamonError> {
        let sys = &self.sys.clone();
        let kd = format!("{KDAMONDS_DIR}/{}", k.index);
        w(sys, &format!("{kd}/contexts/nr_contexts"), 1)?;
        let ctx = format!("{kd}/contexts/0");
        let ops = sys
            .read_opt(&format!("{ctx}/avail_operations"))
            .unwrap_or_default();
        if !ops.split_whitespace().any(|o| o == "paddr") {
            return Err(DamonError::Unsupported(format!(
                "this kernel's DAMON has no physical-address operations (avail_operations: \
                 {:?}; CONFIG_DAMON_PADDR is off)",
                ops.trim()
            )));
        }
        w(sys, &format!("{ctx}/operations"), "paddr")?;
        let attrs = format!("{ctx}/monitoring_attrs");
        w(sys, &format!("{attrs}/intervals/sample_us"), cfg.sample_us)?;
        w(sys, &format!("{attrs}/intervals/aggr_us"), cfg.aggr_us)?;
        w(sys, &format!("{attrs}/intervals/update_us"), cfg.update_us)?;
        w(sys, &format!("{attrs}/nr_regions/min"), cfg.min_nr_regions)?;
        w(sys, &format!("{attrs}/nr_regions/max"), cfg.max_nr_regions)?;
        let goal = format!("{attrs}/intervals/intervals_goal");
        if self.accepted.intervals_goal && sys.exists(&goal) {
            w(
                sys,
                &format!("{goal}/access_bp"),
                cfg.intervals_goal_access_bp,
            )?;
            w(sys, &format!("{goal}/aggrs"), 3)?;
            w(sys, &format!("{goal}/min_sample_us"), cfg.sample_us)?;
            w(sys, &format!("{goal}/max_sample_us"), 10_000_000)?;
        } else {
            self.accepted.intervals_goal = false;
        }

        let ranges = node_ranges(sys, k.watched);
        if ranges.is_empty() {
            return Err(DamonError::Unsupported(format!(
                "node {} has no online memory blocks to watch",
                k.watched
            )));
        }
        w(sys, &format!("{ctx}/targets/nr_targets"), 1)?;
        let regions = format!("{ctx}/targets/0/regions");
        w(sys, &format!("{regions}/nr_regions"), ranges.len())?;
        for (i, (start, end)) in ranges.iter().enumerate() {
            w(sys, &format!("{regions}/{i}/start"), start)?;
            w(sys, &format!("{regions}/{i}/end"), end)?;
        }

        w(sys, &format!("{ctx}/schemes/nr_schemes"), 1)?;
        let s = format!("{ctx}/schemes/0");
        if let Err(e) = w(sys, &format!("{s}/action"), k.role.action()) {
            return Err(DamonError::Unsupported(format!(
                "this kernel's DAMON has no {} action (6.11+): {e}",
                k.role.action()
            )));
        }
        if !sys.exists(&format!("{s}/target_nid")) {
            return Err(DamonError::Unsupported(
                "this kernel's DAMON schemes have no target_nid (6.11+)".into(),
            ));
        }
        w(sys, &format!("{s}/target_nid"), k.target)?;
        if sys.exists(&format!("{s}/apply_interval_us")) {
            w(
                sys,
                &format!("{s}/apply_interval_us"),
                cfg.apply_interval_us,
            )?;
        }
        // A scheme made through sysfs starts with every range 0..0: nothing
        // matches until the maxima are written.
        let pattern = format!("{s}/access_pattern");
        let (acc_min, acc_max) = match k.role {
            Role::Hot => (cfg.hot_min_accesses, u64::from(u32::MAX)),
            Role::Cold => (0, 0),
        };
        w(sys, &format!("{pattern}/sz/min"), 0)?;
        w(sys, &format!("{pattern}/sz/max"), u64::MAX)?;
        w(sys, &format!("{pattern}/nr_accesses/max"), acc_max)?;
        w(sys, &format!("{pattern}/nr_accesses/min"), acc_min)?;
        w(sys, &format!("{pattern}/age/min"), 0)?;
        w(sys, &format!("{pattern}/age/max"), u32::MAX)?;

        let q = format!("{s}/quotas");
        w(sys, &format!("{q}/ms"), 0)?;
        w(sys, &format!("{q}/bytes"), cfg.quota_mib << 20)?;
        w(sys, &format!("{q}/reset_interval_ms"), cfg.quota_reset_ms)?;
        if self.accepted.node_goals {
            let fast_node = match k.role {
                Role::Hot => k.target,
                Role::Cold => k.watched,
            };
            let (metric, value) = match k.role {
                Role::Hot => ("node_mem_used_bp", cfg.fast_used_goal_bp),
                Role::Cold => ("node_mem_free_bp", cfg.fast_free_goal_bp),
            };
            self.accepted.node_goals = self.try_goal(&q, metric, value, fast_node)?;
        }

        if self.accepted.young_filter {
            self.accepted.young_filter = self.try_young_filter(&s, k.role)?;
        }
        Ok(())
    }

    /// A quota goal on the fast node's memory; `false` (and no goal) where
    /// the kernel lacks the metric or the goal's node.
    fn try_goal(&self, q: &str, metric: &str, value: u64, nid: NodeId) -> Result<bool, DamonError> {
        let sys = &self.sys;
        let goals = format!("{q}/goals");
        if !sys.exists(&goals) {
            return Ok(false);
        }
        w(sys, &format!("{goals}/nr_goals"), 1)?;
        let g = format!("{goals}/0");
        let ok = sys.exists(&format!("{g}/nid"))
            && w(sys, &format!("{g}/target_metric"), metric).is_ok()
            && w(sys, &format!("{g}/nid"), nid).is_ok();
        if !ok {
            w(sys, &format!("{goals}/nr_goals"), 0)?;
            return Ok(false);
        }
        w(sys, &format!("{g}/target_value"), value)?;
        Ok(true)
    }

    /// Hot: skip pages that are not young; cold: skip young ones.
    fn try_young_filter(&self, s: &str, role: Role) -> Result<bool, DamonError> {
        let sys = &self.sys;
        let filters = format!("{s}/filters");
        if !sys.exists(&filters) {
            return Ok(false);
        }
        w(sys, &format!("{filters}/nr_filters"), 1)?;
        let f = format!("{filters}/0");
        if w(sys, &format!("{f}/type"), "young").is_err() {
            w(sys, &format!("{filters}/nr_filters"), 0)?;
            return Ok(false);
        }
        // `matching` Y rejects what matches; a 6.14+ `allow` file stays at
        // its default N (reject).
        let matching = match role {
            Role::Hot => "N",
            Role::Cold => "Y",
        };
        w(sys, &format!("{f}/matching"), matching)?;
        Ok(true)
    }

    /// Each scheme's statistics now, summed per role.
    pub fn stats(&self) -> Result<BTreeMap<&'static str, DamosStats>, DamonError> {
        let sys = &self.sys;
        let mut out = BTreeMap::new();
        for k in &self.kdamonds {
            let kd = format!("{KDAMONDS_DIR}/{}", k.index);
            w(sys, &format!("{kd}/state"), "update_schemes_stats")?;
            let dir = format!("{kd}/contexts/0/schemes/0/stats");
            let read = |n: &str| -> u64 {
                sys.read_opt(&format!("{dir}/{n}"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            let s = DamosStats {
                nr_tried: read("nr_tried"),
                sz_tried: read("sz_tried"),
                nr_applied: read("nr_applied"),
                sz_applied: read("sz_applied"),
                qt_exceeds: read("qt_exceeds"),
            };
            out.entry(k.role.name())
                .or_insert_with(DamosStats::default)
                .add(&s);
        }
        Ok(out)
    }

    /// Turns the kdamonds off and removes them.
    pub fn stop(&mut self) -> Result<(), DamonError> {
        self.kdamonds.clear();
        knobs::set_owned(&Knob::DamonKdamonds, "0")?;
        if std::mem::take(&mut self.paused_damon_stat) {
            knobs::set_owned(&Knob::DamonStat, "Y")?;
        }
        Ok(())
    }

    /// One line for the variant's notes: what runs where.
    pub fn describe(&self) -> String {
        let mut s = self
            .kdamonds
            .iter()
            .map(|k| format!("{} node {}->{}", k.role.action(), k.watched, k.target))
            .collect::<Vec<_>>()
            .join(", ");
        if self.paused_damon_stat {
            s.push_str(" (the kernel's DAMON_STAT kdamond runs exclusively: off for the variant)");
        }
        s
    }
}

impl Drop for DamonRun {
    fn drop(&mut self) {
        if !self.kdamonds.is_empty() || self.paused_damon_stat {
            let _ = self.stop();
        }
    }
}

/// Turns DAMON_STAT off when it is on (it would make the kdamonds' start
/// EBUSY); `true` when it did. The run owns the knob, so it comes back.
fn pause_damon_stat(sys: &SysRoot) -> Result<bool, DamonError> {
    let on = Knob::DamonStat
        .read(sys)
        .is_ok_and(|v| matches!(v.as_str(), "Y" | "y" | "1"));
    if on {
        knobs::set_owned(&Knob::DamonStat, "N")?;
    }
    Ok(on)
}

/// What `probe` can tell of DAMON without changing anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DamonSupport {
    /// The sysfs interface (`/sys/kernel/mm/damon/admin`) is there.
    pub sysfs: bool,
    /// The sysfs kdamonds that exist now: a DAMON variant refuses to run
    /// while there are any.
    pub sysfs_kdamonds: Vec<String>,
    /// kdamond threads the kernel started itself (DAMON_STAT,
    /// DAMON_RECLAIM, DAMON_LRU_SORT): they watch memory beside a run but
    /// are not sysfs kdamonds, so they do not block one.
    pub kernel_kdamonds: Vec<String>,
    /// DAMON_STAT's `enabled` (6.17+; `None` without the module): while Y
    /// its kdamond runs exclusively and a DAMON variant turns it off.
    pub damon_stat: Option<bool>,
    /// What a scratch kdamond accepted (`tierbench probe` as root).
    pub scratch: Option<Scratch>,
    /// Why the scratch kdamond was not tried.
    pub scratch_skipped: Option<String>,
}

/// What this kernel's DAMON accepted on a scratch kdamond, never started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scratch {
    pub avail_operations: Vec<String>,
    /// Tried actions: accepted or not.
    pub actions: BTreeMap<String, bool>,
    pub target_nid: bool,
    /// Tried quota goal metrics: accepted or not.
    pub goal_metrics: BTreeMap<String, bool>,
    /// Goals take a node (`nid`, 6.16+).
    pub goal_nid: bool,
    pub young_filter: bool,
    pub intervals_goal: bool,
}

impl DamonSupport {
    pub fn read(sys: &SysRoot) -> DamonSupport {
        let sysfs_kdamonds = knobs::kdamonds(sys);
        let sysfs_pids: Vec<u32> = sysfs_kdamonds.iter().filter_map(|k| k.pid).collect();
        let kernel_kdamonds = sys
            .list("/proc")
            .iter()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|pid| !sysfs_pids.contains(pid))
            .filter_map(|pid| {
                let comm = sys.read_opt(&format!("/proc/{pid}/comm"))?;
                comm.trim()
                    .starts_with("kdamond")
                    .then(|| format!("{} (pid {pid})", comm.trim()))
            })
            .collect();
        DamonSupport {
            sysfs: sys.exists(ADMIN_DIR),
            sysfs_kdamonds: sysfs_kdamonds
                .iter()
                .map(|k| format!("kdamond {} ({})", k.index, k.state))
                .collect(),
            kernel_kdamonds,
            damon_stat: Knob::DamonStat
                .read(sys)
                .ok()
                .map(|v| matches!(v.as_str(), "Y" | "y" | "1")),
            scratch: None,
            scratch_skipped: None,
        }
    }
}

/// The actions and goal metrics the scratch probe tries.
const PROBED_ACTIONS: [&str; 4] = ["migrate_hot", "migrate_cold", "pageout", "stat"];
const PROBED_METRICS: [&str; 4] = [
    "node_mem_used_bp",
    "node_mem_free_bp",
    "user_input",
    "some_mem_psi_us",
];

/// Builds one kdamond with one scheme, never turned on, and writes each
/// action, goal metric and filter type to it: the kernel refuses what it
/// does not have. The caller owns [`Knob::DamonKdamonds`]; the kdamond is
/// removed before returning.
pub fn probe_scratch(sys: &SysRoot) -> Result<Scratch, DamonError> {
    knobs::set_owned(&Knob::DamonKdamonds, "1")?;
    let result = scratch_on_kdamond_0(sys);
    knobs::set_owned(&Knob::DamonKdamonds, "0")?;
    result
}

fn scratch_on_kdamond_0(sys: &SysRoot) -> Result<Scratch, DamonError> {
    let ctx = format!("{KDAMONDS_DIR}/0/contexts/0");
    w(sys, &format!("{KDAMONDS_DIR}/0/contexts/nr_contexts"), 1)?;
    let mut out = Scratch {
        avail_operations: sys
            .read_opt(&format!("{ctx}/avail_operations"))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
        ..Scratch::default()
    };
    w(sys, &format!("{ctx}/schemes/nr_schemes"), 1)?;
    let s = format!("{ctx}/schemes/0");
    for a in PROBED_ACTIONS {
        out.actions
            .insert(a.into(), w(sys, &format!("{s}/action"), a).is_ok());
    }
    out.target_nid = sys.exists(&format!("{s}/target_nid"));
    let goals = format!("{s}/quotas/goals");
    if sys.exists(&goals) {
        w(sys, &format!("{goals}/nr_goals"), 1)?;
        for m in PROBED_METRICS {
            let ok = w(sys, &format!("{goals}/0/target_metric"), m).is_ok();
            out.goal_metrics.insert(m.into(), ok);
        }
        out.goal_nid = sys.exists(&format!("{goals}/0/nid"));
    }
    let filters = format!("{s}/filters");
    if sys.exists(&filters) {
        w(sys, &format!("{filters}/nr_filters"), 1)?;
        out.young_filter = w(sys, &format!("{filters}/0/type"), "young").is_ok();
    }
    out.intervals_goal = sys.exists(&format!("{ctx}/monitoring_attrs/intervals/intervals_goal"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_what_damon_would() {
        let mut c = DamonConfig::default();
        c.set("quota_mib=50").unwrap();
        c.set("young_filter=false").unwrap();
        assert_eq!((c.quota_mib, c.young_filter), (50, false));
        for (bad, needle) in [
            ("quota_mib", "KEY=VALUE"),
            ("quota=5", "unknown DAMON setting"),
            ("quota_mib=x", "whole number"),
            ("hot_min_accesses=0", "at least 1"),
            ("fast_used_goal_bp=20000", "basis points"),
            ("aggr_us=10", "sample_us <= aggr_us"),
        ] {
            let e = DamonConfig::default().set(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn one_kdamond_per_tiered_node() {
        let l = layout(&"0".parse().unwrap(), &"1-2".parse().unwrap());
        let seen: Vec<(u32, Role, u32, u32)> = l
            .iter()
            .map(|k| (k.index, k.role, k.watched, k.target))
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, Role::Hot, 1, 0),
                (1, Role::Hot, 2, 0),
                (2, Role::Cold, 0, 1)
            ]
        );
    }

    #[test]
    fn ranges_merge_contiguous_online_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let sys = SysRoot::at(dir.path());
        let mem = dir.path().join("sys/devices/system/memory");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("block_size_bytes"), "8000000\n").unwrap();
        let node = dir.path().join("sys/devices/system/node/node1");
        std::fs::create_dir_all(&node).unwrap();
        for (b, state) in [(4, "online"), (5, "online"), (7, "online"), (8, "offline")] {
            std::fs::create_dir_all(mem.join(format!("memory{b}"))).unwrap();
            std::fs::write(mem.join(format!("memory{b}/state")), state).unwrap();
            std::fs::create_dir_all(node.join(format!("memory{b}"))).unwrap();
        }
        let mb = 0x800_0000u64;
        assert_eq!(
            node_ranges(&sys, 1),
            vec![(4 * mb, 6 * mb), (7 * mb, 8 * mb)]
        );
    }
}
