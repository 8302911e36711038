//! tierbench: a benchmark harness for tiered memory on Linux.
//!
//! Module map (one concern each): [`topology`] discovers nodes and tiers;
//! [`mempolicy`] owns the policy syscalls; [`buffer`] maps, places and
//! counts pages; [`pin`] binds threads; [`workload`] drives accesses;
//! [`telemetry`] reads counters; [`knobs`] changes and restores system
//! settings; [`variant`] is a policy with its weights and mechanism, and
//! [`mechanism`] drives DAMON and the interleave weights; [`probe`] measures kernel support; [`run`] plans and executes
//! a run; [`scenario`] reads experiment files; [`report`] writes rows,
//! compares runs ([`report::compare`], with [`stats`]) and plots them; [`cli`] parses; [`app`] holds one module per subcommand;
//! [`vm`] boots emulated tiered machines under QEMU; [`conform`] checks
//! the kernel's NUMA-fault migration decisions against the merged rule.

/// A line on stdout. A closed pipe or a full disk there is an error for the
/// caller to return (`println!` would panic, exit 101).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// [`outln!`] without the newline.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        write!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// A message on stderr. A closed stderr loses the message and nothing
/// else: the run goes on, its rows go to their files (`eprintln!` would
/// panic, and in the panic hook abort).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod app;
pub mod buffer;
pub mod cli;
pub mod conform;
pub mod error;
pub mod interrupt;
pub mod kconfig;
pub mod knobs;
pub mod mechanism;
pub mod mempolicy;
pub mod named;
pub mod pin;
pub mod probe;
pub mod program;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stamp;
pub mod stats;
pub mod sysfs;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod text;
pub mod topology;
pub mod units;
pub mod userfile;
pub mod variant;
pub mod vm;
pub mod workload;

/// The module graph: every `crate::` path outside comments and test code,
/// at the granularity of the top-level modules above.
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = vec![src.clone()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let module = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules may reach anywhere; they are not the layering.
            let code = text.split("#[cfg(test)]").next().unwrap();
            let deps = g.entry(module.clone()).or_default();
            for line in code.lines() {
                let line = line.split("//").next().unwrap();
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        deps.insert(name);
                    }
                }
            }
        }
        g
    }

    #[test]
    fn no_module_imports_its_way_back_up() {
        let g = graph();
        // Depth-first search for a path from each module back to itself.
        for start in g.keys() {
            let mut stack = vec![vec![start.clone()]];
            while let Some(path) = stack.pop() {
                let last = path.last().unwrap();
                for next in g.get(last).into_iter().flatten() {
                    assert!(
                        next != start,
                        "import cycle: {} -> {start}",
                        path.join(" -> ")
                    );
                    if !path.contains(next) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
            }
        }
    }

    #[test]
    fn only_the_top_layer_knows_the_command_line() {
        for (module, deps) in graph() {
            if matches!(module.as_str(), "app" | "cli" | "main") {
                continue;
            }
            for top in ["cli", "app"] {
                assert!(
                    !deps.contains(top),
                    "{module} imports {top}: lower layers take typed values, not CLI types"
                );
            }
        }
    }

    #[test]
    fn the_graph_is_read() {
        let g = graph();
        assert!(g["app"].contains("run") && g["run"].contains("report"));
    }
}
