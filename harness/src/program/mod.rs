//! The user's own program as the workload: a command (or a server and the
//! client that measures it) run under each policy variant, its memory
//! counted per node from the kernel, its score parsed from its output.
//!
//! [`group`] starts and ends a program tierbench does not own; [`census`]
//! reads where a process group's memory is; [`score`] parses what it
//! printed. `run::program` drives them for each variant.

pub mod census;
pub mod group;
pub mod score;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use score::{Better, ScoreSpec};

/// When the server counts as ready to be measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ready {
    /// A line of its output matches this regular expression.
    Output(String),
    /// Something listens on this TCP port of 127.0.0.1.
    Port(u16),
}

/// The external workload of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramSpec {
    /// The measured command: the workload itself, or the client of
    /// `server`.
    pub command: Vec<String>,
    /// A long-lived program started first, under the variant's policy and
    /// CPUs; its memory is the one counted.
    pub server: Option<Vec<String>>,
    pub ready: Option<Ready>,
    /// Longest a server may take to become ready.
    #[serde(rename = "ready_timeout_s", serialize_with = "crate::units::secs")]
    pub ready_timeout: Duration,
    /// Longest the measured command may run; then its group is killed and
    /// the row is `failed`.
    #[serde(rename = "timeout_s", serialize_with = "crate::units::secs_opt")]
    pub timeout: Option<Duration>,
    pub score: Option<ScoreSpec>,
    /// Move the program's pages to the slow tier this long after it
    /// started (`migrate_pages(2)`), then watch how much comes back.
    #[serde(
        rename = "push_to_slow_at_s",
        serialize_with = "crate::units::secs_opt"
    )]
    pub push_to_slow_at: Option<Duration>,
}

/// The program `name` names, as `execvp` would find it: a path with a
/// slash as given, else the first executable regular file of that name in
/// `$PATH`. Refused before anything changes: not found, not a regular
/// file, not executable.
pub fn resolve_program(name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", p.display()));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", p.display()));
        }
        Ok(())
    };
    if name.is_empty() {
        return Err("the command is empty".into());
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        check(&p)?;
        return Ok(p);
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if check(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(format!(
        "{name}: command not found in PATH ({path}): install it or give its path"
    ))
}

/// Splits a command line as a POSIX shell would split words (single and
/// double quotes, backslash escapes), without expanding anything: the
/// `--server 'redis-server --port 6400'` form.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("{s:?}: a ' is not closed")),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("{s:?}: a \" is not closed")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("{s:?}: a \" is not closed")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => cur.get_or_insert_with(String::new).push(c),
                None => return Err(format!("{s:?} ends with a lone backslash")),
            },
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

/// The last `lines` lines of a program's output, printable, for a row's
/// note.
pub fn tail(output: &str, lines: usize) -> String {
    let all: Vec<&str> = output
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty())
        .collect();
    let shown = all[all.len().saturating_sub(lines)..].join(" | ");
    let shown: String = shown.chars().take(400).collect();
    crate::text::printable(&shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_a_shell_splits_them() {
        assert_eq!(
            split_words(r#"redis-server --port 6400 --save '' "a b" c\ d"#).unwrap(),
            ["redis-server", "--port", "6400", "--save", "", "a b", "c d"]
        );
        assert_eq!(split_words(r#""x\"y""#).unwrap(), [r#"x"y"#]);
        assert!(split_words("'open").unwrap_err().contains("not closed"));
        assert!(split_words("   ").unwrap_err().contains("empty"));
    }

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        assert!(resolve_program("sh").unwrap().is_absolute());
        let e = resolve_program("no-such-program-here").unwrap_err();
        assert!(e.contains("command not found"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let e = resolve_program(plain.to_str().unwrap()).unwrap_err();
        assert!(e.contains("not executable"), "{e}");
        let e = resolve_program("/tmp").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn the_tail_is_the_last_lines_printable() {
        let t = tail("a\nb\n\x1b[31mc\r\nprogress\rfinal\n", 2);
        assert_eq!(t, "\\u{1b}[31mc | final");
    }
}
