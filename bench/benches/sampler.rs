//! What one sample costs: reading /proc/vmstat plus the per-node files, and
//! a move_pages census of a populated buffer. The run loop pays both once
//! per interval; divide by the interval for the sampler's share of a run.

use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tierbench::buffer::{Buffer, PageKind};
use tierbench::mempolicy::{MoveFlags, Policy};
use tierbench::sysfs::SysRoot;
use tierbench::telemetry::Snapshot;
use tierbench::topology::{NodeSet, Topology};

fn vmstat_snapshot(c: &mut Criterion) {
    let sys = SysRoot::live();
    let topo = Topology::from_sysfs(&sys).expect("sysfs topology");
    let nodes = topo.memory_nodes();
    c.bench_function("vmstat snapshot (global + every node)", |b| {
        b.iter(|| Snapshot::read(&sys, &nodes).expect("vmstat"))
    });
}

fn census(c: &mut Criterion) {
    let mut group = c.benchmark_group("census");
    for mib in [64usize, 256] {
        let mut buf = Buffer::map(mib << 20, PageKind::Base).expect("map");
        buf.set_policy(&Policy::bind(NodeSet::single(0)), MoveFlags::NONE)
            .expect("bind to node 0");
        buf.populate(&[0], &AtomicBool::new(false))
            .expect("populate");
        group.throughput(Throughput::Elements((buf.len() / 4096) as u64));
        group.bench_function(format!("{mib} MiB of 4 KiB pages"), |b| {
            b.iter(|| buf.census(0..buf.len()).expect("census"))
        });
    }
    group.finish();
}

criterion_group!(benches, vmstat_snapshot, census);
criterion_main!(benches);
