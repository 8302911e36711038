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

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Writes the cycle into `buf` (which must hold `len` bytes, `stride`
/// aligned) and returns the address of its first slot.
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
        for i in 0..order.len() {
            let from = buf.add(order[i] * stride) as *mut usize;
            let to = buf.add(order[(i + 1) % order.len()] * stride) as usize;
            std::ptr::write(from, to);
        }
        order
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
            let order = unsafe { build(buf, len, stride, window, 42) };
            let slots = len / stride;
            assert_eq!(order.len(), slots);
            let start = buf as usize + order[0] * stride;
            let mut seen = std::collections::HashSet::new();
            let mut p = start;
            for _ in 0..slots {
                assert!(seen.insert(p), "slot {p:#x} visited twice");
                assert_eq!((p - buf as usize) % stride, 0);
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
        let order = unsafe { build(buf, len, stride, len, 3) };
        let at = |i: usize| buf as usize + order[i % order.len()] * stride;
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
        // SAFETY: the buffer has len bytes.
        let order = unsafe { build(v.as_mut_ptr() as *mut u8, len, stride, window, 7) };
        let per = window / stride;
        for chunk in order.chunks(per) {
            let w = chunk[0] / per;
            assert!(chunk.iter().all(|s| s / per == w));
        }
    }
}
