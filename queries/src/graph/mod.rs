//! The connection-graph view (docs/design.md §4): edges and hosts per window.
//!
//! One arrangement serves both: it is keyed by host and holds, for each group of records of
//! one edge (at the tick while fresh, at a pane once its pane closes, coarser as it ages —
//! see `flowsight_operators::panes`), an [`Adjacency`] on each end: `Out` under the source
//! host and `In` under the destination. Its values sort by (direction, peer, port, proto,
//! span), so a host's edges are contiguous runs of values, and a group's [`GroupSpan`] says
//! which windows it is in: `span.first ≥` the window's start, `floor_pane(as_of − W)`.
//! Groups leave the arrangement when the longest window has passed them (future
//! retraction), which gives every window exactly its contents as docs/design.md §3 defines
//! them, late records included.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

use differential_dataflow::difference::{IsZero, Semigroup};
use differential_dataflow::hashable::Hashable;
use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::{ValBatcher, ValSpine};
use flowsight_events::{Event, Proto};
use flowsight_operators::topk::top_k;
use flowsight_operators::{FlowStats, GroupSpan, Millis, PaneSchedule, Paned, PreAggregateByTick};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;

pub mod ranking;

use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Exchange;
use timely::dataflow::Stream;

/// Which end of a connection the key host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The key host originated the connection.
    Out,
    /// The key host answered it.
    In,
}

/// One (key, tick) group of connections seen from one of its hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Adjacency {
    /// Which end of the connections the key host is.
    pub direction: Direction,
    /// The host at the other end.
    pub peer: IpAddr,
    /// The connections' destination port (the responder's), whichever end the key is.
    pub dst_port: u16,
    /// The connections' transport protocol.
    pub proto: Proto,
    /// The group's tick, and the first and last `ts` of its records.
    pub span: GroupSpan,
}

/// The arrangement behind the graph view: host → adjacency groups, counters in the diff.
pub type GraphTrace = TraceAgent<ValSpine<IpAddr, Adjacency, Millis, FlowStats>>;

/// The counters of one connection.
pub fn flow_stats(event: &Event) -> FlowStats {
    FlowStats::one(
        event.bytes_out,
        event.bytes_in,
        event.packets,
        event.status.is_failure(),
    )
}

/// One (key, tick) group of connections as it enters, seen from one of its hosts, with its
/// counters: what the risk view keeps its own windows from.
pub type GraphEntry = ((IpAddr, Adjacency), Millis, FlowStats);

/// What [`render`] builds.
pub struct GraphRendered<'scope> {
    /// The graph view: every window's groups, each at its pane.
    pub arranged: Arranged<'scope, GraphTrace>,
    /// Every group as it enters, once per end, on the worker that owns the key host (the
    /// same worker as the host's part of `arranged`).
    pub entries: Stream<'scope, Millis, Vec<GraphEntry>>,
    /// The schedule the groups are kept by, for what is rendered from them
    /// ([`ranking::render`]).
    pub schedule: PaneSchedule,
}

/// Renders the graph view from a stream of events at their timely times: pre-aggregated by
/// (edge, tick), moved to the worker of each end, then kept per (edge, pane) by `schedule`.
pub fn render<'scope>(
    events: Stream<'scope, Millis, Vec<Event>>,
    schedule: PaneSchedule,
) -> GraphRendered<'scope> {
    let entries = events
        .pre_aggregate_by_tick_named("GraphTicks", schedule.time(), |e: &Event| {
            (e.edge_key(), e.ts, flow_stats(e))
        })
        .flat_map(|((edge, span), at, stats)| {
            let out = Adjacency {
                direction: Direction::Out,
                peer: edge.dst_ip,
                dst_port: edge.dst_port,
                proto: edge.proto,
                span,
            };
            let inbound = Adjacency {
                direction: Direction::In,
                peer: edge.src_ip,
                ..out
            };
            [
                ((edge.src_ip, out), at, stats),
                ((edge.dst_ip, inbound), at, stats),
            ]
        })
        .exchange(|((host, _), _, _): &GraphEntry| host.hashed());
    let updates = entries
        .clone()
        .map(|((host, adjacency), at, stats)| {
            let group = (
                host,
                (
                    adjacency.direction,
                    adjacency.peer,
                    adjacency.dst_port,
                    adjacency.proto,
                ),
            );
            ((group, adjacency.span), at, stats)
        })
        .panes_named("GraphPanes", schedule.clone())
        .inner
        .map(
            |(((host, (direction, peer, dst_port, proto)), span), at, stats)| {
                let adjacency = Adjacency {
                    direction,
                    peer,
                    dst_port,
                    proto,
                    span,
                };
                ((host, adjacency), at, stats)
            },
        );
    // Each host's groups are already on the worker that owns it: they stay there.
    let arranged = arrange_core::<
        _,
        _,
        ValBatcher<IpAddr, Adjacency, Millis, FlowStats>,
        ValSpine<IpAddr, Adjacency, Millis, FlowStats>,
    >(updates, Pipeline, "GraphByHost", ValBatcher::new);
    GraphRendered {
        arranged,
        entries,
        schedule,
    }
}

/// One edge of the graph in one window, as served over HTTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRow {
    /// The originator of the edge's connections.
    pub src_ip: IpAddr,
    /// The responder.
    pub dst_ip: IpAddr,
    /// The responder's port.
    pub dst_port: u16,
    /// The transport protocol.
    pub proto: Proto,
    /// How many connections the window holds.
    pub count: u64,
    /// Bytes from originator to responder, summed.
    pub bytes_out: u64,
    /// Bytes from responder to originator, summed.
    pub bytes_in: u64,
    /// Packets both ways, summed.
    pub packets: u64,
    /// Connections whose status is not `established`.
    pub failed: u64,
    /// The earliest `ts` among them, ms since the epoch: exact while that record is kept at
    /// the tick, the start of its pane once it has moved to one (docs/design.md §3).
    pub first_seen: Millis,
    /// The latest `ts` among them, ms since the epoch: exact at the tick; for a record in a
    /// pane, the pane's end (at most `as_of − 1`).
    pub last_seen: Millis,
}

impl EdgeRow {
    /// "Heaviest first": most connections, then most bytes, then by key so that order never
    /// depends on which worker answered first.
    pub fn heaviest_first(a: &EdgeRow, b: &EdgeRow) -> Ordering {
        b.count
            .cmp(&a.count)
            .then_with(|| (b.bytes_out + b.bytes_in).cmp(&(a.bytes_out + a.bytes_in)))
            .then_with(|| a.key().cmp(&b.key()))
    }

    fn key(&self) -> (IpAddr, IpAddr, u16, Proto) {
        (self.src_ip, self.dst_ip, self.dst_port, self.proto)
    }
}

/// Which edges an edge query wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeFilter {
    /// Only edges from this host.
    pub src: Option<IpAddr>,
    /// Only edges to this host.
    pub dst: Option<IpAddr>,
}

/// A host's aggregates in one window (the host view of docs/design.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// The host.
    pub ip: IpAddr,
    /// Distinct hosts this host connected to.
    pub out_peers: u64,
    /// Distinct hosts that connected to this host.
    pub in_peers: u64,
    /// Connections this host originated.
    pub connections_out: u64,
    /// Connections this host answered.
    pub connections_in: u64,
    /// Bytes this host sent: originator bytes of its outbound connections plus responder
    /// bytes of its inbound ones.
    pub bytes_sent: u64,
    /// Bytes this host received, the other way round.
    pub bytes_received: u64,
    /// Connections this host originated whose status is not `established`.
    pub failed_out: u64,
    /// Connections this host answered whose status is not `established`.
    pub failed_in: u64,
    /// The earliest `ts` of its connections either way; none when it has none.
    pub first_seen: Option<Millis>,
    /// The latest `ts` of its connections either way.
    pub last_seen: Option<Millis>,
}

impl HostSummary {
    /// "Busiest first": most connections (out and in), then most bytes (sent and
    /// received), then by address, so that order never depends on which worker answered.
    pub fn busiest_first(a: &HostSummary, b: &HostSummary) -> Ordering {
        let connections = |h: &HostSummary| h.connections_out.saturating_add(h.connections_in);
        let bytes = |h: &HostSummary| h.bytes_sent.saturating_add(h.bytes_received);
        connections(b)
            .cmp(&connections(a))
            .then_with(|| bytes(b).cmp(&bytes(a)))
            .then_with(|| a.ip.cmp(&b.ip))
    }

    /// Aggregates a host's edges, each direction's grouped by peer (as a reader visits
    /// them); sums saturate rather than wrap on absurd counters.
    pub fn from_edges(ip: IpAddr, out_edges: &[EdgeRow], in_edges: &[EdgeRow]) -> Self {
        let mut totals = HostTotals::new(ip);
        for edge in out_edges {
            totals.add(Direction::Out, edge);
        }
        for edge in in_edges {
            totals.add(Direction::In, edge);
        }
        totals.summary
    }
}

/// A host's [`HostSummary`], summed one edge at a time: a reader's edges of one host and
/// direction come grouped by peer (the arrangement's values sort by direction, then
/// peer), so a distinct peer is a change of peer, and no set of peers is kept.
struct HostTotals {
    summary: HostSummary,
    last_out_peer: Option<IpAddr>,
    last_in_peer: Option<IpAddr>,
}

impl HostTotals {
    fn new(ip: IpAddr) -> HostTotals {
        HostTotals {
            summary: HostSummary {
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
            },
            last_out_peer: None,
            last_in_peer: None,
        }
    }

    fn add(&mut self, direction: Direction, edge: &EdgeRow) {
        let s = &mut self.summary;
        let (peer, last_peer, peers, connections, failed, sent, received) = match direction {
            Direction::Out => (
                edge.dst_ip,
                &mut self.last_out_peer,
                &mut s.out_peers,
                &mut s.connections_out,
                &mut s.failed_out,
                edge.bytes_out,
                edge.bytes_in,
            ),
            Direction::In => (
                edge.src_ip,
                &mut self.last_in_peer,
                &mut s.in_peers,
                &mut s.connections_in,
                &mut s.failed_in,
                edge.bytes_in,
                edge.bytes_out,
            ),
        };
        if *last_peer != Some(peer) {
            *last_peer = Some(peer);
            *peers += 1;
        }
        *connections = connections.saturating_add(edge.count);
        *failed = failed.saturating_add(edge.failed);
        s.bytes_sent = s.bytes_sent.saturating_add(sent);
        s.bytes_received = s.bytes_received.saturating_add(received);
        s.first_seen = Some(
            s.first_seen
                .map_or(edge.first_seen, |f| f.min(edge.first_seen)),
        );
        s.last_seen = Some(
            s.last_seen
                .map_or(edge.last_seen, |l| l.max(edge.last_seen)),
        );
    }
}

/// A host in one window: its aggregates over all its edges, and its heaviest edges each way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAnswer {
    /// Its totals over every edge of the window.
    pub summary: HostSummary,
    /// Its heaviest edges as originator, heaviest first.
    pub out_edges: Vec<EdgeRow>,
    /// Its heaviest edges as responder, heaviest first.
    pub in_edges: Vec<EdgeRow>,
}

/// Sums one run of values (one edge) at one as_of, within one window.
struct EdgeAccumulator {
    stats: FlowStats,
    first_seen: Millis,
    last_seen: Millis,
}

impl EdgeAccumulator {
    fn new() -> Self {
        EdgeAccumulator {
            stats: FlowStats::default(),
            first_seen: Millis::MAX,
            last_seen: 0,
        }
    }

    /// Adds a group read at `as_of`. A pane's span ends where the pane does, which may be
    /// after `as_of` while the pane is still filling: no record is that late, so the last
    /// seen time is cut to `as_of − 1`.
    fn add(&mut self, stats: &FlowStats, span: GroupSpan, as_of: Millis) {
        self.stats.plus_equals(stats);
        self.first_seen = self.first_seen.min(span.first);
        self.last_seen = self.last_seen.max(span.last.min(as_of.saturating_sub(1)));
    }

    fn row(&self, host: IpAddr, adjacency: &Adjacency) -> Option<EdgeRow> {
        if self.stats.count <= 0 {
            return None;
        }
        let (src_ip, dst_ip) = match adjacency.direction {
            Direction::Out => (host, adjacency.peer),
            Direction::In => (adjacency.peer, host),
        };
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        Some(EdgeRow {
            src_ip,
            dst_ip,
            dst_port: adjacency.dst_port,
            proto: adjacency.proto,
            count: unsigned(self.stats.count),
            bytes_out: unsigned(self.stats.bytes_out),
            bytes_in: unsigned(self.stats.bytes_in),
            packets: unsigned(self.stats.packets),
            failed: unsigned(self.stats.failed),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        })
    }
}

/// Reads a worker's part of the graph view at one `as_of`.
///
/// The caller must only read at an `as_of` that the arrangement has completed and that its
/// logical compaction has not passed.
pub struct GraphReader<'t> {
    trace: &'t mut GraphTrace,
    as_of: Millis,
    window_start: Millis,
}

impl<'t> GraphReader<'t> {
    /// A reader at `as_of` of the window that starts at `window_start` (the first
    /// timestamp it holds, `Windows::start`).
    pub fn new(trace: &'t mut GraphTrace, as_of: Millis, window_start: Millis) -> Self {
        GraphReader {
            trace,
            as_of,
            window_start,
        }
    }

    /// Visits the edges of `host` (or of every host when `None`) in one direction, in
    /// value order, each as a finished row.
    fn for_each_edge(
        &mut self,
        host: Option<IpAddr>,
        direction: Direction,
        mut visit: impl FnMut(EdgeRow),
    ) {
        let Some(batches) = crate::read::complete_batches(self.trace) else {
            return;
        };
        let (mut cursor, storage) = cursor_list(batches);
        if let Some(host) = host {
            cursor.seek_key(&storage, &host);
        }
        while let Some(key) = cursor.get_key(&storage) {
            let key = *key;
            if host.is_some_and(|h| h != key) {
                break;
            }
            let mut current: Option<(Adjacency, EdgeAccumulator)> = None;
            // Values sort by direction first: skip to this direction's run, stop after it.
            // (A linear skip: `seek_val` on the merged cursor did not return here.)
            if direction == Direction::In {
                while cursor
                    .get_val(&storage)
                    .is_some_and(|v| v.direction != Direction::In)
                {
                    cursor.step_val(&storage);
                }
            }
            while let Some(value) = cursor.get_val(&storage) {
                let value = *value;
                if value.direction != direction {
                    break;
                }
                if value.span.first >= self.window_start {
                    let mut at_as_of = FlowStats::default();
                    let as_of = self.as_of;
                    cursor.map_times(&storage, |time, diff| {
                        if *time <= as_of {
                            at_as_of.plus_equals(diff);
                        }
                    });
                    if !at_as_of.is_zero() {
                        let same_edge = current.as_ref().is_some_and(|(a, _)| {
                            (a.peer, a.dst_port, a.proto)
                                == (value.peer, value.dst_port, value.proto)
                        });
                        if !same_edge {
                            if let Some((adjacency, acc)) = current.take() {
                                if let Some(row) = acc.row(key, &adjacency) {
                                    visit(row);
                                }
                            }
                            current = Some((value, EdgeAccumulator::new()));
                        }
                        if let Some((_, acc)) = current.as_mut() {
                            acc.add(&at_as_of, value.span, as_of);
                        }
                    }
                }
                cursor.step_val(&storage);
            }
            if let Some((adjacency, acc)) = current.take() {
                if let Some(row) = acc.row(key, &adjacency) {
                    visit(row);
                }
            }
            if host.is_some() {
                break;
            }
            cursor.step_key(&storage);
        }
    }

    /// This worker's heaviest `limit` edges matching `filter`.
    pub fn edges(&mut self, filter: EdgeFilter, limit: usize) -> Vec<EdgeRow> {
        let mut rows = Vec::new();
        match (filter.src, filter.dst) {
            (Some(src), dst) => self.for_each_edge(Some(src), Direction::Out, |row| {
                if dst.is_none_or(|d| d == row.dst_ip) {
                    rows.push(row);
                }
            }),
            (None, Some(dst)) => self.for_each_edge(Some(dst), Direction::In, |row| rows.push(row)),
            (None, None) => self.for_each_edge(None, Direction::Out, |row| rows.push(row)),
        }
        top_k(rows, limit, EdgeRow::heaviest_first)
    }

    /// This worker's part of a host answer: the whole answer on the worker that owns the
    /// host (the arrangement is keyed by host), an empty one elsewhere. The summary covers
    /// every edge; each edge list keeps its `limit` heaviest.
    pub fn host(&mut self, ip: IpAddr, limit: usize) -> HostAnswer {
        let mut out_edges = Vec::new();
        let mut in_edges = Vec::new();
        self.for_each_edge(Some(ip), Direction::Out, |row| out_edges.push(row));
        self.for_each_edge(Some(ip), Direction::In, |row| in_edges.push(row));
        HostAnswer {
            summary: HostSummary::from_edges(ip, &out_edges, &in_edges),
            out_edges: top_k(out_edges, limit, EdgeRow::heaviest_first),
            in_edges: top_k(in_edges, limit, EdgeRow::heaviest_first),
        }
    }

    /// This worker's `limit` busiest hosts: every host's summary, as [`GraphReader::host`]
    /// gives it, busiest first ([`HostSummary::busiest_first`]). Each host's edges live on
    /// one worker (the arrangement is keyed by host), so each summary is whole.
    ///
    /// It keeps one summary per host of this worker while it reads, not the edges.
    pub fn busiest_hosts(&mut self, limit: usize) -> Vec<HostSummary> {
        let mut hosts: BTreeMap<IpAddr, HostTotals> = BTreeMap::new();
        for direction in [Direction::Out, Direction::In] {
            self.for_each_edge(None, direction, |row| {
                let ip = match direction {
                    Direction::Out => row.src_ip,
                    Direction::In => row.dst_ip,
                };
                hosts
                    .entry(ip)
                    .or_insert_with(|| HostTotals::new(ip))
                    .add(direction, &row);
            });
        }
        let summaries = hosts.into_values().map(|totals| totals.summary).collect();
        top_k(summaries, limit, HostSummary::busiest_first)
    }
}

/// Merges the workers' busiest-host lists into the answer.
pub fn merge_busiest(
    parts: impl IntoIterator<Item = Vec<HostSummary>>,
    limit: usize,
) -> Vec<HostSummary> {
    top_k(
        parts.into_iter().flatten().collect(),
        limit,
        HostSummary::busiest_first,
    )
}

/// Merges the workers' heaviest-edge lists into the answer.
pub fn merge_edges(parts: impl IntoIterator<Item = Vec<EdgeRow>>, limit: usize) -> Vec<EdgeRow> {
    top_k(
        parts.into_iter().flatten().collect(),
        limit,
        EdgeRow::heaviest_first,
    )
}

/// Merges the workers' parts of a host answer: only the worker owning the host has any
/// edges, so its part is the answer.
pub fn merge_host(ip: IpAddr, parts: impl IntoIterator<Item = HostAnswer>) -> HostAnswer {
    parts
        .into_iter()
        .find(|part| !part.out_edges.is_empty() || !part.in_edges.is_empty())
        .unwrap_or_else(|| HostAnswer {
            summary: HostSummary::from_edges(ip, &[], &[]),
            out_edges: Vec::new(),
            in_edges: Vec::new(),
        })
}
