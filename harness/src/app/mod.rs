//! One module per subcommand: each takes its parsed arguments, calls the
//! library, and prints through `report`. Nothing below this layer imports
//! the CLI types; `main.rs` only parses and dispatches here.

pub mod catalog;
pub mod compare;
pub mod conform;
pub mod generate;
pub mod knobs;
pub mod measure;
pub mod plot;
pub mod probe;
pub mod run;
pub mod topo;
pub mod vm;

use anyhow::Context;

use crate::topology::Topology;

pub(crate) fn discover() -> anyhow::Result<Topology> {
    Topology::discover().context("discovering the NUMA topology")
}

pub(crate) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// `-o` of `generate` must name a directory, new or existing (completions
/// and man pages go beside others): checked before anything is written.
pub(crate) fn check_out(dir: &std::path::Path) -> anyhow::Result<()> {
    crate::report::outdir::is_directory_or_absent(dir, "a new or existing directory").map(|_| ())
}
