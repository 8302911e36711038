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
            push("max,la57=off".into());
        }
    }
    let cpus = profile.cpus.unwrap_or(1);
    let smp = match profile.sockets {
        Some(s) => format!("{cpus},sockets={s},cores={},threads=1", cpus / s.max(1)),
        None => cpus.to_string(),
    };
    for s in [
        "-machine".to_string(),
        "q35,hmat=on".into(),
        "-m".into(),
        format!("{}M", profile.memory_mib.unwrap_or(1024)),
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
    for d in &profile.distances {
        push("-numa".into());
        push(format!("dist,src={},dst={},val={}", d.from, d.to, d.value));
    }
    for h in &profile.hmat {
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

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited by itself (guest powered off, or a panic with -no-reboot).
    Exited(Option<i32>),
    /// The deadline passed; QEMU was killed.
    TimedOut,
}

/// Starts QEMU and waits for it at most `timeout`, or until `stop` turns
/// true; kills it then, so nothing is left running (a stop is an
/// `ErrorKind::Interrupted` error: there is no boot to report). QEMU also dies with
/// tierbench however tierbench dies (SIGKILL included): the kernel sends it
/// SIGKILL when its parent exits.
pub fn boot(
    profile: &Profile,
    accel: Accel,
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
    cmd.args(args(profile, accel, files))
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
            if stopped {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "a signal stopped the guest",
                ));
            }
            return Ok((Ended::TimedOut, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `path` starts like a Linux x86 boot image ("HdrS" at 0x202).
pub fn is_kernel_image(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(0x202)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"HdrS"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_the_profile() {
        let p = Profile::load("qemu-2socket-cxl").unwrap();
        let boot = Boot {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            console_log: "/c".into(),
            stream: "/s".into(),
        };
        let a = args(&p, Accel::Tcg, &boot).join(" ");
        for want in [
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
        ] {
            assert!(a.contains(want), "missing {want:?} in {a}");
        }
    }

    #[test]
    fn kernel_image_magic() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"not a kernel").unwrap();
        assert!(!is_kernel_image(&f));
        let mut img = vec![0u8; 0x300];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&f, img).unwrap();
        assert!(is_kernel_image(&f));
    }
}
