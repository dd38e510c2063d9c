//! The segmentation views against an independent batch oracle (docs/segments.md).
//!
//! * The **oracle** recomputes every answer from scratch at each `as_of`: plain Rust over
//!   the list of `(event, entry time)` pairs, pairs and peers in `BTreeMap`s, hubs by
//!   counting, and segments with a hand-written union-find over the strong edges (union
//!   towards the smaller root, so each root is its set's id). It shares only plain data
//!   types with the code under test (`SegmentId`, rows, `Evidence`, `Anomaly`).
//! * The **harness** runs the real dataflow (`graph::render` then `segments::render`) on 1,
//!   2 and 4 timely workers, fed by the scripted source of `common`; after each phase it
//!   steps until the segmentation arrangements have passed the phase's frontier, reads
//!   every query at several `as_of`s — the listing (whole and truncated), every possible
//!   segment and hub id, every host, the policy whole, truncated and filtered both ways,
//!   the violations of every window — and merges the workers' parts as the engine does.
//! * **Strategies** produce in-order, jittered and very late streams over a small pool of
//!   IPv4 and IPv6 hosts with self-connections, low hub degrees and edge thresholds, so
//!   that merges, splits, hubs appearing and disappearing, and violations withdrawn by
//!   late records all happen (a test over fixed seeds checks that they do).
//!
//! Hand-written scripts pin the document's rules, deliberately wrong oracles are shown to
//! be caught, and a graph of 100,000 hosts is checked whole.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use differential_dataflow::trace::TraceReader;
use flowscope_events::{Event, Proto, Status};
use flowscope_operators::anomaly::{Anomaly, AnomalyKind, Evidence};
use flowscope_operators::segments::{SegmentId, SegmentRules};
use flowscope_operators::{Millis, TimeModel};
use flowscope_queries::graph;
use flowscope_queries::risk::merge_anomalies;
use flowscope_queries::segments::{
    self, merge_lists, merge_policy, HostSegment, HubRow, Label, MemberRow, PolicyFilter,
    PolicyRow, PortRow, SegmentDetail, SegmentEdge, SegmentList, SegmentReader, SegmentRow,
    TrafficRow,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use timely::dataflow::operators::Probe;
use timely::progress::Antichain;
use timely::scheduling::Activator;

mod common;

use common::{
    close, deal, lag_strategy, plan_phases, raw_step, scripted_source, send_phase, Phase, RawStep,
    Script, Shape, PARK,
};

/// Segments listed in the truncated listing, and members shown per segment.
const SMALL: usize = 2;

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// A deliberate mistake, to show that the comparison catches one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mistake {
    None,
    /// Hubs need one more peer than configured.
    HubOffByOne,
    /// Segments are named after their largest member.
    LargestId,
}

/// The whole segmentation at one `as_of`.
#[derive(Debug, Default)]
struct Truth {
    labels: BTreeMap<IpAddr, Label>,
    /// Each segment's (and hub's) members with their connections.
    members: BTreeMap<Label, BTreeMap<IpAddr, u64>>,
    traffic: BTreeMap<Label, TrafficRow>,
    hubs: BTreeMap<IpAddr, u64>,
    policy: BTreeMap<(Label, Label, u16, Proto), u64>,
    /// Each policy entry's first record: (ts, src, dst).
    first: BTreeMap<(Label, Label, u16, Proto), (Millis, IpAddr, IpAddr)>,
}

struct Oracle<'a> {
    entries: Vec<(Event, Millis)>,
    script: &'a Script,
    rules: SegmentRules,
    mistake: Mistake,
}

fn find(parent: &BTreeMap<IpAddr, IpAddr>, mut host: IpAddr) -> IpAddr {
    while parent[&host] != host {
        host = parent[&host];
    }
    host
}

impl<'a> Oracle<'a> {
    fn new(script: &'a Script, rules: SegmentRules, mistake: Mistake) -> Self {
        Oracle {
            entries: script.entries(),
            script,
            rules,
            mistake,
        }
    }

    /// The records of the segmentation window at `as_of`: entered by then, `ts` within the
    /// longest window.
    fn records(&self, as_of: Millis) -> Vec<&Event> {
        let from = as_of.saturating_sub(self.script.retention());
        self.entries
            .iter()
            .filter(|(e, entered)| *entered <= as_of && e.ts >= from && e.ts < as_of)
            .map(|(e, _)| e)
            .collect()
    }

    fn truth(&self, as_of: Millis) -> Truth {
        let records = self.records(as_of);
        let mut hosts = BTreeSet::new();
        let mut weight: BTreeMap<(IpAddr, IpAddr), u64> = BTreeMap::new();
        let mut peers: BTreeMap<IpAddr, BTreeSet<IpAddr>> = BTreeMap::new();
        for e in &records {
            hosts.insert(e.src_ip);
            hosts.insert(e.dst_ip);
            if e.src_ip != e.dst_ip {
                *weight
                    .entry((e.src_ip.min(e.dst_ip), e.src_ip.max(e.dst_ip)))
                    .or_default() += 1;
                peers.entry(e.src_ip).or_default().insert(e.dst_ip);
                peers.entry(e.dst_ip).or_default().insert(e.src_ip);
            }
        }
        let needed = match self.mistake {
            Mistake::HubOffByOne => self.rules.hub_degree + 1,
            _ => self.rules.hub_degree,
        };
        let hubs: BTreeMap<IpAddr, u64> = peers
            .iter()
            .filter(|(_, p)| p.len() as u64 >= needed)
            .map(|(h, p)| (*h, p.len() as u64))
            .collect();

        let mut parent: BTreeMap<IpAddr, IpAddr> = hosts
            .iter()
            .filter(|h| !hubs.contains_key(h))
            .map(|h| (*h, *h))
            .collect();
        for (&(a, b), &w) in &weight {
            if w >= self.rules.min_edge_connections
                && parent.contains_key(&a)
                && parent.contains_key(&b)
            {
                let (ra, rb) = (find(&parent, a), find(&parent, b));
                if ra != rb {
                    let (small, large) = (ra.min(rb), ra.max(rb));
                    match self.mistake {
                        Mistake::LargestId => parent.insert(small, large),
                        _ => parent.insert(large, small),
                    };
                }
            }
        }
        let mut truth = Truth {
            hubs: hubs.clone(),
            ..Truth::default()
        };
        for &h in &hosts {
            let label = if hubs.contains_key(&h) {
                SegmentId::Hub(h)
            } else {
                SegmentId::Segment(find(&parent, h))
            };
            truth.labels.insert(h, label);
        }
        for e in &records {
            let (from, to) = (truth.labels[&e.src_ip], truth.labels[&e.dst_ip]);
            *truth
                .members
                .entry(from)
                .or_default()
                .entry(e.src_ip)
                .or_default() += 1;
            if e.src_ip != e.dst_ip {
                *truth
                    .members
                    .entry(to)
                    .or_default()
                    .entry(e.dst_ip)
                    .or_default() += 1;
            }
            if from == to {
                truth.traffic.entry(from).or_default().inside += 1;
            } else {
                truth.traffic.entry(from).or_default().out += 1;
                truth.traffic.entry(to).or_default().inbound += 1;
                let key = (from, to, e.dst_port, e.proto);
                *truth.policy.entry(key).or_default() += 1;
                let record = (e.ts, e.src_ip, e.dst_ip);
                let first = truth.first.entry(key).or_insert(record);
                *first = (*first).min(record);
            }
        }
        truth
    }

    fn segment_row(truth: &Truth, id: Label, shown: usize) -> SegmentRow {
        let members = &truth.members[&id];
        let mut busiest: Vec<MemberRow> = members
            .iter()
            .map(|(&ip, &connections)| MemberRow { ip, connections })
            .collect();
        busiest.sort_by_key(|m| (Reverse(m.connections), m.ip));
        busiest.truncate(shown);
        SegmentRow {
            id,
            size: members.len() as u64,
            members: busiest,
            traffic: truth.traffic.get(&id).copied().unwrap_or_default(),
        }
    }

    fn list(truth: &Truth, limit: usize, shown: usize) -> SegmentList {
        let segments: Vec<Label> = truth
            .members
            .keys()
            .filter(|id| matches!(id, SegmentId::Segment(_)))
            .copied()
            .collect();
        let mut rows: Vec<SegmentRow> = segments
            .iter()
            .map(|&id| Self::segment_row(truth, id, shown))
            .collect();
        rows.sort_by_key(|r| (Reverse(r.size), r.id));
        rows.truncate(limit);
        let mut hub_rows: Vec<HubRow> = truth
            .hubs
            .iter()
            .map(|(&ip, &peers)| HubRow {
                ip,
                peers,
                connections: truth.members[&SegmentId::Hub(ip)][&ip],
            })
            .collect();
        hub_rows.sort_by_key(|h| (Reverse(h.peers), h.ip));
        hub_rows.truncate(limit);
        SegmentList {
            segments: segments.len() as u64,
            hubs: truth.hubs.len() as u64,
            rows,
            hub_rows,
            hub_connections: Vec::new(),
        }
    }

    fn detail(truth: &Truth, id: Label) -> Option<SegmentDetail> {
        truth.members.get(&id)?;
        let row = Self::segment_row(truth, id, usize::MAX);
        let edges = |outbound: bool| {
            let mut by_peer: BTreeMap<Label, SegmentEdge> = BTreeMap::new();
            for (&(from, to, dst_port, proto), &count) in &truth.policy {
                let peer = match (outbound, from == id, to == id) {
                    (true, true, _) => to,
                    (false, _, true) => from,
                    _ => continue,
                };
                let edge = by_peer.entry(peer).or_insert(SegmentEdge {
                    peer,
                    connections: 0,
                    ports: Vec::new(),
                });
                edge.connections += count;
                edge.ports.push(PortRow {
                    dst_port,
                    proto,
                    count,
                });
            }
            let mut edges: Vec<SegmentEdge> = by_peer.into_values().collect();
            edges.sort_by_key(|e| (Reverse(e.connections), e.peer));
            edges
        };
        Some(SegmentDetail {
            id,
            hub: matches!(id, SegmentId::Hub(_)),
            size: row.size,
            members: row.members,
            traffic: row.traffic,
            edges_out: edges(true),
            edges_in: edges(false),
        })
    }

    fn policy(truth: &Truth, filter: PolicyFilter, limit: usize) -> Vec<PolicyRow> {
        truth
            .policy
            .iter()
            .filter(|((from, to, _, _), _)| {
                filter.from.is_none_or(|f| f == *from) && filter.to.is_none_or(|t| t == *to)
            })
            .map(|(&(from, to, dst_port, proto), &count)| PolicyRow {
                from,
                to,
                dst_port,
                proto,
                count,
            })
            .take(limit)
            .collect()
    }

    /// The first records of policy entries with `ts` in `[as_of − window, as_of)`, in the
    /// order of `/v1/anomalies`, written out again here.
    fn violations(truth: &Truth, as_of: Millis, window: Millis, limit: usize) -> Vec<Anomaly> {
        let since = as_of.saturating_sub(window);
        let mut rows: Vec<Anomaly> = truth
            .first
            .iter()
            .filter(|(_, (ts, _, _))| *ts >= since)
            .map(|(&(from, to, dst_port, proto), &(ts, src, dst))| Anomaly {
                host: src,
                kind: AnomalyKind::PolicyViolation,
                first_detected: ts,
                evidence: Evidence::PolicyViolation {
                    from,
                    to,
                    dst_ip: dst,
                    dst_port,
                    proto,
                },
            })
            .collect();
        rows.sort_by_key(|a| (Reverse(a.first_detected), a.host, a.evidence));
        rows.truncate(limit);
        rows
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real dataflow on 1, 2 and 4 workers
// ---------------------------------------------------------------------------------------------

/// Every answer read at one `as_of`.
#[derive(Clone, Debug, PartialEq)]
struct Read {
    phase: usize,
    as_of: Millis,
    list: SegmentList,
    list_small: SegmentList,
    /// For each candidate id (`Segment(h)`, then `Hub(h)`, for every host of the script).
    details: Vec<Option<SegmentDetail>>,
    hosts: Vec<Option<HostSegment>>,
    policy: Vec<PolicyRow>,
    policy_small: Vec<PolicyRow>,
    /// Filtered from and to each candidate id.
    policy_from: Vec<Vec<PolicyRow>>,
    policy_to: Vec<Vec<PolicyRow>>,
    /// Per window: all violations, and the first `SMALL`.
    violations: Vec<(Vec<Anomaly>, Vec<Anomaly>)>,
}

fn candidates(script: &Script) -> Vec<Label> {
    let mut ids: Vec<Label> = script
        .hosts
        .iter()
        .map(|&h| SegmentId::Segment(h))
        .collect();
    ids.extend(script.hosts.iter().map(|&h| SegmentId::Hub(h)));
    ids
}

fn read_worker(
    reader: &mut SegmentReader<'_>,
    script: &Script,
    phase: usize,
    as_of: Millis,
) -> Read {
    let ids = candidates(script);
    Read {
        phase,
        as_of,
        list: reader.list(usize::MAX, usize::MAX),
        list_small: reader.list(SMALL, SMALL),
        details: ids
            .iter()
            .map(|id| reader.segment(id, usize::MAX))
            .collect(),
        hosts: script.hosts.iter().map(|&ip| reader.host(ip)).collect(),
        policy: reader.policy(PolicyFilter::default(), usize::MAX),
        policy_small: reader.policy(PolicyFilter::default(), SMALL),
        policy_from: ids
            .iter()
            .map(|&id| {
                let filter = PolicyFilter {
                    from: Some(id),
                    to: None,
                };
                reader.policy(filter, usize::MAX)
            })
            .collect(),
        policy_to: ids
            .iter()
            .map(|&id| {
                let filter = PolicyFilter {
                    from: None,
                    to: Some(id),
                };
                reader.policy(filter, usize::MAX)
            })
            .collect(),
        violations: script
            .windows
            .iter()
            .map(|&w| {
                (
                    reader.violations(w, usize::MAX),
                    reader.violations(w, SMALL),
                )
            })
            .collect(),
    }
}

/// Merges the workers' parts as the engine does.
fn merge_reads(parts: &[Read]) -> Read {
    let first = &parts[0];
    let one = |pick: &dyn Fn(&Read) -> Option<SegmentDetail>| parts.iter().find_map(pick);
    let n_ids = first.details.len();
    Read {
        phase: first.phase,
        as_of: first.as_of,
        list: merge_lists(parts.iter().map(|p| p.list.clone()).collect(), usize::MAX),
        list_small: merge_lists(parts.iter().map(|p| p.list_small.clone()).collect(), SMALL),
        details: (0..n_ids)
            .map(|i| one(&|p: &Read| p.details[i].clone()))
            .collect(),
        hosts: (0..first.hosts.len())
            .map(|i| parts.iter().find_map(|p| p.hosts[i]))
            .collect(),
        policy: merge_policy(parts.iter().map(|p| p.policy.clone()).collect(), usize::MAX),
        policy_small: merge_policy(
            parts.iter().map(|p| p.policy_small.clone()).collect(),
            SMALL,
        ),
        policy_from: (0..n_ids)
            .map(|i| {
                merge_policy(
                    parts.iter().map(|p| p.policy_from[i].clone()).collect(),
                    usize::MAX,
                )
            })
            .collect(),
        policy_to: (0..n_ids)
            .map(|i| {
                merge_policy(
                    parts.iter().map(|p| p.policy_to[i].clone()).collect(),
                    usize::MAX,
                )
            })
            .collect(),
        violations: (0..first.violations.len())
            .map(|w| {
                (
                    merge_anomalies(parts.iter().map(|p| p.violations[w].0.clone()), usize::MAX),
                    merge_anomalies(parts.iter().map(|p| p.violations[w].1.clone()), SMALL),
                )
            })
            .collect(),
    }
}

/// Runs `script` on `workers` timely workers and returns the merged reads, in order.
fn run_dataflow(script: &Script, rules: SegmentRules, workers: usize) -> Vec<Read> {
    script.validate();
    let shared = std::sync::Arc::new(script.clone());
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let script = &*shared;
        let time = script.time();
        let retention = script.retention();
        let index = worker.index();
        let peers = worker.peers();
        let commands = Rc::new(RefCell::new(VecDeque::new()));
        let activator = Rc::new(RefCell::new(None::<Activator>));

        let (probe, mut traces) = worker.dataflow::<Millis, _, _>(|scope| {
            let events = scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
            let arranged = graph::render(events, time, retention);
            let rendered = segments::render(&arranged, rules);
            let (probe, _) = rendered.progress.probe();
            (probe, rendered.traces)
        });

        let mut reads = Vec::new();
        let mut global = 0usize;
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);
            let target = phase.advance_to;
            let mut upper = Antichain::new();
            loop {
                let mut complete = !probe.less_than(&target);
                macro_rules! passed {
                    ($($trace:ident),*) => {$(
                        traces.$trace.read_upper(&mut upper);
                        complete &= !upper.less_than(&target);
                    )*};
                }
                passed!(labels, members, traffic, policy_out, policy_in, hubs, violations);
                if complete {
                    break;
                }
                // Park rather than spin: 4 workers share 2 cores.
                worker.step_or_park(Some(PARK));
            }
            for &as_of in &phase.reads {
                let mut reader = SegmentReader::new(&mut traces, as_of);
                reads.push(read_worker(&mut reader, script, phase_index, as_of));
            }
        }
        close(&commands, &activator);
        while !probe.done() {
            worker.step_or_park(Some(PARK));
        }
        drop(traces);
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
    (0..n)
        .map(|i| {
            let at_i: Vec<Read> = parts.iter().map(|p| p[i].clone()).collect();
            merge_reads(&at_i)
        })
        .collect()
}

/// The oracle's answers to every query of a read.
fn oracle_read(oracle: &Oracle<'_>, phase: usize, as_of: Millis) -> Read {
    let truth = oracle.truth(as_of);
    let ids = candidates(oracle.script);
    let filtered = |from: Option<Label>, to: Option<Label>| {
        Oracle::policy(&truth, PolicyFilter { from, to }, usize::MAX)
    };
    Read {
        phase,
        as_of,
        list: Oracle::list(&truth, usize::MAX, usize::MAX),
        list_small: Oracle::list(&truth, SMALL, SMALL),
        details: ids.iter().map(|&id| Oracle::detail(&truth, id)).collect(),
        hosts: oracle
            .script
            .hosts
            .iter()
            .map(|ip| {
                truth.labels.get(ip).map(|&segment| HostSegment {
                    ip: *ip,
                    segment,
                    hub: matches!(segment, SegmentId::Hub(_)),
                })
            })
            .collect(),
        policy: Oracle::policy(&truth, PolicyFilter::default(), usize::MAX),
        policy_small: Oracle::policy(&truth, PolicyFilter::default(), SMALL),
        policy_from: ids.iter().map(|&id| filtered(Some(id), None)).collect(),
        policy_to: ids.iter().map(|&id| filtered(None, Some(id))).collect(),
        violations: oracle
            .script
            .windows
            .iter()
            .map(|&w| {
                (
                    Oracle::violations(&truth, as_of, w, usize::MAX),
                    Oracle::violations(&truth, as_of, w, SMALL),
                )
            })
            .collect(),
    }
}

/// Compares the dataflow's merged reads with the oracle; the first difference is the error.
fn compare(
    script: &Script,
    rules: SegmentRules,
    merged: &[Read],
    mistake: Mistake,
    workers: usize,
) -> Result<(), String> {
    let oracle = Oracle::new(script, rules, mistake);
    if merged.len() != script.read_count() {
        return Err(format!(
            "expected {} reads, got {}",
            script.read_count(),
            merged.len()
        ));
    }
    for got in merged {
        let expected = oracle_read(&oracle, got.phase, got.as_of);
        if *got != expected {
            let at = format!(
                "workers={workers} phase={} (frontier {}) as_of={}",
                got.phase, script.phases[got.phase].advance_to, got.as_of
            );
            // Name the first differing part, then show both.
            macro_rules! first_difference {
                ($($field:ident),*) => {$(
                    if got.$field != expected.$field {
                        return Err(format!(
                            "{at}: {} differ\n  dataflow: {:#?}\n  oracle:   {:#?}",
                            stringify!($field), got.$field, expected.$field
                        ));
                    }
                )*};
            }
            first_difference!(
                list,
                list_small,
                hosts,
                details,
                policy,
                policy_small,
                policy_from,
                policy_to,
                violations
            );
        }
    }
    Ok(())
}

/// Runs the script on 1, 2 and 4 workers and compares each run with the oracle.
fn check_all_workers(script: &Script, rules: SegmentRules) -> Result<(), String> {
    for workers in [1, 2, 4] {
        let merged = run_dataflow(script, rules, workers);
        compare(script, rules, &merged, Mistake::None, workers)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const TICK: Millis = 1_000;

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, d))
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The host pool: IPv4 hosts in numeric order that differs from their text order (10.0.0.9
/// < 10.0.0.10), and IPv6 hosts after them.
fn pool() -> Vec<IpAddr> {
    vec![
        v4(2),
        v4(9),
        v4(10),
        v4(21),
        v4(100),
        v4(3),
        v6("fd00::1"),
        v6("fd00::a"),
        v6("2001:db8::5"),
    ]
}

const PORTS: [u16; 4] = [22, 53, 443, 5432];
const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

#[derive(Clone, Debug)]
struct RawRecord {
    src: usize,
    dst: usize,
    port: usize,
    proto: usize,
    /// How many times the record repeats (consecutive, 1 ms apart): pairs become strong.
    repeat: u64,
    gap: Millis,
    lag: Millis,
}

fn raw_record(shape: Shape) -> impl Strategy<Value = RawRecord> {
    let n = pool().len();
    (
        // The first hosts talk most, to make hubs.
        prop_oneof![3 => 0..2usize, 2 => 0..n],
        0..n,
        0..PORTS.len(),
        0..PROTOS.len(),
        prop_oneof![3 => Just(1u64), 1 => 2..4u64],
        prop_oneof![4 => 0..600u64, 1 => 600..4_000u64, 1 => Just(9_000u64)],
        lag_strategy(shape),
    )
        .prop_map(|(src, dst, port, proto, repeat, gap, lag)| RawRecord {
            src,
            dst,
            port,
            proto,
            repeat,
            gap,
            lag,
        })
}

fn build_script(
    windows: Vec<Millis>,
    base: Millis,
    lateness: Millis,
    records: Vec<RawRecord>,
    steps: Vec<RawStep>,
) -> Script {
    let time = TimeModel::new(TICK).unwrap();
    let hosts = pool();
    let mut clock = base;
    let mut events = Vec::new();
    for r in &records {
        clock += r.gap;
        for k in 0..r.repeat {
            events.push(event(
                clock.saturating_sub(r.lag) + k,
                hosts[r.src],
                hosts[r.dst],
                PORTS[r.port],
                PROTOS[r.proto],
            ));
        }
    }
    let phases = plan_phases(time, &windows, lateness, &events, &steps, 16);
    let mut all = hosts;
    // Never seen: every lookup of it must come back empty.
    all.push(v4(250));
    Script {
        tick: TICK,
        windows,
        phases,
        hosts: all,
    }
}

fn script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (
        prop_oneof![
            Just(vec![3_000u64, 10_000]),
            Just(vec![2_000u64, 7_000, 12_000])
        ],
        prop_oneof![Just(0u64), 0..20_000u64, Just(1_700_000_000_000u64)],
        prop_oneof![Just(0u64), Just(1_000u64), Just(3_000u64)],
        prop::collection::vec(raw_record(shape), 1..40),
        prop::collection::vec(raw_step(), 1..6),
    )
        .prop_map(|(windows, base, lateness, records, steps)| {
            build_script(windows, base, lateness, records, steps)
        })
}

fn rules_strategy() -> impl Strategy<Value = SegmentRules> {
    (3..6u64, 1..4u64).prop_map(|(hub_degree, min_edge_connections)| SegmentRules {
        hub_degree,
        min_edge_connections,
    })
}

/// Failing cases are kept in `queries/proptest-regressions/segments_oracle.txt`.
fn config(cases: u32) -> ProptestConfig {
    common::config(cases, Some("proptest-regressions/segments_oracle.txt"))
}

/// Cases per property by default.
const CASES: u32 = 24;

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn segments_match_oracle_in_order(script in script_strategy(Shape::InOrder), rules in rules_strategy()) {
        check_all_workers(&script, rules).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn segments_match_oracle_out_of_order(script in script_strategy(Shape::Jittered), rules in rules_strategy()) {
        check_all_workers(&script, rules).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn segments_match_oracle_with_very_late_records(script in script_strategy(Shape::VeryLate), rules in rules_strategy()) {
        check_all_workers(&script, rules).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The generated scripts exercise what matters
// ---------------------------------------------------------------------------------------------

const FEATURES: [&str; 7] = [
    "a segment of several hosts",
    "a merge (a host's id falls)",
    "a split (a host's id rises while it stays clustered)",
    "a hub",
    "a hub that stops being one",
    "a violation listed",
    "a violation withdrawn while its record is still in the window",
];

fn features(script: &Script, rules: SegmentRules) -> [bool; FEATURES.len()] {
    let oracle = Oracle::new(script, rules, Mistake::None);
    let mut seen = [false; FEATURES.len()];
    let mut previous: Option<(Millis, Truth)> = None;
    let reads: BTreeSet<Millis> = script.phases.iter().flat_map(|p| p.reads.clone()).collect();
    for &t in &reads {
        let truth = oracle.truth(t);
        seen[0] |= truth.members.values().any(|m| m.len() > 1) && !truth.members.is_empty();
        seen[3] |= !truth.hubs.is_empty();
        seen[5] |= !Oracle::violations(&truth, t, script.retention(), usize::MAX).is_empty();
        if let Some((before_t, before)) = &previous {
            for (host, label) in &truth.labels {
                match (before.labels.get(host), label) {
                    (Some(SegmentId::Segment(a)), SegmentId::Segment(b)) if b < a => seen[1] = true,
                    (Some(SegmentId::Segment(a)), SegmentId::Segment(b)) if b > a => seen[2] = true,
                    (Some(SegmentId::Hub(_)), SegmentId::Segment(_)) => seen[4] = true,
                    _ => {}
                }
            }
            let window = script.retention();
            let now = Oracle::violations(&truth, t, window, usize::MAX);
            for old in Oracle::violations(before, *before_t, window, usize::MAX) {
                let still_in = old.first_detected >= t.saturating_sub(window);
                let gone = !now
                    .iter()
                    .any(|a| a.host == old.host && a.first_detected == old.first_detected);
                seen[6] |= still_in && gone;
            }
        }
        previous = Some((t, truth));
    }
    seen
}

#[test]
fn generated_scripts_exercise_merges_splits_hubs_and_violations() {
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut seen = [false; FEATURES.len()];
    for shape in [Shape::InOrder, Shape::Jittered, Shape::VeryLate] {
        let scripts = script_strategy(shape);
        let rules = rules_strategy();
        for _ in 0..40 {
            let script = scripts.new_tree(&mut runner).unwrap().current();
            let rules = rules.new_tree(&mut runner).unwrap().current();
            for (s, f) in seen.iter_mut().zip(features(&script, rules)) {
                *s |= f;
            }
        }
    }
    let missing: Vec<&str> = FEATURES
        .iter()
        .zip(seen)
        .filter(|(_, s)| !s)
        .map(|(f, _)| *f)
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

// ---------------------------------------------------------------------------------------------
// Hand-written scripts
// ---------------------------------------------------------------------------------------------

fn event(ts: Millis, src: IpAddr, dst: IpAddr, port: u16, proto: Proto) -> Event {
    Event {
        ts,
        src_ip: src,
        dst_ip: dst,
        src_port: 40_000,
        dst_port: port,
        proto,
        bytes_out: 100,
        bytes_in: 100,
        packets: 2,
        duration_ms: None,
        status: Status::Established,
    }
}

fn tcp(ts: Millis, src: IpAddr, dst: IpAddr, port: u16) -> Event {
    event(ts, src, dst, port, Proto::Tcp)
}

/// `n` records from `src` to `dst`, 1 ms apart from `ts`.
fn times(n: u64, ts: Millis, src: IpAddr, dst: IpAddr, port: u16) -> Vec<Event> {
    (0..n).map(|k| tcp(ts + k, src, dst, port)).collect()
}

fn one_phase(events: Vec<Event>, advance_to: Millis, reads: Vec<Millis>) -> Phase {
    Phase {
        events,
        advance_to,
        reads,
    }
}

fn hand_script(phases: Vec<Phase>) -> Script {
    Script {
        tick: TICK,
        windows: vec![5_000, 20_000],
        phases,
        hosts: pool(),
    }
}

const DEFAULT_LIKE: SegmentRules = SegmentRules {
    hub_degree: 4,
    min_edge_connections: 3,
};

/// Runs a hand script on every layout, checks it against the oracle, and hands the
/// one-worker reads to `expect` for the document's numbers.
fn check_by_hand(script: &Script, rules: SegmentRules, expect: impl Fn(&Read)) {
    check_all_workers(script, rules).unwrap_or_else(|e| panic!("{e}"));
    for read in run_dataflow(script, rules, 1) {
        expect(&read);
    }
}

fn label_of(read: &Read, script: &Script, host: IpAddr) -> Option<Label> {
    let i = script.hosts.iter().position(|h| *h == host).unwrap();
    read.hosts[i].map(|h| h.segment)
}

#[test]
fn a_strong_edge_merges_two_segments_and_its_expiry_splits_them_again() {
    let (a, b, c, d) = (v4(9), v4(10), v4(21), v4(100));
    // a–b and c–d are strong from 11 s (ts 10 s); b–c gets a late record stamped 1 s at
    // 11 s and two more at 13 s (ts 12 s): strong from 13 s until the late one leaves the
    // 20 s window at 22 s.
    let mut first = times(3, 10_000, a, b, 443);
    first.extend(times(3, 10_100, d, c, 443));
    let mut join = times(2, 12_000, b, c, 22);
    join.push(tcp(1_000, c, b, 22));
    let script = hand_script(vec![
        one_phase(first, 11_000, vec![10_000]),
        one_phase(join, 13_000, vec![11_000, 12_000]),
        one_phase(
            Vec::new(),
            40_000,
            vec![20_000, 21_000, 29_000, 30_000, 31_000],
        ),
    ]);
    check_by_hand(&script, DEFAULT_LIKE, |read| {
        let of = |h| label_of(read, &script, h);
        match read.as_of {
            11_000 | 12_000 => {
                // b–c has one record (the late one): weak.
                assert_eq!(of(b), Some(SegmentId::Segment(a)));
                assert_eq!(
                    of(c),
                    Some(SegmentId::Segment(c)),
                    "d > c: c names its segment"
                );
            }
            20_000 | 21_000 => {
                // Three records make b–c strong: one segment, named after a (the smallest).
                for h in [a, b, c, d] {
                    assert_eq!(of(h), Some(SegmentId::Segment(a)), "as_of {}", read.as_of);
                }
                assert_eq!(read.list.rows[0].size, 4);
            }
            29_000 | 30_000 => {
                // The late record left at 22 s: the edge is weak again, the segments split
                // and the part without a is named after c.
                assert_eq!(of(c), Some(SegmentId::Segment(c)), "as_of {}", read.as_of);
                assert_eq!(of(d), Some(SegmentId::Segment(c)), "as_of {}", read.as_of);
                assert_eq!(of(b), Some(SegmentId::Segment(a)));
            }
            _ => {}
        }
    });
}

#[test]
fn a_host_reaching_the_hub_degree_leaves_its_segment_and_joins_nothing() {
    let dns = v4(2);
    let clients = [v4(9), v4(10), v4(21), v4(100)];
    // 10.0.0.9 and 10.0.0.10 are strong partners; every client also asks DNS three times
    // (strong, until DNS reaches four peers and becomes a hub at 12 s).
    let mut events = times(3, 10_000, clients[0], clients[1], 443);
    for (i, &client) in clients.iter().enumerate().take(3) {
        events.extend(times(3, 10_200 + 10 * i as u64, client, dns, 53));
    }
    let script = hand_script(vec![
        one_phase(events, 11_000, vec![10_000]),
        one_phase(
            times(3, 11_500, clients[3], dns, 53),
            13_000,
            vec![11_000, 12_000],
        ),
    ]);
    check_by_hand(&script, DEFAULT_LIKE, |read| {
        let of = |h| label_of(read, &script, h);
        match read.as_of {
            11_000 => {
                // Three peers: DNS (the smallest address) names everyone's segment.
                for h in clients.iter().take(3) {
                    assert_eq!(of(*h), Some(SegmentId::Segment(dns)));
                }
                assert!(read.list.hub_rows.is_empty());
            }
            12_000 => {
                assert_eq!(of(dns), Some(SegmentId::Hub(dns)));
                assert_eq!(
                    read.list.hub_rows,
                    vec![HubRow {
                        ip: dns,
                        peers: 4,
                        connections: 12
                    }]
                );
                // Through the hub nothing is joined: 10.0.0.21 and 10.0.0.100 stand alone.
                assert_eq!(of(clients[0]), Some(SegmentId::Segment(clients[0])));
                assert_eq!(of(clients[1]), Some(SegmentId::Segment(clients[0])));
                assert_eq!(of(clients[2]), Some(SegmentId::Segment(clients[2])));
                assert_eq!(of(clients[3]), Some(SegmentId::Segment(clients[3])));
                let to_hub: Vec<(Label, u64)> = read
                    .policy
                    .iter()
                    .filter(|p| p.to == SegmentId::Hub(dns))
                    .map(|p| (p.from, p.count))
                    .collect();
                assert_eq!(
                    to_hub,
                    vec![
                        (SegmentId::Segment(clients[0]), 6),
                        (SegmentId::Segment(clients[2]), 3),
                        (SegmentId::Segment(clients[3]), 3),
                    ]
                );
            }
            _ => {}
        }
    });
}

#[test]
fn a_violation_is_the_first_use_of_a_service_between_segments_and_a_late_record_withdraws_it() {
    let (a, b) = (v4(9), v4(10));
    // a → b on 443 at 10 s: a violation (new). Again at 11.5 s: not one (seen before).
    // a → b on 22 at 12 s: a violation; then a late record on 22 stamped 8 s withdraws it
    // and is itself the first use. (Edges strong only at ten records: a and b stay apart.)
    let script = hand_script(vec![
        one_phase(vec![tcp(10_000, a, b, 443)], 12_000, vec![11_000]),
        one_phase(
            vec![tcp(11_500, a, b, 443), tcp(12_000, a, b, 22)],
            14_000,
            vec![12_000, 13_000],
        ),
        one_phase(vec![tcp(8_000, a, b, 22)], 15_000, vec![14_000]),
    ]);
    let rules = SegmentRules {
        hub_degree: 4,
        min_edge_connections: 10,
    };
    let v = |ts: Millis, port: u16| Anomaly {
        host: a,
        kind: AnomalyKind::PolicyViolation,
        first_detected: ts,
        evidence: Evidence::PolicyViolation {
            from: SegmentId::Segment(a),
            to: SegmentId::Segment(b),
            dst_ip: b,
            dst_port: port,
            proto: Proto::Tcp,
        },
    };
    check_by_hand(&script, rules, |read| {
        // The 20 s window.
        let listed = &read.violations[1].0;
        match read.as_of {
            11_000 | 12_000 => assert_eq!(listed, &vec![v(10_000, 443)]),
            13_000 => assert_eq!(listed, &vec![v(12_000, 22), v(10_000, 443)]),
            14_000 => {
                assert_eq!(listed, &vec![v(10_000, 443), v(8_000, 22)]);
                // The 5 s window does not reach back to the first use of 22 (8 s < 9 s).
                assert_eq!(read.violations[0].0, vec![v(10_000, 443)]);
            }
            _ => panic!("unexpected read at {}", read.as_of),
        }
    });
}

#[test]
fn a_wrong_oracle_is_caught() {
    let dns = v4(2);
    let mut events = times(3, 10_000, v4(9), v4(10), 443);
    for client in [v4(9), v4(21), v4(100), v4(3)] {
        events.push(tcp(10_500, client, dns, 53));
    }
    let script = hand_script(vec![one_phase(events, 12_000, vec![11_000])]);
    let merged = run_dataflow(&script, DEFAULT_LIKE, 2);
    compare(&script, DEFAULT_LIKE, &merged, Mistake::None, 2).unwrap();
    for mistake in [Mistake::HubOffByOne, Mistake::LargestId] {
        assert!(
            compare(&script, DEFAULT_LIKE, &merged, mistake, 2).is_err(),
            "{mistake:?} went unnoticed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A large graph
// ---------------------------------------------------------------------------------------------

/// The `i`-th host of the large graph: 10.x.y.z from 10.1.0.0 on.
fn big_host(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i))
}

/// 100,000 hosts: 20,000 chains of five (strong pairs), two DNS hubs asked by every
/// 400th host, and traffic between neighbouring chains; then two chains are joined by a
/// strong edge whose records are stamped early, so that it leaves the window first and
/// the joined segment splits again.
#[test]
fn a_graph_of_100k_hosts_merges_and_splits_exactly() {
    const HOSTS: u32 = 100_000;
    const CHAIN: u32 = 5;
    let rules = SegmentRules {
        hub_degree: 50,
        min_edge_connections: 2,
    };
    let (dns_a, dns_b) = (v4(2), v4(3));
    let mut base = Vec::new();
    for i in 0..HOSTS {
        let ts = 20_000 + u64::from(i % 900);
        if i % CHAIN != 0 {
            base.extend([
                tcp(ts, big_host(i - 1), big_host(i), 443),
                tcp(ts, big_host(i), big_host(i - 1), 443),
            ]);
        }
        if i % 400 == 0 {
            base.push(event(ts, big_host(i), dns_a, 53, Proto::Udp));
            base.push(event(ts, big_host(i + 1), dns_b, 53, Proto::Udp));
        }
        if i % 1000 == 7 {
            base.push(tcp(ts, big_host(i), big_host(i + CHAIN), 5432));
        }
    }
    // Joins chain 0 (10.1.0.0…) to chain 1 (10.1.0.5…), stamped 5 s: late, it leaves the
    // 30 s window at 36 s, the chains at 51 s.
    let (x, y) = (big_host(4), big_host(5));
    let join = vec![tcp(5_000, x, y, 22), tcp(5_001, y, x, 22)];
    let script = Script {
        tick: TICK,
        windows: vec![30_000],
        phases: vec![
            one_phase(base, 22_000, vec![21_000]),
            one_phase(join, 23_000, vec![22_000]),
            one_phase(Vec::new(), 37_000, vec![36_000]),
        ],
        hosts: vec![big_host(0), x, y, big_host(9), dns_a, dns_b],
    };
    let started = std::time::Instant::now();
    let merged = run_dataflow(&script, rules, 2);
    let ran = started.elapsed();
    compare(&script, rules, &merged, Mistake::None, 2).unwrap_or_else(|e| panic!("{e}"));
    let [before, joined, split] = &merged[..] else {
        panic!("three reads")
    };
    assert_eq!(before.list.segments, u64::from(HOSTS / CHAIN));
    assert_eq!(before.list.hubs, 2);
    assert_eq!(joined.list.segments, u64::from(HOSTS / CHAIN) - 1);
    assert_eq!(joined.list.rows[0].size, u64::from(2 * CHAIN));
    assert_eq!(split.list.segments, u64::from(HOSTS / CHAIN));
    assert_eq!(label_of(split, &script, y), Some(SegmentId::Segment(y)));
    eprintln!("100k hosts: dataflow on 2 workers in {ran:?}");
}
