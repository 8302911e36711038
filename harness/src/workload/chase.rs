//! Dependent-load pointer chase for latency: every cache-line slot of the
//! buffer holds the address of the next slot of one random cycle through
//! all slots, so each load waits for the previous one.
//!
//! The cycle is randomised inside windows of `window` bytes (the TLB reach
//! the caller wants to model) and the windows are visited in random order,
//! as multichase's `-T` does: the prefetchers cannot follow it, and the TLB
//! is neither flattered (sequential pages) nor punished more than the
//! window says. Several independent chains (`chains > 1`) start at evenly
//! spaced points of the same cycle and measure memory-level parallelism.
//!
//! Inside its stride, each slot's pointer sits at an offset drawn from a
//! table of random multiples of 8 bytes (multichase's "mixer"). With a
//! stride wider than a line, pointers all at offset 0 would use only one
//! line in `stride / 64` of every set-index and channel-interleave pattern:
//! at stride 256, a quarter of the L1 and L2 sets: another experiment than
//! multichase's. Which way it errs depends on the host: when issue #13 was
//! filed it read 3-8% slower than multichase at 256 MiB and 1 GiB, on the
//! host of 2026-11-30 25-30% faster.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The smallest default working set of the chase.
pub const MIN_DEFAULT_SIZE: u64 = 256 << 20;

/// The chase's default working set on a machine whose last-level cache is
/// `llc`: at least four times it, so "idle latency" is memory's and not a
/// cache's (a 480 MiB L3 would hold all of a 256 MiB chase), and at least
/// [`MIN_DEFAULT_SIZE`]; rounded up to 2 MiB for huge pages. Returns the
/// size and why, for the output.
pub fn default_size(llc: Option<crate::topology::hwloc::Cache>) -> (u64, String) {
    let size = llc
        .map(|c| (4 * c.bytes).div_ceil(2 << 20) * (2 << 20))
        .unwrap_or(0)
        .max(MIN_DEFAULT_SIZE);
    let why = match llc {
        Some(c) => {
            let cache = match c.bytes {
                b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
                b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
                b => format!("{} KiB", b >> 10),
            };
            let relation = if size > MIN_DEFAULT_SIZE {
                "4 x"
            } else {
                "at least 4 x"
            };
            format!(
                "{} MiB: {relation} the {cache} L{} cache hwloc reports",
                size >> 20,
                c.level
            )
        }
        None => format!("{} MiB: hwloc reports no cache", size >> 20),
    };
    (size, why)
}

/// The cycle's seed unless one is asked for: one fixed cycle, so runs
/// (and hosts) measure the same walk.
pub const DEFAULT_SEED: u64 = 0x7ee7;

/// Entries of the offset table: the offset of slot `s` is `table[s % 64]`,
/// so neighbouring slots take different lines of their stride.
const MIXER: usize = 64;

/// Writes the cycle into `buf` (which must hold `len` bytes, `stride`
/// aligned) and returns the addresses of its slots in cycle order (each
/// holds the next; the last holds the first).
///
/// # Safety
/// `buf..buf+len` must be writable and `stride >= 8`, a multiple of 8.
pub unsafe fn build(
    buf: *mut u8,
    len: usize,
    stride: usize,
    window: usize,
    seed: u64,
) -> Vec<usize> {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        let slots = len / stride;
        let per_window = (window / stride).clamp(1, slots.max(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mixer: Vec<usize> = (0..MIXER)
            .map(|_| rng.gen_range(0..stride / 8) * 8)
            .collect();
        let at = |slot: usize| buf as usize + slot * stride + mixer[slot % MIXER];
        let mut windows: Vec<usize> = (0..slots.div_ceil(per_window)).collect();
        windows.shuffle(&mut rng);
        let mut order = Vec::with_capacity(slots);
        for w in windows {
            let start = w * per_window;
            let end = (start + per_window).min(slots);
            let mut inner: Vec<usize> = (start..end).collect();
            inner.shuffle(&mut rng);
            order.extend(inner);
        }
        // Written in address order, as multichase threads its chase: the
        // first touch of every page then follows the buffer, so the kernel
        // hands out frames in the order of the virtual pages, as it does
        // to multichase (touched in cycle order, the frames came scattered
        // and the chase at stride 256 in 256 KiB windows read about 1%
        // slower, paired runs in one sitting).
        let mut next = vec![0usize; slots];
        for (i, &slot) in order.iter().enumerate() {
            next[slot] = at(order[(i + 1) % order.len()]);
        }
        for (slot, &to) in next.iter().enumerate() {
            std::ptr::write(at(slot) as *mut usize, to);
        }
        order.into_iter().map(at).collect()
    }
}

/// Follows `starts.len()` independent chains (1 to 8) for `loads` steps
/// each and leaves the final pointers in `starts` (so the loads cannot be
/// optimised away).
///
/// # Safety
/// Every start must be a slot of a cycle built by [`build`].
pub unsafe fn run(starts: &mut [usize], loads: u64) {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        match starts.len() {
            1 => run_n::<1>(starts, loads),
            2 => run_n::<2>(starts, loads),
            3 => run_n::<3>(starts, loads),
            4 => run_n::<4>(starts, loads),
            5 => run_n::<5>(starts, loads),
            6 => run_n::<6>(starts, loads),
            7 => run_n::<7>(starts, loads),
            8 => run_n::<8>(starts, loads),
            n => panic!("{n} chains: the chase runs 1 to 8"),
        }
    }
}

/// The chase with `N` chains held in registers: the array is a local of
/// fixed size, fully unrolled, so every step is `N` independent dependent
/// loads and nothing else.
#[inline(never)]
unsafe fn run_n<const N: usize>(starts: &mut [usize], loads: u64) {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        let mut p = [0usize; N];
        p.copy_from_slice(&starts[..N]);
        for _ in 0..loads / 16 {
            for _ in 0..16 {
                for q in p.iter_mut() {
                    *q = *(*q as *const usize);
                }
            }
        }
        for _ in 0..loads % 16 {
            for q in p.iter_mut() {
                *q = *(*q as *const usize);
            }
        }
        starts[..N].copy_from_slice(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::hwloc::Cache;

    /// The default working set follows the machine's last-level cache: a
    /// 480 MiB L3 (a host the chase once measured as a cache) gets 1920
    /// MiB; a 105 MiB one 420 MiB; a small cache, or none, 256 MiB.
    #[test]
    fn the_default_size_is_four_times_the_last_level_cache() {
        let l3 = |mib: u64| {
            Some(Cache {
                level: 3,
                bytes: mib << 20,
            })
        };
        let (size, why) = default_size(l3(480));
        assert_eq!(size, 1920 << 20);
        assert_eq!(why, "1920 MiB: 4 x the 480 MiB L3 cache hwloc reports");
        assert_eq!(default_size(l3(105)).0, 420 << 20);
        // 4 x 65 MiB: above 256 MiB, rounded up to 2 MiB.
        let odd = Some(Cache {
            level: 3,
            bytes: (65 << 20) + 4096,
        });
        assert_eq!(default_size(odd).0, 262 << 20);
        assert_eq!(
            default_size(l3(32)),
            (
                256 << 20,
                "256 MiB: at least 4 x the 32 MiB L3 cache hwloc reports".into()
            )
        );
        assert_eq!(
            default_size(None),
            (256 << 20, "256 MiB: hwloc reports no cache".into())
        );
    }

    /// Following the cycle from its first slot visits every slot exactly
    /// once and comes back.
    #[test]
    fn the_chase_visits_every_slot_once_per_cycle() {
        for (len, stride, window) in [
            (1 << 20, 64, 4096),
            (256 << 10, 256, 1 << 20),
            (64 << 10, 64, 64),
        ] {
            let mut v = vec![0u64; len / 8];
            let buf = v.as_mut_ptr() as *mut u8;
            // SAFETY: buf has len bytes.
            let cycle = unsafe { build(buf, len, stride, window, 42) };
            let slots = len / stride;
            assert_eq!(cycle.len(), slots);
            let start = cycle[0];
            let mut seen = std::collections::HashSet::new();
            let mut p = start;
            for _ in 0..slots {
                let slot = (p - buf as usize) / stride;
                assert!(seen.insert(slot), "slot {slot} visited twice");
                assert_eq!(p % 8, 0, "{p:#x}: a pointer is not 8-byte aligned");
                // SAFETY: p is a slot of the cycle inside buf.
                p = unsafe { *(p as *const usize) };
            }
            assert_eq!(p, start, "the cycle does not close");
            assert_eq!(seen.len(), slots);
        }
    }

    /// Every chain count advances each chain exactly `loads` slots along
    /// the cycle.
    #[test]
    fn every_chain_advances_exactly_loads_slots() {
        let (len, stride) = (64 << 10, 64);
        let mut v = vec![0u64; len / 8];
        let buf = v.as_mut_ptr() as *mut u8;
        // SAFETY: buf has len bytes.
        let cycle = unsafe { build(buf, len, stride, len, 3) };
        let at = |i: usize| cycle[i % cycle.len()];
        for chains in 1..=8 {
            for loads in [0u64, 1, 15, 16, 17, 1000] {
                let firsts: Vec<usize> = (0..chains).map(|c| c * 97).collect();
                let mut starts: Vec<usize> = firsts.iter().map(|&i| at(i)).collect();
                // SAFETY: the starts are slots of the cycle.
                unsafe { run(&mut starts, loads) };
                for (c, &i) in firsts.iter().enumerate() {
                    assert_eq!(
                        starts[c],
                        at(i + loads as usize),
                        "{chains} chains, {loads} loads"
                    );
                }
            }
        }
    }

    /// Windows are visited whole: consecutive slots of the cycle stay in
    /// one window until it is exhausted.
    #[test]
    fn slots_stay_inside_their_window() {
        let (len, stride, window) = (1 << 20, 64, 4096);
        let mut v = vec![0u64; len / 8];
        let buf = v.as_mut_ptr() as usize;
        // SAFETY: the buffer has len bytes.
        let cycle = unsafe { build(buf as *mut u8, len, stride, window, 7) };
        for chunk in cycle.chunks(window / stride) {
            let w = (chunk[0] - buf) / window;
            assert!(chunk.iter().all(|a| (a - buf) / window == w));
        }
    }

    /// At a stride of several lines the pointers spread over every line
    /// offset of the stride (multichase's mixer), not just the first.
    #[test]
    fn wide_strides_use_every_line_of_the_stride() {
        let (len, stride) = (1 << 20, 256);
        let mut v = vec![0u64; len / 8];
        let buf = v.as_mut_ptr() as usize;
        // SAFETY: the buffer has len bytes.
        let cycle = unsafe { build(buf as *mut u8, len, stride, len, 11) };
        let mut lines = [0usize; 4];
        for a in &cycle {
            let off = (a - buf) % stride;
            assert!(off + 8 <= stride, "pointer at {off} spills out of its slot");
            lines[off / 64] += 1;
        }
        assert!(
            lines.iter().all(|&n| n > 0),
            "line use per offset: {lines:?}"
        );
    }
}
