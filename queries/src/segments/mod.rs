//! The microsegmentation views (docs/design.md §4, docs/segments.md): segments, hubs, the
//! proposed allow-list policy and the `policy_violation` anomalies, over the longest window.
//!
//! Rendered from the graph arrangement's outbound groups. The segmentation itself (hubs,
//! strong edges, components) is [`crate::segments::propagation::segment`]; this module
//! labels every edge with the segments of its two ends and arranges, each by the key its
//! reads seek:
//!
//! * host → its segment (or hub) — `/v1/hosts/{ip}/segment`;
//! * segment → member, counted by the member's connections — sizes and busiest members;
//! * segment → traffic inside, out and in, counted by connections;
//! * segment → (other segment, port, protocol) both ways, counted by connections — the
//!   policy and a segment's edges;
//! * hub → distinct peers;
//! * (first seen descending, source) → evidence — policy violations, newest first.
//!
//! Everything keyed by a segment lands on the worker that owns the segment, so one worker
//! holds all of a segment and answers for it alone; listings merge the workers' parts.

// The grouping itself: strong edges and components by differential's label propagation.
pub mod propagation;

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::risk::anomaly::{Anomaly, AnomalyKind, Evidence};
use crate::segments::propagation::{segment, SegmentId, SegmentRules};
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::{AsCollection, VecCollection};
use flowsight_events::Proto;
use flowsight_operators::earliest::EarliestByKey;
use flowsight_operators::Millis;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};
use timely::progress::frontier::AntichainRef;

use crate::graph::{Direction, GraphTrace};
use crate::read::{visit_rows, Next, RowTrace};

/// A segment or hub, named as docs/design.md §4 does.
pub type Label = SegmentId<IpAddr>;

/// Which way a segment's connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Traffic {
    /// Both ends in the segment.
    Inside,
    /// From a member to another segment or a hub.
    Out,
    /// From another segment or a hub to a member.
    In,
}

/// Policy key: (other segment, dst_port, proto).
pub type Service = (Label, u16, Proto);
/// Violation key: (timestamp descending, source host).
pub type ViolationKey = (Reverse<Millis>, IpAddr);

/// The arrangements of the segmentation views on one worker.
pub struct SegmentTraces {
    /// Host → its segment, or its own hub label.
    pub labels: RowTrace<IpAddr, Label>,
    /// Segment or hub → member, counted by the member's connections in the window.
    pub members: RowTrace<Label, IpAddr>,
    /// Segment or hub → which way its connections go, counted by connections.
    pub traffic: RowTrace<Label, Traffic>,
    /// from → (to, port, proto).
    pub policy_out: RowTrace<Label, Service>,
    /// to → (from, port, proto).
    pub policy_in: RowTrace<Label, Service>,
    /// Hub address → its number of distinct peers.
    pub hubs: RowTrace<IpAddr, u64>,
    /// The first connection of each policy entry in the longest window, newest first,
    /// with its `policy_violation` evidence.
    pub violations: RowTrace<ViolationKey, Evidence>,
}

impl SegmentTraces {
    /// Lets the arrangements forget times before `readable` and merge batches before
    /// `complete`.
    pub fn compact(
        &mut self,
        readable: AntichainRef<'_, Millis>,
        complete: AntichainRef<'_, Millis>,
    ) {
        macro_rules! each {
            ($($trace:ident),*) => {$(
                self.$trace.set_logical_compaction(readable);
                self.$trace.set_physical_compaction(complete);
            )*};
        }
        each!(labels, members, traffic, policy_out, policy_in, hubs, violations);
    }
}

/// What [`render`] builds.
pub struct SegmentsRendered<'scope> {
    /// The arrangements the views are read from ([`SegmentReader`]).
    pub traces: SegmentTraces,
    /// Completes a time once every segmentation arrangement has.
    pub progress: Stream<'scope, Millis, Vec<()>>,
}

/// An outbound group of the graph: (src, dst, port, proto) with the timestamp of its
/// first record, counted by records.
type Groups<'scope> = VecCollection<'scope, Millis, ((IpAddr, IpAddr, u16, Proto), Millis), isize>;

/// Renders the segmentation views from the graph arrangement, whose contents are the
/// longest window.
pub fn render<'scope>(
    graph: &Arranged<'scope, GraphTrace>,
    rules: SegmentRules,
) -> SegmentsRendered<'scope> {
    let scope: Scope<'scope, Millis> = graph.stream.scope();
    let groups: Groups<'scope> = graph
        .clone()
        .flat_map_ref(|host, adjacency| {
            (adjacency.direction == Direction::Out).then_some((
                (*host, adjacency.peer, adjacency.dst_port, adjacency.proto),
                adjacency.span.first,
            ))
        })
        .inner
        .map(|(group, time, stats)| (group, time, stats.count as isize))
        .as_collection();
    let edges = groups.clone().map(|(edge, _)| edge);

    let segmentation = segment(edges.clone().map(|(src, dst, _, _)| (src, dst)), rules);
    let labels = segmentation.labels.arrange_by_key_named("SegmentOfHost");
    let hubs = segmentation.hubs.arrange_by_key_named("HubPeers");

    // Every edge with both ends' segments, counted by connections; members, traffic and
    // the policy all come from it, so each group of records is labelled once.
    let labelled = label_both_ends(
        edges.map(|(src, dst, port, proto)| (src, (dst, port, proto, (src, dst)))),
        &labels,
    );
    // A member counts its connections either way; a connection with itself once.
    let members = labelled
        .clone()
        .flat_map(|(from, to, (_, _, (src, dst)))| {
            if src == dst {
                vec![(from, src)]
            } else {
                vec![(from, src), (to, dst)]
            }
        })
        .arrange_by_key_named("SegmentMembers");
    let labelled = labelled.map(|(from, to, (port, proto, _))| (from, to, port, proto));
    let traffic = labelled
        .clone()
        .flat_map(|(from, to, _, _)| {
            if from == to {
                vec![(from, Traffic::Inside)]
            } else {
                vec![(from, Traffic::Out), (to, Traffic::In)]
            }
        })
        .arrange_by_key_named("SegmentTraffic");
    let between = labelled.filter(|(from, to, _, _)| from != to);
    let policy_out = between
        .clone()
        .map(|(from, to, port, proto)| (from, (to, port, proto)))
        .arrange_by_key_named("PolicyByFrom");
    let policy_in = between
        .map(|(from, to, port, proto)| (to, (from, port, proto)))
        .arrange_by_key_named("PolicyByTo");

    // A violation is the first connection of a policy entry in the window: the earliest
    // record of each edge, labelled, then the earliest of each (from, to, port, proto).
    let first_of_edge = groups.earliest_by_key_named("FirstOfEdge");
    let violations = label_both_ends(
        first_of_edge
            .map(|((src, dst, port, proto), ts)| (src, (dst, port, proto, (ts, src, dst)))),
        &labels,
    )
    .filter(|(from, to, _)| from != to)
    .map(|(from, to, (port, proto, first))| ((from, to, port, proto), first))
    .earliest_by_key_named("FirstOfPolicyEntry")
    .map(|((from, to, dst_port, proto), (ts, src, dst_ip))| {
        (
            (Reverse(ts), src),
            Evidence::PolicyViolation {
                from,
                to,
                dst_ip,
                dst_port,
                proto,
            },
        )
    })
    .arrange_by_key_named("PolicyViolations");

    let progress = scope.concatenate([
        labels.stream.clone().map(|_| ()),
        members.stream.clone().map(|_| ()),
        traffic.stream.clone().map(|_| ()),
        policy_out.stream.clone().map(|_| ()),
        policy_in.stream.clone().map(|_| ()),
        hubs.stream.clone().map(|_| ()),
        violations.stream.clone().map(|_| ()),
    ]);
    SegmentsRendered {
        traces: SegmentTraces {
            labels: labels.trace,
            members: members.trace,
            traffic: traffic.trace,
            policy_out: policy_out.trace,
            policy_in: policy_in.trace,
            hubs: hubs.trace,
            violations: violations.trace,
        },
        progress,
    }
}

/// Replaces both ends of `(src, (dst, port, proto, extra))` by their segments:
/// `(from, to, (port, proto, extra))`.
#[allow(clippy::type_complexity)]
fn label_both_ends<'scope, X>(
    edges: VecCollection<'scope, Millis, (IpAddr, (IpAddr, u16, Proto, X)), isize>,
    labels: &Arranged<'scope, RowTrace<IpAddr, Label>>,
) -> VecCollection<'scope, Millis, (Label, Label, (u16, Proto, X)), isize>
where
    X: differential_dataflow::ExchangeData + Copy,
{
    edges
        .arrange_by_key_named("EdgesBySource")
        .join_core(labels.clone(), |_src, &(dst, port, proto, extra), from| {
            Some((dst, (*from, port, proto, extra)))
        })
        .arrange_by_key_named("EdgesByDestination")
        .join_core(labels.clone(), |_dst, &(from, port, proto, extra), to| {
            Some((from, *to, (port, proto, extra)))
        })
}

/// Serialises a segment id as its text (`10.0.0.1`, `hub:10.0.0.9`), as users read it.
mod label_text {
    use super::Label;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(label: &Label, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(label)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Label, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A member and its connections in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    /// The member's address.
    pub ip: IpAddr,
    /// Its connections in the window, as source or destination (one with itself counts
    /// once).
    pub connections: u64,
}

impl MemberRow {
    /// Busiest first, ties by address.
    fn busiest_first(a: &MemberRow, b: &MemberRow) -> Ordering {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.ip.cmp(&b.ip))
    }
}

/// Connections of a segment, by where they go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficRow {
    /// Connections with both ends in the segment.
    pub inside: u64,
    /// Connections from a member to another segment or a hub.
    pub out: u64,
    /// Connections from another segment or a hub to a member; `in` in JSON.
    #[serde(rename = "in")]
    pub inbound: u64,
}

/// A segment in the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRow {
    /// The segment's id, its smallest member; text in JSON.
    #[serde(with = "label_text")]
    pub id: Label,
    /// How many members it has.
    pub size: u64,
    /// The busiest members, busiest first.
    pub members: Vec<MemberRow>,
    /// Its connections, by where they go.
    pub traffic: TrafficRow,
}

impl SegmentRow {
    /// Largest first, ties by id.
    pub fn largest_first(a: &SegmentRow, b: &SegmentRow) -> Ordering {
        b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id))
    }
}

/// A hub (shared service): its distinct peers and connections in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubRow {
    /// The hub's address.
    pub ip: IpAddr,
    /// Its distinct peers in the window (at least `hub_degree`).
    pub peers: u64,
    /// Its connections in the window; 0 in a worker's part, filled in by [`merge_lists`].
    pub connections: u64,
}

impl HubRow {
    /// Most peers first, ties by address.
    pub fn most_peers_first(a: &HubRow, b: &HubRow) -> Ordering {
        b.peers.cmp(&a.peers).then_with(|| a.ip.cmp(&b.ip))
    }
}

/// One worker's part of `/v1/segments`, or the merged answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentList {
    /// How many segments there are (on this worker, or in all); hubs are in `hubs`.
    pub segments: u64,
    /// How many hubs there are (on this worker, or in all).
    pub hubs: u64,
    /// The largest segments, largest first, at most the read's `limit`.
    pub rows: Vec<SegmentRow>,
    /// A hub's peers are counted where the hub's address is kept, its connections where
    /// its label is: `connections` is filled in from every part's `hub_connections` when
    /// the parts merge.
    pub hub_rows: Vec<HubRow>,
    /// (hub address, connections) of the hubs whose label this worker keeps; empty once
    /// merged.
    pub hub_connections: Vec<(IpAddr, u64)>,
}

/// One (port, protocol) between a segment and another, with its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRow {
    /// The destination port.
    pub dst_port: u16,
    /// The protocol.
    pub proto: Proto,
    /// Connections on that (port, protocol) in the window, that way.
    pub count: u64,
}

/// A segment's connections with one other segment or hub, one way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEdge {
    /// The other segment or hub; text in JSON.
    #[serde(with = "label_text")]
    pub peer: Label,
    /// Connections with it in the window, over every port: the sum of `ports`' counts.
    pub connections: u64,
    /// The (port, protocol) pairs used, each with its connections.
    pub ports: Vec<PortRow>,
}

/// `/v1/segments/{id}`: the whole segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDetail {
    /// The segment's or hub's id; text in JSON.
    #[serde(with = "label_text")]
    pub id: Label,
    /// Whether `id` is a hub rather than a segment.
    pub hub: bool,
    /// How many members it has, whatever the limit on `members`.
    pub size: u64,
    /// The busiest members first, at most the read's limit.
    pub members: Vec<MemberRow>,
    /// Its connections, by where they go.
    pub traffic: TrafficRow,
    /// To other segments and hubs, most connections first.
    pub edges_out: Vec<SegmentEdge>,
    /// From other segments and hubs, most connections first.
    pub edges_in: Vec<SegmentEdge>,
}

/// `/v1/hosts/{ip}/segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSegment {
    /// The host asked about.
    pub ip: IpAddr,
    /// Its segment, or its own hub label; text in JSON.
    #[serde(with = "label_text")]
    pub segment: Label,
    /// Whether the host is a hub.
    pub hub: bool,
}

/// One entry of the proposed allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRow {
    /// The segment (or hub) of the connections' sources; text in JSON.
    #[serde(with = "label_text")]
    pub from: Label,
    /// The segment (or hub) of their destinations, never `from`; text in JSON.
    #[serde(with = "label_text")]
    pub to: Label,
    /// The destination port allowed.
    pub dst_port: u16,
    /// The protocol allowed.
    pub proto: Proto,
    /// Connections of this entry in the window.
    pub count: u64,
}

impl PolicyRow {
    fn key(&self) -> (Label, Label, u16, Proto) {
        (self.from, self.to, self.dst_port, self.proto)
    }

    /// By (from, to, dst_port, proto).
    pub fn in_key_order(a: &PolicyRow, b: &PolicyRow) -> Ordering {
        a.key().cmp(&b.key())
    }

    /// Most connections first, ties in key order.
    pub fn busiest_first(a: &PolicyRow, b: &PolicyRow) -> Ordering {
        b.count.cmp(&a.count).then_with(|| a.key().cmp(&b.key()))
    }
}

/// The order a policy read lists its entries in, and so which `limit` of them it keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyOrder {
    /// By (from, to, dst_port, proto): the order of an allow-list to export.
    #[default]
    Key,
    /// Most connections first: the flows that matter most when not all of them fit.
    Busiest,
}

impl PolicyOrder {
    /// How `a` and `b` compare in this order.
    pub fn compare(self, a: &PolicyRow, b: &PolicyRow) -> Ordering {
        match self {
            PolicyOrder::Key => PolicyRow::in_key_order(a, b),
            PolicyOrder::Busiest => PolicyRow::busiest_first(a, b),
        }
    }
}

/// Which policy entries a read wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFilter {
    /// Only entries from this segment or hub; `None`: from any.
    pub from: Option<Label>,
    /// Only entries to this segment or hub; `None`: to any.
    pub to: Option<Label>,
}

/// The rows of one key at `as_of`.
fn rows_of<K, V>(trace: &mut RowTrace<K, V>, as_of: Millis, key: &K) -> Vec<(V, isize)>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    let mut found = Vec::new();
    visit_rows(trace, as_of, Some(key), |at, values| {
        if at == key {
            found = values;
        }
        Next::Stop
    });
    found
}

fn count(diff: isize) -> u64 {
    diff.unsigned_abs() as u64
}

/// Reads a worker's part of the segmentation views at one `as_of`.
///
/// The caller must only read at an `as_of` that the arrangements have completed and that
/// their logical compaction has not passed.
pub struct SegmentReader<'t> {
    traces: &'t mut SegmentTraces,
    as_of: Millis,
}

impl<'t> SegmentReader<'t> {
    /// A reader of `traces` at `as_of` (ms since the epoch).
    pub fn new(traces: &'t mut SegmentTraces, as_of: Millis) -> Self {
        SegmentReader { traces, as_of }
    }

    fn members_of(&mut self, id: &Label) -> Vec<MemberRow> {
        let mut members: Vec<MemberRow> = rows_of(&mut self.traces.members, self.as_of, id)
            .into_iter()
            .map(|(ip, diff)| MemberRow {
                ip,
                connections: count(diff),
            })
            .collect();
        members.sort_by(MemberRow::busiest_first);
        members
    }

    fn traffic_of(&mut self, id: &Label) -> TrafficRow {
        let mut traffic = TrafficRow::default();
        for (kind, diff) in rows_of(&mut self.traces.traffic, self.as_of, id) {
            match kind {
                Traffic::Inside => traffic.inside = count(diff),
                Traffic::Out => traffic.out = count(diff),
                Traffic::In => traffic.inbound = count(diff),
            }
        }
        traffic
    }

    /// This worker's `limit` largest segments, each with its `shown` busiest members, and
    /// its `limit` hubs with the most peers; the totals count every segment and hub.
    pub fn list(&mut self, limit: usize, shown: usize) -> SegmentList {
        let mut sizes: Vec<(Reverse<u64>, Label)> = Vec::new();
        let mut hub_connections = Vec::new();
        visit_rows(&mut self.traces.members, self.as_of, None, |id, members| {
            match id {
                SegmentId::Hub(ip) => {
                    hub_connections.extend(members.iter().map(|(_, diff)| (*ip, count(*diff))))
                }
                SegmentId::Segment(_) => sizes.push((Reverse(members.len() as u64), *id)),
            }
            Next::Continue
        });
        let hubs = hub_connections.len() as u64;
        let segments = sizes.len() as u64;
        sizes.sort();
        sizes.truncate(limit);
        let rows = sizes
            .into_iter()
            .map(|(Reverse(size), id)| {
                let mut members = self.members_of(&id);
                members.truncate(shown);
                SegmentRow {
                    id,
                    size,
                    members,
                    traffic: self.traffic_of(&id),
                }
            })
            .collect();

        let mut hub_rows: Vec<HubRow> = Vec::new();
        visit_rows(&mut self.traces.hubs, self.as_of, None, |ip, degrees| {
            for (peers, _) in degrees {
                hub_rows.push(HubRow {
                    ip: *ip,
                    peers,
                    connections: 0,
                });
            }
            Next::Continue
        });
        hub_rows.sort_by(HubRow::most_peers_first);
        hub_rows.truncate(limit);
        SegmentList {
            segments,
            hubs,
            rows,
            hub_rows,
            hub_connections,
        }
    }

    /// The whole segment (or hub) `id`, if this worker holds it, with at most
    /// `member_limit` members.
    pub fn segment(&mut self, id: &Label, member_limit: usize) -> Option<SegmentDetail> {
        let mut members = self.members_of(id);
        if members.is_empty() {
            return None;
        }
        let size = members.len() as u64;
        members.truncate(member_limit);
        let edges_out = edges(rows_of(&mut self.traces.policy_out, self.as_of, id));
        let edges_in = edges(rows_of(&mut self.traces.policy_in, self.as_of, id));
        Some(SegmentDetail {
            id: *id,
            hub: id.is_hub(),
            size,
            members,
            traffic: self.traffic_of(id),
            edges_out,
            edges_in,
        })
    }

    /// Where `ip` belongs, if this worker holds it.
    pub fn host(&mut self, ip: IpAddr) -> Option<HostSegment> {
        rows_of(&mut self.traces.labels, self.as_of, &ip)
            .into_iter()
            .next()
            .map(|(segment, _)| HostSegment {
                ip,
                segment,
                hub: segment.is_hub(),
            })
    }

    /// This worker's first `limit` policy entries in `order`.
    pub fn policy(
        &mut self,
        filter: PolicyFilter,
        order: PolicyOrder,
        limit: usize,
    ) -> Vec<PolicyRow> {
        let mut rows = Vec::new();
        // Seek by whichever end is fixed; the other is checked on each row.
        let (trace, seek, by_destination) = match (filter.from, filter.to) {
            (None, Some(to)) => (&mut self.traces.policy_in, Some(to), true),
            (from, _) => (&mut self.traces.policy_out, from, false),
        };
        visit_rows(trace, self.as_of, seek.as_ref(), |key, services| {
            if seek.is_some_and(|seek| seek != *key) {
                return Next::Stop;
            }
            for ((other, dst_port, proto), diff) in services {
                let (from, to) = if by_destination {
                    (other, *key)
                } else {
                    (*key, other)
                };
                if filter.to.is_some_and(|want| want != to) {
                    continue;
                }
                rows.push(PolicyRow {
                    from,
                    to,
                    dst_port,
                    proto,
                    count: count(diff),
                });
            }
            // The trace is in key order, so a key-ordered read may stop early; the busiest
            // entries can be anywhere.
            if order == PolicyOrder::Key && rows.len() >= limit {
                return Next::Stop;
            }
            Next::Continue
        });
        rows.sort_by(|a, b| order.compare(a, b));
        rows.truncate(limit);
        rows
    }

    /// This worker's policy violations in the window that starts at `since` (its first
    /// timestamp, `Windows::start`), newest first, at most `limit`.
    pub fn violations(&mut self, since: Millis, limit: usize) -> Vec<Anomaly> {
        let mut rows = Vec::new();
        visit_rows(
            &mut self.traces.violations,
            self.as_of,
            None,
            |&(Reverse(ts), host), evidence| {
                if ts < since || rows.len() >= limit {
                    return Next::Stop;
                }
                for (evidence, _) in evidence {
                    rows.push(Anomaly {
                        host,
                        kind: AnomalyKind::PolicyViolation,
                        first_detected: ts,
                        evidence,
                    });
                }
                Next::Continue
            },
        );
        rows.truncate(limit);
        rows
    }
}

/// A segment's policy rows one way, grouped by the other segment.
fn edges(services: Vec<(Service, isize)>) -> Vec<SegmentEdge> {
    let mut by_peer: BTreeMap<Label, SegmentEdge> = BTreeMap::new();
    for ((peer, dst_port, proto), diff) in services {
        let edge = by_peer.entry(peer).or_insert_with(|| SegmentEdge {
            peer,
            connections: 0,
            ports: Vec::new(),
        });
        edge.connections += count(diff);
        edge.ports.push(PortRow {
            dst_port,
            proto,
            count: count(diff),
        });
    }
    let mut edges: Vec<SegmentEdge> = by_peer.into_values().collect();
    edges.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.peer.cmp(&b.peer))
    });
    edges
}

/// Merges the workers' listings: the `limit` largest segments and the `limit` hubs with
/// the most peers, each hub with its connections.
pub fn merge_lists(parts: Vec<SegmentList>, limit: usize) -> SegmentList {
    let mut merged = SegmentList::default();
    let mut connections: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for part in parts {
        merged.segments += part.segments;
        merged.hubs += part.hubs;
        merged.rows.extend(part.rows);
        merged.hub_rows.extend(part.hub_rows);
        connections.extend(part.hub_connections);
    }
    merged.rows.sort_by(SegmentRow::largest_first);
    merged.rows.truncate(limit);
    merged.hub_rows.sort_by(HubRow::most_peers_first);
    merged.hub_rows.truncate(limit);
    for hub in &mut merged.hub_rows {
        hub.connections = connections.get(&hub.ip).copied().unwrap_or(0);
    }
    merged
}

/// Merges the workers' policy parts (each entry is on one worker): the first `limit` in
/// `order`.
pub fn merge_policy(
    parts: Vec<Vec<PolicyRow>>,
    order: PolicyOrder,
    limit: usize,
) -> Vec<PolicyRow> {
    let mut rows: Vec<PolicyRow> = parts.into_iter().flatten().collect();
    rows.sort_by(|a, b| order.compare(a, b));
    rows.truncate(limit);
    rows
}
