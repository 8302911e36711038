//! Memory blocks (`/sys/devices/system/memory`): how much of each node is
//! online and in which zone. Hot-added memory (a CXL region onlined through
//! kmem) lands in ZONE_MOVABLE or ZONE_NORMAL depending on who onlined it
//! and how, and that decides what the kernel may put there.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sysfs::SysRoot;

const MEMORY: &str = "/sys/devices/system/memory";

/// A node's memory blocks by state and zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeBlocks {
    pub blocks: u32,
    pub online: u32,
    /// Online blocks per zone (`Normal`, `Movable`, `DMA32`, ...), as each
    /// block's `valid_zones` names it once online.
    pub zones: BTreeMap<String, u32>,
}

impl NodeBlocks {
    /// The node's memory blocks, read through its `memoryN` links; `None`
    /// where the kernel lists none (no memory hotplug sysfs).
    pub fn read(sys: &SysRoot, node: u32) -> Option<Self> {
        let mut out = NodeBlocks::default();
        for id in block_ids(sys, node) {
            out.blocks += 1;
            if sys
                .read_opt(&format!("{MEMORY}/memory{id}/state"))
                .as_deref()
                == Some("online")
            {
                out.online += 1;
                let zone = online_zone(sys, id).unwrap_or_else(|| "unknown".into());
                *out.zones.entry(zone).or_default() += 1;
            }
        }
        (out.blocks > 0).then_some(out)
    }

    /// `Movable 2, Normal 13`: the online blocks by zone (empty when none
    /// is online).
    pub fn zones_text(&self) -> String {
        let zones: Vec<String> = self.zones.iter().map(|(z, n)| format!("{z} {n}")).collect();
        zones.join(", ")
    }

    /// `128 blocks, 128 online: Movable 128`.
    pub fn summary(&self) -> String {
        let zones = self.zones_text();
        format!(
            "{} blocks, {} online{}{zones}",
            self.blocks,
            self.online,
            if zones.is_empty() { "" } else { ": " },
        )
    }
}

/// The ids of `node`'s memory blocks (its `memoryN` links), in order.
pub fn block_ids(sys: &SysRoot, node: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = sys
        .list(&format!("/sys/devices/system/node/node{node}"))
        .iter()
        .filter_map(|n| n.strip_prefix("memory")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// The zone an online block is in (`Movable`, `Normal`, ...): the first
/// word of its `valid_zones` (online, it names its zone; offline, the
/// zones it could go to).
pub fn online_zone(sys: &SysRoot, id: u32) -> Option<String> {
    sys.read_opt(&format!("{MEMORY}/memory{id}/valid_zones"))?
        .split_whitespace()
        .next()
        .map(String::from)
}

/// The machine-wide hotplug settings a lab must know when memory is added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hotplug {
    pub block_size_bytes: Option<u64>,
    /// `offline`, `online`, `online_kernel` or `online_movable`: what the
    /// kernel does with memory the moment it is added.
    pub auto_online_blocks: Option<String>,
}

impl Hotplug {
    pub fn read(sys: &SysRoot) -> Self {
        Hotplug {
            block_size_bytes: sys
                .read_opt(&format!("{MEMORY}/block_size_bytes"))
                .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()),
            auto_online_blocks: sys.read_opt(&format!("{MEMORY}/auto_online_blocks")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_per_zone() {
        let sys = SysRoot::at(format!(
            "{}/tests/data/cxl-type3-6.12",
            env!("CARGO_MANIFEST_DIR")
        ));
        let b = NodeBlocks::read(&sys, 1).unwrap();
        assert_eq!((b.blocks, b.online), (2, 2));
        assert_eq!(b.zones.get("Movable"), Some(&2));
        assert_eq!(b.summary(), "2 blocks, 2 online: Movable 2");
        let h = Hotplug::read(&sys);
        assert_eq!(h.block_size_bytes, Some(128 << 20));
        assert!(NodeBlocks::read(&SysRoot::at("/nonexistent"), 0).is_none());
    }
}
