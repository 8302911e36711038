//! `tierbench topo`: nodes, CPUs, memory, tiers, HMAT and distances.

use std::io::Write;
use std::process::ExitCode;

use super::{discover, opt};
use crate::cli::{Format, TopoArgs};
use crate::report::table::Table;

pub fn topo(args: TopoArgs) -> anyhow::Result<ExitCode> {
    let t = discover()?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&t)?)?,
        Format::Csv | Format::Table => {
            let mut nodes = Table::new([
                "node",
                "cpus",
                "mem_total_mib",
                "mem_free_mib",
                "tier",
                "role",
                "hmat_initiators",
                "read_lat_ns",
                "write_lat_ns",
                "read_bw_mbps",
                "write_bw_mbps",
                "online_zones",
            ]);
            for n in &t.nodes {
                let role = if t.roles.fast.contains(n.id) {
                    "fast"
                } else if t.roles.slow.contains(n.id) {
                    "slow"
                } else {
                    "-"
                };
                let h = n.hmat.clone().unwrap_or_default();
                nodes.push([
                    n.id.to_string(),
                    if n.cpus.is_empty() {
                        "(none)".into()
                    } else {
                        n.cpus.to_string()
                    },
                    opt(n.mem_total_kib.map(|k| k / 1024)),
                    opt(n.mem_free_kib.map(|k| k / 1024)),
                    opt(n.tier.map(|t| format!("memory_tier{t}"))),
                    role.into(),
                    if let Some(region) = &n.coordinates_from {
                        format!("({region})")
                    } else if n.hmat.is_some() {
                        h.initiators.to_string()
                    } else {
                        "-".into()
                    },
                    opt(h.read_latency_ns),
                    opt(h.write_latency_ns),
                    opt(h.read_bandwidth_mbps),
                    opt(h.write_bandwidth_mbps),
                    n.memory_blocks
                        .as_ref()
                        .map(|b| b.zones_text())
                        .filter(|z| !z.is_empty())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            if args.format == Format::Csv {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&nodes.header)?;
                for r in &nodes.rows {
                    w.write_record(r)?;
                }
                w.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            write!(out, "{}", nodes.render())?;
            writeln!(out)?;
            let ids: Vec<String> = t.nodes.iter().map(|n| format!("node{}", n.id)).collect();
            let mut dist = Table::new(std::iter::once("distance".to_string()).chain(ids));
            for (i, n) in t.nodes.iter().enumerate() {
                let row = t.distances.get(i).cloned().unwrap_or_default();
                dist.push(
                    std::iter::once(format!("node{}", n.id))
                        .chain(row.iter().map(|d| d.to_string())),
                );
            }
            write!(out, "{}", dist.render())?;
            writeln!(out)?;
            writeln!(
                out,
                "tiers: {}",
                if t.tiers.is_empty() {
                    "(none reported)".to_string()
                } else {
                    t.tiers
                        .iter()
                        .map(|x| format!("memory_tier{}={}", x.id, x.nodes))
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            )?;
            for r in &t.tier_reasons {
                writeln!(out, "tier of {}", r.line())?;
            }
            writeln!(
                out,
                "fast nodes: {}  slow nodes: {}  (from {})",
                if t.roles.fast.is_empty() {
                    "-".into()
                } else {
                    t.roles.fast.to_string()
                },
                if t.roles.slow.is_empty() {
                    "-".into()
                } else {
                    t.roles.slow.to_string()
                },
                t.roles.source
            )?;
            let source = match t.cpu_source {
                crate::topology::CpuSource::Hwloc => "hwloc",
                crate::topology::CpuSource::Sysfs => "sysfs",
            };
            writeln!(out, "cpu lists from: {source}")?;
            let sys = crate::sysfs::SysRoot::live();
            let weights = crate::mechanism::weights::WeightSupport::read(&sys, &t.memory_nodes());
            writeln!(out, "weighted interleave weights: {}", weights.line())?;
            write_hotplug(&mut out, &t)?;
            for n in &t.notes {
                writeln!(out, "note: {n}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Memory hotplug settings and, where there is CXL memory, its devices,
/// regions and DAX devices.
fn write_hotplug(out: &mut impl Write, t: &crate::topology::Topology) -> std::io::Result<()> {
    let h = &t.hotplug;
    writeln!(
        out,
        "memory hotplug: block size {}, auto_online_blocks={}",
        h.block_size_bytes
            .map_or("-".into(), |b| format!("{} MiB", b >> 20)),
        h.auto_online_blocks.as_deref().unwrap_or("(absent)")
    )?;
    let c = &t.cxl;
    if c.is_empty() {
        return Ok(());
    }
    let mib = |b: Option<u64>| opt(b.map(|b| b >> 20));
    writeln!(out)?;
    let mut devs = Table::new(["cxl memdev", "serial", "firmware", "ram_mib", "pmem_mib"]);
    for d in &c.memdevs {
        devs.push([
            d.name.clone(),
            opt(d.serial.as_ref()),
            opt(d.firmware_version.as_ref()),
            mib(d.ram_bytes),
            mib(d.pmem_bytes),
        ]);
    }
    write!(out, "{}", devs.render())?;
    writeln!(out)?;
    let mut regions = Table::new([
        "cxl region",
        "size_mib",
        "ways",
        "granularity",
        "committed",
        "targets",
        "dax",
        "dax mode",
        "node",
    ]);
    for r in &c.regions {
        let dax = c.dax.iter().find(|d| d.region.as_deref() == Some(&r.name));
        regions.push([
            r.name.clone(),
            mib(r.size),
            opt(r.interleave_ways),
            opt(r.interleave_granularity),
            if r.committed { "yes" } else { "no" }.into(),
            r.targets.join(" "),
            opt(dax.map(|d| &d.name)),
            opt(dax.map(|d| &d.mode)),
            opt(dax.and_then(|d| d.target_node)),
        ]);
    }
    write!(out, "{}", regions.render())
}
