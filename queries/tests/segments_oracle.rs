//! The microsegmentation views (segments, hubs, the policy and its violations) against an
//! independent batch oracle (docs/segments.md).
//!
//! * The **oracle** recomputes every answer from scratch at each `as_of T`: plain Rust over
//!   the list of `(event, entry time)` pairs. It takes the window's records (entered by `T`,
//!   `ts` in `[T − L, T)` for the longest window `L`), counts pair weights and distinct
//!   peers, marks the hubs, joins the strong edges with a hand-written union-find, names
//!   each component after its smallest non-hub member (its own address order: IPv4 before
//!   IPv6, each numerically), and derives the listing, each segment's detail, the policy
//!   and the violations (each entry's least `(ts, src, dst)` record) rule by rule. It uses
//!   only plain data types of the code under test (`SegmentId`, `SegmentRules`, the row
//!   types, `Anomaly`, `Evidence`); orders are written out again with its own keys.
//! * The **harness** runs the real dataflow (`graph::render` over the longest window, then
//!   `segments::render`) on 1, 2 and 4 timely workers, fed by the scripted source of
//!   `common` (an event enters at `max(own_time(ts), frontier when sent)`); after each
//!   phase it steps the workers until every segmentation arrangement has passed the
//!   phase's frontier, reads every query at several `as_of`s with `SegmentReader`, and
//!   merges the workers' parts as the engine does (`merge_lists`, `merge_policy`,
//!   `merge_anomalies`, the one worker that holds a segment or host). It also checks that
//!   no segment or host is answered by two workers. After the last read the workers drop
//!   the dataflow instead of closing its input, which would only retract everything.
//! * **Strategies** draw graphs over a pool of six to twelve IPv4 and IPv6 hosts with a
//!   busy host (a hub candidate), groups of three (segments), stray contacts (merges),
//!   self-connections, repeated edges and, in out-of-order streams, late "echoes" just
//!   before an edge's earlier record. Thresholds are low (`hub_degree` 3..=6,
//!   `min_edge_connections` 1..=4) and the records span more than the longest window, so
//!   that edges enter and leave it: merges, splits, hubs appearing and disappearing,
//!   violations listed and withdrawn (by late records too). A test over a fixed set of
//!   generated scripts checks that all of these happen.
//!
//! Hand-written scripts pin the document (a merge and the split after it, ids following
//! the smallest member, hubs leaving their segment and coming back, traffic through a hub,
//! new and seen services, a late record withdrawing a violation, a merge keeping first
//! records); deliberately wrong oracles are shown to be caught; and a graph of over
//! 100,000 hosts checks the answers at scale, before and after a strong edge joins two
//! large segments and leaves again.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::trace::TraceReader;
use flowsight_events::{Event, Proto, Status};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::graph;
use flowsight_queries::read::{visit_rows, Next};
use flowsight_queries::risk::anomaly::{Anomaly, AnomalyKind, Evidence};
use flowsight_queries::risk::merge_anomalies;
use flowsight_queries::segments::propagation::{SegmentId, SegmentRules};
use flowsight_queries::segments::{
    self, merge_lists, merge_policy, HostSegment, HubRow, MemberRow, PolicyFilter, PolicyOrder,
    PolicyRow, PortRow, SegmentDetail, SegmentEdge, SegmentList, SegmentReader, SegmentRow,
    SegmentTraces, TrafficRow,
};
use proptest::prelude::*;
use timely::dataflow::operators::Probe;
use timely::progress::Antichain;
use timely::scheduling::Activator;

mod common;

use common::{
    deal, lag_strategy, plan_phases, raw_step, scripted_source, send_phase, Phase, RawStep, Script,
    Shape, PARK,
};

type Label = SegmentId<IpAddr>;
/// A policy entry: (from, to, dst_port, proto).
type EntryKey = (Label, Label, u16, Proto);

/// How many rows the "small limit" reads ask for.
const SMALL: usize = 2;
const ALL: usize = usize::MAX;

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// Plausible mistakes, to show that the comparison catches them. `None` is the oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mistake {
    None,
    /// A hub needs more than `hub_degree` distinct peers.
    HubDegreeOffByOne,
    /// A segment is named after its largest member.
    IdIsLargestMember,
    /// Strong edges of hubs still join their peers (the hub itself is still reported as one).
    HubsJoinSegments,
    /// A pair's weight counts one direction only.
    WeightOneDirection,
    /// Violations are the first record of each edge, not of each policy entry.
    ViolationPerEdge,
    /// A record of a host with itself counts twice in the host's connections.
    SelfConnectionCountsTwice,
}

/// An address's place in the document's order: IPv4 before IPv6, each numerically.
fn addr_key(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(v4) => (0, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (1, u128::from(v6)),
    }
}

/// A label's place in the order listings use for ties and for the policy's keys.
type LabelKey = (u8, (u8, u128));

/// Segments before hubs, each by address.
fn label_key(label: &Label) -> LabelKey {
    match label {
        SegmentId::Segment(ip) => (0, addr_key(*ip)),
        SegmentId::Hub(ip) => (1, addr_key(*ip)),
    }
}

fn proto_rank(proto: Proto) -> u8 {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
        Proto::Icmp => 2,
        Proto::Other => 3,
    }
}

/// Union-find over host indices, by size with path halving.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// The first record of a policy entry: `(ts, src, dst)` compared by the oracle's keys,
/// with the addresses themselves.
type First = (Millis, (u8, u128), (u8, u128), IpAddr, IpAddr);

/// The whole segmentation at one `as_of`.
struct State {
    labels: HashMap<IpAddr, Label>,
    /// Every host's records (either direction; one for a record with itself).
    connections: HashMap<IpAddr, u64>,
    /// Every host's distinct peers.
    degree: HashMap<IpAddr, u64>,
    members: HashMap<Label, Vec<IpAddr>>,
    traffic: HashMap<Label, TrafficRow>,
    policy: HashMap<EntryKey, u64>,
    /// The violation candidates: each entry's (or, under a mistake, each edge's) first
    /// record.
    firsts: Vec<(EntryKey, First)>,
}

struct Oracle {
    rules: SegmentRules,
    mistake: Mistake,
    records: Vec<(Event, Millis)>,
    longest: Millis,
    memo: RefCell<BTreeMap<Millis, Rc<State>>>,
}

impl Oracle {
    fn new(script: &Script, rules: SegmentRules, mistake: Mistake) -> Self {
        Oracle {
            rules,
            mistake,
            records: script.entries(),
            longest: *script.windows.iter().max().unwrap(),
            memo: RefCell::new(BTreeMap::new()),
        }
    }

    /// In the segmentation window at `as_of`: entered by then, `T − L ≤ ts < T`. A record
    /// that arrived after it would have left (entry ≥ own time + L) is never in it.
    fn visible(&self, event: &Event, entry: Millis, as_of: Millis) -> bool {
        entry <= as_of && event.ts < as_of && event.ts + self.longest >= as_of
    }

    fn state(&self, as_of: Millis) -> Rc<State> {
        if let Some(state) = self.memo.borrow().get(&as_of) {
            return Rc::clone(state);
        }
        let state = Rc::new(self.compute(as_of));
        self.memo.borrow_mut().insert(as_of, Rc::clone(&state));
        state
    }

    fn compute(&self, as_of: Millis) -> State {
        let mistake = self.mistake;
        let visible: Vec<&Event> = self
            .records
            .iter()
            .filter(|(e, entry)| self.visible(e, *entry, as_of))
            .map(|(e, _)| e)
            .collect();
        // Hosts in the document's order, so that the smallest member has the lowest index.
        let mut hosts: Vec<IpAddr> = visible.iter().flat_map(|e| [e.src_ip, e.dst_ip]).collect();
        hosts.sort_by_key(|ip| addr_key(*ip));
        hosts.dedup();
        let n = hosts.len();
        let index: HashMap<IpAddr, usize> =
            hosts.iter().enumerate().map(|(i, ip)| (*ip, i)).collect();

        // Pair weights (both directions), each direction's, and connections.
        let mut weight: HashMap<(usize, usize), u64> = HashMap::new();
        let mut directed: HashMap<(usize, usize), u64> = HashMap::new();
        let mut connections = vec![0u64; n];
        for e in &visible {
            let (s, d) = (index[&e.src_ip], index[&e.dst_ip]);
            connections[s] += 1;
            if s == d {
                if mistake == Mistake::SelfConnectionCountsTwice {
                    connections[s] += 1;
                }
                continue;
            }
            connections[d] += 1;
            *weight.entry((s.min(d), s.max(d))).or_default() += 1;
            if mistake == Mistake::WeightOneDirection {
                *directed.entry((s, d)).or_default() += 1;
            }
        }
        let mut degree = vec![0u64; n];
        for &(a, b) in weight.keys() {
            degree[a] += 1;
            degree[b] += 1;
        }
        let hub: Vec<bool> = degree
            .iter()
            .map(|&d| {
                if mistake == Mistake::HubDegreeOffByOne {
                    d > self.rules.hub_degree
                } else {
                    d >= self.rules.hub_degree
                }
            })
            .collect();

        // Components of the strong edges between non-hubs.
        let min = self.rules.min_edge_connections;
        let strong: Vec<(usize, usize)> = if mistake == Mistake::WeightOneDirection {
            directed
                .iter()
                .filter(|(_, w)| **w >= min)
                .map(|(p, _)| *p)
                .collect()
        } else {
            weight
                .iter()
                .filter(|(_, w)| **w >= min)
                .map(|(p, _)| *p)
                .collect()
        };
        let mut components = UnionFind::new(n);
        for (a, b) in strong {
            if mistake == Mistake::HubsJoinSegments || (!hub[a] && !hub[b]) {
                components.union(a, b);
            }
        }
        // Each component's name: its smallest non-hub member.
        let mut name: HashMap<usize, usize> = HashMap::new();
        for (i, _) in hub.iter().enumerate().filter(|(_, h)| !**h) {
            let root = components.find(i);
            let named = name.entry(root).or_insert(i);
            *named = if mistake == Mistake::IdIsLargestMember {
                (*named).max(i)
            } else {
                (*named).min(i)
            };
        }
        let mut labels = HashMap::new();
        let mut members: HashMap<Label, Vec<IpAddr>> = HashMap::new();
        for (i, &ip) in hosts.iter().enumerate() {
            let label = if hub[i] {
                SegmentId::Hub(ip)
            } else {
                SegmentId::Segment(hosts[name[&components.find(i)]])
            };
            labels.insert(ip, label);
            members.entry(label).or_default().push(ip);
        }

        // Traffic, the policy and each entry's first record.
        let mut traffic: HashMap<Label, TrafficRow> = HashMap::new();
        let mut policy: HashMap<EntryKey, u64> = HashMap::new();
        let mut firsts: HashMap<(EntryKey, Option<(IpAddr, IpAddr)>), First> = HashMap::new();
        for e in &visible {
            let (from, to) = (labels[&e.src_ip], labels[&e.dst_ip]);
            if from == to {
                traffic.entry(from).or_default().inside += 1;
                continue;
            }
            traffic.entry(from).or_default().out += 1;
            traffic.entry(to).or_default().inbound += 1;
            let key = (from, to, e.dst_port, e.proto);
            *policy.entry(key).or_default() += 1;
            let edge = (mistake == Mistake::ViolationPerEdge).then_some((e.src_ip, e.dst_ip));
            let candidate = (
                e.ts,
                addr_key(e.src_ip),
                addr_key(e.dst_ip),
                e.src_ip,
                e.dst_ip,
            );
            let first = firsts.entry((key, edge)).or_insert(candidate);
            if (candidate.0, candidate.1, candidate.2) < (first.0, first.1, first.2) {
                *first = candidate;
            }
        }
        State {
            labels,
            connections: hosts
                .iter()
                .zip(connections)
                .map(|(ip, c)| (*ip, c))
                .collect(),
            degree: hosts.iter().zip(degree).map(|(ip, d)| (*ip, d)).collect(),
            members,
            traffic,
            policy,
            firsts: firsts.into_iter().map(|((key, _), f)| (key, f)).collect(),
        }
    }

    /// A segment's members, most connections first, ties by address.
    fn busiest(state: &State, members: &[IpAddr], limit: usize) -> Vec<MemberRow> {
        let mut rows: Vec<MemberRow> = members
            .iter()
            .map(|ip| MemberRow {
                ip: *ip,
                connections: state.connections[ip],
            })
            .collect();
        rows.sort_by_key(|m| (Reverse(m.connections), addr_key(m.ip)));
        rows.truncate(limit);
        rows
    }

    fn host(&self, as_of: Millis, ip: IpAddr) -> Option<HostSegment> {
        let state = self.state(as_of);
        state.labels.get(&ip).map(|label| HostSegment {
            ip,
            segment: *label,
            hub: matches!(label, SegmentId::Hub(_)),
        })
    }

    /// `/v1/segments?limit=&members=`: largest first then by id; hubs by most peers then
    /// address, with their connections.
    fn list(&self, as_of: Millis, limit: usize, shown: usize) -> SegmentList {
        let state = self.state(as_of);
        let mut sizes: Vec<(Reverse<u64>, LabelKey, Label)> = Vec::new();
        let mut hubs: Vec<(Reverse<u64>, (u8, u128), IpAddr)> = Vec::new();
        for (label, members) in &state.members {
            match label {
                SegmentId::Segment(_) => {
                    sizes.push((Reverse(members.len() as u64), label_key(label), *label))
                }
                SegmentId::Hub(ip) => hubs.push((Reverse(state.degree[ip]), addr_key(*ip), *ip)),
            }
        }
        sizes.sort();
        hubs.sort();
        let (segment_count, hub_count) = (sizes.len() as u64, hubs.len() as u64);
        sizes.truncate(limit);
        let rows = sizes
            .into_iter()
            .map(|(Reverse(size), _, id)| SegmentRow {
                id,
                size,
                members: Self::busiest(&state, &state.members[&id], shown),
                traffic: state.traffic.get(&id).copied().unwrap_or_default(),
            })
            .collect();
        let hub_rows = hubs
            .into_iter()
            .take(limit)
            .map(|(Reverse(peers), _, ip)| HubRow {
                ip,
                peers,
                connections: state.connections[&ip],
            })
            .collect();
        SegmentList {
            segments: segment_count,
            hubs: hub_count,
            rows,
            hub_rows,
            hub_connections: Vec::new(),
        }
    }

    /// A segment's policy entries one way, grouped by the other end, most connections
    /// first (ties by the other end), ports in (port, protocol) order.
    fn edges(state: &State, id: Label, outgoing: bool) -> Vec<SegmentEdge> {
        let mut by_peer: HashMap<Label, Vec<PortRow>> = HashMap::new();
        for (&(from, to, dst_port, proto), &count) in &state.policy {
            let peer = match (outgoing, from == id, to == id) {
                (true, true, _) => to,
                (false, _, true) => from,
                _ => continue,
            };
            by_peer.entry(peer).or_default().push(PortRow {
                dst_port,
                proto,
                count,
            });
        }
        let mut edges: Vec<SegmentEdge> = by_peer
            .into_iter()
            .map(|(peer, mut ports)| {
                ports.sort_by_key(|p| (p.dst_port, proto_rank(p.proto)));
                SegmentEdge {
                    peer,
                    connections: ports.iter().map(|p| p.count).sum(),
                    ports,
                }
            })
            .collect();
        edges.sort_by_key(|e| (Reverse(e.connections), label_key(&e.peer)));
        edges
    }

    fn segment(&self, as_of: Millis, id: Label, limit: usize) -> Option<SegmentDetail> {
        let state = self.state(as_of);
        let members = state.members.get(&id)?;
        Some(SegmentDetail {
            id,
            hub: matches!(id, SegmentId::Hub(_)),
            size: members.len() as u64,
            members: Self::busiest(&state, members, limit),
            traffic: state.traffic.get(&id).copied().unwrap_or_default(),
            edges_out: Self::edges(&state, id, true),
            edges_in: Self::edges(&state, id, false),
        })
    }

    /// The policy in (from, to, port, protocol) order or most connections first (then in
    /// that order), optionally of one `from` / `to`.
    fn policy(
        &self,
        as_of: Millis,
        filter: PolicyFilter,
        order: PolicyOrder,
        limit: usize,
    ) -> Vec<PolicyRow> {
        let state = self.state(as_of);
        let mut rows: Vec<PolicyRow> = state
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
            .collect();
        rows.sort_by_key(|r| {
            let busiest = match order {
                PolicyOrder::Key => 0,
                PolicyOrder::Busiest => u64::MAX - r.count,
            };
            (
                busiest,
                label_key(&r.from),
                label_key(&r.to),
                r.dst_port,
                proto_rank(r.proto),
            )
        });
        rows.truncate(limit);
        rows
    }

    /// The first records with `ts` in `[T − W, T)`, newest first, then by host and evidence
    /// (from, to, dst_ip, dst_port, proto).
    fn violations(&self, as_of: Millis, window: Millis, limit: usize) -> Vec<Anomaly> {
        let state = self.state(as_of);
        let mut rows: Vec<Anomaly> = state
            .firsts
            .iter()
            .filter(|(_, first)| first.0 + window >= as_of)
            .map(
                |&((from, to, dst_port, proto), (ts, _, _, src, dst_ip))| Anomaly {
                    host: src,
                    kind: AnomalyKind::PolicyViolation,
                    first_detected: ts,
                    evidence: Evidence::PolicyViolation {
                        from,
                        to,
                        dst_ip,
                        dst_port,
                        proto,
                    },
                },
            )
            .collect();
        rows.sort_by_key(|a| {
            let Evidence::PolicyViolation {
                from,
                to,
                dst_ip,
                dst_port,
                proto,
            } = a.evidence
            else {
                unreachable!("the oracle makes policy violations only")
            };
            (
                Reverse(a.first_detected),
                addr_key(a.host),
                label_key(&from),
                label_key(&to),
                addr_key(dst_ip),
                dst_port,
                proto_rank(proto),
            )
        });
        rows.truncate(limit);
        rows
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real dataflow on 1, 2 and 4 workers
// ---------------------------------------------------------------------------------------------

/// What is read at every `as_of`, derived from the script's hosts: for each host `h` the
/// ids `h` and `hub:h` (every id that can exist, and some that do not), the host itself,
/// the policy from and to each id, and between the first hosts' ids.
struct Plan {
    /// (limit, members shown).
    lists: Vec<(usize, usize)>,
    /// (id, member limit).
    details: Vec<(Label, usize)>,
    hosts: Vec<IpAddr>,
    /// (filter, order, limit).
    policies: Vec<(PolicyFilter, PolicyOrder, usize)>,
    /// (window, limit).
    violations: Vec<(Millis, usize)>,
}

fn plan(script: &Script) -> Plan {
    let ids = |hosts: &[IpAddr]| -> Vec<Label> {
        hosts
            .iter()
            .flat_map(|&ip| [SegmentId::Segment(ip), SegmentId::Hub(ip)])
            .collect()
    };
    let every = ids(&script.hosts);
    // The first hosts (the busiest of generated scripts) are also read with small limits
    // and with both ends of the policy fixed.
    let first = ids(&script.hosts[..script.hosts.len().min(3)]);
    use PolicyOrder::{Busiest, Key};
    let mut policies = vec![
        (PolicyFilter::default(), Key, ALL),
        (PolicyFilter::default(), Key, SMALL),
        (PolicyFilter::default(), Busiest, ALL),
        (PolicyFilter::default(), Busiest, SMALL),
        (PolicyFilter::default(), Busiest, 1),
    ];
    for &id in &every {
        let limits: &[usize] = if first.contains(&id) {
            &[ALL, SMALL]
        } else {
            &[ALL]
        };
        for &limit in limits {
            let from = PolicyFilter {
                from: Some(id),
                to: None,
            };
            let to = PolicyFilter {
                from: None,
                to: Some(id),
            };
            policies.extend([(from, Key, limit), (to, Key, limit)]);
            if limit == SMALL {
                policies.extend([(from, Busiest, limit), (to, Busiest, limit)]);
            }
        }
    }
    for &from in &first {
        for &to in &first {
            if !(from.is_hub() && to.is_hub()) {
                let filter = PolicyFilter {
                    from: Some(from),
                    to: Some(to),
                };
                policies.push((filter, Key, ALL));
            }
        }
    }
    let mut details: Vec<(Label, usize)> = every.iter().map(|&id| (id, ALL)).collect();
    details.extend(first.iter().map(|&id| (id, SMALL)));
    Plan {
        lists: vec![(ALL, ALL), (SMALL, SMALL), (1, 3)],
        details,
        hosts: script.hosts.clone(),
        policies,
        violations: script
            .windows
            .iter()
            .flat_map(|&w| [(w, ALL), (w, SMALL)])
            .collect(),
    }
}

/// Everything read at one `as_of` (one worker's part, or merged), in plan order.
#[derive(Clone, Debug)]
struct Read {
    phase: usize,
    as_of: Millis,
    lists: Vec<SegmentList>,
    details: Vec<Option<SegmentDetail>>,
    hosts: Vec<Option<HostSegment>>,
    policies: Vec<Vec<PolicyRow>>,
    violations: Vec<Vec<Anomaly>>,
    /// Answers given by more than one worker (a segment and a host each have one owner).
    several: Vec<String>,
}

fn read_worker(traces: &mut SegmentTraces, script: &Script, phase: usize, as_of: Millis) -> Read {
    let plan = plan(script);
    let mut reader = SegmentReader::new(traces, as_of);
    Read {
        phase,
        as_of,
        lists: plan
            .lists
            .iter()
            .map(|&(limit, shown)| reader.list(limit, shown))
            .collect(),
        details: plan
            .details
            .iter()
            .map(|(id, limit)| reader.segment(id, *limit))
            .collect(),
        hosts: plan.hosts.iter().map(|&ip| reader.host(ip)).collect(),
        policies: plan
            .policies
            .iter()
            .map(|&(filter, order, limit)| reader.policy(filter, order, limit))
            .collect(),
        violations: plan
            .violations
            .iter()
            .map(|&(window, limit)| reader.violations(as_of.saturating_sub(window), limit))
            .collect(),
        several: Vec::new(),
    }
}

/// The one part that has an answer; more than one is noted in `several`.
fn the_one<T: Clone + std::fmt::Debug>(
    parts: impl Iterator<Item = Option<T>>,
    what: &str,
    several: &mut Vec<String>,
) -> Option<T> {
    let found: Vec<T> = parts.flatten().collect();
    if found.len() > 1 {
        several.push(format!(
            "{what} answered by {} workers: {found:?}",
            found.len()
        ));
    }
    found.into_iter().next()
}

fn merge_reads(parts: &[Read], plan: &Plan) -> Read {
    let first = &parts[0];
    assert!(parts
        .iter()
        .all(|p| (p.phase, p.as_of) == (first.phase, first.as_of)));
    let mut several = Vec::new();
    let lists = plan
        .lists
        .iter()
        .enumerate()
        .map(|(i, &(limit, _))| {
            merge_lists(parts.iter().map(|p| p.lists[i].clone()).collect(), limit)
        })
        .collect();
    let details = plan
        .details
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            the_one(
                parts.iter().map(|p| p.details[i].clone()),
                &format!("segment {id}"),
                &mut several,
            )
        })
        .collect();
    let hosts = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            the_one(
                parts.iter().map(|p| p.hosts[i]),
                &format!("host {ip}"),
                &mut several,
            )
        })
        .collect();
    let policies = plan
        .policies
        .iter()
        .enumerate()
        .map(|(i, &(_, order, limit))| {
            let parts = parts.iter().map(|p| p.policies[i].clone()).collect();
            merge_policy(parts, order, limit)
        })
        .collect();
    let violations = plan
        .violations
        .iter()
        .enumerate()
        .map(|(i, &(_, limit))| {
            merge_anomalies(parts.iter().map(|p| p.violations[i].clone()), limit)
        })
        .collect();
    Read {
        phase: first.phase,
        as_of: first.as_of,
        lists,
        details,
        hosts,
        policies,
        violations,
        several,
    }
}

/// Whether every segmentation arrangement has passed `target`.
fn traces_passed(traces: &mut SegmentTraces, target: Millis) -> bool {
    let mut upper = Antichain::new();
    let mut passed = true;
    macro_rules! check {
        ($($trace:ident),*) => {$(
            traces.$trace.read_upper(&mut upper);
            passed &= !upper.less_than(&target);
        )*};
    }
    check!(labels, members, traffic, policy_out, policy_in, hubs, violations);
    passed
}

/// Reads one worker's part at one `as_of`.
type ReadFn<R> = fn(&mut SegmentTraces, &Script, usize, Millis) -> R;

/// Runs `script` on `workers` timely workers; each worker's reads in plan order.
fn run_dataflow<R: Send + 'static>(
    script: &Script,
    rules: SegmentRules,
    workers: usize,
    read: ReadFn<R>,
) -> Vec<Vec<R>> {
    script.validate();
    let shared = Arc::new((script.clone(), AtomicUsize::new(0)));
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (script, finished) = &*shared;
        let time = script.time();
        let windows = script.windows();
        let longest = windows.schedule_of(windows.longest().length);
        let index = worker.index();
        let peers = worker.peers();
        let commands = Rc::new(RefCell::new(VecDeque::new()));
        let activator = Rc::new(RefCell::new(None::<Activator>));

        let dataflow = worker.next_dataflow_index();
        let (probe, mut traces) = worker.dataflow::<Millis, _, _>(|scope| {
            let events = scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
            let graph = graph::render(events, longest.clone());
            let rendered = segments::render(&graph.arranged, rules);
            let (probe, _) = rendered.progress.probe();
            (probe, rendered.traces)
        });

        let mut reads = Vec::new();
        let mut global = 0usize;
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);
            // Step until every segmentation arrangement (its stream and its trace) has
            // reached the phase's frontier; park rather than spin, as 4 workers share 2
            // cores and a parked worker is woken by the others' messages.
            let target = phase.advance_to;
            while probe.less_than(&target) || !traces_passed(&mut traces, target) {
                worker.step_or_park(Some(PARK));
            }
            for &as_of in &phase.reads {
                reads.push(read(&mut traces, script, phase_index, as_of));
            }
        }

        // Once every worker has read (stepping meanwhile, so that none waits for another),
        // drop the dataflow rather than close the input: closing would retract the whole
        // window through every operator, which no read ever sees, and on the large graph
        // that costs as much as loading it.
        finished.fetch_add(1, Ordering::SeqCst);
        while finished.load(Ordering::SeqCst) < peers {
            worker.step_or_park(Some(PARK));
        }
        drop(traces);
        worker.drop_dataflow(dataflow);
        reads
    })
    .expect("timely starts");
    guards
        .join()
        .into_iter()
        .map(|r| r.expect("worker panicked"))
        .collect()
}

/// Runs `script` and merges the workers' parts of each read.
fn run_and_merge(script: &Script, rules: SegmentRules, workers: usize) -> Vec<Read> {
    let parts = run_dataflow(script, rules, workers, read_worker);
    let n = parts[0].len();
    assert!(
        parts.iter().all(|p| p.len() == n),
        "workers made different reads"
    );
    let plan = plan(script);
    (0..n)
        .map(|i| {
            let at_i: Vec<Read> = parts.iter().map(|p| p[i].clone()).collect();
            merge_reads(&at_i, &plan)
        })
        .collect()
}

/// The oracle's answers in the shape of a merged read.
fn oracle_read(oracle: &Oracle, plan: &Plan, phase: usize, as_of: Millis) -> Read {
    Read {
        phase,
        as_of,
        lists: plan
            .lists
            .iter()
            .map(|&(limit, shown)| oracle.list(as_of, limit, shown))
            .collect(),
        details: plan
            .details
            .iter()
            .map(|&(id, limit)| oracle.segment(as_of, id, limit))
            .collect(),
        hosts: plan
            .hosts
            .iter()
            .map(|&ip| oracle.host(as_of, ip))
            .collect(),
        policies: plan
            .policies
            .iter()
            .map(|&(filter, order, limit)| oracle.policy(as_of, filter, order, limit))
            .collect(),
        violations: plan
            .violations
            .iter()
            .map(|&(window, limit)| oracle.violations(as_of, window, limit))
            .collect(),
        several: Vec::new(),
    }
}

fn differ<T: std::fmt::Debug + PartialEq>(
    what: &dyn Fn() -> String,
    got: &T,
    expected: &T,
) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{} differ\n  dataflow: {got:#?}\n  oracle:   {expected:#?}",
            what()
        ))
    }
}

fn show_limit(limit: usize) -> String {
    if limit == ALL {
        "all".into()
    } else {
        limit.to_string()
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
    let plan = plan(script);
    if merged.len() != script.read_count() {
        return Err(format!(
            "expected {} reads, got {}",
            script.read_count(),
            merged.len()
        ));
    }
    for m in merged {
        let t = m.as_of;
        let at = |what: String| {
            format!(
                "workers={workers} phase={} (frontier {}) as_of={t}: {what}",
                m.phase, script.phases[m.phase].advance_to
            )
        };
        differ(
            &|| at("answers of several workers".into()),
            &m.several,
            &Vec::new(),
        )?;
        let expected = oracle_read(&oracle, &plan, m.phase, t);
        for (i, &(limit, shown)) in plan.lists.iter().enumerate() {
            differ(
                &|| {
                    at(format!(
                        "list limit={} members={}",
                        show_limit(limit),
                        show_limit(shown)
                    ))
                },
                &m.lists[i],
                &expected.lists[i],
            )?;
        }
        for (i, &ip) in plan.hosts.iter().enumerate() {
            differ(
                &|| at(format!("host {ip}")),
                &m.hosts[i],
                &expected.hosts[i],
            )?;
        }
        for (i, &(id, limit)) in plan.details.iter().enumerate() {
            differ(
                &|| at(format!("segment {id} limit={}", show_limit(limit))),
                &m.details[i],
                &expected.details[i],
            )?;
        }
        for (i, &(filter, order, limit)) in plan.policies.iter().enumerate() {
            differ(
                &|| {
                    at(format!(
                        "policy {filter:?} {order:?} limit={}",
                        show_limit(limit)
                    ))
                },
                &m.policies[i],
                &expected.policies[i],
            )?;
        }
        for (i, &(window, limit)) in plan.violations.iter().enumerate() {
            differ(
                &|| {
                    at(format!(
                        "violations window={window} limit={}",
                        show_limit(limit)
                    ))
                },
                &m.violations[i],
                &expected.violations[i],
            )?;
        }
    }
    Ok(())
}

/// Runs the script on 1, 2 and 4 workers and compares each run with the oracle.
fn check_all_workers(case: &Case) -> Result<(), String> {
    for workers in [1, 2, 4] {
        let merged = run_and_merge(&case.script, case.rules, workers);
        compare(&case.script, case.rules, &merged, Mistake::None, workers)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const TICK: Millis = 1_000;
const WINDOWS: [Millis; 3] = [3_000, 10_000, 30_000];

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The host pool, chosen so that orders matter: `10.0.0.9` < `10.0.0.10` numerically but
/// not as text; `::2` and the IPv4-mapped `::ffff:10.0.0.3` are numerically below most
/// IPv4 addresses yet come after all of them; `fd00::9` < `fd00::10`.
fn pool() -> Vec<IpAddr> {
    vec![
        v4(10, 0, 0, 10),
        v4(10, 0, 0, 9),
        v6("fd00::10"),
        v4(192, 168, 1, 1),
        v6("::2"),
        v4(10, 0, 0, 2),
        v6("fd00::9"),
        v4(10, 0, 1, 1),
        v6("::ffff:10.0.0.3"),
        v4(172, 16, 0, 1),
        v6("2001:db8::1"),
        v4(255, 255, 255, 254),
    ]
}

/// An address no event uses: its ids and host never exist.
fn stranger() -> IpAddr {
    v4(10, 9, 9, 9)
}

const PORTS: [u16; 5] = [443, 53, 22, 80, 5432];
const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

#[derive(Clone, Debug)]
struct RawRecord {
    gap: Millis,
    lag: Millis,
    /// < 6: a record of a host with itself; < 30: the busy host and another; < 70: within
    /// a group of three; < 80: the same edge as one of the eight records before, with its
    /// own lag; < 85: the same, as an echo shortly before that record's `ts` (a late
    /// predecessor of a first record; not for in-order streams); otherwise any two hosts.
    kind: u8,
    a: usize,
    b: usize,
    port: usize,
    proto: usize,
    flip: bool,
}

fn raw_record(shape: Shape) -> impl Strategy<Value = RawRecord> {
    (
        prop_oneof![4 => 0..1_500u64, 1 => Just(0u64), 1 => 1_500..5_000u64],
        lag_strategy(shape),
        0..100u8,
        0..pool().len(),
        0..pool().len(),
        // Mostly two services, so that entries repeat and late records can precede them.
        prop_oneof![3 => 0..2usize, 1 => 0..PORTS.len()],
        prop_oneof![3 => Just(0usize), 1 => 0..PROTOS.len()],
        any::<bool>(),
    )
        .prop_map(|(gap, lag, kind, a, b, port, proto, flip)| RawRecord {
            gap,
            lag,
            kind,
            a,
            b,
            port,
            proto,
            flip,
        })
}

/// A generated script with its thresholds.
#[derive(Clone, Debug)]
struct Case {
    rules: SegmentRules,
    script: Script,
}

/// The endpoints (indices into the pool of `n`) of a raw record.
fn endpoints(r: &RawRecord, n: usize) -> (usize, usize) {
    let a = r.a % n;
    let b = r.b % n;
    let (src, dst) = match r.kind {
        0..=5 => (a, a),
        6..=29 => (0, if b == 0 { 1 } else { b }),
        30..=69 => {
            // Groups {0, 1, 2}, {3, 4, 5}, …; the last may be short.
            let group = a - a % 3;
            let mut other = group + (a % 3 + 1 + b % 2) % 3;
            if other >= n || other == a {
                other = (a + 1) % n;
            }
            (a, other)
        }
        _ => (a, b),
    };
    if r.flip {
        (dst, src)
    } else {
        (src, dst)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_case(
    (tick, windows): (Millis, Vec<Millis>),
    base: Millis,
    lateness: Millis,
    (rotation, size): (usize, usize),
    (hub_degree, min_edge_connections): (u64, u64),
    records: Vec<RawRecord>,
    steps: Vec<RawStep>,
    echoes: bool,
) -> Case {
    let time = TimeModel::new(tick).unwrap();
    let mut hosts = pool();
    let len = hosts.len();
    hosts.rotate_left(rotation % len);
    hosts.truncate(size);
    let n = hosts.len();
    let mut clock = base;
    // Every record so far: (src, dst, port, proto, ts).
    let mut earlier: Vec<(usize, usize, u16, Proto, Millis)> = Vec::new();
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            clock += r.gap;
            let recent = &earlier[earlier.len().saturating_sub(8)..];
            let (src, dst, port, proto, ts) = match r.kind {
                70..=84 if !recent.is_empty() => {
                    let (src, dst, port, proto, ts) = recent[r.b % recent.len()];
                    if r.kind >= 80 && echoes {
                        // An echo: the same edge shortly before that record, which has
                        // most often been read already (a late predecessor).
                        (src, dst, port, proto, ts.saturating_sub(1 + r.gap % 2_000))
                    } else {
                        (src, dst, port, proto, clock.saturating_sub(r.lag))
                    }
                }
                _ => {
                    let (src, dst) = endpoints(r, n);
                    let ts = clock.saturating_sub(r.lag);
                    (src, dst, PORTS[r.port], PROTOS[r.proto], ts)
                }
            };
            earlier.push((src, dst, port, proto, ts));
            Event {
                ts,
                src_ip: hosts[src],
                dst_ip: hosts[dst],
                src_port: 40_000,
                dst_port: port,
                proto,
                bytes_out: 100,
                bytes_in: 100,
                packets: 2,
                duration_ms: None,
                status: Status::Established,
            }
        })
        .collect();
    let phases = plan_phases(time, &windows, lateness, &events, &steps, 16);
    hosts.push(stranger());
    Case {
        rules: SegmentRules {
            hub_degree,
            min_edge_connections,
        },
        script: Script {
            tick,
            windows,
            panes: Vec::new(),
            phases,
            hosts,
        },
    }
}

/// Mostly the 1 s tick with 3 s, 10 s and 30 s windows; sometimes other lengths, two
/// windows, or a 500 ms tick. The segmentation window is the longest.
fn time_and_windows() -> impl Strategy<Value = (Millis, Vec<Millis>)> {
    prop_oneof![
        3 => Just((TICK, WINDOWS.to_vec())),
        1 => Just((1_000, vec![2_000, 7_000, 25_000])),
        1 => Just((1_000, vec![4_000, 11_000])),
        1 => Just((500, vec![1_500, 5_000, 14_500])),
    ]
}

fn case_strategy(shape: Shape) -> impl Strategy<Value = Case> {
    // In-order streams keep their timestamps in order: no echoes.
    let echoes = !matches!(shape, Shape::InOrder);
    (
        time_and_windows(),
        prop_oneof![
            Just(0u64),
            0..20_000u64,
            Just(1_700_000_000_000u64),
            1_700_000_000_000..1_700_000_040_000u64
        ],
        prop_oneof![Just(0u64), Just(1_000u64), Just(2_500u64), Just(5_000u64)],
        (0..pool().len(), 6..=pool().len()),
        (3..=6u64, 1..=4u64),
        prop::collection::vec(raw_record(shape), 1..80),
        prop::collection::vec(raw_step(), 1..6),
    )
        .prop_map(
            move |(time, base, lateness, hosts, rules, records, steps)| {
                build_case(time, base, lateness, hosts, rules, records, steps, echoes)
            },
        )
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number (for a deeper
/// run: `PROPTEST_CASES=100 cargo test -p flowsight-queries --test segments_oracle`).
/// Failing cases are kept in `queries/proptest-regressions/segments_oracle.txt`, to be
/// committed.
fn config(cases: u32) -> ProptestConfig {
    common::config(cases, Some("proptest-regressions/segments_oracle.txt"))
}

/// Cases per property by default.
const CASES: u32 = 16;

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn segments_match_oracle_in_order(case in case_strategy(Shape::InOrder)) {
        check_all_workers(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn segments_match_oracle_out_of_order(case in case_strategy(Shape::Jittered)) {
        check_all_workers(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn segments_match_oracle_with_very_late_records(case in case_strategy(Shape::VeryLate)) {
        check_all_workers(&case).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The strategies are not vacuous
// ---------------------------------------------------------------------------------------------

/// What the oracle's answers over a whole script show, between consecutive read times.
const FEATURES: [&str; 12] = [
    "a segment of 3+ members",
    "a merge",
    "a split",
    "a segment renamed while its old id's host stays",
    "a hub appearing",
    "a hub disappearing",
    "traffic through a hub between two segments",
    "a violation listed",
    "a violation withdrawn while its record is in the window",
    "a violation withdrawn by a late earlier record",
    "a late record counted",
    "a record of a host with itself",
];

fn features(case: &Case) -> [bool; FEATURES.len()] {
    let oracle = Oracle::new(&case.script, case.rules, Mistake::None);
    let longest = oracle.longest;
    let mut seen = [false; FEATURES.len()];
    let times: BTreeSet<Millis> = case
        .script
        .phases
        .iter()
        .flat_map(|p| p.reads.iter().copied())
        .collect();
    let times: Vec<Millis> = times.into_iter().collect();
    let segment_of = |state: &State, ip: &IpAddr| match state.labels.get(ip) {
        Some(SegmentId::Segment(id)) => Some(*id),
        _ => None,
    };
    for &t in &times {
        let state = oracle.state(t);
        seen[0] |= state
            .members
            .iter()
            .any(|(id, m)| !id.is_hub() && m.len() >= 3);
        seen[6] |= state.labels.values().any(|label| {
            let SegmentId::Hub(h) = label else {
                return false;
            };
            let sides: BTreeSet<Label> = state
                .policy
                .keys()
                .filter_map(|&(from, to, _, _)| match (from, to) {
                    (s, SegmentId::Hub(x)) | (SegmentId::Hub(x), s) if x == *h && !s.is_hub() => {
                        Some(s)
                    }
                    _ => None,
                })
                .collect();
            sides.len() >= 2
        });
        seen[7] |= !oracle.violations(t, longest, ALL).is_empty();
    }
    for pair in times.windows(2) {
        let (t1, t2) = (pair[0], pair[1]);
        let (s1, s2) = (oracle.state(t1), oracle.state(t2));
        let both: Vec<&IpAddr> = s1
            .labels
            .keys()
            .filter(|ip| segment_of(&s1, ip).is_some() && segment_of(&s2, ip).is_some())
            .collect();
        for x in &both {
            for y in &both {
                let before = segment_of(&s1, x) == segment_of(&s1, y);
                let after = segment_of(&s2, x) == segment_of(&s2, y);
                seen[1] |= !before && after;
                seen[2] |= before && !after;
            }
            // A host whose segment was named after another host, still there and still
            // not a hub, now named after a third.
            let (id1, id2) = (segment_of(&s1, x).unwrap(), segment_of(&s2, x).unwrap());
            seen[3] |= id1 != id2 && id2 != **x && segment_of(&s2, &id1).is_some();
        }
        for (ip, label) in &s1.labels {
            let after = s2.labels.get(ip);
            seen[4] |= !label.is_hub() && after.is_some_and(|l| l.is_hub());
            seen[5] |= label.is_hub() && after.is_some_and(|l| !l.is_hub());
        }
        let now = oracle.violations(t2, longest, ALL);
        for v in oracle.violations(t1, longest, ALL) {
            if now.contains(&v) || v.first_detected + longest < t2 {
                continue;
            }
            seen[8] = true;
            let Evidence::PolicyViolation {
                dst_port, proto, ..
            } = v.evidence
            else {
                unreachable!()
            };
            // The entry of the same ends now starts with a record that entered after t1
            // and is earlier than the withdrawn one.
            let (from2, to2) = (s2.labels.get(&v.host), s2.labels.get(&dst_of(&v)));
            if let (Some(&from), Some(&to)) = (from2, to2) {
                seen[9] |= s2.firsts.iter().any(|&(key, (ts, _, _, src, dst))| {
                    key == (from, to, dst_port, proto)
                        && ts < v.first_detected
                        && oracle.records.iter().any(|(e, entry)| {
                            (e.ts, e.src_ip, e.dst_ip) == (ts, src, dst) && *entry > t1
                        })
                });
            }
        }
    }
    let tick = case.script.tick;
    for (e, entry) in &oracle.records {
        seen[10] |= *entry > (e.ts / tick) * tick + tick && e.ts + longest >= *entry;
        seen[11] |= e.src_ip == e.dst_ip;
    }
    seen
}

fn dst_of(v: &Anomaly) -> IpAddr {
    match v.evidence {
        Evidence::PolicyViolation { dst_ip, .. } => dst_ip,
        _ => unreachable!("a policy violation"),
    }
}

/// Over a fixed set of generated scripts (the first ones of a deterministic runner), the
/// oracle's answers show merges, splits, hubs coming and going and violations listed and
/// withdrawn in a good share of the scripts: the properties above cannot pass vacuously.
#[test]
fn generated_scripts_merge_split_and_withdraw() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut counts = [0usize; FEATURES.len()];
    let mut scripts = 0;
    for shape in [Shape::InOrder, Shape::Jittered, Shape::VeryLate] {
        let mut runner = TestRunner::deterministic();
        let strategy = case_strategy(shape);
        for _ in 0..20 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            scripts += 1;
            for (count, seen) in counts.iter_mut().zip(features(&case)) {
                *count += usize::from(seen);
            }
        }
    }
    let report: Vec<String> = FEATURES
        .iter()
        .zip(&counts)
        .map(|(name, n)| format!("{name}: {n}/{scripts}"))
        .collect();
    println!("{}", report.join("\n"));
    for (name, n) in FEATURES.iter().zip(&counts) {
        assert!(
            *n * 8 >= scripts,
            "only {n} of {scripts} scripts show {name}:\n{}",
            report.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written scripts: the document's rules with exact answers
// ---------------------------------------------------------------------------------------------

/// A read with its plan, to look answers up by what was asked.
struct View<'a> {
    read: &'a Read,
    plan: &'a Plan,
}

impl View<'_> {
    fn label(&self, ip: IpAddr) -> Option<Label> {
        let i = self
            .plan
            .hosts
            .iter()
            .position(|h| *h == ip)
            .expect("a planned host");
        self.read.hosts[i].map(|h| {
            assert_eq!(h.hub, h.segment.is_hub());
            h.segment
        })
    }

    fn list(&self, limit: usize, shown: usize) -> &SegmentList {
        let i = self
            .plan
            .lists
            .iter()
            .position(|l| *l == (limit, shown))
            .expect("a planned list");
        &self.read.lists[i]
    }

    fn detail(&self, id: Label) -> &Option<SegmentDetail> {
        let i = self
            .plan
            .details
            .iter()
            .position(|d| *d == (id, ALL))
            .expect("a planned id");
        &self.read.details[i]
    }

    fn policy(&self) -> &Vec<PolicyRow> {
        &self.read.policies[0]
    }

    fn violations(&self, window: Millis, limit: usize) -> &Vec<Anomaly> {
        let i = self
            .plan
            .violations
            .iter()
            .position(|v| *v == (window, limit))
            .expect("a planned window");
        &self.read.violations[i]
    }
}

/// Runs a hand-made script and checks `expect` first against the oracle's answers, then
/// against the dataflow's on 1, 2 and 4 workers, and finally the whole comparison.
fn check_by_hand(script: &Script, rules: SegmentRules, expect: impl Fn(&View<'_>, &str)) {
    let oracle = Oracle::new(script, rules, Mistake::None);
    let plan = plan(script);
    for (phase_index, phase) in script.phases.iter().enumerate() {
        for &as_of in &phase.reads {
            let read = oracle_read(&oracle, &plan, phase_index, as_of);
            expect(
                &View {
                    read: &read,
                    plan: &plan,
                },
                "oracle",
            );
        }
    }
    for workers in [1, 2, 4] {
        let merged = run_and_merge(script, rules, workers);
        for read in &merged {
            expect(
                &View { read, plan: &plan },
                &format!("dataflow on {workers} workers"),
            );
        }
        if let Err(e) = compare(script, rules, &merged, Mistake::None, workers) {
            panic!("the dataflow disagrees with the oracle: {e}");
        }
    }
}

fn ev(ts: Millis, src: IpAddr, dst: IpAddr, port: u16, proto: Proto) -> Event {
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

fn one_phase(events: Vec<Event>, advance_to: Millis, reads: Vec<Millis>) -> Phase {
    Phase {
        events,
        advance_to,
        reads,
    }
}

fn seg(ip: IpAddr) -> Label {
    SegmentId::Segment(ip)
}

fn hub(ip: IpAddr) -> Label {
    SegmentId::Hub(ip)
}

fn member(ip: IpAddr, connections: u64) -> MemberRow {
    MemberRow { ip, connections }
}

fn traffic(inside: u64, out: u64, inbound: u64) -> TrafficRow {
    TrafficRow {
        inside,
        out,
        inbound,
    }
}

#[allow(clippy::too_many_arguments)]
fn violation(
    ts: Millis,
    host: IpAddr,
    from: Label,
    to: Label,
    dst_ip: IpAddr,
    dst_port: u16,
    proto: Proto,
) -> Anomaly {
    Anomaly {
        host,
        kind: AnomalyKind::PolicyViolation,
        first_detected: ts,
        evidence: Evidence::PolicyViolation {
            from,
            to,
            dst_ip,
            dst_port,
            proto,
        },
    }
}

fn policy_row(from: Label, to: Label, dst_port: u16, proto: Proto, count: u64) -> PolicyRow {
    PolicyRow {
        from,
        to,
        dst_port,
        proto,
        count,
    }
}

/// The hosts of the merge script: `d` = 10.0.0.10 sorts after `c` = 10.0.0.3 only
/// numerically; `p` = ::2 is an IPv6 address and comes after every IPv4 one.
struct MergeHosts {
    a: IpAddr,
    b: IpAddr,
    c: IpAddr,
    d: IpAddr,
    e: IpAddr,
    f: IpAddr,
    g: IpAddr,
    p: IpAddr,
    q: IpAddr,
}

fn merge_hosts() -> MergeHosts {
    MergeHosts {
        a: v4(10, 0, 0, 1),
        b: v4(10, 0, 0, 2),
        c: v4(10, 0, 0, 3),
        d: v4(10, 0, 0, 10),
        e: v4(10, 0, 0, 9),
        f: v6("fd00::10"),
        g: v6("fd00::9"),
        p: v6("::2"),
        q: v4(10, 0, 0, 200),
    }
}

/// A strong edge merges two segments and its expiry splits them (30 s window,
/// `min_edge_connections` 2; a record in tick `k` s leaves at `k + 31` s):
///
/// * a ↔ b at 1000 and 1500 (one each way: weight 2), c → d at 2000 and 2500: segments
///   `10.0.0.1` {a, b} and `10.0.0.3` {c, d} (not `10.0.0.10`: numeric order);
/// * f ↔ g at 3000 and 3200: `fd00::9`; p → q at 3000 and 3300: `10.0.0.200`, IPv4
///   before IPv6;
/// * b → c at 5000, 5500: from 6000 one segment `10.0.0.1` of four;
/// * b → c again at 20000, 20500, c → d at 24000, 24500, a → e at 25000 (weak), a → a at
///   26000, b → e at 40000 (weak);
/// * at 32000 a ↔ b has left: a stays alone (`10.0.0.1`), {b, c, d} is named after b;
/// * at 51000 b → c has left: {c, d} is named after c, b stays alone;
/// * at 56000 c and d are gone; a is seen through its record with itself only.
fn merge_script() -> Script {
    let MergeHosts {
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        p,
        q,
    } = merge_hosts();
    let tcp = Proto::Tcp;
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            vec![
                ev(1_000, a, b, 443, tcp),
                ev(1_500, b, a, 443, tcp),
                ev(2_000, c, d, 5432, tcp),
                ev(2_500, c, d, 5432, tcp),
                ev(3_000, f, g, 443, tcp),
                ev(3_200, g, f, 443, tcp),
                ev(3_000, p, q, 443, tcp),
                ev(3_300, p, q, 443, tcp),
                ev(5_000, b, c, 80, tcp),
                ev(5_500, b, c, 80, tcp),
                ev(20_000, b, c, 80, tcp),
                ev(20_500, b, c, 80, tcp),
                ev(24_000, c, d, 5432, tcp),
                ev(24_500, c, d, 5432, tcp),
                ev(25_000, a, e, 22, tcp),
                ev(26_000, a, a, 80, tcp),
                ev(40_000, b, e, 22, tcp),
            ],
            72_000,
            vec![3_000, 6_000, 31_000, 32_000, 50_000, 51_000, 56_000],
        )],
        hosts: vec![a, b, c, d, e, f, g, p, q],
    }
}

fn merge_rules() -> SegmentRules {
    SegmentRules {
        hub_degree: 50,
        min_edge_connections: 2,
    }
}

#[test]
fn a_strong_edge_merges_segments_and_its_expiry_splits_them() {
    let script = merge_script();
    let h = merge_hosts();
    let (one, two, three, nine) = (seg(h.a), seg(h.b), seg(h.c), seg(h.e));
    let (fg, pq) = (seg(h.g), seg(h.q));
    check_by_hand(&script, merge_rules(), |view, who| {
        let t = view.read.as_of;
        let expected: [Option<Label>; 9] = match t {
            3_000 => [
                Some(one),
                Some(one),
                Some(three),
                Some(three),
                None,
                None,
                None,
                None,
                None,
            ],
            6_000 => [
                Some(one),
                Some(one),
                Some(one),
                Some(one),
                None,
                Some(fg),
                Some(fg),
                Some(pq),
                Some(pq),
            ],
            31_000 => [
                Some(one),
                Some(one),
                Some(one),
                Some(one),
                Some(nine),
                Some(fg),
                Some(fg),
                Some(pq),
                Some(pq),
            ],
            32_000 => [
                Some(one),
                Some(two),
                Some(two),
                Some(two),
                Some(nine),
                Some(fg),
                Some(fg),
                Some(pq),
                Some(pq),
            ],
            50_000 => [
                Some(one),
                Some(two),
                Some(two),
                Some(two),
                Some(nine),
                None,
                None,
                None,
                None,
            ],
            51_000 => [
                Some(one),
                Some(two),
                Some(three),
                Some(three),
                Some(nine),
                None,
                None,
                None,
                None,
            ],
            56_000 => [
                Some(one),
                Some(two),
                None,
                None,
                Some(nine),
                None,
                None,
                None,
                None,
            ],
            other => panic!("no read at {other}"),
        };
        let got: Vec<Option<Label>> = view.plan.hosts.iter().map(|&ip| view.label(ip)).collect();
        assert_eq!(got, expected, "{who}: labels at {t}");

        if t == 6_000 {
            // Busiest first, ties by address (numerically: .1 before .10; IPv4 first).
            let expected = SegmentList {
                segments: 3,
                hubs: 0,
                rows: vec![
                    SegmentRow {
                        id: one,
                        size: 4,
                        members: vec![
                            member(h.b, 4),
                            member(h.c, 4),
                            member(h.a, 2),
                            member(h.d, 2),
                        ],
                        traffic: traffic(6, 0, 0),
                    },
                    SegmentRow {
                        id: pq,
                        size: 2,
                        members: vec![member(h.q, 2), member(h.p, 2)],
                        traffic: traffic(2, 0, 0),
                    },
                    SegmentRow {
                        id: fg,
                        size: 2,
                        members: vec![member(h.g, 2), member(h.f, 2)],
                        traffic: traffic(2, 0, 0),
                    },
                ],
                hub_rows: vec![],
                hub_connections: vec![],
            };
            assert_eq!(view.list(ALL, ALL), &expected, "{who}: list at {t}");
            assert!(view.policy().is_empty(), "{who}: policy at {t}");
            // The old id of the merged part names nothing now.
            assert_eq!(view.detail(three), &None, "{who}: segment .3 at {t}");
        }
        if t == 32_000 {
            // a's records: a → e and its record with itself (once).
            let detail = view.detail(one).clone().expect("segment .1");
            assert_eq!(detail.members, vec![member(h.a, 2)], "{who}: .1 at {t}");
            assert_eq!(detail.traffic, traffic(1, 1, 0), "{who}: .1 at {t}");
            assert_eq!(
                detail.edges_out,
                vec![SegmentEdge {
                    peer: nine,
                    connections: 1,
                    ports: vec![PortRow {
                        dst_port: 22,
                        proto: Proto::Tcp,
                        count: 1
                    }],
                }],
                "{who}: .1 at {t}"
            );
            assert_eq!(
                view.policy(),
                &vec![policy_row(one, nine, 22, Proto::Tcp, 1)],
                "{who}: policy at {t}"
            );
            let first = violation(25_000, h.a, one, nine, h.e, 22, Proto::Tcp);
            assert_eq!(view.violations(30_000, ALL), &vec![first], "{who}: at {t}");
            assert_eq!(view.violations(10_000, ALL), &vec![first], "{who}: at {t}");
            assert!(view.violations(3_000, ALL).is_empty(), "{who}: at {t}");
            assert_eq!(view.list(ALL, ALL).rows[0].id, two, "{who}: largest at {t}");
        }
    });
}

/// A host reaching `hub_degree` (3, with `min_edge_connections` 1) leaves its segment, and
/// traffic through it never joins segments. h = 10.0.0.53 answers DNS to w1 at 1000, w2 at
/// 2000, x at 5000, and itself at 7000:
///
/// * at 2000 {w1, h} and at 3000 {w1, w2, h} are segment `10.0.0.53` (its smallest member);
/// * from 6000 h has three peers: `hub:10.0.0.53`; w1, w2 and x are segments of one, each
///   with a policy entry and a violation towards the hub;
/// * at 32000 w1's record has left: h has two peers, is no hub any more and is again the
///   segment `10.0.0.53` of h, w2 and x; every violation is gone (nothing between
///   segments).
fn hub_script() -> Script {
    let (h, w1, w2, x) = hub_hosts();
    let udp = Proto::Udp;
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            vec![
                ev(1_000, w1, h, 53, udp),
                ev(2_000, w2, h, 53, udp),
                ev(5_000, x, h, 53, udp),
                ev(7_000, h, h, 53, udp),
            ],
            40_000,
            vec![2_000, 3_000, 6_000, 8_000, 31_000, 32_000],
        )],
        hosts: vec![h, w1, w2, x],
    }
}

fn hub_hosts() -> (IpAddr, IpAddr, IpAddr, IpAddr) {
    (
        v4(10, 0, 0, 53),
        v4(10, 1, 0, 1),
        v4(10, 1, 0, 2),
        v4(10, 2, 0, 1),
    )
}

fn hub_rules() -> SegmentRules {
    SegmentRules {
        hub_degree: 3,
        min_edge_connections: 1,
    }
}

#[test]
fn a_host_reaching_hub_degree_leaves_its_segment_and_never_joins_others() {
    let script = hub_script();
    let (h, w1, w2, x) = hub_hosts();
    let udp = Proto::Udp;
    check_by_hand(&script, hub_rules(), |view, who| {
        let t = view.read.as_of;
        let labels: Vec<Option<Label>> = [h, w1, w2, x].iter().map(|&ip| view.label(ip)).collect();
        let expected = match t {
            2_000 => vec![Some(seg(h)), Some(seg(h)), None, None],
            3_000 => vec![Some(seg(h)), Some(seg(h)), Some(seg(h)), None],
            6_000 | 8_000 | 31_000 => {
                vec![Some(hub(h)), Some(seg(w1)), Some(seg(w2)), Some(seg(x))]
            }
            32_000 => vec![Some(seg(h)), None, Some(seg(h)), Some(seg(h))],
            other => panic!("no read at {other}"),
        };
        assert_eq!(labels, expected, "{who}: labels at {t}");
        match t {
            6_000 | 8_000 | 31_000 => {
                // The hub's self-connection (from 8000) is traffic inside it.
                let own = if t == 6_000 { 0 } else { 1 };
                let single = |ip: IpAddr| SegmentRow {
                    id: seg(ip),
                    size: 1,
                    members: vec![member(ip, 1)],
                    traffic: traffic(0, 1, 0),
                };
                let expected = SegmentList {
                    segments: 3,
                    hubs: 1,
                    rows: vec![single(w1), single(w2), single(x)],
                    hub_rows: vec![HubRow {
                        ip: h,
                        peers: 3,
                        connections: 3 + own,
                    }],
                    hub_connections: vec![],
                };
                assert_eq!(view.list(ALL, ALL), &expected, "{who}: list at {t}");
                let edge = |peer: IpAddr| SegmentEdge {
                    peer: seg(peer),
                    connections: 1,
                    ports: vec![PortRow {
                        dst_port: 53,
                        proto: udp,
                        count: 1,
                    }],
                };
                let expected = SegmentDetail {
                    id: hub(h),
                    hub: true,
                    size: 1,
                    members: vec![member(h, 3 + own)],
                    traffic: traffic(own, 0, 3),
                    edges_out: vec![],
                    edges_in: vec![edge(w1), edge(w2), edge(x)],
                };
                assert_eq!(
                    view.detail(hub(h)),
                    &Some(expected),
                    "{who}: the hub at {t}"
                );
                assert_eq!(
                    view.detail(seg(h)),
                    &None,
                    "{who}: no segment 10.0.0.53 at {t}"
                );
                assert_eq!(
                    view.policy(),
                    &vec![
                        policy_row(seg(w1), hub(h), 53, udp, 1),
                        policy_row(seg(w2), hub(h), 53, udp, 1),
                        policy_row(seg(x), hub(h), 53, udp, 1),
                    ],
                    "{who}: policy at {t}"
                );
                let all = vec![
                    violation(5_000, x, seg(x), hub(h), h, 53, udp),
                    violation(2_000, w2, seg(w2), hub(h), h, 53, udp),
                    violation(1_000, w1, seg(w1), hub(h), h, 53, udp),
                ];
                assert_eq!(view.violations(30_000, ALL), &all, "{who}: at {t}");
                assert_eq!(
                    view.violations(30_000, SMALL),
                    &all[..SMALL],
                    "{who}: at {t}"
                );
            }
            32_000 => {
                let detail = view.detail(seg(h)).clone().expect("segment 10.0.0.53");
                assert_eq!(detail.size, 3, "{who}: at {t}");
                assert_eq!(detail.traffic, traffic(3, 0, 0), "{who}: at {t}");
                assert_eq!(view.list(ALL, ALL).hubs, 0, "{who}: at {t}");
                assert!(view.policy().is_empty(), "{who}: at {t}");
                assert!(view.violations(30_000, ALL).is_empty(), "{who}: at {t}");
            }
            _ => {
                assert!(view.policy().is_empty(), "{who}: at {t}");
                assert!(view.violations(30_000, ALL).is_empty(), "{who}: at {t}");
            }
        }
    });
}

fn policy_hosts() -> [IpAddr; 5] {
    [
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        v4(10, 0, 1, 1),
        v4(10, 0, 1, 2),
        v4(10, 0, 2, 1),
    ]
}

/// Policy violations (`min_edge_connections` 3): segments A = {a1, a2} and B = {b1, b2}
/// (three records each at 1000…1500), C = {c1}.
///
/// * phase 0 (frontier 10000): a2 → b1 on 5432/tcp at 4000 is new (a violation); a1 → b2
///   on 5432/tcp at 6000 is the same entry seen before (none); a1 → b2 on 22/tcp at 7000
///   and a2 → b2 on 5432/udp at 8000 are a new port and protocol (violations); no pair
///   between A and B has three records yet;
/// * phase 1 (frontier 13000): a2 → b1 on 22/tcp at 5000 arrives late (entering at
///   10000): it is now the first record of (A, B, 22, tcp), so the violation at 7000 is
///   withdrawn and one at 5000 listed; a1 → c1 at 11000 and b1 → c1 at 11500 on 80/tcp;
/// * phase 2 (frontier 15000): a2 → b1 three times at 13000…: A and B merge into A; the
///   merged entry (A, C, 80, tcp) keeps its first record (11000) and b1's (11500) is no
///   violation any more; traffic between A and B is inside and leaves the policy.
fn policy_script() -> Script {
    let [a1, a2, b1, b2, c1] = policy_hosts();
    let (tcp, udp) = (Proto::Tcp, Proto::Udp);
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![
            one_phase(
                vec![
                    ev(1_000, a1, a2, 443, tcp),
                    ev(1_100, a1, a2, 443, tcp),
                    ev(1_200, a1, a2, 443, tcp),
                    ev(1_300, b1, b2, 443, tcp),
                    ev(1_400, b1, b2, 443, tcp),
                    ev(1_500, b1, b2, 443, tcp),
                    ev(4_000, a2, b1, 5432, tcp),
                    ev(6_000, a1, b2, 5432, tcp),
                    ev(7_000, a1, b2, 22, tcp),
                    ev(8_000, a2, b2, 5432, udp),
                ],
                10_000,
                vec![5_000, 9_000],
            ),
            one_phase(
                vec![
                    ev(5_000, a2, b1, 22, tcp),
                    ev(11_000, a1, c1, 80, tcp),
                    ev(11_500, b1, c1, 80, tcp),
                ],
                13_000,
                vec![10_000, 12_000],
            ),
            one_phase(
                vec![
                    ev(13_000, a2, b1, 443, tcp),
                    ev(13_100, a2, b1, 443, tcp),
                    ev(13_200, a2, b1, 443, tcp),
                ],
                15_000,
                vec![14_000],
            ),
        ],
        hosts: vec![a1, a2, b1, b2, c1],
    }
}

fn policy_rules() -> SegmentRules {
    SegmentRules {
        hub_degree: 50,
        min_edge_connections: 3,
    }
}

#[test]
fn violations_for_new_services_between_segments_withdrawn_by_late_records() {
    let script = policy_script();
    let [a1, a2, b1, b2, c1] = policy_hosts();
    let (tcp, udp) = (Proto::Tcp, Proto::Udp);
    let (a, b, c) = (seg(a1), seg(b1), seg(c1));
    let v4000 = violation(4_000, a2, a, b, b1, 5432, tcp);
    let v5000 = violation(5_000, a2, a, b, b1, 22, tcp);
    let v7000 = violation(7_000, a1, a, b, b2, 22, tcp);
    let v8000 = violation(8_000, a2, a, b, b2, 5432, udp);
    let v11000 = violation(11_000, a1, a, c, c1, 80, tcp);
    let v11500 = violation(11_500, b1, b, c, c1, 80, tcp);
    check_by_hand(&script, policy_rules(), |view, who| {
        let t = view.read.as_of;
        let [short, middle, long]: [Vec<Anomaly>; 3] = match t {
            5_000 => [vec![v4000], vec![v4000], vec![v4000]],
            9_000 => [
                vec![v8000, v7000],
                vec![v8000, v7000, v4000],
                vec![v8000, v7000, v4000],
            ],
            10_000 => [
                vec![v8000],
                vec![v8000, v5000, v4000],
                vec![v8000, v5000, v4000],
            ],
            12_000 => [
                vec![v11500, v11000],
                vec![v11500, v11000, v8000, v5000, v4000],
                vec![v11500, v11000, v8000, v5000, v4000],
            ],
            14_000 => [vec![v11000], vec![v11000], vec![v11000]],
            other => panic!("no read at {other}"),
        };
        assert_eq!(view.violations(3_000, ALL), &short, "{who}: 3 s at {t}");
        assert_eq!(view.violations(10_000, ALL), &middle, "{who}: 10 s at {t}");
        assert_eq!(view.violations(30_000, ALL), &long, "{who}: 30 s at {t}");
        assert_eq!(
            view.violations(30_000, SMALL),
            &long[..long.len().min(SMALL)],
            "{who}: 30 s, {SMALL} newest, at {t}"
        );
        match t {
            9_000 => assert_eq!(
                view.policy(),
                &vec![
                    policy_row(a, b, 22, tcp, 1),
                    policy_row(a, b, 5432, tcp, 2),
                    policy_row(a, b, 5432, udp, 1),
                ],
                "{who}: policy at {t}"
            ),
            14_000 => {
                for ip in [a1, a2, b1, b2] {
                    assert_eq!(view.label(ip), Some(a), "{who}: {ip} at {t}");
                }
                assert_eq!(
                    view.policy(),
                    &vec![policy_row(a, c, 80, tcp, 2)],
                    "{who}: policy at {t}"
                );
                // 3 + 3 inside each half, five records A → B, three joining them.
                let detail = view.detail(a).clone().expect("segment A");
                assert_eq!(detail.size, 4, "{who}: at {t}");
                assert_eq!(detail.traffic, traffic(14, 2, 0), "{who}: at {t}");
                assert_eq!(view.detail(b), &None, "{who}: B merged at {t}");
            }
            _ => {}
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Wrong oracles are caught
// ---------------------------------------------------------------------------------------------

const MISTAKES: [Mistake; 6] = [
    Mistake::HubDegreeOffByOne,
    Mistake::IdIsLargestMember,
    Mistake::HubsJoinSegments,
    Mistake::WeightOneDirection,
    Mistake::ViolationPerEdge,
    Mistake::SelfConnectionCountsTwice,
];

/// Every wrong oracle disagrees with the dataflow on at least one of the hand-made scripts
/// (and the right one agrees with the dataflow on each script where it is caught): the
/// comparison can fail.
#[test]
fn wrong_oracles_are_caught_on_the_hand_scripts() {
    let scripts = [
        (merge_script(), merge_rules()),
        (hub_script(), hub_rules()),
        (policy_script(), policy_rules()),
    ];
    let mut caught = [false; MISTAKES.len()];
    for (script, rules) in &scripts {
        let merged = run_and_merge(script, *rules, 2);
        let right = compare(script, *rules, &merged, Mistake::None, 2);
        for (i, &mistake) in MISTAKES.iter().enumerate() {
            if compare(script, *rules, &merged, mistake, 2).is_err() {
                assert!(
                    right.is_ok(),
                    "{mistake:?} is caught, but the right oracle disagrees too: {}",
                    right.unwrap_err()
                );
                caught[i] = true;
            }
        }
    }
    for (mistake, caught) in MISTAKES.iter().zip(caught) {
        assert!(caught, "the wrong oracle {mistake:?} was not caught");
    }
}

// ---------------------------------------------------------------------------------------------
// A large graph
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a small deterministic generator, so the large graph is the same every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pairs of small segments (hosts `0 .. 2 PAIRS`), two large segments, hubs, loners.
const PAIRS: usize = 48_000;
const LARGE: usize = 2_000;
const HUBS: usize = 5;
const HUB_CLIENTS: usize = 300;
const LONERS: usize = 1_000;
const WEAK: usize = 4_000;
/// Records per strong edge, all in one tick: the graph view's pre-aggregation makes them
/// one group, so they cost the segmentation no more than one record.
const REPEATS: usize = 4;

/// Host number `i`: IPv4 from 10.0.0.0 upwards, every tenth pair IPv6.
fn large_host(i: usize) -> IpAddr {
    if i < 2 * PAIRS && (i / 2) % 10 == 0 {
        IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | i as u128))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))
    }
}

/// The large graph (default thresholds: hubs at 50 peers, strong edges at 3 records):
///
/// * 48,000 pairs with four records each (segments of two, every tenth IPv6);
/// * two segments of 2,000 hosts, random trees with four records per edge;
/// * 4,000 single records from pair hosts to large-segment hosts (policy entries);
/// * five hubs with 300 clients each; 1,000 hosts seen only with themselves.
///
/// 101,005 hosts and 214,492 records (about 58,500 edge groups) with `ts` in [10 s, 12 s), read
/// at 12 s (phase 0). Phase 1: three late records (ts 2 s, entering at 13 s) join a host
/// of each large segment, read at 13 s: one segment of 4,000. Phase 2: they leave at 33 s
/// (own time 3 s + 30 s) while the rest stays: read at 32 s (joined) and 33 s (split
/// again).
fn large_script() -> (Script, IpAddr, IpAddr) {
    let mut rng = SplitMix(0x5e67_e475);
    let mut events = Vec::new();
    let mut ts = 10_000;
    let mut next_ts = || {
        ts = 10_000 + (ts + 7 - 10_000) % 2_000;
        ts
    };
    let tcp = Proto::Tcp;
    for k in 0..PAIRS {
        let t = next_ts();
        for _ in 0..REPEATS {
            events.push(ev(t, large_host(2 * k), large_host(2 * k + 1), 443, tcp));
        }
    }
    let large_base = [2 * PAIRS, 2 * PAIRS + LARGE];
    for base in large_base {
        for j in 1..LARGE {
            let parent = base + rng.below(j);
            let t = next_ts();
            for _ in 0..REPEATS {
                events.push(ev(t, large_host(base + j), large_host(parent), 8080, tcp));
            }
        }
    }
    for _ in 0..WEAK {
        let src = large_host(rng.below(2 * PAIRS));
        let dst = large_host(large_base[0] + rng.below(2 * LARGE));
        events.push(ev(next_ts(), src, dst, 5432, tcp));
    }
    let hubs = 2 * PAIRS + 2 * LARGE;
    for h in 0..HUBS {
        for _ in 0..HUB_CLIENTS {
            let client = large_host(rng.below(hubs));
            events.push(ev(next_ts(), client, large_host(hubs + h), 53, Proto::Udp));
        }
    }
    let loners = hubs + HUBS;
    for i in 0..LONERS {
        let ip = large_host(loners + i);
        events.push(ev(next_ts(), ip, ip, 80, tcp));
    }
    // The bridge: the last host of each large segment (non-hubs, joined to a random tree).
    let (left, right) = (
        large_host(large_base[0] + LARGE - 1),
        large_host(large_base[1] + LARGE - 1),
    );
    let bridge = vec![
        ev(2_000, left, right, 9000, tcp),
        ev(2_100, right, left, 9000, tcp),
        ev(2_200, left, right, 9000, tcp),
    ];
    // Hosts read one by one: the bridge, the large segments' first hosts, the hubs, and
    // every 500th host.
    let mut sample = vec![
        left,
        right,
        large_host(large_base[0]),
        large_host(large_base[1]),
    ];
    sample.extend((0..HUBS).map(|h| large_host(hubs + h)));
    sample.extend((0..loners + LONERS).step_by(500).map(large_host));
    let script = Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![
            one_phase(events, 13_000, vec![12_000]),
            one_phase(bridge, 14_000, vec![13_000]),
            one_phase(vec![], 34_000, vec![32_000, 33_000]),
        ],
        hosts: sample,
    };
    (script, left, right)
}

/// What the large test reads at one `as_of`.
#[derive(Clone, Debug)]
struct LargeRead {
    as_of: Millis,
    /// Every host's label, from a walk of the labels arrangement.
    labels: Vec<(IpAddr, Label)>,
    list: SegmentList,
    policy: Vec<PolicyRow>,
    hosts: Vec<Option<HostSegment>>,
    /// `segment(id, 10)` for the first sampled hosts' ids.
    details: Vec<Option<SegmentDetail>>,
    violations: Vec<Anomaly>,
}

const LARGE_DETAILS: usize = 9;
const LARGE_LIMIT: usize = 10;

fn large_ids(script: &Script) -> Vec<Label> {
    script
        .hosts
        .iter()
        .take(LARGE_DETAILS)
        .flat_map(|&ip| [SegmentId::Segment(ip), SegmentId::Hub(ip)])
        .collect()
}

fn large_read(
    traces: &mut SegmentTraces,
    script: &Script,
    _phase: usize,
    as_of: Millis,
) -> LargeRead {
    let mut labels = Vec::new();
    visit_rows(&mut traces.labels, as_of, None, |ip, values| {
        labels.extend(values.into_iter().map(|(label, _)| (*ip, label)));
        Next::Continue
    });
    let mut reader = SegmentReader::new(traces, as_of);
    LargeRead {
        as_of,
        labels,
        list: reader.list(LARGE_LIMIT, 5),
        policy: reader.policy(PolicyFilter::default(), PolicyOrder::Key, ALL),
        hosts: script.hosts.iter().map(|&ip| reader.host(ip)).collect(),
        details: large_ids(script)
            .iter()
            .map(|id| reader.segment(id, LARGE_LIMIT))
            .collect(),
        violations: reader.violations(as_of.saturating_sub(30_000), 50),
    }
}

/// A graph of over 100,000 hosts on two workers: every host's label, the listing's totals
/// and top rows, the whole policy, sampled hosts and segments, and the newest violations,
/// before and after a strong edge joins two large segments and after it leaves again.
#[test]
fn a_large_graph_joined_and_split_by_one_strong_edge() {
    let started = Instant::now();
    let (script, left, right) = large_script();
    let rules = SegmentRules::default();
    let parts = run_dataflow(&script, rules, 2, large_read);
    let ran = started.elapsed();
    let oracle = Oracle::new(&script, rules, Mistake::None);
    let ids = large_ids(&script);
    let reads = parts[0].len();
    for i in 0..reads {
        let at_i: Vec<&LargeRead> = parts.iter().map(|p| &p[i]).collect();
        let t = at_i[0].as_of;
        let state = oracle.state(t);

        let mut labels: Vec<(IpAddr, Label)> = at_i.iter().flat_map(|p| p.labels.clone()).collect();
        labels.sort();
        let mut expected: Vec<(IpAddr, Label)> =
            state.labels.iter().map(|(ip, l)| (*ip, *l)).collect();
        expected.sort();
        assert!(expected.len() > 100_000, "only {} hosts", expected.len());
        if labels != expected {
            let wrong: Vec<_> = labels
                .iter()
                .filter(|(ip, l)| state.labels.get(ip) != Some(l))
                .take(10)
                .collect();
            panic!(
                "at {t}: {} labels from the dataflow, {} from the oracle; first differences: {wrong:?}",
                labels.len(),
                expected.len()
            );
        }

        let list = merge_lists(at_i.iter().map(|p| p.list.clone()).collect(), LARGE_LIMIT);
        assert_eq!(list, oracle.list(t, LARGE_LIMIT, 5), "list at {t}");
        let parts = at_i.iter().map(|p| p.policy.clone()).collect();
        let policy = merge_policy(parts, PolicyOrder::Key, ALL);
        assert_eq!(policy.len(), state.policy.len(), "policy size at {t}");
        assert_eq!(
            policy,
            oracle.policy(t, PolicyFilter::default(), PolicyOrder::Key, ALL),
            "policy at {t}"
        );
        for (h, &ip) in script.hosts.iter().enumerate() {
            let mut several = Vec::new();
            let got = the_one(at_i.iter().map(|p| p.hosts[h]), "host", &mut several);
            assert!(several.is_empty(), "{several:?}");
            assert_eq!(got, oracle.host(t, ip), "host {ip} at {t}");
        }
        for (d, &id) in ids.iter().enumerate() {
            let mut several = Vec::new();
            let got = the_one(
                at_i.iter().map(|p| p.details[d].clone()),
                "segment",
                &mut several,
            );
            assert!(several.is_empty(), "{several:?}");
            assert_eq!(
                got,
                oracle.segment(t, id, LARGE_LIMIT),
                "segment {id} at {t}"
            );
        }
        let violations = merge_anomalies(at_i.iter().map(|p| p.violations.clone()), 50);
        assert_eq!(
            violations,
            oracle.violations(t, 30_000, 50),
            "violations at {t}"
        );

        // The bridge joins the two large segments from 13 s to 32 s.
        let joined = (13_000..33_000).contains(&t);
        assert_eq!(
            state.labels[&left] == state.labels[&right],
            joined,
            "the bridge at {t}"
        );
        let largest = list.rows[0].size;
        assert_eq!(
            largest >= 2 * LARGE as u64,
            joined,
            "largest {largest} at {t}"
        );
    }
    println!(
        "large graph: {} records, dataflow and reads {:.1?}, all with the oracle {:.1?}",
        oracle.records.len(),
        ran,
        started.elapsed()
    );
}
