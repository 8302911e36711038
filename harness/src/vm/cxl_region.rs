//! Guest side: turns each CXL memory device into system RAM the way `cxl
//! create-region` and `daxctl reconfigure-device --mode=system-ram` do,
//! through sysfs alone (the guest has no ndctl). Without decoders the
//! firmware programmed, the kernel assembles no region by itself.
//!
//! Per device: a RAM region from the root decoder of its window, the
//! device's endpoint decoder sized and set as its target, committed and
//! bound to `cxl_region`; the DAX device that appears is handed to `kmem`,
//! which hot-adds it as a new CPU-less node, onlined into the profile's
//! zone through `auto_online_blocks`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::profile::{CxlDevice, Profile};
use crate::sysfs::SysRoot;
use crate::topology::blocks::NodeBlocks;
use crate::topology::cxl::{parse_number, DaxMode};

const CXL: &str = "/sys/bus/cxl/devices";
const DAX: &str = "/sys/bus/dax/devices";
const AUTO_ONLINE: &str = "/sys/devices/system/memory/auto_online_blocks";

/// What was done for one device: `cxl.json` in the results.
#[derive(Debug, Clone, Serialize)]
pub struct Onlined {
    /// The cards' memdevs, comma-separated in interleave position order
    /// (one name for an uninterleaved window); `serial` and
    /// `endpoint_decoder` follow the same order.
    pub memdev: String,
    pub serial: Option<String>,
    pub root_decoder: String,
    pub endpoint_decoder: String,
    pub region: String,
    pub size_bytes: u64,
    pub interleave_ways: u32,
    pub interleave_granularity: u32,
    pub dax: String,
    pub node: u32,
    /// The zone asked for and the blocks as the kernel then reports them.
    pub zone_requested: String,
    pub blocks: Option<NodeBlocks>,
    pub seconds: f64,
}

impl Onlined {
    /// One line for the console and the closing note.
    pub fn summary(&self) -> String {
        format!(
            "{} (serial {}): {} via {} + {}, {} MiB, {} way(s) x {} B -> {} -> node {} ({})",
            self.memdev,
            self.serial.as_deref().unwrap_or("?"),
            self.region,
            self.root_decoder,
            self.endpoint_decoder,
            self.size_bytes >> 20,
            self.interleave_ways,
            self.interleave_granularity,
            self.dax,
            self.node,
            self.blocks
                .as_ref()
                .map_or("no memory blocks".into(), NodeBlocks::summary)
        )
    }
}

/// A sysfs write; a refusal quotes the kernel's last CXL message, which
/// says why (the errno alone rarely does).
fn write(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| {
        let said = last_kernel_message(&["cxl", "dax", "kmem", "memory"])
            .map(|m| format!(" (kernel: {m})"))
            .unwrap_or_default();
        format!("writing {value:?} to {path}: {e}{said}")
    })
}

/// The newest kernel warning or error a device of `words` printed
/// (`cxl region0: ...`, not the lines of a backtrace), from /dev/kmsg (one
/// record per read; non-blocking, so it stops at the end).
fn last_kernel_message(words: &[&str]) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut last = None;
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // "3,1234,5678,-;cxl region0: message\n": the level is
                // the low 3 bits of the first field.
                let Some((head, msg)) = rec.split_once(';') else {
                    continue;
                };
                let level = head
                    .split(',')
                    .next()
                    .and_then(|p| p.parse::<u32>().ok())
                    .map(|p| p & 7);
                let msg = msg.lines().next().unwrap_or("").trim();
                // A device's own message starts with its bus or driver
                // ("cxl region0: ..."); a backtrace's lines do not.
                if level.is_some_and(|l| l <= 4) && words.iter().any(|w| msg.starts_with(w)) {
                    last = Some(msg.to_string());
                }
            }
            // EPIPE: a record was overwritten while reading; go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    last
}

fn read(sys: &SysRoot, path: &str) -> Result<String, String> {
    sys.read_opt(path)
        .ok_or_else(|| format!("{path}: absent (see the console for the driver's messages)"))
}

/// Polls until `f` gives a value: drivers probe asynchronously.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if t0.elapsed() > timeout {
            return Err(format!("{what} did not appear within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Onlines every `[[cxl]]` entry, in order: its cards are the memdevs
/// with their serials, mapped through the root decoder (window) whose
/// targets are those memdevs' host bridges; the kernel numbers memdevs and
/// decoders in probe order, which need not be the profile's.
pub fn online_all(profile: &Profile) -> Result<Vec<Onlined>, String> {
    let sys = SysRoot::live();
    if profile.cxl.is_empty() {
        return Ok(Vec::new());
    }
    if !sys.exists("/sys/bus/cxl") {
        return Err("no /sys/bus/cxl: the guest kernel lacks CONFIG_CXL_BUS".into());
    }
    let names = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = sys
            .list(CXL)
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect();
        v.sort_by_key(|n| {
            n.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        });
        v
    };
    let timeout = Duration::from_secs(20);
    // Root decoders: the windows, the ones a RAM region is created from.
    let roots = wait_for("a CXL root decoder (cxl_acpi, CEDT)", timeout, || {
        let r: Vec<String> = names("decoder")
            .into_iter()
            .filter(|d| sys.exists(&format!("{CXL}/{d}/create_ram_region")))
            .collect();
        (r.len() >= profile.cxl.len()).then_some(r)
    })?;
    // Memory onlined before tierbench came (firmware-programmed decoders,
    // auto-onlining, a udev rule) is not tierbench's to take over.
    let inventory = crate::topology::cxl::CxlInventory::read(&sys);
    if let Some(d) = inventory.dax.iter().find(|d| d.mode == DaxMode::SystemRam) {
        return Err(format!(
            "{} is already system RAM (node {}): something onlined the CXL memory before \
             tierbench; it is left as it is",
            d.name,
            d.target_node.map_or("?".into(), |n| n.to_string())
        ));
    }
    let old_auto = sys.read_opt(AUTO_ONLINE);
    let result =
        (|| {
            let mut out = Vec::new();
            for (i, dev) in profile.cxl.iter().enumerate() {
                let mut cards = Vec::new();
                for card in profile.cards_of(i) {
                    let memdev = wait_for(
                        &format!("a memdev with serial {:#x} (cxl_pci)", card.serial),
                        timeout,
                        || memdev_with_serial(&sys, card.serial),
                    )?;
                    let bus = bus_of(&sys, &memdev).ok_or_else(|| {
                        format!("{memdev}: no PCI host bridge in its device path")
                    })?;
                    cards.push((memdev, bus));
                }
                let buses: std::collections::BTreeSet<u32> = cards.iter().map(|c| c.1).collect();
                let (root, order) =
                    roots
                        .iter()
                        .find_map(|r| {
                            let order = target_list(&sys, r);
                            (order
                                .iter()
                                .copied()
                                .collect::<std::collections::BTreeSet<_>>()
                                == buses)
                                .then(|| (r.clone(), order))
                        })
                        .ok_or_else(|| {
                            format!(
                        "no CXL window targets exactly the host bridges {buses:?} of {} (root \
                         decoders {}: see their target_list)",
                        cards.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", "),
                        roots.join(", ")
                    )
                        })?;
                // A region's targetN must be the endpoint decoder below the
                // host bridge at position N of the root's target list (else
                // ENXIO, "invalid target position").
                cards.sort_by_key(|(_, bus)| order.iter().position(|b| b == bus));
                let memdevs: Vec<String> = cards.into_iter().map(|c| c.0).collect();
                out.push(online_one(&sys, &memdevs, dev, &root, timeout)?);
            }
            Ok(out)
        })();
    if let Some(v) = old_auto {
        let _ = write(AUTO_ONLINE, &v);
    }
    result
}

/// The memdev (`memN`) whose `serial` is `serial`.
fn memdev_with_serial(sys: &SysRoot, serial: u64) -> Option<String> {
    sys.list(CXL).into_iter().find(|n| {
        n.starts_with("mem")
            && sys
                .read_opt(&format!("{CXL}/{n}/serial"))
                .as_deref()
                .and_then(parse_number)
                == Some(serial)
    })
}

/// The PCI bus number of `memdev`'s host bridge: its id in a root
/// decoder's `target_list`, the `pciDDDD:BB` its device path starts under.
fn bus_of(sys: &SysRoot, memdev: &str) -> Option<u32> {
    let path = std::fs::canonicalize(sys.path(&format!("{CXL}/{memdev}"))).ok()?;
    path.iter().find_map(|c| {
        let c = c.to_string_lossy();
        let (_, bb) = c.strip_prefix("pci")?.split_once(':')?;
        u32::from_str_radix(bb, 16).ok()
    })
}

/// A root decoder's host bridges, in interleave position order
/// (`target_list`, "12,28").
fn target_list(sys: &SysRoot, root: &str) -> Vec<u32> {
    sys.read_opt(&format!("{CXL}/{root}/target_list"))
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

/// One region over `memdevs` (in interleave position order) from `root`,
/// bound and onlined.
fn online_one(
    sys: &SysRoot,
    memdevs: &[String],
    dev: &CxlDevice,
    root: &str,
    timeout: Duration,
) -> Result<Onlined, String> {
    let t0 = Instant::now();
    let size = dev.memory_mib << 20;
    let mut ep_decoders = Vec::new();
    for memdev in memdevs {
        // The memory device's endpoint port: the one whose uport is memN.
        let endpoint = wait_for(
            &format!("{memdev}'s endpoint port (cxl_pci, cxl_mem)"),
            timeout,
            || {
                sys.list(CXL).into_iter().find(|n| {
                    n.starts_with("endpoint")
                        && sys.link_name(&format!("{CXL}/{n}/uport")).as_deref()
                            == Some(memdev.as_str())
                })
            },
        )?;
        let port = endpoint.trim_start_matches("endpoint");
        let ep_decoder = wait_for(&format!("{endpoint}'s decoders"), timeout, || {
            let d = format!("decoder{port}.0");
            sys.exists(&format!("{CXL}/{d}/dpa_size")).then_some(d)
        })?;
        if sys
            .read_opt(&format!("{CXL}/{ep_decoder}/region"))
            .is_some_and(|r| !r.is_empty())
        {
            return Err(format!(
                "{ep_decoder} already belongs to a region: the device was set up before \
                 tierbench (firmware or an earlier run)"
            ));
        }
        let ram = read(sys, &format!("{CXL}/{memdev}/ram/size"))?;
        if parse_number(&ram).unwrap_or(0) < size {
            return Err(format!(
                "{memdev} has {ram} bytes of volatile memory, the profile gives {} MiB",
                dev.memory_mib
            ));
        }
        ep_decoders.push(ep_decoder);
    }

    // The region, from the root decoder of the cards' window.
    let rd = format!("{CXL}/{root}");
    let region = read(sys, &format!("{rd}/create_ram_region"))?;
    write(&format!("{rd}/create_ram_region"), &region)?;
    let reg = format!("{CXL}/{region}");
    let granularity = read(sys, &format!("{rd}/interleave_granularity"))?;
    let ways = memdevs.len();
    write(&format!("{reg}/interleave_granularity"), &granularity)?;
    write(&format!("{reg}/interleave_ways"), &ways.to_string())?;
    for ep in &ep_decoders {
        write(&format!("{CXL}/{ep}/mode"), "ram")?;
        write(&format!("{CXL}/{ep}/dpa_size"), &size.to_string())?;
    }
    let total = size * ways as u64;
    write(&format!("{reg}/size"), &total.to_string())?;
    for (k, ep) in ep_decoders.iter().enumerate() {
        write(&format!("{reg}/target{k}"), ep)?;
    }
    write(&format!("{reg}/commit"), "1")?;
    // From 6.3 dax_cxl hands a RAM region's DAX device to kmem itself, and
    // the memory is onlined the moment it is added: the zone is set first.
    write(AUTO_ONLINE, dev.online.auto_online_word())?;
    write("/sys/bus/cxl/drivers/cxl_region/bind", &region)?;

    // Its DAX device (dax_cxl), then kmem onlines it into the chosen zone.
    let dax = wait_for(&format!("{region}'s DAX device (dax_cxl)"), timeout, || {
        sys.list(DAX).into_iter().find(|d| {
            std::fs::canonicalize(sys.path(&format!("{DAX}/{d}")))
                .is_ok_and(|p| p.iter().any(|c| c.to_string_lossy() == region.as_str()))
        })
    })?;
    let dd = format!("{DAX}/{dax}");
    let driver = || sys.link_name(&format!("{dd}/driver"));
    let mode = || DaxMode::from_driver(driver().as_deref());
    // Probing is asynchronous: give the DAX device a moment to find its
    // driver before taking it over.
    let _ = wait_for(
        "a driver for the DAX device",
        Duration::from_secs(2),
        driver,
    );
    if mode() != DaxMode::SystemRam {
        // Older kernels make it a devdax device: what daxctl
        // reconfigure-device --mode=system-ram does.
        if mode() == DaxMode::Devdax {
            write("/sys/bus/dax/drivers/device_dax/unbind", &dax)?;
        }
        write("/sys/bus/dax/drivers/kmem/new_id", &dax)?;
        if mode() != DaxMode::SystemRam {
            write("/sys/bus/dax/drivers/kmem/bind", &dax)?;
        }
    }
    let node: u32 = read(sys, &format!("{dd}/target_node"))?
        .parse()
        .map_err(|e| format!("{dd}/target_node: {e}"))?;
    let blocks = wait_for(&format!("node {node}'s memory online"), timeout, || {
        NodeBlocks::read(sys, node).filter(|b| b.online == b.blocks)
    })
    .ok();
    let serials: Vec<String> = memdevs
        .iter()
        .filter_map(|m| sys.read_opt(&format!("{CXL}/{m}/serial")))
        .collect();
    Ok(Onlined {
        serial: (!serials.is_empty()).then(|| serials.join(",")),
        memdev: memdevs.join(","),
        root_decoder: root.to_string(),
        endpoint_decoder: ep_decoders.join(","),
        size_bytes: total,
        interleave_ways: ways as u32,
        interleave_granularity: granularity.parse().unwrap_or(0),
        region,
        dax,
        node,
        zone_requested: dev.online.auto_online_word().to_string(),
        blocks,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
