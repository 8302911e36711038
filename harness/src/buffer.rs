//! The measured buffer: an anonymous mapping with a chosen page kind, its
//! placement (a policy on the range, population by pinned threads) and its
//! census (which node holds each page, from `move_pages`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::{Advice, MmapMut, MmapOptions};
use serde::Serialize;

use crate::mempolicy::{sys, MoveFlags, Policy, SysError};
use crate::pin::{self, PinMethod};
use crate::topology::{CpuSet, NodeId, NodeSet};

pub const BASE_PAGE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    /// 4 KiB pages: THP is refused for the range (MADV_NOHUGEPAGE).
    Base,
    /// Transparent huge pages asked for with MADV_HUGEPAGE.
    Thp,
    /// hugetlbfs 2 MiB pages (needs `nr_hugepages` reserved).
    Huge2M,
    /// hugetlbfs 1 GiB pages.
    Huge1G,
}

impl PageKind {
    /// The unit the census counts in.
    pub fn census_unit(self) -> usize {
        match self {
            PageKind::Base | PageKind::Thp => BASE_PAGE,
            PageKind::Huge2M => 2 << 20,
            PageKind::Huge1G => 1 << 30,
        }
    }
    /// The sysfs count of reserved pages for hugetlb kinds.
    pub fn hugetlb_dir(self) -> Option<&'static str> {
        match self {
            PageKind::Huge2M => Some("/sys/kernel/mm/hugepages/hugepages-2048kB"),
            PageKind::Huge1G => Some("/sys/kernel/mm/hugepages/hugepages-1048576kB"),
            _ => None,
        }
    }
}

impl FromStr for PageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "4k" | "4K" | "base" => Ok(PageKind::Base),
            "thp" => Ok(PageKind::Thp),
            "2m" | "2M" => Ok(PageKind::Huge2M),
            "1g" | "1G" => Ok(PageKind::Huge1G),
            _ => Err(format!("unknown page size {s:?}: use 4k, thp, 2m or 1g")),
        }
    }
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageKind::Base => "4k",
            PageKind::Thp => "thp",
            PageKind::Huge2M => "2m",
            PageKind::Huge1G => "1g",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("mmap of {bytes} bytes ({kind} pages) failed: {source}{hint}")]
    Map {
        bytes: usize,
        kind: PageKind,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("madvise on the buffer failed: {0}")]
    Advise(std::io::Error),
    #[error("setting policy {policy} on the buffer: {source}")]
    Policy { policy: String, source: SysError },
    #[error("census: {0}")]
    Census(SysError),
    #[error(transparent)]
    Pin(#[from] pin::PinError),
    #[error("interrupted")]
    Interrupted,
}

pub struct Buffer {
    map: MmapMut,
    kind: PageKind,
}

impl Buffer {
    /// Maps `bytes` of anonymous memory (rounded up to the page kind's
    /// size). Nothing is populated yet.
    pub fn map(bytes: usize, kind: PageKind) -> Result<Self, BufferError> {
        let unit = kind.census_unit();
        let bytes = bytes.div_ceil(unit) * unit;
        let mut opts = MmapOptions::new();
        opts.len(bytes);
        match kind {
            PageKind::Huge2M => {
                opts.huge(Some(21));
            }
            PageKind::Huge1G => {
                opts.huge(Some(30));
            }
            _ => {}
        }
        let map = opts.map_anon().map_err(|source| BufferError::Map {
            bytes,
            kind,
            source,
            hint: if kind.hugetlb_dir().is_some() {
                " (reserve huge pages first: echo N > /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages)"
            } else {
                ""
            },
        })?;
        match kind {
            PageKind::Base => map
                .advise(Advice::NoHugePage)
                .map_err(BufferError::Advise)?,
            PageKind::Thp => map.advise(Advice::HugePage).map_err(BufferError::Advise)?,
            _ => {}
        }
        Ok(Self { map, kind })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn kind(&self) -> PageKind {
        self.kind
    }
    pub fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Sets `policy` on the whole buffer; `mv` decides whether existing
    /// pages move (MPOL_MF_MOVE) or stay where they are (no flag).
    pub fn set_policy(&mut self, policy: &Policy, mv: MoveFlags) -> Result<(), BufferError> {
        let (ptr, len) = (self.map.as_mut_ptr(), self.map.len());
        // SAFETY: the range is exactly this buffer's own mapping.
        unsafe { policy.apply_to_range(ptr, len, mv) }.map_err(|source| BufferError::Policy {
            policy: policy.to_string(),
            source,
        })
    }

    /// The policy the kernel holds for the buffer's mapping.
    pub fn policy(&self) -> Result<Policy, SysError> {
        Policy::of_address(self.map.as_ptr())
    }

    /// Touches every page once (a write, so the page is really allocated
    /// and not the shared zero page), split over one thread per entry of
    /// `cpus`, each pinned to its CPU. Returns how the threads were pinned.
    pub fn populate(&mut self, cpus: &[u32], stop: &AtomicBool) -> Result<PinMethod, BufferError> {
        let threads = cpus.len().max(1);
        let len = self.map.len();
        let chunk = len.div_ceil(threads).div_ceil(BASE_PAGE) * BASE_PAGE;
        let base = self.map.as_mut_ptr() as usize;
        let results: Vec<Result<PinMethod, BufferError>> = std::thread::scope(|s| {
            let handles: Vec<_> = cpus
                .iter()
                .enumerate()
                .map(|(i, &cpu)| {
                    s.spawn(move || {
                        let method = pin::pin_current_thread(cpu)?;
                        let start = (i * chunk).min(len);
                        let end = ((i + 1) * chunk).min(len);
                        let mut off = start;
                        while off < end {
                            if off % (64 << 20) == 0 && stop.load(Ordering::Relaxed) {
                                return Err(BufferError::Interrupted);
                            }
                            // SAFETY: off < len, inside the mapping; threads
                            // write disjoint chunks.
                            unsafe { std::ptr::write_volatile((base + off) as *mut u8, 1) };
                            off += BASE_PAGE;
                        }
                        Ok(method)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("populate thread panicked"))
                .collect()
        });
        let mut method = PinMethod::Hwloc;
        for r in results {
            if r? == PinMethod::CoreAffinity {
                method = PinMethod::CoreAffinity;
            }
        }
        Ok(method)
    }

    /// Locks the populated mapping in memory (mlock): its pages leave the
    /// reclaimable LRUs, so reclaim neither swaps nor demotes them. The lock
    /// goes with the mapping.
    pub fn lock(&self) -> std::io::Result<()> {
        // SAFETY: the range is this live mapping.
        let r = unsafe { libc::mlock(self.map.as_ptr().cast(), self.map.len()) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Which node holds each page of `range` (byte offsets into the buffer).
    pub fn census(&self, range: std::ops::Range<usize>) -> Result<Census, BufferError> {
        let unit = self.kind.census_unit();
        let start = range.start / unit * unit;
        census_of(self.map.as_ptr(), (start..range.end).step_by(unit), unit)
    }

    /// One census per group of `per_group` consecutive entries of `units`
    /// (census-unit indices, each below `len() / unit`): a sample taken in
    /// runs, answered by one `move_pages` call per batch.
    pub fn census_groups(
        &self,
        units: &[usize],
        per_group: usize,
    ) -> Result<Vec<Census>, BufferError> {
        let unit = self.kind.census_unit();
        Ok(self
            .where_are(units)?
            .chunks(per_group.max(1))
            .map(|g| Census::of_statuses(g, unit))
            .collect())
    }

    /// The kernel's answer for each of `units` (census-unit indices, each
    /// below `len() / unit`): the node that holds it, or -errno (-ENOENT:
    /// not populated).
    pub fn where_are(&self, units: &[usize]) -> Result<Vec<i32>, BufferError> {
        let unit = self.kind.census_unit();
        let base = self.map.as_ptr();
        let pages: Vec<*const u8> = units.iter().map(|u| base.wrapping_add(u * unit)).collect();
        let mut status = vec![0i32; pages.len()];
        for (p, st) in pages
            .chunks(CENSUS_BATCH)
            .zip(status.chunks_mut(CENSUS_BATCH))
        {
            sys::query_pages(p, st).map_err(BufferError::Census)?;
        }
        Ok(status)
    }
}

/// Page counts per node for a range, from `move_pages` with no target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Pages (of the census unit) found on each node.
    pub per_node: BTreeMap<NodeId, u64>,
    /// Pages not populated (ENOENT).
    pub absent: u64,
    /// Pages the kernel answered with another error.
    pub errors: u64,
    /// The census unit in bytes (4096 for base and THP mappings).
    pub unit_bytes: usize,
}

impl Census {
    /// The counts of `move_pages` answers: a node, or -errno.
    fn of_statuses(status: &[i32], unit: usize) -> Census {
        let mut census = Census {
            unit_bytes: unit,
            ..Census::default()
        };
        for &s in status {
            if s >= 0 {
                *census.per_node.entry(s as NodeId).or_default() += 1;
            } else if -s == libc::ENOENT {
                census.absent += 1;
            } else {
                census.errors += 1;
            }
        }
        census
    }

    /// Adds another range's counts to this one.
    pub fn add(&mut self, other: &Census) {
        for (n, c) in &other.per_node {
            *self.per_node.entry(*n).or_default() += c;
        }
        self.absent += other.absent;
        self.errors += other.errors;
    }
    pub fn total(&self) -> u64 {
        self.per_node.values().sum::<u64>() + self.absent + self.errors
    }
    pub fn on(&self, nodes: &NodeSet) -> u64 {
        nodes.iter().filter_map(|n| self.per_node.get(&n)).sum()
    }
    /// Share of the range's pages resident on `nodes`, in [0, 1].
    pub fn share_on(&self, nodes: &NodeSet) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.on(nodes) as f64 / total as f64)
    }
}

/// Pages asked about per `move_pages` call: bounds the temporary arrays.
const CENSUS_BATCH: usize = 16 * 1024;

fn census_of(
    base: *const u8,
    offsets: impl Iterator<Item = usize>,
    unit: usize,
) -> Result<Census, BufferError> {
    let mut census = Census {
        unit_bytes: unit,
        ..Census::default()
    };
    let mut pages: Vec<*const u8> = Vec::with_capacity(CENSUS_BATCH);
    let mut status = vec![0i32; CENSUS_BATCH];
    let mut offsets = offsets.peekable();
    while offsets.peek().is_some() {
        pages.clear();
        pages.extend(
            offsets
                .by_ref()
                .take(CENSUS_BATCH)
                .map(|o| base.wrapping_add(o)),
        );
        let st = &mut status[..pages.len()];
        sys::query_pages(&pages, st).map_err(BufferError::Census)?;
        census.add(&Census::of_statuses(st, unit));
    }
    Ok(census)
}

/// The CPUs a node's workers run on: one entry per thread, CPUs in order.
pub fn worker_cpus(cpus: &CpuSet, threads: usize) -> Vec<u32> {
    (0..threads)
        .filter_map(|i| pin::cpu_for_worker(cpus, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freshly mapped buffer is absent from every node; after population
    /// under BIND(node 0) the kernel reports every page on node 0.
    #[test]
    fn census_counts_populated_pages_on_node_zero() {
        let mut buf = Buffer::map(8 << 20, PageKind::Base).unwrap();
        let before = buf.census(0..buf.len()).unwrap();
        assert_eq!(before.absent, 2048);
        assert_eq!(before.on(&NodeSet::single(0)), 0);

        buf.set_policy(&Policy::bind(NodeSet::single(0)), MoveFlags::NONE)
            .unwrap();
        assert_eq!(buf.policy().unwrap(), Policy::bind(NodeSet::single(0)));
        buf.populate(&[0], &AtomicBool::new(false)).unwrap();
        let after = buf.census(0..buf.len()).unwrap();
        assert_eq!(after.per_node.get(&0), Some(&2048));
        assert_eq!(after.absent, 0);
        assert_eq!(after.share_on(&NodeSet::single(0)), Some(1.0));

        let half = buf.census(0..buf.len() / 2).unwrap();
        assert_eq!(half.total(), 1024);
    }

    /// A sample in runs: one census per group, each counting its own pages.
    #[test]
    fn census_groups_count_each_run_apart() {
        let mut buf = Buffer::map(1 << 20, PageKind::Base).unwrap();
        let p = buf.as_mut_ptr();
        for page in 0..128 {
            // SAFETY: the first 128 of the buffer's 256 pages.
            unsafe { std::ptr::write_volatile(p.add(page * BASE_PAGE), 1) };
        }
        let groups = buf
            .census_groups(&[0, 1, 2, 3, 200, 201, 202, 203, 126, 127, 128, 129], 4)
            .unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!((groups[0].total(), groups[0].absent), (4, 0));
        assert_eq!(groups[1].absent, 4);
        assert_eq!(groups[2].absent, 2);
    }

    #[test]
    fn page_kind_spellings() {
        for s in ["4k", "thp", "2m", "1g"] {
            assert_eq!(s.parse::<PageKind>().unwrap().to_string(), s);
        }
        assert!("8k".parse::<PageKind>().unwrap_err().contains("use 4k"));
    }
}
