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
//! By default the cycle and the offsets are multichase's own draw
//! ([`Draw::Multichase`]), so the two tools walk the same cycle.
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

/// Which random cycle (and which pointer offsets) a chase walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// The cycle multichase draws for the same size, stride and window:
    /// glibc's `random_r` as multichase seeds it (1 for the offsets, 0 for
    /// the chase), its inside-out Fisher-Yates, its window order. Both
    /// tools then walk the same cycle, and a comparison compares the tools,
    /// not two draws (one draw against another moved a 256 MiB chase at
    /// stride 256 by up to 25% here).
    Multichase,
    /// A cycle of tierbench's own generator from this seed.
    Seed(u64),
}

/// The default: multichase's cycle, one fixed walk on every host.
pub const DEFAULT_DRAW: Draw = Draw::Multichase;

impl std::str::FromStr for Draw {
    type Err = String;
    fn from_str(s: &str) -> Result<Draw, String> {
        match s {
            "multichase" => Ok(Draw::Multichase),
            n => n
                .parse()
                .map(Draw::Seed)
                .map_err(|_| format!("{n:?}: give `multichase` or a seed (a number up to 2^64-1)")),
        }
    }
}

impl std::fmt::Display for Draw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Draw::Multichase => f.write_str("multichase"),
            Draw::Seed(n) => write!(f, "{n}"),
        }
    }
}

impl serde::Serialize for Draw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// glibc's `random_r` with the 32-byte state multichase gives
/// `initstate_r` (TYPE_1: an additive feedback generator of degree 7,
/// separation 3), seeded as `srandom_r` seeds it. Checked against glibc
/// itself in the tests.
struct GlibcRandom {
    state: [i32; 7],
    f: usize,
    r: usize,
}

impl GlibcRandom {
    fn new(seed: u32) -> Self {
        let mut state = [0i32; 7];
        let seed = if seed == 0 { 1 } else { seed };
        state[0] = seed as i32;
        // glibc keeps `word` in an int32_t and computes in long.
        let mut word = seed as i32;
        for s in state.iter_mut().skip(1) {
            let (hi, lo) = (i64::from(word) / 127_773, i64::from(word) % 127_773);
            word = (16_807 * lo - 2_836 * hi) as i32;
            if word < 0 {
                word += 2_147_483_647;
            }
            *s = word;
        }
        let mut g = GlibcRandom { state, f: 3, r: 0 };
        for _ in 0..70 {
            g.next();
        }
        g
    }

    fn next(&mut self) -> i32 {
        let val = (self.state[self.f] as u32).wrapping_add(self.state[self.r] as u32);
        self.state[self.f] = val as i32;
        self.f += 1;
        self.r += 1;
        if self.f >= 7 {
            self.f = 0;
        } else if self.r >= 7 {
            self.r = 0;
        }
        (val >> 1) as i32
    }

    /// multichase's `rng_int`: 16 bits of each of four draws, modulo
    /// `limit + 1`.
    fn int(&mut self, limit: usize) -> usize {
        let mut r = 0u64;
        for k in 0..4 {
            r |= (self.next() as u64 & 0xffff) << (16 * k);
        }
        (r % (limit as u64 + 1)) as usize
    }

    /// multichase's `gen_random_permutation` into `perm`, offset by `base`.
    fn permutation(&mut self, perm: &mut [usize], base: usize) {
        for i in 0..perm.len() {
            let t = self.int(i);
            perm[i] = perm[t];
            perm[t] = base + i;
        }
    }
}

/// multichase's cycle order and pointer offsets (`generate_chase_mixer`
/// and `generate_chase` for one thread, one chain): the slots in the order
/// the cycle visits them, and each slot's offset in its stride.
fn multichase_draw(slots: usize, per_window: usize, stride: usize) -> (Vec<usize>, Vec<usize>) {
    const NR_MIXERS: usize = 64;
    let indices = (stride / 8).max(1);
    let mut main = GlibcRandom::new(1);
    let mut t = vec![0usize; indices];
    let offsets = (0..NR_MIXERS)
        .map(|_| {
            main.permutation(&mut t, 0);
            t[0] * 8
        })
        .collect();
    let mut chase = GlibcRandom::new(0);
    let groups = slots.div_ceil(per_window);
    let mut order_of_windows = vec![0usize; groups];
    chase.permutation(&mut order_of_windows, 0);
    let mut order = vec![0usize; slots];
    let mut start = 0;
    for &w in &order_of_windows {
        // A partial window (a size that is not a multiple of the window;
        // multichase would drop it) keeps the slots it has.
        let len = per_window.min(slots - w * per_window);
        chase.permutation(&mut order[start..start + len], w * per_window);
        start += len;
    }
    (order, offsets)
}

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
    draw: Draw,
) -> Vec<usize> {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        let slots = len / stride;
        let per_window = (window / stride).clamp(1, slots.max(1));
        let (order, mixer) = match draw {
            Draw::Multichase => multichase_draw(slots, per_window, stride),
            Draw::Seed(seed) => seeded_draw(slots, per_window, stride, seed),
        };
        let at = |slot: usize| buf as usize + slot * stride + mixer[slot % MIXER];
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

/// tierbench's own draw: the same shape as [`multichase_draw`] from
/// another generator.
fn seeded_draw(
    slots: usize,
    per_window: usize,
    stride: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mixer: Vec<usize> = (0..MIXER)
        .map(|_| rng.gen_range(0..stride / 8) * 8)
        .collect();
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
    (order, mixer)
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
        for ((len, stride, window), draw) in [
            (1 << 20, 64, 4096),
            (256 << 10, 256, 1 << 20),
            (64 << 10, 64, 64),
            // A size that is not a multiple of the window.
            (40 << 10, 64, 16 << 10),
        ]
        .into_iter()
        .flat_map(|shape| [(shape, Draw::Seed(42)), (shape, Draw::Multichase)])
        {
            let mut v = vec![0u64; len / 8];
            let buf = v.as_mut_ptr() as *mut u8;
            // SAFETY: buf has len bytes.
            let cycle = unsafe { build(buf, len, stride, window, draw) };
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
        let cycle = unsafe { build(buf, len, stride, len, Draw::Seed(3)) };
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
        for draw in [Draw::Seed(7), Draw::Multichase] {
            // SAFETY: the buffer has len bytes.
            let cycle = unsafe { build(buf as *mut u8, len, stride, window, draw) };
            for chunk in cycle.chunks(window / stride) {
                let w = (chunk[0] - buf) / window;
                assert!(chunk.iter().all(|a| (a - buf) / window == w), "{draw}");
            }
        }
    }

    /// At a stride of several lines the pointers spread over every line
    /// offset of the stride (multichase's mixer), not just the first.
    #[test]
    fn wide_strides_use_every_line_of_the_stride() {
        let (len, stride) = (1 << 20, 256);
        let mut v = vec![0u64; len / 8];
        let buf = v.as_mut_ptr() as usize;
        for draw in [Draw::Seed(11), Draw::Multichase] {
            // SAFETY: the buffer has len bytes.
            let cycle = unsafe { build(buf as *mut u8, len, stride, len, draw) };
            let mut lines = [0usize; 4];
            for a in &cycle {
                let off = (a - buf) % stride;
                assert!(off + 8 <= stride, "pointer at {off} spills out of its slot");
                lines[off / 64] += 1;
            }
            assert!(
                lines.iter().all(|&n| n > 0),
                "{draw}: line use per offset: {lines:?}"
            );
        }
    }

    /// The generator is glibc's random_r with multichase's 32-byte state,
    /// output for output (checked against this machine's glibc).
    #[test]
    fn the_multichase_generator_is_glibcs_random_r() {
        #[repr(C)]
        struct RandomData {
            fptr: *mut i32,
            rptr: *mut i32,
            state: *mut i32,
            rand_type: i32,
            rand_deg: i32,
            rand_sep: i32,
            end_ptr: *mut i32,
        }
        extern "C" {
            fn initstate_r(
                seed: u32,
                buf: *mut libc::c_char,
                len: usize,
                data: *mut RandomData,
            ) -> i32;
            fn random_r(data: *mut RandomData, result: *mut i32) -> i32;
        }
        for seed in [0u32, 1, 2, 12345, u32::MAX] {
            let mut state = [0i32; 8];
            // SAFETY: all-zero is a valid RandomData (null pointers, zero
            // ints): initstate_r fills it.
            let mut data: RandomData = unsafe { std::mem::zeroed() };
            // SAFETY: state holds the 32 bytes given; data is valid.
            let rc = unsafe { initstate_r(seed, state.as_mut_ptr().cast(), 32, &mut data) };
            assert_eq!(rc, 0);
            let mut ours = GlibcRandom::new(seed);
            for i in 0..10_000 {
                let mut r = 0i32;
                // SAFETY: data was initialised by initstate_r.
                assert_eq!(unsafe { random_r(&mut data, &mut r) }, 0);
                assert_eq!(ours.next(), r, "seed {seed}, output {i}");
            }
        }
    }

    #[test]
    fn draws_parse_and_print() {
        assert_eq!("multichase".parse::<Draw>().unwrap(), Draw::Multichase);
        assert_eq!("7".parse::<Draw>().unwrap(), Draw::Seed(7));
        assert_eq!(Draw::Seed(7).to_string(), "7");
        assert!("x".parse::<Draw>().unwrap_err().contains("multichase"));
    }
}
