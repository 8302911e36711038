//! Scenario files (`bench/scenarios/*.toml`): a whole experiment in one
//! file — what it needs from the host, the buffer and its placement, the
//! workload, the knobs, the timing and iterations, and the variant axis
//! compared inside one run. A scenario becomes the same [`RunArgs`] the
//! command line builds, so the two cannot drift; the file's key names are
//! used in every message (`workload.hot_fraction`, not `--hot-fraction`).
//!
//! Unknown keys, missing fields and bad values are errors that name the
//! file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buffer::PageKind;
use crate::cli::{BalancingMode, OnOff, RunArgs, ThpMode};
use crate::error::InputError;
use crate::mempolicy::{NodeSpec, PolicySpec};
use crate::run::{parse_duration, parse_size, PinUnit};
use crate::topology::Topology;
use crate::workload::pattern::{Mix, PatternKind};

/// Where scenarios run inside an emulated machine (carried by `tierbench vm`).
pub const GUEST_DIR: &str = "/tierbench/scenarios";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A `tierbench run`: variants x iterations.
    Run,
    /// The node matrices (`tierbench matrix`).
    Matrix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub description: String,
    pub kind: Kind,
    #[serde(default)]
    pub requires: Requires,
    #[serde(default)]
    pub buffer: BufferSection,
    #[serde(default)]
    pub workload: WorkloadSection,
    #[serde(default)]
    pub knobs: KnobSection,
    #[serde(default)]
    pub timing: TimingSection,
    #[serde(default, rename = "variant")]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub matrix: MatrixSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// The kernel must report a slow tier (or a CPU-less node).
    #[serde(default)]
    pub slow_tier: bool,
    /// At least this many nodes with CPUs.
    #[serde(default)]
    pub cpu_nodes: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// `64M`, or relative to a tier: `75% of fast`, `50% of slow`.
    pub size: Option<String>,
    pub page_size: Option<String>,
    pub first_touch: Option<String>,
    #[serde(rename = "move")]
    pub move_pages: Option<bool>,
    pub fill_fast_leave: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
    pub pattern: Option<PatternKind>,
    pub hot_fraction: Option<f64>,
    pub hot_share: Option<f64>,
    pub zipf_theta: Option<f64>,
    pub stride: Option<usize>,
    pub mix: Option<String>,
    pub threads: Option<usize>,
    pub worker_node: Option<u32>,
    pub pin: Option<PinUnit>,
    pub move_hot_at: Option<String>,
    pub latency_every: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobSection {
    pub numa_balancing: Option<String>,
    pub demotion: Option<String>,
    pub promote_rate_limit: Option<u64>,
    pub thp: Option<String>,
    #[serde(default)]
    pub numab: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingSection {
    pub warmup: Option<String>,
    pub duration: Option<String>,
    pub interval: Option<String>,
    pub iterations: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub policy: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSection {
    pub latency_size: Option<String>,
    pub bw_size: Option<String>,
    pub page_size: Option<String>,
    pub duration: Option<String>,
}

/// A scenario file, loaded and checked as far as it can be without a
/// machine.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    pub file: File,
}

/// What the system record keeps of a scenario.
pub use crate::report::schema::ScenarioRecord as Record;

fn err(path: &Path, msg: impl std::fmt::Display) -> InputError {
    InputError(format!("scenario {}: {msg}", path.display()))
}

/// A path, or a name from `bench/scenarios/`.
pub fn resolve_path(spec: &str) -> PathBuf {
    crate::named::resolve(spec, "bench/scenarios")
}

impl Scenario {
    pub fn load(spec: &str) -> Result<Scenario, InputError> {
        let path = resolve_path(spec);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(
                &path,
                format!("{e} (give a path, or a name from bench/scenarios/: promote-hot, fill-fast, latency-bandwidth)"),
            )
        })?;
        Self::parse(&path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Scenario, InputError> {
        let file: File = toml::from_str(&text).map_err(|e| {
            // toml's message spans lines (a caret under the key): keep it
            // to one.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^'))
                .collect();
            err(path, msg.join(": "))
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s = Scenario {
            name,
            path: path.to_path_buf(),
            text,
            file,
        };
        s.check_static()?;
        Ok(s)
    }

    /// Checks that need no machine: value spellings and combinations.
    fn check_static(&self) -> Result<(), InputError> {
        let f = &self.file;
        let p = &self.path;
        match f.kind {
            Kind::Run if f.variants.is_empty() => {
                return Err(err(
                    p,
                    "no [[variant]]: add at least one, e.g. [[variant]] policy = \"preferred-many:fast\"",
                ))
            }
            Kind::Matrix if !f.variants.is_empty() => {
                return Err(err(
                    p,
                    "kind = \"matrix\" takes no [[variant]]: the matrix covers every node pair",
                ))
            }
            _ => {}
        }
        for (i, v) in f.variants.iter().enumerate() {
            v.policy
                .parse::<PolicySpec>()
                .map_err(|e| err(p, format!("variant[{}].policy {:?}: {e}", i + 1, v.policy)))?;
        }
        if f.buffer.fill_fast_leave.is_some() && f.knobs.demotion.as_deref() != Some("on") {
            return Err(err(
                p,
                "buffer.fill_fast_leave without knobs.demotion = \"on\": with the fast tier full \
                 and demotion off, kswapd cannot make room and nothing is promoted; set \
                 knobs.demotion = \"on\"",
            ));
        }
        Ok(())
    }

    /// Checks what the scenario needs from this machine.
    pub fn check_host(&self, topo: &Topology) -> Result<(), InputError> {
        let r = &self.file.requires;
        let how = format!(
            "run it on an emulated machine: tierbench vm --host qemu-dram-cxl --kernel K -- run \
             --scenario {}",
            self.name
        );
        if r.slow_tier && !topo.has_slow_tier() {
            return Err(err(
                &self.path,
                format!("requires.slow_tier: this machine has no slow memory tier; {how}"),
            ));
        }
        let cpu_nodes = topo.nodes.iter().filter(|n| !n.is_cpuless()).count();
        if let Some(n) = r.cpu_nodes.filter(|&n| cpu_nodes < n) {
            return Err(err(
                &self.path,
                format!("requires.cpu_nodes = {n}: this machine has {cpu_nodes} node(s) with CPUs"),
            ));
        }
        Ok(())
    }

    /// Sets `args` from the file; what the file leaves out keeps the
    /// command line's defaults.
    pub fn apply(&self, args: &mut RunArgs, topo: &Topology) -> Result<(), InputError> {
        let f = &self.file;
        let p = &self.path;
        let b = &f.buffer;
        if let Some(s) = &b.size {
            args.size = self.size(s, topo)?;
        }
        if let Some(s) = &b.page_size {
            args.page_size = s
                .parse::<PageKind>()
                .map_err(|e| err(p, format!("buffer.page_size: {e}")))?;
        }
        if let Some(s) = &b.first_touch {
            args.first_touch = Some(
                s.parse::<NodeSpec>()
                    .map_err(|e| err(p, format!("buffer.first_touch {s:?}: {e}")))?,
            );
        }
        if let Some(m) = b.move_pages {
            args.move_on_switch = m;
        }
        if let Some(s) = &b.fill_fast_leave {
            args.fill_fast_leave =
                Some(parse_size(s).map_err(|e| err(p, format!("buffer.fill_fast_leave: {e}")))?);
        }
        let w = &f.workload;
        if let Some(k) = w.pattern {
            args.pattern = k;
        }
        macro_rules! copy {
            ($($field:ident),*) => { $( if let Some(v) = w.$field { args.$field = v; } )* };
        }
        copy!(
            hot_fraction,
            hot_share,
            zipf_theta,
            stride,
            threads,
            pin,
            latency_every
        );
        if let Some(n) = w.worker_node {
            args.worker_node = Some(n);
        }
        if let Some(m) = &w.mix {
            args.mix = m
                .parse::<Mix>()
                .map_err(|e| err(p, format!("workload.mix: {e}")))?;
        }
        if let Some(t) = &w.move_hot_at {
            args.move_hot_at = Some(self.duration("workload.move_hot_at", t)?);
        }
        let k = &f.knobs;
        if let Some(m) = &k.numa_balancing {
            args.numa_balancing = Some(value_enum::<BalancingMode>(p, "knobs.numa_balancing", m)?);
        }
        if let Some(d) = &k.demotion {
            args.demotion = Some(value_enum::<OnOff>(p, "knobs.demotion", d)?);
        }
        if let Some(r) = k.promote_rate_limit {
            crate::knobs::Knob::PromoteRateLimit
                .validate(&r.to_string())
                .map_err(|e| err(p, format!("knobs.promote_rate_limit: {e}")))?;
            args.promote_rate_limit = Some(r);
        }
        if let Some(t) = &k.thp {
            args.thp = Some(value_enum::<ThpMode>(p, "knobs.thp", t)?);
        }
        for (name, v) in &k.numab {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(err(
                        p,
                        format!("knobs.numab.{name} = {other}: give a number or a string"),
                    ))
                }
            };
            crate::knobs::Knob::numab(name)
                .and_then(|knob| knob.validate(&v))
                .map_err(|e| err(p, format!("knobs.numab.{name}: {e}")))?;
            args.numab.push((name.clone(), v));
        }
        let t = &f.timing;
        if let Some(s) = &t.warmup {
            args.warmup = self.duration("timing.warmup", s)?;
        }
        if let Some(s) = &t.duration {
            args.duration = self.duration("timing.duration", s)?;
        }
        if let Some(s) = &t.interval {
            args.interval = self.duration("timing.interval", s)?;
        }
        // --iterations on the command line wins over the file.
        if args.iterations.is_none() {
            args.iterations = t.iterations;
        }
        args.policies = f
            .variants
            .iter()
            .map(|v| v.policy.parse().expect("checked when loaded"))
            .collect();
        Ok(())
    }

    /// `64M`, or `75% of fast` / `50% of slow` (of the tier's total memory).
    fn size(&self, s: &str, topo: &Topology) -> Result<u64, InputError> {
        let Some((pct, tier)) = s.split_once("% of ") else {
            return parse_size(s).map_err(|e| err(&self.path, format!("buffer.size: {e}")));
        };
        let pct: f64 = pct.trim().parse().map_err(|_| {
            err(
                &self.path,
                format!("buffer.size {s:?}: write e.g. \"75% of fast\" or \"64M\""),
            )
        })?;
        let nodes = match tier.trim() {
            "fast" => &topo.roles.fast,
            "slow" => &topo.roles.slow,
            t => {
                return Err(err(
                    &self.path,
                    format!("buffer.size {s:?}: unknown tier {t:?}, use fast or slow"),
                ))
            }
        };
        let total: u64 = nodes
            .iter()
            .filter_map(|n| topo.node(n)?.mem_total_kib)
            .sum::<u64>()
            * 1024;
        if total == 0 || !(pct > 0.0 && pct <= 100.0) {
            return Err(err(
                &self.path,
                format!("buffer.size {s:?}: the {} tier has no memory here, or the share is outside (0, 100]", tier.trim()),
            ));
        }
        Ok((total as f64 * pct / 100.0) as u64)
    }

    fn duration(&self, key: &str, s: &str) -> Result<Duration, InputError> {
        parse_duration(s).map_err(|e| err(&self.path, format!("{key}: {e}")))
    }

    /// How the plan's messages name an option: by this file's key.
    pub fn key_for(&self, flag: &str) -> String {
        let key = match flag {
            "size" | "first-touch" | "fill-fast-leave" | "page-size" => {
                format!("buffer.{}", flag.replace('-', "_"))
            }
            "duration" | "interval" | "iterations" | "warmup" => format!("timing.{flag}"),
            "policy" => "variant.policy".into(),
            other => format!("workload.{}", other.replace('-', "_")),
        };
        format!("scenario {}: {key}", self.path.display())
    }

    pub fn record(&self) -> Record {
        Record {
            name: self.name.clone(),
            path: self.path.display().to_string(),
            description: self.file.description.clone(),
            text: self.text.clone(),
        }
    }

    pub fn matrix_args(&self) -> Result<crate::cli::MatrixArgs, InputError> {
        let m = &self.file.matrix;
        let p = &self.path;
        let size = |key: &str, v: &Option<String>, default: u64| -> Result<u64, InputError> {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| err(p, format!("matrix.{key}: {e}"))))
                .unwrap_or(Ok(default))
        };
        Ok(crate::cli::MatrixArgs {
            latency_size: size("latency_size", &m.latency_size, 256 << 20)?,
            bw_size: size("bw_size", &m.bw_size, 512 << 20)?,
            threads: None,
            page_size: match &m.page_size {
                Some(s) => s
                    .parse()
                    .map_err(|e| err(p, format!("matrix.page_size: {e}")))?,
                None => PageKind::Thp,
            },
            duration: match &m.duration {
                Some(s) => self.duration("matrix.duration", s)?,
                None => Duration::from_secs(2),
            },
            format: crate::cli::Format::Table,
            out: None,
        })
    }
}

fn value_enum<T: clap::ValueEnum>(path: &Path, key: &str, v: &str) -> Result<T, InputError> {
    T::from_str(v, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        err(
            path,
            format!("{key} = {v:?}: use one of {}", names.join(", ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(Path::new("x.toml"), text.to_string()).map_err(|e| e.to_string())
    }

    const OK: &str = "description = \"d\"\nkind = \"run\"\n[[variant]]\npolicy = \"default\"\n";

    #[test]
    fn shipped_scenarios_load() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(p.to_str().unwrap()).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3);
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_fix() {
        assert!(parse(OK).is_ok());
        let cases = [
            (
                format!("{OK}[workload]\nhot_fractoin = 0.1\n"),
                "unknown field `hot_fractoin`",
            ),
            (
                "kind = \"run\"\n[[variant]]\npolicy = \"default\"\n".into(),
                "missing field `description`",
            ),
            (
                "description = \"d\"\nkind = \"run\"\n".into(),
                "no [[variant]]",
            ),
            (
                format!("{OK}[[variant]]\npolicy = \"perferred:0\"\n"),
                "variant[2].policy",
            ),
            (
                format!("{OK}[workload]\npattern = \"spiral\"\n"),
                "unknown variant `spiral`",
            ),
            (
                format!("{OK}[buffer]\nfill_fast_leave = \"32M\"\n"),
                "knobs.demotion",
            ),
            (
                "description = \"d\"\nkind = \"matrix\"\n[[variant]]\npolicy = \"default\"\n"
                    .into(),
                "takes no [[variant]]",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.contains("x.toml") && e.contains(needle), "{needle}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
