//! The connection-graph view against an independent batch oracle (docs/design.md §3, §4,
//! §8).
//!
//! * The **oracle** recomputes every answer from scratch: plain Rust over the list of
//!   `(event, entry time)` pairs with `BTreeMap`s. At `as_of T` and window `W` it takes the
//!   records that had entered at a time `≤ T` and whose `ts` lies in `[T − W, T)`. It calls
//!   nothing from `flowsight_queries::graph` (only the row types are shared).
//! * The **harness** runs the real dataflow (`graph::render`) on 1, 2 and 4 timely workers,
//!   fed by a scripted source that stamps each event the way the engine's source does:
//!   at `max(own_time(ts), C)` where `C` is the source's frontier when the event is sent.
//!   After each step of the script it waits until the arrangement's frontier has reached the
//!   step's frontier, reads the view at several `as_of`s and every window, and the parts of
//!   all workers are merged with `merge_edges` / `merge_host`. Each worker's part of the
//!   rankings (heaviest edges, busiest hosts) must equal what the scan of its part gives.
//! * **Strategies** produce three stream shapes: in order, mildly out of order, and with
//!   records minutes late (some still inside the longest window, some long out of it).
//!
//! A fixed hand-computed example pins the window boundaries (`T − W ≤ ts < T`), first / last
//! seen and the late-record rule with exact numbers, and deliberately wrong oracles are
//! shown to be caught by the comparison.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

use differential_dataflow::trace::TraceReader;
use flowsight_events::{Event, Proto, Status};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::graph::ranking::RankingReader;
use flowsight_queries::graph::{
    self, merge_busiest, merge_edges, merge_host, EdgeFilter, EdgeRow, GraphReader, HostAnswer,
    HostSummary,
};
use proptest::prelude::*;
use timely::dataflow::operators::Probe;
use timely::progress::Antichain;
use timely::scheduling::Activator;

mod common;

use common::{
    close, deal, lag_strategy, plan_phases, raw_step, scripted_source, send_phase, Phase, RawStep,
    Script, Shape, PARK,
};

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

type Key = (IpAddr, IpAddr, u16, Proto);

/// Whether a record (with its entry time) is in window `window` at `as_of`. The real rule
/// is [`visible`]; wrong rules are used to show that the comparison catches them.
/// `start` is the window's first timestamp at `as_of` by the script's panes
/// (`floor_pane(as_of − window)`; `as_of − window` at the tick).
type Rule = fn(
    event: &Event,
    entry: Millis,
    as_of: Millis,
    window: Millis,
    start: Millis,
    tick: Millis,
) -> bool;

/// docs/design.md §3: the record had entered by `as_of`, and window `W` with pane `p` at
/// `as_of T` holds exactly the records with `floor_p(T − W) ≤ ts < T` (`T − W ≤ ts < T`
/// at the tick).
fn visible(
    event: &Event,
    entry: Millis,
    as_of: Millis,
    _window: Millis,
    start: Millis,
    _tick: Millis,
) -> bool {
    entry <= as_of && event.ts < as_of && event.ts >= start
}

/// The first and last seen times a record at `ts` shows at `as_of`. The real rule is
/// [`Script::shown_span`]; a wrong one shows the pane tests are not vacuous.
type SpanRule = fn(script: &Script, ts: Millis, as_of: Millis) -> (Millis, Millis);

#[derive(Clone, Copy)]
struct Oracle {
    rule: Rule,
    span: SpanRule,
}

/// The oracle's view of one host: its out and in edges, heaviest first.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OracleHost {
    out_edges: Vec<EdgeRow>,
    in_edges: Vec<EdgeRow>,
}

const ORACLE: Oracle = Oracle {
    rule: visible,
    span: |script, ts, as_of| script.shown_span(ts, as_of),
};

/// The oracle's own notion of "heaviest first": count, then total bytes, descending, then
/// by key ascending.
fn oracle_sort(rows: &mut [EdgeRow]) {
    rows.sort_by_key(|r| {
        (
            Reverse(r.count),
            Reverse(r.bytes_out + r.bytes_in),
            (r.src_ip, r.dst_ip, r.dst_port, r.proto),
        )
    });
}

impl Oracle {
    /// The records in window `window` at `as_of`, each with the first and last seen times
    /// it shows then ([`Script::shown_span`]).
    fn records<'a>(
        &self,
        entries: &'a [(Event, Millis)],
        script: &'a Script,
        as_of: Millis,
        window: Millis,
    ) -> impl Iterator<Item = (&'a Event, Millis, Millis)> + 'a {
        let (rule, span) = (self.rule, self.span);
        let start = script.window_start(window, as_of);
        let tick = script.tick;
        entries
            .iter()
            .filter(move |(e, entry)| rule(e, *entry, as_of, window, start, tick))
            .map(move |(e, _)| {
                let (first, last) = span(script, e.ts, as_of);
                (e, first, last)
            })
    }

    /// All edges at (`as_of`, `window`), keyed.
    fn edges(
        &self,
        entries: &[(Event, Millis)],
        script: &Script,
        as_of: Millis,
        window: Millis,
    ) -> BTreeMap<Key, EdgeRow> {
        let mut rows: BTreeMap<Key, EdgeRow> = BTreeMap::new();
        for (e, first, last) in self.records(entries, script, as_of, window) {
            let row = rows
                .entry((e.src_ip, e.dst_ip, e.dst_port, e.proto))
                .or_insert_with(|| EdgeRow {
                    src_ip: e.src_ip,
                    dst_ip: e.dst_ip,
                    dst_port: e.dst_port,
                    proto: e.proto,
                    count: 0,
                    bytes_out: 0,
                    bytes_in: 0,
                    packets: 0,
                    failed: 0,
                    first_seen: first,
                    last_seen: last,
                });
            row.count += 1;
            row.bytes_out += e.bytes_out;
            row.bytes_in += e.bytes_in;
            row.packets += e.packets;
            row.failed += u64::from(e.status != Status::Established);
            row.first_seen = row.first_seen.min(first);
            row.last_seen = row.last_seen.max(last);
        }
        rows
    }

    /// The edges matching a filter, heaviest first.
    fn filtered(
        edges: &BTreeMap<Key, EdgeRow>,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
    ) -> Vec<EdgeRow> {
        let mut rows: Vec<EdgeRow> = edges
            .values()
            .filter(|r| src.is_none_or(|s| s == r.src_ip) && dst.is_none_or(|d| d == r.dst_ip))
            .cloned()
            .collect();
        oracle_sort(&mut rows);
        rows
    }

    fn host(edges: &BTreeMap<Key, EdgeRow>, ip: IpAddr) -> OracleHost {
        OracleHost {
            out_edges: Self::filtered(edges, Some(ip), None),
            in_edges: Self::filtered(edges, None, Some(ip)),
        }
    }

    /// A host's aggregates straight from the records (not from the edge rows).
    fn host_summary(
        &self,
        entries: &[(Event, Millis)],
        script: &Script,
        as_of: Millis,
        window: Millis,
        ip: IpAddr,
    ) -> HostSummary {
        let mut s = HostSummary {
            ip,
            out_peers: 0,
            in_peers: 0,
            connections_out: 0,
            connections_in: 0,
            bytes_sent: 0,
            bytes_received: 0,
            failed_out: 0,
            failed_in: 0,
            first_seen: None,
            last_seen: None,
        };
        let mut out_peers = BTreeSet::new();
        let mut in_peers = BTreeSet::new();
        for (e, first, last) in self.records(entries, script, as_of, window) {
            let failed = u64::from(e.status != Status::Established);
            let touches = e.src_ip == ip || e.dst_ip == ip;
            if e.src_ip == ip {
                out_peers.insert(e.dst_ip);
                s.connections_out += 1;
                s.bytes_sent += e.bytes_out;
                s.bytes_received += e.bytes_in;
                s.failed_out += failed;
            }
            if e.dst_ip == ip {
                in_peers.insert(e.src_ip);
                s.connections_in += 1;
                s.bytes_sent += e.bytes_in;
                s.bytes_received += e.bytes_out;
                s.failed_in += failed;
            }
            if touches {
                s.first_seen = Some(s.first_seen.map_or(first, |f| f.min(first)));
                s.last_seen = Some(s.last_seen.map_or(last, |l| l.max(last)));
            }
        }
        s.out_peers = out_peers.len() as u64;
        s.in_peers = in_peers.len() as u64;
        s
    }

    /// Every host of the window's records, each summed straight from the records, busiest
    /// first: most connections, then most bytes, then by address.
    fn busiest(
        &self,
        entries: &[(Event, Millis)],
        script: &Script,
        as_of: Millis,
        window: Millis,
    ) -> Vec<HostSummary> {
        let ips: BTreeSet<IpAddr> = self
            .records(entries, script, as_of, window)
            .flat_map(|(e, _, _)| [e.src_ip, e.dst_ip])
            .collect();
        let mut hosts: Vec<HostSummary> = ips
            .into_iter()
            .map(|ip| self.host_summary(entries, script, as_of, window, ip))
            .collect();
        hosts.sort_by_key(|h| {
            (
                Reverse(h.connections_out + h.connections_in),
                Reverse(h.bytes_sent + h.bytes_received),
                h.ip,
            )
        });
        hosts
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real dataflow on 1, 2 and 4 workers
// ---------------------------------------------------------------------------------------------

/// How many edges the "top k" read asks for.
const TOP: usize = 3;

/// One read of one worker at (phase, as_of, window).
#[derive(Clone, Debug)]
struct Read {
    phase: usize,
    as_of: Millis,
    window: Millis,
    all: Vec<EdgeRow>,
    top: Vec<EdgeRow>,
    hosts: Vec<HostAnswer>,
    /// The busiest hosts: all of them, and the top [`TOP`].
    busiest_all: Vec<HostSummary>,
    busiest_top: Vec<HostSummary>,
    /// Edges filtered by `src = host`, by `dst = host`, and by `src = host, dst = next
    /// host`, for one of the script's hosts, `hosts[filtered_host]`, a different one at
    /// each read.
    filtered_host: usize,
    by_src: Vec<EdgeRow>,
    by_dst: Vec<EdgeRow>,
    by_pair: Vec<EdgeRow>,
    /// The same heaviest edges and busiest hosts, read from the worker's rankings.
    ranked: Ranked,
}

/// A worker's reads of its rankings.
#[derive(Clone, Debug)]
struct Ranked {
    all: Vec<EdgeRow>,
    top: Vec<EdgeRow>,
    busiest_all: Vec<HostSummary>,
    busiest_top: Vec<HostSummary>,
}

/// Reads merged across workers.
#[derive(Clone, Debug)]
struct Merged {
    phase: usize,
    as_of: Millis,
    window: Millis,
    all: Vec<EdgeRow>,
    top: Vec<EdgeRow>,
    hosts: Vec<HostAnswer>,
    /// The busiest hosts: all of them, and the top [`TOP`].
    busiest_all: Vec<HostSummary>,
    busiest_top: Vec<HostSummary>,
    /// Edges filtered by `src = host`, by `dst = host`, and by `src = host, dst = next
    /// host`, for one of the script's hosts, `hosts[filtered_host]`, a different one at
    /// each read.
    filtered_host: usize,
    by_src: Vec<EdgeRow>,
    by_dst: Vec<EdgeRow>,
    by_pair: Vec<EdgeRow>,
}

fn pair_of(hosts: &[IpAddr], i: usize) -> (IpAddr, IpAddr) {
    (hosts[i], hosts[(i + 1) % hosts.len()])
}

/// Runs `script` on `workers` timely workers and returns the merged reads in plan order.
fn run_dataflow(script: &Script, workers: usize) -> Vec<Merged> {
    script.validate();
    let shared = std::sync::Arc::new(script.clone());
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let script = &*shared;
        let time = script.time();
        let index = worker.index();
        let peers = worker.peers();
        let commands = Rc::new(RefCell::new(VecDeque::new()));
        let activator = Rc::new(RefCell::new(None::<Activator>));

        let (probe, mut trace, rank_probe, mut rankings) =
            worker.dataflow::<Millis, _, _>(|scope| {
                let events =
                    scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
                // The rankings apply a time's updates and read the graph in slices of one
                // or three (resumed where they stopped) or all at once.
                let scan_values = match workers {
                    2 => 1,
                    4 => 3,
                    _ => usize::MAX,
                };
                let rendered = graph::render(events, script.windows().schedule().clone());
                let rankings = graph::ranking::render(&rendered, scan_values);
                let (probe, _) = rendered.arranged.stream.probe();
                let (rank_probe, _) = rankings.progress.probe();
                (probe, rendered.arranged.trace, rank_probe, rankings.traces)
            });

        let mut reads = Vec::new();
        let mut global = 0usize;
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);

            // Step until the arrangement (its stream and its trace) has reached the frontier.
            let target = phase.advance_to;
            let mut upper = Antichain::new();
            loop {
                trace.read_upper(&mut upper);
                if !probe.less_than(&target)
                    && !upper.less_than(&target)
                    && !rank_probe.less_than(&target)
                {
                    break;
                }
                // Park rather than spin: 4 workers share 2 cores, and a parked worker is
                // woken by the messages of the others.
                worker.step_or_park(Some(PARK));
            }

            for &as_of in &phase.reads {
                for &window in &script.windows {
                    let start = script.window_start(window, as_of);
                    let mut reader = GraphReader::new(&mut trace, as_of, start);
                    let all = reader.edges(EdgeFilter::default(), usize::MAX);
                    let top = reader.edges(EdgeFilter::default(), TOP);
                    let hosts = script
                        .hosts
                        .iter()
                        .map(|&ip| reader.host(ip, usize::MAX))
                        .collect();
                    let busiest_all = reader.busiest_hosts(usize::MAX);
                    let busiest_top = reader.busiest_hosts(TOP);
                    // The rankings, maintained as records enter and windows slide, must give
                    // this worker exactly what a scan of its part of the graph gives
                    // (compared once every worker has finished: a worker that panicked here
                    // would leave the others waiting for it).
                    let mut ranked = RankingReader::new(&mut rankings, as_of);
                    let ranked = Ranked {
                        all: ranked.heaviest_edges(window, usize::MAX),
                        top: ranked.heaviest_edges(window, TOP),
                        busiest_all: ranked.busiest_hosts(window, usize::MAX),
                        busiest_top: ranked.busiest_hosts(window, TOP),
                    };
                    let filtered_host = reads.len() % script.hosts.len();
                    let (src, dst) = pair_of(&script.hosts, filtered_host);
                    let by_src = reader.edges(
                        EdgeFilter {
                            src: Some(src),
                            dst: None,
                        },
                        usize::MAX,
                    );
                    let by_dst = reader.edges(
                        EdgeFilter {
                            src: None,
                            dst: Some(src),
                        },
                        usize::MAX,
                    );
                    let by_pair = reader.edges(
                        EdgeFilter {
                            src: Some(src),
                            dst: Some(dst),
                        },
                        usize::MAX,
                    );
                    reads.push(Read {
                        phase: phase_index,
                        as_of,
                        window,
                        all,
                        top,
                        hosts,
                        busiest_all,
                        busiest_top,
                        filtered_host,
                        by_src,
                        by_dst,
                        by_pair,
                        ranked,
                    });
                }
            }
        }

        // Let the dataflow finish so that the worker can shut down.
        close(&commands, &activator);
        while !probe.done() {
            worker.step_or_park(Some(PARK));
        }
        drop(trace);
        drop(rankings);
        reads
    })
    .expect("timely starts");

    let parts: Vec<Vec<Read>> = guards
        .join()
        .into_iter()
        .map(|r| r.expect("worker panicked"))
        .collect();
    let n = parts[0].len();
    assert!(
        parts.iter().all(|p| p.len() == n),
        "workers made different reads"
    );
    for (worker, part) in parts.iter().enumerate() {
        for read in part {
            let at = format!(
                "worker {worker} of {workers}, as_of {} window {}",
                read.as_of, read.window
            );
            assert_eq!(read.ranked.all, read.all, "ranked edges, {at}");
            assert_eq!(read.ranked.top, read.top, "ranked top edges, {at}");
            assert_eq!(
                read.ranked.busiest_all, read.busiest_all,
                "ranked hosts, {at}"
            );
            assert_eq!(
                read.ranked.busiest_top, read.busiest_top,
                "ranked top hosts, {at}"
            );
        }
    }
    let hosts = script.hosts.len();
    (0..n)
        .map(|i| {
            let first = &parts[0][i];
            assert!(parts.iter().all(|p| (
                p[i].phase,
                p[i].as_of,
                p[i].window,
                p[i].filtered_host
            ) == (
                first.phase,
                first.as_of,
                first.window,
                first.filtered_host
            )));
            Merged {
                phase: first.phase,
                as_of: first.as_of,
                window: first.window,
                all: merge_edges(parts.iter().map(|p| p[i].all.clone()), usize::MAX),
                top: merge_edges(parts.iter().map(|p| p[i].top.clone()), TOP),
                hosts: (0..hosts)
                    .map(|h| {
                        merge_host(script.hosts[h], parts.iter().map(|p| p[i].hosts[h].clone()))
                    })
                    .collect(),
                busiest_all: merge_busiest(
                    parts.iter().map(|p| p[i].busiest_all.clone()),
                    usize::MAX,
                ),
                busiest_top: merge_busiest(parts.iter().map(|p| p[i].busiest_top.clone()), TOP),
                filtered_host: first.filtered_host,
                by_src: merge_edges(parts.iter().map(|p| p[i].by_src.clone()), usize::MAX),
                by_dst: merge_edges(parts.iter().map(|p| p[i].by_dst.clone()), usize::MAX),
                by_pair: merge_edges(parts.iter().map(|p| p[i].by_pair.clone()), usize::MAX),
            }
        })
        .collect()
}

/// Compares the dataflow's merged reads with `oracle`; the first difference is the error.
fn compare(
    script: &Script,
    merged: &[Merged],
    oracle: Oracle,
    workers: usize,
) -> Result<(), String> {
    let entries = script.entries();
    let expected_reads: usize =
        script.phases.iter().map(|p| p.reads.len()).sum::<usize>() * script.windows.len();
    if merged.len() != expected_reads {
        return Err(format!(
            "expected {expected_reads} reads, got {}",
            merged.len()
        ));
    }
    for m in merged {
        let at = || {
            format!(
                "workers={workers} phase={} (frontier {}) as_of={} window={}",
                m.phase, script.phases[m.phase].advance_to, m.as_of, m.window
            )
        };
        let edges = oracle.edges(&entries, script, m.as_of, m.window);
        let all = Oracle::filtered(&edges, None, None);
        if m.all != all {
            return Err(format!(
                "{}: all edges differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.all,
                all
            ));
        }
        let top: Vec<EdgeRow> = all.iter().take(TOP).cloned().collect();
        if m.top != top {
            return Err(format!(
                "{}: top {TOP} differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.top,
                top
            ));
        }
        for (h, &ip) in script.hosts.iter().enumerate() {
            let host = Oracle::host(&edges, ip);
            let got = OracleHost {
                out_edges: m.hosts[h].out_edges.clone(),
                in_edges: m.hosts[h].in_edges.clone(),
            };
            if got != host {
                return Err(format!(
                    "{}: host {ip} differs\n  dataflow: {:#?}\n  oracle:   {:#?}",
                    at(),
                    got,
                    host
                ));
            }
            let summary = oracle.host_summary(&entries, script, m.as_of, m.window, ip);
            let from_edges = m.hosts[h].summary.clone();
            if from_edges != summary {
                return Err(format!(
                    "{}: host summary {ip} differs\n  dataflow: {:#?}\n  oracle:   {:#?}",
                    at(),
                    from_edges,
                    summary
                ));
            }
        }
        let busiest = oracle.busiest(&entries, script, m.as_of, m.window);
        if m.busiest_all != busiest {
            return Err(format!(
                "{}: busiest hosts differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.busiest_all,
                busiest
            ));
        }
        let busiest_top: Vec<HostSummary> = busiest.iter().take(TOP).cloned().collect();
        if m.busiest_top != busiest_top {
            return Err(format!(
                "{}: busiest {TOP} hosts differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.busiest_top,
                busiest_top
            ));
        }
        let (src, dst) = pair_of(&script.hosts, m.filtered_host);
        let by_src = Oracle::filtered(&edges, Some(src), None);
        if m.by_src != by_src {
            return Err(format!(
                "{}: edges src={src} differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.by_src,
                by_src
            ));
        }
        let by_dst = Oracle::filtered(&edges, None, Some(src));
        if m.by_dst != by_dst {
            return Err(format!(
                "{}: edges dst={src} differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.by_dst,
                by_dst
            ));
        }
        let by_pair = Oracle::filtered(&edges, Some(src), Some(dst));
        if m.by_pair != by_pair {
            return Err(format!(
                "{}: edges src={src} dst={dst} differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                at(),
                m.by_pair,
                by_pair
            ));
        }
    }
    Ok(())
}

/// Runs the script on 1, 2 and 4 workers and compares each run with the oracle.
fn check_all_workers(script: &Script) -> Result<(), String> {
    for workers in [1, 2, 4] {
        let merged = run_dataflow(script, workers);
        compare(script, &merged, ORACLE, workers)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn ip_pool() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)),
        IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
    ]
}

/// An address never used by any event, to read an empty host.
fn stranger() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))
}

const PORTS: [u16; 4] = [22, 53, 80, 443];
const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
/// Established weighted up so that `failed` is neither always 0 nor always `count`.
const STATUSES: [Status; 7] = [
    Status::Established,
    Status::Established,
    Status::Established,
    Status::Rejected,
    Status::Reset,
    Status::Failed,
    Status::Other,
];

const TICK: Millis = 1_000;
const WINDOWS: [Millis; 3] = [3_000, 10_000, 30_000];

/// (src, dst, port, proto) indices into the pools.
type EdgeIdx = (usize, usize, usize, usize);

#[derive(Clone, Debug)]
struct RawRecord {
    gap: Millis,
    lag: Millis,
    /// < 80: an edge of the case's edge pool; otherwise `random_edge`.
    edge_choice: usize,
    random_edge: EdgeIdx,
    src_port: u16,
    bytes_out: u64,
    bytes_in: u64,
    packets: u64,
    status: usize,
}

fn edge_idx() -> impl Strategy<Value = EdgeIdx> {
    (0..7usize, 0..7usize, 0..PORTS.len(), 0..PROTOS.len())
}

fn raw_record(shape: Shape) -> impl Strategy<Value = RawRecord> {
    (
        prop_oneof![3 => 0..1_500u64, 1 => Just(0u64), 1 => 1_500..5_000u64],
        lag_strategy(shape),
        0..100usize,
        edge_idx(),
        1024..1030u16,
        0..500u64,
        0..500u64,
        0..10u64,
        0..STATUSES.len(),
    )
        .prop_map(
            |(
                gap,
                lag,
                edge_choice,
                random_edge,
                src_port,
                bytes_out,
                bytes_in,
                packets,
                status,
            )| RawRecord {
                gap,
                lag,
                edge_choice,
                random_edge,
                src_port,
                bytes_out,
                bytes_in,
                packets,
                status,
            },
        )
}

/// Assembles a script: records in arrival order, cut into steps; after each step the
/// frontier follows the watermark (largest ts so far − lateness), holds, or jumps ahead.
fn build_script(
    base: Millis,
    lateness: Millis,
    edge_pool: Vec<EdgeIdx>,
    records: Vec<RawRecord>,
    steps: Vec<RawStep>,
    hosts: Vec<usize>,
) -> Script {
    let time = TimeModel::new(TICK).unwrap();
    let ips = ip_pool();
    let mut clock = base;
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            clock += r.gap;
            let (s, d, p, pr) = if r.edge_choice < 80 {
                edge_pool[r.edge_choice % edge_pool.len()]
            } else {
                r.random_edge
            };
            Event {
                ts: clock.saturating_sub(r.lag),
                src_ip: ips[s],
                dst_ip: ips[d],
                src_port: r.src_port,
                dst_port: PORTS[p],
                proto: PROTOS[pr],
                bytes_out: r.bytes_out,
                bytes_in: r.bytes_in,
                packets: r.packets,
                duration_ms: None,
                status: STATUSES[r.status],
            }
        })
        .collect();

    let phases = plan_phases(time, &WINDOWS, lateness, &events, &steps, 30);

    let mut host_ips: Vec<IpAddr> = hosts.into_iter().map(|h| ips[h]).collect();
    host_ips.sort();
    host_ips.dedup();
    host_ips.push(stranger());
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases,
        hosts: host_ips,
    }
}

fn script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (
        prop_oneof![
            Just(0u64),
            0..20_000u64,
            Just(1_700_000_000_000u64),
            1_700_000_000_000..1_700_000_020_000u64
        ],
        prop_oneof![Just(0u64), Just(1_000u64), Just(2_500u64), Just(5_000u64)],
        prop::collection::vec(edge_idx(), 1..6),
        prop::collection::vec(raw_record(shape), 1..40),
        prop::collection::vec(raw_step(), 1..6),
        prop::collection::vec(0..7usize, 1..4),
    )
        .prop_map(|(base, lateness, edge_pool, records, steps, hosts)| {
            build_script(base, lateness, edge_pool, records, steps, hosts)
        })
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number (for a deeper
/// run: `PROPTEST_CASES=500 cargo test -p flowsight-queries --test graph_oracle`).
fn config(cases: u32) -> ProptestConfig {
    common::config(cases, None)
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn graph_matches_oracle_in_order(script in script_strategy(Shape::InOrder)) {
        check_all_workers(&script).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn graph_matches_oracle_out_of_order(script in script_strategy(Shape::Jittered)) {
        check_all_workers(&script).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn graph_matches_oracle_with_very_late_records(script in script_strategy(Shape::VeryLate)) {
        check_all_workers(&script).map_err(TestCaseError::fail)?;
    }
}

/// Panes for the 3 s, 10 s and 30 s windows, each valid (nested, each window at least the
/// shorter one plus its pane): at the tick, and three ways of coarsening.
const PANES: [[Millis; 3]; 4] = [
    [1_000, 1_000, 1_000],
    [1_000, 2_000, 10_000],
    [3_000, 3_000, 6_000],
    [2_000, 4_000, 12_000],
];

/// A script of `shape` whose windows are kept in one of [`PANES`].
fn paned_script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (script_strategy(shape), 0..PANES.len()).prop_map(|(mut script, panes)| {
        script.panes = PANES[panes].to_vec();
        script
    })
}

proptest! {
    #![proptest_config(config(16))]

    /// With panes: every window starts at a pane boundary, and first / last seen times
    /// show a record's pane once it has moved to one.
    #[test]
    fn graph_matches_oracle_with_panes(script in paned_script_strategy(Shape::Jittered)) {
        check_all_workers(&script).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn graph_matches_oracle_with_panes_and_very_late_records(
        script in paned_script_strategy(Shape::VeryLate)
    ) {
        check_all_workers(&script).map_err(TestCaseError::fail)?;
    }
}

/// The pane tests are not vacuous: over a few generated scripts with coarse panes, an
/// oracle whose windows start at `as_of − W` (not floored to the pane) is caught, and so is
/// one that ignores the pane a record has moved to (exact first / last seen).
#[test]
fn wrong_pane_oracles_are_caught_on_generated_scripts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    fn unfloored(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        _tick: Millis,
    ) -> bool {
        entry <= as_of && e.ts < as_of && e.ts + window >= as_of
    }
    let (mut start_caught, mut span_caught) = (0, 0);
    let mut runner = TestRunner::deterministic();
    let strategy = script_strategy(Shape::Jittered);
    for i in 0..6 {
        let mut script = strategy.new_tree(&mut runner).unwrap().current();
        script.panes = PANES[1 + i % 3].to_vec();
        let merged = run_dataflow(&script, 1);
        compare(&script, &merged, ORACLE, 1).unwrap();
        if compare(
            &script,
            &merged,
            Oracle {
                rule: unfloored,
                ..ORACLE
            },
            1,
        )
        .is_err()
        {
            start_caught += 1;
        }
        let exact = Oracle {
            span: |_, ts, _| (ts, ts),
            ..ORACLE
        };
        if compare(&script, &merged, exact, 1).is_err() {
            span_caught += 1;
        }
    }
    assert!(
        start_caught > 0,
        "an unfloored window start was never caught"
    );
    assert!(
        span_caught > 0,
        "exact first / last seen times were never caught"
    );
}

// ---------------------------------------------------------------------------------------------
// A hand-computed example: exact numbers at the window boundaries
// ---------------------------------------------------------------------------------------------

fn a() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}
fn b() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
}
fn c() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3))
}

#[allow(clippy::too_many_arguments)]
fn ev(
    ts: Millis,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    proto: Proto,
    bytes_out: u64,
    bytes_in: u64,
    packets: u64,
    status: Status,
) -> Event {
    Event {
        ts,
        src_ip: src,
        dst_ip: dst,
        src_port: 40_000,
        dst_port,
        proto,
        bytes_out,
        bytes_in,
        packets,
        duration_ms: None,
        status,
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    proto: Proto,
    count: u64,
    bytes_out: u64,
    bytes_in: u64,
    packets: u64,
    failed: u64,
    first_seen: Millis,
    last_seen: Millis,
) -> EdgeRow {
    EdgeRow {
        src_ip: src,
        dst_ip: dst,
        dst_port,
        proto,
        count,
        bytes_out,
        bytes_in,
        packets,
        failed,
        first_seen,
        last_seen,
    }
}

/// tick 1 s, windows 3 s and 10 s.
///
/// * phase 0 sends, in order: A→B:80/tcp at 999, 1500, 2999 (rejected), 3000 and C→A:22/tcp
///   at 4200 (failed); the frontier moves to 6000.
/// * phase 1 sends two late records at frontier 6000: A→B:80/tcp at 2500 (reset; own time
///   3000) and B→C:443/udp at 500 (own time 1000); both enter at 6000 and are still inside
///   the 10 s window then (they leave it at 13000 and 11000). The frontier moves to 8000.
/// * phase 2 only moves the frontier to 15000.
/// * phase 3 sends A→B:80/tcp at 900 at frontier 15000: it would have left the 10 s window
///   at 11000, so it must never appear; the frontier moves to 20000.
fn hand_script() -> Script {
    let (a, b, c) = (a(), b(), c());
    let tcp = Proto::Tcp;
    use Status::*;
    Script {
        tick: 1_000,
        windows: vec![3_000, 10_000],
        panes: Vec::new(),
        phases: vec![
            Phase {
                events: vec![
                    ev(999, a, b, 80, tcp, 100, 200, 2, Established),
                    ev(1_500, a, b, 80, tcp, 10, 20, 3, Established),
                    ev(2_999, a, b, 80, tcp, 5, 0, 1, Rejected),
                    ev(3_000, a, b, 80, tcp, 1, 1, 1, Established),
                    ev(4_200, c, a, 22, tcp, 7, 8, 4, Failed),
                ],
                advance_to: 6_000,
                reads: vec![3_000, 4_000, 5_000],
            },
            Phase {
                events: vec![
                    ev(2_500, a, b, 80, tcp, 50, 60, 5, Reset),
                    ev(500, b, c, 443, Proto::Udp, 1, 1, 1, Established),
                ],
                advance_to: 8_000,
                reads: vec![5_000, 6_000, 7_000],
            },
            Phase {
                events: vec![],
                advance_to: 15_000,
                reads: vec![10_000, 11_000, 12_000, 13_000, 14_000],
            },
            Phase {
                events: vec![ev(900, a, b, 80, tcp, 9, 9, 9, Established)],
                advance_to: 20_000,
                reads: vec![15_000, 19_000],
            },
        ],
        hosts: vec![a, b, c],
    }
}

/// The hand-computed edges of [`hand_script`] at (as_of, window), heaviest first.
fn hand_expected(as_of: Millis, window: Millis) -> Vec<EdgeRow> {
    let (a, b, c) = (a(), b(), c());
    let tcp = Proto::Tcp;
    let udp = Proto::Udp;
    let ca = row(c, a, 22, tcp, 1, 7, 8, 4, 1, 4_200, 4_200);
    let bc = row(b, c, 443, udp, 1, 1, 1, 1, 0, 500, 500);
    match (as_of, window) {
        // [0, 3000): 999, 1500, 2999 — 3000 is not yet in (ts < T).
        (3_000, 3_000) => vec![row(a, b, 80, tcp, 3, 115, 220, 6, 1, 999, 2_999)],
        (3_000, 10_000) => vec![row(a, b, 80, tcp, 3, 115, 220, 6, 1, 999, 2_999)],
        // [1000, 4000): 999 has left (ts ≥ T − W), 3000 is in.
        (4_000, 3_000) => vec![row(a, b, 80, tcp, 3, 16, 21, 5, 1, 1_500, 3_000)],
        (4_000, 10_000) => vec![row(a, b, 80, tcp, 4, 116, 221, 7, 1, 999, 3_000)],
        // [2000, 5000): 2999, 3000 and C→A at 4200. The late 2500 has not entered yet.
        (5_000, 3_000) => vec![row(a, b, 80, tcp, 2, 6, 1, 2, 1, 2_999, 3_000), ca.clone()],
        (5_000, 10_000) => vec![
            row(a, b, 80, tcp, 4, 116, 221, 7, 1, 999, 3_000),
            ca.clone(),
        ],
        // [3000, 6000): 3000 and 4200; the late 2500 entered at 6000 but is out of 3 s.
        (6_000, 3_000) => vec![ca.clone(), row(a, b, 80, tcp, 1, 1, 1, 1, 0, 3_000, 3_000)],
        // [0, 6000): everything sent so far, the late records included from 6000 on.
        (6_000, 10_000) => vec![
            row(a, b, 80, tcp, 5, 166, 281, 12, 2, 999, 3_000),
            ca.clone(),
            bc.clone(),
        ],
        // [4000, 7000): only C→A.
        (7_000, 3_000) => vec![ca.clone()],
        (7_000, 10_000) => vec![
            row(a, b, 80, tcp, 5, 166, 281, 12, 2, 999, 3_000),
            ca.clone(),
            bc.clone(),
        ],
        // [0, 10000): same.
        (10_000, 10_000) => vec![
            row(a, b, 80, tcp, 5, 166, 281, 12, 2, 999, 3_000),
            ca.clone(),
            bc.clone(),
        ],
        // [1000, 11000): 999 and the late 500 have left.
        (11_000, 10_000) => vec![
            row(a, b, 80, tcp, 4, 66, 81, 10, 2, 1_500, 3_000),
            ca.clone(),
        ],
        // [2000, 12000): 2500 (late), 2999, 3000.
        (12_000, 10_000) => vec![
            row(a, b, 80, tcp, 3, 56, 61, 7, 2, 2_500, 3_000),
            ca.clone(),
        ],
        // [3000, 13000): 3000 only.
        (13_000, 10_000) => vec![ca.clone(), row(a, b, 80, tcp, 1, 1, 1, 1, 0, 3_000, 3_000)],
        // [4000, 14000): C→A only; [5000, 15000) and later: nothing (the record at 900 that
        // arrived at 15000 is out of every window).
        (14_000, 10_000) => vec![ca],
        (_, 3_000) if as_of >= 8_000 => vec![],
        (15_000 | 19_000, 10_000) => vec![],
        _ => panic!("no hand-computed answer for as_of {as_of}, window {window}"),
    }
}

#[test]
fn hand_example_exact_numbers_on_1_2_4_workers() {
    let script = hand_script();
    let entries = script.entries();
    // The entry times the source gives: own time, or the frontier for the late ones.
    let entry_times: Vec<Millis> = entries.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        entry_times,
        vec![1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 6_000, 15_000]
    );

    for workers in [1, 2, 4] {
        let merged = run_dataflow(&script, workers);
        assert_eq!(merged.len(), 13 * 2);
        for m in &merged {
            let expected = hand_expected(m.as_of, m.window);
            assert_eq!(
                m.all, expected,
                "workers={workers} as_of={} window={}: dataflow vs hand-computed",
                m.as_of, m.window
            );
            // The oracle agrees with the hand computation too.
            let oracle = Oracle::filtered(
                &ORACLE.edges(&entries, &script, m.as_of, m.window),
                None,
                None,
            );
            assert_eq!(
                oracle, expected,
                "oracle vs hand-computed at as_of={} window={}",
                m.as_of, m.window
            );
        }
        // Host view of A at as_of 6000, 10 s window: out A→B, in C→A.
        let m = merged
            .iter()
            .find(|m| (m.as_of, m.window) == (6_000, 10_000))
            .unwrap();
        let host_a = &m.hosts[0];
        assert_eq!(
            host_a.out_edges,
            vec![row(
                a(),
                b(),
                80,
                Proto::Tcp,
                5,
                166,
                281,
                12,
                2,
                999,
                3_000
            )]
        );
        assert_eq!(
            host_a.in_edges,
            vec![row(c(), a(), 22, Proto::Tcp, 1, 7, 8, 4, 1, 4_200, 4_200)]
        );
        let summary = host_a.summary.clone();
        assert_eq!(
            summary,
            HostSummary {
                ip: a(),
                out_peers: 1,
                in_peers: 1,
                connections_out: 5,
                connections_in: 1,
                bytes_sent: 166 + 8,
                bytes_received: 281 + 7,
                failed_out: 2,
                failed_in: 1,
                first_seen: Some(999),
                last_seen: Some(4_200),
            }
        );
        // The busiest hosts there: A and B tie on 6 connections, and A has moved more
        // bytes (174 + 288 against 282 + 167); C has 2.
        let order: Vec<IpAddr> = m.busiest_all.iter().map(|h| h.ip).collect();
        assert_eq!(order, vec![a(), b(), c()]);
        assert_eq!(m.busiest_all[0], summary);
        assert_eq!(
            m.busiest_all[1],
            HostSummary {
                ip: b(),
                out_peers: 1,
                in_peers: 1,
                connections_out: 1,
                connections_in: 5,
                bytes_sent: 281 + 1,
                bytes_received: 166 + 1,
                failed_out: 0,
                failed_in: 2,
                first_seen: Some(500),
                last_seen: Some(3_000),
            }
        );
        assert_eq!(m.busiest_top, m.busiest_all, "three hosts, top {TOP}");
        compare(&script, &merged, ORACLE, workers).unwrap();
    }
}

/// Late records right at the edge of the retention: entering at frontier 20000 with a 10 s
/// longest window, a record at 10000 (own time 11000, leaves at 21000) is still in the 10 s
/// window at as_of 20000, and one at 9999 (own time 10000, leaves at 20000) never is.
#[test]
fn late_records_at_the_retention_edge() {
    let (a, b, c) = (a(), b(), c());
    let tcp = Proto::Tcp;
    let script = Script {
        tick: 1_000,
        windows: vec![3_000, 10_000],
        panes: Vec::new(),
        phases: vec![
            Phase {
                events: vec![ev(10_500, a, b, 80, tcp, 1, 2, 3, Status::Established)],
                advance_to: 20_000,
                reads: vec![11_000, 19_000],
            },
            Phase {
                events: vec![
                    ev(10_000, a, c, 80, tcp, 4, 5, 6, Status::Failed),
                    ev(9_999, a, c, 80, tcp, 40, 50, 60, Status::Established),
                ],
                advance_to: 22_000,
                reads: vec![19_000, 20_000, 21_000],
            },
        ],
        hosts: vec![a, c],
    };
    let ab = row(a, b, 80, tcp, 1, 1, 2, 3, 0, 10_500, 10_500);
    let ac = row(a, c, 80, tcp, 1, 4, 5, 6, 1, 10_000, 10_000);
    for workers in [1, 2, 4] {
        let merged = run_dataflow(&script, workers);
        for m in &merged {
            let expected = match (m.phase, m.as_of, m.window) {
                (_, 11_000 | 19_000, 10_000) => vec![ab.clone()],
                (_, 11_000, 3_000) => vec![ab.clone()],
                (1, 20_000, 10_000) => vec![ac.clone(), ab.clone()],
                _ => vec![],
            };
            assert_eq!(
                m.all, expected,
                "workers={workers} as_of={} window={}",
                m.as_of, m.window
            );
        }
        compare(&script, &merged, ORACLE, workers).unwrap();
    }
}

/// Oracles with plausible mistakes, to show that the comparison is not vacuous.
fn wrong_rules() -> [(&'static str, Rule); 6] {
    fn start_exclusive(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        _tick: Millis,
    ) -> bool {
        entry <= as_of && e.ts < as_of && e.ts + window > as_of
    }
    fn one_tick_shorter(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        entry <= as_of && e.ts < as_of && e.ts + window >= as_of + tick
    }
    fn one_tick_longer(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        entry <= as_of && e.ts < as_of && e.ts + window + tick >= as_of
    }
    fn late_at_own_time(
        e: &Event,
        _entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        // Ignores lateness: as if every record had entered at its own time.
        let own = (e.ts / tick) * tick + tick;
        own <= as_of && e.ts < as_of && e.ts + window >= as_of
    }
    fn leaves_from_entry(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        // A late record leaving its windows counted from its entry time rather than its ts
        // (the same as the real rule for records that are not late).
        entry <= as_of && e.ts < as_of && entry - tick + window >= as_of
    }
    fn drops_all_late(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        let own = (e.ts / tick) * tick + tick;
        entry == own && visible(e, entry, as_of, window, as_of.saturating_sub(window), tick)
    }
    [
        ("window start exclusive", start_exclusive),
        ("window one tick shorter", one_tick_shorter),
        ("window one tick longer", one_tick_longer),
        ("late records at their own time", late_at_own_time),
        (
            "late records leave counted from their entry",
            leaves_from_entry,
        ),
        ("late records dropped", drops_all_late),
    ]
}

/// The comparison is not vacuous: every wrong oracle disagrees with the dataflow on the
/// hand example.
#[test]
fn wrong_oracles_are_caught_on_the_hand_example() {
    let script = hand_script();
    let merged = run_dataflow(&script, 2);
    compare(&script, &merged, ORACLE, 2).unwrap();
    for (name, rule) in wrong_rules() {
        let result = compare(&script, &merged, Oracle { rule, ..ORACLE }, 2);
        assert!(result.is_err(), "the wrong oracle ({name}) was not caught");
    }
}

/// The generated scripts are sharp enough too: over a few of them (the first ones of a
/// deterministic runner), every wrong oracle is caught at least once.
#[test]
fn wrong_oracles_are_caught_on_generated_scripts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    // Two more that only touch the longest window, which the dataflow implements by
    // retraction rather than by a filter at read time.
    fn longest_one_tick_longer(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        let longer = if window == 30_000 { tick } else { 0 };
        entry <= as_of && e.ts < as_of && e.ts + window + longer >= as_of
    }
    fn longest_one_tick_shorter(
        e: &Event,
        entry: Millis,
        as_of: Millis,
        window: Millis,
        _start: Millis,
        tick: Millis,
    ) -> bool {
        let shorter = if window == 30_000 { tick } else { 0 };
        entry <= as_of && e.ts < as_of && e.ts + window >= as_of + shorter
    }
    let mut rules: Vec<(&str, Rule)> = wrong_rules().to_vec();
    rules.push(("30 s window one tick longer", longest_one_tick_longer));
    rules.push(("30 s window one tick shorter", longest_one_tick_shorter));
    let mut caught = vec![0usize; rules.len()];
    for shape in [Shape::Jittered, Shape::VeryLate] {
        let mut runner = TestRunner::deterministic();
        let strategy = script_strategy(shape);
        for _ in 0..6 {
            let script = strategy.new_tree(&mut runner).unwrap().current();
            let merged = run_dataflow(&script, 1);
            compare(&script, &merged, ORACLE, 1).unwrap();
            for (i, (_, rule)) in rules.iter().enumerate() {
                let rule = *rule;
                if compare(&script, &merged, Oracle { rule, ..ORACLE }, 1).is_err() {
                    caught[i] += 1;
                }
            }
        }
    }
    for ((name, _), n) in rules.iter().zip(&caught) {
        assert!(
            *n > 0,
            "the wrong oracle ({name}) was never caught by generated scripts"
        );
    }
}

/// A sanity check of the strategies: the late shape really produces records that are late
/// but still inside the longest window, and records late beyond every window.
#[test]
fn late_shape_produces_both_kinds_of_late_records() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = script_strategy(Shape::VeryLate);
    let (mut late_in_window, mut late_out) = (0, 0);
    for _ in 0..24 {
        let script = strategy.new_tree(&mut runner).unwrap().current();
        let time = script.time();
        for (event, entry) in script.entries() {
            let own = time.own_time(event.ts);
            if entry > own {
                if own + script.retention() > entry {
                    late_in_window += 1;
                } else {
                    late_out += 1;
                }
            }
        }
    }
    assert!(
        late_in_window > 10,
        "only {late_in_window} late records inside the window"
    );
    assert!(
        late_out > 10,
        "only {late_out} late records beyond every window"
    );
}
