//! tierbench: a benchmark harness for tiered memory on Linux.
//!
//! Module map (one concern each): [`topology`] discovers nodes and tiers;
//! [`mempolicy`] owns the policy syscalls; [`buffer`] maps, places and
//! counts pages; [`pin`] binds threads; [`workload`] drives accesses;
//! [`telemetry`] reads counters; [`knobs`] changes and restores system
//! settings; [`probe`] measures kernel support; [`run`] plans and executes
//! a run; [`scenario`] reads experiment files; [`report`] writes rows,
//! compares runs ([`report::compare`], with [`stats`]) and plots them; [`cli`] parses; [`app`] holds one module per subcommand;
//! [`vm`] boots emulated tiered machines under QEMU; [`conform`] checks
//! the kernel's NUMA-fault migration decisions against the merged rule.

pub mod app;
pub mod buffer;
pub mod cli;
pub mod conform;
pub mod error;
pub mod interrupt;
pub mod knobs;
pub mod mempolicy;
pub mod named;
pub mod pin;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stamp;
pub mod stats;
pub mod sysfs;
pub mod telemetry;
pub mod topology;
pub mod units;
pub mod vm;
pub mod workload;
