//! `cargo run --release -p flowsight-benches --bin segments -- [--workers N] [--hosts N]
//! [--changes N] [--large-hosts N]`
//!
//! How long a change takes to show in the segmentation views on a large host graph: per
//! tick, the wall time from handing the tick's records to the dataflow and advancing the
//! input past the tick until the segmentation arrangements have passed it (what a peek at
//! that `as_of` waits for), per kind of change.
//!
//! The dataflow is the views' own (`graph::render`, then `segments::render` with the
//! default thresholds, a 24h window), driven directly with timely rather than through the
//! engine, whose source timing (lateness, idle timeout) would otherwise dominate. Worker 0
//! sends every record; all workers advance their inputs to the same time at each step and
//! step until the probe on the segmentation's progress passes it.
//!
//! The graph (`--hosts`, 100,000 by default), loaded in ten ticks: four large segments of
//! `--large-hosts` each (an eighth of the hosts by default; trees with 30 children per
//! node, so that their diameter stays small), chains of five hosts for the rest, every
//! strong edge three records; 60 hubs called by a fifth of the hosts (hundreds of peers
//! each); a weak contact (one record) from every seventh host to a host elsewhere, so that
//! the policy has entries between segments. Then `--changes` changes (300 by default), one
//! every third tick, each a new strong edge (three records):
//!
//! * **small merge** — joins two chains (fresh ones each time);
//! * **large merge** — every tenth change, joins two large segments (the pairs take
//!   turns, so each pair merges again only after its previous edge has left);
//! * **small / large split** — 31 ticks later that edge leaves the window and the segment
//!   splits again;
//! * **idle tick** — every tick with nothing to do: the floor (progress tracking, and any
//!   merging of batches left over from earlier ticks).
//!
//! Each change's records carry event times of the previous day (they arrive late), chosen
//! so that they leave the 24h window exactly `LIFETIME` ticks after they arrive while the
//! graph, stamped today, stays: a window short enough to expire the changes would expire
//! the graph too. So no tick but a split's retracts anything. After every merge and split
//! the bench reads the moved host's segment from the labels arrangement (outside the
//! timing) and checks that the change happened.
//!
//! Prints the load time and rate with the segments, hubs and policy entries the graph
//! makes, then n, p50, p99 and max (nearest rank) for each kind of
//! tick, and the total records sent. With the defaults there are 30 large merges and 30
//! large splits, so their p99 is their maximum.

// As in the pipeline bench: differential allocates and frees large buffers at a high rate.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clap::Parser;
use differential_dataflow::trace::TraceReader;
use flowsight_benches::exit_usage;
use flowsight_events::{Event, Proto, Status};
use flowsight_operators::{Millis, PaneSchedule, Stage, TimeModel};
use flowsight_queries::segments::propagation::{SegmentId, SegmentRules};
use flowsight_queries::segments::{PolicyFilter, PolicyOrder, SegmentReader};
use flowsight_queries::{graph, segments};
use timely::dataflow::operators::{Input, Probe};
use timely::progress::Antichain;

const TICK: Millis = 1_000;
const DAY: Millis = 86_400_000;
/// Event time of the graph's first tick.
const GRAPH: Millis = 1_750_000_000_000;
const GRAPH_TICKS: u64 = 10;
const CHAIN: u32 = 5;
const LARGE_SEGMENTS: u32 = 4;
const FANOUT: u32 = 30;
const HUBS: u32 = 60;
/// Every `LARGE_EVERY`th change is a large merge.
const LARGE_EVERY: u32 = 10;
/// Ticks from one change to the next; the ticks between hold the splits and idle ticks.
const STRIDE: u64 = 3;
/// Ticks from a change until its edge leaves the window. One more than a multiple of
/// `STRIDE`, so that splits never share a tick with a merge; and shorter than the time
/// until the same large pair merges again, so that every large merge joins two segments.
const LIFETIME: u64 = 31;
const _: () = assert!(LIFETIME % STRIDE == 1);
const _: () = assert!(LIFETIME < STRIDE * LARGE_EVERY as u64 * (LARGE_SEGMENTS as u64 / 2));

fn host(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Hubs are numbered after every host (172.16/12 > 10/8), so they never name a segment.
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

/// A strong edge: three records from `a` to `b` (the default `min_edge_connections`),
/// within one tick when `ts` is at least 3 ms before its end.
fn strong(ts: Millis, a: IpAddr, b: IpAddr, port: u16, out: &mut Vec<Event>) {
    for k in 0..3 {
        out.push(record(ts + k, a, b, port));
    }
}

/// The shape of the graph: `LARGE_SEGMENTS` trees of `per_large` hosts first, then chains.
#[derive(Clone, Copy)]
struct Layout {
    hosts: u32,
    per_large: u32,
}

impl Layout {
    fn large_hosts(&self) -> u32 {
        self.per_large * LARGE_SEGMENTS
    }

    fn chains(&self) -> u32 {
        (self.hosts - self.large_hosts()) / CHAIN
    }

    fn first_of_chain(&self, chain: u32) -> u32 {
        self.large_hosts() + chain * CHAIN
    }

    fn first_of_large(&self, segment: u32) -> u32 {
        segment * self.per_large
    }

    /// The graph's records, by the tick (0..GRAPH_TICKS) they are sent at.
    fn graph(&self) -> Vec<Vec<Event>> {
        let mut ticks = vec![Vec::new(); GRAPH_TICKS as usize];
        for i in 0..self.hosts {
            // Spread over the ticks, each record within its own tick (offsets < 997 ms + 2).
            let tick = u64::from(i) % GRAPH_TICKS;
            let ts = GRAPH + tick * TICK + u64::from(i / GRAPH_TICKS as u32 % 997);
            let out = &mut ticks[tick as usize];
            if i < self.large_hosts() {
                let (segment, index) = (i / self.per_large, i % self.per_large);
                if index > 0 {
                    let parent = self.first_of_large(segment) + (index - 1) / FANOUT;
                    strong(ts, host(parent), host(i), 443, out);
                }
            } else if (i - self.large_hosts()) % CHAIN != 0
                && i < self.first_of_chain(self.chains())
            {
                strong(ts, host(i - 1), host(i), 8080, out);
            }
            // Shared services, and a weak contact with another segment (a permutation
            // of the hosts, so no host gets many).
            if i % 5 == 0 {
                out.push(record(ts, host(i), hub(i / 5 % HUBS), 53));
            }
            if i % 7 == 0 {
                let peer = (u64::from(i) * 7_919 % u64::from(self.hosts)) as u32;
                out.push(record(ts, host(i), host(peer), 5432));
            }
        }
        ticks
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    SmallMerge,
    LargeMerge,
    SmallSplit,
    LargeSplit,
    Idle,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::SmallMerge,
        Kind::LargeMerge,
        Kind::Idle,
        Kind::SmallSplit,
        Kind::LargeSplit,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::SmallMerge => "small merge",
            Kind::LargeMerge => "large merge",
            Kind::SmallSplit => "small split",
            Kind::LargeSplit => "large split",
            Kind::Idle => "idle tick",
        }
    }
}

/// One measured tick: what it does, the records sent at it, and the segment the moved
/// host must be in once the tick is complete.
struct Tick {
    kind: Kind,
    events: Vec<Event>,
    check: Option<(IpAddr, IpAddr)>,
}

/// The ticks after the graph, from the first change's.
fn schedule(layout: Layout, changes: u32, first: Millis) -> Vec<Tick> {
    let length = STRIDE * u64::from(changes - 1) + LIFETIME + 1;
    let mut ticks: Vec<Tick> = (0..length)
        .map(|_| Tick {
            kind: Kind::Idle,
            events: Vec::new(),
            check: None,
        })
        .collect();
    let (mut small, mut large) = (0u32, 0u32);
    for change in 0..changes {
        let j = STRIDE * u64::from(change);
        let at = first + j * TICK;
        // Leaves = own time + DAY = floor(ts) + TICK + DAY: make that the split's tick.
        let ts = at + (LIFETIME - 1) * TICK - DAY;
        // (a, b): the new edge; b's segment takes a's label and gives it back on the split.
        let (kinds, a, b, merged, apart) = if change % LARGE_EVERY == LARGE_EVERY - 1 {
            let pairs = LARGE_SEGMENTS / 2;
            let (pair, round) = (large % pairs, large / pairs);
            large += 1;
            // A different leaf each round (trees fill in index order: the last are leaves).
            let leaf = |segment: u32| layout.first_of_large(segment) + layout.per_large - 1 - round;
            let (s, t) = (2 * pair, 2 * pair + 1);
            (
                (Kind::LargeMerge, Kind::LargeSplit),
                leaf(s),
                leaf(t),
                layout.first_of_large(s),
                layout.first_of_large(t),
            )
        } else {
            let (c, d) = (2 * small, 2 * small + 1);
            small += 1;
            (
                (Kind::SmallMerge, Kind::SmallSplit),
                layout.first_of_chain(c) + CHAIN - 1,
                layout.first_of_chain(d),
                layout.first_of_chain(c),
                layout.first_of_chain(d),
            )
        };
        let merge = &mut ticks[j as usize];
        merge.kind = kinds.0;
        strong(ts, host(a), host(b), 22, &mut merge.events);
        merge.check = Some((host(b), host(merged)));
        let split = &mut ticks[(j + LIFETIME) as usize];
        split.kind = kinds.1;
        split.check = Some((host(b), host(apart)));
    }
    ticks
}

/// How long a change takes to show in the segmentation views on a large host graph, per
/// kind of change.
#[derive(Parser)]
#[command(name = "segments", args_override_self = true)]
struct Args {
    /// Timely worker threads of the dataflow.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// Hosts of the graph (20,000 to 16,777,216).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    hosts: u32,
    /// Changes measured, one every third tick; every tenth is a large merge (at most about
    /// the number of chains / 2).
    #[arg(long, value_name = "N", default_value_t = 300)]
    changes: u32,
    /// Hosts of each of the four large segments (at least 1,000; an eighth of --hosts by
    /// default, at most that).
    #[arg(long, value_name = "N")]
    large_hosts: Option<u32>,
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let Args {
        workers,
        hosts,
        changes,
        large_hosts,
    } = Args::parse();
    let layout = Layout {
        hosts,
        per_large: large_hosts.unwrap_or(hosts / 8),
    };
    let smalls = changes - changes / LARGE_EVERY;
    let large_rounds = (changes / LARGE_EVERY).div_ceil(LARGE_SEGMENTS / 2);
    // Hubs need at least 50 peers (a fifth of the hosts call them), hosts must stay in
    // 10/8, the changes need fresh chains, and the large merges distinct leaves.
    if workers == 0
        || changes == 0
        || !(20_000..=1 << 24).contains(&hosts)
        || layout.per_large < 1_000
        || layout.large_hosts() > hosts / 2
        || smalls * 2 > layout.chains()
        || large_rounds > layout.per_large / 2
    {
        exit_usage::<Args>(
            "need --workers >= 1, --hosts from 20000 to 16777216, --large-hosts from 1000 to \
             hosts / 8, and --changes from 1 to about the number of chains / 2",
        );
    }

    let started = Instant::now();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let time = TimeModel::new(TICK).expect("a whole tick");
        let rules = SegmentRules::default();
        let (mut input, probe, mut graph_trace, mut traces) =
            worker.dataflow::<Millis, _, _>(|scope| {
                let (input, events) = scope.new_input::<Vec<Event>>();
                let day = PaneSchedule::new(
                    &time,
                    vec![Stage {
                        window: DAY,
                        pane: TICK,
                    }],
                )
                .expect("a day is whole ticks");
                let graph = graph::render(events, day);
                let rendered = segments::render(&graph.arranged, rules);
                let (probe, _) = rendered.progress.probe();
                (input, probe, graph.arranged.trace, rendered.traces)
            });
        let leader = worker.index() == 0;
        // Sends `events` at `at` (worker 0 only), advances the input past `at`, and steps
        // until the segmentation has passed it too; returns how long that took. Every
        // worker makes the same calls, so the inputs advance in lockstep.
        let mut step =
            |at: Millis, mut events: Vec<Event>, traces: &mut segments::SegmentTraces| {
                let started = Instant::now();
                input.advance_to(at);
                if leader {
                    input.send_batch(&mut events);
                }
                input.advance_to(at + TICK);
                while probe.less_than(&(at + TICK)) {
                    worker.step_or_park(Some(Duration::from_millis(1)));
                }
                let elapsed = started.elapsed();
                // What the engine does as its frontier moves: let history before `at` go (and
                // `at` stays readable for the check).
                let frontier = Antichain::from_elem(at);
                graph_trace.set_logical_compaction(frontier.borrow());
                graph_trace.set_physical_compaction(frontier.borrow());
                traces.compact(frontier.borrow(), frontier.borrow());
                elapsed
            };

        // The graph. Built before the clock starts, by worker 0 only (the others send
        // nothing).
        let graph = if leader {
            layout.graph()
        } else {
            vec![Vec::new(); GRAPH_TICKS as usize]
        };
        let graph_records: usize = graph.iter().map(Vec::len).sum();
        let loading = Instant::now();
        for (k, events) in graph.into_iter().enumerate() {
            step(time.own_time(GRAPH + k as u64 * TICK), events, &mut traces);
        }
        let loaded = loading.elapsed();
        // What the graph came to (this worker's part), to show that it is what it claims.
        let as_of = time.own_time(GRAPH + (GRAPH_TICKS - 1) * TICK);
        let mut reader = SegmentReader::new(&mut traces, as_of);
        let list = reader.list(0, 0);
        let shape = [
            list.segments,
            list.hubs,
            reader
                .policy(PolicyFilter::default(), PolicyOrder::Key, usize::MAX)
                .len() as u64,
        ];

        // The changes, from a few idle ticks after the graph.
        let first = time.own_time(GRAPH) + (GRAPH_TICKS + 5) * TICK;
        let mut change_records = 0usize;
        let mut measured: Vec<(Kind, Duration)> = Vec::new();
        let mut checked = 0usize;
        for (j, tick) in schedule(layout, changes, first).into_iter().enumerate() {
            let at = first + j as u64 * TICK;
            change_records += tick.events.len();
            let events = if leader { tick.events } else { Vec::new() };
            measured.push((tick.kind, step(at, events, &mut traces)));
            // Only the worker holding the host's label finds it.
            if let Some((moved, expected)) = tick.check {
                if let Some(found) = SegmentReader::new(&mut traces, at).host(moved) {
                    assert_eq!(
                        found.segment,
                        SegmentId::Segment(expected),
                        "{} at tick {j}: {moved} is in the wrong segment",
                        tick.kind.name()
                    );
                    checked += 1;
                }
            }
        }
        drop(input);
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        (
            graph_records,
            change_records,
            loaded,
            measured,
            checked,
            shape,
        )
    })
    .expect("timely starts");
    let results: Vec<_> = guards
        .join()
        .into_iter()
        .map(|r| r.expect("worker panicked"))
        .collect();
    let elapsed = started.elapsed();
    let checked: usize = results.iter().map(|r| r.4).sum();
    let shape = |k: usize| results.iter().map(|r| r.5[k]).sum::<u64>();
    let (graph_records, change_records, loaded, measured, _, _) = &results[0];
    let expected_checks = measured
        .iter()
        .filter(|(kind, _)| *kind != Kind::Idle)
        .count();
    assert_eq!(
        checked, expected_checks,
        "every merge and split was checked once"
    );

    println!(
        "workers={workers} hosts={hosts} large_segments={LARGE_SEGMENTS}x{} chains={} hubs={HUBS}",
        layout.per_large,
        layout.chains()
    );
    println!(
        "load: graph_records={graph_records} seconds={:.2} records_per_second={:.0} -> segments={} hubs={} policy_entries={}",
        loaded.as_secs_f64(),
        *graph_records as f64 / loaded.as_secs_f64(),
        shape(0),
        shape(1),
        shape(2)
    );
    for kind in Kind::ALL {
        let mut times: Vec<Duration> = measured
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        if times.is_empty() {
            continue;
        }
        times.sort();
        println!(
            "{:>12}: n={:<4} p50={:>9.2?} p99={:>9.2?} max={:>9.2?}",
            kind.name(),
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
    println!(
        "records={} (graph {graph_records}, changes {change_records}) ticks={} checked={checked} run_seconds={:.1}",
        graph_records + change_records,
        GRAPH_TICKS as usize + measured.len(),
        elapsed.as_secs_f64()
    );
}

#[cfg(test)]
#[test]
fn the_documented_command_line_parses() {
    let args: Args = flowsight_benches::parse_line("segments");
    assert_eq!((args.workers, args.hosts, args.changes), (2, 100_000, 300));
    assert_eq!(args.large_hosts, None);
}
