//! Inside the emulated machine: tierbench runs as PID 1. It mounts the
//! pseudo-filesystems, checks the kernel has what the profile needs, runs
//! the inner tierbench command as a child, streams `/results` to the host
//! over the second serial port as files grow, reports the exit code and
//! powers off.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::profile::Profile;
use super::stream::{self, GuestError, GuestErrorKind};
use crate::sysfs::SysRoot;
use crate::topology::Topology;

/// Where the host puts the guest's instructions inside the initramfs.
pub const ARGS_FILE: &str = "/tierbench/args.json";
pub const PROFILE_FILE: &str = "/tierbench/profile.toml";
/// The guest kernel's config, where `probe` reads kernel options.
pub const KERNEL_CONFIG_FILE: &str = "/boot/config";
pub const RESULTS: &str = "/results";
/// The inner command's stderr, beside its results.
pub const STDERR_FILE: &str = "stderr.txt";
/// Set for the inner command: the host profile and the accelerator.
pub const ENV_PROFILE: &str = "TIERBENCH_HOST_PROFILE";
pub const ENV_ACCEL: &str = "TIERBENCH_ACCEL";
const STREAM_PORT: &str = "/dev/ttyS1";

/// What the host tells the guest, in [`ARGS_FILE`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct GuestConfig {
    /// The inner tierbench command line (without the program name).
    pub args: Vec<String>,
    /// The host profile's name, for messages.
    pub profile: String,
    /// Test hook: PID 1 exits at once, so the kernel panics ("Attempted to
    /// kill init"); lets the tests prove a real panic is reported.
    #[serde(default)]
    pub crash_init: bool,
    /// The accelerator QEMU runs the guest under.
    #[serde(default)]
    pub accel: String,
    /// Files the inner command reads (a scenario), by guest path.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Kernel modules to load first, in order (guest paths).
    #[serde(default)]
    pub modules: Vec<String>,
    /// tierbench commands to run after the inner one (`vm --after`).
    #[serde(default)]
    pub after: Vec<Vec<String>>,
}

/// Never returns: powers the machine off.
pub fn init_main() -> ! {
    mount_all();
    if let Err(e) = loopback_up() {
        crate::errln!("tierbench guest: bringing up lo: {e}");
    }
    let crash = fs::read_to_string(ARGS_FILE)
        .ok()
        .and_then(|t| serde_json::from_str::<GuestConfig>(&t).ok())
        .is_some_and(|c| c.crash_init);
    if crash {
        std::process::exit(1);
    }
    let mut port = open_stream();
    let code = match run(&mut port) {
        Ok(code) => code,
        Err(e) => {
            crate::errln!("tierbench guest: {e}");
            send(&mut port, &stream::error_record(&e));
            1
        }
    };
    send(&mut port, &stream::exit_record(code));
    if let Some(p) = port.as_mut() {
        let _ = p.flush();
        // SAFETY: fsync/tcdrain on an open fd we own.
        unsafe {
            libc::tcdrain(p.as_raw_fd());
        }
    }
    // SAFETY: sync and reboot take no pointers; PID 1 may power off.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // reboot(2) does not return on success; as PID 1 exiting panics the
    // kernel, which QEMU (-no-reboot) turns into an exit as well.
    std::process::exit(code)
}

fn mount_all() {
    for (src, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
        ("tmpfs", "/tmp", "tmpfs"),
        ("tmpfs", "/run", "tmpfs"),
    ] {
        let _ = fs::create_dir_all(target);
        let c = |s: &str| CString::new(s).expect("no NUL in mount args");
        let (s, t, f) = (c(src), c(target), c(fstype));
        // SAFETY: valid NUL-terminated strings; no data argument.
        let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            crate::errln!(
                "tierbench guest: mount {target}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Brings up the loopback interface (the kernel gives it 127.0.0.1 when it
/// comes up), so a server and its client can talk inside the guest.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a zeroed ifreq is valid; the name fits IFNAMSIZ.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: fd is open and req a valid ifreq for these ioctls.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

/// The second serial port in raw mode (no newline translation), or `None`
/// if the machine has no second port.
fn open_stream() -> Option<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(STREAM_PORT)
        .ok()?;
    // SAFETY: termios is plain data; the fd is open for the call.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(f.as_raw_fd(), &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::cfsetspeed(&mut t, libc::B115200);
            libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t);
        }
    }
    Some(f)
}

fn send(port: &mut Option<File>, bytes: &[u8]) {
    if let Some(p) = port.as_mut() {
        let _ = p.write_all(bytes);
    }
}

/// Checks what the profile needs from the kernel, from what the guest's
/// sysfs shows. Each missing option is named.
fn check_kernel(profile: &Profile) -> Result<(), GuestError> {
    let sys = SysRoot::live();
    let mut missing = Vec::new();
    let online = sys
        .read_opt("/sys/devices/system/node/online")
        .unwrap_or_default();
    let nodes: crate::topology::NodeSet = online.parse().unwrap_or_default();
    if nodes.len() < profile.nodes.len() + profile.cxl.len() {
        missing.push(format!(
            "CONFIG_NUMA / CONFIG_ACPI_NUMA (the guest sees node(s) {online:?}, the profile defines {})",
            profile.nodes.len() + profile.cxl.len()
        ));
    }
    if !sys.exists("/proc/sys/kernel/numa_balancing") {
        missing.push("CONFIG_NUMA_BALANCING (no /proc/sys/kernel/numa_balancing)".into());
    }
    if !profile.hmat.is_empty() && !sys.exists("/sys/devices/system/node/node0/access0") {
        missing.push("CONFIG_ACPI_HMAT (no nodeN/access0 in sysfs)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GuestError {
            kind: GuestErrorKind::KernelConfig,
            text: format!("the kernel lacks {}", missing.join(", ")),
        })
    }
}

fn run(port: &mut Option<File>) -> Result<i32, GuestError> {
    let config: GuestConfig = serde_json::from_str(
        &fs::read_to_string(ARGS_FILE).map_err(|e| format!("{ARGS_FILE}: {e}"))?,
    )
    .map_err(|e| format!("{ARGS_FILE}: {e}"))?;
    let args = config.args;
    for (path, text) in &config.files {
        if let Some(dir) = Path::new(path).parent() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    let mut profile: Profile = toml::from_str(
        &fs::read_to_string(PROFILE_FILE).map_err(|e| format!("{PROFILE_FILE}: {e}"))?,
    )
    .map_err(|e| format!("{PROFILE_FILE}: {e}"))?;
    profile.name = config.profile.clone();
    for m in &config.modules {
        super::modules::load(m).map_err(|e| GuestError {
            kind: GuestErrorKind::KernelConfig,
            text: format!("loading the CXL/DAX drivers: {e}"),
        })?;
    }
    fs::create_dir_all(RESULTS).map_err(|e| e.to_string())?;
    if !profile.cxl.is_empty() {
        let onlined = super::cxl_region::online_all(&profile)
            .map_err(|e| format!("onlining the CXL memory: {e}"))?;
        for o in &onlined {
            crate::errln!("tierbench guest: CXL: {}", o.summary());
        }
        let _ = fs::write(
            format!("{RESULTS}/cxl.json"),
            serde_json::to_string_pretty(&onlined).unwrap_or_default(),
        );
    }
    check_kernel(&profile)?;

    // What the kernel made of the emulated machine, and how that compares
    // with the profile's expectations.
    let topo = Topology::discover().map_err(|e| e.to_string())?;
    let _ = fs::write(
        format!("{RESULTS}/guest-topology.json"),
        serde_json::to_string_pretty(&topo).unwrap_or_default(),
    );
    let _ = fs::write(
        format!("{RESULTS}/uname.txt"),
        fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default(),
    );
    let mismatches = profile.check(&topo);
    let _ = fs::write(format!("{RESULTS}/expectations.txt"), mismatches.join("\n"));

    let stdout = File::create(format!("{RESULTS}/stdout.txt")).map_err(|e| e.to_string())?;
    let mut child = Command::new("/init")
        .args(&args)
        .env("TIERBENCH_STATE_DIR", "/run/tierbench")
        // The kernel starts init without PATH: carried programs are found
        // where the host had them.
        .env("PATH", GUEST_PATH)
        // init's files (topology, expectations) are already in /results.
        .env(crate::report::outdir::ENV_SHARED, RESULTS)
        .env(ENV_PROFILE, &config.profile)
        .env(ENV_ACCEL, &config.accel)
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the inner command: {e}"))?;
    // Its messages go to the console as they come and to stderr.txt, which
    // streams back: the host repeats its errors.
    let copier = child.stderr.take().map(|mut err| {
        let mut copy = File::create(format!("{RESULTS}/{STDERR_FILE}")).ok();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut err, &mut buf) {
                if n == 0 {
                    break;
                }
                let _ = std::io::stderr().write_all(&buf[..n]);
                if let Some(f) = copy.as_mut() {
                    let _ = f.write_all(&buf[..n]);
                }
            }
        })
    });
    let mut sent: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let status = loop {
        stream_results(port, &mut sent);
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(250)),
            Err(e) => return Err(format!("waiting for the inner command: {e}").into()),
        }
    };
    // Its last messages are in stderr.txt before the last streaming.
    if let Some(c) = copier {
        let _ = c.join();
    }
    stream_results(port, &mut sent);
    for (i, words) in config.after.iter().enumerate() {
        run_after(i + 1, words);
        stream_results(port, &mut sent);
    }
    Ok(status.code().unwrap_or(1))
}

/// One `--after` command: its stdout and stderr in `after-N.txt`, then
/// `exit: CODE`.
fn run_after(n: usize, words: &[String]) {
    let path = format!("{RESULTS}/after-{n}.txt");
    let out = Command::new("/init")
        .args(words)
        .env("TIERBENCH_STATE_DIR", "/run/tierbench")
        .env("PATH", GUEST_PATH)
        .output();
    let text = match out {
        Ok(o) => format!(
            "{}{}exit: {}\n",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            o.status.code().map_or("signal".into(), |c| c.to_string())
        ),
        Err(e) => format!("could not start: {e}\nexit: none\n"),
    };
    let _ = fs::write(path, text);
}

/// Sends what changed in each file under /results since the last call:
/// the bytes after the first one that differs from what was sent (an
/// append for the CSV, a partial rewrite for system.json).
/// Where a file the guest sent goes under the host's results directory:
/// `NAME`, or `output/NAME` for a program's output; anything else is cut
/// to its file name, so no name can leave the directory.
pub fn received_path(name: &str) -> PathBuf {
    let p = Path::new(name);
    let file = p.file_name().map(PathBuf::from).unwrap_or_default();
    match p.parent().and_then(Path::to_str) {
        Some(OUTPUT_DIR) => Path::new(OUTPUT_DIR).join(file),
        _ => file,
    }
}

/// The subdirectory of results that streams back too: the output of the
/// programs `run -- COMMAND` started.
const OUTPUT_DIR: &str = "output";

/// PATH of the inner command.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn stream_results(port: &mut Option<File>, sent: &mut BTreeMap<String, Vec<u8>>) {
    let top = fs::read_dir(RESULTS).into_iter().flatten().flatten();
    let output = fs::read_dir(format!("{RESULTS}/{OUTPUT_DIR}"))
        .into_iter()
        .flatten()
        .flatten();
    for e in top.chain(output) {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let name = path
            .strip_prefix(RESULTS)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let Ok(data) = fs::read(&path) else { continue };
        let prev = sent.entry(name.clone()).or_default();
        if *prev == data {
            continue;
        }
        let same = prev.iter().zip(&data).take_while(|(a, b)| a == b).count();
        send(port, &stream::file_record(&name, same, &data[same..]));
        *prev = data;
    }
}

/// True when this process is the machine's init.
pub fn is_init() -> bool {
    std::process::id() == 1 && Path::new(ARGS_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program's output keeps its directory; no name leaves the results.
    #[test]
    fn received_names_stay_inside_the_results() {
        assert_eq!(received_path("summary.csv"), Path::new("summary.csv"));
        assert_eq!(received_path("output/1-x.log"), Path::new("output/1-x.log"));
        assert_eq!(received_path("../../etc/passwd"), Path::new("passwd"));
        assert_eq!(received_path("output/../../x"), Path::new("x"));
        assert_eq!(received_path("/abs/output/y"), Path::new("y"));
    }
}
