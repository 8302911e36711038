//! Scenario files (`bench/scenarios/*.toml`): a whole experiment in one
//! file — what it needs from the host, the buffer and its placement, the
//! workload, the knobs, the timing and iterations, and the variant axis
//! compared inside one run.
//!
//! A file is not a second definition of the options: it is lowered into the
//! command line of the subcommand it runs ([`Scenario::lower`]). A section
//! is a help heading of that subcommand (`[buffer]` holds the options under
//! "Buffer"), a key is the option's long name in snake case (`hot_fraction`
//! for `--hot-fraction`), and each value goes through the option's own parser,
//! so flags, keys, parsers, defaults and help exist once, in `cli`. The
//! file's key names are used in every message (`workload.hot_fraction`, not
//! `--hot-fraction`).
//!
//! Unknown keys, missing fields and bad values are errors that name the
//! file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::InputError;
use crate::topology::Topology;

/// The help heading of the option each `[[variant]]` entry sets
/// (`--policy`).
pub const VARIANTS: &str = "Variants";

/// Where scenarios run inside an emulated machine (carried by `tierbench vm`).
pub const GUEST_DIR: &str = "/tierbench/scenarios";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A `tierbench run`: variants x iterations.
    Run,
    /// The node matrices (`tierbench matrix`).
    Matrix,
}

impl Kind {
    /// The subcommand the file lowers into, and its sections: (table name,
    /// help heading).
    pub fn subcommand(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        match self {
            Kind::Run => (
                "run",
                &[
                    ("buffer", "Buffer"),
                    ("workload", "Workload"),
                    ("timing", "Timing"),
                    ("telemetry", "Telemetry"),
                    ("knobs", "Knobs"),
                    ("mechanisms", "Mechanisms"),
                    ("program", "Program"),
                ],
            ),
            Kind::Matrix => ("matrix", &[("matrix", "Matrix")]),
        }
    }
}

/// The file's fixed part; the sections are read against the subcommand.
/// (`deny_unknown_fields` does not mix with `flatten`: an unknown section
/// lands in `sections` and `check_static` refuses it.)
#[derive(Debug, Clone, Deserialize)]
struct Head {
    description: String,
    kind: Kind,
    #[serde(default)]
    requires: Requires,
    #[serde(default, rename = "variant")]
    variants: Vec<toml::Table>,
    /// `--bracket`: the fast and slow bounds added to the variants.
    #[serde(default)]
    bracket: bool,
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
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

/// A scenario file, loaded and checked as far as it can be without a
/// machine.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    pub description: String,
    pub kind: Kind,
    pub requires: Requires,
    variants: Vec<toml::Table>,
    bracket: bool,
    sections: BTreeMap<String, toml::Value>,
}

/// A file lowered into the arguments of its subcommand.
#[derive(Debug, Clone, Default)]
pub struct Lowered {
    /// Options and values, as a command line would give them.
    pub argv: Vec<String>,
    /// Long option name -> the file's key that set it (`hot-fraction` ->
    /// `workload.hot_fraction`).
    pub keys: BTreeMap<String, String>,
    /// `[program] command`: the program and its arguments, after `--`.
    pub command: Vec<String>,
}

/// What the system record keeps of a scenario.
pub use crate::report::schema::ScenarioRecord as Record;

fn err(path: &Path, msg: impl std::fmt::Display) -> InputError {
    InputError::new(format!("scenario {}: {msg}", path.display()))
}

impl Scenario {
    pub fn load(spec: &str) -> Result<Scenario, InputError> {
        let found = crate::named::find(crate::named::Kind::Scenario, spec)
            .map_err(|e| InputError::new(e.to_string()))?;
        // parse names the scenario by the path's stem: the name looked up,
        // for a file found or a built-in copy (`built-in/NAME.toml`).
        Self::parse(&found.path(), found.text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Scenario, InputError> {
        let head: Head = toml::from_str(&text).map_err(|e| {
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
            description: head.description,
            kind: head.kind,
            requires: head.requires,
            variants: head.variants,
            bracket: head.bracket,
            sections: head.sections,
        };
        s.check_static()?;
        Ok(s)
    }

    /// Checks that need neither the machine nor the options: the file's
    /// shape and combinations the options cannot see one by one.
    fn check_static(&self) -> Result<(), InputError> {
        let p = &self.path;
        let (_, sections) = self.kind.subcommand();
        for (name, value) in &self.sections {
            if !sections.iter().any(|(s, _)| s == name) {
                let known: Vec<&str> = sections.iter().map(|(s, _)| *s).collect();
                return Err(err(
                    p,
                    format!(
                        "unknown section [{name}]: a kind = \"{}\" file takes [requires], {}",
                        self.kind_name(),
                        known
                            .iter()
                            .map(|s| format!("[{s}]"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !value.is_table() {
                return Err(err(p, format!("{name} must be a section ([{name}])")));
            }
        }
        match self.kind {
            Kind::Run if self.variants.is_empty() => {
                return Err(err(
                    p,
                    "no [[variant]]: add at least one, e.g. [[variant]] policy = \"preferred-many:fast\"",
                ))
            }
            Kind::Matrix if !self.variants.is_empty() => {
                return Err(err(
                    p,
                    "kind = \"matrix\" takes no [[variant]]: the matrix covers every node pair",
                ))
            }
            _ => {}
        }
        let get = |section: &str, key: &str| -> Option<&toml::Value> {
            self.sections.get(section)?.as_table()?.get(key)
        };
        if get("buffer", "fill_fast_leave").is_some()
            && get("knobs", "demotion").and_then(|v| v.as_str()) != Some("on")
        {
            return Err(err(
                p,
                "buffer.fill_fast_leave without knobs.demotion = \"on\": with the fast tier full \
                 and demotion off, kswapd cannot make room and nothing is promoted; set \
                 knobs.demotion = \"on\"",
            ));
        }
        Ok(())
    }

    fn kind_name(&self) -> &'static str {
        self.kind.subcommand().0
    }

    /// Checks what the scenario needs from this machine.
    pub fn check_host(&self, topo: &Topology) -> Result<(), InputError> {
        let r = &self.requires;
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

    /// Lowers the file into the arguments of `cmd`, the subcommand its kind
    /// names (`run` or `matrix`). Every value goes through the option's own
    /// parser here, so a bad value names the file and the key.
    pub fn lower(&self, cmd: &clap::Command) -> Result<Lowered, InputError> {
        let (_, sections) = self.kind.subcommand();
        let mut out = Lowered::default();
        for (name, heading) in sections {
            let Some(table) = self.sections.get(*name).and_then(|v| v.as_table()) else {
                continue;
            };
            for (key, value) in table {
                self.lower_one(cmd, name, heading, key, value, &mut out)?;
            }
        }
        for (i, v) in self.variants.iter().enumerate() {
            let name = format!("variant[{}]", i + 1);
            let v = self.with_mechanism(&name, v)?;
            for (key, value) in &v {
                self.lower_one(cmd, &name, VARIANTS, key, value, &mut out)?;
            }
        }
        if self.bracket {
            out.argv.push("--bracket".into());
            out.keys.insert("bracket".into(), "bracket".into());
        }
        if !out.command.is_empty() {
            out.argv.push("--".into());
            out.argv.extend(out.command.iter().cloned());
        }
        Ok(out)
    }

    /// A variant's `mechanism = "damon"` joins its policy as `@damon`, the
    /// spelling `--policy` takes.
    fn with_mechanism(&self, name: &str, v: &toml::Table) -> Result<toml::Table, InputError> {
        let mut v = v.clone();
        let Some(m) = v.remove("mechanism") else {
            return Ok(v);
        };
        let m = m.as_str().map(String::from).ok_or_else(|| {
            err(
                &self.path,
                format!("{name}.mechanism = {m}: give a name, e.g. \"damon\""),
            )
        })?;
        let policy = v.get("policy").and_then(|p| p.as_str()).ok_or_else(|| {
            err(
                &self.path,
                format!(
                    "{name}.mechanism = {m:?} needs the policy it starts from: add \
                     policy = \"preferred-many:fast\""
                ),
            )
        })?;
        let joined = format!("{policy}@{m}");
        v.insert("policy".into(), toml::Value::String(joined));
        Ok(v)
    }

    fn lower_one(
        &self,
        cmd: &clap::Command,
        section: &str,
        heading: &str,
        key: &str,
        value: &toml::Value,
        out: &mut Lowered,
    ) -> Result<(), InputError> {
        let p = &self.path;
        let at = format!("{section}.{key}");
        // The program itself has no flag: it goes after `--`, last.
        if heading == "Program" && key == "command" {
            let words = value
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or(None)
                .filter(|w: &Vec<String>| !w.is_empty())
                .ok_or_else(|| {
                    err(
                        p,
                        format!(
                            "{at} = {value}: give the program and its arguments as an \
                                 array of strings, e.g. [\"stress-ng\", \"--vm\", \"1\"]"
                        ),
                    )
                })?;
            out.command = words;
            out.keys.insert("command".into(), key_name(section, key));
            return Ok(());
        }
        let key_of = |a: &clap::Arg| a.get_long().map(|l| l.replace('-', "_"));
        let arg = cmd
            .get_arguments()
            .find(|a| key_of(a).as_deref() == Some(key) && a.get_help_heading() == Some(heading))
            .ok_or_else(|| {
                let known: Vec<String> = cmd
                    .get_arguments()
                    .filter(|a| a.get_help_heading() == Some(heading))
                    .filter_map(key_of)
                    .collect();
                err(
                    p,
                    format!("unknown key {at}: [{section}] takes {}", known.join(", ")),
                )
            })?;
        let long = format!("--{}", arg.get_long().unwrap_or(key));
        let is_flag = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        // A table gives NAME=VALUE entries (knobs.numab), an array one
        // value each; anything else is one value.
        let values: Vec<String> = match value {
            toml::Value::Boolean(b) if is_flag => {
                if *b {
                    out.argv.push(long.clone());
                }
                out.keys
                    .insert(long[2..].to_string(), key_name(section, key));
                return Ok(());
            }
            _ if is_flag => return Err(err(p, format!("{at} = {value}: give true or false"))),
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| {
                    Ok(format!(
                        "{k}={}",
                        scalar(v).ok_or_else(|| bad_value(p, &at, v))?
                    ))
                })
                .collect::<Result<_, InputError>>()?,
            toml::Value::Array(a) => a
                .iter()
                .map(|v| scalar(v).ok_or_else(|| bad_value(p, &at, v)))
                .collect::<Result<_, InputError>>()?,
            v => vec![scalar(v).ok_or_else(|| bad_value(p, &at, v))?],
        };
        for v in values {
            // The option's own parser, alone: the same check a command line
            // gets.
            cmd.clone()
                .no_binary_name(true)
                .try_get_matches_from([long.as_str(), v.as_str()])
                .map_err(|e| err(p, format!("{at} = {v:?}: {}", why(&e, arg))))?;
            out.argv.push(long.clone());
            out.argv.push(v);
        }
        out.keys
            .insert(long[2..].to_string(), key_name(section, key));
        Ok(())
    }

    pub fn record(&self) -> Record {
        Record {
            name: self.name.clone(),
            path: self.path.display().to_string(),
            description: self.description.clone(),
            text: self.text.clone(),
        }
    }

    /// How messages name an option: by this file's key where the file set
    /// it, by its flag where the command line did.
    pub fn namer<'a>(&'a self, lowered: &'a Lowered) -> impl Fn(&str) -> String + 'a {
        move |long: &str| match lowered.keys.get(long) {
            Some(key) => format!("scenario {}: {key}", self.path.display()),
            None => format!("--{long}"),
        }
    }
}

/// `variant[2].policy` is named `variant.policy` once the run is planned
/// (the plan sees the axis, not the entry).
fn key_name(section: &str, key: &str) -> String {
    let section = section.split('[').next().unwrap_or(section);
    format!("{section}.{key}")
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bad_value(p: &Path, at: &str, v: &toml::Value) -> InputError {
    err(
        p,
        format!("{at} = {v}: give a string, a number or a boolean"),
    )
}

/// The option parser's reason, without clap's framing.
fn why(e: &clap::Error, arg: &clap::Arg) -> String {
    if let Some(src) = std::error::Error::source(e) {
        return src.to_string();
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_string())
        .collect();
    if values.is_empty() {
        e.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string()
    } else {
        format!("use one of {}", values.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_cmd() -> clap::Command {
        crate::cli::command()
            .find_subcommand("run")
            .unwrap()
            .clone()
    }

    fn lower(text: &str) -> Result<Lowered, String> {
        Scenario::parse(Path::new("x.toml"), text.to_string())
            .and_then(|s| s.lower(&run_cmd()))
            .map_err(|e| e.to_string())
    }

    const OK: &str = "description = \"d\"\nkind = \"run\"\n[[variant]]\npolicy = \"default\"\n";

    /// `[program]` holds the Program options; its `command` goes last,
    /// after `--`, however the file orders its keys.
    #[test]
    fn a_program_lowers_after_the_options() {
        let text = format!(
            "{OK}[program]\ncommand = [\"sh\", \"-c\", \"echo 1\"]\nparser = \"gapbs\"\n\
             server = \"redis-server --port 6400\"\n"
        );
        let l = lower(&text).unwrap();
        let at = l.argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(l.argv[at + 1..], ["sh", "-c", "echo 1"]);
        assert!(l.argv[..at].contains(&"--parser".to_string()));
        assert_eq!(l.keys["command"], "program.command");
        let e = lower(&format!("{OK}[program]\ncommand = \"sh -c x\"\n")).unwrap_err();
        assert!(
            e.contains("program.command") && e.contains("array of strings"),
            "{e}"
        );
        let e = lower(&format!("{OK}[program]\nready_port = \"x\"\n")).unwrap_err();
        assert!(e.contains("program.ready_port"), "{e}");
    }

    /// A variant's `mechanism` joins its policy; `[mechanisms]` gives
    /// `--damon KEY=VALUE` each.
    #[test]
    fn mechanisms_lower_to_the_policy_and_damon_options() {
        let l = lower(
            "description = \"d\"\nkind = \"run\"\n[mechanisms]\n\
             damon = { quota_mib = 50 }\n[[variant]]\npolicy = \"preferred-many:fast\"\n\
             mechanism = \"damon\"\n",
        )
        .unwrap();
        let argv = l.argv.join(" ");
        assert!(
            argv.contains("--policy preferred-many:fast@damon"),
            "{argv}"
        );
        assert!(argv.contains("--damon quota_mib=50"), "{argv}");
        let e = lower("description = \"d\"\nkind = \"run\"\n[[variant]]\nmechanism = \"damon\"\n")
            .unwrap_err();
        assert!(e.contains("needs the policy it starts from"), "{e}");
    }

    #[test]
    fn shipped_scenarios_load_and_lower() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let s = Scenario::load(p.to_str().unwrap()).unwrap();
                let (sub, _) = s.kind.subcommand();
                let cmd = crate::cli::command();
                s.lower(cmd.find_subcommand(sub).unwrap()).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3);
    }

    #[test]
    fn a_file_lowers_to_the_options_of_the_same_names() {
        let l = lower(&format!(
            "{OK}[buffer]\nsize = \"75% of fast\"\nmove = true\n[workload]\nhot_fraction = 0.25\n\
             [knobs]\nnuma_balancing = \"tiering\"\nnumab = {{ scan_delay_ms = 0 }}\n\
             [timing]\niterations = 3\n"
        ))
        .unwrap();
        let argv = l.argv.join(" ");
        for want in [
            "--size 75% of fast",
            "--move",
            "--hot-fraction 0.25",
            "--numa-balancing tiering",
            "--numab scan_delay_ms=0",
            "--iterations 3",
            "--policy default",
        ] {
            assert!(argv.contains(want), "{want:?} in {argv}");
        }
        assert_eq!(l.keys["hot-fraction"], "workload.hot_fraction");
        assert_eq!(l.keys["policy"], "variant.policy");
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_fix() {
        assert!(lower(OK).is_ok());
        let cases = [
            (
                format!("{OK}[workload]\nhot_fractoin = 0.1\n"),
                "unknown key workload.hot_fractoin",
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
                "workload.pattern = \"spiral\": use one of",
            ),
            (
                format!("{OK}[buffer]\nsize = \"12Q\"\n"),
                "buffer.size = \"12Q\": bad size unit",
            ),
            (format!("{OK}[buffer]\nmove = 3\n"), "give true or false"),
            (
                format!("{OK}[placement]\nsize = \"1M\"\n"),
                "unknown section [placement]",
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
            let e = lower(&text).unwrap_err();
            assert!(e.contains("x.toml") && e.contains(needle), "{needle}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
