//! The results contract: what `tierbench run` writes and what `compare`
//! and `plot` read back, defined once.
//!
//! `system.json` is [`SystemRecord`], serialized by the writer and
//! deserialized by the readers from the same type, so a field renamed on
//! one side is renamed on both. Reading checks `schema_version` first and
//! refuses a version it cannot read, naming both; a field the readers rely
//! on that is absent is a refusal naming the file and the field, never an
//! empty value that compares equal to another empty value.
//!
//! The fixed CSV column names are the constants of [`col`]; the variable
//! ones (nodes, counters, perf events) come from [`super::Columns`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::InputError;

/// Version of the results layout; bump when a column or a field changes
/// meaning. 2: samples.csv split into summary.csv and timeseries.csv;
/// iteration, hot-access share, latency percentiles, hot set position, hot
/// set on slow. 3: interval rows may hold a sampled census
/// (`census_pages`, `hot_fast_share_ci95`; `pages_nodeN` and
/// `hot_fast_pages` empty in them). 4: statuses `failed` and `no-score`;
/// an external program's columns (`anon_kib_nodeN`, `anon_fast_share`,
/// `program_procs`; in summaries `wall_s` ... `returned_share`) and the
/// plan's `program`; the plan of a program run leaves out the buffer and
/// pattern keys, which did not apply. 5: variants may carry interleave
/// weights (`weighted-interleave:0=9,1=1`) and a mechanism (`@damon`);
/// DAMOS statistics (`damos.ROLE.STAT`) and `weight_error_pts` where a
/// variant has them; the plan's `damon`. 6: runs of the built-in workers
/// with a census carry the tracked pages' moves (`moves.*`), the window's
/// precision and ping-pong, and its cost (`workers_user_s` ...
/// `accesses_per_migrated_page`).
pub const SCHEMA_VERSION: u32 = 6;

/// The versions this build reads: 2 lacks only the two census columns,
/// which no reader needs; 3 has no program columns, which are read as
/// absent; 4 has no mechanism columns, 5 no quality columns, read as
/// absent.
pub const READABLE_VERSIONS: [u32; 5] = [2, 3, 4, 5, 6];

/// Fixed column names of `summary.csv` and `timeseries.csv`.
pub mod col {
    pub const VARIANT: &str = "variant";
    pub const ITERATION: &str = "iteration";
    pub const STATUS: &str = "status";
    pub const SECONDS: &str = "seconds";
    pub const T_S: &str = "t_s";
    pub const SPAN_S: &str = "span_s";
    pub const HOT_FIRST_PAGE: &str = "hot_first_page";
    pub const ACCESSES: &str = "accesses";
    pub const ACCESSES_PER_S: &str = "accesses_per_s";
    pub const HOT_ACCESS_SHARE: &str = "hot_access_share";
    pub const LAT_SAMPLES: &str = "lat_samples";
    pub const LAT_P50_NS: &str = "lat_p50_ns";
    pub const LAT_P90_NS: &str = "lat_p90_ns";
    pub const LAT_P99_NS: &str = "lat_p99_ns";
    pub const LAT_MAX_NS: &str = "lat_max_ns";
    pub const HOT_PAGES: &str = "hot_pages";
    pub const HOT_FAST_PAGES: &str = "hot_fast_pages";
    pub const HOT_FAST_SHARE: &str = "hot_fast_share";
    pub const HOT_SLOW_SHARE: &str = "hot_slow_share";
    pub const HOT_FAST_SHARE_CI95: &str = "hot_fast_share_ci95";
    pub const CENSUS_PAGES: &str = "census_pages";
    pub const TIME_TO_50PCT_S: &str = "time_to_50pct_s";
    pub const TIME_TO_90PCT_S: &str = "time_to_90pct_s";
    pub const HOT_FAST_SHARE_PEAK: &str = "hot_fast_share_peak";
    pub const NOTES: &str = "notes";
    pub const ANON_FAST_SHARE: &str = "anon_fast_share";
    pub const PROGRAM_PROCS: &str = "program_procs";
    pub const WALL_S: &str = "wall_s";
    pub const EXIT_CODE: &str = "exit_code";
    pub const USER_S: &str = "user_s";
    pub const SYS_S: &str = "sys_s";
    pub const MAX_RSS_KIB: &str = "max_rss_kib";
    pub const SCORE: &str = "score";
    pub const SCORE_UNIT: &str = "score_unit";
    pub const PUSHED_KIB: &str = "pushed_kib";
    pub const RETURNED_SHARE: &str = "returned_share";
    pub const WEIGHT_ERROR_PTS: &str = "weight_error_pts";
    /// What DAMON's migrate_hot and migrate_cold schemes applied, bytes.
    pub const DAMOS_HOT_SZ_APPLIED: &str = "damos.hot.sz_applied";
    pub const DAMOS_COLD_SZ_APPLIED: &str = "damos.cold.sz_applied";
    /// The tracked pages' moves (estimated pages of the buffer), interval
    /// and summary rows.
    pub const MOVES_PROMOTED_HOT: &str = "moves.promoted_hot";
    pub const MOVES_PROMOTED_COLD: &str = "moves.promoted_cold";
    pub const MOVES_DEMOTED_HOT: &str = "moves.demoted_hot";
    pub const MOVES_DEMOTED_COLD: &str = "moves.demoted_cold";
    pub const MOVES_ROUND_TRIPS: &str = "moves.round_trips";
    pub const MOVES_PROMOTED_CI95: &str = "moves.promoted_ci95";
    pub const MOVES: [&str; 6] = [
        MOVES_PROMOTED_HOT,
        MOVES_PROMOTED_COLD,
        MOVES_DEMOTED_HOT,
        MOVES_DEMOTED_COLD,
        MOVES_ROUND_TRIPS,
        MOVES_PROMOTED_CI95,
    ];
    /// The window's precision and ping-pong (summary rows).
    pub const PRECISION: &str = "precision";
    pub const PINGPONG_PAGES: &str = "pingpong_pages";
    pub const ROUND_TRIP_S_P50: &str = "round_trip_s_p50";
    pub const TRACKED_PAGES: &str = "tracked_pages";
    pub const QUALITY: [&str; 4] = [PRECISION, PINGPONG_PAGES, ROUND_TRIP_S_P50, TRACKED_PAGES];
    /// What the window cost (summary rows).
    pub const WORKERS_USER_S: &str = "workers_user_s";
    pub const WORKERS_SYS_S: &str = "workers_sys_s";
    pub const ACCESSES_PER_CPU_S: &str = "accesses_per_cpu_s";
    pub const HINT_FAULTS_PER_S: &str = "hint_faults_per_s";
    pub const MIGRATED_MIB_PER_S: &str = "migrated_mib_per_s";
    pub const ACCESSES_PER_MIGRATED_PAGE: &str = "accesses_per_migrated_page";
    pub const COST: [&str; 6] = [
        WORKERS_USER_S,
        WORKERS_SYS_S,
        ACCESSES_PER_CPU_S,
        HINT_FAULTS_PER_S,
        MIGRATED_MIB_PER_S,
        ACCESSES_PER_MIGRATED_PAGE,
    ];
    /// A DAMOS statistic of the schemes of one role: `damos.hot.sz_applied`.
    pub fn damos(role: &str, stat: &str) -> String {
        format!("damos.{role}.{stat}")
    }
    /// An external program's resident KiB on a node: `anon_kib_nodeN`.
    pub fn anon_kib_node(node: u32) -> String {
        format!("anon_kib_node{node}")
    }
    /// A global vmstat counter's column: `vmstat.NAME`.
    pub fn vmstat(name: &str) -> String {
        format!("vmstat.{name}")
    }
}

/// Native hardware, or a machine QEMU emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineKind {
    Native,
    Emulated,
}

/// Where the run ran: native or emulated, and inside `tierbench vm` the
/// host profile and accelerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub kind: MachineKind,
    /// Required, `null` when the run named no profile: a record without the
    /// field is refused, not read as "no profile".
    #[serde(deserialize_with = "present")]
    pub host_profile: Option<String>,
    #[serde(deserialize_with = "present")]
    pub accelerator: Option<String>,
    /// `0:cpu+mem,1:mem`.
    pub node_shape: String,
    /// (node, MiB); MiB is `null` where the kernel did not say.
    pub memory_mib_per_node: Vec<(u32, Option<u64>)>,
}

/// What the record keeps of a scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub name: String,
    pub path: String,
    pub description: String,
    pub text: String,
}

/// `plan.bracket`: the variants that bound a run, everything on the fast
/// tier and everything on the slow tier (as the policies are named), where
/// they fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bracket {
    pub fast: Option<String>,
    pub slow: Option<String>,
}

/// What readers take back from a program run's `plan.program`: the
/// command and what its score is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanProgram {
    pub command: Vec<String>,
    #[serde(default)]
    pub server: Option<Vec<String>>,
    #[serde(default)]
    pub score: Option<PlanScore>,
    #[serde(default)]
    pub push_to_slow_at_s: Option<f64>,
}

/// A program's score as its plan defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanScore {
    /// The parser (`redis-benchmark:GET`) or the user's expression.
    pub source: String,
    pub better: crate::program::Better,
    pub unit: Option<String>,
}

impl PlanScore {
    /// `score: redis-benchmark:GET, higher is better`.
    pub fn describe(&self) -> String {
        let better = match self.better {
            crate::program::Better::Higher => "higher",
            crate::program::Better::Lower => "lower",
        };
        let unit = self
            .unit
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default();
        format!(
            "score: {}{unit}, {better} is better",
            crate::text::printable(&self.source)
        )
    }
}

/// One variant x iteration as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub variant: String,
    pub iteration: u32,
    pub eater_bytes: Option<u64>,
    pub status: String,
    pub pin_method: Option<String>,
    pub notes: String,
    /// Every global vmstat counter's change over the variant.
    pub vmstat_delta: BTreeMap<String, i64>,
}

/// `system.json`: enough to reproduce a run and to trust its CSV. The
/// machine-description blocks (topology, capabilities, plan, knobs) are
/// kept as their own modules serialize them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemRecord {
    pub schema_version: u32,
    pub tool_version: String,
    pub git_revision: Option<String>,
    pub command_line: Vec<String>,
    pub kernel_release: String,
    pub kernel_cmdline: String,
    pub emulated: bool,
    pub machine: Machine,
    /// Required, `null` for a run without a scenario file.
    #[serde(deserialize_with = "present")]
    pub scenario: Option<ScenarioRecord>,
    pub topology: serde_json::Value,
    pub capabilities: serde_json::Value,
    pub plan: serde_json::Value,
    pub knobs_requested: serde_json::Value,
    pub knobs_before: Vec<(String, String)>,
    pub variants: Vec<VariantRecord>,
}

/// An `Option` field that must be present (as a value or `null`): serde
/// would otherwise read a missing field as `None`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

impl SystemRecord {
    /// The file's name inside a results directory.
    pub const FILE: &'static str = "system.json";

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(Self::FILE)
    }

    /// Reads `dir/system.json`: the version first, then every field.
    pub fn read(dir: &Path) -> Result<SystemRecord, InputError> {
        let path = Self::path(dir);
        let bad = |m: String| InputError::new(format!("{}: {m}", path.display()));
        let bytes =
            crate::userfile::read_capped_bytes(&path, crate::userfile::TEXT_MAX).map_err(|e| {
                bad(format!(
                    "{e} (a results directory of `tierbench run` has one)"
                ))
            })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let version = match value.get("schema_version") {
            None => return Err(bad("has no schema_version: not a tierbench record".into())),
            Some(v) => v.as_u64().ok_or_else(|| {
                bad(if v.is_number() {
                    format!(
                        "schema_version {v} is not a whole version number: tierbench writes \
                         {SCHEMA_VERSION}, a whole number"
                    )
                } else {
                    format!("schema_version {v} is not a number")
                })
            })?,
        };
        if !READABLE_VERSIONS.iter().any(|&r| u64::from(r) == version) {
            return Err(bad(format!(
                "schema version {version}, and this tierbench reads version {SCHEMA_VERSION}: \
                 use the tierbench that wrote it"
            )));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner().to_string();
            // "missing field `x`" at "machine" reads best as one dotted path.
            let missing = inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            bad(match (missing, at.as_str()) {
                (Some(f), ".") => format!("missing field `{f}`: written by another tierbench?"),
                (Some(f), at) => {
                    format!("missing field `{at}.{f}`: written by another tierbench?")
                }
                (None, ".") => inner,
                (None, at) => format!("{at}: {inner}"),
            })
        })
    }

    /// Writes the record whole: to a temporary file, then renamed over the
    /// old one, so a reader never sees half of it.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(".system.json.tmp");
        let body = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                // A full disk must not leave half a temp file among the results.
                let _ = std::fs::remove_file(&tmp);
                std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
            })
    }
}

/// A CSV file of a results directory as readers see it: the header and the
/// complete rows, a cut-off last row left out with a note.
#[derive(Debug, Clone)]
pub struct CsvRows {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// What the reader left out, for stderr.
    pub notes: Vec<String>,
}

impl CsvRows {
    /// Reads `path`. A final row without its newline or with fewer fields
    /// than the header (a run killed mid-write, or a full disk) is skipped
    /// with a note; a malformed row elsewhere is an error naming the file.
    pub fn read(path: &Path) -> Result<CsvRows, InputError> {
        Self::read_keyed(path, col::VARIANT)
    }

    /// As [`CsvRows::read`], for a file whose identifying column is `key`
    /// (`mem_node` in a characterisation's files).
    pub fn read_keyed(path: &Path, key: &str) -> Result<CsvRows, InputError> {
        let bad = |m: String| InputError::new(format!("{}: {m}", path.display()));
        let bytes = crate::userfile::read_capped_bytes(path, crate::userfile::TABLE_MAX)
            .map_err(|e| bad(format!("{e} (give a results directory of `tierbench run`)")))?;
        let mut notes = Vec::new();
        // Only whole lines count: what follows the last newline is a row
        // cut off while it was written.
        let whole = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => &bytes[..=i],
            None => &bytes[..0],
        };
        if whole.len() < bytes.len() {
            notes.push(format!(
                "{}: skipped a cut-off last line ({} bytes without a newline)",
                path.display(),
                bytes.len() - whole.len()
            ));
        }
        let mut rd = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(whole);
        let mut records = rd.records();
        let header: Vec<String> = match records.next() {
            Some(h) => h
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .map(String::from)
                .collect(),
            None => {
                return Err(bad(
                    "is empty (no header): the run ended before writing it".into()
                ))
            }
        };
        if !header.iter().any(|h| h == key) {
            return Err(bad(format!(
                "has no `{key}` column: not a tierbench results file"
            )));
        }
        let mut rows = Vec::new();
        let all: Vec<_> = records.collect();
        let n = all.len();
        for (i, r) in all.into_iter().enumerate() {
            let r = r.map_err(|e| bad(e.to_string()))?;
            if r.len() != header.len() {
                if i + 1 == n {
                    notes.push(format!(
                        "{}: skipped a cut-off last row ({} of {} fields)",
                        path.display(),
                        r.len(),
                        header.len()
                    ));
                    continue;
                }
                return Err(bad(format!(
                    "row {} has {} fields, the header {}",
                    i + 2,
                    r.len(),
                    header.len()
                )));
            }
            rows.push(r.iter().map(String::from).collect());
        }
        Ok(CsvRows {
            path: path.to_path_buf(),
            header,
            rows,
            notes,
        })
    }

    /// The rows as column -> cell maps.
    pub fn maps(&self) -> Vec<BTreeMap<String, String>> {
        self.rows
            .iter()
            .map(|r| self.header.iter().cloned().zip(r.iter().cloned()).collect())
            .collect()
    }

    /// The rows as typed records (the header names their fields).
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, InputError> {
        let header = ::csv::StringRecord::from(self.header.clone());
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ::csv::StringRecord::from(r.clone())
                    .deserialize(Some(&header))
                    .map_err(|e| {
                        InputError::new(format!("{}: row {}: {e}", self.path.display(), i + 2))
                    })
            })
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SystemRecord {
        crate::testing::system_record("6.12.0", None, "0:cpu+mem")
    }

    #[test]
    fn written_records_read_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let r = record();
        r.write(dir.path()).unwrap();
        assert_eq!(SystemRecord::read(dir.path()).unwrap(), r);
    }

    fn edited(edit: impl Fn(&mut serde_json::Value)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(record()).unwrap();
        edit(&mut v);
        std::fs::write(SystemRecord::path(dir.path()), v.to_string()).unwrap();
        SystemRecord::read(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn a_missing_field_is_named_with_the_file() {
        let e = edited(|v| {
            v["machine"].as_object_mut().unwrap().remove("host_profile");
        });
        assert!(
            e.contains("system.json") && e.contains("missing field `machine.host_profile`"),
            "{e}"
        );
        let e = edited(|v| {
            v.as_object_mut().unwrap().remove("scenario");
        });
        assert!(e.contains("missing field `scenario`"), "{e}");
    }

    #[test]
    fn another_schema_version_is_refused_naming_both() {
        let e = edited(|v| v["schema_version"] = 9.into());
        assert!(
            e.contains("schema version 9")
                && e.contains(&format!("reads version {SCHEMA_VERSION}")),
            "{e}"
        );
        // An older version this build still reads.
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(record()).unwrap();
        v["schema_version"] = 2.into();
        std::fs::write(SystemRecord::path(dir.path()), v.to_string()).unwrap();
        assert_eq!(SystemRecord::read(dir.path()).unwrap().schema_version, 2);
        let e = edited(|v| {
            v.as_object_mut().unwrap().remove("schema_version");
        });
        assert!(e.contains("no schema_version"), "{e}");
        let e = edited(|v| v["schema_version"] = serde_json::json!(3.0));
        assert!(e.contains("not a whole version number"), "{e}");
    }

    #[test]
    fn a_cut_off_last_row_is_skipped_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.csv");
        std::fs::write(&p, "variant,iteration,status\nx,1,ok\nx,2").unwrap();
        let r = CsvRows::read(&p).unwrap();
        assert_eq!(r.rows.len(), 1);
        assert!(r.notes[0].contains("cut-off"), "{:?}", r.notes);
        std::fs::write(&p, "variant,iteration,status\nx,1,ok\nx,2\n").unwrap();
        let r = CsvRows::read(&p).unwrap();
        assert_eq!(r.rows.len(), 1);
        assert!(r.notes[0].contains("2 of 3 fields"), "{:?}", r.notes);
        std::fs::write(&p, "variant,iteration,status\nx,2\nx,1,ok\n").unwrap();
        assert!(CsvRows::read(&p).unwrap_err().to_string().contains("row 2"));
        std::fs::write(&p, "").unwrap();
        assert!(CsvRows::read(&p)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        std::fs::write(&p, "varia").unwrap();
        assert!(CsvRows::read(&p)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
    }
}
