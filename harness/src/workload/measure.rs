//! Running the kernels on a machine: buffers bound to a memory node, workers
//! pinned to CPUs of a CPU node, timed over whole passes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bandwidth::{self, BwKernel, Chunk};
use super::chase;
use crate::buffer::{Buffer, BufferError, PageKind};
use crate::mempolicy::{MoveFlags, Policy};
use crate::pin;
use crate::topology::NodeId;

#[derive(Debug, Clone)]
pub struct BwSpec {
    pub kernel: BwKernel,
    /// All arrays of all workers together.
    pub size_bytes: usize,
    pub cpus: Vec<u32>,
    pub mem_node: NodeId,
    pub page: PageKind,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct BwResult {
    pub kernel: String,
    pub threads: usize,
    pub mem_node: NodeId,
    pub size_bytes: usize,
    pub passes: u64,
    pub seconds: f64,
    /// 10^6 bytes per second, STREAM counting.
    pub mb_per_s: f64,
}

/// Each worker's arrays lie in one contiguous chunk of the buffer.
fn chunks(buf: &mut Buffer, kernel: BwKernel, threads: usize) -> Vec<Chunk> {
    let per_thread = buf.len() / threads;
    let arr = (per_thread / kernel.arrays()) / 256 * 256;
    let base = buf.as_mut_ptr();
    (0..threads)
        .map(|t| {
            // SAFETY: every offset stays below buf.len().
            let at = |k: usize| unsafe { base.add(t * per_thread + k * arr) };
            Chunk {
                a: at(0),
                b: at(1.min(kernel.arrays() - 1)),
                c: at(2.min(kernel.arrays() - 1)),
                len: arr,
            }
        })
        .collect()
}

/// Runs whole passes of `kernel` over `chunk` until `stop`, counting each
/// in `passes`. Returns a value derived from what was read.
///
/// # Safety
/// As [`bandwidth::pass`]: the chunk must be this worker's own.
unsafe fn passes_until(
    kernel: BwKernel,
    chunk: Chunk,
    stop: &AtomicBool,
    passes: &AtomicU64,
) -> u64 {
    // SAFETY: the caller upholds this function's contract (its # Safety).
    unsafe {
        let mut sink = 0u64;
        while !stop.load(Ordering::Relaxed) {
            sink = sink.wrapping_add(bandwidth::pass(kernel, chunk));
            passes.fetch_add(1, Ordering::Relaxed);
        }
        sink
    }
}

/// A buffer bound to one memory node, nothing populated yet.
fn bound_buffer(bytes: usize, page: PageKind, node: NodeId) -> Result<Buffer, BufferError> {
    let mut buf = Buffer::map(bytes, page)?;
    buf.set_policy(
        &Policy::bind(crate::topology::NodeSet::single(node)),
        MoveFlags::NONE,
    )?;
    Ok(buf)
}

/// The smallest working set a bandwidth run takes: one page per array per
/// thread (below that the chunks are empty).
pub fn min_bw_size(kernel: BwKernel, threads: usize) -> u64 {
    (threads * kernel.arrays() * 4096) as u64
}

/// Refuses a working set (given as `flag`) too small for `threads`
/// workers of `kernel`.
pub fn check_bw_size(
    size: u64,
    kernel: BwKernel,
    threads: usize,
    flag: &str,
) -> Result<(), String> {
    let min = min_bw_size(kernel, threads);
    if size < min {
        return Err(format!(
            "{flag} {size} is too small for {kernel} x {threads} threads: at least {min} bytes \
             (one page per array per thread)"
        ));
    }
    Ok(())
}

/// Refuses a chase timing that cannot give samples: a zero duration or
/// sample, or a sample longer than the duration.
pub fn check_timing(duration: Duration, sample: Duration) -> Result<(), String> {
    if duration.is_zero() || sample.is_zero() {
        return Err("--duration and --sample must be more than 0".into());
    }
    if sample > duration {
        return Err(format!(
            "--sample {sample:?} is longer than --duration {duration:?}: lower it"
        ));
    }
    Ok(())
}

pub fn bandwidth(spec: &BwSpec) -> Result<BwResult, BufferError> {
    let bind = Policy::bind(crate::topology::NodeSet::single(spec.mem_node));
    bandwidth_placed(spec, &bind).map(|(r, _)| r)
}

/// [`bandwidth`] over a buffer placed by `policy` (populated under it by
/// the workers' CPUs), with the census of where its pages landed.
pub fn bandwidth_placed(
    spec: &BwSpec,
    policy: &Policy,
) -> Result<(BwResult, crate::buffer::Census), BufferError> {
    let threads = spec.cpus.len();
    let mut buf = Buffer::map(spec.size_bytes, spec.page)?;
    buf.set_policy(policy, MoveFlags::NONE)?;
    let stop = AtomicBool::new(false);
    buf.populate(&spec.cpus, &stop)?;
    let census = buf.census(0..buf.len())?;
    let chunks = chunks(&mut buf, spec.kernel, threads);
    let passes = AtomicU64::new(0);
    let barrier = Barrier::new(threads + 1);
    let mut seconds = 0.0;
    std::thread::scope(|s| -> Result<(), BufferError> {
        let handles: Vec<_> = spec
            .cpus
            .iter()
            .zip(&chunks)
            .map(|(&cpu, &chunk)| {
                let (stop, passes, barrier) = (&stop, &passes, &barrier);
                s.spawn(move || -> Result<u64, pin::PinError> {
                    pin::pin_current_thread(cpu)?;
                    // SAFETY: the chunk is this worker's own, inside buf.
                    let mut sink = unsafe { bandwidth::pass(spec.kernel, chunk) }; // warm-up pass
                    barrier.wait();
                    // SAFETY: as above.
                    sink = sink
                        .wrapping_add(unsafe { passes_until(spec.kernel, chunk, stop, passes) });
                    barrier.wait();
                    Ok(sink)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        std::thread::sleep(spec.duration);
        stop.store(true, Ordering::Relaxed);
        barrier.wait();
        seconds = t0.elapsed().as_secs_f64();
        for h in handles {
            std::hint::black_box(h.join().expect("bandwidth worker panicked")?);
        }
        Ok(())
    })?;
    let passes = passes.load(Ordering::Relaxed);
    let bytes = passes * spec.kernel.bytes_per_pass(chunks[0].len);
    let result = BwResult {
        kernel: spec.kernel.to_string(),
        threads,
        mem_node: spec.mem_node,
        size_bytes: chunks[0].len * spec.kernel.arrays() * threads,
        passes,
        seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    };
    Ok((result, census))
}

/// The bandwidth load beside a loaded-latency chase.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub kernel: BwKernel,
    pub size_bytes: usize,
    pub cpus: Vec<u32>,
    /// Injection delay: spin steps (about one CPU cycle each) each load
    /// thread waits after every cache line of each array it moves; 0 runs
    /// the kernel flat out.
    pub delay: u32,
}

#[derive(Debug, Clone)]
pub struct ChaseSpec {
    pub size_bytes: usize,
    pub stride: usize,
    pub window: usize,
    pub chains: usize,
    pub cpu: u32,
    pub mem_node: NodeId,
    pub page: PageKind,
    pub duration: Duration,
    /// Length of one sample: the chase is timed sample by sample, and the
    /// best and the median are reported beside the mean.
    pub sample: Duration,
    pub load: Option<LoadSpec>,
    /// Which random cycle (and line offsets) the chase walks.
    pub seed: super::chase::Draw,
}

/// The statistics of a chase's samples, ns per load of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ChaseStats {
    /// Over the whole timed run (all samples together).
    pub mean_ns: f64,
    /// The fastest sample: multichase's statistic.
    pub best_ns: f64,
    pub median_ns: f64,
    pub worst_ns: f64,
    pub samples: usize,
}

impl ChaseStats {
    /// From per-sample times; `None` for no samples.
    pub fn of(per_sample_ns: &[f64], mean_ns: f64) -> Option<ChaseStats> {
        let mut xs = per_sample_ns.to_vec();
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => xs[n / 2],
            _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
        };
        Some(ChaseStats {
            mean_ns,
            best_ns: xs[0],
            median_ns: median,
            worst_ns: xs[n - 1],
            samples: n,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaseResult {
    pub size_bytes: usize,
    pub stride: usize,
    pub chains: usize,
    pub mem_node: NodeId,
    pub loads: u64,
    /// Nanoseconds per load of one chain, over the whole run.
    pub ns_per_load: f64,
    /// Per-sample statistics (best, median, worst).
    pub stats: ChaseStats,
    pub sample_ms: f64,
    pub build_seconds: f64,
    /// Load threads and the bandwidth they reached while the chase ran.
    pub load_threads: usize,
    pub load_kernel: Option<String>,
    pub load_delay: Option<u32>,
    /// Which random cycle: `multichase` (its draw) or tierbench's seed.
    pub seed: super::chase::Draw,
    /// The delay after each line as time, measured on the load CPUs.
    pub load_delay_ns: Option<f64>,
    pub load_mb_per_s: Option<f64>,
}

/// A pointer-chase cycle in a buffer bound to one memory node.
pub struct Chase {
    _buf: Buffer,
    starts: Vec<usize>,
    cycle: u64,
    pub size_bytes: usize,
    pub build_seconds: f64,
}

// SAFETY: the chase's addresses point into its own buffer, which moves
// with it; only one thread follows them at a time (`&mut self`).
unsafe impl Send for Chase {}

impl Chase {
    /// Builds the cycle (first-touching every page on `mem_node`).
    pub fn build(spec: &ChaseSpec) -> Result<Chase, BufferError> {
        let mut buf = bound_buffer(spec.size_bytes, spec.page, spec.mem_node)?;
        let t0 = Instant::now();
        let base = buf.as_mut_ptr();
        // SAFETY: the buffer holds its len; the stride is checked by the caller.
        let cycle = unsafe { chase::build(base, buf.len(), spec.stride, spec.window, spec.seed) };
        let starts = (0..spec.chains)
            .map(|i| cycle[i * cycle.len() / spec.chains])
            .collect();
        Ok(Chase {
            size_bytes: buf.len(),
            _buf: buf,
            starts,
            cycle: cycle.len() as u64,
            build_seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// One whole cycle untimed (TLB, caches).
    pub fn warm_up(&mut self) {
        // SAFETY: starts are slots of the cycle built in our buffer.
        unsafe { chase::run(&mut self.starts, self.cycle.max(8)) };
    }

    /// Times the chase for `duration`, in samples of `sample`, on the
    /// calling thread (pinned by the caller). Returns the loads and the
    /// statistics.
    pub fn time(&mut self, duration: Duration, sample: Duration) -> (u64, ChaseStats) {
        // Small batches: a sample's clock reads stay far below its loads
        // even in L1 (16384 loads of 1 ns against two clock reads).
        const BATCH: u64 = 1 << 14;
        let mut per_sample = Vec::new();
        let mut loads = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < duration {
            let s0 = Instant::now();
            let mut n = 0u64;
            while s0.elapsed() < sample {
                // SAFETY: starts are slots of the cycle built in our buffer.
                unsafe { chase::run(&mut self.starts, BATCH) };
                n += BATCH;
            }
            per_sample.push(s0.elapsed().as_secs_f64() * 1e9 / n as f64);
            loads += n;
        }
        let mean = t0.elapsed().as_secs_f64() * 1e9 / loads as f64;
        std::hint::black_box(&self.starts);
        (
            loads,
            ChaseStats::of(&per_sample, mean).expect("one sample at least"),
        )
    }
}

/// Spins `n` steps of a dependent add (about a cycle each) on `x`; the
/// empty asm keeps the compiler from folding the loop away. A paced load
/// carries one `x` from line to line: with a fresh chain per line the core
/// ran the delays of several lines side by side, and a delay cost less
/// than its steps (delay 20 delivered 19 GB/s where 14 were asked).
#[inline(always)]
fn spin(x: &mut u64, n: u32) {
    for _ in 0..n {
        *x = x.wrapping_add(1);
        // SAFETY: an empty instruction sequence that only "uses" a register.
        unsafe {
            std::arch::asm!(
                "/* {0} */",
                inout(reg) * x,
                options(nomem, nostack, preserves_flags)
            )
        };
    }
}

/// One load worker's running count of bytes moved, alone on its cache
/// line: the worker stores it after every step (a plain store, no shared
/// read-modify-write), the timer sums them.
#[derive(Default)]
#[repr(align(64))]
struct Moved(AtomicU64);

/// The time of one [`spin`] step on the calling thread: the best of a few
/// timed runs of a million steps (a fraction of a millisecond each).
pub fn spin_step_ns() -> f64 {
    const STEPS: u32 = 1 << 20;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            spin(&mut 0, STEPS);
            t.elapsed().as_secs_f64() * 1e9 / STEPS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Lines a paced load works between updates of its count and looks at
/// `stop`: 4 KiB per array.
const PACED_BLOCK: usize = 64;

/// Runs `kernel` over `chunk` until `stop`, keeping the bytes it has
/// counted in `moved`. Flat out (`delay` 0) in 1 MiB passes; otherwise
/// line by line, `delay` spin steps after each line (MLC's injection
/// delay: cycles between a thread's line accesses), so the rate follows
/// the delay from the first step (a call per 256 bytes cost more than
/// small delays and the first delayed point fell below what it asked).
/// Returns a value derived from what was read.
///
/// # Safety
/// As [`bandwidth::pass`]: the chunk must be this worker's own.
unsafe fn load_until(
    kernel: BwKernel,
    chunk: Chunk,
    delay: u32,
    stop: &AtomicBool,
    moved: &Moved,
) -> u64 {
    let mut sink = 0u64;
    let mut total = 0u64;
    if delay == 0 {
        const STEP: usize = 1 << 20;
        while !stop.load(Ordering::Relaxed) {
            let mut off = 0;
            while off < chunk.len && !stop.load(Ordering::Relaxed) {
                let len = STEP.min(chunk.len - off);
                // SAFETY: off + len stays inside each array of the chunk;
                // both are multiples of 256, as `pass` requires.
                let sub = unsafe {
                    Chunk {
                        a: chunk.a.add(off),
                        b: chunk.b.add(off),
                        c: chunk.c.add(off),
                        len,
                    }
                };
                // SAFETY: the caller upholds this function's contract.
                sink = sink.wrapping_add(unsafe { bandwidth::pass(kernel, sub) });
                total += kernel.bytes_per_pass(len);
                moved.0.store(total, Ordering::Relaxed);
                off += len;
            }
        }
        return sink;
    }
    // Two streams, from the chunk's two halves in turn, as the flat-out
    // read runs: one stream kept fewer line fills in flight, and the first
    // delayed points fell below their ask where one stream's own peak is.
    // Chunks are multiples of 256 bytes (an even number of lines); the line
    // index wraps inside each half.
    let half = chunk.len / bandwidth::LINE_BYTES / 2;
    let per_block = kernel.bytes_per_pass(PACED_BLOCK * bandwidth::LINE_BYTES);
    let (mut i, mut chain) = (0, 0u64);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..PACED_BLOCK / 2 {
            for at in [i, half + i] {
                // SAFETY: at < 2 * half, a line of the caller's chunk.
                sink = sink.wrapping_add(unsafe { bandwidth::line(kernel, chunk, at) });
                spin(&mut chain, delay);
            }
            i += 1;
            if i == half {
                i = 0;
            }
        }
        total += per_block;
        moved.0.store(total, Ordering::Relaxed);
    }
    sink.wrapping_add(chain)
}

/// Bandwidth workers on their own buffer, started beside a chase.
pub struct Load {
    chunks: Vec<Chunk>,
    kernel: BwKernel,
    cpus: Vec<u32>,
    _buf: Buffer,
}

// SAFETY: the chunks point into the load's own buffer, which moves with it.
unsafe impl Send for Load {}

impl Load {
    pub fn new(spec: &LoadSpec, mem_node: NodeId, page: PageKind) -> Result<Load, BufferError> {
        let mut buf = bound_buffer(spec.size_bytes, page, mem_node)?;
        buf.populate(&spec.cpus, &AtomicBool::new(false))?;
        let chunks = chunks(&mut buf, spec.kernel, spec.cpus.len());
        Ok(Load {
            chunks,
            kernel: spec.kernel,
            cpus: spec.cpus.clone(),
            _buf: buf,
        })
    }

    /// Runs the load at `delay` on its CPUs while `f` runs on the calling
    /// thread; returns what `f` returned and what the load did meanwhile.
    pub fn beside<R>(
        &self,
        delay: u32,
        f: impl FnOnce() -> R,
    ) -> Result<(R, LoadReading), pin::PinError> {
        let stop = AtomicBool::new(false);
        let moved: Vec<Moved> = self.cpus.iter().map(|_| Moved::default()).collect();
        let sum = || -> u64 { moved.iter().map(|m| m.0.load(Ordering::Relaxed)).sum() };
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .cpus
                .iter()
                .zip(&self.chunks)
                .zip(&moved)
                .map(|((&cpu, &chunk), moved)| {
                    let (stop, kernel) = (&stop, self.kernel);
                    s.spawn(move || -> Result<(u64, f64), pin::PinError> {
                        pin::pin_current_thread(cpu)?;
                        // What a delay step costs on this CPU, now: the
                        // delay's time is read from it.
                        let step_ns = if delay > 0 { spin_step_ns() } else { 0.0 };
                        // SAFETY: the chunk is this worker's own, inside the load buffer.
                        let sink = unsafe { load_until(kernel, chunk, delay, stop, moved) };
                        Ok((sink, step_ns))
                    })
                })
                .collect();
            // Let the load reach its pace before the chase is timed.
            std::thread::sleep(Duration::from_millis(200));
            let b0 = sum();
            let t = Instant::now();
            let r = f();
            let secs = t.elapsed().as_secs_f64();
            let moved = sum() - b0;
            stop.store(true, Ordering::Relaxed);
            let mut steps = Vec::new();
            for h in handles {
                let (sink, step_ns) = h.join().expect("load worker panicked")?;
                std::hint::black_box(sink);
                steps.push(step_ns);
            }
            let delay_ns =
                (delay > 0).then(|| delay as f64 * steps.iter().sum::<f64>() / steps.len() as f64);
            Ok((
                r,
                LoadReading {
                    mb_per_s: moved as f64 / secs / 1e6,
                    delay_ns,
                },
            ))
        })
    }
}

/// What a load did beside a chase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReading {
    /// MB/s (10^6 bytes) the load threads delivered together.
    pub mb_per_s: f64,
    /// The delay after each line as time: its spin steps times a step's
    /// cost measured on the load CPUs (their mean); none when flat out.
    pub delay_ns: Option<f64>,
}

impl LoadReading {
    /// The rate the delay asks of `threads` threads of `kernel`: a line
    /// per `delay_ns`, or the flat-out `flat_mb_per_s` if that is lower
    /// (the delay then hides under the memory's own time per line).
    pub fn paced_mb_per_s(
        delay_ns: f64,
        kernel: BwKernel,
        threads: usize,
        flat_mb_per_s: f64,
    ) -> f64 {
        let per_line = kernel.bytes_per_pass(bandwidth::LINE_BYTES) as f64;
        (threads as f64 * per_line / delay_ns * 1e3).min(flat_mb_per_s)
    }
}

/// A chase, alone or beside a load, on the calling thread.
pub fn latency(spec: &ChaseSpec) -> Result<ChaseResult, BufferError> {
    pin::pin_current_thread(spec.cpu)?;
    let mut chase = Chase::build(spec)?;
    let load = spec
        .load
        .as_ref()
        .map(|l| Load::new(l, spec.mem_node, spec.page))
        .transpose()?;
    chase.warm_up();
    let ((loads, stats), reading) = match (&load, &spec.load) {
        (Some(load), Some(ls)) => {
            let (r, reading) = load.beside(ls.delay, || chase.time(spec.duration, spec.sample))?;
            (r, Some(reading))
        }
        _ => (chase.time(spec.duration, spec.sample), None),
    };
    Ok(ChaseResult {
        size_bytes: chase.size_bytes,
        stride: spec.stride,
        chains: spec.chains,
        mem_node: spec.mem_node,
        loads,
        ns_per_load: stats.mean_ns,
        stats,
        sample_ms: spec.sample.as_secs_f64() * 1e3,
        build_seconds: chase.build_seconds,
        load_threads: spec.load.as_ref().map_or(0, |l| l.cpus.len()),
        load_kernel: spec.load.as_ref().map(|l| l.kernel.to_string()),
        load_delay: spec.load.as_ref().map(|l| l.delay),
        seed: spec.seed,
        load_delay_ns: reading.and_then(|r| r.delay_ns),
        load_mb_per_s: reading.map(|r| r.mb_per_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chase_stats_take_best_median_and_worst_of_the_samples() {
        let s = ChaseStats::of(&[3.0, 1.0, 2.0, 10.0], 4.0).unwrap();
        assert_eq!(
            (s.best_ns, s.median_ns, s.worst_ns, s.samples),
            (1.0, 2.5, 10.0, 4)
        );
        assert_eq!(
            ChaseStats::of(&[5.0, 1.0, 2.0], 0.0).unwrap().median_ns,
            2.0
        );
        assert!(ChaseStats::of(&[], 1.0).is_none());
    }

    /// A delayed load moves fewer bytes than one flat out, and both count
    /// what they moved.
    #[test]
    fn a_delayed_load_moves_less_than_a_flat_out_one() {
        let len = 4 << 20;
        let mut v = vec![0u64; len / 8 + 8];
        let a = ((v.as_mut_ptr() as usize + 63) & !63) as *mut u8;
        let chunk = Chunk { a, b: a, c: a, len };
        let run = |delay| {
            let stop = AtomicBool::new(false);
            let moved = Moved::default();
            std::thread::scope(|s| {
                let (stop, moved) = (&stop, &moved);
                s.spawn(move || {
                    // SAFETY: the chunk is this test's own buffer.
                    unsafe { load_until(BwKernel::Read, chunk, delay, stop, moved) }
                });
                std::thread::sleep(Duration::from_millis(200));
                stop.store(true, Ordering::Relaxed);
            });
            moved.0.load(Ordering::Relaxed)
        };
        let (flat, slow) = (run(0), run(20_000));
        assert!(
            slow > 0 && flat > 4 * slow,
            "flat out {flat} B, delayed {slow} B"
        );
    }
}
