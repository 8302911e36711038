//! A program tierbench starts and does not own: its own process group, its
//! memory policy and CPUs set between `fork` and `exec` (inherited, as
//! `numactl` does), and a watcher process that kills the whole group if
//! tierbench dies without doing so (SIGKILL, a second signal, a panic's
//! exit): nothing it started outlives it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::mempolicy::Policy;
use crate::topology::CpuSet;

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    /// Exit code, or 128 + the signal that killed it (as a shell says).
    pub code: i32,
    /// Killed by this signal.
    pub signal: Option<i32>,
    pub wall: Duration,
    pub user_s: f64,
    pub sys_s: f64,
    /// Largest resident set of the leader and the children it waited for
    /// (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// A started program: the leader of its own process group.
#[derive(Debug)]
pub struct Group {
    pid: libc::pid_t,
    started: Instant,
    /// When the leader exited, set by a thread blocked in `waitid`: the
    /// wall time is the kernel's moment, not the next poll's.
    exited: Arc<OnceLock<Instant>>,
    watcher: Watcher,
    ended: Option<Ended>,
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting {program}: {source}")]
pub struct SpawnError {
    pub program: String,
    pub source: std::io::Error,
}

impl Group {
    /// Starts `argv` with stdout and stderr into `log`, stdin empty, under
    /// `policy` (None: the default, inherited from nobody) on `cpus` (empty:
    /// wherever tierbench may run).
    pub fn spawn(
        argv: &[String],
        policy: Option<&Policy>,
        cpus: &CpuSet,
        log: &Path,
    ) -> Result<Group, SpawnError> {
        let failed = |source| SpawnError {
            program: argv[0].clone(),
            source,
        };
        let out = File::create(log).map_err(|e| {
            failed(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", log.display()),
            ))
        })?;
        let err = out.try_clone().map_err(failed)?;
        // Everything the child does between fork and exec is prepared here:
        // it may only make system calls there, never allocate.
        let policy_args = policy.map(Policy::kernel_args);
        // SAFETY: a zeroed cpu_set_t is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for c in cpus.iter() {
            // SAFETY: CPU_SET writes the bit inside `set` (ids < CPU_SETSIZE).
            unsafe { libc::CPU_SET(c as usize, &mut set) };
        }
        let pin = !cpus.is_empty();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: the closure only makes system calls (setpgid,
        // sched_setaffinity, set_mempolicy) on data prepared above.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if pin
                    && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((mode, mask)) = &policy_args {
                    crate::mempolicy::sys::set_mempolicy(*mode, mask)
                        .map_err(|e| std::io::Error::from_raw_os_error(e.errno.0))?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(failed)?;
        let started = Instant::now();
        let pid = child.id() as libc::pid_t;
        // The child is reaped with wait4 (for its rusage), never by `Child`.
        drop(child);
        let exited = Arc::new(OnceLock::new());
        let mark = exited.clone();
        std::thread::Builder::new()
            .name("tierbench-exit".into())
            .spawn(move || {
                // SAFETY: a zeroed siginfo_t is valid for waitid to fill.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // WNOWAIT leaves the leader a zombie, so its pid still names
                // the group while the leftovers are killed: no other group
                // can have taken that id.
                // SAFETY: info is valid for writes.
                while unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                } != 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
                let _ = mark.set(Instant::now());
            })
            .map_err(failed)?;
        let watcher = match Watcher::start(pid) {
            Ok(w) => w,
            Err(e) => {
                // Without its watcher the program must not run at all.
                // SAFETY: kills and reaps the child started above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(failed(e));
            }
        };
        Ok(Group {
            pid,
            started,
            exited,
            watcher,
            ended: None,
        })
    }

    pub fn pgid(&self) -> libc::pid_t {
        self.pid
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the leader has exited; once it has, the rest of its group
    /// is killed and the leader reaped (its rusage kept).
    pub fn poll(&mut self) -> Option<Ended> {
        if self.ended.is_some() {
            return self.ended;
        }
        let at = *self.exited.get()?;
        self.signal(libc::SIGKILL);
        Some(self.reap(at))
    }

    /// Blocks until the leader exits.
    pub fn wait(&mut self) -> Ended {
        loop {
            if let Some(e) = self.poll() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn reap(&mut self, exited_at: Instant) -> Ended {
        let wall = exited_at.saturating_duration_since(self.started);
        let mut status = 0;
        // SAFETY: a zeroed rusage is valid for wait4 to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and ru are valid for writes.
        let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let (code, signal) = if r != self.pid {
            (-1, None)
        } else if libc::WIFSIGNALED(status) {
            let s = libc::WTERMSIG(status);
            (128 + s, Some(s))
        } else {
            (libc::WEXITSTATUS(status), None)
        };
        let ended = Ended {
            code,
            signal,
            wall,
            user_s: tv(ru.ru_utime),
            sys_s: tv(ru.ru_stime),
            max_rss_kib: ru.ru_maxrss.max(0) as u64,
        };
        self.ended = Some(ended);
        self.watcher.release();
        ended
    }

    /// `sig` to every process of the group.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; a group already gone
        // gives ESRCH, which is the wanted outcome.
        unsafe { libc::kill(-self.pid, sig) };
    }

    /// Asks the group to end (SIGTERM), then kills it after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Ended {
        if let Some(e) = self.ended {
            return e;
        }
        self.signal(libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Some(e) = self.poll() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.signal(libc::SIGKILL);
        self.wait()
    }
}

impl Drop for Group {
    /// An error or a panic between start and end: the group goes with it.
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.signal(libc::SIGKILL);
            self.wait();
        }
    }
}

/// A forked process that kills a group when tierbench's end of a pipe
/// closes without the word "done" (one byte) written on it: tierbench died
/// without ending the group itself.
#[derive(Debug)]
struct Watcher {
    /// Write end of the pipe (close-on-exec: no program inherits it).
    tx: Option<std::os::fd::OwnedFd>,
    pid: libc::pid_t,
}

impl Watcher {
    fn start(pgid: libc::pid_t) -> std::io::Result<Watcher> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: fds is valid for two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two open descriptors this process owns.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child branch only makes async-signal-safe calls
        // (close, signal, read, kill, _exit) before it exits.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            // SAFETY: this is the forked child, and these are the pipe's ends.
            0 => unsafe { watch(rx.as_raw_fd(), tx.as_raw_fd(), pgid) },
            pid => {
                drop(rx);
                Ok(Watcher { tx: Some(tx), pid })
            }
        }
    }

    /// The group ended under tierbench's hand: the watcher exits quietly.
    fn release(&mut self) {
        use std::io::Write;
        if let Some(tx) = self.tx.take() {
            let _ = File::from(tx).write_all(b"d");
            let mut status = 0;
            // SAFETY: reaps the watcher this process forked.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// The watcher's whole life, in the forked child.
///
/// # Safety
/// Only in the child of `fork`, with `rx`/`tx` the pipe's ends.
unsafe fn watch(rx: i32, tx: i32, pgid: libc::pid_t) -> ! {
    // SAFETY: async-signal-safe calls on descriptors and ids this child holds.
    unsafe {
        libc::close(tx);
        // A Ctrl-C or a kill of tierbench's group must not take the
        // watcher before it has done its one job.
        for sig in crate::interrupt::STOPPING {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut b = 0u8;
        loop {
            let n = libc::read(rx, (&mut b as *mut u8).cast(), 1);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n != 1 {
                libc::kill(-pgid, libc::SIGKILL);
            }
            libc::_exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn alive(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks the pid exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn exit_code_and_output_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let mut g = Group::spawn(
            &argv(&["sh", "-c", "echo hello; echo err >&2; exit 3"]),
            None,
            &CpuSet::new(),
            &log,
        )
        .unwrap();
        let e = g.wait();
        assert_eq!((e.code, e.signal), (3, None));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\nerr\n");
    }

    /// The leader's exit takes the rest of its group: a background child
    /// it left behind does not survive.
    #[test]
    fn leftovers_of_the_group_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; exit 0", pidfile.display());
        let mut g = Group::spawn(
            &argv(&["sh", "-c", &script]),
            None,
            &CpuSet::new(),
            &dir.path().join("log"),
        )
        .unwrap();
        assert_eq!(g.wait().code, 0);
        let pid: libc::pid_t = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(pid)
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z"))
        });
        assert!(gone, "the background sleep {pid} survived its group");
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = Group::spawn(
            &argv(&["/nonexistent/prog"]),
            None,
            &CpuSet::new(),
            &dir.path().join("log"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/prog"), "{e}");
    }

    #[test]
    fn stop_ends_a_program_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Group::spawn(
            &argv(&["sh", "-c", "trap '' TERM; sleep 30"]),
            None,
            &CpuSet::new(),
            &dir.path().join("log"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let e = g.stop(Duration::from_millis(200));
        assert!(e.signal.is_some(), "{e:?}");
        assert!(!alive(g.pgid()) || g.poll().is_some());
    }
}
