//! Command-line definitions: parsing only, no system access. `main.rs`
//! dispatches each subcommand to its module in [`crate::app`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::buffer::PageKind;
use crate::mempolicy::NodeSpec;
use crate::run::SizeSpec;
use crate::units::{parse_duration, parse_size};
use crate::variant::VariantSpec;

#[derive(Debug, Parser)]
#[command(
    name = "tierbench",
    version,
    about = "Benchmark harness for tiered memory: page promotion and demotion between DRAM and slow memory",
    long_about = "Benchmark harness for tiered memory on Linux (DRAM + CXL, a far NUMA node, or tiers \
                  emulated by QEMU + HMAT). It places a buffer under a memory policy, drives an access \
                  pattern from pinned threads, and records promotion/demotion counters, placement \
                  (move_pages census) and throughput as CSV, row by row.\n\n\
                  Start with `tierbench topo` and `tierbench probe` to see what this machine and \
                  kernel offer.",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 bad input (nothing on the system was \
                  changed), 130 interrupted (knobs restored, finished rows kept)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show NUMA nodes, CPUs, memory and its zones, tiers, HMAT, distances, CXL devices, the tier check
    Topo(TopoArgs),
    /// Measure what this kernel supports: policy modes x flags, counters, knobs, config, the tier check
    Probe(ProbeArgs),
    /// Place a buffer, drive accesses, and record counters and placement as CSV
    Run(Box<RunArgs>),
    /// Show, or restore after a crash, the system knobs tierbench changes
    Knobs(KnobsArgs),
    /// Boot a kernel on an emulated tiered machine (QEMU + HMAT) and run a command inside
    Vm(VmArgs),
    /// Bandwidth of a kernel (read, write, copy, triad, mixes) from a CPU node to a memory node
    Bw(BwArgs),
    // The subcommand's struct carries its long help: a doc comment here
    // would replace it.
    #[command(about = "Load-to-use latency by pointer chase, idle or under a bandwidth load")]
    Latency(LatencyArgs),
    // The subcommand's struct carries its long help: a doc comment here
    // would replace it.
    #[command(about = "Idle latency and bandwidth from every CPU node to every memory node")]
    Matrix(MatrixArgs),
    // The subcommand's struct carries its long help: a doc comment here
    // would replace it.
    #[command(
        about = "Changelog table: variants of a run, or the same scenario across runs, with Welch's t-test"
    )]
    Compare(CompareArgs),
    /// Charts (SVG, PNG): a run's timeline, or a characterisation's loaded-latency curves
    Plot(PlotArgs),
    /// Check NUMA-fault migration decisions against the merged MPOL_F_NUMA_BALANCING rule
    Conform(ConformArgs),
    /// List the host profiles a bare name finds, and where each one comes from
    #[command(long_about = LOOKUP_HELP)]
    Hosts(HostsArgs),
    /// List the scenarios a bare name finds, and where each one comes from
    #[command(long_about = LOOKUP_HELP)]
    Scenarios,
    /// Write the man pages or a shell's completions, generated from these definitions
    Generate(GenerateArgs),
    /// One conformance case, in a fresh process (used by `conform`)
    #[command(hide = true)]
    ConformCase {
        /// The case, as JSON
        spec: String,
    },
}

/// Where bare names of profiles and scenarios are looked up, for --help.
pub const LOOKUP_HELP: &str = "A bare name is looked up as NAME.toml in ./hosts/ (profiles) or \
    ./bench/scenarios/ (scenarios), then $XDG_CONFIG_HOME/tierbench/{hosts,scenarios}/, then \
    the install location (../share/tierbench/ beside the binary, /usr/share/tierbench/), then \
    the copies built into the binary; `tierbench hosts` and `tierbench scenarios` list what \
    is found and where.";

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Check this machine against a profile instead of listing: exit 0 when
    /// it is the machine the profile describes, 1 when not (one line per
    /// difference)
    #[arg(long, value_name = "PROFILE")]
    pub check: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// Man pages: tierbench.1 and one tierbench-SUBCOMMAND.1 each (needs --out)
    Man,
    /// bash completions
    Bash,
    /// zsh completions
    Zsh,
    /// fish completions
    Fish,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tierbench generate man --out /usr/local/share/man/man1\n  \
                  tierbench generate bash > /etc/bash_completion.d/tierbench"
)]
pub struct GenerateArgs {
    /// What to write
    #[arg(value_enum)]
    pub what: Generated,
    /// Directory to write into (completions go to stdout without it)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal
    Table,
    /// Comma-separated values with a header
    Csv,
    /// One JSON document
    Json,
}

#[derive(Debug, Args)]
pub struct TopoArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Output format (csv lists the policy probes only)
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct KnobsArgs {
    #[command(subcommand)]
    pub action: KnobsAction,
    /// State file holding the values to restore
    #[arg(
        long,
        global = true,
        long_help = "State file holding the knob values a run saved before changing them. \
                     Default: $TIERBENCH_STATE_DIR/knobs.json, or /var/lib/tierbench/knobs.json."
    )]
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KnobsAction {
    /// Print every knob tierbench knows and its current value
    Show,
    /// Put back the values a killed run left in the state file
    Restore {
        /// Restore even while the run that changed them is still alive
        #[arg(long)]
        force: bool,
    },
}

/// `kernel.numa_balancing` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalancingMode {
    /// 0: no NUMA balancing
    #[value(name = "off", alias = "0")]
    Off,
    /// 1: NUMA_BALANCING_NORMAL, migrate towards the accessing node
    #[value(name = "normal", alias = "1")]
    Normal,
    /// 2: NUMA_BALANCING_MEMORY_TIERING, promote from slow tiers (5.18+)
    #[value(name = "tiering", alias = "2")]
    Tiering,
    /// 3: both
    #[value(name = "both", alias = "3")]
    Both,
}

impl BalancingMode {
    pub fn value(self) -> &'static str {
        match self {
            BalancingMode::Off => "0",
            BalancingMode::Normal => "1",
            BalancingMode::Tiering => "2",
            BalancingMode::Both => "3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThpMode {
    Always,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThpDefrag {
    Always,
    Defer,
    #[value(name = "defer+madvise")]
    DeferMadvise,
    Madvise,
    Never,
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}
fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}
fn numab_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write NAME=VALUE, e.g. scan_period_min_ms=100"))?;
    Ok((k.to_string(), v.to_string()))
}

/// `run` options a scenario file sets are refused beside `--scenario`,
/// except these (the command line wins).
pub const BESIDE_SCENARIO: [&str; 1] = ["iterations"];

/// The whole command line, with `run --scenario` refusing the options a
/// scenario file sets (derived from the headings, so no list is kept by
/// hand).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("run", |run| {
        // A section of a file is a help heading of `run` (scenario.rs).
        let (_, sections) = crate::scenario::Kind::Run.subcommand();
        let set: Vec<clap::Id> = run
            .get_arguments()
            .filter(|a| {
                a.get_help_heading().is_some_and(|h| {
                    sections.iter().any(|(_, heading)| *heading == h)
                        || h == crate::scenario::VARIANTS
                }) && !BESIDE_SCENARIO.contains(&a.get_id().as_str())
            })
            .map(|a| a.get_id().clone())
            .collect();
        run.mut_arg("scenario", |a| a.conflicts_with_all(set))
    })
}

/// Parses `argv` (program name first) with [`command`].
pub fn try_parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let m = command().try_get_matches_from(argv)?;
    Cli::from_arg_matches(&m)
}

/// Parses the process's arguments; on bad input prints clap's message and
/// exits 2.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit()
        }
        crate::errln!("{}", one_line_usage_error(&e.render().to_string()));
        std::process::exit(2)
    })
}

/// A clap error as the one line every other refusal is: its message and
/// tips joined, without the usage block, control characters in the user's
/// values escaped (an ANSI sequence or a newline in `--policy` used to be
/// echoed raw).
pub fn one_line_usage_error(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for block in rendered.split("\n\n") {
        let block = block.trim();
        if block.starts_with("Usage:") || block.starts_with("For more information") {
            continue;
        }
        parts.push(block.trim_start_matches("error: ").to_string());
    }
    let text = crate::text::printable(&parts.join("; "));
    format!("tierbench: error: {text} (see --help)")
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example (the promotion setup: first-touch on the slow tier, switch the \
policy in place, read the hot half from a fast-node CPU):\n  \
tierbench run --size 256M --stride 4096 --hot-fraction 0.5 --numa-balancing tiering \\\n    \
--first-touch slow --policy preferred-many:fast --policy preferred-many:fast+balancing\n\n\
Example (your own program as the workload: redis-server under each policy, redis-benchmark \
as its client, its requests/s as the score, its pages pushed to the slow tier at 2 s):\n  \
tierbench run --numa-balancing tiering --policy preferred-many:fast \\\n    \
--policy preferred-many:fast+balancing --push-to-slow-at 2s \\\n    \
--server \"redis-server --port 6400 --save '' --appendonly no\" --ready-port 6400 \\\n    \
--parser redis-benchmark:GET -- redis-benchmark -p 6400 -t set,get -n 2000000 -q --csv"
)]
pub struct RunArgs {
    /// Run a scenario file: a name (`tierbench scenarios` lists them) or a path
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Run",
        long_help = "Run a scenario file (a name, e.g. promote-hot, fill-fast, \
                     latency-bandwidth, or a path): buffer, placement, workload, \
                     knobs, timing and the variants to compare all come from the file, so \
                     the options it sets cannot be given beside it. --iterations, -o, --host, \
                     --force and -q still apply. Inside `tierbench vm` the host's file is \
                     carried into the guest. A bare name is looked up in ./bench/scenarios/, \
                     $XDG_CONFIG_HOME/tierbench/scenarios/, the install location, then the \
                     built-in copies (`tierbench scenarios` lists them)."
    )]
    pub scenario: Option<String>,

    // --- Placement
    /// Buffer size (K, M, G: powers of 1024)
    #[arg(
        long,
        default_value = "256M",
        help_heading = "Buffer",
        long_help = "Buffer size: a number with K, M, G or T (powers of 1024), e.g. 256M, or a \
                     share of a tier's memory, e.g. \"75% of fast\" or \"50% of slow\"."
    )]
    pub size: SizeSpec,

    /// Page size: 4k, thp, 2m or 1g (hugetlb)
    #[arg(
        long,
        default_value = "4k",
        help_heading = "Buffer",
        long_help = "Page size of the buffer: 4k (THP refused with MADV_NOHUGEPAGE), thp \
                     (MADV_HUGEPAGE), 2m or 1g (hugetlb: reserve pages in \
                     /sys/kernel/mm/hugepages first)."
    )]
    pub page_size: PageKind,

    /// Variant under test, MODE[:NODES][+FLAG...][@damon]; repeat for variants
    #[arg(
        long = "policy",
        value_name = "POLICY",
        default_value = "default",
        help_heading = crate::scenario::VARIANTS,
        long_help = "Memory policy under test, spelled MODE[:NODES][+FLAG...]. Modes: default, \
                     local, preferred, bind, interleave, preferred-many, weighted-interleave. \
                     NODES: a kernel list (0-3,5) or fast, slow, all (from the memory tiers). \
                     Flags: balancing (MPOL_F_NUMA_BALANCING), static, relative. Repeat the \
                     option to run several variants one after the other in one run, e.g. \
                     --policy preferred-many:fast --policy preferred-many:fast+balancing. \
                     Under weighted-interleave each node may carry its weight, set for the \
                     variant and put back after: weighted-interleave:fast=9,slow=1, or =auto \
                     on every node for the weights the kernel derives from HMAT/CDAT \
                     bandwidth (6.16+); without weights, the ones in force. A trailing \
                     @damon runs DAMON tiering while the variant runs (migrate_hot slow->fast, \
                     migrate_cold fast->slow; see --damon), e.g. preferred-many:fast@damon. \
                     A variant the kernel refuses is recorded as unsupported, with the reason."
    )]
    pub policies: Vec<VariantSpec>,

    /// Add the bounds: BIND(fast) and BIND(slow) variants, for "share of the gap recovered"
    #[arg(
        long,
        help_heading = crate::scenario::VARIANTS,
        long_help = "Add the two bracketing variants tiering results are normalised to: all \
                     memory bound to the fast tier (bind:fast) and all bound to the slow tier \
                     (bind:slow), run first in each iteration; a bound the buffer does not fit \
                     is left out with a note. `compare` then adds a row per variant: the share \
                     of the slow-to-fast gap it recovered, (variant - slow) / (fast - slow) of \
                     the score (accesses/s for the built-in workers). Needs a fast and a slow \
                     tier. In a scenario file: bracket = true at the top level."
    )]
    pub bracket: bool,

    /// Populate under BIND(NODES) first, then switch to the policy in place
    #[arg(
        long,
        value_name = "NODES",
        help_heading = "Buffer",
        long_help = "First-touch the buffer under BIND(NODES) (e.g. slow), then set the policy \
                     under test with mbind without moving pages: the promotion setup. Without \
                     this option the buffer is populated under the policy itself."
    )]
    pub first_touch: Option<NodeSpec>,

    /// Move existing pages when switching policy (mbind MPOL_MF_MOVE)
    #[arg(long = "move", id = "move", help_heading = "Buffer")]
    pub move_on_switch: bool,

    /// Fill the fast tier first, leaving this much free above its watermarks
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = size_arg,
        help_heading = "Buffer",
        long_help = "Before each variant, fill the fast tier with a memory eater tierbench owns \
                     (bound to the fast nodes) until only SIZE stays free above the zones' high \
                     watermarks; the eater is freed after the variant. With demotion on, kswapd \
                     demotes the eater's cold pages to make room for promotions: the seed \
                     patch's own setup."
    )]
    pub fill_fast_leave: Option<u64>,

    /// Lock the fast-tier filler in memory (mlock): reclaim cannot demote it
    #[arg(
        long,
        requires = "fill_fast_leave",
        help_heading = "Buffer",
        long_help = "With --fill-fast-leave, lock the eater in memory (mlock) so reclaim cannot \
                     demote it: the fast tier stays full, and each promotion has to displace \
                     the buffer's own pages. This is how a fast tier too small for the hot set \
                     is set up, and what provokes ping-pong (pages promoted, demoted, promoted \
                     again). Needs root or an RLIMIT_MEMLOCK as large as the fast tier."
    )]
    pub fill_fast_locked: bool,

    /// Allocate even if the buffer exceeds the target nodes' free memory, or run tiering on a tier-check failure
    #[arg(
        long,
        help_heading = "Run",
        long_help = "Run what would otherwise be refused as measuring nothing: a buffer larger \
                     than the target nodes' free memory, or NUMA balancing in tiering mode on a \
                     machine whose CPU-less memory shares the DRAM tier (the tier check in \
                     `tierbench topo`: promotion counts would stay zero whatever the policy). \
                     The results then say so."
    )]
    pub force: bool,

    /// Host profile this machine must match: a name (`tierbench hosts`) or a path
    #[arg(
        long,
        value_name = "PROFILE",
        help_heading = "Run",
        long_help = "Host profile (a name or a path) describing this machine: node \
                     ids, which nodes have CPUs, and the tiers the kernel should build. A machine \
                     of another shape is refused; tiers other than expected are recorded in the \
                     results and printed. A bare name is looked up in ./hosts/, \
                     $XDG_CONFIG_HOME/tierbench/hosts/, the install location, then the built-in \
                     copies (`tierbench hosts` lists them)."
    )]
    pub host: Option<String>,

    // --- Workload
    /// Node whose CPUs run the workers (default: first fast node with CPUs)
    #[arg(long, help_heading = "Workload")]
    pub worker_node: Option<u32>,

    /// Worker threads, each pinned to its own CPU of the worker node
    #[arg(long, default_value_t = 1, help_heading = "Workload")]
    pub threads: usize,

    /// Run more workers than the node has CPUs (they share CPUs), up to 4 per CPU
    #[arg(long, help_heading = "Workload")]
    pub oversubscribe: bool,

    /// Pin workers to every CPU (hardware thread) or one per physical core
    #[arg(long, value_enum, default_value = "cpu", help_heading = "Workload")]
    pub pin: crate::run::PinUnit,

    /// Access pattern over the buffer's pages
    #[arg(
        long,
        value_enum,
        default_value = "sweep",
        help_heading = "Workload",
        long_help = "Access pattern over the buffer's 4 KiB pages. The first --hot-fraction of \
                     the pages is the hot set. sweep: each worker walks its slice of the hot set \
                     at --stride. hot-cold: --hot-share of the accesses land uniformly on the hot \
                     set, the rest on the cold pages (10% of pages taking 90%: --hot-fraction 0.1 \
                     --hot-share 0.9). uniform: all pages alike. gaussian: a normal around the \
                     hot set's middle, --hot-share of it inside the hot set. zipf: page rank r \
                     weighs 1/(r+1)^--zipf-theta. Random patterns read one word of a random cache \
                     line of the chosen page."
    )]
    pub pattern: crate::workload::pattern::PatternKind,

    /// Share of the buffer that is hot, in (0, 1]
    #[arg(long, default_value_t = 1.0, help_heading = "Workload")]
    pub hot_fraction: f64,

    /// Share of accesses on the hot set (hot-cold, gaussian), in (0, 1)
    #[arg(long, default_value_t = 0.9, help_heading = "Workload")]
    pub hot_share: f64,

    /// Zipf exponent (zipf pattern)
    #[arg(long, default_value_t = 1.0, help_heading = "Workload")]
    pub zipf_theta: f64,

    /// Bytes between accesses of a sweep (a multiple of 8; 4096 = one per page)
    #[arg(long, default_value_t = 64, help_heading = "Workload")]
    pub stride: usize,

    /// Reads to writes, R:W (a write is a load and a store of one word)
    #[arg(long, default_value = "1:0", help_heading = "Workload")]
    pub mix: crate::workload::pattern::Mix,

    /// Every access writes (same as --mix 0:1)
    #[arg(long, conflicts_with = "mix", help_heading = "Workload")]
    pub write: bool,

    /// Move the hot set onto cold pages at this time (e.g. 5s)
    #[arg(long, value_name = "T", value_parser = duration_arg, help_heading = "Workload")]
    pub move_hot_at: Option<Duration>,

    /// Take the slow node's memory blocks offline at this time (e.g. 3s)
    #[arg(
        long,
        value_name = "T",
        value_parser = duration_arg,
        help_heading = "Workload",
        long_help = "T into each variant's window, write `offline` to every online memory block \
                     of the slow node(s), as an administrator removing an expander does. The \
                     kernel migrates the pages away first, or refuses (EBUSY) where it cannot \
                     move them: the row where it finished and the summary say, per block, \
                     which went offline and the errno of those that did not; the census and \
                     pgmigrate_success show where the pages went (the summary's counters run until \
                     the last block was tried). The blocks go back online, \
                     in their zone, after each variant and on every way the run ends \
                     (SIGTERM, Ctrl-C, an error; `tierbench knobs restore` after SIGKILL). \
                     Needs root and a slow node with hot-pluggable memory (a CXL node onlined \
                     through kmem: tierbench vm --host qemu-cxl-type3)."
    )]
    pub offline_slow_at: Option<Duration>,

    /// Time one access in N (a power of two; 0: none) for latency percentiles
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        help_heading = "Workload"
    )]
    pub latency_every: u64,

    /// Let the workers run this long before the measured window
    #[arg(long, default_value = "0s", value_parser = duration_arg, help_heading = "Timing")]
    pub warmup: Duration,

    /// How long each variant's measured window lasts (e.g. 10s, 500ms, 2m)
    #[arg(long, default_value = "10s", value_parser = duration_arg, help_heading = "Timing")]
    pub duration: Duration,

    /// Repeat every variant N times (variants interleaved in each round) [default: 1]
    #[arg(long, value_name = "N", help_heading = "Timing")]
    pub iterations: Option<u32>,

    // --- Telemetry
    /// Sampling interval (one CSV row each)
    #[arg(long, default_value = "1s", value_parser = duration_arg, help_heading = "Timing")]
    pub interval: Duration,

    /// Skip the per-interval move_pages census (the summary still has one)
    #[arg(long, help_heading = "Telemetry")]
    pub no_census: bool,

    /// Pages the per-interval census examines at most (0: every page, every interval)
    #[arg(
        long,
        value_name = "PAGES",
        default_value_t = 4096,
        help_heading = "Telemetry",
        long_help = "Most pages the per-interval census examines. A buffer and hot set that \
                     together have more pages get a sample of this many hot-set pages, in runs \
                     of 32 consecutive pages spread evenly from a random start (runs cost half \
                     what scattered pages did), so a row costs the same whatever the \
                     buffer's size (1.5 to 2 ms of sampler CPU here); the row says how many it \
                     examined (census_pages) and how precise its hot-set share is \
                     (hot_fast_share_ci95, from the pages and from the runs' spread, whichever \
                     is wider). 0: a full census every interval. The summary row always has a \
                     full census."
    )]
    pub census_sample: usize,

    // --- Knobs
    /// Set kernel.numa_balancing for the run (off, normal, tiering, both)
    #[arg(long, value_enum, help_heading = "Knobs")]
    pub numa_balancing: Option<BalancingMode>,

    /// Set /sys/kernel/mm/numa/demotion_enabled for the run
    #[arg(long, value_enum, help_heading = "Knobs")]
    pub demotion: Option<OnOff>,

    /// Set kernel.numa_balancing_promote_rate_limit_MBps for the run
    #[arg(long, value_name = "MBPS", help_heading = "Knobs")]
    pub promote_rate_limit: Option<u64>,

    /// Set transparent_hugepage/enabled for the run
    #[arg(long, value_enum, help_heading = "Knobs")]
    pub thp: Option<ThpMode>,

    /// Set transparent_hugepage/defrag for the run
    #[arg(long, value_enum, help_heading = "Knobs")]
    pub thp_defrag: Option<ThpDefrag>,

    /// Set a debugfs sched/numa_balancing knob, NAME=VALUE (repeatable)
    #[arg(
        long = "numab",
        value_name = "NAME=VALUE",
        value_parser = numab_arg,
        help_heading = "Knobs",
        long_help = "Set a NUMA-balancing scanner knob under \
                     /sys/kernel/debug/sched/numa_balancing/ for the run, e.g. \
                     scan_period_min_ms=100 or scan_delay_ms=0. Needs debugfs mounted. Repeatable."
    )]
    pub numab: Vec<(String, String)>,

    /// Change a DAMON setting of the @damon variants, KEY=VALUE (repeatable)
    #[arg(
        long = "damon",
        value_name = "KEY=VALUE",
        help_heading = "Mechanisms",
        long_help = "Change one value of the DAMON tiering setup the @damon variants run \
                     (defaults: samples/damon/mtier.c and damo's mem_tier.sh). Keys: \
                     sample_us (5000), aggr_us (100000), update_us (1000000), min_nr_regions \
                     (10), max_nr_regions (1000), hot_min_accesses (1: accessed in 1 of the \
                     20 samples of an aggregation), apply_interval_us (1000000), quota_mib \
                     (200 per quota interval), quota_reset_ms (1000), fast_used_goal_bp \
                     (9970: promote toward 99.7% of the fast node used), fast_free_goal_bp \
                     (50: demote toward 0.5% free), young_filter (true), \
                     intervals_goal_access_bp (400; 0 turns interval tuning off). Goals, \
                     filters and interval tuning are used where the kernel has them; the \
                     variant's notes say what was left out. In a scenario: [mechanisms] \
                     damon = { quota_mib = 100 }."
    )]
    pub damon: Vec<String>,

    /// State file for the knob values to restore (see `tierbench knobs`)
    #[arg(long, help_heading = "Run")]
    pub state_file: Option<PathBuf>,

    // --- Output
    /// Results directory (summary.csv, timeseries.csv, system.json)
    #[arg(
        long,
        short = 'o',
        help_heading = "Run",
        long_help = "Directory for the results: summary.csv (one row per variant and \
                     iteration), timeseries.csv (one row per interval), both flushed as \
                     measured, and system.json (kernel, topology, knobs, capabilities, plan, \
                     every vmstat counter's change). Columns: results/README.md. Default: \
                     tierbench-results/run-<UTC time>."
    )]
    pub out: Option<PathBuf>,

    /// Empty the results directory first if it holds files (by default such a -o is refused)
    #[arg(long, help_heading = "Run")]
    pub replace: bool,

    /// No progress on stderr
    #[arg(long, short = 'q', help_heading = "Run")]
    pub quiet: bool,

    // --- Program
    /// Your program as the workload, after --: run under each policy variant
    #[arg(
        last = true,
        value_name = "COMMAND",
        help_heading = "Program",
        conflicts_with_all = BUILT_IN_WORKLOAD,
        long_help = "Run this command as the workload, after -- (e.g. -- stress-ng --vm 1 \
                     --vm-bytes 1G -t 10 --metrics-brief). For each variant and iteration it \
                     starts in a process group of its own, with the variant's memory policy set \
                     before exec (inherited by what it starts, as numactl does) and bound to the \
                     CPUs of --worker-node; the run's knobs are in force. Every interval row \
                     has its resident anonymous memory per node (anon_kib_nodeN, from /proc/PID/numa_maps \
                     of every process of its group) and the share on the fast tier; the summary \
                     its wall time, exit code, CPU times, peak RSS and score. Its output goes \
                     to output/ in the results directory. A command that fails gives a row \
                     `failed` with its exit and the tail of its output, and the run goes on. \
                     The buffer, pattern and worker options do not apply and are refused."
    )]
    pub command: Vec<String>,

    /// Start this server first (under the policy), and run COMMAND as its client
    #[arg(
        long,
        value_name = "CMD",
        help_heading = "Program",
        long_help = "A long-lived program (split into words as a shell would, nothing \
                     expanded) started first, under the variant's policy and CPUs: its memory \
                     is the one counted and pushed. When it is ready (--ready or --ready-port) \
                     COMMAND runs as its client, with the default policy, on the other CPUs \
                     where there are any; then the server gets SIGTERM (SIGKILL 5 s later)."
    )]
    pub server: Option<String>,

    /// The server is ready when a line of its output matches this regex
    #[arg(
        long,
        value_name = "REGEX",
        conflicts_with = "ready_port",
        help_heading = "Program"
    )]
    pub ready: Option<String>,

    /// The server is ready when 127.0.0.1:PORT accepts a connection
    #[arg(long, value_name = "PORT", help_heading = "Program")]
    pub ready_port: Option<u16>,

    /// Longest the server may take to become ready
    #[arg(long, value_name = "T", default_value = "60s", value_parser = duration_arg, help_heading = "Program")]
    pub ready_timeout: Duration,

    /// Kill the command (and its group) after this long; the row is `failed`
    #[arg(long, value_name = "T", value_parser = duration_arg, help_heading = "Program")]
    pub timeout: Option<Duration>,

    /// The score: a regex with one capture group around the number (last match counts)
    #[arg(
        long,
        value_name = "REGEX",
        conflicts_with = "parser",
        help_heading = "Program",
        long_help = "Parse the command's score from its output (stdout and stderr) with this \
                     regular expression, whose one capture group holds the number (commas \
                     allowed); the last match counts. The unit is --metric-unit, or the word \
                     after the number. Smaller is better when --lower-is-better is given or the \
                     expression speaks of time or latency. No match: the row is `no-score`."
    )]
    pub metric: Option<String>,

    /// Unit of the --metric score (default: the word after the number)
    #[arg(long, value_name = "UNIT", help_heading = "Program")]
    pub metric_unit: Option<String>,

    /// A smaller --metric score is better (a time, a latency)
    #[arg(long, help_heading = "Program")]
    pub lower_is_better: bool,

    /// Built-in score parser, NAME[:WHICH] (redis-benchmark, stress-ng, sysbench, gapbs, xsbench, ycsb)
    #[arg(
        long,
        value_name = "NAME[:WHICH]",
        help_heading = "Program",
        long_help = "Parse the score with a built-in parser: redis-benchmark (--csv or -q; \
                     requests/s of the first test, or redis-benchmark:GET), stress-ng \
                     (--metrics-brief; bogo ops/s of the first stressor, or stress-ng:vm), \
                     sysbench (transactions/s, MiB/s or events/s), gapbs (Average Time, s, \
                     lower is better), xsbench (Lookups/s), ycsb ([OVERALL] Throughput, or \
                     ycsb:read-p99 for an operation's p99 latency in us)."
    )]
    pub parser: Option<String>,

    /// Move the program's pages to the slow tier at T, then watch them come back
    #[arg(
        long,
        value_name = "T",
        value_parser = duration_arg,
        help_heading = "Program",
        long_help = "T after the program (the server, when there is one) started, move every \
                     page of its process group from the fast to the slow tier \
                     (migrate_pages(2)). The rows then show how much comes back and how fast: \
                     time_to_50pct_s and time_to_90pct_s are the seconds after the push at \
                     which its fast-tier share got back to 50% and 90% of the share before it; \
                     pushed_kib and returned_share say how much left and came back. Needs a \
                     fast and a slow tier."
    )]
    pub push_to_slow_at: Option<Duration>,
}

/// The options of the built-in workers, which an external program makes
/// meaningless: refused beside a COMMAND.
const BUILT_IN_WORKLOAD: [&str; 22] = [
    "size",
    "page_size",
    "first_touch",
    "move",
    "fill_fast_leave",
    "fill_fast_locked",
    "threads",
    "oversubscribe",
    "pin",
    "pattern",
    "hot_fraction",
    "hot_share",
    "zipf_theta",
    "stride",
    "mix",
    "write",
    "move_hot_at",
    "latency_every",
    "warmup",
    "duration",
    "no_census",
    "census_sample",
];

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tierbench vm --host qemu-dram-cxl --kernel 6.12 -- \\\n    run --first-touch slow --numa-balancing tiering --stride 4096 \\\n    --policy preferred-many:fast --policy preferred-many:fast+balancing\n\n  \
                  # A/B: the same scenario on two kernels, then the compare table\n  \
                  tierbench vm --host qemu-dram-cxl --kernel 6.12 --kernel ~/linux/arch/x86/boot/bzImage \\\n    \
                  -- run --scenario promote-hot\n\n  \
                  # CXL memory through the kernel's CXL and DAX drivers (QEMU 8.0+): the guest\n  \
                  # creates the region, kmem onlines it as node 1; cxl.json says how\n  \
                  tierbench vm --host qemu-cxl-type3 --kernel 6.12 -- run --scenario promote-hot"
)]
pub struct VmArgs {
    /// Host profile: a name (qemu-dram-cxl; `tierbench hosts` lists them) or a path
    #[arg(
        long,
        long_help = "Host profile: a name (`tierbench hosts` lists them) or a path. \
                     qemu-dram-cxl, qemu-2socket-cxl and qemu-4node-3tier describe their slow \
                     nodes with NUMA + HMAT; qemu-cxl-type3 reaches its slow memory through a \
                     CXL type-3 device the guest onlines with the kernel's CXL and DAX drivers \
                     (QEMU 8.0 or newer); qemu-cpuless-no-hmat trips the tier check."
    )]
    pub host: String,

    /// Kernel: 6.1, 6.12, latest (from scripts/fetch-kernel's cache) or a path; repeat for an A/B
    #[arg(
        long,
        required = true,
        value_name = "KERNEL",
        long_help = "Kernel to boot: a Debian series (6.1, 6.12, latest: the newest version of it                      that scripts/fetch-kernel unpacked into $TIERBENCH_CACHE, default                      ~/.cache/tierbench) or a path to a vmlinuz or a bzImage you built. Give it                      more than once for an A/B: each kernel boots in turn with the same command,                      its results go to OUT/<kernel>/, and after the last one the `compare` table                      across kernels is printed and kept as OUT/compare.txt and OUT/compare.md."
    )]
    pub kernel: Vec<crate::vm::kernel::KernelSource>,

    /// Accelerator: auto takes KVM only after a KVM guest has booted here
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: crate::vm::qemu::Accel,

    /// Longest the guest may run before it is killed (e.g. 300s, 10m)
    #[arg(long, default_value = "600s", value_parser = duration_arg)]
    pub timeout: Duration,

    /// Put a host program into the guest, with the shared libraries it loads (repeatable)
    #[arg(
        long,
        value_name = "PROGRAM",
        long_help = "Put a program of this machine into the guest at the same path (a name is \
                     looked up in PATH), with every shared library it loads and the dynamic \
                     loader, as the host's loader resolves them (ldd): the programs `run -- \
                     COMMAND` and its --server start inside. Repeat for each, e.g. --carry \
                     redis-server --carry redis-benchmark --carry sh. The guest brings up \
                     loopback, so a server and its client talk over 127.0.0.1."
    )]
    pub carry: Vec<String>,

    /// After the command, run this tierbench command in the same boot (repeatable)
    #[arg(
        long,
        value_name = "COMMAND",
        long_help = "Once the command after `--` has ended, however it ended, run this \
                     tierbench command in the same guest, e.g. --after 'knobs restore' --after \
                     probe: what a killed run left, and what a restore put back, seen by the \
                     same kernel. Words are split as a shell splits them, nothing expanded. \
                     Each one's output goes to after-N.txt (N from 1) with its exit code on \
                     the last line. Repeat for several, run in order."
    )]
    pub after: Vec<String>,

    /// Results directory (the guest's files, console.log, vm.json)
    #[arg(
        long,
        short = 'o',
        long_help = "Directory for the results: what the guest command wrote (summary.csv, \
                     timeseries.csv, system.json, stdout.txt, stderr.txt), \
                     guest-topology.json, expectations.txt, cxl.json (CXL profiles: the \
                     region and node made), the guest console log and vm.json (accelerator, \
                     QEMU command line, timings). Default: tierbench-results/vm-<UTC time>-<profile>."
    )]
    pub out: Option<PathBuf>,

    /// Empty the results directory first if it holds files (by default such a -o is refused)
    #[arg(long)]
    pub replace: bool,

    /// Fewer messages on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Boot again (up to N times) when the kernel dies or hangs before init runs
    #[arg(
        long,
        default_value_t = 1,
        long_help = "Boot again, up to N times, when the guest kernel dies or hangs (until --timeout) before tierbench's init \
                     has reported anything (an early-boot or emulator fault, not the experiment). \
                     Every failed boot is printed and kept in vm.json with its console log."
    )]
    pub boot_retries: u32,

    /// Test hook: the guest's init exits at once, so its kernel panics
    #[arg(long, hide = true)]
    pub crash_init_for_test: bool,

    /// Test hook: a CXL guest sees the hypervisor bit (its kernel then refuses the region)
    #[arg(long, hide = true)]
    pub hypervisor_bit_for_test: bool,

    /// The tierbench command to run inside, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub inner: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BwArgs {
    /// Kernel: read, write, write-nt, copy, triad, or mix:R:W (default read; with --sweep, read and triad)
    #[arg(long)]
    pub kernel: Option<crate::workload::bandwidth::BwKernel>,
    /// Working set: all arrays of all threads together
    #[arg(long, default_value = "1G", value_parser = size_arg)]
    pub size: u64,
    /// Worker threads, one per CPU of the CPU node
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Allow more threads than the node has CPUs, up to 4 per CPU
    #[arg(long)]
    pub oversubscribe: bool,
    /// Node whose CPUs run the workers (default: the first with CPUs)
    #[arg(long)]
    pub cpu_node: Option<u32>,
    /// Node the buffer is bound to (default: the CPU node)
    #[arg(long)]
    pub mem_node: Option<u32>,
    /// Page size: 4k, thp, 2m, 1g
    #[arg(long, default_value = "thp")]
    pub page_size: PageKind,
    /// How long to measure
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,

    /// Bandwidth expansion: sweep fast:slow weighted-interleave ratios
    #[arg(
        long,
        help_heading = "Sweep",
        conflicts_with_all = ["mem_node", "json"],
        long_help = "The bandwidth expansion sweep: the kernel's bandwidth from the CPU node \
                     over a buffer spread across the fast and slow tiers, at each of --ratios \
                     (weighted interleave, MPOL_WEIGHTED_INTERLEAVE; the weights are set for \
                     the point and put back after, so it needs root), read and triad unless \
                     --kernel names one. Each point's pages are counted by node and checked \
                     against its weights. Prints the table and the best ratio per kernel with \
                     its gain over fast only; writes sweep.csv (row by row), sweep.svg and \
                     sweep.png and system.json to -o. On an emulated machine the placement is \
                     real and the bandwidths are the host's: they are marked not comparable."
    )]
    pub sweep: bool,

    /// The sweep's FAST:SLOW ratios (1:0 fast only, 0:1 slow only, auto: the kernel's)
    #[arg(
        long,
        help_heading = "Sweep",
        default_value = crate::workload::sweep::DEFAULT_RATIOS,
        value_parser = crate::workload::sweep::parse_ratios,
        requires = "sweep"
    )]
    pub ratios: std::vec::Vec<crate::workload::sweep::Ratio>,

    /// The sweep's results directory (default tierbench-results/sweep-<UTC time>)
    #[arg(long, short = 'o', help_heading = "Sweep", requires = "sweep")]
    pub out: Option<PathBuf>,

    /// Empty the sweep's results directory first if it holds files
    #[arg(long, help_heading = "Sweep", requires = "sweep")]
    pub replace: bool,
}

/// The loaded-latency curve's options, shared by `latency` and `matrix`.
#[derive(Debug, Clone, Args)]
pub struct CurveArgs {
    /// Sweep the loaded-latency curve over --delays, per memory node
    #[arg(long)]
    pub curve: bool,
    /// The curve's injection delays, increasing (spin steps per cache line moved)
    #[arg(
        long,
        default_value = "default",
        allow_hyphen_values = true,
        long_help = "The curve's injection delays, strictly increasing whole numbers: after every \
                     cache line of each array it moves, a load thread spins this many steps \
                     (about one CPU cycle each, as MLC's delay); 0 runs it flat out. Each point \
                     records the delay as time too (delay_ns: the steps times a step's cost \
                     measured on the load CPUs). `default` runs flat out first, then the delays \
                     that ask for 60%, 45%, 35%, 25%, ... down to 0.2% of the flat-out rate (a \
                     line per delay_ns), stopping once two points in a row have a median latency \
                     within 2% of the idle one; a list given here is swept whole."
    )]
    pub delays: crate::workload::curve::Delays,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Load-to-use latency by pointer chase: every cache-line slot of the buffer \
                  points to the next of one random cycle, so each load waits for the one before \
                  (multichase's method). The chase is timed in samples; the mean, the best \
                  sample (multichase's statistic) and the median are printed.\n\n\
                  With --load-threads, bandwidth threads on the CPU node's other CPUs read the \
                  same memory node while the chase runs (one loaded-latency point). With \
                  --curve, the whole loaded-latency curve (as MLC's --loaded_latency): for each \
                  memory node (CPU-less ones included, or only --mem-node), the chase alone, \
                  then beside the load at each injection delay, from flat out to so light that \
                  the latency is the idle one again. Each point records the load's delivered MB/s \
                  and the chase's best and median ns.",
    after_help = "Examples:\n  \
                  tierbench latency --mem-node 1\n  \
                  tierbench latency --curve -o results/curve\n  \
                  tierbench latency --curve --delays 0,200,2000 --duration 500ms --json"
)]
pub struct LatencyArgs {
    /// Working set of the chase [default: 4 x the last-level cache, 256M at least]
    #[arg(long, value_parser = size_arg)]
    pub size: Option<u64>,
    /// Bytes between slots (64 = one cache line)
    #[arg(long, default_value = "64", value_parser = size_arg)]
    pub stride: u64,
    /// Randomisation window (TLB reach modelled), e.g. 4K, 2M, or the size for fully random
    #[arg(long, default_value = "1G", value_parser = size_arg)]
    pub window: u64,
    /// Independent chains (memory-level parallelism), 1 to 8
    #[arg(long, default_value_t = 1)]
    pub chains: usize,
    /// The chase's random cycle: `multichase` (its draw, the default) or a seed
    #[arg(
        long,
        value_name = "multichase|N",
        default_value_t = crate::workload::chase::DEFAULT_DRAW,
        long_help = "Which random cycle the chase walks, and its pointers' offsets in their \
                     stride. `multichase` (the default) draws exactly the cycle multichase \
                     draws for the same size, stride and window (glibc's random_r seeded as \
                     multichase seeds it, its permutation and window order), so the two tools \
                     walk the same cycle and a comparison compares the tools. A number draws \
                     another cycle from tierbench's generator. Which cycle is drawn, and \
                     which frames a run is given, move the result: on a shared KVM guest one \
                     256 MiB chase at stride 256 in 256 KiB windows read between 107 and 138 \
                     ns over six seeds and three runs of each, multichase (patched to take a \
                     seed) between 108 and 130; to speak of a machine rather than of one \
                     cycle, run several seeds."
    )]
    pub seed: crate::workload::chase::Draw,
    /// Bandwidth threads beside the chase, on the CPU node's other CPUs (loaded latency)
    #[arg(
        long,
        long_help = "Bandwidth threads beside the chase, on the CPU node's other CPUs, reading \
                     the same memory node (a loaded-latency point). Default: none; with --curve, \
                     every CPU of the node but the chase's."
    )]
    pub load_threads: Option<usize>,
    /// Kernel of the load threads: read, write, write-nt, copy, triad, mix:R:W
    #[arg(long, default_value = "read")]
    pub load_kernel: crate::workload::bandwidth::BwKernel,
    /// Working set of the load threads together
    #[arg(long, default_value = "512M", value_parser = size_arg)]
    pub load_size: u64,
    /// Injection delay of the load threads (spin steps per cache line; 0 = flat out)
    #[arg(long, default_value_t = 0)]
    pub delay: u32,
    /// Node whose CPU runs the chase (default: the first with CPUs)
    #[arg(long)]
    pub cpu_node: Option<u32>,
    /// Node the buffer is bound to (default: the CPU node; with --curve, every memory node)
    #[arg(long)]
    pub mem_node: Option<u32>,
    /// Page size: 4k, thp, 2m, 1g [default: 4k; thp with --curve]
    #[arg(
        long,
        long_help = "Page size of the chase and the load: 4k, thp, 2m, 1g. Default 4k (page walks \
                     included, as multichase); with --curve thp, so the curve shows the memory \
                     and not the TLB."
    )]
    pub page_size: Option<PageKind>,
    /// How long to measure (each point of a curve) [default: 3s, 1s with --curve]
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Length of one timed sample of the chase
    #[arg(long, default_value = "100ms", value_parser = duration_arg)]
    pub sample: Duration,
    #[command(flatten, next_help_heading = "Curve")]
    pub sweep: CurveArgs,
    /// Print the result as JSON
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// With --curve: write curve.csv (a row per point as measured), system.json and the chart here
    #[arg(long, short = 'o', help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Empty the -o directory first if it holds files (by default such a -o is refused)
    #[arg(long, help_heading = "Output")]
    pub replace: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Idle load-to-use latency (pointer chase from the first CPU of the CPU node) \
                  and bandwidth (read kernel, one thread per CPU of the CPU node) from every node \
                  with CPUs to every node with memory, CPU-less nodes included, as Intel MLC's \
                  --latency_matrix and --bandwidth_matrix do, then per cell the bandwidth of \
                  each --mixes kernel (MLC's --peak_injection_bandwidth rows). Cells are measured \
                  one after the other, each with its own buffer bound to the memory node. With \
                  --curve, also the loaded-latency curve of every memory node from the first CPU \
                  node (see `tierbench latency --help`), so one command characterises a \
                  machine into one results directory.",
    after_help = "How bytes are counted (10^6 bytes per second, as MLC and STREAM):\n  \
                  read     every byte loaded\n  \
                  mix:R:W  per R+W cache lines, R read and W written with ordinary\n           \
                  stores: bytes loaded + bytes stored (the read-for-ownership\n           \
                  of each written line is not counted)\n  \
                  triad    a = b + s*c: two arrays read, one written with non-temporal\n           \
                  stores (no read-for-ownership): 3 x the array\n  \
                  copy     one read, one written non-temporally: 2 x the array\n\n\
                  Example:\n  tierbench matrix --curve -o results/this-machine"
)]
pub struct MatrixArgs {
    /// Working set of each latency cell [default: 4 x the last-level cache, 256M at least]
    #[arg(long, value_parser = size_arg, help_heading = "Matrix")]
    pub latency_size: Option<u64>,
    /// Working set of each bandwidth cell (all threads together)
    #[arg(long, default_value = "512M", value_parser = size_arg, help_heading = "Matrix")]
    pub bw_size: u64,
    /// Bandwidth threads per CPU node (default: all its CPUs)
    #[arg(long, help_heading = "Matrix")]
    pub threads: Option<usize>,
    /// Page size: 4k, thp, 2m, 1g
    #[arg(long, default_value = "thp", help_heading = "Matrix")]
    pub page_size: PageKind,
    /// How long each cell measures (each kernel, and each point of a curve)
    #[arg(long, default_value = "2s", value_parser = duration_arg, help_heading = "Matrix")]
    pub duration: Duration,
    /// Bandwidth kernels per cell: read, mix:R:W, triad, copy, write, write-nt
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "read,mix:3:1,mix:2:1,mix:1:1,triad",
        help_heading = "Matrix"
    )]
    pub mixes: Vec<crate::workload::bandwidth::BwKernel>,
    #[command(flatten, next_help_heading = "Matrix")]
    pub sweep: CurveArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "table", help_heading = "Output")]
    pub format: Format,
    /// Also write matrix.csv, mixes.csv (curve.csv), system.json and charts here, rows as measured
    #[arg(long, short = 'o', help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Empty the -o directory first if it holds files (by default such a -o is refused)
    #[arg(long, help_heading = "Output")]
    pub replace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConformFormat {
    /// A table of every case after the last one
    Table,
    /// kselftest-style TAP 13: the plan, then one test point per case as it finishes
    Tap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// Plain text within 72 columns, for a patch changelog
    Text,
    /// Markdown tables
    Markdown,
    /// One JSON document: every cell's mean, sd, relative sd, n, change and p-value
    Json,
    /// `lava-test-case NAME --result pass|fail|skip --measurement X --units U` lines
    Lava,
    /// mmtests' compare-kernels layout: Amean/Hmean/Stddev lines, changes positive when
    /// better, `*` where significant, then the vmstat counters as Ops lines
    Mmtests,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Changelog table from results directories of `tierbench run`. One directory: \
                  its variants side by side, the first as the baseline. Several: for each \
                  variant they share, one column per run (e.g. Debian 6.1 vs 6.12 from the \
                  emulated machine, or a base vs a patched bzImage), the first as the baseline. \
                  Each metric is the mean over iterations with its relative standard deviation, \
                  the change against the baseline, and * where Welch's t-test gives p < 0.05; \
                  then the vmstat rows. Runs of different scenarios, host profiles, node shapes \
                  or memory sizes are refused unless --force.\n\n\
                  Characterisation directories (`matrix -o`, `latency --curve -o`, the \
                  latency-bandwidth scenario): every figure of the first (latency and bandwidth \
                  per cell and mix, each curve point) beside the others', with its change.",
    after_help = "Example:\n  tierbench compare results/reference/6.1/promote-hot results/reference/6.12/promote-hot"
)]
pub struct CompareArgs {
    /// Results directories (summary.csv + system.json)
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: CompareFormat,
    /// Compare runs from different hosts or scenarios anyway
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Results directories: runs (timeseries.csv) or characterisations (curve.csv); several share the chart
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Output file stem: writes STEM.svg and STEM.png [default: DIR/timeline or DIR/curve]
    #[arg(long, short = 'o', value_name = "STEM")]
    pub out: Option<PathBuf>,
}

fn modes_arg(s: &str) -> Result<Vec<u8>, String> {
    s.split(',')
        .map(|m| {
            m.trim()
                .parse::<u8>()
                .map_err(|_| format!("{m:?} is not a numa_balancing mode (1, 2 or 3)"))
        })
        .collect()
}

#[derive(Debug, Args)]
#[command(
    long_about = "Checks where NUMA balancing moves pages against the rule the kernel \
                  merged in 6.10 (a page moves to the executing node only when that node is in \
                  the policy's mask) and the seed patch's first version (also when both nodes \
                  are outside it). The cases are derived from the rule's inputs: policy \
                  (PREFERRED_MANY|NUMA_BALANCING, BIND|NUMA_BALANCING, the default policy as a \
                  control) x numa_balancing mode x executing node in the mask or not x page node \
                  in the mask or not x page already on the executing node or not x the page \
                  node's tier (top, first and second lower) x the tiers the mask is made of. Each \
                  class is given real nodes of this machine; the ones it cannot express are \
                  listed at the end with what they need (--list shows all without running). A \
                  case first-touches a buffer on the page node, switches the policy in place, \
                  reads it from a CPU of the executing node for --period and counts where the \
                  pages are (move_pages). Then, in tiering mode, the promotion rate limit: a hot \
                  set larger than --rate-limit admits is read under that limit and again with it \
                  lifted; promoted pages per 500 ms (pgpromote_success) must stay within the \
                  limit plus one one-second window, and the lifted run must promote more \
                  (rate-limit.csv). Needs root; on a workstation run it on an emulated machine: \
                  `tierbench vm --host qemu-4node-3tier --kernel 6.12 -- conform`. Exit codes \
                  (kselftest): 0 every supported case matches the merged rule and the rate limit \
                  held, 1 some do not, 2 bad options, 4 skipped (no class where a page can move \
                  is expressible, or no root)."
)]
pub struct ConformArgs {
    /// numa_balancing modes to test, comma-separated
    #[arg(long, default_value = "2,3", value_parser = modes_arg)]
    pub modes: std::vec::Vec<u8>,

    /// Buffer size per case
    #[arg(long, default_value = "2M", value_parser = size_arg)]
    pub size: u64,

    /// How long each case reads its buffer
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub period: Duration,

    /// Results directory (conform.csv)
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,

    /// Empty the results directory first if it holds files (by default such a -o is refused)
    #[arg(long)]
    pub replace: bool,

    /// What goes to stdout: a table at the end, or TAP as the cases finish
    #[arg(long, value_enum, default_value = "table")]
    pub format: ConformFormat,

    /// No per-case lines on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Print the cases this machine would run, and the classes it cannot express, then stop
    #[arg(long)]
    pub list: bool,

    /// Promotion rate limit (MB/s) the rate-limit check sets before lifting it
    #[arg(long, default_value_t = 4, value_name = "MBPS", value_parser = clap::value_parser!(u64).range(1..=65535))]
    pub rate_limit: u64,

    /// Hot set of the rate-limit check: more than the limit admits in its period
    #[arg(long, default_value = "64M", value_parser = size_arg)]
    pub rate_limit_size: u64,

    /// How long each run of the rate-limit check reads its hot set
    #[arg(long, default_value = "6s", value_parser = duration_arg)]
    pub rate_limit_period: Duration,

    /// Leave out the rate-limit check
    #[arg(long)]
    pub no_rate_limit: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_errors_are_one_line_with_control_characters_escaped() {
        let e =
            try_parse_from(["tierbench", "run", "--policy", "bind:0\u{1b}[31m\nx"]).unwrap_err();
        let line = one_line_usage_error(&e.render().to_string());
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(
            line.starts_with("tierbench: error: invalid value"),
            "{line}"
        );
        let e = try_parse_from(["tierbench", "run", "--sizee", "1M"]).unwrap_err();
        let line = one_line_usage_error(&e.render().to_string());
        assert!(
            line.contains("'--sizee'") && line.contains("tip:"),
            "{line}"
        );
        assert!(!line.contains("Usage:"), "{line}");
    }

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn scenario_refuses_the_options_a_file_sets_and_only_those() {
        for (args, ok) in [
            (vec!["--duration", "1s"], false),
            (vec!["--policy", "local"], false),
            (vec!["--numab", "scan_delay_ms=0"], false),
            (vec!["--iterations", "2"], true),
            (vec!["-o", "x", "-q", "--force", "--host", "h"], true),
        ] {
            let argv = ["tierbench", "run", "--scenario", "s"]
                .into_iter()
                .chain(args.clone());
            assert_eq!(try_parse_from(argv).is_ok(), ok, "{args:?}");
        }
    }

    #[test]
    fn run_defaults_and_variants_parse() {
        let cli = try_parse_from([
            "tierbench",
            "run",
            "--policy",
            "preferred-many:fast",
            "--policy",
            "preferred-many:fast+balancing",
            "--first-touch",
            "slow",
            "--numa-balancing",
            "2",
            "--numab",
            "scan_delay_ms=0",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.policies.len(), 2);
        assert_eq!(a.size, SizeSpec::Bytes(256 << 20));
        assert_eq!(a.numa_balancing, Some(BalancingMode::Tiering));
        assert_eq!(a.numab, vec![("scan_delay_ms".into(), "0".into())]);
    }
}
