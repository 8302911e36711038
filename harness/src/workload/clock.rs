//! The clock that times single accesses. On x86_64 it reads the TSC
//! (`lfence; rdtsc; lfence` before, `rdtscp; lfence` after, so the access
//! cannot drift out of the timed section) and is calibrated against the
//! monotonic clock; the cost of an empty section is subtracted. Elsewhere
//! it falls back to the monotonic clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct AccessClock {
    ns_per_tick: f64,
    /// Ticks an empty timed section takes (the minimum seen).
    overhead: u64,
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::arch::x86_64::{__rdtscp, _mm_lfence, _rdtsc};

    #[inline(always)]
    pub fn start() -> u64 {
        // SAFETY: lfence and rdtsc have no preconditions on x86_64.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }
    #[inline(always)]
    pub fn end() -> u64 {
        let mut aux = 0u32;
        // SAFETY: rdtscp exists on every x86_64 CPU Linux runs on today;
        // lfence has no preconditions.
        unsafe {
            let t = __rdtscp(&mut aux);
            _mm_lfence();
            t
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    use std::sync::OnceLock;
    use std::time::Instant;
    fn origin() -> Instant {
        static O: OnceLock<Instant> = OnceLock::new();
        *O.get_or_init(Instant::now)
    }
    #[inline(always)]
    pub fn start() -> u64 {
        origin().elapsed().as_nanos() as u64
    }
    #[inline(always)]
    pub fn end() -> u64 {
        origin().elapsed().as_nanos() as u64
    }
}

impl AccessClock {
    /// Calibrates over about `span` against the monotonic clock.
    pub fn calibrate(span: Duration) -> Self {
        let (i0, t0) = (Instant::now(), tsc::start());
        while i0.elapsed() < span {
            std::hint::spin_loop();
        }
        let (t1, i1) = (tsc::end(), i0.elapsed());
        let ns_per_tick = i1.as_nanos() as f64 / (t1.wrapping_sub(t0)).max(1) as f64;
        let overhead = (0..2000)
            .map(|_| {
                let a = tsc::start();
                let b = tsc::end();
                b.wrapping_sub(a)
            })
            .min()
            .unwrap_or(0);
        Self {
            ns_per_tick,
            overhead,
        }
    }

    #[inline(always)]
    pub fn start(&self) -> u64 {
        tsc::start()
    }
    #[inline(always)]
    pub fn end(&self) -> u64 {
        tsc::end()
    }
    /// Nanoseconds between a `start` and an `end`, less the empty section.
    #[inline(always)]
    pub fn ns(&self, start: u64, end: u64) -> u64 {
        (end.wrapping_sub(start).saturating_sub(self.overhead) as f64 * self.ns_per_tick) as u64
    }
    pub fn ns_per_tick(&self) -> f64 {
        self.ns_per_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timed sleep reads within 5% of the monotonic clock.
    #[test]
    fn the_access_clock_agrees_with_the_monotonic_clock() {
        let c = AccessClock::calibrate(Duration::from_millis(20));
        let i = Instant::now();
        let a = c.start();
        std::thread::sleep(Duration::from_millis(50));
        let b = c.end();
        let mono = i.elapsed().as_nanos() as f64;
        let ours = c.ns(a, b) as f64;
        assert!((ours / mono - 1.0).abs() < 0.05, "{ours} vs {mono}");
    }
}
