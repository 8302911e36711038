//! Measurements whose checks need the machine to themselves: scripts/test
//! runs this file alone, one test at a time, after the CLI tests (which
//! run two at a time and would share the CPUs with the chase and its load).
//! Their figures are an optimised build's: scripts/test runs them with
//! `--release`, and an unoptimised build says "skip".

mod common;

fn tb() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tierbench").unwrap()
}

/// Whether this is an unoptimised build, whose load threads cannot drive
/// memory (the paced line loop ran at a tenth of its speed, and a curve
/// test failed on that, not on the curve); logs the skip.
fn unoptimised(name: &str) -> bool {
    if cfg!(debug_assertions) {
        common::skip(
            name,
            "unoptimised build: run with `cargo test --release --test measure`",
        );
    }
    cfg!(debug_assertions)
}

/// A short loaded-latency curve on this machine: the load delivers more
/// the shorter its delay, the latency does not fall as the load grows
/// (within noise), every row has all its columns, and the directory reads
/// back into compare and plot.
#[test]
fn latency_curve_rises_with_the_load_and_reads_back() {
    if unoptimised("latency_curve_rises_with_the_load_and_reads_back") {
        return;
    }
    let cpus = std::fs::read_to_string("/sys/devices/system/node/node0/cpulist").unwrap();
    if cpus.trim() == "0" {
        common::skip(
            "latency_curve_rises_with_the_load_and_reads_back",
            "node 0 has one CPU: no CPU for the load beside the chase",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("curve");
    let out = tb()
        .args([
            "latency",
            "--curve",
            "--mem-node",
            "0",
            "--delays",
            "0,300,3000,30000",
        ])
        // Chase and load each larger than the last-level cache of the
        // machines this runs on (480 MiB here), so they read memory: a
        // 32 MiB chase sat in L3 and its latency swung with the
        // neighbours' use of it (65 to 168 ns within one run).
        .args(["--size", "1G", "--load-size", "1G", "--duration", "500ms"])
        .args(["--sample", "50ms", "--json", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    common::ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pts = v.as_array().unwrap();
    assert_eq!(pts.len(), 5, "idle + 4 delays: {v}");
    assert!(pts[0]["delay"].is_null() && pts[0]["load_threads"] == 0);
    let mb: Vec<f64> = pts[1..]
        .iter()
        .map(|p| p["load_mb_per_s"].as_f64().unwrap())
        .collect();
    // Each shorter delay delivers more (10x steps in delay, so far apart
    // that noise cannot reorder them).
    for w in mb.windows(2) {
        assert!(
            w[0] > w[1],
            "bandwidth must fall as the delay grows: {mb:?}"
        );
    }
    let median = |p: &serde_json::Value| p["latency_median_ns"].as_f64().unwrap();
    // Flat out against the lightest load: the latency does not fall (10%
    // for a shared VM's noise).
    assert!(
        median(&pts[1]) >= 0.9 * median(&pts[4]),
        "latency fell as the load grew: {v}"
    );
    for p in pts {
        let (b, m, w) = (
            p["latency_best_ns"].as_f64().unwrap(),
            median(p),
            p["latency_worst_ns"].as_f64().unwrap(),
        );
        assert!(0.0 < b && b <= m && m <= w, "{p}");
        assert!(p["samples"].as_u64().unwrap() >= 5, "{p}");
    }
    // The CSV as written: every column filled but the idle point's delay.
    let t = common::Table::read(&out_dir.join("curve.csv"));
    assert_eq!(t.rows.len(), 5);
    for (i, row) in t.rows.iter().enumerate() {
        for (col, cell) in t.header.iter().zip(row) {
            assert!(
                !cell.is_empty()
                    || (i == 0 && col == "delay")
                    // A delay's time: none when idle or flat out.
                    || (i <= 1 && col == "delay_ns"),
                "row {i}: {col} is empty"
            );
        }
    }
    assert!(out_dir.join("system.json").exists());
    // Two characterisations compare figure by figure and plot together.
    let out = tb()
        .arg("compare")
        .arg(&out_dir)
        .arg(&out_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    common::ok(&out);
    assert!(text.contains("curve node0 delay 0 median ns"), "{text}");
    let out = tb()
        .arg("plot")
        .arg(&out_dir)
        .arg("-o")
        .arg(dir.path().join("both"))
        .output()
        .unwrap();
    common::ok(&out);
    let svg = std::fs::read_to_string(dir.path().join("both.svg")).unwrap();
    assert!(
        svg.contains("loaded latency") && svg.contains("node0 (fast)"),
        "{svg}"
    );
}

/// The default sweep on this machine: flat out first, then delays that
/// ask for shrinking shares of the flat-out rate. The first delayed point
/// delivers within 10% of what its delay asks (a line per `delay_ns` per
/// thread, at most the flat-out rate), and each lighter load delivers less
/// than the one before.
#[test]
fn the_default_curve_steps_down_from_flat_out_where_the_delays_say() {
    let name = "the_default_curve_steps_down_from_flat_out_where_the_delays_say";
    if unoptimised(name) {
        return;
    }
    let cpus = std::fs::read_to_string("/sys/devices/system/node/node0/cpulist").unwrap();
    if cpus.trim() == "0" {
        common::skip(
            name,
            "node 0 has one CPU: no CPU for the load beside the chase",
        );
        return;
    }
    let out = tb()
        .args([
            "latency",
            "--curve",
            "--mem-node",
            "0",
            "--load-kernel",
            "read",
        ])
        .args(["--size", "1G", "--load-size", "1G", "--duration", "500ms"])
        .args(["--sample", "50ms", "--json"])
        .output()
        .unwrap();
    common::ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pts = v.as_array().unwrap();
    let f = |p: &serde_json::Value, k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k}: {p}"));
    assert!(
        pts.len() >= 4,
        "idle, flat out and two delays at least: {v}"
    );
    assert_eq!(pts[1]["delay"], 0, "{v}");
    let flat = f(&pts[1], "load_mb_per_s");
    let threads = f(&pts[2], "load_threads");
    // Read moves 64 bytes a line.
    let asked = |p: &serde_json::Value| (threads * 64.0 / f(p, "delay_ns") * 1e3).min(flat);
    let first = &pts[2];
    let ratio = f(first, "load_mb_per_s") / asked(first);
    assert!(
        (0.9..=1.1).contains(&ratio),
        "the first delayed point delivered {ratio:.3} x what its delay asks \
         ({:.0} MB/s for {:.0}; flat out {flat:.0}): {v}",
        f(first, "load_mb_per_s"),
        asked(first)
    );
    let mb: Vec<f64> = pts[1..].iter().map(|p| f(p, "load_mb_per_s")).collect();
    for w in mb.windows(2) {
        assert!(w[1] < w[0], "bandwidth must fall with every step: {mb:?}");
    }
    for p in &pts[2..] {
        let (d, ns) = (f(p, "delay"), f(p, "delay_ns"));
        assert!(
            d >= 1.0 && ns > 0.0 && ns < d * 10.0,
            "a step costs 0-10 ns: {p}"
        );
    }
}
