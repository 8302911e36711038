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

/// Follows `chains` pointers from `starts` for `loads` steps each; returns
/// the final pointers (so the loads cannot be optimised away).
///
/// # Safety
/// Every start must be a slot of a cycle built by [`build`].
#[inline(never)]
pub unsafe fn run(starts: &mut [usize], loads: u64) {
    match starts.len() {
        1 => {
            let mut p = starts[0];
            for _ in 0..loads / 8 {
                // Unrolled: eight dependent loads per loop test.
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
                p = *(p as *const usize);
            }
            starts[0] = p;
        }
        _ => {
            for _ in 0..loads {
                for s in starts.iter_mut() {
                    *s = *(*s as *const usize);
                }
            }
        }
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
