//! The reliability defects found by an adversarial pass, one test each
//! (issue "one owner of the knobs at a time, no orphaned QEMU, no
//! panics"). Each test names the item it covers. Tests that change kernel
//! knobs need root: they print SKIP without it, and fail under `CI=true`,
//! where root is always there.
//!
//! QEMU's death with its parent is tested in `emulated.rs`, which has the
//! kernels.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

mod common;

fn tb() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tierbench").unwrap()
}

fn spawn(args: &[&str], state: &Path) -> Child {
    Command::cargo_bin("tierbench")
        .unwrap()
        .args(args)
        .env("TIERBENCH_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A 4-second run that owns the knobs (numa_balancing normal, and `extra`).
fn spawn_owner(state: &Path, out: &Path, extra: &[&str]) -> Child {
    let out = out.display().to_string();
    let mut args = vec![
        "run",
        "--size",
        "4M",
        "--duration",
        "4s",
        "--numa-balancing",
        "normal",
        "-q",
        "-o",
        &out,
    ];
    args.extend(extra);
    spawn(&args, state)
}

/// Whether this test can change knobs; without root it says SKIP, and
/// under CI (which runs as root) a skip is a failure.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    common::skip(test, "needs root to change kernel knobs");
    false
}

fn knob(path: &str) -> String {
    let raw = std::fs::read_to_string(path).unwrap();
    let raw = raw.trim();
    match (raw.find('['), raw.find(']')) {
        (Some(a), Some(b)) => raw[a + 1..b].to_string(),
        _ => raw.to_string(),
    }
}

/// A run short enough to repeat: 4 MiB, 300 ms in 100 ms rows.
const SHORT_RUN: [&str; 7] = [
    "run",
    "--size",
    "4M",
    "--duration",
    "300ms",
    "--interval",
    "100ms",
];

const NUMA_BALANCING: &str = "/proc/sys/kernel/numa_balancing";
const RATE_LIMIT: &str = "/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps";
const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const THP_DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";

/// Every knob these tests touch, as it is now.
fn knobs_now() -> Vec<(&'static str, String)> {
    [NUMA_BALANCING, RATE_LIMIT, THP, THP_DEFRAG]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| (p, knob(p)))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 with one line saying what is wrong (clap adds a pointer to
/// --help after its own), no panic.
fn refused(out: &Output, needle: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains(needle),
        "expected {needle:?} in the first line of {err}"
    );
    let rest: Vec<&str> = err
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        rest.is_empty() || rest == ["For more information, try '--help'."],
        "one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Item 1: two knob-changing runs started in the same instant, 20 times:
/// one owns the knobs, the other is refused naming the owner (or runs
/// after it), and every knob ends as it was found.
#[test]
fn item01_two_runs_started_together_leave_the_knobs_as_found() {
    if !root_or_skip("item01") {
        return;
    }
    let before = knobs_now();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let a_out = out.path().join(format!("a{round}"));
        let b_out = out.path().join(format!("b{round}"));
        let common = [
            "run",
            "--size",
            "4M",
            "--duration",
            "300ms",
            "--interval",
            "100ms",
        ];
        let mut a: Vec<&str> = common.to_vec();
        a.extend([
            "--numa-balancing",
            "tiering",
            "--promote-rate-limit",
            "999",
            "-q",
            "-o",
        ]);
        let mut b: Vec<&str> = common.to_vec();
        b.extend(["--numa-balancing", "normal", "--thp", "always", "-q", "-o"]);
        let a_out_s = a_out.display().to_string();
        let b_out_s = b_out.display().to_string();
        a.push(&a_out_s);
        b.push(&b_out_s);
        let ca = spawn(&a, state.path());
        let cb = spawn(&b, state.path());
        let (oa, ob) = (
            ca.wait_with_output().unwrap(),
            cb.wait_with_output().unwrap(),
        );
        let codes = [oa.status.code(), ob.status.code()];
        assert!(codes.contains(&Some(0)), "round {round}: {codes:?}");
        for o in [&oa, &ob] {
            if o.status.code() == Some(2) {
                assert!(
                    stderr_of(o).contains("belong to another tierbench (pid"),
                    "round {round}: {}",
                    stderr_of(o)
                );
            } else {
                assert_eq!(o.status.code(), Some(0), "{}", stderr_of(o));
            }
        }
        assert_eq!(knobs_now(), before, "round {round}: knobs changed for good");
        assert!(!state.path().join("knobs.json").exists(), "round {round}");
    }
}

/// Item 2: a run that changes no knob, started while a knob-changing run is
/// alive, leaves that run's knobs alone (and says whose they were); it
/// neither deletes a dead run's state file nor trips over a corrupt one.
#[test]
fn item02_a_run_that_changes_no_knob_touches_no_knob_state() {
    if !root_or_skip("item02") {
        return;
    }
    let before = knobs_now();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let owner = spawn_owner(
        state.path(),
        &out.path().join("owner"),
        &["--thp-defrag", "never"],
    );
    let file = state.path().join("knobs.json");
    wait_for("the owner's state file", Duration::from_secs(20), || {
        file.exists()
    });
    wait_for("the owner's knobs", Duration::from_secs(5), || {
        knob(NUMA_BALANCING) == "1"
    });
    let plain = out.path().join("plain");
    tb().args([
        "run",
        "--size",
        "4M",
        "--duration",
        "500ms",
        "--interval",
        "100ms",
        "-q",
    ])
    .arg("-o")
    .arg(&plain)
    .env("TIERBENCH_STATE_DIR", state.path())
    .assert()
    .success();
    assert_eq!(
        knob(NUMA_BALANCING),
        "1",
        "the plain run restored another run's knobs"
    );
    assert_eq!(knob(THP_DEFRAG), "never");
    assert!(
        file.exists(),
        "the plain run removed another run's state file"
    );
    let sys = std::fs::read_to_string(plain.join("system.json")).unwrap();
    assert!(
        sys.contains("belonged to another tierbench"),
        "a note says so"
    );
    let o = owner.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert_eq!(knobs_now(), before);

    // A dead run's state file, and a corrupt one: a plain run keeps both.
    for (i, text) in [
        r#"{"pid": 999999, "saved": [["thp_defrag", "always"]]}"#,
        "{ not json",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&file, text).unwrap();
        tb().args(SHORT_RUN)
            .args(["-q", "-o"])
            .arg(out.path().join(format!("after-dead-{i}")))
            .env("TIERBENCH_STATE_DIR", state.path())
            .assert()
            .success();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        assert_eq!(knobs_now(), before);
    }
    // Not root: a plain run never writes a knob (it used to fail writing
    // THP defrag back from another run's state file).
    std::fs::write(
        &file,
        r#"{"pid": 999999, "saved": [["thp_defrag", "always"]]}"#,
    )
    .unwrap();
    let shared_out = PathBuf::from(format!("/tmp/tierbench-nonroot-{}", std::process::id()));
    let setpriv = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("tierbench"))
        .args(SHORT_RUN)
        .args(["-q", "-o"])
        .arg(&shared_out)
        .env("TIERBENCH_STATE_DIR", state.path())
        .current_dir("/tmp")
        .output();
    match setpriv {
        Ok(o) => assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o)),
        Err(e) => common::skip("item02 (not root)", &format!("setpriv: {e}")),
    }
    let _ = std::fs::remove_dir_all(&shared_out);
    assert_eq!(knobs_now(), before);
    assert!(file.exists());
    // While a pending state file is there, a knob-changing run is refused.
    let o = tb()
        .args(SHORT_RUN)
        .args(["--numa-balancing", "normal"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .output()
        .unwrap();
    refused(&o, "knobs restore");
}

/// Item 3: `knobs restore` refuses while the owner lives, naming its pid,
/// command line and start; `--force` restores anyway.
#[test]
fn item03_knobs_restore_refuses_a_live_owner() {
    if !root_or_skip("item03") {
        return;
    }
    let before = knobs_now();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let owner = spawn_owner(state.path(), &out.path().join("o"), &[]);
    let pid = owner.id();
    let file = state.path().join("knobs.json");
    wait_for("the owner's state file", Duration::from_secs(20), || {
        file.exists()
    });
    let o = tb()
        .args(["knobs", "restore"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .output()
        .unwrap();
    refused(&o, &format!("pid {pid}"));
    let err = stderr_of(&o);
    assert!(
        err.contains("--numa-balancing normal") && err.contains("since 20"),
        "{err}"
    );
    assert_eq!(
        knob(NUMA_BALANCING),
        "1",
        "a live owner's knobs were restored"
    );
    tb().args(["knobs", "show"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("pid {pid}")));
    tb().args(["knobs", "restore", "--force"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("restored numa_balancing"));
    assert_eq!(knobs_now(), before);
    let o = owner.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert_eq!(knobs_now(), before);
}

/// Item 4: a state file naming a knob outside the fixed list (a path) is
/// refused, and the file it points at is untouched.
#[test]
fn item04_knobs_restore_writes_only_known_knob_files() {
    if !root_or_skip("item04") {
        return;
    }
    let victim = PathBuf::from(format!("/tmp/tierbench-victim-{}", std::process::id()));
    std::fs::write(&victim, "keep\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("knobs.json");
    let rel = format!("../../../..{}", victim.display());
    std::fs::write(
        &file,
        format!(r#"{{"pid": 999999, "saved": [["numab.{rel}", "1"]]}}"#),
    )
    .unwrap();
    let o = tb()
        .args(["knobs", "restore"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .output()
        .unwrap();
    refused(&o, "unknown numa_balancing scanner knob");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    assert!(
        file.exists(),
        "an unreadable state file is kept for a person to read"
    );
    let _ = std::fs::remove_file(&victim);
}

/// Item 5: a panic after the knobs changed restores them, ends the process
/// at once (no hang) with 101, and says so; the command line that panicked
/// before is now refused as bad input.
#[test]
fn item05_a_panic_after_the_knobs_changed_restores_and_exits() {
    if !root_or_skip("item05") {
        return;
    }
    let before = knobs_now();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let o = Command::cargo_bin("tierbench")
        .unwrap()
        .args([
            "run",
            "--size",
            "4M",
            "--duration",
            "1s",
            "--numa-balancing",
            "tiering",
            "--thp",
            "always",
            "--demotion",
            "on",
            "-q",
            "-o",
        ])
        .arg(out.path().join("p"))
        .env("TIERBENCH_STATE_DIR", state.path())
        .env("TIERBENCH_TEST_PANIC_AFTER_KNOBS", "1")
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(101), "{err}");
    assert!(err.contains("knobs restored"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(knobs_now(), before);
    assert!(!state.path().join("knobs.json").exists());
    let o = tb()
        .args([
            "run",
            "--size",
            "4M",
            "--duration",
            "1s",
            "--warmup",
            "15000000000000000000s",
            "--numa-balancing",
            "tiering",
            "--thp",
            "always",
            "--demotion",
            "on",
        ])
        .env("TIERBENCH_STATE_DIR", state.path())
        .output()
        .unwrap();
    refused(&o, "too long");
    assert_eq!(knobs_now(), before);
}

/// Item 7: huge durations anywhere are one line and exit 2, never a panic.
#[test]
fn item07_huge_durations_are_refused() {
    let huge = "100000000000000000000s";
    let d = tempfile::tempdir().unwrap();
    let scenario = d.path().join("long.toml");
    std::fs::write(
        &scenario,
        format!(
            "description = \"x\"\nkind = \"run\"\n[timing]\nduration = \"{huge}\"\n\
             [[variant]]\npolicy = \"default\"\n"
        ),
    )
    .unwrap();
    let s = scenario.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--duration", huge],
        vec!["run", "--warmup", huge],
        vec!["run", "--interval", huge],
        vec!["run", "--move-hot-at", huge],
        vec!["run", "--duration", "8000000h"],
        vec!["bw", "--duration", huge],
        vec!["latency", "--duration", huge],
        vec!["matrix", "--duration", huge],
        vec!["conform", "--period", huge],
        vec![
            "vm",
            "--host",
            "qemu-dram-cxl",
            "--kernel",
            "/k",
            "--timeout",
            huge,
            "--",
            "topo",
        ],
        vec!["run", "--scenario", &s],
    ];
    for args in cases {
        let o = tb().args(&args).output().unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("too long"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Item 8: oversubscription is bounded (4 workers per CPU), refused at
/// once beyond it; at the bound, SIGTERM ends the run within about an
/// interval.
#[test]
fn item08_oversubscribed_threads_are_bounded_and_stop_quickly() {
    let t0 = Instant::now();
    let o = tb()
        .args([
            "run",
            "--threads",
            "10000",
            "--oversubscribe",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    refused(&o, "workers per CPU");
    let o = tb()
        .args([
            "bw",
            "--threads",
            "10000",
            "--oversubscribe",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    refused(&o, "per CPU with --oversubscribe");
    assert!(t0.elapsed() < Duration::from_secs(10));

    let cpus = std::thread::available_parallelism().unwrap().get();
    let threads = (4 * cpus).to_string();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let series = out.path().join("timeseries.csv");
    let child = Command::cargo_bin("tierbench")
        .unwrap()
        .args(common::LONG_RUN)
        .args(["--threads", &threads, "--oversubscribe", "--worker-node"])
        .arg(first_cpu_node())
        .arg("-o")
        .arg(out.path())
        .env("TIERBENCH_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("two interval rows", Duration::from_secs(30), || {
        std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 3)
    });
    let t_signal = Instant::now();
    // SAFETY: kill with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr_of(&o));
    assert!(
        t_signal.elapsed() < Duration::from_secs(3),
        "SIGTERM took {:?} with {threads} workers",
        t_signal.elapsed()
    );
}

/// The first node with CPUs, as the kernel lists it.
fn first_cpu_node() -> String {
    let mut nodes: Vec<u32> = std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix("node")?.parse().ok()
        })
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .find(|n| {
            std::fs::read_to_string(format!("/sys/devices/system/node/node{n}/cpulist"))
                .is_ok_and(|c| !c.trim().is_empty())
        })
        .unwrap()
        .to_string()
}

/// A kernel-looking file and its config beside it, for `vm` checks that
/// must refuse before QEMU starts.
fn fake_kernel(dir: &Path) -> String {
    let mut img = vec![0u8; 0x400];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    let k = dir.join("vmlinuz-9.9");
    std::fs::write(&k, img).unwrap();
    k.display().to_string()
}

fn edited_profile(dir: &Path, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hosts/qemu-dram-cxl.toml"
    ))
    .unwrap();
    assert!(text.contains(from), "{from:?}");
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    p.display().to_string()
}

/// Item 9: bad input exits 2 before anything is created or booted: an
/// out-of-range rate limit, `-o` naming a file, impossible profiles, and
/// an inner command that does not parse.
#[test]
fn item09_bad_input_is_refused_before_anything_is_created_or_booted() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("never-created");
    if root_or_skip("item09 (rate limit)") {
        let before = knobs_now();
        let o = tb()
            .args(["run", "--promote-rate-limit", "2147483648", "-o"])
            .arg(&out)
            .env("TIERBENCH_STATE_DIR", d.path().join("state"))
            .output()
            .unwrap();
        refused(&o, "give 0 to 2147483647");
        assert!(!out.exists(), "the results directory was created");
        assert_eq!(knobs_now(), before);
    }
    let file = d.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for cmd in ["run", "conform", "matrix"] {
        let o = tb().args([cmd, "-o"]).arg(&file).output().unwrap();
        refused(&o, "is not a directory");
    }

    let k = fake_kernel(d.path());
    let profiles = [
        (
            edited_profile(d.path(), "dist", "value = 20", "value = 5"),
            "11 to 254",
        ),
        (
            edited_profile(d.path(), "gap", "id = 1", "id = 5"),
            "without gaps",
        ),
        (
            edited_profile(d.path(), "cpus", "cpus = 2", "cpus = 1000"),
            "1 to 255",
        ),
    ];
    // 4 TiB in all (the nodes must add up to it): more than this host.
    let mem = edited_profile(
        d.path(),
        "mem",
        "memory_mib = 4096\n",
        "memory_mib = 4194304\n",
    );
    let text = std::fs::read_to_string(&mem).unwrap();
    std::fs::write(
        &mem,
        text.replacen("memory_mib = 2048", "memory_mib = 4192256", 1),
    )
    .unwrap();
    for (p, needle) in &profiles {
        let o = tb()
            .args(["vm", "--host", p, "--kernel", &k, "-o"])
            .arg(&out)
            .args(["--", "topo"])
            .output()
            .unwrap();
        refused(&o, needle);
    }
    let o = tb()
        .args(["vm", "--host", &mem, "--kernel", &k, "-o"])
        .arg(&out)
        .args(["--", "topo"])
        .output()
        .unwrap();
    if which("qemu-system-x86_64") {
        refused(&o, "more than this host's");
    } else {
        refused(&o, "not found");
    }
    for inner in [vec!["frobnicate"], vec!["run", "--size", "abc"]] {
        let o = tb()
            .args(["vm", "--host", "qemu-dram-cxl", "--kernel", &k, "-o"])
            .arg(&out)
            .arg("--")
            .args(&inner)
            .output()
            .unwrap();
        refused(&o, "the command after --");
    }
    assert!(!out.exists(), "something was created");
}

fn which(bin: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(bin).is_file())
}

/// Item 10: messages say what is actually wrong.
#[test]
fn item10_messages_name_the_real_problem() {
    let o = tb().args(["run", "--size", "99999999T"]).output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than any machine"), "{err}");

    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("numab.toml");
    std::fs::write(
        &f,
        "description = \"x\"\nkind = \"run\"\n[knobs.numab]\nscan_dleay_ms = 0\n\
         [[variant]]\npolicy = \"default\"\n",
    )
    .unwrap();
    let o = tb().args(["run", "--scenario"]).arg(&f).output().unwrap();
    refused(&o, "numab.toml: knobs.numab.scan_dleay_ms");
    assert!(!stderr_of(&o).contains("--numab"));

    let o = tb()
        .args(["run", "--scenario", "promote-hot", "--iterations", "0"])
        .output()
        .unwrap();
    refused(&o, "--iterations must be at least 1");
    assert!(!stderr_of(&o).contains("timing.iterations"));

    if !root_or_skip("item10 (state files)") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("knobs.json");
    std::fs::write(&file, r#"{"pid": 999999, "saved": []}"#).unwrap();
    tb().args(["knobs", "restore"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("held no knob values; removed it"));
    assert!(!file.exists());
    std::fs::create_dir(&file).unwrap();
    let o = tb()
        .args(SHORT_RUN)
        .args(["--numa-balancing", "normal"])
        .env("TIERBENCH_STATE_DIR", state.path())
        .output()
        .unwrap();
    refused(&o, "not a regular file");
    assert!(!stderr_of(&o).contains("previous run left knobs"));
}

/// A results directory with the given summary text and a complete record.
fn results_dir(root: &Path, name: &str, summary: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("summary.csv"), summary).unwrap();
    common::system_record("6.12.0", None, "0:cpu+mem")
        .write(&dir)
        .unwrap();
    dir
}

const HEADER: &str = "variant,iteration,status,accesses_per_s\n";

/// Item 11: compare does not panic on a one-variant run or a killed run.
#[test]
fn item11_compare_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let one = results_dir(d.path(), "one", &format!("{HEADER}x,1,ok,10\nx,2,ok,12\n"));
    tb().arg("compare")
        .arg(&one)
        .assert()
        .success()
        .stdout(predicate::str::contains("accesses/s").and(predicate::str::contains("11")));
    let killed = results_dir(d.path(), "killed", HEADER);
    let o = tb().arg("compare").arg(&killed).output().unwrap();
    refused(&o, "no summary rows");
    let o = tb().arg("compare").arg(&one).arg(&killed).output().unwrap();
    refused(&o, "no summary rows");
}

/// Item 12: compare says what is missing (exit 2) instead of printing
/// nothing: disjoint variants, header-only, empty or cut summaries, and a
/// system.json with a field removed or of another schema version.
#[test]
fn item12_compare_names_what_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let a = results_dir(d.path(), "a", &format!("{HEADER}x,1,ok,10\n"));
    let b = results_dir(d.path(), "b", &format!("{HEADER}y,1,ok,10\n"));
    let o = tb().arg("compare").arg(&a).arg(&b).output().unwrap();
    refused(&o, "no variant in common");
    for (name, text, needle) in [
        ("header-only", HEADER, "no summary rows"),
        ("empty", "", "is empty"),
        ("cut", "variant,iter", "is empty"),
    ] {
        let dir = results_dir(d.path(), name, text);
        let o = tb().arg("compare").arg(&dir).output().unwrap();
        refused(&o, needle);
    }
    let sys = a.join("system.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sys).unwrap()).unwrap();
    v["machine"].as_object_mut().unwrap().remove("node_shape");
    std::fs::write(&sys, v.to_string()).unwrap();
    let o = tb().arg("compare").arg(&a).output().unwrap();
    refused(&o, "missing field `machine.node_shape`");
    assert!(stderr_of(&o).contains("system.json"));
    v["machine"]["node_shape"] = "0:cpu+mem".into();
    v["schema_version"] = 9.into();
    std::fs::write(&sys, v.to_string()).unwrap();
    let o = tb().arg("compare").arg(&a).output().unwrap();
    refused(&o, "schema version 9, and this tierbench reads version 6");
}

/// Item 12 (the results contract): two real runs written by `run` compare;
/// one whose node shape differs, or with a field deleted, is refused.
#[test]
fn item12_runs_written_by_run_are_read_back_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    for name in ["r1", "r2"] {
        tb().args(SHORT_RUN)
            .args(["-q"])
            .args(["--policy", "default", "--policy", "local", "-o"])
            .arg(d.path().join(name))
            .env("TIERBENCH_STATE_DIR", &state)
            .assert()
            .success();
    }
    let (r1, r2) = (d.path().join("r1"), d.path().join("r2"));
    tb().arg("compare")
        .arg(&r1)
        .arg(&r2)
        .assert()
        .success()
        .stdout(predicate::str::contains("run: default"));
    let sys = r2.join("system.json");
    let text = std::fs::read_to_string(&sys).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["machine"]["node_shape"] = "0:cpu+mem,1:mem".into();
    std::fs::write(&sys, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = tb().arg("compare").arg(&r1).arg(&r2).output().unwrap();
    refused(&o, "differ in node shape");
    v["machine"].as_object_mut().unwrap().remove("host_profile");
    std::fs::write(&sys, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = tb().arg("compare").arg(&r1).arg(&r2).output().unwrap();
    refused(&o, "missing field `machine.host_profile`");
}

/// Item 13: on a full filesystem the CSVs keep whole rows only; the error
/// names the file; plot and compare read what is there.
#[test]
fn item13_a_full_disk_leaves_whole_rows_and_named_errors() {
    if !root_or_skip("item13 (mounts a small tmpfs)") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32k", "tierbench-test"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs");
    let out = mnt.join("run");
    let o = tb()
        .args([
            "run",
            "--size",
            "4M",
            "--duration",
            "60s",
            "--interval",
            "50ms",
            "-q",
            "-o",
        ])
        .arg(&out)
        .env("TIERBENCH_STATE_DIR", d.path().join("state"))
        .output()
        .unwrap();
    let err = stderr_of(&o);
    let series = out.join("timeseries.csv");
    let text = std::fs::read_to_string(&series).unwrap_or_default();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(".csv") || err.contains("system.json"),
        "the error names the file: {err}"
    );
    assert!(err.contains("No space left"), "{err}");
    assert!(text.ends_with('\n'), "a half row was left: {text:?}");
    assert!(
        !out.join(".system.json.tmp").exists(),
        "a temp file was left among the results"
    );
    let width = text.lines().next().unwrap().split(',').count();
    assert!(text.lines().count() > 2, "{text}");
    for line in text.lines() {
        assert_eq!(line.split(',').count(), width, "ragged row {line:?}");
    }
}

/// Item 14: conform checks its options before any case.
#[test]
fn item14_conform_checks_its_options() {
    for (args, needle) in [
        (vec!["--size", "0"], "less than one page"),
        (vec!["--period", "0s"], "shorter than one scan period"),
        (vec!["--modes", "2,2"], "names mode 2 twice"),
        (vec!["--modes", "0"], "not a numa_balancing mode"),
    ] {
        let o = tb().arg("conform").args(&args).output().unwrap();
        refused(&o, needle);
    }
}

/// Item 15: a flag repeated in a policy is refused, not folded into one.
#[test]
fn item15_repeated_policy_flags_are_refused() {
    let o = tb()
        .args(["run", "--policy", "bind:0+balancing+balancing"])
        .output()
        .unwrap();
    refused(&o, "twice");
}

// ---------------------------------------------------------------------------
// Third pass (issue "one knob owner per machine, exit codes that never hide
// an abandoned run, results never overwritten or thrown away"): one test per
// defect, named `pass3_dNN_...` after the defect's number in the issue.

/// Defect 1: the knob lock is the machine's, not the state file's. Two
/// knob runs with different state directories: the second is refused
/// naming the first, and every knob ends as it was found.
#[test]
fn pass3_d01_two_knob_runs_with_different_state_files_leave_every_knob_as_found() {
    if !root_or_skip("pass3_d01") {
        return;
    }
    let before = knobs_now();
    let d = tempfile::tempdir().unwrap();
    let mut first = spawn(
        &[
            "run",
            "--size",
            "4M",
            "--duration",
            "3s",
            "--numa-balancing",
            "normal",
            "-q",
            "-o",
            &d.path().join("o1").display().to_string(),
        ],
        &d.path().join("s1"),
    );
    let state1 = d.path().join("s1/knobs.json");
    wait_for(
        "the first run's state file",
        Duration::from_secs(30),
        || state1.exists(),
    );
    let o = tb()
        .args(SHORT_RUN)
        .args(["--numa-balancing", "both", "-q", "-o"])
        .arg(d.path().join("o2"))
        .env("TIERBENCH_STATE_DIR", d.path().join("s2"))
        .output()
        .unwrap();
    refused(&o, "belong to another tierbench");
    assert!(first.wait().unwrap().success());
    assert_eq!(knobs_now(), before);
    // A state file named like a lock is just a state file now.
    tb().args(SHORT_RUN)
        .args(["--numa-balancing", "normal", "-q", "--state-file"])
        .arg(d.path().join("s3/x.lock"))
        .arg("-o")
        .arg(d.path().join("o3"))
        .assert()
        .success();
    assert_eq!(knobs_now(), before);
}

/// Defect 2: a closed progress stream does not abandon the run, and a
/// closed or full stdout never exits 0 nor panics.
#[test]
fn pass3_d02_a_run_piped_through_head_completes_or_says_it_did_not() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let bin = assert_cmd::cargo::cargo_bin("tierbench");
    let script = format!(
        "{} run --size 4M --duration 2s --interval 100ms -o {} 2>&1 | head -2 >/dev/null; \
         echo ${{PIPESTATUS[0]}}",
        bin.display(),
        out.display()
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    let rc: i32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let summary = common::Table::read(&out.join("summary.csv"));
    // The run measured to the end; only the table on the closed stdout
    // was lost, and the exit code says so.
    assert_eq!(summary.rows.len(), 1, "the run was abandoned");
    assert_eq!(summary.cell(&summary.rows[0], "status"), "ok");
    assert_eq!(rc, 141, "a lost table must not exit 0");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::cargo_bin("tierbench")
        .unwrap()
        .args(["generate", "bash"])
        .stdout(full)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A stdout whose reader is already gone (`| head -0` that won the race).
    for args in [&["knobs", "show"][..], &["hosts"], &["generate", "zsh"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::cargo_bin("tierbench")
            .unwrap()
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr_of(&o));
        assert!(!stderr_of(&o).contains("panicked"), "{}", stderr_of(&o));
    }
    // A closed stderr: the run still measures and exits 0.
    let script = format!(
        "{} run --size 4M --duration 300ms --interval 100ms -o {} 2>&-",
        bin.display(),
        d.path().join("o2").display()
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// Defect 3: root refuses a state directory another user controls, and
/// links planted there are never followed.
#[test]
fn pass3_d03_a_state_directory_another_user_controls_is_refused() {
    if !root_or_skip("pass3_d03") {
        return;
    }
    let before = knobs_now();
    let d = tempfile::tempdir().unwrap();
    let evil = d.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for name in ["knobs.tmp", "knobs.lock"] {
        std::os::unix::fs::symlink(&victim, evil.join(name)).unwrap();
    }
    let chown = |p: &Path, flag: &str| {
        assert!(Command::new("chown")
            .args([flag, "nobody"])
            .arg(p)
            .status()
            .unwrap()
            .success());
    };
    chown(&evil, "-R");
    chown(&evil.join("knobs.tmp"), "-h");
    let o = tb()
        .args(SHORT_RUN)
        .args(["--numa-balancing", "normal", "-q", "-o"])
        .arg(d.path().join("o"))
        .env("TIERBENCH_STATE_DIR", &evil)
        .output()
        .unwrap();
    refused(&o, "belongs to uid");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(knobs_now(), before);
}

/// Defect 5: a results directory with files in it is refused (or emptied
/// with --replace), and two runs never write into one directory at once.
#[test]
fn pass3_d05_results_are_never_overwritten_or_mixed() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    // An earlier characterisation's directory: its record and its chart.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("curve.svg"), "an older run's").unwrap();
    std::fs::write(out.join("system.json"), "{}").unwrap();
    for cmd in [&["run"][..], &["latency", "--curve"], &["matrix"]] {
        let o = tb().args(cmd).arg("-o").arg(&out).output().unwrap();
        refused(&o, "already holds curve.svg");
    }
    assert!(out.join("curve.svg").exists());
    // --replace never empties what tierbench did not write (`-o .` in a
    // checkout).
    let mine = d.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let o = tb()
        .args(["run", "--replace", "-o"])
        .arg(&mine)
        .output()
        .unwrap();
    refused(&o, "no tierbench results record");
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep"
    );
    tb().args(SHORT_RUN)
        .args(["-q", "--replace", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert!(!out.join("curve.svg").exists(), "a stale file was left");
    assert!(out.join("summary.csv").exists());
    // Two runs with one -o: the second is refused while the first writes.
    let shared = d.path().join("shared");
    let mut first = Command::cargo_bin("tierbench")
        .unwrap()
        .args(["run", "--size", "4M", "--duration", "3s", "-q", "-o"])
        .arg(&shared)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first run's rows", Duration::from_secs(30), || {
        shared.join("summary.csv").exists()
    });
    let o = tb()
        .args(SHORT_RUN)
        .args(["-q", "--replace", "-o"])
        .arg(&shared)
        .output()
        .unwrap();
    refused(&o, "another tierbench is writing");
    assert!(first.wait().unwrap().success());
    let summary = common::Table::read(&shared.join("summary.csv"));
    assert_eq!(summary.rows.len(), 1);
}

/// Defect 8: compare, plot and bw refuse what no measurement produces.
#[test]
fn pass3_d08_values_no_measurement_produces_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (name, summary, needle) in [
        (
            "nan",
            format!("{HEADER}x,1,ok,NaN\n"),
            "accesses_per_s = \"NaN\"",
        ),
        ("inf", format!("{HEADER}x,1,ok,inf\n"), "a finite number"),
        ("neg", format!("{HEADER}x,1,ok,-5\n"), "at least 0"),
        (
            "dup",
            format!("{HEADER}x,1,ok,10\nx,1,ok,10\n"),
            "appears twice",
        ),
        (
            "nometric",
            "variant,iteration,status\nx,1,ok\n".to_string(),
            "no `accesses_per_s` column",
        ),
    ] {
        let dir = results_dir(d.path(), name, &summary);
        for format in ["text", "lava"] {
            let o = tb()
                .args(["compare", "--format", format])
                .arg(&dir)
                .output()
                .unwrap();
            refused(&o, needle);
        }
    }
    // Runs of different plans are refused unless forced.
    let a = results_dir(d.path(), "a", &format!("{HEADER}x,1,ok,10\n"));
    let b = results_dir(d.path(), "b", &format!("{HEADER}x,1,ok,12\n"));
    for (dir, secs) in [(&a, 8.0), (&b, 30.0)] {
        let sys = dir.join("system.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&sys).unwrap()).unwrap();
        v["plan"] = serde_json::json!({"size_bytes": 67108864, "duration_s": secs});
        std::fs::write(&sys, v.to_string()).unwrap();
    }
    let o = tb().arg("compare").arg(&a).arg(&b).output().unwrap();
    refused(&o, "plan duration_s 8.0 vs 30.0");
    tb().args(["compare", "--force"])
        .arg(&a)
        .arg(&b)
        .assert()
        .success();
    let plot = d.path().join("plot");
    std::fs::create_dir(&plot).unwrap();
    std::fs::write(
        plot.join("timeseries.csv"),
        "variant,iteration,t_s,span_s,accesses_per_s\nx,1,-1e300,1,10\n",
    )
    .unwrap();
    let o = tb().arg("plot").arg(&plot).output().unwrap();
    refused(&o, "t_s = \"-1e300\"");
    let o = tb()
        .args(["bw", "--kernel", "mix:4294967295:1"])
        .output()
        .unwrap();
    refused(&o, "each side at most 255");
}

/// Defect 9: a FIFO or a device where a file is expected is refused at
/// once, without hanging or reading without end.
#[test]
fn pass3_d09_fifos_and_devices_are_refused_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("s.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = tb()
        .args(["run", "--scenario"])
        .arg(&fifo)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    refused(&o, "a FIFO is not a regular file");
    let dir = results_dir(d.path(), "r", &format!("{HEADER}x,1,ok,10\n"));
    std::fs::remove_file(dir.join("summary.csv")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("summary.csv"))
        .status()
        .unwrap()
        .success());
    let o = tb()
        .arg("compare")
        .arg(&dir)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    refused(&o, "a FIFO is not a regular file");
    let zero = results_dir(d.path(), "z", &format!("{HEADER}x,1,ok,10\n"));
    std::fs::remove_file(zero.join("system.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("system.json")).unwrap();
    let o = tb()
        .arg("compare")
        .arg(&zero)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    refused(&o, "a character device is not a regular file");
}

/// Defect 10: every signal whose default would end the process stops a
/// knob run as SIGINT does: knobs restored, exit 130, rows kept.
#[test]
fn pass3_d10_other_terminating_signals_restore_the_knobs() {
    if !root_or_skip("pass3_d10") {
        return;
    }
    let before = knobs_now();
    for sig in [libc::SIGUSR1, libc::SIGALRM, libc::SIGUSR2] {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("o");
        let mut child = spawn_owner(d.path(), &out, &["--interval", "200ms"]);
        let series = out.join("timeseries.csv");
        wait_for("an interval row", Duration::from_secs(30), || {
            std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 2)
        });
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "signal {sig}: {status:?}");
        assert_eq!(knobs_now(), before, "signal {sig}");
        assert!(!d.path().join("knobs.json").exists());
    }
}

/// Defect 12: one line per refusal, bounds stated as they are, the real
/// problem named, the user's control characters escaped.
#[test]
fn pass3_d12_messages_are_one_line_and_say_the_real_problem() {
    let o = tb().args(["run", "--sizee", "1M"]).output().unwrap();
    refused(&o, "unexpected argument '--sizee'");
    assert_eq!(stderr_of(&o).lines().count(), 1, "{}", stderr_of(&o));
    let o = tb().args(["run", "--size", "1024T"]).output().unwrap();
    refused(&o, "give less than 1024T");
    let o = tb()
        .args(["run", "--policy", "bind:0\u{1b}[31m\nx"])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !err.contains('\u{1b}') && err.lines().count() == 1,
        "{err:?}"
    );
    let d = tempfile::tempdir().unwrap();
    let o = tb()
        .args(["vm", "--host", "qemu-dram-cxl", "--kernel"])
        .arg(d.path())
        .args(["--", "topo"])
        .output()
        .unwrap();
    refused(&o, "is a directory");
    let dir = results_dir(d.path(), "v", &format!("{HEADER}x,1,ok,10\n"));
    let sys = dir.join("system.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sys).unwrap()).unwrap();
    let version = v["schema_version"].as_u64().unwrap();
    v["schema_version"] = (version as f64 + 0.5).into();
    std::fs::write(&sys, v.to_string()).unwrap();
    let o = tb().arg("compare").arg(&dir).output().unwrap();
    refused(&o, "not a whole version number");
    let esc = results_dir(
        d.path(),
        "e",
        &format!("{HEADER}\"x\u{1b}[2J\ny\",1,ok,10\n"),
    );
    let o = tb().arg("compare").arg(&esc).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        !out.contains('\u{1b}') && out.contains("x\\u{1b}[2J\\ny"),
        "{out}"
    );
}

/// Defect 11: a run stopped for 3 s says so in the row that covers the
/// stall and in its summary, and does not catch up with a burst of rows;
/// a knob changed under a live run (`knobs restore --force`) is noticed.
#[test]
fn pass3_d11_stalls_and_knobs_changed_under_the_run_are_noted() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let mut child = Command::cargo_bin("tierbench")
        .unwrap()
        .args([
            "run",
            "--size",
            "4M",
            "--duration",
            "6s",
            "--interval",
            "200ms",
            "-q",
            "-o",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let series = out.join("timeseries.csv");
    wait_for("two interval rows", Duration::from_secs(30), || {
        std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 3)
    });
    // SAFETY: kill with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    assert!(child.wait().unwrap().success());
    let t = common::Table::read(&series);
    let stalled: Vec<_> = t
        .rows
        .iter()
        .filter(|r| t.cell(r, "notes").contains("stalled"))
        .collect();
    assert_eq!(stalled.len(), 1, "one row covers the stall");
    assert!(t.num(stalled[0], "span_s") > 2.5);
    // No catch-up burst: every other row spans about the interval.
    for r in t
        .rows
        .iter()
        .filter(|r| !t.cell(r, "notes").contains("stalled"))
    {
        assert!(
            t.num(r, "span_s") > 0.1,
            "a catch-up row of {} s",
            t.cell(r, "span_s")
        );
    }
    let summary = common::Table::read(&out.join("summary.csv"));
    assert!(summary
        .cell(&summary.rows[0], "notes")
        .contains("1 interval(s) stalled"));

    if !root_or_skip("pass3_d11 (knobs changed under the run)") {
        return;
    }
    let before = knobs_now();
    let out = d.path().join("k");
    let state = d.path().join("state");
    let owner = spawn_owner(&state, &out, &["--interval", "200ms"]);
    let series = out.join("timeseries.csv");
    wait_for("an interval row", Duration::from_secs(30), || {
        std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 2)
    });
    tb().args(["knobs", "restore", "--force"])
        .env("TIERBENCH_STATE_DIR", &state)
        .assert()
        .success();
    let o = owner.wait_with_output().unwrap();
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    if before.iter().any(|(p, v)| *p == NUMA_BALANCING && v == "1") {
        return; // restoring put back the value the run set: nothing changed
    }
    assert!(
        err.contains("numa_balancing was changed under the run"),
        "{err}"
    );
    let summary = common::Table::read(&out.join("summary.csv"));
    assert!(summary
        .cell(&summary.rows[0], "notes")
        .contains("numa_balancing was changed under the run: set to 1"));
    assert_eq!(knobs_now(), before);
}

/// A directory holding a stand-in `qemu-system-x86_64` that answers
/// `--version` as QEMU 10 and otherwise runs `body` (after counting the
/// boot in `boots` beside it); the PATH that finds it first.
fn fake_qemu(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             case \"$1\" in --version) echo 'QEMU emulator version 10.0.2'; exit 0;; esac\n\
             echo x >> \"$(dirname \"$0\")/boots\"\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// Defect 5 for `vm`: two `vm` with the same -o, the second refused while
/// the first boots (a stand-in QEMU that takes its time).
#[test]
fn pass3_d05_two_vms_never_share_a_results_directory() {
    let d = tempfile::tempdir().unwrap();
    let path = fake_qemu(d.path(), "sleep 4; exit 0");
    let k = fake_kernel(d.path());
    let out = d.path().join("out");
    let vm = |o: &Path, extra: &[&str]| {
        let mut c = Command::cargo_bin("tierbench").unwrap();
        c.args(["vm", "-q", "--host", "qemu-dram-cxl", "--accel", "tcg"])
            .args(["--boot-retries", "0", "--kernel", &k])
            .args(extra)
            .arg("-o")
            .arg(o)
            .args(["--", "topo"])
            .env("PATH", &path);
        c
    };
    let mut first = vm(&out, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first boot", Duration::from_secs(60), || {
        d.path().join("bin/boots").exists()
    });
    let o = vm(&out, &[]).output().unwrap();
    refused(&o, "already holds");
    // Not even --replace takes a directory a live run writes to.
    let o = vm(&out, &["--replace"]).output().unwrap();
    refused(&o, "another tierbench is writing its results there");
    let _ = first.wait();
    assert_eq!(
        std::fs::read_to_string(d.path().join("bin/boots"))
            .unwrap()
            .lines()
            .count(),
        1,
        "the second vm booted"
    );
}

/// Defect 7: a command line QEMU refuses is exit 2 with QEMU's words, at
/// once: not a boot fault, never booted again. (A stand-in QEMU says what
/// QEMU 10 said of two `[[cxl]]` devices before their windows shared one
/// `-M`; the two-device boot itself is in emulated.rs.)
#[test]
fn pass3_d07_a_command_line_qemu_refuses_is_not_retried() {
    let d = tempfile::tempdir().unwrap();
    let path = fake_qemu(
        d.path(),
        "echo \"qemu-system-x86_64: -M cxl-fmw.1.size=4096M: Parameters 'cxl-fmw.*' used \
         inconsistently\" >&2\nexit 1",
    );
    let bin = d.path().join("bin");
    let k = fake_kernel(d.path());
    let o = tb()
        .args([
            "vm",
            "-q",
            "--host",
            "qemu-dram-cxl",
            "--accel",
            "tcg",
            "--kernel",
            &k,
        ])
        .arg("-o")
        .arg(d.path().join("out"))
        .args(["--", "topo"])
        .env("PATH", path)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    refused(&o, "QEMU refused the machine this profile describes");
    assert!(stderr_of(&o).contains("used inconsistently"));
    let boots = std::fs::read_to_string(bin.join("boots")).unwrap();
    assert_eq!(boots.lines().count(), 1, "booted again after a refusal");
}

const WI_DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";

/// Every weighted-interleave file and its value (`auto` under either of
/// its names), sorted.
fn weights_now() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(WI_DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), knob(&p.display().to_string())))
        .collect();
    v.sort();
    v
}

/// A weighted-interleave variant owns the weights: SIGTERM puts them back
/// before the exit, and after SIGKILL `knobs restore` does.
#[test]
fn mech01_killed_weighted_runs_leave_the_weights_as_found() {
    if !root_or_skip("mech01") {
        return;
    }
    if !Path::new(WI_DIR).exists() {
        common::skip("mech01", "this kernel has no weighted interleave (6.9+)");
        return;
    }
    let before = weights_now();
    let node0 = format!("{WI_DIR}/node0");
    // Auto mode without bandwidth data cannot be put back once a weight is
    // written: such a run is refused before anything changes.
    let auto_on = before
        .iter()
        .any(|(p, v)| (p.ends_with("/auto") || p.ends_with("/__auto_type")) && v == "true");
    let has_bandwidth = std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.path().join("access1/initiators/read_bandwidth").exists());
    if auto_on && !has_bandwidth {
        let d = tempfile::tempdir().unwrap();
        let o = tb()
            .args(["run", "--size", "4M", "--duration", "1s", "-q", "--policy"])
            .arg("weighted-interleave:0=7")
            .env("TIERBENCH_STATE_DIR", d.path())
            .output()
            .unwrap();
        refused(&o, "no node reports its bandwidth");
        assert_eq!(weights_now(), before);
        eprintln!(
            "mech01: auto weights without bandwidth data here: the run is refused, so the \
             kill paths are checked in the emulated tests (HMAT bandwidth there)"
        );
        return;
    }
    // A weight nobody leaves in place: the variant's, seen while it runs.
    let set = if knob(&node0) == "7" { "9" } else { "7" };
    let policy = format!("weighted-interleave:0={set}");
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("o");
        let out_s = out.display().to_string();
        let mut child = spawn(
            &[
                "run",
                "--size",
                "4M",
                "--duration",
                "20s",
                "--interval",
                "200ms",
                "-q",
                "-o",
                &out_s,
                "--policy",
                &policy,
            ],
            d.path(),
        );
        let series = out.join("timeseries.csv");
        wait_for("an interval row", Duration::from_secs(30), || {
            std::fs::read_to_string(&series).is_ok_and(|s| s.lines().count() >= 2)
        });
        assert_eq!(knob(&node0), set, "the variant's weight is not in force");
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        if sig == libc::SIGTERM {
            assert_eq!(status.code(), Some(130), "{status:?}");
        } else {
            assert_ne!(weights_now(), before, "SIGKILL cannot have restored them");
            tb().args(["knobs", "restore"])
                .env("TIERBENCH_STATE_DIR", d.path())
                .assert()
                .success();
        }
        assert_eq!(weights_now(), before, "signal {sig}");
        assert!(!d.path().join("knobs.json").exists());
    }
}
