//! Host profiles (`hosts/*.toml`): an emulated machine's NUMA + HMAT
//! topology, or a lab machine's description, plus what the kernel is
//! expected to make of it (which nodes form the top tier).

use serde::Deserialize;

use crate::topology::{CpuSet, NodeId, NodeSet, RoleSource, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Emulated,
    Lab,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    pub id: NodeId,
    #[serde(deserialize_with = "de_idset")]
    pub cpus: CpuSet,
    pub memory_mib: u64,
    /// The node whose CPUs are nearest (QEMU `initiator=`); required for
    /// CPU-less nodes of an emulated machine with HMAT.
    pub initiator: Option<NodeId>,
    /// Free text for lab hosts: dram, cxl, hbm, ...
    pub role: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distance {
    pub from: NodeId,
    pub to: NodeId,
    pub value: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmatEntry {
    pub initiator: NodeId,
    pub target: NodeId,
    pub latency_ns: u64,
    /// MiB/s, as the kernel's `access0/initiators/read_bandwidth` reads.
    pub bandwidth_mbps: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(deserialize_with = "de_idset")]
    pub fast: NodeSet,
    #[serde(deserialize_with = "de_idset")]
    pub slow: NodeSet,
    /// The kernel is expected to leave the slow nodes in the DRAM tier (a
    /// profile built to trip the tier check: no HMAT, so no performance
    /// data).
    #[serde(default)]
    pub shared_tier: bool,
}

/// The zone a hot-added CXL memory block is onlined into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnlineZone {
    /// ZONE_MOVABLE (`online_movable`): what `daxctl` does by default; the
    /// memory can be offlined again and holds no kernel allocations.
    Movable,
    /// The kernel's zone (`online_kernel`, ZONE_NORMAL).
    Normal,
}

impl OnlineZone {
    /// The word `auto_online_blocks` takes.
    pub fn auto_online_word(self) -> &'static str {
        match self {
            OnlineZone::Movable => "online_movable",
            OnlineZone::Normal => "online_kernel",
        }
    }
}

/// Volatile CXL type-3 memory of an emulated machine: one fixed memory
/// window, one region, one CPU-less node once the region is onlined
/// through `kmem`. Behind it, `ways` cards (QEMU's `cxl-type3`), each
/// behind its own `pxb-cxl` host bridge and `cxl-rp` root port; with two
/// or more, the window interleaves them (as a lab box with expanders on
/// two host bridges interleaved by the BIOS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CxlDevice {
    /// Each card's volatile capacity (a multiple of 256 MiB); the node
    /// holds `ways` times this.
    pub memory_mib: u64,
    /// The CXL fixed memory window it is mapped through (CEDT CFMWS), at
    /// least the node's capacity, a multiple of 256 MiB.
    pub window_mib: u64,
    /// Cards interleaved in the window: 1 (default), 2, 4 or 8.
    #[serde(default = "one_way")]
    pub ways: u32,
    /// The zone its memory is onlined into.
    #[serde(default = "default_zone")]
    pub online: OnlineZone,
    /// The device's serial number, as the guest's `cxl` sysfs reports it.
    pub serial: Option<u64>,
    /// The path from the CPUs to the device's host bridge, as firmware
    /// describes it on CXL platforms: an ACPI generic port (a proximity
    /// domain of its own) with an HMAT entry from the first CPU node. The
    /// kernel (6.10+) adds the link and the device's CDAT numbers to it
    /// and kmem places the node in a tier by the sum; without a port the
    /// node lands in kmem's default tier whatever the device says.
    pub port: Option<PortPerf>,
}

/// What firmware says of a CXL host bridge's path: one HMAT entry from the
/// CPUs to the generic port's proximity domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortPerf {
    pub latency_ns: u64,
    /// MiB/s, as HMAT entries are written (QEMU's `bandwidth=NM`).
    pub bandwidth_mbps: u64,
}

/// The CDAT performance QEMU's `cxl-type3` reports for its volatile memory
/// when given no `cdat=` file (hw/mem/cxl_type3.c: DSLBIS read latency
/// 150 ns, write latency 250 ns, read and write bandwidth 16 GB/s): what
/// the kernel adds to a generic port's numbers.
pub const QEMU_CDAT: CdatPerf = CdatPerf {
    read_latency_ns: 150,
    write_latency_ns: 250,
    bandwidth_mbps: 16000,
};

/// A device's own numbers (its CDAT DSLBIS entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CdatPerf {
    pub read_latency_ns: u64,
    pub write_latency_ns: u64,
    pub bandwidth_mbps: u64,
}

fn one_way() -> u32 {
    1
}

/// One card of a [`CxlDevice`]: the `way`-th behind its window, the
/// `index`-th of the machine (which names its QEMU objects and bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CxlCard {
    pub index: usize,
    pub way: u32,
    /// The serial QEMU gives it (the profile's `serial` + way, or index +
    /// 1): how the guest finds which memdev is which card.
    pub serial: u64,
}

impl CxlCard {
    /// The PCI bus number of the card's host bridge (`pxb-cxl bus_nr`),
    /// which is also the host bridge's id in its window's target list.
    pub fn host_bridge_bus(&self) -> u32 {
        12 + 16 * self.index as u32
    }
}

impl CxlDevice {
    /// The node's capacity: every card's.
    pub fn node_mib(&self) -> u64 {
        self.memory_mib * u64::from(self.ways)
    }
}

fn default_zone() -> OnlineZone {
    OnlineZone::Movable
}

/// A lab machine's CXL memory expander, as `--host` expects to find it:
/// onlined as system RAM on `node`, with this capacity, in this zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expander {
    pub node: NodeId,
    /// Its memory as onlined (the DAX device's size), MiB.
    pub memory_mib: u64,
    /// The zone its memory blocks must be online in.
    pub online: Option<OnlineZone>,
    /// The card's serial number, as `cxl list` and sysfs show it.
    pub serial: Option<u64>,
    /// Cards interleaved into this node's region (its decoders'
    /// `interleave_ways`), 1 when absent: a region assembled from fewer
    /// cards than the lab put in is reported before any run.
    pub interleave_ways: Option<u32>,
}

/// CXL capacities and windows come in 256 MiB units (the CXL HDM decoder
/// granularity).
pub const CXL_UNIT_MIB: u64 = 256;
/// The first QEMU with volatile `cxl-type3` memory (`volatile-memdev=`).
pub const CXL_MIN_QEMU: (u32, u32) = (8, 0);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: String,
    pub kind: Kind,
    /// Guest CPUs (emulated).
    pub cpus: Option<u32>,
    pub sockets: Option<u32>,
    /// Guest memory in MiB (emulated): must equal the nodes' sum.
    pub memory_mib: Option<u64>,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeDef>,
    #[serde(default, rename = "distance")]
    pub distances: Vec<Distance>,
    #[serde(default)]
    pub hmat: Vec<HmatEntry>,
    /// CXL type-3 memory devices (emulated); each becomes the node after
    /// the `[[node]]`s, in order.
    #[serde(default)]
    pub cxl: Vec<CxlDevice>,
    /// CXL memory expanders of a lab machine.
    #[serde(default, rename = "expander")]
    pub expanders: Vec<Expander>,
    pub expect: Expect,
    /// The file's stem, for messages (filled in by `load`).
    #[serde(skip)]
    pub name: String,
    /// The file it came from, or `built-in/NAME.toml` (filled in by
    /// `load`).
    #[serde(skip)]
    pub path: std::path::PathBuf,
    /// The file's text, carried into an emulated machine as it is.
    #[serde(skip)]
    pub text: String,
}

fn de_idset<'de, D, K>(d: D) -> Result<crate::topology::idset::IdSet<K>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// The most vCPUs an emulated q35 machine takes here (no IOMMU, so no
/// x2APIC beyond 255).
pub const MAX_VCPUS: u32 = 255;

/// The memory hot-plug slots a CXL guest gets (`-m ...,slots=8`); each
/// may take up to 1 GiB of alignment in the address map.
pub const HOTPLUG_SLOTS: u64 = 8;

/// Physical address bits of QEMU's `max` CPU under TCG (and the guest
/// map's bound): 40, so 1 TiB.
pub const GUEST_PHYS_BITS: u32 = 40;
const GUEST_PHYS_MIB: u64 = 1 << (GUEST_PHYS_BITS - 20);

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Find(#[from] crate::named::NamedError),
    #[error("host profile {file}: {reason}")]
    Invalid { file: String, reason: String },
}

impl Profile {
    /// Loads a profile by path, or by name (`qemu-dram-cxl`) from the
    /// places [`crate::named`] searches.
    pub fn load(spec: &str) -> Result<Self, ProfileError> {
        Self::parse(&crate::named::find(crate::named::Kind::Host, spec)?)
    }

    fn parse(found: &crate::named::Named) -> Result<Self, ProfileError> {
        let err = |reason: String| ProfileError::Invalid {
            file: found.path().display().to_string(),
            reason,
        };
        let mut p: Profile =
            toml::from_str(&found.text).map_err(|e| err(e.to_string().replace('\n', " ")))?;
        p.name = found.name.clone();
        p.path = found.path();
        p.text = found.text.clone();
        p.validate().map_err(err)?;
        Ok(p)
    }

    /// The checks QEMU would otherwise fail on with a less helpful message.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("no [[node]] entries".into());
        }
        let ids: NodeSet = self.nodes.iter().map(|n| n.id).collect();
        if ids.len() != self.nodes.len() {
            return Err("two [[node]] entries share an id".into());
        }
        let all_ids = ids.union(&self.cxl_nodes());
        if self.kind == Kind::Emulated {
            let want_ids: NodeSet = (0..self.nodes.len() as NodeId).collect();
            if ids != want_ids {
                return Err(format!(
                    "node ids are {ids}: QEMU needs them numbered {want_ids}, without gaps"
                ));
            }
        }
        for set in [&self.expect.fast, &self.expect.slow] {
            if let Some(n) = set.iter().find(|n| !all_ids.contains(*n)) {
                return Err(format!(
                    "[expect] names node {n}, which no [[node]] or [[cxl]] defines"
                ));
            }
        }
        if let Some(e) = self.expanders.iter().find(|e| !ids.contains(e.node)) {
            return Err(format!(
                "[[expander]] on node {}, which no [[node]] defines",
                e.node
            ));
        }
        if self.kind == Kind::Lab {
            if !self.cxl.is_empty() {
                return Err(
                    "[[cxl]] describes an emulated device: a lab profile lists its \
                            expanders as [[expander]]"
                        .into(),
                );
            }
            return Ok(());
        }
        self.validate_cxl()?;
        let cpus = self.cpus.ok_or("an emulated profile needs `cpus`")?;
        if !(1..=MAX_VCPUS).contains(&cpus) {
            return Err(format!(
                "cpus = {cpus}: an emulated machine takes 1 to {MAX_VCPUS} CPUs (q35 without \
                 an IOMMU)"
            ));
        }
        if let Some(sockets) = self.sockets {
            if sockets == 0 || cpus % sockets != 0 {
                return Err(format!(
                    "sockets = {sockets} does not divide cpus = {cpus}: QEMU gives every socket \
                     the same number of cores"
                ));
            }
        }
        let memory = self
            .memory_mib
            .ok_or("an emulated profile needs `memory_mib`")?;
        // With CXL devices, the 4 GiB hole, RAM and the hot-plug room
        // (maxmem, which holds every window's memory), its slots' alignment,
        // and the fixed memory windows themselves must fit the guest's
        // physical address bits. (A profile without CXL is bounded by the
        // host's memory, checked at boot.)
        let map_mib = 4096
            + self.max_memory_mib()
            + HOTPLUG_SLOTS * 1024
            + self.cxl.iter().map(|c| c.window_mib).sum::<u64>();
        if !self.cxl.is_empty() && map_mib > GUEST_PHYS_MIB {
            return Err(format!(
                "the guest's physical address map needs about {} GiB (RAM, hot-plug room and \
                 the CXL windows) but QEMU's CPU has {GUEST_PHYS_BITS} address bits ({} GiB): \
                 make the [[cxl]] memory_mib and window_mib smaller",
                map_mib >> 10,
                GUEST_PHYS_MIB >> 10
            ));
        }
        let node_sum: u64 = self.nodes.iter().map(|n| n.memory_mib).sum();
        if node_sum != memory {
            return Err(format!(
                "node memory adds up to {node_sum} MiB but memory_mib is {memory}: make them equal"
            ));
        }
        let mut all_cpus = CpuSet::new();
        for n in &self.nodes {
            if n.memory_mib == 0 {
                return Err(format!("node {} has memory_mib = 0", n.id));
            }
            if n.cpus.iter().any(|c| all_cpus.contains(c)) {
                return Err(format!("node {}: a CPU is listed in two nodes", n.id));
            }
            all_cpus = all_cpus.union(&n.cpus);
            match n.initiator {
                None if n.cpus.is_empty() && !self.hmat.is_empty() => {
                    return Err(format!(
                        "node {} has no CPUs and no `initiator`: name the node whose CPUs \
                         reach it first (e.g. initiator = 0)",
                        n.id
                    ))
                }
                Some(i) if !ids.contains(i) => {
                    return Err(format!("node {}: initiator {i} is not a node", n.id))
                }
                Some(i) if self.node(i).is_some_and(|x| x.cpus.is_empty()) => {
                    return Err(format!("node {}: initiator {i} has no CPUs", n.id))
                }
                _ => {}
            }
        }
        let want: CpuSet = (0..cpus).collect();
        if all_cpus != want {
            return Err(format!(
                "the nodes' CPUs are {all_cpus} but cpus = {cpus} needs exactly {want}"
            ));
        }
        for d in &self.distances {
            if !ids.contains(d.from) || !ids.contains(d.to) || d.from == d.to {
                return Err(format!(
                    "[[distance]] {} -> {}: not two distinct nodes",
                    d.from, d.to
                ));
            }
            // ACPI SLIT: 10 is a node to itself, 255 unreachable.
            if !(11..=254).contains(&d.value) {
                return Err(format!(
                    "[[distance]] {} -> {}: value = {} must be 11 to 254 (10 is a node's \
                     distance to itself)",
                    d.from, d.to, d.value
                ));
            }
        }
        for h in &self.hmat {
            if !ids.contains(h.initiator) || !ids.contains(h.target) {
                return Err(format!(
                    "[[hmat]] {} -> {}: unknown node",
                    h.initiator, h.target
                ));
            }
            // ACPI HMAT: an initiator is a node with processors.
            if self.node(h.initiator).is_some_and(|n| n.cpus.is_empty()) {
                return Err(format!(
                    "[[hmat]] {} -> {}: initiator {} has no CPUs (HMAT initiators are nodes \
                     with CPUs)",
                    h.initiator, h.target, h.initiator
                ));
            }
        }
        Ok(())
    }

    /// Every CXL card with the `[[cxl]]` entry it belongs to, in order.
    pub fn cxl_cards(&self) -> Vec<(usize, CxlCard)> {
        let mut out = Vec::new();
        for (i, c) in self.cxl.iter().enumerate() {
            for way in 0..c.ways {
                let index = out.len();
                let serial = c.serial.map_or(index as u64 + 1, |s| s + u64::from(way));
                out.push((i, CxlCard { index, way, serial }));
            }
        }
        out
    }

    /// The cards of entry `i`, in way order.
    pub fn cards_of(&self, i: usize) -> Vec<CxlCard> {
        self.cxl_cards()
            .into_iter()
            .filter(|(e, _)| *e == i)
            .map(|(_, c)| c)
            .collect()
    }

    /// The node ids the kernel gives the CXL devices' memory: one per
    /// fixed memory window, after the nodes the firmware's SRAT maps. A
    /// generic port's domain is not one of them, except the last domain
    /// QEMU declares: QEMU puts the hot-plug memory range in SRAT under
    /// it, which costs a node id (one port: CXL memory on node 2; two
    /// ports: nodes 2 and 3, seen on 6.12 and 7.3).
    pub fn cxl_nodes(&self) -> NodeSet {
        let hotplug_domain = usize::from(self.ports().next().is_some());
        let first = (self.nodes.len() + hotplug_domain) as NodeId;
        (first..first + self.cxl.len() as NodeId).collect()
    }

    /// Each device with a generic port, with the proximity domain (node
    /// id) its port gets: after the `[[node]]`s, in device order. The
    /// kernel onlines no node for it (no memory, no CPUs).
    pub fn ports(&self) -> impl Iterator<Item = (usize, NodeId, PortPerf)> + '_ {
        let first = self.nodes.len() as NodeId;
        self.cxl
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.port?)))
            .enumerate()
            .map(move |(k, (i, p))| (i, first + k as NodeId, p))
    }

    /// The CPU node generic ports are described from (the HMAT
    /// initiator): the first node with CPUs.
    pub fn port_initiator(&self) -> Option<NodeId> {
        self.nodes.iter().find(|n| !n.cpus.is_empty()).map(|n| n.id)
    }

    /// The guest's `maxmem`: room for every window's memory to be hot-added.
    pub fn max_memory_mib(&self) -> u64 {
        self.memory_mib.unwrap_or(0) + self.cxl.iter().map(|c| c.window_mib).sum::<u64>()
    }

    fn validate_cxl(&self) -> Result<(), String> {
        for (i, c) in self.cxl.iter().enumerate() {
            let at = format!("[[cxl]] #{}", i + 1);
            if c.memory_mib == 0 || c.memory_mib % CXL_UNIT_MIB != 0 {
                return Err(format!(
                    "{at}: memory_mib = {} must be a positive multiple of {CXL_UNIT_MIB} \
                     (CXL decoders map 256 MiB units)",
                    c.memory_mib
                ));
            }
            if ![1, 2, 4, 8].contains(&c.ways) {
                return Err(format!(
                    "{at}: ways = {}: a window interleaves 1, 2, 4 or 8 cards here",
                    c.ways
                ));
            }
            if c.window_mib % CXL_UNIT_MIB != 0 || c.window_mib < c.node_mib() {
                return Err(format!(
                    "{at}: window_mib = {} does not fit {} card(s) of memory_mib = {}: the fixed \
                     memory window must be at least their capacity, in {CXL_UNIT_MIB} MiB units",
                    c.window_mib, c.ways, c.memory_mib
                ));
            }
            if c.port.is_some() && c.ways > 1 {
                return Err(format!(
                    "{at}: a port on an interleaved window is not supported: each of its {} \
                     host bridges would need its own generic port",
                    c.ways
                ));
            }
            if let Some(p) = c.port {
                if p.latency_ns == 0 || p.bandwidth_mbps == 0 {
                    return Err(format!(
                        "{at}: port latency_ns and bandwidth_mbps must be positive (the \
                         kernel ignores a zero HMAT entry)"
                    ));
                }
                // The kernel ranks the node against DRAM's own HMAT
                // numbers (mt_perf_to_adistance); without them it keeps
                // kmem's default tier and the port is silently unused.
                let dram = self.port_initiator();
                if !self
                    .hmat
                    .iter()
                    .any(|h| Some(h.initiator) == dram && h.target == h.initiator)
                {
                    return Err(format!(
                        "{at} has a port, but the kernel ranks CXL memory against DRAM's \
                         HMAT numbers and there are none: add [[hmat]] initiator = {n}, \
                         target = {n} (and initiator = {n} on [[node]] {n})",
                        n = dram.unwrap_or(0)
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeDef> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Compares a discovered topology with this profile. Returns one line
    /// per mismatch; empty when the machine is what the profile says.
    pub fn check(&self, topo: &Topology) -> Vec<String> {
        let mut out = self.check_shape(topo);
        out.extend(self.check_tiers(topo));
        out.extend(self.check_expanders(topo));
        out
    }

    /// Each `[[expander]]` against the machine's CXL inventory and memory
    /// blocks: onlined on its node, its size, its zone, its serial.
    pub fn check_expanders(&self, topo: &Topology) -> Vec<String> {
        let mut out = Vec::new();
        let cards: u32 = self
            .expanders
            .iter()
            .map(|e| e.interleave_ways.unwrap_or(1))
            .sum();
        if cards as usize > topo.cxl.memdevs.len() {
            out.push(format!(
                "profile {} describes {cards} CXL memory card(s), the kernel sees {} ({}): an \
                 expander is missing (not seated, not trained, or its driver not loaded)",
                self.name,
                topo.cxl.memdevs.len(),
                if topo.cxl.memdevs.is_empty() {
                    "no memdev".into()
                } else {
                    topo.cxl
                        .memdevs
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        for e in &self.expanders {
            let Some(dax) = topo.cxl.dax_of_node(e.node) else {
                let seen: Vec<String> = topo
                    .cxl
                    .dax
                    .iter()
                    .map(|d| format!("{} {} node {:?}", d.name, d.mode, d.target_node))
                    .collect();
                out.push(format!(
                    "profile {} expects a CXL expander onlined as system RAM on node {}; the \
                     machine has {}",
                    self.name,
                    e.node,
                    if seen.is_empty() {
                        "no DAX device".into()
                    } else {
                        seen.join(", ")
                    }
                ));
                continue;
            };
            let mib = dax.size.unwrap_or(0) >> 20;
            if mib != e.memory_mib {
                out.push(format!(
                    "node {}: profile expects {} MiB of CXL memory, {} holds {mib} MiB",
                    e.node, e.memory_mib, dax.name
                ));
            }
            let blocks = topo.node(e.node).and_then(|n| n.memory_blocks.as_ref());
            if let (Some(zone), Some(b)) = (e.online, blocks) {
                let want = match zone {
                    OnlineZone::Movable => "Movable",
                    OnlineZone::Normal => "Normal",
                };
                if b.zones.get(want) != Some(&b.blocks) {
                    out.push(format!(
                        "node {}: profile expects every memory block online in {want}, the \
                         kernel reports {}",
                        e.node,
                        b.summary()
                    ));
                }
            }
            let ways = e.interleave_ways.unwrap_or(1);
            match topo.cxl.region_of_node(e.node) {
                Some(r) if r.interleave_ways != Some(ways) || r.targets.len() != ways as usize => {
                    out.push(format!(
                        "node {}: profile expects {ways} expander(s) interleaved in its region, \
                         {} has {} way(s) and {} target(s) ({})",
                        e.node,
                        r.name,
                        r.interleave_ways.map_or("?".into(), |w| w.to_string()),
                        r.targets.len(),
                        r.targets.join(", ")
                    ));
                }
                _ => {}
            }
            if let Some(serial) = e.serial {
                let serials: Vec<&str> = topo
                    .cxl
                    .memdevs
                    .iter()
                    .filter_map(|m| m.serial.as_deref())
                    .collect();
                if !serials
                    .iter()
                    .any(|s| crate::topology::cxl::parse_number(s) == Some(serial))
                {
                    out.push(format!(
                        "profile expects a CXL memory device with serial {serial:#x}; the \
                         machine has {}",
                        if serials.is_empty() {
                            "none".into()
                        } else {
                            serials.join(", ")
                        }
                    ));
                }
            }
        }
        out
    }

    /// Node ids and which nodes have CPUs: is this the machine at all?
    pub fn check_shape(&self, topo: &Topology) -> Vec<String> {
        let mut out = Vec::new();
        let want: NodeSet = self
            .nodes
            .iter()
            .map(|n| n.id)
            .collect::<NodeSet>()
            .union(&self.cxl_nodes());
        if topo.node_ids() != want {
            out.push(format!(
                "profile {} has nodes {want}, the machine has {}",
                self.name,
                topo.node_ids()
            ));
        }
        for n in &self.nodes {
            if let Some(t) = topo.node(n.id) {
                if t.is_cpuless() != n.cpus.is_empty() {
                    out.push(format!(
                        "node {}: profile says CPUs {:?}, the machine has {:?}",
                        n.id, n.cpus, t.cpus
                    ));
                }
            }
        }
        out
    }

    /// The tiers the kernel built against the profile's expectation.
    pub fn check_tiers(&self, topo: &Topology) -> Vec<String> {
        let mut out = Vec::new();
        if self.expect.shared_tier {
            if topo.tier_trap().is_none() {
                out.push(format!(
                    "profile {} expects CPU-less node(s) {} to share the DRAM tier, the kernel \
                     reports {}",
                    self.name,
                    self.expect.slow,
                    tiers_text(topo)
                ));
            }
        } else if self.expect.slow.is_empty() {
            if topo.has_slow_tier() {
                out.push(format!(
                    "profile {} expects no slow nodes, the machine has slow node(s) {} ({})",
                    self.name, topo.roles.slow, topo.roles.source
                ));
            }
        } else if topo.roles.source != RoleSource::KernelTiers {
            out.push(format!(
                "profile {} expects the kernel to put nodes {} in a lower tier than {}, but the \
                 kernel reports {} ({})",
                self.name,
                self.expect.slow,
                self.expect.fast,
                tiers_text(topo),
                topo.roles.source
            ));
        } else if topo.roles.fast != self.expect.fast || topo.roles.slow != self.expect.slow {
            out.push(format!(
                "profile {} expects fast {} / slow {}, the kernel's tiers give fast {} / slow {}",
                self.name, self.expect.fast, self.expect.slow, topo.roles.fast, topo.roles.slow
            ));
        }
        if !out.is_empty() {
            // The numbers the kernel ranked each CPU-less node by, and the
            // tier they give: what a lab needs to see why a node is where
            // it is (no data, a missing DRAM baseline, or odd numbers).
            out.extend(
                topo.tier_reasons
                    .iter()
                    .map(|r| format!("why: {}", r.line())),
            );
        }
        out
    }
}

fn tiers_text(topo: &Topology) -> String {
    if topo.tiers.is_empty() {
        return "no memory tiers".into();
    }
    topo.tiers
        .iter()
        .map(|t| format!("memory_tier{}={}", t.id, t.nodes))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::SysRoot;

    fn hosts(name: &str) -> String {
        format!("{}/../hosts/{name}.toml", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn shipped_profiles_load() {
        for name in ["qemu-dram-cxl", "qemu-2socket-cxl", "lab-template"] {
            let p = Profile::load(&hosts(name)).unwrap();
            assert_eq!(p.name, name);
        }
        assert_eq!(Profile::load("qemu-dram-cxl").unwrap().nodes.len(), 2);
    }

    fn broken(edit: &str, from: &str, to: &str) -> String {
        let text = std::fs::read_to_string(hosts("qemu-dram-cxl")).unwrap();
        assert!(text.contains(from), "{edit}: {from:?} not in the profile");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        Profile::load(path.to_str().unwrap())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_profiles_say_what_to_fix() {
        let e = broken(
            "no initiator",
            "memory_mib = 2048\ninitiator = 0\n\n[[distance]]",
            "memory_mib = 2048\n\n[[distance]]",
        );
        assert!(e.contains("no CPUs and no `initiator`"), "{e}");
        let e = broken("sizes", "memory_mib = 4096", "memory_mib = 5000");
        assert!(e.contains("adds up to 4096 MiB"), "{e}");
        let e = broken(
            "unknown key",
            "kind = \"emulated\"",
            "kind = \"emulated\"\nlatency = 3",
        );
        assert!(e.contains("unknown field"), "{e}");
        let e = broken("cpus", "cpus = 2", "cpus = 3");
        assert!(e.contains("needs exactly 0-2"), "{e}");
        let e = broken("too many cpus", "cpus = 2", "cpus = 1000");
        assert!(e.contains("1 to 255"), "{e}");
        let e = broken("gap", "id = 1", "id = 5");
        assert!(e.contains("without gaps"), "{e}");
        let e = broken("distance", "value = 20", "value = 5");
        assert!(e.contains("must be 11 to 254"), "{e}");
        // What QEMU used to reject only after a boot was tried (and retried).
        let e = broken(
            "cpu-less initiator",
            "initiator = 0\ntarget = 1",
            "initiator = 1\ntarget = 1",
        );
        assert!(e.contains("initiator 1 has no CPUs"), "{e}");
        let e = broken(
            "sockets",
            "kind = \"emulated\"",
            "kind = \"emulated\"\nsockets = 3",
        );
        assert!(e.contains("sockets = 3 does not divide cpus = 2"), "{e}");
    }

    #[test]
    fn expanders_are_checked_against_the_cxl_inventory() {
        let topo = Topology::from_sysfs(&SysRoot::at(format!(
            "{}/tests/data/cxl-type3-6.12",
            env!("CARGO_MANIFEST_DIR")
        )))
        .unwrap();
        let lab = |expander: &str| {
            let text = format!(
                "description = \"x\"\nkind = \"lab\"\n[[node]]\nid = 0\ncpus = \"0-1\"\n\
                 memory_mib = 1\n[[node]]\nid = 1\ncpus = \"\"\nmemory_mib = 1\n\
                 [[expander]]\n{expander}\n[expect]\nfast = \"0\"\nslow = \"1\"\n"
            );
            let mut p: Profile = toml::from_str(&text).unwrap();
            p.name = "lab".into();
            p.validate().unwrap();
            p.check(&topo)
        };
        let ok = lab("node = 1\nmemory_mib = 256\nonline = \"movable\"\nserial = 0x1234");
        assert!(ok.is_empty(), "{ok:?}");
        let m = lab("node = 1\nmemory_mib = 131072\nonline = \"normal\"\nserial = 7");
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].contains("131072 MiB") && m[0].contains("dax0.0 holds 256"),
            "{m:?}"
        );
        assert!(
            m[1].contains("Normal") && m[1].contains("Movable 2"),
            "{m:?}"
        );
        assert!(
            m[2].contains("serial 0x7") && m[2].contains("0x1234"),
            "{m:?}"
        );
        let m = lab("node = 0\nmemory_mib = 256");
        assert!(m[0].contains("onlined as system RAM on node 0"), "{m:?}");
        // A lab that put two cards behind node 1's region, one of them
        // missing: the count and the region's ways both say so.
        let m = lab("node = 1\nmemory_mib = 256\ninterleave_ways = 2");
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].contains("2 CXL memory card(s), the kernel sees 1 (mem0)"),
            "{m:?}"
        );
        assert!(
            m[1].contains("2 expander(s) interleaved") && m[1].contains("1 way(s) and 1 target"),
            "{m:?}"
        );
    }

    #[test]
    fn generic_ports_are_proximity_domains_before_the_cxl_nodes() {
        let p = Profile::load("qemu-cxl-port-near").unwrap();
        assert_eq!(p.ports().collect::<Vec<_>>().len(), 1);
        assert_eq!(p.cxl_nodes().to_string(), "2");
        assert_eq!(
            Profile::load("qemu-cxl-3tier")
                .unwrap()
                .cxl_nodes()
                .to_string(),
            "2-3"
        );
        let text = std::fs::read_to_string(hosts("qemu-cxl-port-near")).unwrap();
        let no_dram = text.replace("[[hmat]]", "[[distance]]").replace(
            "initiator = 0\ntarget = 0\nlatency_ns = 100\nbandwidth_mbps = 20480",
            "from = 0\nto = 1\nvalue = 20",
        );
        let refusal = |t: &str| {
            toml::from_str::<Profile>(t)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        let e = refusal(&no_dram);
        assert!(e.contains("add [[hmat]] initiator = 0, target = 0"), "{e}");
        let zero = text.replace(
            "latency_ns = 100, bandwidth_mbps",
            "latency_ns = 0, bandwidth_mbps",
        );
        let e = refusal(&zero);
        assert!(e.contains("must be positive"), "{e}");
    }

    #[test]
    fn cxl_profiles_refuse_what_does_not_fit() {
        let p = Profile::load("qemu-cxl-type3").unwrap();
        assert_eq!(p.cxl_nodes().to_string(), "1");
        let text = std::fs::read_to_string(hosts("qemu-cxl-type3")).unwrap();
        for (from, to, want) in [
            (
                "window_mib = 4096",
                "window_mib = 128",
                "does not fit 1 card(s) of memory_mib = 256",
            ),
            (
                "window_mib = 4096",
                "window_mib = 256\nways = 2",
                "does not fit 2 card(s)",
            ),
            (
                "window_mib = 4096",
                "window_mib = 4096\nways = 3",
                "ways = 3",
            ),
            ("memory_mib = 256", "memory_mib = 300", "multiple of 256"),
            ("slow = \"1\"", "slow = \"2\"", "names node 2"),
            (
                "memory_mib = 256\nwindow_mib = 4096",
                "memory_mib = 1048576\nwindow_mib = 1048576",
                "physical address map",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            let e = Profile::load(path.to_str().unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn check_flags_a_kernel_without_hmat_tiers() {
        let p = Profile::load(&hosts("qemu-dram-cxl")).unwrap();
        let data = |n: &str| SysRoot::at(format!("{}/tests/data/{n}", env!("CARGO_MANIFEST_DIR")));
        let new = Topology::from_sysfs(&data("dram-cxl-6.12")).unwrap();
        assert!(p.check(&new).is_empty(), "{:?}", p.check(&new));
        let old = Topology::from_sysfs(&data("dram-cxl-6.1")).unwrap();
        let m = p.check(&old);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("memory_tier4=0-1"), "{m:?}");
        // The why: this 6.1 sysfs shows the node no HMAT numbers at all.
        assert_eq!(
            m[1], "why: node 1: no performance data; the kernel put it in memory_tier4",
            "{m:?}"
        );
    }
}
