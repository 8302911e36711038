//! What the kernel counts while a workload runs: `/proc/vmstat` and the
//! per-node `vmstat` files, and perf events. This module reads and
//! subtracts; it never prints and never invents a value the kernel lacks.

pub mod perf;
pub mod taskcpu;
pub mod vmstat;

pub use vmstat::{Snapshot, Vmstat};
