//! `cargo run --release -p flowsight-benches --bin edges -- [--secs S] [--rate R]
//! [--hosts N] [--panes 1s,10s,1m,5m,15m,1h]`
//!
//! How many distinct edges the generated traffic has per pane, for the capacity model: the
//! views keep one group per distinct (edge, pane), so a window of length `W` with pane `p`
//! holds about `(W ÷ p) × (distinct edges per pane)` of them. Generates `--secs` seconds of
//! event time at `--rate` records per second (the generator of `flowsight run`, seed 1)
//! and prints, for panes from a second to an hour, the distinct (edge, pane) pairs, their
//! mean per pane, and their number per record.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use clap::Parser;
use flowsight_connectors::{GeneratorConfig, GeneratorPartition, Pace};
use flowsight_events::Proto;

/// Distinct edges per pane length in generated traffic.
#[derive(Parser)]
#[command(name = "edges", args_override_self = true)]
struct Args {
    /// Seconds of event time to generate.
    #[arg(long, value_name = "S", default_value_t = 1_800)]
    secs: u64,
    /// Records per second of event time.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// Client hosts of the synthetic network (`flowsight run`'s default).
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    hosts: u32,
    /// The pane lengths counted (every distinct (edge, pane) is held until the end: leave
    /// the short panes out for long runs at high rates).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "1s,10s,1m,5m,15m,1h",
        value_delimiter = ','
    )]
    panes: Vec<String>,
}

type Edge = (IpAddr, IpAddr, u16, Proto);

fn main() {
    let args = Args::parse();
    let pane_lengths: Vec<u64> = args
        .panes
        .iter()
        .map(|pane| {
            flowsight_queries::parse_duration_ms(pane)
                .ok()
                .filter(|&ms| ms >= 1_000)
                .unwrap_or_else(|| {
                    flowsight_benches::exit_usage::<Args>(format!(
                        "--panes: {pane} is not a duration of 1s or more"
                    ))
                })
        })
        .collect();
    let config = GeneratorConfig {
        seed: 1,
        partitions: 4,
        rate: args.rate,
        pace: Pace::Fast,
        start_ms: 1_750_000_000_000,
        count: Some(args.rate * args.secs),
        hosts: args.hosts,
        ..GeneratorConfig::default()
    };
    // Per pane length: pane index → the distinct edges seen in it.
    let mut panes: Vec<HashMap<u64, HashSet<Edge>>> =
        pane_lengths.iter().map(|_| HashMap::new()).collect();
    let mut records = 0u64;
    for partition in 0..config.partitions {
        for event in GeneratorPartition::new(&config, partition) {
            records += 1;
            let edge = (event.src_ip, event.dst_ip, event.dst_port, event.proto);
            for (length, seen) in pane_lengths.iter().zip(panes.iter_mut()) {
                seen.entry(event.ts / length).or_default().insert(edge);
            }
        }
    }
    println!(
        "{records} records, {} s of event time at {} records/s, {} hosts",
        args.secs, args.rate, args.hosts
    );
    println!(
        "{:>8} {:>8} {:>16} {:>14} {:>12}",
        "pane", "panes", "(edge, pane)", "per pane", "per record"
    );
    for (length, seen) in pane_lengths.iter().zip(&panes) {
        let pairs: u64 = seen.values().map(|edges| edges.len() as u64).sum();
        let count = seen.len().max(1) as u64;
        println!(
            "{:>8} {:>8} {:>16} {:>14} {:>12.3}",
            format!("{}s", length / 1_000),
            count,
            pairs,
            pairs / count,
            pairs as f64 / records.max(1) as f64
        );
    }
}

#[cfg(test)]
#[test]
fn the_documented_command_line_parses() {
    // docs/benchmarks.md
    let args: Args = flowsight_benches::parse_line("edges --secs 1800 --rate 20000");
    assert_eq!((args.secs, args.rate, args.hosts), (1_800, 20_000, 2_000));
    // docs/capacity.md
    let args: Args =
        flowsight_benches::parse_line("edges --secs 3600 --rate 113000 --panes 1m,5m,1h");
    assert_eq!(args.panes, ["1m", "5m", "1h"]);
}
