//! Criterion benchmark of the whole pipeline, with 1 and 2 workers, into the graph view
//! alone, into the graph, risk and anomaly views, and into every view (segmentation too).
//!
//! `cargo bench -p flowsight-benches --bench pipeline`

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use flowsight_benches::{generator, run_pipeline, Views};

// Differential's batchers and spines allocate and free large buffers at a high rate;
// jemalloc keeps freed pages for reuse instead of returning them to the kernel and
// faulting them in again (with the system allocator, clearing fresh pages took a sixth
// of the pipeline's time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const RECORDS: u64 = 1_000_000;

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(RECORDS));
    for (name, views) in [
        ("generator_to_graph", Views::Graph),
        ("generator_to_graph_and_risk", Views::GraphAndRisk),
        ("generator_to_all_views", Views::All),
    ] {
        for workers in [1usize, 2] {
            group.bench_with_input(BenchmarkId::new(name, workers), &workers, |b, &workers| {
                b.iter(|| run_pipeline(workers, generator(RECORDS, 2_000, 20_000), views));
            });
        }
    }
    group.finish();
}

/// The benchmark group that `criterion_main!` runs. It sits in a private module because
/// the function `criterion_group!` generates is public and cannot carry a doc comment.
mod group {
    criterion::criterion_group!(benches, super::pipeline);
}

criterion_main!(group::benches);
