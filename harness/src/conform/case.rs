//! One conformance case, run in a process of its own (`tierbench
//! conform-case`), so every case starts with a fresh address space and
//! fresh NUMA-scanner state: the scan period of one case's task never
//! delays the next case's first scan.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rule::CasePolicy;
use crate::buffer::{Buffer, BufferError, PageKind};
use crate::mempolicy::{Flags, Mode, MoveFlags, Policy};
use crate::pin;
use crate::topology::{NodeId, NodeSet};
use crate::workload::pattern::{Mix, Pattern, PatternKind, PatternSpec, Shared, Worker};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseSpec {
    pub policy: CasePolicy,
    /// Node mask of the policy (empty for default).
    pub mask: NodeSet,
    pub exec_cpu: u32,
    pub page_node: NodeId,
    pub size_bytes: usize,
    pub period_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    Ok,
    /// The kernel refused the policy; `reason` says why.
    Unsupported,
    /// The setup did not hold (e.g. the pages did not land on the page
    /// node): no verdict is possible.
    SetupFailed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub status: CaseStatus,
    pub reason: String,
    /// Census after the access period: pages per node.
    pub per_node: BTreeMap<NodeId, u64>,
    pub pages: u64,
}

impl CaseSpec {
    pub fn policy(&self) -> Policy {
        let mask = self.mask.clone();
        match self.policy {
            CasePolicy::Default => Policy::default_policy(),
            CasePolicy::BindBalancing => Policy::new(Mode::Bind, Flags::NUMA_BALANCING, mask),
            CasePolicy::PreferredManyBalancing => {
                Policy::new(Mode::PreferredMany, Flags::NUMA_BALANCING, mask)
            }
        }
    }
}

/// Places the pages on the page node, switches the policy in place, reads
/// every page from a thread on `exec_cpu` for the period, then counts
/// where the pages are.
pub fn run_case(spec: &CaseSpec) -> Result<CaseResult, BufferError> {
    let mut buf = Buffer::map(spec.size_bytes, PageKind::Base)?;
    let stop = AtomicBool::new(false);
    buf.set_policy(
        &Policy::bind(NodeSet::single(spec.page_node)),
        MoveFlags::NONE,
    )?;
    buf.populate(&[spec.exec_cpu], &stop)?;
    let placed = buf.census(0..buf.len())?;
    let total = placed.total();
    if placed.per_node.get(&spec.page_node).copied().unwrap_or(0) != total {
        return Ok(CaseResult {
            status: CaseStatus::SetupFailed,
            reason: format!(
                "first touch under BIND({}) left pages on {:?}",
                spec.page_node, placed.per_node
            ),
            per_node: placed.per_node,
            pages: total,
        });
    }
    let policy = spec.policy();
    if let Err(BufferError::Policy { source, .. }) = buf.set_policy(&policy, MoveFlags::NONE) {
        return Ok(CaseResult {
            status: CaseStatus::Unsupported,
            reason: format!("{source}: {}", crate::probe::diagnose(&policy, &source)),
            per_node: placed.per_node,
            pages: total,
        });
    }
    // One read per page, sweeping the whole buffer.
    let pattern = Pattern::new(
        PatternSpec {
            kind: PatternKind::Sweep,
            hot_fraction: 1.0,
            hot_share: 1.0,
            zipf_theta: 1.0,
            stride: crate::buffer::BASE_PAGE,
            mix: Mix::READ_ONLY,
        },
        buf.len(),
    );
    let shared = Shared::default();
    let worker = Worker::alone(&pattern, &shared);
    let base = buf.as_mut_ptr() as usize;
    std::thread::scope(|s| -> Result<(), BufferError> {
        let worker = s.spawn(|| -> Result<(), pin::PinError> {
            pin::pin_current_thread(spec.exec_cpu)?;
            // SAFETY: the buffer outlives the scope; this is its only user.
            unsafe { worker.run(base as *mut u8) };
            Ok(())
        });
        std::thread::sleep(Duration::from_millis(spec.period_ms));
        shared.stop.store(true, Ordering::SeqCst);
        worker.join().expect("case worker panicked")?;
        Ok(())
    })?;
    let mut after = buf.census(0..buf.len())?;
    let mut reason = String::new();
    // A page the scanner made PROT_NONE after the worker's last read is
    // reported absent by move_pages on some kernels (seen on 6.1): read
    // every page once more from the executing CPU, as the worker did, and
    // count again.
    for pass in 1..=3 {
        if after.absent + after.errors == 0 {
            break;
        }
        reason = format!(
            "{} of {} pages were not reported after the period; counted again after {pass} more read pass(es)",
            after.absent + after.errors,
            after.total()
        );
        read_every_page(&buf, spec.exec_cpu)?;
        after = buf.census(0..buf.len())?;
    }
    Ok(CaseResult {
        status: CaseStatus::Ok,
        reason,
        pages: after.total(),
        per_node: after.per_node,
    })
}

/// One read of every page, from a thread on `cpu`.
fn read_every_page(buf: &Buffer, cpu: u32) -> Result<(), BufferError> {
    let (base, len) = (buf.as_ptr() as usize, buf.len());
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), pin::PinError> {
            pin::pin_current_thread(cpu)?;
            for off in (0..len).step_by(crate::buffer::BASE_PAGE) {
                // SAFETY: off < len, inside the mapping, which outlives the
                // scope; nothing writes it meanwhile.
                unsafe { std::ptr::read_volatile((base + off) as *const u8) };
            }
            Ok(())
        })
        .join()
        .expect("reader panicked")
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parent hands a case to its child as JSON: masks survive the trip,
    /// the empty one (the default policy's) included.
    #[test]
    fn a_case_crosses_the_process_boundary_whole() {
        for mask in ["", "0", "0,2-3"] {
            let spec = CaseSpec {
                policy: CasePolicy::BindBalancing,
                mask: mask.parse().unwrap(),
                exec_cpu: 1,
                page_node: 2,
                size_bytes: 2 << 20,
                period_ms: 100,
            };
            let back: CaseSpec =
                serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            assert_eq!(back.mask, spec.mask, "{mask:?}");
        }
    }
}
