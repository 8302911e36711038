//! Measurements whose checks need the machine to themselves: scripts/test
//! runs this file alone, one test at a time, after the CLI tests (which
//! run two at a time and would share the CPUs with the chase and its load).

mod common;

fn tb() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tierbench").unwrap()
}

/// A short loaded-latency curve on this machine: the load delivers more
/// the shorter its delay, the latency does not fall as the load grows
/// (within noise), every row has all its columns, and the directory reads
/// back into compare and plot.
#[test]
fn latency_curve_rises_with_the_load_and_reads_back() {
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
                !cell.is_empty() || (i == 0 && col == "delay"),
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
