//! `cargo run --release -p flowsight-benches --bin pipeline -- [--workers N] [--records N]
//! [--hosts N] [--rate R] [--graph-only | --no-segments | --no-queries] [--count-edges]`
//!
//! Runs the whole pipeline (generator → source → windowed pre-aggregation → graph
//! arrangement → risk scores and anomalies → segmentation) once and prints records/s and
//! peak memory; `--graph-only` leaves out every view but the graph, `--no-segments` the
//! segmentation (and the records arrangement of registered queries), and `--no-queries`
//! only the records arrangement, to measure what each adds. With `--count-edges` it only
//! counts the distinct edges the same settings generate (run apart, so that counting does
//! not add to the engine's peak memory).

// Differential's batchers and spines allocate and free large buffers at a high rate;
// jemalloc keeps freed pages for reuse instead of returning them to the kernel and
// faulting them in again (with the system allocator, clearing fresh pages took a sixth
// of the pipeline's time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashSet;

use flowsight_benches::{generator, peak_rss_bytes, run_pipeline, Views};
use flowsight_connectors::GeneratorPartition;

fn main() {
    let mut workers = 2usize;
    let mut records = 5_000_000u64;
    let mut hosts = 2_000u32;
    let mut rate = 20_000u64;
    let mut count_edges = false;
    let mut views = Views::All;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--workers" => workers = value().parse().unwrap_or_else(|_| usage("bad --workers")),
            "--records" => records = value().parse().unwrap_or_else(|_| usage("bad --records")),
            "--hosts" => hosts = value().parse().unwrap_or_else(|_| usage("bad --hosts")),
            "--rate" => rate = value().parse().unwrap_or_else(|_| usage("bad --rate")),
            "--count-edges" => count_edges = true,
            "--graph-only" => views = Views::Graph,
            "--no-segments" => views = Views::GraphAndRisk,
            "--no-queries" => views = Views::NoQueries,
            other => usage(&format!("unknown option {other}")),
        }
    }
    let config = generator(records, hosts, rate);
    if count_edges {
        let mut edges = HashSet::new();
        for p in 0..config.partitions {
            let mut part = GeneratorPartition::new(&config, p);
            while let Some(e) = part.next_event() {
                edges.insert(e.edge_key());
            }
        }
        println!(
            "records={records} hosts={hosts} rate={rate} distinct_edges={}",
            edges.len()
        );
        return;
    }
    let run = run_pipeline(workers, config, views);
    println!(
        "views={views:?} workers={workers} records={} hosts={hosts} rate={rate} seconds={:.2} records_per_second={:.0} peak_rss_mib={:.0}",
        run.records,
        run.elapsed.as_secs_f64(),
        run.records_per_second(),
        peak_rss_bytes().map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0)),
    );
}

fn usage(problem: &str) -> ! {
    eprintln!("pipeline: {problem}\nusage: pipeline [--workers N] [--records N] [--hosts N] [--rate R] [--graph-only | --no-segments | --no-queries] [--count-edges]");
    std::process::exit(2);
}
