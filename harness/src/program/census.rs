//! Where a program's memory is, from the kernel: every process of its
//! group, the per-node page counts of its anonymous mappings in
//! `/proc/PID/numa_maps` (resident pages only, at the mapping's page size),
//! and moving them with `migrate_pages(2)`.
//!
//! Only mappings without a file count: heap, stacks, anonymous mmap. A
//! program's text and libraries are page cache every other process shares,
//! placed wherever the file was first read (inside `tierbench vm`, where
//! the initramfs was unpacked): counting them would put a bound-to-slow
//! program partly on the fast tier.

use std::collections::BTreeMap;

use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};

/// Resident memory of a process group per node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupCensus {
    pub kib_on: BTreeMap<NodeId, u64>,
    /// Processes whose maps were read (a process that ended while being
    /// read is not counted).
    pub procs: u32,
}

impl GroupCensus {
    pub fn total_kib(&self) -> u64 {
        self.kib_on.values().sum()
    }

    pub fn kib_in(&self, nodes: &NodeSet) -> u64 {
        self.kib_on
            .iter()
            .filter(|(n, _)| nodes.contains(**n))
            .map(|(_, k)| k)
            .sum()
    }

    /// Share of the resident memory on `nodes`; `None` with nothing resident.
    pub fn share_in(&self, nodes: &NodeSet) -> Option<f64> {
        let total = self.total_kib();
        (total > 0).then(|| self.kib_in(nodes) as f64 / total as f64)
    }

    /// Reads the census of every process in group `pgid`.
    pub fn of_group(sys: &SysRoot, pgid: i32) -> GroupCensus {
        let mut c = GroupCensus::default();
        for pid in members(sys, pgid) {
            if let Some(text) = sys.read_opt(&format!("/proc/{pid}/numa_maps")) {
                add_numa_maps(&mut c.kib_on, &text);
                c.procs += 1;
            }
        }
        c
    }
}

/// Processes (thread-group leaders) whose process group is `pgid`.
pub fn members(sys: &SysRoot, pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(sys.path("/proc")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            sys.read_opt(&format!("/proc/{pid}/stat"))
                .and_then(|s| pgrp_of_stat(&s))
                == Some(pgid)
        })
        .collect()
}

/// Field 5 of `/proc/PID/stat`, read after the command name (which may
/// hold spaces and parentheses).
fn pgrp_of_stat(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Adds one `numa_maps` text's `N<node>=<pages>` counts of its anonymous
/// mappings (no `file=`), in KiB at each mapping's `kernelpagesize_kB`.
fn add_numa_maps(kib_on: &mut BTreeMap<NodeId, u64>, text: &str) {
    for line in text.lines() {
        if line.split_whitespace().any(|f| f.starts_with("file=")) {
            continue;
        }
        let page_kib = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("kernelpagesize_kB="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(4);
        for f in line.split_whitespace() {
            let Some((node, pages)) = f.strip_prefix('N').and_then(|f| f.split_once('=')) else {
                continue;
            };
            if let (Ok(node), Ok(pages)) = (node.parse::<NodeId>(), pages.parse::<u64>()) {
                *kib_on.entry(node).or_default() += pages * page_kib;
            }
        }
    }
}

/// Moves every page of the group's processes on `from` to `to`
/// (`migrate_pages(2)`); returns how many pages the kernel could not move,
/// summed, and the first error (a process that ended meanwhile is skipped).
pub fn migrate_group(
    sys: &SysRoot,
    pgid: i32,
    from: &NodeSet,
    to: &NodeSet,
) -> (u64, Option<crate::mempolicy::sys::SysError>) {
    use crate::mempolicy::sys::{Errno, SysError, MASK_WORDS};
    let (old, new) = (from.to_mask(MASK_WORDS), to.to_mask(MASK_WORDS));
    let (mut left, mut first_err) = (0u64, None);
    for pid in members(sys, pgid) {
        // SAFETY: both masks hold MASK_WORDS words, maxnode is their bits + 1.
        let r = unsafe {
            libc::syscall(
                libc::SYS_migrate_pages,
                pid,
                (MASK_WORDS * 64 + 1) as libc::c_ulong,
                old.as_ptr(),
                new.as_ptr(),
            )
        };
        if r >= 0 {
            left += r as u64;
        } else {
            let errno = Errno::last();
            if errno != Errno(libc::ESRCH) && first_err.is_none() {
                first_err = Some(SysError {
                    call: "migrate_pages",
                    errno,
                });
            }
        }
    }
    (left, first_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numa_maps_counts_pages_at_their_size() {
        let text = "\
55d0c0000000 default file=/usr/bin/x mapped=3 N0=2 N1=1 kernelpagesize_kB=4
7f0000000000 prefer (many):0 anon=512 dirty=512 N1=512 kernelpagesize_kB=4
7f1000000000 default anon=2 dirty=2 N0=2 kernelpagesize_kB=2048
7f2000000000 default stack anon=1 dirty=1 active=0 N0=1 kernelpagesize_kB=4
7f3000000000 bind:1 file=/dev/zero\\040(deleted)
";
        let mut kib = BTreeMap::new();
        add_numa_maps(&mut kib, text);
        // The file mappings (the binary, /dev/zero) do not count.
        assert_eq!(kib[&0], 2 * 2048 + 4);
        assert_eq!(kib[&1], 512 * 4);
        let c = GroupCensus {
            kib_on: kib,
            procs: 1,
        };
        let fast: NodeSet = "0".parse().unwrap();
        assert_eq!(c.kib_in(&fast), 4100);
        assert!((c.share_in(&fast).unwrap() - 4100.0 / 6148.0).abs() < 1e-9);
        assert_eq!(GroupCensus::default().share_in(&fast), None);
    }

    #[test]
    fn the_group_is_read_from_stat_after_the_name() {
        let stat = "1234 (a (b) c) S 1 1200 1200 0 -1 4194560 98 0 0 0";
        assert_eq!(pgrp_of_stat(stat), Some(1200));
        assert_eq!(pgrp_of_stat("garbage"), None);
    }

    /// This test process's own group holds this process, and its census
    /// sees memory it has touched.
    #[test]
    fn the_census_of_a_live_group_sees_its_memory() {
        let sys = SysRoot::live();
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() };
        // SAFETY: as above.
        let me = unsafe { libc::getpid() };
        assert!(members(&sys, pgid).contains(&me));
        let v = vec![1u8; 32 << 20];
        let c = GroupCensus::of_group(&sys, pgid);
        assert!(c.procs >= 1);
        assert!(c.total_kib() >= 32 << 10, "{c:?}");
        drop(v);
    }
}
