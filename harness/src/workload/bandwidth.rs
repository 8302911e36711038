//! Sequential bandwidth kernels: read (sum), write (plain and non-temporal
//! stores), copy, triad, and read/write mixes. Each worker runs a kernel
//! over its own contiguous chunk, pass after pass.
//!
//! Bytes are counted the way STREAM and MLC count them (read: bytes read;
//! write: bytes written; copy: 2 x; triad: 3 x the array bytes) and rates
//! are MB/s of 10^6 bytes. On x86_64 with AVX2 the kernels use 256-bit
//! loads and stores (four independent accumulators or streams in flight);
//! elsewhere plain 64-bit loops. Non-temporal stores skip the
//! read-for-ownership, so copy and triad move the bytes they count.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BwKernel {
    Read,
    Write,
    /// Write with non-temporal (streaming) stores.
    WriteNt,
    Copy,
    Triad,
    /// Per group of `reads + writes` cache lines, read the first `reads`
    /// and write the rest (MLC's read:write ratios, e.g. 3:1).
    Mix {
        reads: u32,
        writes: u32,
    },
}

impl BwKernel {
    /// How many arrays of the chunk size the kernel uses.
    pub fn arrays(self) -> usize {
        match self {
            BwKernel::Copy => 2,
            BwKernel::Triad => 3,
            _ => 1,
        }
    }
    /// Bytes one pass over `len`-byte arrays counts.
    pub fn bytes_per_pass(self, len: usize) -> u64 {
        (len * match self {
            BwKernel::Copy => 2,
            BwKernel::Triad => 3,
            _ => 1,
        }) as u64
    }
}

/// The largest side of a `mix:R:W`.
pub const MIX_SIDE_MAX: u32 = 255;

impl FromStr for BwKernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "read" => BwKernel::Read,
            "write" => BwKernel::Write,
            "write-nt" => BwKernel::WriteNt,
            "copy" => BwKernel::Copy,
            "triad" => BwKernel::Triad,
            other => {
                let ratio = other.strip_prefix("mix:").ok_or_else(|| {
                    format!("unknown kernel {other:?}: use read, write, write-nt, copy, triad or mix:R:W (e.g. mix:3:1)")
                })?;
                let (r, w) = ratio
                    .split_once(':')
                    .and_then(|(r, w)| Some((r.parse().ok()?, w.parse().ok()?)))
                    .ok_or_else(|| format!("bad mix {ratio:?}: write R:W, e.g. mix:3:1"))?;
                if r == 0 || w == 0 {
                    return Err(format!(
                        "mix:{r}:{w}: both sides must be at least 1 (use read or write)"
                    ));
                }
                // A group is R+W cache lines, and the bytes moved are
                // counted per group: unbounded sides overflowed that count
                // (mix:4294967295:1 printed 1.9e10 MB/s).
                if r > MIX_SIDE_MAX || w > MIX_SIDE_MAX {
                    return Err(format!(
                        "mix:{r}:{w}: each side at most {MIX_SIDE_MAX} (a ratio of lines in a \
                         group; mix:255:1 is already 99.6% reads)"
                    ));
                }
                BwKernel::Mix {
                    reads: r,
                    writes: w,
                }
            }
        })
    }
}

impl fmt::Display for BwKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BwKernel::Read => f.write_str("read"),
            BwKernel::Write => f.write_str("write"),
            BwKernel::WriteNt => f.write_str("write-nt"),
            BwKernel::Copy => f.write_str("copy"),
            BwKernel::Triad => f.write_str("triad"),
            BwKernel::Mix { reads, writes } => write!(f, "mix:{reads}:{writes}"),
        }
    }
}

/// The arrays one worker runs a kernel over: `arrays()` chunks of `len`
/// bytes, each 64-byte aligned, `len` a multiple of 256.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    pub a: *mut u8,
    pub b: *mut u8,
    pub c: *mut u8,
    pub len: usize,
}

// SAFETY: a Chunk is a set of addresses a single worker owns for the run.
unsafe impl Send for Chunk {}

const LINE: usize = 64;
/// Triad's scalar, as in STREAM.
pub const TRIAD_SCALAR: f64 = 3.0;

/// One pass of `kernel` over `chunk`. Returns a value derived from what was
/// read, so loads cannot be dropped.
///
/// # Safety
/// The chunk's arrays must be valid for reads and writes of `len` bytes,
/// 64-byte aligned, not overlapping, and `len % 256 == 0`.
pub unsafe fn pass(kernel: BwKernel, chunk: Chunk) -> u64 {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return avx2::pass(kernel, chunk);
        }
        scalar::pass(kernel, chunk)
    }
}

/// The kernel's work on line `i` of the chunk (the `i`-th 64 bytes of
/// each array), as [`pass`] does it to every line: for loads paced line by
/// line (loaded latency), where a call per line must cost little beside
/// the pacing. Counts [`BwKernel::bytes_per_pass`] of [`LINE_BYTES`].
/// Returns a value derived from what was read.
///
/// # Safety
/// As [`pass`], and `i < chunk.len / 64`.
#[inline(always)]
pub unsafe fn line(kernel: BwKernel, ch: Chunk, i: usize) -> u64 {
    const WORDS: usize = LINE / 8;
    // SAFETY: the caller upholds this function's contract (its # Safety):
    // the line lies inside each array.
    unsafe {
        let at = |p: *mut u8| p.add(i * LINE) as *mut u64;
        let (a, b, c) = (at(ch.a), at(ch.b), at(ch.c));
        let read = |p: *mut u64| read_line(p as *const u8);
        let write = |p: *mut u64| {
            for k in 0..WORDS {
                std::ptr::write_volatile(p.add(k), FILL);
            }
        };
        match kernel {
            BwKernel::Read => return read(a),
            BwKernel::Write => write(a),
            BwKernel::WriteNt => {
                #[cfg(target_arch = "x86_64")]
                for k in 0..WORDS {
                    std::arch::x86_64::_mm_stream_si64(a.add(k) as *mut i64, FILL as i64);
                }
                #[cfg(not(target_arch = "x86_64"))]
                write(a);
            }
            BwKernel::Copy => {
                for k in 0..WORDS {
                    std::ptr::write_volatile(a.add(k), std::ptr::read_volatile(b.add(k)));
                }
            }
            BwKernel::Triad => {
                let (a, b, c) = (a as *mut f64, b as *const f64, c as *const f64);
                for k in 0..WORDS {
                    std::ptr::write_volatile(a.add(k), *b.add(k) + TRIAD_SCALAR * *c.add(k));
                }
            }
            BwKernel::Mix { reads, writes } => {
                if i % (reads + writes) as usize >= reads as usize {
                    write(a);
                } else {
                    return read(a);
                }
            }
        }
        0
    }
}

/// The sum of a line's words, read in four 16-byte loads (SSE2, which
/// every x86_64 has): a paced load's line must cost few instructions, or
/// at small delays the front end, not the delay, sets the rate (eight
/// scalar loads and adds per line held the first delayed point 13% under
/// what it asked). Elsewhere, eight 8-byte loads.
///
/// # Safety
/// `p` is 64-byte aligned and the 64 bytes from it are readable.
#[inline(always)]
unsafe fn read_line(p: *const u8) -> u64 {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            let q = p as *const __m128i;
            let v = |k| std::ptr::read_volatile(q.add(k));
            let s = _mm_add_epi64(_mm_add_epi64(v(0), v(1)), _mm_add_epi64(v(2), v(3)));
            _mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s))) as u64
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let q = p as *const u64;
            (0..LINE / 8).fold(0u64, |s, k| {
                s.wrapping_add(std::ptr::read_volatile(q.add(k)))
            })
        }
    }
}

/// The bytes of each array [`line`] works on.
pub const LINE_BYTES: usize = LINE;
/// What [`line`]'s writes store.
const FILL: u64 = 0x3c3c_3c3c_3c3c_3c3c;

mod scalar {
    use super::*;

    pub unsafe fn pass(kernel: BwKernel, ch: Chunk) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let n = ch.len / 8;
            let (a, b, c) = (ch.a as *mut u64, ch.b as *mut u64, ch.c as *mut u64);
            match kernel {
                BwKernel::Read => {
                    let mut s = [0u64; 4];
                    for i in (0..n).step_by(4) {
                        for (k, acc) in s.iter_mut().enumerate() {
                            *acc = acc.wrapping_add(std::ptr::read_volatile(a.add(i + k)));
                        }
                    }
                    s.iter().fold(0, |x, y| x.wrapping_add(*y))
                }
                BwKernel::Write | BwKernel::WriteNt => {
                    for i in 0..n {
                        std::ptr::write_volatile(a.add(i), i as u64);
                    }
                    0
                }
                BwKernel::Copy => {
                    // Destination a, source b.
                    for i in 0..n {
                        std::ptr::write_volatile(a.add(i), std::ptr::read_volatile(b.add(i)));
                    }
                    0
                }
                BwKernel::Triad => {
                    let (a, b, c) = (a as *mut f64, b as *const f64, c as *const f64);
                    for i in 0..n {
                        std::ptr::write_volatile(a.add(i), *b.add(i) + TRIAD_SCALAR * *c.add(i));
                    }
                    0
                }
                BwKernel::Mix { reads, writes } => {
                    let group = (reads + writes) as usize * LINE / 8;
                    let mut s = 0u64;
                    let mut i = 0;
                    while i < n {
                        for l in 0..(reads + writes) as usize {
                            let base = i + l * LINE / 8;
                            if base >= n {
                                break;
                            }
                            for k in 0..LINE / 8 {
                                if l < reads as usize {
                                    s = s.wrapping_add(std::ptr::read_volatile(a.add(base + k)));
                                } else {
                                    std::ptr::write_volatile(a.add(base + k), s);
                                }
                            }
                        }
                        i += group;
                    }
                    s
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn pass(kernel: BwKernel, ch: Chunk) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            match kernel {
                BwKernel::Read => read(ch.a, ch.len),
                BwKernel::Write => write::<false>(ch.a, ch.len),
                BwKernel::WriteNt => write::<true>(ch.a, ch.len),
                BwKernel::Copy => copy(ch.a, ch.b, ch.len),
                BwKernel::Triad => triad(
                    ch.a as *mut f64,
                    ch.b as *const f64,
                    ch.c as *const f64,
                    ch.len / 8,
                ),
                BwKernel::Mix { reads, writes } => {
                    mix(ch.a, ch.len, reads as usize, writes as usize)
                }
            }
        }
    }

    /// Eight 32-byte loads per step into four accumulators, from two
    /// halves of the chunk at once: two sequential streams keep more line
    /// fills in flight than one (one stream read 0.95x likwid's load_avx
    /// here; two 1.03x to 1.14x; four were no better).
    #[target_feature(enable = "avx2")]
    unsafe fn read(p: *const u8, len: usize) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let mut acc = [_mm256_setzero_si256(); 4];
            let half = len / 2 / 128 * 128;
            let (s0, s1) = (p, p.add(half));
            let mut off = 0;
            while off < half {
                let q = s0.add(off) as *const __m256i;
                let r = s1.add(off) as *const __m256i;
                acc[0] = _mm256_add_epi64(acc[0], _mm256_load_si256(q));
                acc[1] = _mm256_add_epi64(acc[1], _mm256_load_si256(r));
                acc[2] = _mm256_add_epi64(acc[2], _mm256_load_si256(q.add(1)));
                acc[3] = _mm256_add_epi64(acc[3], _mm256_load_si256(r.add(1)));
                acc[0] = _mm256_add_epi64(acc[0], _mm256_load_si256(q.add(2)));
                acc[1] = _mm256_add_epi64(acc[1], _mm256_load_si256(r.add(2)));
                acc[2] = _mm256_add_epi64(acc[2], _mm256_load_si256(q.add(3)));
                acc[3] = _mm256_add_epi64(acc[3], _mm256_load_si256(r.add(3)));
                off += 128;
            }
            // The tail the two halves did not cover.
            let mut t = 2 * half;
            while t < len {
                acc[0] = _mm256_add_epi64(acc[0], _mm256_load_si256(p.add(t) as *const __m256i));
                t += 32;
            }
            let s = _mm256_add_epi64(
                _mm256_add_epi64(acc[0], acc[1]),
                _mm256_add_epi64(acc[2], acc[3]),
            );
            let mut out = [0u64; 4];
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, s);
            out.iter().fold(0, |x, y| x.wrapping_add(*y))
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn write<const NT: bool>(p: *mut u8, len: usize) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let v = _mm256_set1_epi64x(0x5a5a_5a5a_5a5a_5a5a);
            let mut off = 0;
            while off < len {
                let q = p.add(off) as *mut __m256i;
                for k in 0..8 {
                    if NT {
                        _mm256_stream_si256(q.add(k), v);
                    } else {
                        _mm256_store_si256(q.add(k), v);
                    }
                }
                off += 256;
            }
            if NT {
                _mm_sfence();
            }
            0
        }
    }

    /// Aligned loads and non-temporal aligned stores: both arrays are
    /// 64-byte aligned by construction, so the speed does not depend on
    /// the relative alignment glibc's memcpy is sensitive to.
    #[target_feature(enable = "avx2")]
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let mut off = 0;
            while off < len {
                let s = src.add(off) as *const __m256i;
                let d = dst.add(off) as *mut __m256i;
                let r = [
                    _mm256_load_si256(s),
                    _mm256_load_si256(s.add(1)),
                    _mm256_load_si256(s.add(2)),
                    _mm256_load_si256(s.add(3)),
                ];
                for (k, v) in r.into_iter().enumerate() {
                    _mm256_stream_si256(d.add(k), v);
                }
                off += 128;
            }
            _mm_sfence();
            0
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn triad(a: *mut f64, b: *const f64, c: *const f64, n: usize) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let s = _mm256_set1_pd(TRIAD_SCALAR);
            let mut i = 0;
            while i < n {
                for k in (0..16).step_by(4) {
                    let vb = _mm256_load_pd(b.add(i + k));
                    let vc = _mm256_load_pd(c.add(i + k));
                    _mm256_stream_pd(a.add(i + k), _mm256_add_pd(vb, _mm256_mul_pd(s, vc)));
                }
                i += 16;
            }
            _mm_sfence();
            0
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn mix(p: *mut u8, len: usize, reads: usize, writes: usize) -> u64 {
        // SAFETY: the caller upholds this function's contract (its # Safety).
        unsafe {
            let mut acc = _mm256_setzero_si256();
            let v = _mm256_set1_epi64x(0x3c3c_3c3c_3c3c_3c3c);
            let group = (reads + writes) * LINE;
            let mut off = 0;
            while off + group <= len {
                for l in 0..reads {
                    let q = p.add(off + l * LINE) as *const __m256i;
                    acc = _mm256_add_epi64(acc, _mm256_load_si256(q));
                    acc = _mm256_add_epi64(acc, _mm256_load_si256(q.add(1)));
                }
                for l in reads..reads + writes {
                    let q = p.add(off + l * LINE) as *mut __m256i;
                    _mm256_store_si256(q, v);
                    _mm256_store_si256(q.add(1), v);
                }
                off += group;
            }
            let mut out = [0u64; 4];
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, acc);
            out.iter().fold(0, |x, y| x.wrapping_add(*y))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes, 64-byte aligned, zeroed; keep the Vec alive.
    fn aligned(len: usize) -> (Vec<u64>, *mut u8) {
        let mut v = vec![0u64; len / 8 + 8];
        let p = v.as_mut_ptr() as usize;
        let a = (p + 63) & !63;
        (v, a as *mut u8)
    }

    #[test]
    fn kernel_names_round_trip() {
        for s in [
            "read", "write", "write-nt", "copy", "triad", "mix:3:1", "mix:1:1",
        ] {
            assert_eq!(s.parse::<BwKernel>().unwrap().to_string(), s);
        }
        assert!("mix:0:1".parse::<BwKernel>().is_err());
        assert!("mix:4294967295:1".parse::<BwKernel>().is_err());
        assert!("mix:255:255".parse::<BwKernel>().is_ok());
        assert!("stream"
            .parse::<BwKernel>()
            .unwrap_err()
            .contains("use read"));
    }

    #[test]
    fn read_sums_every_word() {
        let len = 64 << 10;
        let (_keep, p) = aligned(len);
        // SAFETY: p has len bytes.
        unsafe {
            for i in 0..len / 8 {
                *(p as *mut u64).add(i) = i as u64;
            }
            let n = (len / 8) as u64;
            let got = pass(
                BwKernel::Read,
                Chunk {
                    a: p,
                    b: p,
                    c: p,
                    len,
                },
            );
            assert_eq!(got, n * (n - 1) / 2);
        }
    }

    #[test]
    fn writes_touch_every_byte() {
        for k in [BwKernel::Write, BwKernel::WriteNt] {
            let len = 64 << 10;
            let (_keep, p) = aligned(len);
            // SAFETY: p has len bytes.
            unsafe {
                pass(
                    k,
                    Chunk {
                        a: p,
                        b: p,
                        c: p,
                        len,
                    },
                );
                let words = std::slice::from_raw_parts(p as *const u64, len / 8);
                assert!(words.iter().all(|w| *w != 0), "{k}: a word was not written");
            }
        }
    }

    #[test]
    fn copy_and_triad_compute_every_element() {
        let len = 64 << 10;
        let (_ka, a) = aligned(len);
        let (_kb, b) = aligned(len);
        let (_kc, c) = aligned(len);
        // SAFETY: each array has len bytes; they do not overlap.
        unsafe {
            let n = len / 8;
            for i in 0..n {
                *(b as *mut u64).add(i) = (i * 7) as u64;
            }
            pass(BwKernel::Copy, Chunk { a, b, c, len });
            for i in 0..n {
                assert_eq!(*(a as *const u64).add(i), (i * 7) as u64);
            }
            for i in 0..n {
                *(b as *mut f64).add(i) = i as f64;
                *(c as *mut f64).add(i) = 2.0;
            }
            pass(BwKernel::Triad, Chunk { a, b, c, len });
            for i in 0..n {
                assert_eq!(*(a as *const f64).add(i), i as f64 + TRIAD_SCALAR * 2.0);
            }
        }
    }

    /// mix:3:1 writes exactly one cache line in four.
    #[test]
    fn mix_writes_its_share_of_lines() {
        let len = 64 << 10;
        let (_k, p) = aligned(len);
        // SAFETY: p has len bytes, zeroed.
        unsafe {
            pass(
                BwKernel::Mix {
                    reads: 3,
                    writes: 1,
                },
                Chunk {
                    a: p,
                    b: p,
                    c: p,
                    len,
                },
            );
            let lines = len / 64;
            let written = (0..lines)
                .filter(|l| *(p.add(l * 64) as *const u64) != 0)
                .count();
            assert_eq!(written, lines / 4);
            assert!((0..lines).all(|l| (*(p.add(l * 64) as *const u64) != 0) == (l % 4 == 3)));
        }
    }

    /// Line by line, every kernel leaves the arrays as a pass does and
    /// reads what it reads (the paced load is the same kernel, slower).
    #[test]
    fn a_pass_line_by_line_does_what_a_pass_does() {
        let len = 16 << 10;
        for kernel in ["read", "write", "write-nt", "copy", "triad", "mix:3:1"] {
            let kernel: BwKernel = kernel.parse().unwrap();
            let run = |by_line: bool| {
                let (keep, p) = aligned(3 * len);
                // SAFETY: p has 3 x len bytes.
                unsafe {
                    for w in 0..3 * len / 8 {
                        *(p as *mut f64).add(w) = (w % 7) as f64;
                    }
                    let ch = Chunk {
                        a: p,
                        b: p.add(len),
                        c: p.add(2 * len),
                        len,
                    };
                    let sum = if by_line {
                        (0..len / LINE_BYTES).fold(0u64, |s, i| s.wrapping_add(line(kernel, ch, i)))
                    } else {
                        pass(kernel, ch)
                    };
                    #[cfg(target_arch = "x86_64")]
                    std::arch::x86_64::_mm_sfence();
                    let a: Vec<u64> = (0..len / 8).map(|w| *(p as *const u64).add(w)).collect();
                    drop(keep);
                    (sum, a)
                }
            };
            let (line_sum, line_a) = run(true);
            let (pass_sum, pass_a) = run(false);
            if matches!(
                kernel,
                BwKernel::Write | BwKernel::WriteNt | BwKernel::Mix { .. }
            ) {
                // What a write stores is the kernel's own: compare which
                // lines changed, and that they changed alike.
                let changed = |a: &[u64]| -> Vec<bool> {
                    a.chunks(8)
                        .enumerate()
                        .map(|(l, c)| {
                            c.iter()
                                .enumerate()
                                .any(|(k, &x)| x != (((l * 8 + k) % 7) as f64).to_bits())
                        })
                        .collect()
                };
                assert_eq!(changed(&line_a), changed(&pass_a), "{kernel}");
            } else {
                assert_eq!(line_a, pass_a, "{kernel}");
            }
            if kernel == BwKernel::Read {
                assert_eq!(line_sum, pass_sum, "{kernel}");
            }
        }
    }
}
