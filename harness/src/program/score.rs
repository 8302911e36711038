//! A program's score, parsed from what it printed: a user's regular
//! expression with one capture group, or a built-in parser for a program
//! tiering papers and changelogs report (each tested on output captured
//! from the real program).

use serde::Serialize;

/// Whether a larger score is better (throughput) or a smaller (time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Better {
    Higher,
    Lower,
}

/// The programs with a built-in parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Parser {
    /// redis-benchmark (--csv, or -q): requests/s of the first test, or of
    /// the test named after a colon (redis-benchmark:GET)
    RedisBenchmark,
    /// stress-ng --metrics-brief: bogo ops/s (real time) of the first
    /// stressor, or of the one named (stress-ng:vm)
    StressNg,
    /// sysbench: transactions/s (oltp), MiB/s (memory) or events/s (cpu,
    /// threads, mutex, fileio)
    Sysbench,
    /// GAPBS kernels: "Average Time:" in seconds
    Gapbs,
    /// XSBench: "Lookups/s:"
    Xsbench,
    /// YCSB: [OVERALL] Throughput(ops/sec), or an operation's p99 latency
    /// (ycsb:read-p99, ycsb:update-p99, ...)
    Ycsb,
}

/// A parsed score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub value: f64,
    pub unit: String,
}

/// What the score of a run is and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreSpec {
    /// As the user gave it: `stress-ng:vm`, or the regex.
    pub source: String,
    pub better: Better,
    /// Given with --metric-unit; otherwise the parser's or inferred from
    /// the output.
    pub unit: Option<String>,
    #[serde(skip)]
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    Regex(regex::Regex),
    Builtin(Parser, Option<String>),
}

impl ScoreSpec {
    /// A built-in parser, `NAME` or `NAME:WHICH`.
    pub fn builtin(text: &str) -> Result<ScoreSpec, String> {
        use clap::ValueEnum;
        let (name, which) = match text.split_once(':') {
            Some((n, w)) if !w.is_empty() => (n, Some(w.to_string())),
            Some((n, _)) => (n, None),
            None => (text, None),
        };
        let parser = Parser::from_str(name, true).map_err(|_| {
            let known: Vec<String> = Parser::value_variants()
                .iter()
                .filter_map(|p| Some(p.to_possible_value()?.get_name().to_string()))
                .collect();
            format!(
                "{name:?} is not a built-in parser: use one of {}, or --metric REGEX",
                known.join(", ")
            )
        })?;
        if parser == Parser::Ycsb {
            if let Some(w) = &which {
                ycsb_latency_op(w).ok_or_else(|| {
                    format!("ycsb:{w}: name an operation's p99, e.g. ycsb:read-p99")
                })?;
            }
        }
        let better = match (parser, &which) {
            (Parser::Gapbs, _) | (Parser::Ycsb, Some(_)) => Better::Lower,
            _ => Better::Higher,
        };
        Ok(ScoreSpec {
            source: text.to_string(),
            better,
            unit: None,
            how: How::Builtin(parser, which),
        })
    }

    /// A regular expression with exactly one capture group around the
    /// number; the last match in the output counts. `lower`: a smaller
    /// value is better (otherwise inferred from the expression's words).
    pub fn regex(text: &str, unit: Option<String>, lower: bool) -> Result<ScoreSpec, String> {
        let re = regex::Regex::new(text).map_err(|e| {
            let e = e.to_string();
            let last = e.lines().last().unwrap_or_default().to_string();
            format!("{text:?} is not a regular expression: {last}")
        })?;
        if re.captures_len() != 2 {
            return Err(format!(
                "{text:?} has {} capture groups: put exactly one around the number, e.g. \
                 'Average Time: +([0-9.]+)'",
                re.captures_len() - 1
            ));
        }
        let words = format!("{text} {}", unit.as_deref().unwrap_or("")).to_lowercase();
        let timed = ["time", "latency", "seconds", "elapsed", "duration"]
            .iter()
            .any(|w| words.contains(w));
        Ok(ScoreSpec {
            source: text.to_string(),
            better: if lower || timed {
                Better::Lower
            } else {
                Better::Higher
            },
            unit,
            how: How::Regex(re),
        })
    }

    /// The score in `output`, or `None` when it is not there.
    pub fn parse(&self, output: &str) -> Option<Score> {
        let found = match &self.how {
            How::Regex(re) => {
                let c = re.captures_iter(output).last()?;
                let m = c.get(1)?;
                let value = number(m.as_str())?;
                // The word after the number, when it looks like a unit.
                let after = output[m.end()..]
                    .split_whitespace()
                    .next()
                    .map(|w| w.trim_matches(|c: char| ",;()[]".contains(c)))
                    .filter(|w| w.chars().any(char::is_alphabetic) && w.len() <= 16)
                    .unwrap_or("")
                    .to_string();
                Some(Score { value, unit: after })
            }
            How::Builtin(p, which) => builtin(*p, which.as_deref(), output),
        }?;
        Some(match &self.unit {
            Some(u) => Score {
                unit: u.clone(),
                ..found
            },
            None => found,
        })
    }
}

/// A number as programs print them: `1,234,567.5`, `1.2e6`.
fn number(s: &str) -> Option<f64> {
    s.trim()
        .replace(',', "")
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

fn score(value: f64, unit: &str) -> Score {
    Score {
        value,
        unit: unit.to_string(),
    }
}

/// The value after `label` on the first line that has it.
fn after_label<'a>(output: &'a str, label: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| Some(l.split_once(label)?.1.trim()))
}

fn builtin(p: Parser, which: Option<&str>, out: &str) -> Option<Score> {
    match p {
        Parser::RedisBenchmark => redis_benchmark(which, out),
        Parser::StressNg => stress_ng(which, out),
        Parser::Sysbench => {
            if let Some(v) = after_label(out, "transactions:") {
                // "transactions:  1234   (123.45 per sec.)"
                let per = v.split_once('(')?.1.split_whitespace().next()?;
                return Some(score(number(per)?, "transactions/s"));
            }
            if let Some(v) = out.lines().find_map(|l| {
                let (_, r) = l.split_once(" transferred (")?;
                r.strip_suffix(" MiB/sec)")
            }) {
                return Some(score(number(v)?, "MiB/s"));
            }
            let v = after_label(out, "events per second:")?;
            Some(score(number(v)?, "events/s"))
        }
        Parser::Gapbs => Some(score(number(after_label(out, "Average Time:")?)?, "s")),
        Parser::Xsbench => Some(score(number(after_label(out, "Lookups/s:")?)?, "lookups/s")),
        Parser::Ycsb => {
            let (section, field, unit) = match which {
                None => ("OVERALL".to_string(), "Throughput(ops/sec)", "ops/s"),
                Some(w) => (ycsb_latency_op(w)?, "99thPercentileLatency(us)", "us"),
            };
            out.lines().find_map(|l| {
                let f: Vec<&str> = l.split(',').map(str::trim).collect();
                (f.len() == 3 && f[0] == format!("[{section}]") && f[1] == field)
                    .then(|| number(f[2]))
                    .flatten()
                    .map(|v| score(v, unit))
            })
        }
    }
}

/// `read-p99` -> `READ`.
fn ycsb_latency_op(which: &str) -> Option<String> {
    let op = which.strip_suffix("-p99")?;
    (!op.is_empty() && op.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| op.to_uppercase())
}

fn redis_benchmark(test: Option<&str>, out: &str) -> Option<Score> {
    let want = |name: &str| test.is_none_or(|t| t.eq_ignore_ascii_case(name));
    for line in out.lines() {
        // --csv: "SET","82304.52",...
        let f: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        if f.len() >= 2 && f[0] != "test" {
            if let Some(v) = number(f[1]).filter(|_| want(f[0])) {
                return Some(score(v, "requests/s"));
            }
        }
        // -q: "SET: 82304.52 requests per second, p50=0.303 msec"
        if let Some((name, rest)) = line.rsplit('\r').next()?.split_once(": ") {
            if let Some(v) = rest.split_once(" requests per second") {
                if want(name.trim()) {
                    return Some(score(number(v.0)?, "requests/s"));
                }
            }
        }
    }
    None
}

fn stress_ng(stressor: Option<&str>, out: &str) -> Option<Score> {
    for line in out.lines() {
        // "stress-ng: metrc: [2870] vm  308781  3.00  2.00  1.00  102759.55  102764.46"
        // (older releases say "info:" where newer say "metrc:").
        let Some(rest) = line.split_once("] ").map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 6 || !line.starts_with("stress-ng:") {
            continue;
        }
        let nums: Option<Vec<f64>> = f[1..6].iter().map(|x| number(x)).collect();
        if let Some(nums) = nums {
            if stressor.is_none_or(|s| s == f[0]) {
                return Some(score(nums[4], "bogo-ops/s"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/data/programs/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parsed(spec: &str, file: &str) -> Option<Score> {
        ScoreSpec::builtin(spec).unwrap().parse(&data(file))
    }

    /// Each parser on output captured from the real program (see
    /// tests/data/programs/README.md for how each was made).
    #[test]
    fn builtin_parsers_read_real_output() {
        let s = parsed("redis-benchmark", "redis-benchmark.csv").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (82304.52, "requests/s"));
        let s = parsed("redis-benchmark:get", "redis-benchmark.csv").unwrap();
        assert_eq!(s.value, 87719.30);
        assert_eq!(parsed("redis-benchmark:lpush", "redis-benchmark.csv"), None);
        let s = parsed("redis-benchmark:GET", "redis-benchmark-q.txt").unwrap();
        assert_eq!(s.value, 69930.07);
        let s = parsed("stress-ng", "stress-ng-vm.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (102759.55, "bogo-ops/s"));
        assert_eq!(parsed("stress-ng:cpu", "stress-ng-vm.txt"), None);
        let s = parsed("sysbench", "sysbench-memory.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (7804.20, "MiB/s"));
        let s = parsed("sysbench", "sysbench-cpu.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (5234.46, "events/s"));
        let s = parsed("gapbs", "gapbs-bfs.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (0.00029, "s"));
        assert_eq!(ScoreSpec::builtin("gapbs").unwrap().better, Better::Lower);
        let s = parsed("xsbench", "xsbench.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (915557.0, "lookups/s"));
        let s = parsed("ycsb", "ycsb.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (11273.957838998816, "ops/s"));
        let s = parsed("ycsb:read-p99", "ycsb.txt").unwrap();
        assert_eq!((s.value, s.unit.as_str()), (215.0, "us"));
        assert_eq!(
            ScoreSpec::builtin("ycsb:read-p99").unwrap().better,
            Better::Lower
        );
        // The wrong program's output has no score.
        assert_eq!(parsed("gapbs", "stress-ng-vm.txt"), None);
    }

    #[test]
    fn a_user_regex_takes_the_last_match_and_infers() {
        let out = "step 1: 10.5 MiB/sec\nstep 2: 1,234.5 MiB/sec\ndone";
        let s = ScoreSpec::regex(r"step \d+: ([0-9.,]+)", None, false).unwrap();
        assert_eq!(
            s.parse(out).unwrap(),
            Score {
                value: 1234.5,
                unit: "MiB/sec".into()
            }
        );
        assert_eq!(s.better, Better::Higher);
        let t = ScoreSpec::regex(r"Average Time: +([0-9.]+)", None, false).unwrap();
        assert_eq!(t.better, Better::Lower);
        let u = ScoreSpec::regex(r"x=([0-9]+)", Some("widgets".into()), true).unwrap();
        assert_eq!(u.parse("x=7").unwrap().unit, "widgets");
        assert_eq!(u.better, Better::Lower);
        assert_eq!(u.parse("nothing here"), None);
    }

    #[test]
    fn bad_specs_are_refused_with_a_fix() {
        let e = ScoreSpec::regex("([0-9]+", None, false).unwrap_err();
        assert!(e.contains("not a regular expression"), "{e}");
        let e = ScoreSpec::regex("no group", None, false).unwrap_err();
        assert!(e.contains("0 capture groups"), "{e}");
        let e = ScoreSpec::regex("(a)(b)", None, false).unwrap_err();
        assert!(e.contains("2 capture groups"), "{e}");
        let e = ScoreSpec::builtin("redis").unwrap_err();
        assert!(e.contains("redis-benchmark"), "{e}");
        let e = ScoreSpec::builtin("ycsb:read").unwrap_err();
        assert!(e.contains("ycsb:read-p99"), "{e}");
    }
}
