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

pub fn bandwidth(spec: &BwSpec) -> Result<BwResult, BufferError> {
    let threads = spec.cpus.len();
    let mut buf = bound_buffer(spec.size_bytes, spec.page, spec.mem_node)?;
    let stop = AtomicBool::new(false);
    buf.populate(&spec.cpus, &stop)?;
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
    Ok(BwResult {
        kernel: spec.kernel.to_string(),
        threads,
        mem_node: spec.mem_node,
        size_bytes: chunks[0].len * spec.kernel.arrays() * threads,
        passes,
        seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    })
}

/// The bandwidth load beside a loaded-latency chase.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub kernel: BwKernel,
    pub size_bytes: usize,
    pub cpus: Vec<u32>,
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
    pub load: Option<LoadSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaseResult {
    pub size_bytes: usize,
    pub stride: usize,
    pub chains: usize,
    pub mem_node: NodeId,
    pub loads: u64,
    /// Nanoseconds per load of one chain.
    pub ns_per_load: f64,
    pub build_seconds: f64,
    /// Load threads and the bandwidth they reached while the chase ran.
    pub load_threads: usize,
    pub load_kernel: Option<String>,
    pub load_mb_per_s: Option<f64>,
}

/// Bandwidth workers that run until `stop`, counting passes.
struct Load {
    chunks: Vec<Chunk>,
    kernel: BwKernel,
    _buf: Buffer,
}

impl Load {
    fn new(spec: &LoadSpec, mem_node: NodeId, page: PageKind) -> Result<Load, BufferError> {
        let mut buf = bound_buffer(spec.size_bytes, page, mem_node)?;
        buf.populate(&spec.cpus, &AtomicBool::new(false))?;
        let chunks = chunks(&mut buf, spec.kernel, spec.cpus.len());
        Ok(Load {
            chunks,
            kernel: spec.kernel,
            _buf: buf,
        })
    }
}

pub fn latency(spec: &ChaseSpec) -> Result<ChaseResult, BufferError> {
    let mut buf = bound_buffer(spec.size_bytes, spec.page, spec.mem_node)?;
    pin::pin_current_thread(spec.cpu)?;
    let t0 = Instant::now();
    let base = buf.as_mut_ptr();
    // SAFETY: the buffer holds size_bytes; the stride is checked by the caller.
    let order = unsafe { chase::build(base, buf.len(), spec.stride, spec.window, 0x7ee7) };
    let build_seconds = t0.elapsed().as_secs_f64();
    let mut starts: Vec<usize> = (0..spec.chains)
        .map(|i| base as usize + order[i * order.len() / spec.chains] * spec.stride)
        .collect();
    let load = spec
        .load
        .as_ref()
        .map(|l| Load::new(l, spec.mem_node, spec.page))
        .transpose()?;
    let stop = AtomicBool::new(false);
    let passes = AtomicU64::new(0);
    let mut result = None;
    std::thread::scope(|s| -> Result<(), BufferError> {
        let mut handles = Vec::new();
        if let (Some(load), Some(ls)) = (&load, &spec.load) {
            for (&cpu, &chunk) in ls.cpus.iter().zip(&load.chunks) {
                let (stop, passes, kernel) = (&stop, &passes, load.kernel);
                handles.push(s.spawn(move || -> Result<u64, pin::PinError> {
                    pin::pin_current_thread(cpu)?;
                    // SAFETY: the chunk is this worker's own, inside the load buffer.
                    Ok(unsafe { passes_until(kernel, chunk, stop, passes) })
                }));
            }
            // Let the load reach its pace before the chase is timed.
            std::thread::sleep(Duration::from_millis(300));
        }
        // Warm up one full cycle (TLB, caches), then time batches until the
        // duration is reached.
        // SAFETY: starts are slots of the cycle just built.
        unsafe { chase::run(&mut starts, (order.len() as u64).max(8)) };
        let batch = 1u64 << 20;
        let mut loads = 0u64;
        let p0 = passes.load(Ordering::Relaxed);
        let t = Instant::now();
        while t.elapsed() < spec.duration {
            // SAFETY: starts are slots of the cycle.
            unsafe { chase::run(&mut starts, batch) };
            loads += batch;
        }
        let secs = t.elapsed().as_secs_f64();
        let load_passes = passes.load(Ordering::Relaxed) - p0;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            std::hint::black_box(h.join().expect("load worker panicked")?);
        }
        std::hint::black_box(&starts);
        let load_mb_per_s = load.as_ref().map(|l| {
            load_passes as f64 * l.kernel.bytes_per_pass(l.chunks[0].len) as f64 / secs / 1e6
        });
        result = Some(ChaseResult {
            size_bytes: buf.len(),
            stride: spec.stride,
            chains: spec.chains,
            mem_node: spec.mem_node,
            loads,
            ns_per_load: secs * 1e9 / loads as f64,
            build_seconds,
            load_threads: spec.load.as_ref().map_or(0, |l| l.cpus.len()),
            load_kernel: spec.load.as_ref().map(|l| l.kernel.to_string()),
            load_mb_per_s,
        });
        Ok(())
    })?;
    Ok(result.expect("measured"))
}
