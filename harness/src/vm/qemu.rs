//! The QEMU command line for a profile, and booting it with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::profile::Profile;

pub const QEMU: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Accel {
    /// KVM if a KVM guest is proven to boot here, else TCG
    Auto,
    /// Hardware virtualisation (fast; nested KVM may hang)
    Kvm,
    /// Software emulation (slow, works everywhere)
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// Files of one boot.
#[derive(Debug, Clone)]
pub struct Boot {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub console_log: PathBuf,
    pub stream: PathBuf,
}

/// The QEMU arguments for `profile` (without the binary name).
pub fn args(profile: &Profile, accel: Accel, boot: &Boot) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: String| a.push(s);
    match accel {
        Accel::Kvm => {
            push("-accel".into());
            push("kvm".into());
            push("-cpu".into());
            push("host".into());
        }
        _ => {
            push("-accel".into());
            // One host thread runs every vCPU in turn. With a thread per
            // vCPU (QEMU 7.2's default for x86) a 6.12 guest died in CI
            // once: RIP inside a jump its kernel had just patched in
            // __schedule ("Fatal exception in interrupt") while tierbench
            // flipped numa_balancing, a static key. Code patched by one
            // vCPU while another runs it is where multi-threaded TCG is
            // weakest; counts and placement do not need parallel vCPUs,
            // and the promote-hot run took 74 s instead of 78 s of wall
            // time (throughput -25%, the runs are time-bound).
            push("tcg,thread=single".into());
            push("-cpu".into());
            // 5-level paging under TCG crashed a 7.3 guest early in boot
            // once in about ten boots here ("Fatal exception in interrupt"
            // at a 57-bit address); tiering does not care about it.
            // A CXL guest must not see the hypervisor CPUID bit: x86
            // kernels refuse to commit a CXL region in a guest ("Failed to
            // synchronize CPU cache state") unless built with
            // CXL_REGION_INVALIDATION_TEST, which Debian's are not.
            push(if profile.cxl.is_empty() {
                "max,la57=off".into()
            } else {
                "max,la57=off,hypervisor=off".into()
            });
        }
    }
    let cpus = profile.cpus.unwrap_or(1);
    let smp = match profile.sockets {
        Some(s) => format!("{cpus},sockets={s},cores={},threads=1", cpus / s.max(1)),
        None => cpus.to_string(),
    };
    let mut machine = "q35".to_string();
    if !profile.hmat.is_empty() {
        machine.push_str(",hmat=on");
    }
    let mut memory = format!("{}M", profile.memory_mib.unwrap_or(1024));
    if !profile.cxl.is_empty() {
        machine.push_str(",cxl=on");
        // Room in the guest's physical address map for hot-added memory.
        memory.push_str(&format!(
            ",maxmem={}M,slots={}",
            profile.max_memory_mib(),
            super::profile::HOTPLUG_SLOTS
        ));
    }
    for s in [
        "-machine".to_string(),
        machine,
        "-m".into(),
        memory,
        "-smp".into(),
        smp,
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-nic".into(),
        "none".into(),
        "-no-reboot".into(),
        "-serial".into(),
        format!("file:{}", boot.console_log.display()),
        "-serial".into(),
        format!("file:{}", boot.stream.display()),
        "-kernel".into(),
        boot.kernel.display().to_string(),
        "-initrd".into(),
        boot.initramfs.display().to_string(),
        "-append".into(),
        // The whole boot log goes to console.log: when a guest hangs,
        // it shows where.
        "console=ttyS0 panic=-1 loglevel=6 rdinit=/init".into(),
    ] {
        push(s);
    }
    for n in &profile.nodes {
        push("-object".into());
        push(format!(
            "memory-backend-ram,id=m{},size={}M",
            n.id, n.memory_mib
        ));
        let mut node = format!("node,nodeid={},memdev=m{}", n.id, n.id);
        // QEMU wants one cpus= per contiguous range.
        for range in n.cpus.to_string().split(',').filter(|r| !r.is_empty()) {
            node.push_str(&format!(",cpus={range}"));
        }
        if let Some(i) = n.initiator {
            node.push_str(&format!(",initiator={i}"));
        }
        push("-numa".into());
        push(node);
    }
    // A generic port's proximity domain: a node without memory or CPUs.
    let initiator = profile.port_initiator().unwrap_or(0);
    for (_, id, _) in profile.ports() {
        push("-numa".into());
        push(format!("node,nodeid={id},initiator={initiator}"));
    }
    for d in &profile.distances {
        push("-numa".into());
        push(format!("dist,src={},dst={},val={}", d.from, d.to, d.value));
    }
    for arg in cxl_args(profile) {
        push(arg);
    }
    let ports = profile
        .ports()
        .map(|(_, id, p)| crate::vm::profile::HmatEntry {
            initiator,
            target: id,
            latency_ns: p.latency_ns,
            bandwidth_mbps: p.bandwidth_mbps,
        });
    for h in profile.hmat.iter().cloned().chain(ports) {
        push("-numa".into());
        push(format!(
            "hmat-lb,initiator={},target={},hierarchy=memory,data-type=access-latency,latency={}",
            h.initiator, h.target, h.latency_ns
        ));
        push("-numa".into());
        push(format!(
            "hmat-lb,initiator={},target={},hierarchy=memory,data-type=access-bandwidth,bandwidth={}M",
            h.initiator, h.target, h.bandwidth_mbps
        ));
    }
    a
}

/// Each CXL card behind its own host bridge (`pxb-cxl`) and root port
/// (`cxl-rp`); each `[[cxl]]` entry's cards behind one fixed memory window,
/// interleaved when there are several: the shape of QEMU's
/// docs/system/devices/cxl.rst for volatile memory. Every window goes into
/// one `-M` argument: QEMU refuses `cxl-fmw.*` spread over several
/// ("Parameters 'cxl-fmw.*' used inconsistently").
fn cxl_args(profile: &Profile) -> Vec<String> {
    let mut a = Vec::new();
    let mut windows = Vec::new();
    for (entry, card) in profile.cxl_cards() {
        let (i, serial, bus) = (card.index, card.serial, card.host_bridge_bus());
        for arg in [
            "-object".to_string(),
            format!(
                "memory-backend-ram,id=cxl-mem{i},share=on,size={}M",
                profile.cxl[entry].memory_mib
            ),
            "-device".into(),
            format!("pxb-cxl,bus_nr={bus},bus=pcie.0,id=cxl.{i}"),
            "-device".into(),
            format!(
                "cxl-rp,port=0,bus=cxl.{i},id=cxl-rp{i},chassis=0,slot={}",
                2 + i
            ),
            "-device".into(),
            format!(
                "cxl-type3,bus=cxl-rp{i},volatile-memdev=cxl-mem{i},id=cxl-vmem{i},sn={serial}"
            ),
        ] {
            a.push(arg);
        }
    }
    for (i, c) in profile.cxl.iter().enumerate() {
        let mut w: Vec<String> = profile
            .cards_of(i)
            .iter()
            .map(|card| format!("cxl-fmw.{i}.targets.{}=cxl.{}", card.way, card.index))
            .collect();
        w.push(format!("cxl-fmw.{i}.size={}M", c.window_mib));
        if c.ways > 1 {
            // The region takes the root decoder's granularity.
            w.push(format!("cxl-fmw.{i}.interleave-granularity=256"));
        }
        windows.push(w.join(","));
    }
    for (i, id, _) in profile.ports() {
        // Ports sit on uninterleaved windows: the entry's one card.
        let card = profile.cards_of(i)[0].index;
        a.push("-object".into());
        a.push(format!(
            "acpi-generic-port,id=gp{i},pci-bus=cxl.{card},node={id}"
        ));
    }
    if !windows.is_empty() {
        a.push("-M".into());
        a.push(windows.join(","));
    }
    a
}

/// The version `qemu-system-x86_64 --version` prints ("QEMU emulator
/// version 10.0.2 (Debian ...)"), as (major, minor).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split("version ").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The installed QEMU's version, if it runs.
pub fn version() -> Option<(u32, u32)> {
    let out = Command::new(QEMU).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// Whether this QEMU can create objects of `type_name` (`-object help`
/// lists it): `acpi-generic-port` came later than volatile CXL memory.
pub fn has_object(type_name: &str) -> bool {
    Command::new(QEMU)
        .args(["-object", "help"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == type_name)
        })
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited by itself (guest powered off, or a panic with -no-reboot).
    Exited(Option<i32>),
    /// QEMU refused its command line before any guest code ran (exit 1,
    /// its message on stderr, nothing on the console): not a boot fault,
    /// and booting again would only fail again.
    Refused(String),
    /// The deadline passed; QEMU was killed.
    TimedOut,
    /// A signal stopped the run; QEMU was killed. What the guest streamed
    /// until then is still there.
    Interrupted,
}

/// Starts QEMU and waits for it at most `timeout`, or until `stop` turns
/// true; kills it then, so nothing is left running. QEMU also dies with
/// tierbench however tierbench dies (SIGKILL included): the kernel sends it
/// SIGKILL when its parent exits.
pub fn boot(
    args: &[String],
    files: &Boot,
    timeout: Duration,
    stop: &AtomicBool,
) -> std::io::Result<(Ended, Duration)> {
    use std::os::unix::process::CommandExt;
    for f in [&files.console_log, &files.stream] {
        std::fs::write(f, b"")?;
    }
    let parent = std::process::id();
    let mut cmd = Command::new(QEMU);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure calls only prctl, getppid
    // and kill, which are async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    // The spawning thread must live as long as QEMU (PDEATHSIG follows the
    // thread): this is always the main thread.
    let mut child: Child = cmd.spawn()?;
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let console_empty = std::fs::metadata(&files.console_log).is_ok_and(|m| m.len() == 0);
            if status.code() == Some(1) && console_empty && !err.trim().is_empty() {
                return Ok((Ended::Refused(qemu_message(&err)), t0.elapsed()));
            }
            if !err.trim().is_empty() {
                // QEMU's own complaints go to the console log's end.
                let mut log = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&files.console_log)?;
                use std::io::Write;
                writeln!(log, "\n[qemu stderr] {}", err.trim())?;
            }
            return Ok((Ended::Exited(status.code()), t0.elapsed()));
        }
        let stopped = stop.load(Ordering::SeqCst);
        if stopped || t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let ended = if stopped {
                Ended::Interrupted
            } else {
                Ended::TimedOut
            };
            return Ok((ended, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// QEMU's complaint without its program-name prefix, on one line:
/// "qemu-system-x86_64: -object memory-backend-ram,...: Parameter ..."
/// becomes "-object memory-backend-ram,...: Parameter ...".
fn qemu_message(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix(&format!("{QEMU}: ")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why `path` cannot be booted, if it cannot: absent, not a regular file,
/// unreadable, or not starting like a Linux x86 boot image ("HdrS" at
/// 0x202). Each is its own message: "no bzImage header" said of a file
/// root could not read sent users looking at the wrong thing.
pub fn check_kernel_image(path: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                "no such file (give a vmlinuz or bzImage, or a Debian series: 6.1, \
                        6.12, latest)"
                    .into(),
            )
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
        Ok(m) => m,
    };
    if meta.is_dir() {
        return Err("is a directory: give the kernel image in it (arch/x86/boot/bzImage)".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file: give a vmlinuz or arch/x86/boot/bzImage".into());
    }
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut magic = [0u8; 4];
    let read = f
        .seek(SeekFrom::Start(0x202))
        .and_then(|_| f.read_exact(&mut magic));
    if read.is_ok() && &magic == b"HdrS" {
        return Ok(());
    }
    Err(
        "not a Linux x86 kernel image (no bzImage header); give a vmlinuz or \
         arch/x86/boot/bzImage"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCG command line of a shipped profile, as one string.
    fn tcg_args(profile: &str) -> String {
        let boot = Boot {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            console_log: "/c".into(),
            stream: "/s".into(),
        };
        args(&Profile::load(profile).unwrap(), Accel::Tcg, &boot).join(" ")
    }

    /// Every one of `wants` is in the command line `a`.
    fn assert_has(a: &str, wants: &[&str]) {
        for want in wants {
            assert!(a.contains(want), "missing {want:?} in {a}");
        }
    }

    #[test]
    fn command_line_follows_the_profile() {
        let a = tcg_args("qemu-2socket-cxl");
        assert_has(
            &a,
            &[
            "-accel tcg,thread=single -cpu max,la57=off",
            "-machine q35,hmat=on",
            "-m 3072M",
            "-smp 2,sockets=2,cores=1,threads=1",
            "-object memory-backend-ram,id=m2,size=1024M",
            "-numa node,nodeid=0,memdev=m0,cpus=0,initiator=0",
            "-numa node,nodeid=2,memdev=m2,initiator=0",
            "-numa dist,src=1,dst=2,val=30",
            "-numa hmat-lb,initiator=1,target=2,hierarchy=memory,data-type=access-latency,latency=350",
            "data-type=access-bandwidth,bandwidth=4096M",
            "-serial file:/c -serial file:/s",
            ],
        );
    }

    #[test]
    fn cxl_devices_get_a_bridge_a_port_and_a_window() {
        let a = tcg_args("qemu-cxl-type3");
        assert_has(
            &a,
            &[
                "-cpu max,la57=off,hypervisor=off",
                "-machine q35,cxl=on",
                "-m 2048M,maxmem=6144M,slots=8",
                "memory-backend-ram,id=cxl-mem0,share=on,size=256M",
                "-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.0",
                "-device cxl-rp,port=0,bus=cxl.0,id=cxl-rp0,chassis=0,slot=2",
                "-device cxl-type3,bus=cxl-rp0,volatile-memdev=cxl-mem0,id=cxl-vmem0,sn=",
                "-M cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.size=4096M",
            ],
        );
        assert!(!a.contains("hmat=on"), "{a}");
    }

    #[test]
    fn a_generic_port_gets_a_domain_an_object_and_hmat_entries() {
        let a = tcg_args("qemu-cxl-port-far");
        assert_has(
            &a,
            &[
            "-machine q35,hmat=on,cxl=on",
            "-numa node,nodeid=1,initiator=0",
            "-object acpi-generic-port,id=gp0,pci-bus=cxl.0,node=1",
            "hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-latency,latency=400",
            "hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-bandwidth,bandwidth=5120M",
            "hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency,latency=100",
            ],
        );
    }

    #[test]
    fn an_interleaved_window_targets_every_cards_host_bridge() {
        let a = tcg_args("qemu-cxl-interleave-x2");
        assert_has(
            &a,
            &[
                "-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.0",
                "-device pxb-cxl,bus_nr=28,bus=pcie.0,id=cxl.1",
                "-device cxl-type3,bus=cxl-rp1,volatile-memdev=cxl-mem1,id=cxl-vmem1,sn=4661",
                "-M cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,cxl-fmw.0.size=4096M,\
             cxl-fmw.0.interleave-granularity=256",
            ],
        );
        assert_eq!(a.matches("-M ").count(), 1, "{a}");
    }

    #[test]
    fn qemu_versions_parse() {
        let v = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n";
        assert_eq!(parse_version(v), Some((10, 0)));
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian)"),
            Some((7, 2))
        );
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn kernel_image_magic() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"not a kernel").unwrap();
        assert!(check_kernel_image(&f)
            .unwrap_err()
            .contains("no bzImage header"));
        let mut img = vec![0u8; 0x300];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&f, img).unwrap();
        assert!(check_kernel_image(&f).is_ok());
        assert!(check_kernel_image(dir.path())
            .unwrap_err()
            .contains("is a directory"));
        assert!(check_kernel_image(&dir.path().join("no"))
            .unwrap_err()
            .contains("no such file"));
    }
}
