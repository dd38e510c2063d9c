//! `cargo run --release -p flowscope-benches --bin segments -- [--workers N] [--hosts N]
//! [--changes N]`
//!
//! How long a change takes to show in the segmentation views on a large host graph: the
//! wall time from handing a tick's records to the dataflow until the segmentation
//! arrangements have passed that tick (what a peek waits for), per kind of change.
//!
//! The dataflow is the views' own (`graph::render` then `segments::render`, default
//! thresholds, a 24h window), driven directly rather than through the engine, whose source
//! timing (lateness, idle timeout) would otherwise dominate. The graph (100,000 hosts by
//! default): four large segments of an eighth of the hosts each (trees with 30 children
//! per node, so their diameter stays small), chains of five hosts joined by strong edges
//! for the other half, 60 hubs asked by a few hundred hosts each, and weak traffic
//! between segments. Then, one tick
//! each:
//!
//! * **small merges** — a new strong edge joins two chains;
//! * **large merges** — a new strong edge joins two large segments;
//! * **idle ticks** — nothing changes (the floor: progress tracking alone);
//! * **small / large splits** — those edges leave the window and the segments split again.
//!
//! The merge edges are stamped a day before the graph (late records), so they leave the
//! window while the graph stays. Prints the load time and rate, and p50 / p99 / max per kind.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use differential_dataflow::trace::TraceReader;
use flowscope_events::{Event, Proto, Status};
use flowscope_operators::segments::SegmentRules;
use flowscope_operators::{Millis, TimeModel};
use flowscope_queries::{graph, segments};
use timely::dataflow::operators::{Input, Probe};
use timely::progress::Antichain;

const TICK: Millis = 1_000;
const DAY: Millis = 86_400_000;
/// Event time of the merge edges; the graph comes a day later.
const EARLY: Millis = 1_750_000_000_000;
const GRAPH: Millis = EARLY + DAY / 2;
const CHAIN: u32 = 5;
const LARGE_SEGMENTS: u32 = 4;
const FANOUT: u32 = 30;
const HUBS: u32 = 60;

fn host(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn hub(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i))
}

fn record(ts: Millis, src: IpAddr, dst: IpAddr, port: u16) -> Event {
    Event {
        ts,
        src_ip: src,
        dst_ip: dst,
        src_port: 40_000,
        dst_port: port,
        proto: Proto::Tcp,
        bytes_out: 1_000,
        bytes_in: 1_000,
        packets: 8,
        duration_ms: None,
        status: Status::Established,
    }
}

/// A strong edge: three records each way between `a` and `b`.
fn strong(ts: Millis, a: IpAddr, b: IpAddr, port: u16, out: &mut Vec<Event>) {
    for k in 0..3 {
        out.push(record(ts + k, a, b, port));
    }
}

/// Hosts per large segment; the large segments come first, then the chains.
fn per_large(hosts: u32) -> u32 {
    hosts / 8
}

/// The graph's records.
fn graph_records(hosts: u32) -> Vec<Event> {
    let per_large = per_large(hosts);
    let large = per_large * LARGE_SEGMENTS;
    let mut out = Vec::new();
    for i in 0..hosts {
        let ts = GRAPH + u64::from(i % 10_000);
        if i < large {
            let (segment, index) = (i / per_large, i % per_large);
            if index > 0 {
                let parent = segment * per_large + (index - 1) / FANOUT;
                strong(ts, host(parent), host(i), 443, &mut out);
            }
        } else if (i - large) % CHAIN != 0 {
            strong(ts, host(i - 1), host(i), 8080, &mut out);
        }
        // DNS-like hubs, and a weak contact with another segment.
        if i % 5 == 0 {
            out.push(record(ts, host(i), hub(i % HUBS), 53));
        }
        if i % 7 == 0 {
            out.push(record(ts, host(i), host((i * 7_919) % hosts), 5432));
        }
    }
    out
}

/// The merge edges: `small` between consecutive chains, then `LARGE_SEGMENTS / 2` between
/// pairs of large segments; each with the time it is sent.
fn merge_edges(hosts: u32, small: u32) -> Vec<(&'static str, Vec<Event>)> {
    let per_large = per_large(hosts);
    let large = per_large * LARGE_SEGMENTS;
    let mut changes = Vec::new();
    for k in 0..small {
        // The last host of chain 2k and the first of chain 2k + 1.
        let a = large + (2 * k) * CHAIN + CHAIN - 1;
        let mut out = Vec::new();
        strong(
            EARLY + u64::from(k) * TICK,
            host(a),
            host(a + 1),
            22,
            &mut out,
        );
        changes.push(("small merge", out));
    }
    for k in 0..LARGE_SEGMENTS / 2 {
        let (a, b) = (
            2 * k * per_large + per_large - 1,
            (2 * k + 1) * per_large + per_large - 1,
        );
        let mut out = Vec::new();
        strong(
            EARLY + u64::from(small + k) * TICK,
            host(a),
            host(b),
            22,
            &mut out,
        );
        changes.push(("large merge", out));
    }
    changes
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let mut workers = 2usize;
    let mut hosts = 100_000u32;
    let mut changes = 200u32;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--workers" => workers = value.parse().unwrap_or_else(|_| usage("bad --workers")),
            "--hosts" => hosts = value.parse().unwrap_or_else(|_| usage("bad --hosts")),
            "--changes" => changes = value.parse().unwrap_or_else(|_| usage("bad --changes")),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if hosts < 10_000
        || changes == 0
        || u64::from(changes) * 2 * u64::from(CHAIN) > u64::from(hosts / 2)
    {
        usage("--hosts must be at least 10000, and --changes from 1 to hosts / 20");
    }

    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let time = TimeModel::new(TICK).unwrap();
        let rules = SegmentRules::default();
        let (mut input, probe, mut graph_trace, mut traces) =
            worker.dataflow::<Millis, _, _>(|scope| {
                let (input, events) = scope.new_input::<Vec<Event>>();
                let arranged = graph::render(events, time, DAY);
                let rendered = segments::render(&arranged, rules);
                let (probe, _) = rendered.progress.probe();
                (input, probe, arranged.trace, rendered.traces)
            });
        let leader = worker.index() == 0;
        // Sends `events` at `at` (if this is worker 0), lets the input pass `at`, and steps
        // until the segmentation has too; returns how long that took.
        let mut step = |at: Millis, events: Vec<Event>| -> Duration {
            let started = Instant::now();
            if at > *input.time() {
                input.advance_to(at);
            }
            if leader {
                let mut events = events;
                input.send_batch(&mut events);
            }
            input.advance_to(at + TICK);
            let next = at + TICK;
            while probe.less_than(&next) {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            let elapsed = started.elapsed();
            // What the engine does as its frontier moves: let history go.
            let frontier = Antichain::from_elem(at);
            graph_trace.set_logical_compaction(frontier.borrow());
            graph_trace.set_physical_compaction(frontier.borrow());
            traces.compact(frontier.borrow(), frontier.borrow());
            elapsed
        };

        // The graph, ten ticks of it.
        let base = graph_records(hosts);
        let total = base.len();
        let loading = Instant::now();
        let mut by_tick: Vec<Vec<Event>> = vec![Vec::new(); 10];
        for e in base {
            let tick = ((e.ts - GRAPH) / TICK) as usize;
            by_tick[tick.min(9)].push(e);
        }
        for (k, events) in by_tick.into_iter().enumerate() {
            step(time.own_time(GRAPH + k as u64 * TICK), events);
        }
        let loaded = loading.elapsed();

        let mut start = time.own_time(GRAPH) + 20 * TICK;
        let mut measured: Vec<(&'static str, Duration)> = Vec::new();
        let edges = merge_edges(hosts, changes);
        let merges: Vec<(&'static str, Millis)> = edges
            .iter()
            .map(|(kind, events)| (*kind, time.own_time(events[0].ts)))
            .collect();
        for (kind, events) in edges {
            measured.push((kind, step(start, events)));
            start += TICK;
        }
        for _ in 0..changes {
            measured.push(("idle tick", step(start, Vec::new())));
            start += TICK;
        }
        // Each merge edge leaves at its own time plus the day; the tick before, nothing.
        for (kind, own) in merges {
            let leaves = own + DAY;
            step(leaves - TICK, Vec::new());
            let split = if kind == "small merge" {
                "small split"
            } else {
                "large split"
            };
            measured.push((split, step(leaves, Vec::new())));
        }
        drop(input);
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        (total, loaded, measured)
    })
    .expect("timely starts");
    let results: Vec<_> = guards
        .join()
        .into_iter()
        .map(|r| r.expect("worker panicked"))
        .collect();
    let (total, loaded, measured) = &results[0];
    println!(
        "workers={workers} hosts={hosts} graph_records={total} load_seconds={:.2} load_records_per_second={:.0}",
        loaded.as_secs_f64(),
        *total as f64 / loaded.as_secs_f64()
    );
    for kind in [
        "small merge",
        "large merge",
        "idle tick",
        "small split",
        "large split",
    ] {
        let mut times: Vec<Duration> = measured
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        times.sort();
        if times.is_empty() {
            continue;
        }
        println!(
            "{kind:>12}: n={:<4} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("segments: {problem}\nusage: segments [--workers N] [--hosts N] [--changes N]");
    std::process::exit(2);
}
