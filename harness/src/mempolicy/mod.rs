//! Memory policies: a typed [`Policy`] (mode, flags, node set), its compact
//! command-line spelling, and applying it to the calling thread
//! (`set_mempolicy`) or to an address range (`mbind`), with read-back
//! through `get_mempolicy`.
//!
//! Spelling: `MODE[:NODES][+FLAG...]`, e.g. `preferred-many:0,1+balancing`,
//! `bind:fast,slow+balancing`, `interleave:0-3`, `default`. NODES is a
//! kernel list (`0-3,5`) or `fast`, `slow`, `all` (resolved against the
//! machine's memory tiers), joined with `,`.

pub mod sys;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use sys::{Errno, SysError};

use crate::topology::{NodeSet, Topology};

/// Policy modes, with the uapi numbers from `include/uapi/linux/mempolicy.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Default,
    Preferred,
    Bind,
    Interleave,
    Local,
    /// Since 5.15 (commit b27abaccf8e8).
    PreferredMany,
    /// Since 6.9.
    WeightedInterleave,
    /// A mode number this tool does not know, read back from a newer kernel.
    Unknown(i32),
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::Default,
        Mode::Preferred,
        Mode::Bind,
        Mode::Interleave,
        Mode::Local,
        Mode::PreferredMany,
        Mode::WeightedInterleave,
    ];

    /// The spelling used on the command line and in CSV files.
    pub fn name(self) -> String {
        match self {
            Mode::Default => "default".into(),
            Mode::Preferred => "preferred".into(),
            Mode::Bind => "bind".into(),
            Mode::Interleave => "interleave".into(),
            Mode::Local => "local".into(),
            Mode::PreferredMany => "preferred-many".into(),
            Mode::WeightedInterleave => "weighted-interleave".into(),
            Mode::Unknown(n) => format!("unknown-{n}"),
        }
    }

    /// Modes that take no node set (the kernel wants an empty mask).
    pub fn takes_nodes(self) -> bool {
        !matches!(self, Mode::Default | Mode::Local)
    }

    fn parse(s: &str) -> Option<Self> {
        Mode::ALL.into_iter().find(|m| m.name() == s).or(match s {
            "preferred_many" | "prefer-many" => Some(Mode::PreferredMany),
            "weighted_interleave" => Some(Mode::WeightedInterleave),
            "membind" => Some(Mode::Bind),
            _ => None,
        })
    }
}

impl From<Mode> for i32 {
    fn from(m: Mode) -> i32 {
        match m {
            Mode::Default => 0,
            Mode::Preferred => 1,
            Mode::Bind => 2,
            Mode::Interleave => 3,
            Mode::Local => 4,
            Mode::PreferredMany => 5,
            Mode::WeightedInterleave => 6,
            Mode::Unknown(n) => n,
        }
    }
}

impl From<i32> for Mode {
    fn from(n: i32) -> Mode {
        Mode::ALL
            .into_iter()
            .find(|m| i32::from(*m) == n)
            .unwrap_or(Mode::Unknown(n))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Mode flags, OR'ed into the mode word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Flags(pub u32);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Migrate on NUMA hint faults: with BIND since 5.12 (bda420b98505),
    /// with PREFERRED_MANY since 6.10 (133d04b1eee9).
    pub const NUMA_BALANCING: Flags = Flags(1 << 13);
    pub const RELATIVE_NODES: Flags = Flags(1 << 14);
    pub const STATIC_NODES: Flags = Flags(1 << 15);
    const NAMED: [(Flags, &'static str); 3] = [
        (Flags::NUMA_BALANCING, "balancing"),
        (Flags::STATIC_NODES, "static"),
        (Flags::RELATIVE_NODES, "relative"),
    ];
    pub const MASK: u32 = (1 << 13) | (1 << 14) | (1 << 15);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn name(self) -> String {
        Self::NAMED
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join("+")
    }
    fn parse(s: &str) -> Option<Flags> {
        match s {
            "balancing" | "numa-balancing" | "numa_balancing" => Some(Flags::NUMA_BALANCING),
            "static" | "static-nodes" | "static_nodes" => Some(Flags::STATIC_NODES),
            "relative" | "relative-nodes" | "relative_nodes" => Some(Flags::RELATIVE_NODES),
            _ => None,
        }
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A concrete policy: what the kernel is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    pub mode: Mode,
    pub flags: Flags,
    pub nodes: NodeSet,
}

impl Policy {
    pub fn new(mode: Mode, flags: Flags, nodes: NodeSet) -> Self {
        Self { mode, flags, nodes }
    }
    pub fn default_policy() -> Self {
        Self::new(Mode::Default, Flags::NONE, NodeSet::new())
    }
    pub fn bind(nodes: NodeSet) -> Self {
        Self::new(Mode::Bind, Flags::NONE, nodes)
    }
    fn mode_word(&self) -> i32 {
        i32::from(self.mode) | self.flags.0 as i32
    }
    fn mask(&self) -> [u64; sys::MASK_WORDS] {
        let mut mask = [0u64; sys::MASK_WORDS];
        mask.copy_from_slice(&self.nodes.to_mask(sys::MASK_WORDS));
        mask
    }
    /// The mode word and node mask `set_mempolicy` takes, for a caller
    /// that must make the call itself (between fork and exec).
    pub fn kernel_args(&self) -> (i32, [u64; sys::MASK_WORDS]) {
        (self.mode_word(), self.mask())
    }
    /// Decodes what `get_mempolicy` returns.
    fn from_kernel(word: i32, mask: &[u64]) -> Self {
        let flags = Flags(word as u32 & Flags::MASK);
        let mode = Mode::from(word & !(Flags::MASK as i32));
        Self::new(mode, flags, NodeSet::from_mask(mask))
    }
    /// Sets this policy for the calling thread.
    pub fn apply_to_thread(&self) -> Result<(), SysError> {
        sys::set_mempolicy(self.mode_word(), &self.mask())
    }
    /// The calling thread's policy, as the kernel reports it.
    pub fn of_thread() -> Result<Self, SysError> {
        let (word, mask) = sys::get_mempolicy(None)?;
        Ok(Self::from_kernel(word, &mask))
    }
    /// The policy of the mapping holding `addr`, as the kernel reports it.
    pub fn of_address(addr: *const u8) -> Result<Self, SysError> {
        let (word, mask) = sys::get_mempolicy(Some(addr))?;
        Ok(Self::from_kernel(word, &mask))
    }
    /// Sets this policy on `addr..addr+len` with `mbind`.
    ///
    /// # Safety
    /// The range must be a mapping the caller owns.
    pub unsafe fn apply_to_range(
        &self,
        addr: *mut u8,
        len: usize,
        mv: MoveFlags,
    ) -> Result<(), SysError> {
        // SAFETY: the range is the caller's mapping (this function's contract).
        unsafe { sys::mbind(addr, len, self.mode_word(), &self.mask(), mv.0) }
    }
}

/// `mbind` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoveFlags(pub u32);

impl MoveFlags {
    /// Change the policy only: pages stay where they are.
    pub const NONE: MoveFlags = MoveFlags(0);
    pub const STRICT: MoveFlags = MoveFlags(1);
    /// Move this process's pages that do not follow the new policy.
    pub const MOVE: MoveFlags = MoveFlags(2);
    pub const MOVE_ALL: MoveFlags = MoveFlags(4);
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mode)?;
        if !self.nodes.is_empty() {
            write!(f, ":{}", self.nodes)?;
        }
        if !self.flags.is_empty() {
            write!(f, "+{}", self.flags.name())?;
        }
        Ok(())
    }
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A node set as typed: ids, or a role resolved against the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSpec {
    Ids(NodeSet),
    Fast,
    Slow,
    All,
    /// Several of the above, united (`fast,slow`).
    Union(Vec<NodeSpec>),
}

impl NodeSpec {
    pub fn resolve(&self, topo: &Topology) -> NodeSet {
        match self {
            NodeSpec::Ids(set) => set.clone(),
            NodeSpec::Fast => topo.roles.fast.clone(),
            NodeSpec::Slow => topo.roles.slow.clone(),
            NodeSpec::All => topo.memory_nodes(),
            NodeSpec::Union(parts) => parts
                .iter()
                .fold(NodeSet::new(), |acc, p| acc.union(&p.resolve(topo))),
        }
    }
}

impl FromStr for NodeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let words = ["fast", "slow", "all"];
        if !s.split(',').any(|p| words.contains(&p.trim())) {
            return s.parse().map(NodeSpec::Ids).map_err(|e| e.to_string());
        }
        let mut parts = Vec::new();
        for p in s.split(',') {
            parts.push(match p.trim() {
                "fast" => NodeSpec::Fast,
                "slow" => NodeSpec::Slow,
                "all" => NodeSpec::All,
                ids => NodeSpec::Ids(
                    ids.parse()
                        .map_err(|e: crate::topology::IdListError| e.to_string())?,
                ),
            });
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            NodeSpec::Union(parts)
        })
    }
}

impl fmt::Display for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSpec::Ids(set) => write!(f, "{set}"),
            NodeSpec::Fast => f.write_str("fast"),
            NodeSpec::Slow => f.write_str("slow"),
            NodeSpec::All => f.write_str("all"),
            NodeSpec::Union(parts) => {
                let s: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// A policy as typed on the command line, before node roles are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub mode: Mode,
    pub flags: Flags,
    pub nodes: Option<NodeSpec>,
}

const SPELLING_HELP: &str = "write MODE[:NODES][+FLAG...], e.g. preferred-many:fast+balancing \
     (modes: default, local, preferred, bind, interleave, preferred-many, weighted-interleave; \
     flags: balancing, static, relative)";

impl FromStr for PolicySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut plus = s.trim().split('+');
        let head = plus.next().unwrap_or_default();
        let (mode_s, nodes_s) = match head.split_once(':') {
            Some((m, n)) => (m, Some(n)),
            None => (head, None),
        };
        let mode = Mode::parse(mode_s)
            .ok_or_else(|| format!("unknown policy mode {mode_s:?}: {SPELLING_HELP}"))?;
        let mut flags = Flags::NONE;
        for f in plus {
            let flag = Flags::parse(f)
                .ok_or_else(|| format!("unknown policy flag {f:?}: {SPELLING_HELP}"))?;
            if flags | flag == flags {
                return Err(format!(
                    "policy {s:?} names the flag {f:?} twice: give each flag once"
                ));
            }
            flags = flags | flag;
        }
        let nodes = match nodes_s {
            Some(n) => Some(
                n.parse::<NodeSpec>()
                    .map_err(|e| format!("in policy {s:?}: {e}"))?,
            ),
            None => None,
        };
        let spec = PolicySpec { mode, flags, nodes };
        spec.validate().map_err(|e| format!("policy {s:?}: {e}"))?;
        Ok(spec)
    }
}

impl PolicySpec {
    /// Checks the combinations the kernel would refuse with a bare EINVAL,
    /// so the user gets a reason instead.
    fn validate(&self) -> Result<(), String> {
        let nodes = match &self.nodes {
            Some(NodeSpec::Ids(set)) if set.is_empty() => None,
            other => other.as_ref(),
        };
        match (nodes, self.mode.takes_nodes()) {
            (Some(_), false) => {
                return Err(format!(
                    "mode {} takes no node list: drop the `:NODES` part",
                    self.mode
                ))
            }
            (None, true) => {
                return Err(format!(
                    "mode {} needs a node list, e.g. {}:fast or {}:0,1",
                    self.mode, self.mode, self.mode
                ))
            }
            _ => {}
        }
        if self
            .flags
            .contains(Flags::STATIC_NODES | Flags::RELATIVE_NODES)
        {
            return Err("the flags static and relative exclude each other".into());
        }
        Ok(())
    }

    /// Turns roles into node ids. Fails where a role names no node on this
    /// machine (e.g. `slow` on a single-tier machine).
    pub fn resolve(&self, topo: &Topology) -> Result<Policy, String> {
        let nodes = match &self.nodes {
            None => NodeSet::new(),
            Some(spec) => {
                let set = spec.resolve(topo);
                if set.is_empty() {
                    return Err(format!(
                        "node set `{spec}` is empty on this machine ({}); see `tierbench topo`",
                        topo.roles.source
                    ));
                }
                let known = topo.node_ids();
                if let Some(bad) = set.iter().find(|n| !known.contains(*n)) {
                    return Err(format!(
                        "unknown node {bad}: this machine has nodes {known}; see `tierbench topo`"
                    ));
                }
                set
            }
        };
        Ok(Policy::new(self.mode, self.flags, nodes))
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mode)?;
        if let Some(n) = &self.nodes {
            write!(f, ":{n}")?;
        }
        if !self.flags.is_empty() {
            write!(f, "+{}", self.flags.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for s in [
            "default",
            "local",
            "bind:0-1",
            "preferred-many:fast+balancing",
            "preferred-many:0-1+balancing",
            "bind:fast,slow+balancing",
            "interleave:all",
            "weighted-interleave:0,2",
            "preferred:1+static",
        ] {
            let spec: PolicySpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
    }

    #[test]
    fn spelling_errors_say_what_to_write() {
        for (bad, needle) in [
            ("perfered-many:0", "unknown policy mode"),
            ("bind:0+balance", "unknown policy flag"),
            ("bind:0+balancing+balancing", "twice"),
            ("bind", "needs a node list"),
            ("default:0", "takes no node list"),
            ("bind:0+static+relative", "exclude each other"),
            ("bind:x", "expected a list"),
            ("bind:", "needs a node list"),
        ] {
            let err = bad.parse::<PolicySpec>().unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn kernel_words_decode() {
        let p = Policy::from_kernel(5 | (1 << 13), &[0b10]);
        assert_eq!(p.to_string(), "preferred-many:1+balancing");
        assert_eq!(Mode::from(42), Mode::Unknown(42));
        assert_eq!(i32::from(Mode::WeightedInterleave), 6);
    }

    /// Each mode set on node 0 reads back identically through
    /// get_mempolicy (run in a scratch thread: policies are per thread).
    #[test]
    fn thread_policy_round_trip_on_node_zero() {
        for mode in Mode::ALL {
            let nodes = if mode.takes_nodes() {
                NodeSet::single(0)
            } else {
                NodeSet::new()
            };
            let want = Policy::new(mode, Flags::NONE, nodes);
            let got = std::thread::spawn({
                let want = want.clone();
                move || -> Result<Policy, SysError> {
                    want.apply_to_thread()?;
                    Policy::of_thread()
                }
            })
            .join()
            .unwrap();
            match got {
                // LOCAL reads back as LOCAL since 5.x; DEFAULT as DEFAULT.
                Ok(got) => assert_eq!(got, want, "mode {mode}"),
                Err(e) if mode == Mode::WeightedInterleave && e.errno == Errno::EINVAL => {
                    crate::errln!("skip: weighted-interleave unsupported by this kernel (< 6.9)")
                }
                Err(e) => panic!("mode {mode}: {e}"),
            }
        }
    }
}
