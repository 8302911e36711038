//! The access loop the first `tierbench run` drives: each pinned worker
//! sweeps its share of the hot range at a fixed stride, reading (or
//! read-modify-writing) one 8-byte word per step, and counts its accesses.
//! The bandwidth kernels ([`bandwidth`]) and the pointer chase ([`chase`])
//! live beside it, run on a machine by [`measure`]; this loop is what makes
//! NUMA hint faults happen on the hot set.

pub mod bandwidth;
pub mod chase;
pub mod measure;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Accesses between updates of the shared counter: keeps the shared cache
/// line out of the hot loop.
const BATCH: u64 = 4096;

#[derive(Debug, Clone, Copy)]
pub struct AccessLoop {
    /// Bytes between two accesses (a multiple of 8).
    pub stride: usize,
    /// Read-modify-write instead of read.
    pub write: bool,
}

impl AccessLoop {
    /// Sweeps `[base, base + len)` until `stop` turns true, adding accesses
    /// to `count`. Returns this worker's checksum, so the reads cannot be
    /// optimised away.
    ///
    /// # Safety
    /// `base..base+len` must be mapped and writable for the whole call if
    /// `write` is set (readable otherwise), and `len` a multiple of 8.
    pub unsafe fn run(
        &self,
        base: *mut u8,
        len: usize,
        stop: &AtomicBool,
        count: &AtomicU64,
    ) -> u64 {
        let mut sum = 0u64;
        let mut pending = 0u64;
        let stride = self.stride.max(8);
        if len < 8 {
            return 0;
        }
        'outer: loop {
            let mut off = 0;
            while off + 8 <= len {
                let p = base.add(off) as *mut u64;
                let v = std::ptr::read_volatile(p);
                if self.write {
                    std::ptr::write_volatile(p, v.wrapping_add(1));
                }
                sum = sum.wrapping_add(v);
                pending += 1;
                if pending == BATCH {
                    count.fetch_add(pending, Ordering::Relaxed);
                    pending = 0;
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
                off += stride;
            }
        }
        count.fetch_add(pending, Ordering::Relaxed);
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a stride of one page and writes on, every page of the range
    /// is incremented as many times as the sweep passed it: the loop
    /// touches every page it claims to, and the count matches.
    #[test]
    fn write_loop_touches_every_page_it_counts() {
        let pages = 64;
        let mut buf = vec![0u64; pages * 512];
        // Stop is already set: the loop ends at its first check, after
        // exactly BATCH accesses.
        let stop = AtomicBool::new(true);
        let count = AtomicU64::new(0);
        let lp = AccessLoop {
            stride: 4096,
            write: true,
        };
        // SAFETY: buf is pages * 4096 bytes, owned and writable.
        unsafe { lp.run(buf.as_mut_ptr() as *mut u8, pages * 4096, &stop, &count) };
        let n = count.load(Ordering::Relaxed);
        assert_eq!(n, BATCH);
        let total: u64 = buf.iter().step_by(512).sum();
        assert_eq!(total, n);
        // Each page got BATCH / pages increments: the sweep is uniform.
        assert!(buf.iter().step_by(512).all(|&v| v == BATCH / pages as u64));
    }
}
