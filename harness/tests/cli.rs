//! CLI tests: every bad-input case exits 2 with one line and changes
//! nothing; topo/probe/run work on the machine at hand; a SIGINT during a
//! run that changed numa_balancing puts the old value back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

mod common;

fn tb() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tierbench").unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn numa_balancing() -> String {
    std::fs::read_to_string("/proc/sys/kernel/numa_balancing")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn help_teaches_the_policy_spelling() {
    tb().args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("MODE[:NODES][+FLAG...]"))
        .stdout(predicate::str::contains("MPOL_F_NUMA_BALANCING"));
}

#[test]
fn topo_formats() {
    tb().arg("topo")
        .assert()
        .success()
        .stdout(predicate::str::contains("fast nodes:"));
    let out = tb().args(["topo", "--format", "json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["id"], 0);
    tb().args(["topo", "--format", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("node,cpus,"));
}

#[test]
fn probe_reports_bind_supported() {
    let out = tb().args(["probe", "--format", "json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bind = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mode"] == "bind" && p["flag"] == "-")
        .unwrap();
    assert_eq!(bind["mbind"]["status"], "supported");
}

/// Each case: the arguments, and a word the one-line error must contain.
#[test]
fn bad_input_exits_2_with_one_line_and_changes_nothing() {
    let before = numa_balancing();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--worker-node", "99"], "unknown node 99"),
        (&["run", "--policy", "bind:99"], "unknown node 99"),
        (&["run", "--policy", "bind:"], "needs a node list"),
        (&["run", "--policy", "perferred:0"], "unknown policy mode"),
        (
            &["run", "--policy", "bind:0+balanced"],
            "unknown policy flag",
        ),
        (
            &["run", "--size", "64T", "--numa-balancing", "tiering"],
            "does not fit",
        ),
        (
            &["run", "--duration", "0s", "--numa-balancing", "tiering"],
            "--duration",
        ),
        (&["run", "--hot-fraction", "0"], "--hot-fraction"),
        (
            &["run", "--pattern", "hot-cold", "--hot-fraction", "1"],
            "no cold pages",
        ),
        (
            &[
                "run",
                "--pattern",
                "hot-cold",
                "--hot-fraction",
                "0.1",
                "--hot-share",
                "1.5",
            ],
            "--hot-share",
        ),
        (
            &[
                "run",
                "--pattern",
                "zipf",
                "--hot-fraction",
                "0.1",
                "--zipf-theta",
                "0",
            ],
            "--zipf-theta",
        ),
        (
            &["run", "--size", "16K", "--hot-fraction", "0.1"],
            "less than one page",
        ),
        (
            &["run", "--hot-fraction", "0.1", "--move-hot-at", "20s"],
            "--move-hot-at",
        ),
        (&["run", "--offline-slow-at", "20s"], "--offline-slow-at"),
        // This machine has no slow node to take offline (CI's and a
        // laptop's: one tier).
        (&["run", "--offline-slow-at", "2s"], "needs a slow node"),
        (&["run", "--latency-every", "1000"], "power of two"),
        (&["run", "--iterations", "0"], "--iterations"),
        (&["run", "--mix", "0:0"], "no accesses"),
        (&["run", "--threads", "4096"], "--threads"),
        (&["run", "--numab", "nonsense"], "NAME=VALUE"),
        (&["run", "--numa-balancing", "7"], "invalid value"),
        (
            &[
                "run",
                "--first-touch",
                "slow,99",
                "--numa-balancing",
                "tiering",
            ],
            "99",
        ),
    ];
    for (args, needle) in cases {
        let out = tb()
            .args(*args)
            .env("TIERBENCH_STATE_DIR", "/nonexistent-tb")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} should mention {needle:?}: {err}"
        );
        // One error line (clap adds a "For more information" hint to its own).
        assert_eq!(
            err.lines().filter(|l| l.contains("error")).count(),
            1,
            "{args:?}: {err}"
        );
        assert_eq!(numa_balancing(), before, "{args:?} changed numa_balancing");
    }
    // A --host profile describing another machine.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "description = \"x\"\nkind = \"lab\"\n[[node]]\nid = 999\ncpus = \"0\"\nmemory_mib = 1\n[expect]\nfast = \"999\"\nslow = \"\"\n",
    )
    .unwrap();
    tb().args(["run", "--numa-balancing", "tiering", "--host"])
        .arg(&other)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not the one --host"));
    assert_eq!(numa_balancing(), before);
    // A CPU-less node as the worker node, where this machine has one.
    for entry in std::fs::read_dir("/sys/devices/system/node").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(id) = name.strip_prefix("node") else {
            continue;
        };
        let cpus =
            std::fs::read_to_string(format!("/sys/devices/system/node/{name}/cpulist")).unwrap();
        if cpus.trim().is_empty() {
            tb().args(["run", "--worker-node", id])
                .assert()
                .code(2)
                .stderr(predicate::str::contains("has no CPUs"));
        }
    }
}

#[test]
fn knob_change_without_root_is_refused() {
    if !is_root() {
        tb().args(["run", "--numa-balancing", "tiering", "--duration", "1s"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("needs root"));
        return;
    }
    // As root, drop to an unprivileged user for this one check.
    if Command::new("setpriv").arg("--version").output().is_err() {
        common::skip(
            "knob_change_without_root_is_refused",
            "setpriv not installed, cannot test the non-root path as root",
        );
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("tierbench");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["run", "--numa-balancing", "tiering", "--duration", "1s"])
        .env("TIERBENCH_STATE_DIR", "/tmp/tb-nonroot")
        .current_dir("/tmp")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn run_writes_a_row_per_interval_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    tb().args([
        "run",
        "--size",
        "16M",
        "--duration",
        "2s",
        "--interval",
        "500ms",
        "--iterations",
        "2",
        "--pattern",
        "hot-cold",
        "--hot-fraction",
        "0.25",
        "--hot-share",
        "0.9",
        "--mix",
        "3:1",
        "-q",
        "-o",
    ])
    .arg(dir.path())
    .args(["--policy", "default", "--policy", "bind:0"])
    .assert()
    .success();
    let summary = common::Table::read(&dir.path().join("summary.csv"));
    let series = common::Table::read(&dir.path().join("timeseries.csv"));
    // Two variants x two iterations, variants interleaved per iteration.
    let order: Vec<(String, String)> = summary
        .rows
        .iter()
        .map(|r| {
            (
                summary.cell(r, "variant").into(),
                summary.cell(r, "iteration").into(),
            )
        })
        .collect();
    let want = [
        ("default", "1"),
        ("bind:0", "1"),
        ("default", "2"),
        ("bind:0", "2"),
    ];
    assert_eq!(order, want.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(series.rows.len(), 16, "4 intervals x 4 variant runs");
    for s in &summary.rows {
        assert_eq!(summary.cell(s, "status"), "ok");
        assert!(summary.num(s, "accesses") > 0.0);
        // 16 MiB of 4 KiB pages, a quarter hot; the workers' own count of
        // hot accesses keeps the pattern's promise.
        assert_eq!(summary.num(s, "hot_pages"), 1024.0);
        assert!((summary.num(s, "hot_access_share") - 0.9).abs() < 0.01);
        let (p50, p99) = (summary.num(s, "lat_p50_ns"), summary.num(s, "lat_p99_ns"));
        assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} p99 {p99}");
        assert!(summary.num(s, "perf.task_clock_ns") > 0.0);
    }
    for r in &series.rows {
        assert!(series.num(r, "span_s") > 0.3);
        assert!(series.num(r, "lat_samples") > 0.0);
    }
    let bind = summary
        .rows
        .iter()
        .find(|r| summary.cell(r, "variant") == "bind:0")
        .unwrap();
    assert_eq!(summary.cell(bind, "pages_node0"), "4096");
    let sys: serde_json::Value = common::json(&dir.path().join("system.json"));
    assert_eq!(sys["variants"].as_array().unwrap().len(), 4);
    assert!(sys["variants"][0]["vmstat_delta"]["pgfault"].is_number());
    assert_eq!(sys["plan"]["expected_hot_share"], 0.9);
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run that changed numa_balancing is sent SIGINT: it exits 130, the old
/// value is back, the state file is gone, and the CSV keeps its rows.
#[test]
fn sigint_restores_numa_balancing_and_keeps_rows() {
    if !is_root() {
        common::skip(
            "sigint_restores_numa_balancing_and_keeps_rows",
            "needs root to change kernel.numa_balancing",
        );
        return;
    }
    let _lock = KNOB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = numa_balancing();
    let target = if before == "2" { "1" } else { "2" };
    let mode = if target == "2" { "tiering" } else { "normal" };
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::cargo_bin("tierbench")
        .unwrap()
        .args(common::LONG_RUN)
        .args(["--numa-balancing", mode, "-o"])
        .arg(out.path())
        .env("TIERBENCH_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let csv = out.path().join("timeseries.csv");
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_for("two interval rows", Duration::from_secs(30), || {
        lines(&csv) >= 3
    });
    assert_eq!(
        numa_balancing(),
        target,
        "the run should have set numa_balancing"
    );
    assert!(state.path().join("knobs.json").exists());
    // SAFETY: kill with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(numa_balancing(), before);
    assert!(!state.path().join("knobs.json").exists());
    let series = common::Table::read(&csv);
    assert!(series.rows.len() >= 2);
    let summary = common::Table::read(&out.path().join("summary.csv"));
    assert_eq!(summary.rows.len(), 1);
    assert_eq!(summary.cell(&summary.rows[0], "status"), "interrupted");
}

/// After a SIGKILL the state file remains; `knobs restore` puts it back;
/// the CSVs parse and keep every row finished before the kill.
#[test]
fn sigkill_leaves_state_that_knobs_restore_puts_back() {
    if !is_root() {
        common::skip(
            "sigkill_leaves_state_that_knobs_restore_puts_back",
            "needs root to change kernel.numa_balancing",
        );
        return;
    }
    // Serialise with the SIGINT test: both change the same knob.
    let _lock = KNOB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = numa_balancing();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::cargo_bin("tierbench")
        .unwrap()
        .args(common::LONG_RUN)
        .args(["--numa-balancing", "normal"])
        .arg("-o")
        .arg(out.path())
        .env("TIERBENCH_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = state.path().join("knobs.json");
    wait_for("the state file", Duration::from_secs(30), || file.exists());
    wait_for("the knob change", Duration::from_secs(5), || {
        numa_balancing() == "1" || before == "1"
    });
    let series = out.path().join("timeseries.csv");
    wait_for("three interval rows", Duration::from_secs(30), || {
        std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 4)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(file.exists());
    let rows = common::Table::read(&series);
    assert!(rows.rows.len() >= 3, "finished rows kept");
    assert!(rows
        .rows
        .iter()
        .all(|r| !rows.cell(r, "accesses").is_empty()));
    let summary = common::Table::read(&out.path().join("summary.csv"));
    assert!(summary.rows.is_empty(), "no variant had finished");
    tb().args(["knobs", "restore"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("restored numa_balancing"));
    assert_eq!(numa_balancing(), before);
    assert!(!file.exists());
}

static KNOB_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `tierbench vm` refuses bad input before starting QEMU.
#[test]
fn vm_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_kernel = dir.path().join("vmlinuz-9.9");
    std::fs::write(&not_kernel, b"text").unwrap();
    let mut fake = vec![0u8; 0x400];
    fake[0x202..0x206].copy_from_slice(b"HdrS");
    let fake_kernel = dir.path().join("vmlinuz-9.8");
    std::fs::write(&fake_kernel, &fake).unwrap();
    std::fs::write(
        dir.path().join("config-9.8"),
        "CONFIG_NUMA=y\nCONFIG_MIGRATION=y\nCONFIG_ACPI_NUMA=y\n# CONFIG_NUMA_BALANCING is not set\nCONFIG_ACPI_HMAT=y\n",
    )
    .unwrap();
    let profile = |from: &str, to: &str| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../hosts/qemu-dram-cxl.toml"
        ))
        .unwrap();
        let p = dir.path().join(format!("p{}.toml", to.len()));
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        p.display().to_string()
    };
    let no_initiator = profile(
        "memory_mib = 2048\ninitiator = 0\n\n[[distance]]",
        "memory_mib = 2048\n\n[[distance]]",
    );
    let bad_sum = profile("memory_mib = 4096", "memory_mib = 4000");
    let k = not_kernel.display().to_string();
    let fk = fake_kernel.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--host",
                "qemu-dram-cxl",
                "--kernel",
                "/nonexistent/vmlinuz",
            ],
            "no such file",
        ),
        (
            vec!["--host", "qemu-dram-cxl", "--kernel", &k],
            "not a Linux x86 kernel image",
        ),
        (
            vec!["--host", "qemu-dram-cxl", "--kernel", &fk],
            "CONFIG_NUMA_BALANCING",
        ),
        (
            vec!["--host", &no_initiator, "--kernel", &fk],
            "no `initiator`",
        ),
        (
            vec!["--host", &bad_sum, "--kernel", &fk],
            "adds up to 4096 MiB",
        ),
        (
            vec!["--host", "no-such-profile", "--kernel", &fk],
            "no-such-profile",
        ),
        (
            vec!["--host", "lab-template", "--kernel", &fk],
            "lab machine",
        ),
    ];
    for (args, needle) in cases {
        let out = tb()
            .arg("vm")
            .args(&args)
            .args(["--accel", "tcg", "--", "probe"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} should mention {needle:?}: {err}"
        );
    }
    // No QEMU on the PATH.
    tb().args([
        "vm",
        "--host",
        "qemu-dram-cxl",
        "--kernel",
        &fk,
        "--",
        "probe",
    ])
    .env("PATH", "/nonexistent")
    .assert()
    .code(2)
    .stderr(predicate::str::contains("qemu-system-x86_64 not found"));
}

/// The CXL profile's own bad input: a device larger than its window, a
/// kernel with the CXL drivers neither built in nor as modules, a QEMU
/// without volatile type-3 memory. One line each, exit 2, nothing booted.
#[test]
fn vm_cxl_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = vec![0u8; 0x400];
    fake[0x202..0x206].copy_from_slice(b"HdrS");
    let kernel = dir.path().join("vmlinuz-9.7");
    std::fs::write(&kernel, &fake).unwrap();
    std::fs::write(
        dir.path().join("config-9.7"),
        "CONFIG_NUMA=y\nCONFIG_MIGRATION=y\nCONFIG_ACPI_NUMA=y\nCONFIG_NUMA_BALANCING=y\n\
         CONFIG_CXL_BUS=y\nCONFIG_CXL_ACPI=m\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hosts/qemu-cxl-type3.toml"
    ))
    .unwrap();
    let narrow = dir.path().join("narrow.toml");
    std::fs::write(
        &narrow,
        text.replacen("window_mib = 4096", "window_mib = 128", 1),
    )
    .unwrap();
    // A QEMU 7.2 first on the PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let qemu = bin.join("qemu-system-x86_64");
    std::fs::write(
        &qemu,
        "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let k = kernel.display().to_string();
    let n = narrow.display().to_string();
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["--host", &n, "--kernel", &k],
            None,
            "window_mib = 128 does not fit 1 card(s) of memory_mib = 256",
        ),
        (
            vec!["--host", "qemu-cxl-type3", "--kernel", &k],
            None,
            "the kernel has no cxl_acpi (CONFIG_CXL_ACPI is neither =y",
        ),
        (
            vec!["--host", "qemu-cxl-type3", "--kernel", &k],
            Some(&old_path),
            "needs QEMU 8.0 or newer (volatile CXL type-3 memory); qemu-system-x86_64 is 7.2",
        ),
    ];
    for (args, path, needle) in cases {
        let mut cmd = tb();
        cmd.arg("vm")
            .args(&args)
            .args(["--accel", "tcg", "-o"])
            .arg(dir.path().join("out"))
            .args(["--", "probe"]);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} should mention {needle:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            !dir.path().join("out").exists(),
            "{args:?} created its --out"
        );
    }
}

/// The bandwidth and latency commands measure, and refuse bad input.
#[test]
fn bw_and_latency_measure_and_refuse_bad_input() {
    let out = tb()
        .args([
            "bw",
            "--kernel",
            "triad",
            "--size",
            "24M",
            "--duration",
            "200ms",
            "--json",
        ])
        .output()
        .unwrap();
    common::ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["mb_per_s"].as_f64().unwrap() > 0.0 && v["passes"].as_u64().unwrap() > 0);
    let out = tb()
        .args(["latency", "--size", "16K", "--duration", "200ms", "--json"])
        .output()
        .unwrap();
    common::ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ns_per_load"].as_f64().unwrap() > 0.0);
    // Loaded latency, where the node has a second CPU for the load.
    let cpus = std::fs::read_to_string("/sys/devices/system/node/node0/cpulist").unwrap();
    if cpus.trim() != "0" {
        let out = tb()
            .args(["latency", "--size", "16M", "--duration", "300ms", "--json"])
            .args(["--load-threads", "1", "--load-size", "64M", "--chains", "4"])
            .output()
            .unwrap();
        common::ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["chains"], 4);
        assert_eq!(v["load_threads"], 1);
        assert!(v["load_mb_per_s"].as_f64().unwrap() > 0.0);
    }
    // The matrix: one cell per (CPU node, memory node), as CSV.
    let out = tb()
        .args(["matrix", "--latency-size", "4M", "--bw-size", "16M"])
        .args(["--duration", "200ms", "--format", "csv"])
        .output()
        .unwrap();
    common::ok(&out);
    let mut rd = csv::Reader::from_reader(&out.stdout[..]);
    let cells: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
    assert!(!cells.is_empty());
    for c in &cells {
        let lat: f64 = c[4].parse().unwrap();
        let bw: f64 = c[6].parse().unwrap();
        assert!(lat > 0.0 && bw > 0.0, "{c:?}");
    }
    for (args, needle) in [
        (vec!["bw", "--kernel", "stream"], "use read"),
        (vec!["bw", "--kernel", "mix:0:1"], "at least 1"),
        (vec!["bw", "--threads", "4096"], "--threads"),
        (vec!["bw", "--size", "1K"], "too small"),
        (vec!["bw", "--duration", "0s"], "--duration"),
        (vec!["bw", "--mem-node", "99"], "--mem-node 99"),
        (vec!["latency", "--stride", "12"], "multiple of 8"),
        (
            vec!["latency", "--size", "64", "--stride", "64"],
            "too small",
        ),
        (vec!["latency", "--cpu-node", "99"], "unknown node 99"),
        (vec!["latency", "--chains", "9"], "1 to 8"),
        (
            vec!["latency", "--load-threads", "4096"],
            "besides the chase",
        ),
        (vec!["matrix", "--duration", "0s"], "--duration"),
        (vec!["matrix", "--bw-size", "4K"], "too small"),
        (vec!["matrix", "--mixes", "read,mix:0:0"], "at least 1"),
        (vec!["matrix", "--mixes", "mix:3:x"], "bad mix"),
        (
            vec!["latency", "--curve", "--delays", "0,100,50"],
            "increase",
        ),
        (
            vec!["latency", "--curve", "--delays", "-5,10"],
            "whole number",
        ),
        (
            vec!["latency", "--curve", "--mem-node", "99"],
            "--mem-node 99",
        ),
        (
            vec!["latency", "--curve", "--load-threads", "4096"],
            "besides the chase",
        ),
        (
            vec!["latency", "--curve", "--sample", "2s", "--duration", "1s"],
            "--sample",
        ),
        (vec!["latency", "-o", "/tmp/x"], "add --curve"),
    ] {
        let out = tb().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} should mention {needle:?}: {err}"
        );
    }
}

/// results/README.md lists every column a run writes, in the file it is
/// written to, and every column it lists for a file is in that file
/// (names with N or NAME stand for a family: `pages_nodeN`, `vmstat.NAME`).
#[test]
fn results_readme_documents_every_column() {
    let dir = tempfile::tempdir().unwrap();
    tb().args([
        "run",
        "--size",
        "8M",
        "--duration",
        "400ms",
        "--interval",
        "200ms",
    ])
    .args(["--pattern", "uniform", "--hot-fraction", "0.5", "-q", "-o"])
    .arg(dir.path())
    .assert()
    .success();
    // A program run writes the program's columns as well.
    let program = tempfile::tempdir().unwrap();
    tb().args([
        "run",
        "--interval",
        "100ms",
        "-q",
        "--metric",
        "([0-9]+)",
        "-o",
    ])
    .arg(program.path())
    .args(["--", "sh", "-c", "sleep 0.3; echo 42"])
    .assert()
    .success();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/README.md"))
            .unwrap();
    // Rows of the first table: | `name` | file | unit | meaning |
    let mut documented: Vec<(String, String)> = Vec::new();
    for line in readme.lines() {
        if line.starts_with("## matrix.csv") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 5 && cells[1].starts_with('`') {
            documented.push((cells[1].trim_matches('`').to_string(), cells[2].to_string()));
        }
    }
    assert!(documented.len() > 20, "{documented:?}");
    let matches = |doc: &str, col: &str| -> bool {
        if !doc.contains('N') && !doc.contains("ROLE") {
            return doc == col;
        }
        // N: digits; NAME, STAT: a counter, event or statistic name; ROLE:
        // a DAMON scheme's role.
        let re = doc
            .replace('.', "\\.")
            .replace("NAME", "[a-z_]+")
            .replace("ROLE", "[a-z_]+")
            .replace("STAT", "[a-z_]+")
            .replace('N', "[0-9]+");
        let re = format!("^{re}$");
        simple_match(&re, col)
    };
    for (file, which) in [("summary.csv", "summary"), ("timeseries.csv", "timeseries")] {
        let t = common::Table::read(&dir.path().join(file));
        let p = common::Table::read(&program.path().join(file));
        let header: Vec<&str> = t.header.iter().chain(p.header.iter()).collect();
        for col in header.iter().copied() {
            assert!(
                documented
                    .iter()
                    .any(|(d, f)| (f == "both" || f == which) && matches(d, col)),
                "{file}: column {col} is not documented in results/README.md"
            );
        }
        for (d, f) in &documented {
            if f != "both" && f != which {
                continue;
            }
            // Per-node counters exist only on kernels with tiering counters;
            // the mechanisms' columns only in runs of a DAMON variant (a
            // slow tier) or of weights this machine lets a run own: the
            // emulated tests read them.
            if matches!(
                d.as_str(),
                "nodeN.NAME" | "damos.ROLE.STAT" | "weight_error_pts"
            ) {
                continue;
            }
            assert!(
                header.iter().any(|c| matches(d, c)),
                "{file}: documented column {d} is not written"
            );
        }
    }
}

/// A tiny matcher for the patterns above: literal characters, `\.`,
/// `[0-9]+` and `[a-z_]+`, anchored at both ends.
fn simple_match(re: &str, s: &str) -> bool {
    let re = re.trim_start_matches('^').trim_end_matches('$');
    fn go(re: &str, s: &str) -> bool {
        if re.is_empty() {
            return s.is_empty();
        }
        for (class, pred) in [
            ("[0-9]+", (|c: char| c.is_ascii_digit()) as fn(char) -> bool),
            ("[a-z_]+", |c: char| {
                c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()
            }),
        ] {
            if let Some(rest) = re.strip_prefix(class) {
                let n = s.chars().take_while(|&c| pred(c)).count();
                return (1..=n).any(|k| go(rest, &s[k..]));
            }
        }
        if let Some(rest) = re.strip_prefix("\\.") {
            return s.starts_with('.') && go(rest, &s[1..]);
        }
        let c = re.chars().next().unwrap();
        s.starts_with(c) && go(&re[c.len_utf8()..], &s[c.len_utf8()..])
    }
    go(re, s)
}

/// Writes a results directory with the given summary rows
/// (variant, accesses/s) and host profile.
fn fake_run(dir: &Path, kernel: &str, host: &str, rows: &[(&str, f64)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv =
        String::from("variant,iteration,status,accesses_per_s,vmstat.pgpromote_success\n");
    for (i, (v, a)) in rows.iter().enumerate() {
        csv.push_str(&format!("{v},{},ok,{a},0\n", i + 1));
    }
    std::fs::write(dir.join("summary.csv"), csv).unwrap();
    common::system_record(kernel, Some(host), "0:cpu+mem,1:mem")
        .write(dir)
        .unwrap();
}

/// compare on known inputs: +27.3% with p = 0.021 is marked, +8.3% with
/// p = 0.57 is not (hand computation in src/stats.rs); a run from another
/// host is refused unless forced.
#[test]
fn compare_marks_significant_changes_and_refuses_other_hosts() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    fake_run(
        &a,
        "6.1.0-56-amd64",
        "qemu-dram-cxl",
        &[
            ("x", 10.0),
            ("x", 11.0),
            ("x", 12.0),
            ("y", 10.0),
            ("y", 12.0),
            ("y", 14.0),
        ],
    );
    fake_run(
        &b,
        "6.12.117+deb12-amd64",
        "qemu-dram-cxl",
        &[
            ("x", 13.0),
            ("x", 14.0),
            ("x", 15.0),
            ("y", 11.0),
            ("y", 13.0),
            ("y", 15.0),
        ],
    );
    fake_run(&c, "6.12.117+deb12-amd64", "lab-1", &[("x", 13.0)]);
    let out = tb().args(["compare"]).arg(&a).arg(&b).output().unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    let (x, y) = t.split_once("promote-hot: y").unwrap();
    assert!(x.contains("+27.3%*"), "{t}");
    assert!(y.contains("+8.3%") && !y.contains("+8.3%*"), "{t}");
    assert!(t.lines().all(|l| l.chars().count() <= 72), "{t}");
    let md = tb()
        .args(["compare", "--format", "markdown"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(String::from_utf8(md.stdout)
        .unwrap()
        .contains("| accesses/s |"));
    tb().args(["compare"])
        .arg(&a)
        .arg(&c)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("host profile").and(predicate::str::contains("--force")));
    tb().args(["compare", "--force"])
        .arg(&a)
        .arg(&c)
        .assert()
        .success();
    tb().args(["compare"])
        .arg(d.path().join("nothing"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such directory"));
}

/// The reference results of 6.1 vs 6.12 in every format: the JSON
/// document parses and holds every value and change of the text table
/// (cell by cell, same order); the LAVA lines are one well-formed
/// `lava-test-case` per column and metric.
#[test]
fn compare_json_and_lava_carry_the_text_tables_numbers() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [
        top.join("results/reference/6.1/promote-hot"),
        top.join("results/reference/6.12/promote-hot"),
    ];
    let run = |format: &str| {
        let out = tb()
            .args(["compare", "--format", format])
            .args(&dirs)
            .output()
            .unwrap();
        assert!(out.status.success(), "{format}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("text");
    let doc: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let blocks = doc["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty());
    let mut checked = 0;
    for b in blocks {
        let title = b["title"].as_str().unwrap();
        let section = text
            .split("\n\n")
            .find(|s| s.starts_with(&format!("{title}\n")))
            .unwrap_or_else(|| panic!("{title} not in the text table"));
        for row in b["rows"].as_array().unwrap() {
            let label = row["metric"].as_str().unwrap();
            let line = section
                .lines()
                .find(|l| l.starts_with(&format!("{label:<20}")))
                .unwrap_or_else(|| panic!("{title}: no {label} line"));
            let cells = row["cells"].as_array().unwrap();
            let mut want = vec![
                cells[0]["text"].as_str().unwrap().to_string(),
                cells[1]["text"].as_str().unwrap().to_string(),
            ];
            let change = cells[1]["change_text"].as_str().unwrap();
            if !change.is_empty() {
                want.push(change.to_string());
            }
            assert!(
                line.ends_with(want.last().unwrap().as_str()),
                "{line} vs {want:?}"
            );
            let mut rest = &line[20..];
            for w in &want {
                let at = rest
                    .find(w.as_str())
                    .unwrap_or_else(|| panic!("{line}: no {w}"));
                rest = &rest[at + w.len()..];
            }
            // The numbers behind the text: a mean for every value shown.
            for c in cells {
                if c["status"] == "ok" {
                    assert!(c["mean"].is_f64() && c["n"].as_u64().unwrap() > 0, "{c}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} rows checked");

    let lava = run("lava");
    let lines: Vec<&str> = lava.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(w[0], "lava-test-case", "{l}");
        assert!(
            w[1].chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c)),
            "{l}"
        );
        assert_eq!(w[2], "--result", "{l}");
        assert!(["pass", "fail", "skip"].contains(&w[3]), "{l}");
        if w.len() > 4 {
            assert_eq!((w[4], w[6]), ("--measurement", "--units"), "{l}");
            w[5].parse::<f64>().unwrap();
        }
    }
    assert!(lava.contains("promote-hot.6.12.117_deb12.preferred-many_0_balancing.pgpromote_success --result pass --measurement 16384 --units pages"), "{lava}");
}

/// `compare --format mmtests` on the reference results holds the text
/// table's numbers: every Amean value is the text cell's mean (to the
/// text's rounding), every change the text's change, signed positive when
/// better (a latency that fell), with the same `*` marks; the counters
/// are its Ops lines. Both a run across kernels and one run's variants.
#[test]
fn compare_mmtests_carries_the_text_tables_numbers() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases: [Vec<PathBuf>; 2] = [
        vec![
            top.join("results/reference/6.1/promote-hot"),
            top.join("results/reference/6.12/promote-hot"),
        ],
        vec![top.join("results/reference/6.12/mechanisms")],
    ];
    let value = regex::Regex::new(r"^-?[0-9.]+(e[0-9]+)?").unwrap();
    let cell = regex::Regex::new(
        r"(-?[0-9]+\.[0-9]{2}) ([(*]) *(-?[0-9]+\.[0-9]{2}%|n/a|n/c)[)*]|(-?[0-9]+\.[0-9]{2})(?: {2,}|\s*$)|([a-z/]+)",
    )
    .unwrap();
    let mut checked = 0;
    for dirs in &cases {
        let run = |format: &str| {
            let out = tb()
                .args(["compare", "--format", format])
                .args(dirs)
                .output()
                .unwrap();
            assert!(out.status.success(), "{format}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let (text, mm) = (run("text"), run("mmtests"));
        // A block's Ops lines follow it after a blank line.
        let mut blocks: Vec<String> = Vec::new();
        for chunk in mm.split("\n\n") {
            match blocks.last_mut() {
                Some(last) if chunk.starts_with("Ops") => last.push_str(&format!("\n{chunk}")),
                _ => blocks.push(chunk.to_string()),
            }
        }
        for block in blocks.iter().filter(|b| b.contains("\nAmean")) {
            let lines: Vec<&str> = block.lines().collect();
            let title = lines[0];
            let legend: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("  (").map(|r| &r[3..]))
                .collect();
            let width = if legend.is_empty() { 2 } else { legend.len() };
            for other in 1..width {
                // The text table narrows a wide block to baseline-vs-one.
                let text_title = if legend.is_empty() {
                    title.to_string()
                } else {
                    format!("{title}: {} vs {}", legend[other], legend[0])
                };
                let section = text
                    .split("\n\n")
                    .find(|s| s.starts_with(&format!("{text_title}\n")))
                    .unwrap_or_else(|| panic!("{text_title} not in the text table:\n{text}"));
                for tl in section.lines().skip_while(|l| !l.contains("    ")).skip(1) {
                    if tl.starts_with("n = ") {
                        break;
                    }
                    let (label, rest) = tl.split_at(20.min(tl.len()));
                    let label = label.trim_end();
                    let (stat, lower) = match lines.iter().find(|l| {
                        l.starts_with("Amean") && l[10..].starts_with(&format!("{label} "))
                    }) {
                        Some(l) => (*l, label.contains("latency") || label.starts_with("s to")),
                        None => (
                            *lines
                                .iter()
                                .find(|l| l.starts_with(&format!("Ops       {label} ")))
                                .unwrap_or_else(|| panic!("{title}: no {label} line\n{block}")),
                            false,
                        ),
                    };
                    let mm_cells: Vec<regex::Captures> =
                        cell.captures_iter(&stat[10 + label.len()..]).collect();
                    let text_cells: Vec<&str> = rest
                        .split("  ")
                        .filter(|c| !c.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    for (text_cell, mm_cell) in [
                        (text_cells[0], &mm_cells[0]),
                        (text_cells[1], &mm_cells[other]),
                    ] {
                        let mm_value = mm_cell.get(1).or(mm_cell.get(4));
                        match value.find(text_cell) {
                            Some(t) => {
                                let t: f64 = t.as_str().parse().unwrap();
                                let m: f64 = mm_value
                                    .unwrap_or_else(|| panic!("{stat}"))
                                    .as_str()
                                    .parse()
                                    .unwrap();
                                assert!(
                                    (t - m).abs() <= 0.0051 * m.abs() + 0.5,
                                    "{label}: text {t} vs mmtests {m}\n{tl}\n{stat}"
                                );
                            }
                            None => assert_eq!(
                                mm_cell.get(5).map(|m| m.as_str()),
                                Some(text_cell),
                                "{tl}\n{stat}"
                            ),
                        }
                    }
                    // The change: the text's, signed better-is-positive.
                    if let (Some(change), Some(pct)) = (text_cells.get(2), mm_cells[other].get(3)) {
                        if let Some(t) =
                            change.strip_suffix('*').unwrap_or(change).strip_suffix('%')
                        {
                            let t: f64 = t.parse().unwrap();
                            let m: f64 = pct.as_str().trim_end_matches('%').parse().unwrap();
                            let want = if lower { -t } else { t };
                            assert!(
                                (want - m).abs() <= 0.051,
                                "{label}: text {t} vs mmtests {m}"
                            );
                            let star = &mm_cells[other][2] == "*";
                            assert_eq!(change.ends_with('*'), star, "{tl}\n{stat}");
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "{checked} rows checked");
}

/// Scenario files: errors name the file and the key, exit 2, nothing
/// changes; options a scenario sets are refused beside it.
#[test]
fn scenario_errors_name_the_file_and_the_key() {
    let before = numa_balancing();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("typo.toml");
    std::fs::write(
        &f,
        "description = \"x\"\nkind = \"run\"\n[knobs]\nnuma_balancing = \"tiering\"\n[workload]\nhot_fractoin = 0.1\n[[variant]]\npolicy = \"default\"\n",
    )
    .unwrap();
    tb().args(["run", "--scenario"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("typo.toml").and(predicate::str::contains("hot_fractoin")),
        );
    let g = d.path().join("bad-value.toml");
    std::fs::write(
        &g,
        "description = \"x\"\nkind = \"run\"\n[workload]\npattern = \"hot-cold\"\nhot_fraction = 1.0\n[[variant]]\npolicy = \"default\"\n",
    )
    .unwrap();
    tb().args(["run", "--scenario"])
        .arg(&g)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bad-value.toml: workload.hot_fraction",
        ));
    tb().args(["run", "--scenario", "promote-hot", "--duration", "1s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    tb().args(["run", "--scenario", "no-such-scenario"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-scenario"));
    assert_eq!(numa_balancing(), before);
}

/// The per-interval census costs the same whatever the buffer's size: a
/// 64 MiB buffer's interval rows examine the 512 pages asked for, say so,
/// and leave the whole-buffer counts to the summary's full census.
#[test]
fn interval_rows_sample_the_census_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    tb().args([
        "run",
        "--size",
        "64M",
        "--duration",
        "1s",
        "--interval",
        "250ms",
    ])
    .args([
        "--census-sample",
        "512",
        "--hot-fraction",
        "0.5",
        "-q",
        "-o",
    ])
    .arg(dir.path())
    .env("TIERBENCH_STATE_DIR", dir.path().join("state"))
    .assert()
    .success();
    let series = common::Table::read(&dir.path().join("timeseries.csv"));
    assert!(!series.rows.is_empty());
    for r in &series.rows {
        assert_eq!(series.cell(r, "census_pages"), "512");
        assert_eq!(series.cell(r, "pages_node0"), "");
        assert_eq!(series.cell(r, "hot_pages"), "8192");
        let ci = series.num(r, "hot_fast_share_ci95");
        assert!(ci > 0.0 && ci < 0.01, "{ci}");
    }
    let summary = common::Table::read(&dir.path().join("summary.csv"));
    let s = &summary.rows[0];
    assert_eq!(summary.cell(s, "census_pages"), (16384 + 8192).to_string());
    assert_eq!(summary.cell(s, "pages_node0"), "16384");
    assert_eq!(summary.cell(s, "hot_fast_share_ci95"), "0.0000");
    let notes = summary.cell(s, "notes");
    assert!(
        notes.contains("sampler: ") && notes.contains("ms of CPU per 250 ms row"),
        "{notes}"
    );
}

/// `hosts`, `scenarios`, `hosts --check` and `generate`: what a bare name
/// finds, whether this machine is a profile's, and bad input as one line.
#[test]
fn names_are_listed_checked_and_generated() {
    let elsewhere = tempfile::tempdir().unwrap();
    let listed = tb()
        .current_dir(elsewhere.path())
        .env("XDG_CONFIG_HOME", elsewhere.path())
        .arg("scenarios")
        .output()
        .unwrap();
    let text = String::from_utf8(listed.stdout).unwrap();
    for name in [
        "promote-hot",
        "fill-fast",
        "latency-bandwidth",
        "first-look",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} not listed: {text}"
        );
    }
    // A copy in the config directory comes before the built-in one.
    let mine = elsewhere.path().join("tierbench/hosts");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(
        mine.join("my-box.toml"),
        "description = \"mine\"\nkind = \"lab\"\n[[node]]\nid = 0\ncpus = \"0\"\nmemory_mib = 1\n[expect]\nfast = \"0\"\nslow = \"\"\n",
    )
    .unwrap();
    let hosts = tb()
        .current_dir(elsewhere.path())
        .env("XDG_CONFIG_HOME", elsewhere.path())
        .arg("hosts")
        .output()
        .unwrap();
    let text = String::from_utf8(hosts.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("my-box") && l.contains("tierbench/hosts/my-box.toml")),
        "{text}"
    );
    // hosts --check: the answer follows the machine's node count.
    let one_node = std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
        .count()
        == 1;
    let check = tb()
        .current_dir(elsewhere.path())
        .env("XDG_CONFIG_HOME", elsewhere.path())
        .args(["hosts", "--check", "my-box"])
        .output()
        .unwrap();
    assert_eq!(check.status.success(), one_node, "{check:?}");
    if one_node {
        tb().args(["hosts", "--check", "qemu-2socket-cxl"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains(
                "this machine is not qemu-2socket-cxl",
            ));
    }
    tb().args(["hosts", "--check", "no-such-box"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no host profile named \"no-such-box\"",
        ));
    tb().args(["generate", "man"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out DIR"));
    let man = elsewhere.path().join("man");
    tb().args(["generate", "man", "--out"])
        .arg(&man)
        .assert()
        .success();
    assert!(std::fs::read_to_string(man.join("tierbench-run.1"))
        .unwrap()
        .contains("scenario"));
    tb().args(["generate", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::contains("#compdef tierbench"));
}

/// `conform --list` shows the cases this machine expresses and what the
/// rest need, without running anything or needing root; on a machine where
/// no page can move (one node) `conform` is a kselftest skip naming what is
/// missing, and malformed rate-limit options are bad input.
#[test]
fn conform_lists_its_classes_and_skips_where_nothing_can_move() {
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
        .count();
    let list = tb()
        .args(["conform", "--list", "--modes", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(0), "{text}");
    assert!(
        text.contains("of 64 classes run on this machine (tiers top"),
        "{text}"
    );
    if nodes == 1 {
        // Only the page on the executing node, with the mask that node
        // alone (per masked policy) or no mask (the control).
        assert!(text.contains("coverage: 3 of 64 classes"), "{text}");
        assert!(
            text.contains(
                "not expressible: nb=2 default page=lower1: needs a node in lower1 for the pages"
            ),
            "{text}"
        );
        tb().arg("conform")
            .assert()
            .code(4)
            .stdout(predicate::str::contains(
                "conform: SKIP: no class where a page can move is expressible here",
            ));
    }
    tb().args(["conform", "--rate-limit-period", "500ms"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "shorter than the kernel's one-second rate window",
        ));
    tb().args(["conform", "--rate-limit", "0"]).assert().code(2);
}
