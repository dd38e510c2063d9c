//! `cargo run --release -p flowsight-benches --bin pipeline -- [--workers N] [--records N]
//! [--hosts N] [--rate R] [--graph-only | --no-segments | --no-queries] [--count-edges]`
//!
//! Runs the whole pipeline (generator → source → windowed pre-aggregation → graph
//! arrangement → risk scores and anomalies → segmentation) once and prints records/s and
//! peak memory; `--graph-only` leaves out every view but the graph, `--no-segments` the
//! segmentation (and the query plane that runs registered queries), and `--no-queries`
//! only the query plane, to measure what each adds. With `--count-edges` it only
//! counts the distinct edges the same settings generate (run apart, so that counting does
//! not add to the engine's peak memory).

// Differential's batchers and spines allocate and free large buffers at a high rate;
// jemalloc keeps freed pages for reuse instead of returning them to the kernel and
// faulting them in again (with the system allocator, clearing fresh pages took a sixth
// of the pipeline's time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashSet;

use clap::Parser;
use flowsight_benches::{generator, peak_rss_bytes, run_pipeline, Views};
use flowsight_connectors::GeneratorPartition;

/// Runs the whole pipeline once on the embedded generator and prints records/s and peak
/// memory.
#[derive(Parser)]
#[command(name = "pipeline", args_override_self = true)]
struct Args {
    /// Worker threads of the engine.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// How many records the generator produces.
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    records: u64,
    /// Client hosts of the generated network.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    hosts: u32,
    /// Events per second of event time: how densely records fall into each 1 s tick (the
    /// generator runs as fast as the engine takes them).
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// Leave out every view but the graph.
    #[arg(long, overrides_with_all = ["no_segments", "no_queries"])]
    graph_only: bool,
    /// Leave out the segmentation (and the query plane that runs registered queries).
    #[arg(long, overrides_with_all = ["graph_only", "no_queries"])]
    no_segments: bool,
    /// Leave out only the query plane that runs registered queries.
    #[arg(long, overrides_with_all = ["graph_only", "no_segments"])]
    no_queries: bool,
    /// Only count the distinct edges these settings generate, without running the engine
    /// (run apart, so that counting does not add to the engine's peak memory).
    #[arg(long)]
    count_edges: bool,
}

impl Args {
    /// The views the run maintains: every view unless one of the flags leaves some out
    /// (the last of them given wins).
    fn views(&self) -> Views {
        if self.graph_only {
            Views::Graph
        } else if self.no_segments {
            Views::GraphAndRisk
        } else if self.no_queries {
            Views::NoQueries
        } else {
            Views::All
        }
    }
}

fn main() {
    let args = Args::parse();
    let views = args.views();
    let Args {
        workers,
        records,
        hosts,
        rate,
        count_edges,
        ..
    } = args;
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

#[cfg(test)]
mod tests {
    use super::{Args, Views};
    use flowsight_benches::parse_line;

    #[test]
    fn the_documented_command_lines_parse() {
        let args: Args = parse_line("pipeline");
        assert_eq!(
            (args.workers, args.records, args.hosts, args.rate),
            (2, 5_000_000, 2_000, 20_000)
        );
        assert_eq!(args.views(), Views::All);
        assert!(!args.count_edges);
        // docs/benchmarks.md
        let documented = [
            ("--workers 2 --records 4000000 --rate 100000", Views::All),
            (
                "--workers 2 --records 4000000 --rate 100000 --no-segments",
                Views::GraphAndRisk,
            ),
            (
                "--workers 2 --records 4000000 --rate 100000 --graph-only",
                Views::Graph,
            ),
            ("--count-edges --records 4000000 --rate 100000", Views::All),
            (
                "--workers 2 --records 24000000 --hosts 25000 --rate 1000000",
                Views::All,
            ),
        ];
        for (options, views) in documented {
            let args: Args = parse_line(&format!("pipeline {options}"));
            assert_eq!(args.views(), views, "{options}");
        }
        let args: Args = parse_line("pipeline --count-edges --records 4000000 --rate 100000");
        assert!(args.count_edges);
        assert_eq!(
            (args.records, args.hosts, args.rate),
            (4_000_000, 2_000, 100_000)
        );
    }

    #[test]
    fn the_last_view_flag_and_the_last_value_win() {
        let views = |line| parse_line::<Args>(line).views();
        assert_eq!(
            views("pipeline --graph-only --no-queries"),
            Views::NoQueries
        );
        assert_eq!(
            views("pipeline --no-queries --no-segments"),
            Views::GraphAndRisk
        );
        assert_eq!(
            parse_line::<Args>("pipeline --records 5 --records 7").records,
            7
        );
    }
}
