//! CXL memory as the kernel shows it: memory devices, HDM decoders,
//! regions and the DAX devices a region becomes, read from
//! `/sys/bus/cxl` and `/sys/bus/dax`. Empty on a machine without CXL:
//! nothing here is ever inferred.

use serde::Serialize;

use crate::sysfs::SysRoot;

const CXL: &str = "/sys/bus/cxl/devices";
const DAX: &str = "/sys/bus/dax/devices";

/// A CXL memory device (`memN`): an expander's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemDevice {
    pub name: String,
    pub serial: Option<String>,
    pub firmware_version: Option<String>,
    /// Volatile capacity (`ram/size`).
    pub ram_bytes: Option<u64>,
    /// Persistent capacity (`pmem/size`).
    pub pmem_bytes: Option<u64>,
    /// The NUMA node of the device itself (its PCI function), not of the
    /// memory it serves; -1 when the firmware gives none.
    pub numa_node: Option<i64>,
}

/// An HDM decoder (`decoderP.N`): root decoders are the platform's fixed
/// memory windows, endpoint decoders map a device's capacity into one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoder {
    pub name: String,
    pub size: Option<u64>,
    pub interleave_ways: Option<u32>,
    pub interleave_granularity: Option<u32>,
    /// Endpoint decoders: `ram`, `pmem`, `none`.
    pub mode: Option<String>,
    /// The region it is part of, if any.
    pub region: Option<String>,
}

/// A region (`regionN`): decoders assembled into one range of host
/// physical addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    pub name: String,
    pub size: Option<u64>,
    pub interleave_ways: Option<u32>,
    pub interleave_granularity: Option<u32>,
    /// `commit`: 1 when its decoders are programmed.
    pub committed: bool,
    pub mode: Option<String>,
    /// Endpoint decoders, in target order.
    pub targets: Vec<String>,
    /// The access coordinates the kernel computed for it (6.10+): the
    /// devices' CDAT plus the links plus the host bridge's generic port
    /// (HMAT), for any initiator (`access0`) and for CPUs (`access1`).
    /// `None` where the kernel had no numbers (no port, or older kernel).
    pub access0: Option<super::Hmat>,
    pub access1: Option<super::Hmat>,
}

/// What a DAX device is used as, from the driver bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaxMode {
    /// Bound to kmem: hot-added as a node's system RAM.
    SystemRam,
    /// Bound to device_dax: a character device for applications.
    Devdax,
    Unbound,
    /// Bound to another driver, by name.
    Driver(String),
}

impl DaxMode {
    /// The mode of a DAX device whose `driver` link names `driver`.
    pub fn from_driver(driver: Option<&str>) -> Self {
        match driver {
            Some("kmem") => DaxMode::SystemRam,
            Some("device_dax") => DaxMode::Devdax,
            Some(other) => DaxMode::Driver(other.to_string()),
            None => DaxMode::Unbound,
        }
    }
}

impl std::fmt::Display for DaxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DaxMode::SystemRam => "system-ram",
            DaxMode::Devdax => "devdax",
            DaxMode::Unbound => "unbound",
            DaxMode::Driver(d) => d,
        })
    }
}

/// A DAX device (`daxR.N`) and what it is used as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaxDevice {
    pub name: String,
    pub size: Option<u64>,
    /// The node its memory becomes when onlined as system RAM.
    pub target_node: Option<i64>,
    pub mode: DaxMode,
    /// The CXL region it was made from, if it was.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CxlInventory {
    pub memdevs: Vec<MemDevice>,
    pub decoders: Vec<Decoder>,
    pub regions: Vec<Region>,
    pub dax: Vec<DaxDevice>,
}

/// `0x10000000` or `268435456`, as sysfs writes sizes.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl CxlInventory {
    pub fn read(sys: &SysRoot) -> Self {
        let attr = |dir: &str, name: &str| sys.read_opt(&format!("{dir}/{name}"));
        let num = |dir: &str, name: &str| attr(dir, name).as_deref().and_then(parse_number);
        let small = |dir: &str, name: &str| num(dir, name).and_then(|v| u32::try_from(v).ok());
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let names = sys.list(CXL);
        let mut inv = CxlInventory::default();
        for name in &names {
            let dir = format!("{CXL}/{name}");
            if name.starts_with("mem") {
                inv.memdevs.push(MemDevice {
                    name: name.clone(),
                    serial: attr(&dir, "serial"),
                    firmware_version: nonempty(attr(&dir, "firmware_version")),
                    ram_bytes: num(&dir, "ram/size"),
                    pmem_bytes: num(&dir, "pmem/size"),
                    numa_node: attr(&dir, "numa_node").and_then(|v| v.parse().ok()),
                });
            } else if name.starts_with("decoder") {
                inv.decoders.push(Decoder {
                    name: name.clone(),
                    size: num(&dir, "size"),
                    interleave_ways: small(&dir, "interleave_ways"),
                    interleave_granularity: small(&dir, "interleave_granularity"),
                    mode: attr(&dir, "mode"),
                    region: nonempty(attr(&dir, "region")),
                });
            } else if name.starts_with("region") {
                let targets = (0..16)
                    .map_while(|i| attr(&dir, &format!("target{i}")))
                    .filter(|t| !t.is_empty())
                    .collect();
                inv.regions.push(Region {
                    name: name.clone(),
                    size: num(&dir, "size"),
                    interleave_ways: small(&dir, "interleave_ways"),
                    interleave_granularity: small(&dir, "interleave_granularity"),
                    committed: attr(&dir, "commit").as_deref() == Some("1"),
                    mode: attr(&dir, "mode"),
                    targets,
                    access0: super::read_coordinates(sys, &format!("{dir}/access0")),
                    access1: super::read_coordinates(sys, &format!("{dir}/access1")),
                });
            }
        }
        for name in sys.list(DAX) {
            let dir = format!("{DAX}/{name}");
            let mode = DaxMode::from_driver(sys.link_name(&format!("{dir}/driver")).as_deref());
            // /sys/devices/.../regionN/dax_regionN/daxN.M
            let region = std::fs::canonicalize(sys.path(&dir)).ok().and_then(|p| {
                p.iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .find(|c| c.starts_with("region"))
            });
            inv.dax.push(DaxDevice {
                size: num(&dir, "size"),
                target_node: attr(&dir, "target_node").and_then(|v| v.parse().ok()),
                mode,
                region,
                name,
            });
        }
        inv
    }

    pub fn is_empty(&self) -> bool {
        self.memdevs.is_empty() && self.regions.is_empty() && self.dax.is_empty()
    }

    /// The region whose memory is onlined as `node`, if any.
    pub fn region_of_node(&self, node: u32) -> Option<&Region> {
        let name = self.dax_of_node(node)?.region.as_deref()?;
        self.regions.iter().find(|r| r.name == name)
    }

    /// The DAX device onlined as the memory of `node`, if one was.
    pub fn dax_of_node(&self, node: u32) -> Option<&DaxDevice> {
        self.dax
            .iter()
            .find(|d| d.target_node == Some(node as i64) && d.mode == DaxMode::SystemRam)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_either_base() {
        assert_eq!(parse_number("0x10000000"), Some(268_435_456));
        assert_eq!(parse_number("268435456\n"), Some(268_435_456));
        assert_eq!(parse_number(""), None);
    }

    #[test]
    fn a_captured_cxl_tree_reads_back() {
        let sys = SysRoot::at(format!(
            "{}/tests/data/cxl-type3-6.12",
            env!("CARGO_MANIFEST_DIR")
        ));
        let inv = CxlInventory::read(&sys);
        assert_eq!(inv.memdevs.len(), 1, "{inv:?}");
        assert_eq!(inv.memdevs[0].ram_bytes, Some(256 << 20));
        let region = &inv.regions[0];
        assert!(region.committed);
        assert_eq!(region.interleave_ways, Some(1));
        assert_eq!(inv.dax[0].mode, DaxMode::SystemRam);
        assert_eq!(
            serde_json::to_value(&inv.dax[0].mode).unwrap(),
            "system-ram"
        );
        assert_eq!(inv.dax_of_node(1).map(|d| d.name.as_str()), Some("dax0.0"));
        let empty = CxlInventory::read(&SysRoot::at("/nonexistent"));
        assert!(empty.is_empty());
    }
}
