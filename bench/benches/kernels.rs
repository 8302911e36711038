//! What the access kernels cost, measured on this machine:
//! - every bandwidth kernel, per byte (64 MiB arrays, one thread);
//! - the pointer chase per load at 16 KiB (an L1 hit), 1 MiB and 256 MiB;
//! - each hot/cold pattern per access, with and without the 1-in-1024
//!   latency timing, and with every access timed.
//!
//! Side-by-side runs against peer tools (likwid-bench, mbw, multichase)
//! live in bench/scripts/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tierbench::buffer::{Buffer, PageKind};
use tierbench::workload::bandwidth::{self, BwKernel, Chunk};
use tierbench::workload::chase;
use tierbench::workload::clock::AccessClock;
use tierbench::workload::pattern::{Mix, Pattern, PatternKind, PatternSpec, Shared, Worker, BATCH};

fn populated(bytes: usize, page: PageKind) -> Buffer {
    let mut buf = Buffer::map(bytes, page).expect("map");
    buf.populate(&[0], &AtomicBool::new(false))
        .expect("populate");
    buf
}

fn bandwidth_kernels(c: &mut Criterion) {
    let arr = 64 << 20;
    let mut buf = populated(3 * arr, PageKind::Thp);
    let base = buf.as_mut_ptr();
    // SAFETY: three arrays of `arr` bytes inside the buffer.
    let chunk = unsafe {
        Chunk {
            a: base,
            b: base.add(arr),
            c: base.add(2 * arr),
            len: arr,
        }
    };
    let mut group = c.benchmark_group("bandwidth");
    group.sample_size(10);
    for k in ["read", "write", "write-nt", "copy", "triad", "mix:3:1"] {
        let kernel: BwKernel = k.parse().unwrap();
        group.throughput(Throughput::Bytes(kernel.bytes_per_pass(arr)));
        group.bench_function(k, |b| {
            // SAFETY: the chunk's arrays are valid, aligned and disjoint.
            b.iter(|| unsafe { bandwidth::pass(kernel, chunk) })
        });
    }
    group.finish();
}

fn pointer_chase(c: &mut Criterion) {
    let mut group = c.benchmark_group("chase");
    let loads = 1u64 << 16;
    group.throughput(Throughput::Elements(loads));
    for (label, size, page, window) in [
        ("16KiB", 16 << 10, PageKind::Base, 16 << 10),
        ("1MiB", 1 << 20, PageKind::Base, 1 << 20),
        ("256MiB thp 2MiB windows", 256 << 20, PageKind::Thp, 2 << 20),
    ] {
        let mut buf = populated(size, page);
        let base = buf.as_mut_ptr();
        // SAFETY: the buffer holds `size` bytes.
        let cycle = unsafe { chase::build(base, size, 64, window, chase::Draw::Seed(1)) };
        let mut start = [cycle[0]];
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            // SAFETY: start is a slot of the cycle.
            b.iter(|| unsafe { chase::run(&mut start, loads) })
        });
    }
    group.finish();
}

fn patterns(c: &mut Criterion) {
    let size = 256 << 20;
    let mut buf = populated(size, PageKind::Base);
    let base = buf.as_mut_ptr() as usize;
    let clock = AccessClock::calibrate(Duration::from_millis(20));
    let mut group = c.benchmark_group("pattern");
    group.throughput(Throughput::Elements(BATCH));
    for (kind, every) in [
        (PatternKind::Sweep, 0),
        (PatternKind::HotCold, 0),
        (PatternKind::HotCold, 1024),
        (PatternKind::HotCold, 1),
        (PatternKind::Uniform, 0),
        (PatternKind::Gaussian, 0),
        (PatternKind::Zipf, 0),
    ] {
        let spec = PatternSpec {
            kind,
            hot_fraction: 0.1,
            hot_share: 0.9,
            zipf_theta: 1.0,
            stride: 64,
            mix: Mix::READ_ONLY,
        };
        let pattern = Pattern::new(spec, size);
        let shared = Shared::default();
        // Stop is set: each call runs exactly one batch.
        shared.stop.store(true, Ordering::Relaxed);
        let worker = Worker {
            pattern: &pattern,
            shared: &shared,
            clock,
            latency_every: every,
            index: 0,
            workers: 1,
            seed: 1,
        };
        let label = match every {
            0 => format!("{kind}"),
            1 => format!("{kind}, every access timed"),
            n => format!("{kind}, 1 in {n} timed"),
        };
        group.bench_function(label, |b| {
            // SAFETY: the buffer is mapped for the whole bench, atomics only.
            b.iter(|| unsafe { worker.run(base as *mut u8) })
        });
    }
    group.finish();
}

criterion_group!(benches, bandwidth_kernels, pointer_chase, patterns);
criterion_main!(benches);
