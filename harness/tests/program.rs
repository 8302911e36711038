//! The user's own program as the workload (`tierbench run -- COMMAND`),
//! natively: real Debian programs (stress-ng, redis-server with
//! redis-benchmark) under policy variants, their score, wall time and
//! per-node memory checked against what the programs printed and what the
//! kernel's numa_maps said; and the kill tests: whatever signal ends
//! tierbench, no process of the program's group survives and the knobs are
//! as found. Programs missing, or no root for the knob tests: SKIP (a
//! failure under `CI=true`, where scripts/setup installed them).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

mod common;
use common::Table;

fn tb() -> Command {
    Command::cargo_bin("tierbench").unwrap()
}

fn have(test: &str, programs: &[&str]) -> bool {
    for p in programs {
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(p).is_file());
        if !found {
            common::skip(
                test,
                &format!("{p} is not installed (scripts/setup installs it)"),
            );
            return false;
        }
    }
    true
}

/// (pid, pgid, ppid, comm) of every process.
fn processes() -> Vec<(i32, i32, i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, rest) = stat.rsplit_once(')')?;
            let comm = name.split_once('(')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.first() == Some(&"Z") {
                return None;
            }
            Some((pid, f[2].parse().ok()?, f[1].parse().ok()?, comm))
        })
        .collect()
}

/// The process groups tierbench (`pid`) started: its children that lead
/// groups of their own.
fn groups_of(pid: u32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(p, pgid, ppid, comm)| {
            *ppid == pid as i32 && p == pgid && !comm.starts_with("tierbench")
        })
        .map(|(p, ..)| p)
        .collect()
}

fn alive_in(pgids: &[i32]) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter(|(_, pgid, ..)| pgids.contains(pgid))
        .map(|(p, _, _, c)| (p, c))
        .collect()
}

/// Resident anonymous KiB of a group, summed from every member's
/// numa_maps (mappings without a file).
fn numa_maps_kib(pgid: i32) -> u64 {
    let mut kib = 0;
    for (pid, g, ..) in processes() {
        if g != pgid {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.contains(" file=")) {
            let page = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("kernelpagesize_kB="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(4);
            for f in line.split_whitespace() {
                if let Some((n, pages)) = f.strip_prefix('N').and_then(|f| f.split_once('=')) {
                    if n.parse::<u32>().is_ok() {
                        kib += pages.parse::<u64>().unwrap_or(0) * page;
                    }
                }
            }
        }
    }
    kib
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// stress-ng --vm under two variants with its built-in parser: the score
/// is the bogo ops/s stress-ng printed, the wall time its own run time,
/// and the per-node resident memory what numa_maps said mid-run.
#[test]
fn stress_ng_is_scored_timed_and_counted_as_the_kernel_says() {
    if !have("stress_ng_is_scored", &["stress-ng"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let mut child = tb()
        .args(["run", "-q", "--interval", "250ms", "--policy", "default"])
        .args(["--policy", "local", "--parser", "stress-ng", "-o"])
        .arg(&out)
        .args([
            "--",
            "stress-ng",
            "--vm",
            "1",
            "--vm-bytes",
            "96M",
            "--vm-keep",
        ])
        .args(["-t", "3", "--metrics-brief"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run, the kernel's own account of the first variant's group.
    let mut group = Vec::new();
    wait_for("stress-ng to start", Duration::from_secs(10), || {
        group = groups_of(child.id());
        !group.is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let seen_kib = numa_maps_kib(group[0]);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");

    let summary = Table::read(&out.join("summary.csv"));
    assert_eq!(summary.rows.len(), 2);
    for (row, variant) in summary.rows.iter().zip(["default", "local"]) {
        assert_eq!(summary.cell(row, "variant"), variant);
        assert_eq!(summary.cell(row, "status"), "ok", "{row:?}");
        assert_eq!(summary.cell(row, "exit_code"), "0");
        let log = std::fs::read_to_string(out.join(format!("output/1-{variant}.log"))).unwrap();
        // "stress-ng: metrc: [pid] vm  86016  3.03  0.95  2.08  28357.60  28361.39"
        let line = log
            .lines()
            .find(|l| {
                l.contains("metrc:") && l.split("] ").nth(1).is_some_and(|r| r.starts_with("vm "))
            })
            .unwrap_or_else(|| panic!("no vm metrics line in {log}"));
        let f: Vec<&str> = line
            .split("] ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        let printed: f64 = f[5].parse().unwrap();
        assert_eq!(summary.num(row, "score"), printed, "{line}");
        assert_eq!(summary.cell(row, "score_unit"), "bogo-ops/s");
        // "successful run completed in 3.03s": stress-ng's own clock.
        let own: f64 = log
            .lines()
            .find_map(|l| l.split("completed in ").nth(1))
            .and_then(|t| t.trim().trim_end_matches('s').parse().ok())
            .unwrap();
        let wall = summary.num(row, "wall_s");
        assert!(
            (wall - own).abs() < 0.3,
            "wall {wall} s, stress-ng said {own} s"
        );
        assert!(summary.num(row, "user_s") + summary.num(row, "sys_s") > 0.5);
        assert!(summary.num(row, "max_rss_kib") >= 96.0 * 1024.0);
    }
    // The census rows of the first variant, mid-run, against numa_maps.
    let series = Table::read(&out.join("timeseries.csv"));
    let nodes: Vec<String> = series
        .header
        .iter()
        .filter(|h| h.starts_with("anon_kib_node"))
        .map(String::from)
        .collect();
    assert!(!nodes.is_empty());
    let mid: Vec<f64> = series
        .filter("variant", "default")
        .into_iter()
        .filter(|r| (1.0..=2.5).contains(&series.num(r, "t_s")))
        .map(|r| nodes.iter().map(|n| series.num(r, n)).sum())
        .collect();
    assert!(!mid.is_empty());
    let (lo, hi) = mid
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let seen = seen_kib as f64;
    assert!(
        seen >= 96.0 * 1024.0 && seen >= lo * 0.9 && seen <= hi * 1.1,
        "numa_maps said {seen} KiB mid-run, the rows {lo}..{hi} KiB"
    );
    for r in &series.rows {
        let share = series.cell(r, "anon_fast_share");
        assert!(share.is_empty() || share.parse::<f64>().unwrap() <= 1.0);
    }
    // compare reads the run back, score row and all.
    let o = tb().arg("compare").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("score") && !text.contains("accesses/s"),
        "{text}"
    );
}

/// A command that fails, and one whose score is not in its output: a row
/// each, saying so, and the run goes on to the next variant.
#[test]
fn failed_and_scoreless_commands_are_rows_and_the_run_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f");
    let o = tb()
        .args(["run", "-q", "--interval", "100ms", "--policy", "default"])
        .args(["--policy", "local", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", "echo boom >&2; exit 3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = Table::read(&out.join("summary.csv"));
    assert_eq!(t.rows.len(), 2);
    for r in &t.rows {
        assert_eq!(t.cell(r, "status"), "failed");
        assert_eq!(t.cell(r, "exit_code"), "3");
        assert!(t
            .cell(r, "notes")
            .contains("exited with 3; output ends: boom"));
    }
    let out = d.path().join("n");
    let o = tb()
        .args(["run", "-q", "--metric", r"ops=([0-9]+)", "-o"])
        .arg(&out)
        .args(["--", "echo", "no number here"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let t = Table::read(&out.join("summary.csv"));
    assert_eq!(t.cell(&t.rows[0], "status"), "no-score");
    assert!(t.cell(&t.rows[0], "notes").contains("no number here"));
    // A timeout kills the group: a failed row, well before the sleep ends.
    let out = d.path().join("t");
    let t0 = Instant::now();
    let o = tb()
        .args(["run", "-q", "--timeout", "500ms", "-o"])
        .arg(&out)
        .args(["--", "sleep", "30"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(t0.elapsed() < Duration::from_secs(10));
    let t = Table::read(&out.join("summary.csv"));
    assert_eq!(t.cell(&t.rows[0], "status"), "failed");
    assert!(t.cell(&t.rows[0], "notes").contains("timed out"));
}

/// Bad input is one line and exit 2 before anything is created.
#[test]
fn bad_program_input_is_refused_before_anything_changes() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("never");
    let cases: [(&[&str], &str); 6] = [
        (&["--", "no-such-program-xyz"], "command not found"),
        (&["--size", "1G", "--", "true"], "--size"),
        (&["--metric", "no group", "--", "true"], "0 capture groups"),
        (
            &["--parser", "redis", "--", "true"],
            "not a built-in parser",
        ),
        (&["--server", "'unclosed", "--", "true"], "not closed"),
        (
            &["--push-to-slow-at", "1s", "--", "true"],
            "--push-to-slow-at",
        ),
    ];
    for (args, needle) in cases {
        let o = tb()
            .arg("run")
            .arg("-o")
            .arg(&out)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.lines().next().unwrap_or("").contains(needle),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
}

const NUMA_BALANCING: &str = "/proc/sys/kernel/numa_balancing";

/// A server and its client running under a knob-changing run.
fn spawn_server_run(state: &Path, out: &Path, port: u16) -> Child {
    tb().args(["run", "-q", "--numa-balancing", "normal", "-o"])
        .arg(out)
        .arg("--server")
        .arg(format!(
            "redis-server --port {port} --save '' --appendonly no"
        ))
        .args([
            "--ready-port",
            &port.to_string(),
            "--parser",
            "redis-benchmark",
        ])
        .args(["--", "redis-benchmark", "-p", &port.to_string()])
        .args(["-t", "set", "-n", "100000000", "-q", "--csv"])
        .env("TIERBENCH_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGTERM, SIGINT or SIGKILL to tierbench while redis-server and
/// redis-benchmark run: no process of either group survives, and the
/// knobs are as found (after SIGKILL, once `knobs restore` ran).
#[test]
fn no_process_of_the_program_survives_any_signal() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("no_process_survives", "needs root to change kernel knobs");
        return;
    }
    if !have("no_process_survives", &["redis-server", "redis-benchmark"])
        || !Path::new(NUMA_BALANCING).exists()
    {
        return;
    }
    let found = std::fs::read_to_string(NUMA_BALANCING).unwrap();
    let d = tempfile::tempdir().unwrap();
    for (i, sig) in [libc::SIGTERM, libc::SIGINT, libc::SIGKILL]
        .into_iter()
        .enumerate()
    {
        let state = d.path().join(format!("state{i}"));
        let out = d.path().join(format!("r{i}"));
        let mut child = spawn_server_run(&state, &out, 6410 + i as u16);
        let mut groups = Vec::new();
        wait_for("the server and its client", Duration::from_secs(30), || {
            groups = groups_of(child.id());
            groups.len() == 2
                && alive_in(&groups)
                    .iter()
                    .any(|(_, c)| c.starts_with("redis-benchmark"))
        });
        // SAFETY: signals the child this test started.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        if sig != libc::SIGKILL {
            assert_eq!(status.code(), Some(130), "signal {sig}");
        }
        wait_for(
            &format!("the groups {groups:?} to end after signal {sig}"),
            Duration::from_secs(5),
            || alive_in(&groups).is_empty(),
        );
        if sig == libc::SIGKILL {
            let o = tb()
                .args(["knobs", "restore"])
                .env("TIERBENCH_STATE_DIR", &state)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        assert_eq!(
            std::fs::read_to_string(NUMA_BALANCING).unwrap(),
            found,
            "numa_balancing after signal {sig}"
        );
        // What was measured before the signal is there.
        assert!(out.join("summary.csv").exists());
    }
}
