//! `cargo run --release -p flowsight-benches --bin queries -- [--workers N] [--records N]
//! [--rate R] [--queries N] [--no-queries]`
//!
//! Registered queries under load: the engine reads `--records` generated records as fast
//! as it can (every built-in view on, windows 30m, 2h and 24h) with `--queries` registered
//! queries (300 by default), a third each of filters (an aggregate over a WHERE),
//! group-bys and top-k (GROUP BY … ORDER BY … LIMIT 10), over the three windows. The
//! queries are in the state directory when the engine starts, as after a restart, so they
//! run from the first record on: the figure is the sustained rate with them running. The
//! run ends once every record is visible in the built-in views and every query has
//! answered at that as_of.
//!
//! Halfway through the records, while the engine ingests, five more queries are registered
//! one after the other: how long registering takes (the command applied on every worker),
//! and how long until the query's first answer (the query plane has passed the time it
//! starts at; it counts the records placed from its registration on). With `--queries 0`
//! it measures the engine with the query plane and no query; with `--no-queries`, without
//! the plane either.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{
    engine_config, generator, peak_rss_bytes, wait_until_visible, Timing, Views,
};
use flowsight_engine::queries::{save, StoredQuery};
use flowsight_engine::views::counters::Status;
use flowsight_engine::views::registered::QueryResults;
use flowsight_engine::{Client, Engine, QueryDefinition, QueryError, QueryState, SourceConfig};
use flowsight_queries::plan::Plan;
use serde_json::json;

/// Registered queries under load: records/s with the queries running, and how long
/// registering one more takes while the engine ingests.
#[derive(Parser)]
#[command(name = "queries", args_override_self = true)]
struct Args {
    /// Worker threads of the engine.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// How many records the generator produces; the engine reads them as fast as it can.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    records: u64,
    /// Events per second of event time: how densely records fall into each 1 s tick.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// Queries registered before the engine starts (a third each of filters, group-bys
    /// and top-k over the three windows); with 0, the engine runs the query plane with no
    /// query.
    #[arg(long, value_name = "N", default_value_t = 300)]
    queries: usize,
    /// Neither queries nor the query plane (the engine as `flowsight run --no-queries`);
    /// no query is registered, whatever --queries says.
    #[arg(long)]
    no_queries: bool,
}

const WINDOWS: [&str; 3] = ["flows_30m", "flows_2h", "flows_24h"];
const PORTS: [u16; 10] = [22, 53, 80, 123, 443, 445, 3306, 3389, 5432, 8080];

/// The `i`-th query of the mix.
fn query(i: usize) -> QueryDefinition {
    let window = WINDOWS[i % 3];
    let port = PORTS[i / 3 % PORTS.len()];
    let plan = match i % 3 {
        // Filters: an aggregate over a WHERE, as a dashboard metric.
        0 => json!({
            "from": window,
            "select": [{"aggregate": "count_star", "as": "n"}, {"aggregate": {"sum": "bytes_out"}, "as": "bytes"}],
            "where": {"and": [
                {"compare": {"left": {"ref": "dst_port"}, "op": "eq", "right": {"literal": port}}},
                {"not": {"cidr_match": {"operand": {"ref": "dst_ip"}, "network": format!("10.{}.0.0/16", i % 4)}}}
            ]}
        }),
        // Group-bys.
        1 => json!({
            "from": window,
            "select": [{"column": "src_ip"}, {"aggregate": "count_star", "as": "n"},
                       {"aggregate": {"count_distinct": "dst_ip"}, "as": "peers"}],
            "where": {"compare": {"left": {"ref": "dst_port"}, "op": "not_eq", "right": {"literal": port}}},
            "group_by": ["src_ip"]
        }),
        // Top-k.
        _ => json!({
            "from": window,
            "select": [{"column": "dst_ip"}, {"column": "dst_port"}, {"aggregate": {"sum": "bytes_in"}, "as": "bytes"}],
            "where": {"compare": {"left": {"ref": "bytes_in"}, "op": "gt", "right": {"literal": i as u64 * 10}}},
            "group_by": ["dst_ip", "dst_port"],
            "order_by": [{"term": {"aggregate": {"sum": "bytes_in"}}, "descending": true}],
            "limit": 10
        }),
    };
    QueryDefinition {
        name: format!("q{i:03}"),
        sql: None,
        plan: serde_json::from_value::<Plan>(plan).expect("the bench's plans parse"),
    }
}

/// Reads a query at `as_of` (waiting for it), and returns how many rows it has.
fn results_at(client: &Client, name: &str, as_of: u64) -> u64 {
    let info = client.query(name).expect("registered");
    let answered = client
        .peek_at(
            QueryResults {
                name: name.to_string(),
                generation: info.generation,
                limit: 10,
            },
            Some(as_of),
            Duration::from_secs(600),
        )
        .expect("the query answers");
    match answered.answer {
        Ok(result) => result.total,
        Err(other) => panic!("{name}: {other:?}"),
    }
}

fn main() {
    let args = Args::parse();
    let (views, queries) = if args.no_queries {
        (Views::NoQueries, 0)
    } else {
        (Views::All, args.queries)
    };
    let Args {
        workers,
        records,
        rate,
        ..
    } = args;
    let state_dir =
        std::env::temp_dir().join(format!("flowsight-queries-bench-{}", std::process::id()));
    let source = SourceConfig::Generator(generator(records, 2_000, rate));
    // The queries are read from the state directory, as after a restart.
    let state = (queries > 0).then(|| state_dir.clone());
    let mut config = engine_config(workers, source, views, Timing::default(), state);
    config.queries.max_queries = queries + 16;
    if queries > 0 {
        let stored: Vec<StoredQuery> = (0..queries)
            .map(|i| StoredQuery {
                definition: query(i),
                state: QueryState::Running,
                registered_at: 0,
            })
            .collect();
        save(&state_dir, &stored).expect("the bench writes its queries");
    }

    let started = Instant::now();
    let engine = Engine::start(config).expect("the engine starts");
    let client = engine.client();

    // Five more queries while the engine ingests: the command applied everywhere, then the
    // first answer, which needs the query's dataflow to have read its window's history.
    let mut late = Vec::new();
    if queries > 0 {
        wait_until_read(&client, records / 2);
        for j in 0..5 {
            let begun = Instant::now();
            let mut definition = query(j);
            definition.name = format!("late{j}");
            let name = definition.name.clone();
            match client.register_query(definition) {
                Ok(_) => {}
                // Busy workers apply it when they reach it.
                Err(QueryError::Pending(_)) => {
                    while client.query(&name).is_none() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                Err(error) => panic!("the query did not register: {error}"),
            }
            let registered = begun.elapsed();
            let latest = client.latest_complete().unwrap_or(0);
            results_at(&client, &format!("late{j}"), latest);
            late.push((registered, begun.elapsed(), records_read(&client)));
        }
    }

    let as_of = wait_until_visible(&client, records);
    // The rows of the queries without LIMIT: their groups.
    let mut groups = 0;
    for i in 0..queries {
        let rows = results_at(&client, &format!("q{i:03}"), as_of);
        if i % 3 != 2 {
            groups += rows;
        }
    }
    let elapsed = started.elapsed();
    let peak = peak_rss_bytes().unwrap_or(0);
    let state = client
        .peek(Status, Duration::from_secs(60))
        .ok()
        .and_then(|status| status.answer.state.get("registered_queries").copied())
        .unwrap_or_default();
    engine.shutdown().expect("the engine ran without failing");

    println!(
        "{records} records, {queries} registered queries, {workers} workers, rate {rate}: {:.0} records/s ({:.1} s), peak RSS {} MiB",
        records as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        peak / (1 << 20)
    );
    if queries > 0 {
        println!(
            "query plane: {} records in its arrangements ({} waiting in batchers); the {} queries without LIMIT hold {groups} groups in all",
            state.records,
            state.batcher_records,
            queries - queries / 3
        );
    }
    for (registered, answered, read) in late {
        println!(
            "one more query with {queries} running, while ingesting ({read} records read): registered in {:.1} ms, first answer after {:.1} ms",
            registered.as_secs_f64() * 1e3,
            answered.as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// How many records the engine has read so far.
fn records_read(client: &Client) -> u64 {
    match client.peek(Status, Duration::from_secs(60)) {
        Ok(answered) => answered.answer.records,
        Err(_) => 0,
    }
}

/// Waits until the engine has read at least `records` records.
fn wait_until_read(client: &Client, records: u64) {
    while records_read(client) < records {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
#[test]
fn the_documented_command_lines_parse() {
    use flowsight_benches::parse_line;
    // docs/benchmarks.md
    for options in [
        "--records 200000",
        "--records 1000000",
        "--records 200000 --queries 30",
        "--records 200000 --queries 0",
        "--records 200000 --no-queries",
    ] {
        parse_line::<Args>(&format!("queries {options}"));
    }
    let args: Args = parse_line("queries --records 200000");
    assert_eq!(
        (args.workers, args.records, args.rate, args.queries),
        (2, 200_000, 20_000, 300)
    );
    assert!(!args.no_queries);
    assert_eq!(parse_line::<Args>("queries --queries 30").queries, 30);
    assert!(parse_line::<Args>("queries --no-queries").no_queries);
}
