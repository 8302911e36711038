//! `tierbench vm`: boots a kernel on an emulated tiered machine (QEMU with
//! the NUMA + HMAT topology of a host profile), runs a tierbench command
//! inside as PID 1, and brings its results back.
//!
//! Host side here; [`guest`] is the PID-1 side, [`stream`] the protocol
//! between them over the second serial port, [`initramfs`] the archive
//! holding this binary and its libraries, [`qemu`] the command line.

pub mod cxl_region;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod modules;
pub mod profile;
pub mod qemu;
pub mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::error::input;
use profile::{Kind, Profile};
use qemu::{Accel, Boot, Ended};

/// What `tierbench vm` was asked to do.
#[derive(Debug, Clone)]
pub struct VmRequest {
    pub host: String,
    pub kernel: PathBuf,
    pub accel: Accel,
    pub timeout: Duration,
    pub out: PathBuf,
    pub inner: Vec<String>,
    /// Host programs put into the guest (`--carry`), with their libraries.
    pub carry: Vec<PathBuf>,
    /// tierbench commands run after the inner one, in the same boot.
    pub after: Vec<Vec<String>>,
    pub quiet: bool,
    /// Test hook: make the guest's PID 1 exit, so the kernel panics.
    pub crash_init: bool,
    /// Test hook: let a CXL guest see the hypervisor CPUID bit.
    pub hypervisor_bit_for_test: bool,
    /// Boots to retry when the kernel dies or hangs before the guest's init
    /// has said anything (an emulator or early-boot fault, not the run).
    pub boot_retries: u32,
}

/// `vm.json`: how the guest was run.
#[derive(Debug, Serialize)]
pub struct VmRecord {
    pub profile: String,
    pub kernel: String,
    pub guest_kernel_release: Option<String>,
    pub accel: Accel,
    pub accel_reason: String,
    pub qemu_args: Vec<String>,
    pub inner_command: Vec<String>,
    pub boot_wall_s: f64,
    pub guest_exit: Option<i32>,
    pub outcome: String,
    /// Boots that died or hung before the guest's init reported anything,
    /// retried.
    pub failed_boots: Vec<String>,
    pub expectation_mismatches: Vec<String>,
    pub note: &'static str,
}

pub const EMULATION_NOTE: &str =
    "emulated NUMA: every node is the same host RAM, so placement and \
     promotion counts are real, latency/bandwidth gaps between emulated nodes are not";

/// Kernel options the experiment needs, checked in a config file found
/// beside the image (Debian's boot/config-*, or a build tree's .config).
const REQUIRED_CONFIG: &[&str] = &[
    "CONFIG_NUMA",
    "CONFIG_NUMA_BALANCING",
    "CONFIG_MIGRATION",
    "CONFIG_ACPI_NUMA",
];

fn config_beside(kernel: &Path) -> Option<PathBuf> {
    let name = kernel.file_name()?.to_string_lossy().into_owned();
    let dir = kernel.parent()?;
    let mut cands = Vec::new();
    if let Some(v) = name.strip_prefix("vmlinuz-") {
        cands.push(dir.join(format!("config-{v}")));
    }
    cands.push(dir.join("config"));
    // arch/x86/boot/bzImage -> the tree's .config
    cands.push(dir.join("../../../.config"));
    // Debian 7.x layout: usr/lib/modules/V/vmlinuz beside config
    cands.push(dir.join(".config"));
    if let Some(v) = dir.file_name() {
        cands.push(dir.join(format!("../../../../boot/config-{}", v.to_string_lossy())));
    }
    cands.into_iter().find(|p| p.is_file())
}

fn missing_config(config: &str, profile: &Profile) -> Vec<String> {
    let mut need: Vec<&str> = REQUIRED_CONFIG.to_vec();
    if !profile.hmat.is_empty() {
        need.push("CONFIG_ACPI_HMAT");
    }
    need.into_iter()
        .filter(|opt| crate::kconfig::value(config, opt) != Some("y"))
        .map(String::from)
        .collect()
}

/// Checks a request as `run_vm` would before booting, so an A/B refuses a
/// bad second kernel before the first one boots.
pub fn check(req: &VmRequest) -> anyhow::Result<()> {
    preflight(req).map(|_| ())
}

/// What preflight checked, read once and carried into every boot: the
/// profile, the kernel's config (where one sits beside the image) and the
/// modules the guest loads first.
struct Prepared {
    profile: Profile,
    config: Option<String>,
    modules: Vec<modules::Module>,
}

/// Checks everything that can be checked before QEMU starts.
fn preflight(req: &VmRequest) -> anyhow::Result<Prepared> {
    let profile = Profile::load(&req.host).map_err(crate::error::input_from)?;
    if profile.kind != Kind::Emulated {
        return Err(input(format!(
            "host profile {} describes a lab machine, not an emulated one: use it with \
             `tierbench run --host`",
            profile.name
        )));
    }
    if which(qemu::QEMU).is_none() {
        return Err(input(format!(
            "{} not found: install it (apt-get install qemu-system-x86)",
            qemu::QEMU
        )));
    }
    if !profile.cxl.is_empty() {
        let (major, minor) = profile::CXL_MIN_QEMU;
        match qemu::version() {
            Some(v) if v < (major, minor) => {
                return Err(input(format!(
                    "host profile {} needs QEMU {major}.{minor} or newer (volatile CXL type-3 \
                     memory); {} is {}.{}: install a newer one (Debian 12: apt-get install -t \
                     bookworm-backports qemu-system-x86, or scripts/setup)",
                    profile.name,
                    qemu::QEMU,
                    v.0,
                    v.1
                )))
            }
            _ => {}
        }
        if profile.ports().next().is_some() && !qemu::has_object("acpi-generic-port") {
            return Err(input(format!(
                "host profile {} gives a CXL host bridge a generic port, and {} has no \
                 `-object acpi-generic-port` (QEMU 9.2 added it): install a newer QEMU \
                 (scripts/setup installs 10.0 from bookworm-backports)",
                profile.name,
                qemu::QEMU
            )));
        }
    }
    let k = &req.kernel;
    qemu::check_kernel_image(k).map_err(|why| input(format!("--kernel {}: {why}", k.display())))?;
    let config_file = config_beside(k);
    let config = config_file
        .as_ref()
        .map(|c| std::fs::read_to_string(c).unwrap_or_default());
    if let (Some(cfg), Some(text)) = (&config_file, &config) {
        let missing = missing_config(text, &profile);
        if !missing.is_empty() {
            return Err(input(format!(
                "--kernel {}: its config ({}) lacks {}: rebuild with them =y",
                k.display(),
                cfg.display(),
                missing.join(", ")
            )));
        }
    }
    let modules = guest_modules(&profile, k, config.as_deref().unwrap_or_default())
        .map_err(|e| input(format!("--kernel {}: {e}", k.display())))?;
    if req.timeout.is_zero() {
        return Err(input("--timeout must be more than 0, e.g. --timeout 300s"));
    }
    let want = profile.memory_mib.unwrap_or(0);
    if let Some(host) = host_memory_mib() {
        if want > host {
            return Err(input(format!(
                "host profile {}: memory_mib = {want} is more than this host's {host} MiB: \
                 lower the nodes' memory_mib",
                profile.name
            )));
        }
    }
    Ok(Prepared {
        profile,
        config,
        modules,
    })
}

/// The modules the profile's devices need from this kernel, in load
/// order (none for a profile without CXL, or a kernel with them built in).
fn guest_modules(
    profile: &Profile,
    kernel: &Path,
    config: &str,
) -> Result<Vec<modules::Module>, String> {
    if profile.cxl.is_empty() {
        return Ok(Vec::new());
    }
    modules::resolve(
        modules::tree_of(kernel).as_deref(),
        config,
        modules::CXL_DRIVERS,
    )
    .map_err(|e| e.to_string())
}

/// MemTotal of this host, MiB.
fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// The inner command as the guest runs it: results of `run`, `conform`,
/// `matrix`, `latency --curve` and `bw --sweep` go to the guest's /results, which
/// streams back.
fn guest_args(inner: &[String]) -> Vec<String> {
    let mut args = inner.to_vec();
    let is_run = match args.first().map(String::as_str) {
        Some("run" | "conform" | "matrix") => true,
        Some("latency") => args.iter().any(|a| a == "--curve"),
        Some("bw") => args.iter().any(|a| a == "--sweep"),
        _ => false,
    };
    // A program's own words (after `--`) are not tierbench's options.
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let has_out = args[..at]
        .iter()
        .any(|a| a == "-o" || a == "--out" || a.starts_with("--out="));
    if is_run && !has_out {
        args.splice(at..at, ["--out".into(), guest::RESULTS.into()]);
    }
    args
}

/// A `--scenario NAME` in the inner command is loaded and checked on the
/// host (bad files are refused before QEMU starts), carried into the guest
/// as a file, and the argument pointed at that file.
fn carry_scenario(args: &mut [String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    // `--scenario NAME` or `--scenario=NAME`: the index of NAME's argument
    // and the prefix to keep in front of it.
    let at = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--scenario" {
            Some((i + 1, ""))
        } else {
            a.starts_with("--scenario=").then_some((i, "--scenario="))
        }
    });
    let Some((i, prefix)) = at else {
        return Ok(files);
    };
    let Some(name) = args.get(i).map(|a| a[prefix.len()..].to_string()) else {
        return Ok(files);
    };
    let s = crate::scenario::Scenario::load(&name)?;
    let guest_path = format!("{}/{}.toml", crate::scenario::GUEST_DIR, s.name);
    files.insert(guest_path.clone(), s.text);
    args[i] = format!("{prefix}{guest_path}");
    Ok(files)
}

struct Booted {
    ended: Ended,
    wall: Duration,
    received: stream::Received,
    console_tail: String,
    /// The kernel's "Kernel panic - not syncing: ..." line, if it panicked.
    panic_line: Option<String>,
}

fn boot_once(
    prep: &Prepared,
    accel: Accel,
    req: &VmRequest,
    inner: &[String],
    files: &BTreeMap<String, String>,
    dir: &Path,
    timeout: Duration,
) -> anyhow::Result<(Booted, Vec<String>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe().context("locating the tierbench binary")?;
    let initrd = dir.join("initramfs.cpio");
    let profile = &prep.profile;
    let profile_text = profile.text.clone().into_bytes();
    let modules = &prep.modules;
    let mut extra: Vec<(String, Vec<u8>)> = vec![
        (
            guest::ARGS_FILE.into(),
            serde_json::to_vec(&guest::GuestConfig {
                args: inner.to_vec(),
                profile: profile.name.clone(),
                crash_init: req.crash_init,
                after: req.after.clone(),
                accel: accel.to_string(),
                files: files.clone(),
                modules: modules.iter().map(modules::Module::guest_path).collect(),
            })?,
        ),
        (guest::PROFILE_FILE.into(), profile_text),
    ];
    for m in modules {
        let bytes =
            std::fs::read(&m.path).with_context(|| format!("reading {}", m.path.display()))?;
        extra.push((m.guest_path(), bytes));
    }
    // The kernel's config, where the guest's `probe` looks for it.
    if let Some(text) = prep.config.as_ref().filter(|t| !t.is_empty()) {
        extra.push((guest::KERNEL_CONFIG_FILE.into(), text.clone().into_bytes()));
    }
    initramfs::build(&exe, &req.carry, &extra, &initrd)?;
    let files = Boot {
        kernel: req.kernel.clone(),
        initramfs: initrd.clone(),
        console_log: dir.join("console.log"),
        stream: dir.join("stream.bin"),
    };
    let mut args = qemu::args(profile, accel, &files);
    if req.hypervisor_bit_for_test {
        // Test hook: the guest sees the hypervisor bit, so its kernel
        // refuses to commit a CXL region (a real refusal to report).
        for a in &mut args {
            *a = a.replace(",hypervisor=off", "");
        }
    }
    let booted = qemu::boot(&args, &files, timeout, stop_flag());
    let _ = std::fs::remove_file(&initrd);
    let (ended, wall) = booted.context("starting qemu")?;
    let raw = std::fs::read(&files.stream).unwrap_or_default();
    let _ = std::fs::remove_file(&files.stream);
    let console = String::from_utf8_lossy(&std::fs::read(&files.console_log).unwrap_or_default())
        .into_owned();
    let tail: Vec<&str> = console.lines().rev().take(30).collect();
    let console_tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    Ok((
        Booted {
            ended,
            wall,
            received: stream::decode(&raw),
            panic_line: console
                .lines()
                .find(|l| l.contains("Kernel panic"))
                .map(|l| l.trim().to_string()),
            console_tail,
        },
        args,
    ))
}

/// Turns true on SIGINT, SIGTERM, SIGHUP or any other signal that would
/// end the process ([`crate::interrupt::STOPPING`]): the guest's QEMU is
/// killed at once, what it streamed is kept, and `vm` ends as interrupted
/// (exit 130).
fn stop_flag() -> &'static AtomicBool {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in crate::interrupt::STOPPING {
            // Registration only fails for signals that cannot be caught.
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
}

/// Picks the accelerator. `auto` boots a short KVM guest first and takes
/// KVM only if it reports back: nested KVM can hang or fail to decompress.
fn choose_accel(prep: &Prepared, req: &VmRequest) -> anyhow::Result<(Accel, String)> {
    match req.accel {
        Accel::Tcg => Ok((Accel::Tcg, "asked for tcg".into())),
        Accel::Kvm => Ok((Accel::Kvm, "asked for kvm".into())),
        Accel::Auto => {
            if std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_err()
            {
                return Ok((Accel::Tcg, "auto: /dev/kvm not usable".into()));
            }
            let dir = req.out.join("kvm-probe");
            let inner = vec!["topo".to_string(), "--format".into(), "json".into()];
            let (b, _) = boot_once(
                prep,
                Accel::Kvm,
                req,
                &inner,
                &BTreeMap::new(),
                &dir,
                Duration::from_secs(30),
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            if b.ended == Ended::Interrupted {
                return Err(crate::error::Interrupted.into());
            }
            if b.received.exit == Some(0) {
                Ok((
                    Accel::Kvm,
                    format!(
                        "auto: a KVM guest booted and ran in {:.1}s",
                        b.wall.as_secs_f64()
                    ),
                ))
            } else {
                let how = match &b.ended {
                    Ended::TimedOut => "no report within 30s".to_string(),
                    Ended::Exited(code) => format!("qemu exited ({code:?}) without a report"),
                    Ended::Refused(why) => format!("qemu refused: {why}"),
                    Ended::Interrupted => unreachable!("returned above"),
                };
                let last = b
                    .console_tail
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                Ok((
                    Accel::Tcg,
                    format!("auto: /dev/kvm exists but a KVM guest did not boot ({how}: {last}); using tcg"),
                ))
            }
        }
    }
}

/// Boots the guest and runs the command; the guest command's exit code.
pub fn run_vm(req: VmRequest) -> anyhow::Result<u8> {
    let prep = preflight(&req)?;
    let profile = &prep.profile;
    stop_flag();
    // A bad scenario file is refused before anything boots (auto may boot
    // a KVM probe).
    let mut inner = guest_args(&req.inner);
    let files = carry_scenario(&mut inner)?;
    std::fs::create_dir_all(&req.out).with_context(|| format!("creating {}", req.out.display()))?;
    let (accel, accel_reason) = choose_accel(&prep, &req)?;
    if !req.quiet {
        crate::errln!(
            "tierbench vm: {} ({}) with {} under {accel} ({accel_reason}); results in {}",
            profile.name,
            profile.description,
            req.kernel.display(),
            req.out.display()
        );
    }
    let mut failed_boots = Vec::new();
    let (b, qemu_args) = loop {
        let (b, args) = boot_once(&prep, accel, &req, &inner, &files, &req.out, req.timeout)?;
        // Init streams its first files within seconds of starting: a boot
        // that ended (died or hung) with nothing streamed never reached it.
        let silent = b.received.files.is_empty()
            && b.received.exit.is_none()
            && b.received.errors.is_empty();
        // A command line QEMU refuses is refused again on every boot, and
        // a signal means stop: neither is a boot fault to retry.
        if let Ended::Refused(why) = &b.ended {
            return Err(input(format!(
                "--host {}: QEMU refused the machine this profile describes: {why}",
                req.host
            )));
        }
        let final_boot = b.ended == Ended::Interrupted
            || failed_boots.len() as u32 >= req.boot_retries
            || req.crash_init;
        if !silent || final_boot {
            break (b, args);
        }
        let why = match (&b.ended, &b.panic_line) {
            (_, Some(line)) => line.clone(),
            (Ended::TimedOut, None) => format!("no sign of init within {:?}", req.timeout),
            (Ended::Exited(_), None) => "qemu exited before init ran".into(),
            (Ended::Refused(_) | Ended::Interrupted, None) => unreachable!("handled above"),
        };
        crate::errln!(
            "tierbench vm: boot {} ended before init reported ({why}); booting again",
            failed_boots.len() + 1
        );
        let kept = req.out.join(format!(
            "console-failed-boot-{}.log",
            failed_boots.len() + 1
        ));
        let _ = std::fs::rename(req.out.join("console.log"), &kept);
        failed_boots.push(format!("{why} (console: {})", kept.display()));
    };

    // Results the guest sent, written as they arrived.
    for (name, bytes) in &b.received.files {
        let path = req.out.join(guest::received_path(name));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
    }
    let text = |n: &str| {
        b.received
            .files
            .get(n)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let mismatches: Vec<String> = text("expectations.txt")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    let outcome = match (&b.ended, b.received.exit) {
        (Ended::Interrupted, _) => {
            "interrupted: qemu killed; the rows the guest streamed until then are kept".into()
        }
        (_, Some(code)) => format!("guest command exited with {code}"),
        (Ended::TimedOut, None) => format!("timed out after {:?}: qemu killed", req.timeout),
        (Ended::Exited(_), None) if b.panic_line.is_some() => {
            format!(
                "kernel panic ({})",
                b.panic_line.as_deref().unwrap_or_default()
            )
        }
        (Ended::Exited(c), None) => {
            format!("qemu exited ({c:?}) before the guest reported an exit code")
        }
        (Ended::Refused(_), None) => unreachable!("refused boots return above"),
    };
    let record = VmRecord {
        profile: profile.name.clone(),
        kernel: req.kernel.display().to_string(),
        guest_kernel_release: text("uname.txt").map(|s| s.trim().to_string()),
        accel,
        accel_reason,
        qemu_args,
        inner_command: inner,
        boot_wall_s: b.wall.as_secs_f64(),
        guest_exit: b.received.exit,
        outcome: outcome.clone(),
        failed_boots,
        expectation_mismatches: mismatches.clone(),
        note: EMULATION_NOTE,
    };
    std::fs::write(
        req.out.join("vm.json"),
        serde_json::to_string_pretty(&record)?,
    )?;

    if let Some(out) = text("stdout.txt") {
        // Paths the guest printed point into its /results: show the host's.
        let host_dir = format!("{}/", req.out.display());
        crate::out!(
            "{}",
            out.replace(&format!("{}/", guest::RESULTS), &host_dir)
        )?;
    }
    for m in &mismatches {
        crate::errln!("tierbench vm: profile expectation not met: {m}");
    }
    if b.received.exit.is_some_and(|c| c != 0) {
        // The inner command's own error lines, which went to the console.
        let err = text(guest::STDERR_FILE).unwrap_or_default();
        for line in err.lines().filter(|l| l.contains("error:")) {
            crate::errln!("tierbench vm: guest: {line}");
        }
    }
    for e in &b.received.errors {
        crate::errln!("tierbench vm: guest: {e}");
    }
    if !b.received.errors.is_empty() {
        crate::errln!(
            "tierbench vm: last console lines:\n{}\n(full log: {})",
            b.console_tail,
            req.out.join("console.log").display()
        );
    }
    if !req.quiet {
        crate::errln!("note: {EMULATION_NOTE}");
        crate::errln!(
            "tierbench vm: {outcome} ({:.1}s wall, guest kernel {}); console log {}",
            b.wall.as_secs_f64(),
            record.guest_kernel_release.as_deref().unwrap_or("?"),
            req.out.join("console.log").display()
        );
    }
    if b.ended == Ended::Interrupted {
        return Err(crate::error::Interrupted.into());
    }
    match b.received.exit {
        Some(code) => Ok(code.clamp(0, 255) as u8),
        None => {
            // A guest-side config error is bad input (wrong kernel).
            if let Some(e) = b.received.errors.first() {
                if e.kind == stream::GuestErrorKind::KernelConfig {
                    return Err(input(format!("--kernel {}: {e}", req.kernel.display())));
                }
            }
            anyhow::bail!(
                "{outcome}; last console lines:\n{}\n(full log: {})",
                b.console_tail,
                req.out.join("console.log").display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scenario_is_carried_in_either_spelling() {
        for (args, want) in [
            (
                vec!["run", "--scenario", "promote-hot", "-q"],
                "/tierbench/scenarios/promote-hot.toml",
            ),
            (
                vec!["run", "--scenario=promote-hot"],
                "--scenario=/tierbench/scenarios/promote-hot.toml",
            ),
        ] {
            let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let files = super::carry_scenario(&mut a).unwrap();
            assert!(a.contains(&want.to_string()), "{a:?}");
            assert!(files["/tierbench/scenarios/promote-hot.toml"].contains("[[variant]]"));
        }
        let mut a = vec![
            "run".to_string(),
            "--scenario".into(),
            "/nonexistent.toml".into(),
        ];
        assert!(super::carry_scenario(&mut a).is_err());
    }

    use super::*;

    #[test]
    fn run_results_go_to_the_streamed_folder() {
        let a = guest_args(&["run".into(), "--size".into(), "64M".into()]);
        assert_eq!(a[a.len() - 2..], ["--out".to_string(), "/results".into()]);
        let b = guest_args(&["probe".into()]);
        assert_eq!(b, vec!["probe".to_string()]);
        // A program's words stay its own, `-o` among them.
        let words = ["run", "--", "sh", "-c", "x", "-o"].map(String::from);
        assert_eq!(
            guest_args(&words),
            ["run", "--out", "/results", "--", "sh", "-c", "x", "-o"].map(String::from)
        );
    }

    #[test]
    fn missing_kernel_options_are_named() {
        let p = Profile::load("qemu-dram-cxl").unwrap();
        let cfg = "CONFIG_NUMA=y\nCONFIG_MIGRATION=y\n# CONFIG_NUMA_BALANCING is not set\nCONFIG_ACPI_NUMA=y\n";
        assert_eq!(
            missing_config(cfg, &p),
            ["CONFIG_NUMA_BALANCING", "CONFIG_ACPI_HMAT"]
        );
    }
}
