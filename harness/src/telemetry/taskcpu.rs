//! CPU time of threads of this process, split user/system, from
//! `/proc/self/task/TID/stat`: the workers' system time is where the
//! kernel's NUMA hint faults, scanning (task_work) and the migrations they
//! trigger are charged.

use std::io;

/// User and system CPU seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user_s: f64,
    pub sys_s: f64,
}

impl CpuTimes {
    /// The sum over `tids` (threads of this process).
    pub fn of_threads(tids: &[i32]) -> io::Result<CpuTimes> {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut t = CpuTimes::default();
        for tid in tids {
            let path = format!("/proc/self/task/{tid}/stat");
            let stat = std::fs::read_to_string(&path)?;
            let (utime, stime) = parse_stat(&stat).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{path}: no utime/stime"),
                )
            })?;
            t.user_s += utime as f64 / hz;
            t.sys_s += stime as f64 / hz;
        }
        Ok(t)
    }

    /// What was spent since `earlier`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            sys_s: (self.sys_s - earlier.sys_s).max(0.0),
        }
    }

    pub fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// utime and stime (fields 14 and 15, clock ticks) of a `stat` line. The
/// command name (field 2) is in parentheses and may hold spaces and
/// parentheses: the fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// This thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line =
            "4242 (tb (worker) 1) R 1 4242 4242 0 -1 4194560 12 0 0 0 731 45 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_stat(line), Some((731, 45)));
        assert_eq!(parse_stat("4242 (x) R 1"), None);
    }

    /// The calling thread's own times grow when it spins.
    #[test]
    fn this_threads_time_is_read() {
        let tid = gettid();
        let before = CpuTimes::of_threads(&[tid]).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
        while std::time::Instant::now() < until {
            std::hint::black_box(0u64);
        }
        let after = CpuTimes::of_threads(&[tid]).unwrap();
        assert!(after.since(&before).total_s() > 0.0, "{before:?} {after:?}");
    }
}
