//! The graph view's rankings: every window's edges heaviest first and hosts busiest first,
//! maintained as records enter and as windows slide, so that `/v1/graph/edges` and
//! `/v1/graph/hosts` walk `limit` rows instead of every group the window holds.
//!
//! One operator per worker keeps, for every edge whose originator the worker owns and every
//! host it owns, its totals in each window (an edge: its counters and first and last seen;
//! a host: its counters each way, its distinct peers each way, first and last seen), and
//! emits a ranking row's retraction and insertion whenever one changes. Two things change
//! them:
//!
//! * groups entering (the graph's entries): added to every window whose start they are at
//!   or after, at the span the pane schedule keeps them at (a late group enters straight
//!   into its pane);
//! * the schedule's changes (`PaneSchedule::next_change_after`): a pane of the shortest
//!   window closing (its groups' first and last seen become the pane's), a window's start
//!   moving on (its oldest pane leaves it). At each such time the operator reads the
//!   worker's part of the graph arrangement at that time — complete through it, since the
//!   operator waits for the arrangement's frontier — and recomputes every total from it.
//!
//! So a ranking row at `T` is exactly what a scan of the graph at `T` gives
//! ([`super::GraphReader`]); the oracle tests check both. What it stores: per distinct edge
//! of the longest window one set of totals per window, per host the same, per (host,
//! direction, peer) one connection count per window, plus one ranking row per (edge or
//! host, window) in the arrangements. What it costs: one read of the worker's graph state
//! per change of the schedule — once per pane of the shortest window with the defaults.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::IpAddr;

use differential_dataflow::difference::Semigroup;
use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::{ValBatcher, ValSpine};
use differential_dataflow::trace::TraceReader;
use flowsight_events::Proto;
use flowsight_operators::{split_by_time, FlowStats, GroupSpan, Millis, PaneSchedule, VecBuilder};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Operator};
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use super::{Adjacency, Direction, EdgeRow, GraphEntry, GraphRendered, GraphTrace, HostSummary};
use crate::read::{visit_rows, Next, RowTrace};

/// An edge: originator, responder, the responder's port, the protocol.
pub type EdgeKey = (IpAddr, IpAddr, u16, Proto);

/// An edge's ranking key: (window, connections descending, bytes descending, edge) — the
/// order of [`EdgeRow::heaviest_first`].
pub type EdgeRankKey = (Millis, Reverse<u64>, Reverse<u64>, EdgeKey);

/// A host's ranking key: (window, connections descending, bytes descending, host) — the
/// order of [`HostSummary::busiest_first`].
pub type HostRankKey = (Millis, Reverse<u64>, Reverse<u64>, IpAddr);

/// An edge's totals in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeTotals {
    /// Its counters summed.
    pub stats: FlowStats,
    /// The earliest first of its groups' spans.
    pub first: Millis,
    /// The latest last of its groups' spans (a reader cuts it at `as_of − 1`).
    pub last: Millis,
}

impl EdgeTotals {
    const EMPTY: EdgeTotals = EdgeTotals {
        stats: FlowStats {
            count: 0,
            bytes_out: 0,
            bytes_in: 0,
            packets: 0,
            failed: 0,
        },
        first: Millis::MAX,
        last: 0,
    };

    fn add(&mut self, stats: &FlowStats, span: GroupSpan) {
        self.stats.plus_equals(stats);
        self.first = self.first.min(span.first);
        self.last = self.last.max(span.last);
    }

    fn present(&self) -> bool {
        self.stats.count > 0
    }
}

/// A host's totals in one window: each direction's counters and distinct peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostTotals {
    /// The connections it originated, summed.
    pub out: FlowStats,
    /// The connections it answered, summed.
    pub inbound: FlowStats,
    /// Distinct hosts it connected to.
    pub out_peers: u64,
    /// Distinct hosts that connected to it.
    pub in_peers: u64,
    /// The earliest first of its groups' spans, either way.
    pub first: Millis,
    /// The latest last of its groups' spans, either way.
    pub last: Millis,
}

impl HostTotals {
    const EMPTY: HostTotals = HostTotals {
        out: EdgeTotals::EMPTY.stats,
        inbound: EdgeTotals::EMPTY.stats,
        out_peers: 0,
        in_peers: 0,
        first: Millis::MAX,
        last: 0,
    };

    fn add(&mut self, direction: Direction, stats: &FlowStats, span: GroupSpan) {
        match direction {
            Direction::Out => self.out.plus_equals(stats),
            Direction::In => self.inbound.plus_equals(stats),
        }
        self.first = self.first.min(span.first);
        self.last = self.last.max(span.last);
    }

    fn peers(&mut self, direction: Direction) -> &mut u64 {
        match direction {
            Direction::Out => &mut self.out_peers,
            Direction::In => &mut self.in_peers,
        }
    }

    fn present(&self) -> bool {
        self.out.count > 0 || self.inbound.count > 0
    }

    /// The host's summary as of `as_of` (last seen cut at `as_of − 1`, as the scan does).
    pub fn summary(&self, ip: IpAddr, as_of: Millis) -> HostSummary {
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        let seen = self.present();
        HostSummary {
            ip,
            out_peers: self.out_peers,
            in_peers: self.in_peers,
            connections_out: unsigned(self.out.count),
            connections_in: unsigned(self.inbound.count),
            bytes_sent: unsigned(self.out.bytes_out)
                .saturating_add(unsigned(self.inbound.bytes_in)),
            bytes_received: unsigned(self.out.bytes_in)
                .saturating_add(unsigned(self.inbound.bytes_out)),
            failed_out: unsigned(self.out.failed),
            failed_in: unsigned(self.inbound.failed),
            first_seen: seen.then_some(self.first),
            last_seen: seen.then_some(self.last.min(as_of.saturating_sub(1))),
        }
    }
}

fn edge_row(edge: &EdgeKey, totals: &EdgeTotals, as_of: Millis) -> EdgeRow {
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    EdgeRow {
        src_ip: edge.0,
        dst_ip: edge.1,
        dst_port: edge.2,
        proto: edge.3,
        count: unsigned(totals.stats.count),
        bytes_out: unsigned(totals.stats.bytes_out),
        bytes_in: unsigned(totals.stats.bytes_in),
        packets: unsigned(totals.stats.packets),
        failed: unsigned(totals.stats.failed),
        first_seen: totals.first,
        last_seen: totals.last.min(as_of.saturating_sub(1)),
    }
}

fn edge_rank(window: Millis, edge: EdgeKey, totals: &EdgeTotals) -> EdgeRankKey {
    // The row's own fields, so that the order is exactly `heaviest_first`'s.
    let row = edge_row(&edge, totals, Millis::MAX);
    (
        window,
        Reverse(row.count),
        Reverse(row.bytes_out + row.bytes_in),
        edge,
    )
}

fn host_rank(window: Millis, ip: IpAddr, totals: &HostTotals) -> HostRankKey {
    let s = totals.summary(ip, Millis::MAX);
    (
        window,
        Reverse(s.connections_out.saturating_add(s.connections_in)),
        Reverse(s.bytes_sent.saturating_add(s.bytes_received)),
        ip,
    )
}

/// One change of a ranking, with its diff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RankUpdate {
    Edge(EdgeRankKey, EdgeTotals),
    Host(HostRankKey, HostTotals),
}

/// The rankings' arrangements on one worker.
pub struct RankTraces {
    /// Every window's edges whose originator this worker owns, heaviest first.
    pub edges: RowTrace<EdgeRankKey, EdgeTotals>,
    /// Every window's hosts this worker owns, busiest first.
    pub hosts: RowTrace<HostRankKey, HostTotals>,
}

impl RankTraces {
    /// Lets the arrangements forget times before `readable` and merge batches before
    /// `complete`.
    pub fn compact(
        &mut self,
        readable: AntichainRef<'_, Millis>,
        complete: AntichainRef<'_, Millis>,
    ) {
        self.edges.set_logical_compaction(readable);
        self.hosts.set_logical_compaction(readable);
        self.edges.set_physical_compaction(complete);
        self.hosts.set_physical_compaction(complete);
    }
}

/// What [`render`] builds.
pub struct RankingsRendered<'scope> {
    /// The rankings' arrangements.
    pub traces: RankTraces,
    /// Completes a time once both rankings have.
    pub progress: Stream<'scope, Millis, Vec<()>>,
}

/// Every window's totals of every edge and host of this worker, and the connections of
/// every (host, direction, peer), in one place.
struct Totals {
    /// Per edge (on its originator's worker), one per window.
    edges: FxHashMap<EdgeKey, Box<[EdgeTotals]>>,
    /// Per host, one per window.
    hosts: FxHashMap<IpAddr, Box<[HostTotals]>>,
    /// Per (host, direction, peer), its connections in each window: a peer counts while
    /// they are positive.
    peers: FxHashMap<(IpAddr, Direction, IpAddr), Box<[i64]>>,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            edges: FxHashMap::default(),
            hosts: FxHashMap::default(),
            peers: FxHashMap::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.edges.is_empty() && self.hosts.is_empty()
    }

    /// Adds one group of one host's end of an edge, as kept at `span`, to the windows
    /// `windows` says hold it (by index).
    fn add(
        &mut self,
        host: IpAddr,
        adjacency: &Adjacency,
        span: GroupSpan,
        stats: &FlowStats,
        windows: &[bool],
    ) {
        let stages = windows.len();
        if adjacency.direction == Direction::Out {
            let edge = (host, adjacency.peer, adjacency.dst_port, adjacency.proto);
            let totals = self
                .edges
                .entry(edge)
                .or_insert_with(|| vec![EdgeTotals::EMPTY; stages].into());
            for (w, _) in windows.iter().enumerate().filter(|(_, held)| **held) {
                totals[w].add(stats, span);
            }
        }
        let peer = self
            .peers
            .entry((host, adjacency.direction, adjacency.peer))
            .or_insert_with(|| vec![0; stages].into());
        let totals = self
            .hosts
            .entry(host)
            .or_insert_with(|| vec![HostTotals::EMPTY; stages].into());
        for (w, _) in windows.iter().enumerate().filter(|(_, held)| **held) {
            totals[w].add(adjacency.direction, stats, span);
            let before = peer[w];
            peer[w] = before.wrapping_add(stats.count);
            if before <= 0 && peer[w] > 0 {
                *totals[w].peers(adjacency.direction) += 1;
            }
        }
    }
}

impl Totals {
    /// Adds the groups entering at `at` (no change of the schedule then), emitting the
    /// rows that change.
    fn enter(
        &mut self,
        work: &[Vec<GraphEntry>],
        schedule: &PaneSchedule,
        windows: &[Millis],
        at: Millis,
        updates: &mut Vec<(RankUpdate, Millis, isize)>,
    ) {
        let stages = windows.len();
        let mut held = vec![false; stages];
        let mut old_edges: FxHashMap<EdgeKey, Box<[EdgeTotals]>> = FxHashMap::default();
        let mut old_hosts: FxHashMap<IpAddr, Box<[HostTotals]>> = FxHashMap::default();
        for container in work {
            for &((host, adjacency), _, stats) in container {
                // Where the schedule keeps the group from now on (a late one, in its pane).
                let Some((span, _)) = adjacency.span.entering(schedule, at) else {
                    continue;
                };
                held_by(schedule, span.first, at, &mut held);
                if !held.iter().any(|h| *h) {
                    continue;
                }
                if adjacency.direction == Direction::Out {
                    let edge = (host, adjacency.peer, adjacency.dst_port, adjacency.proto);
                    old_edges.entry(edge).or_insert_with(|| {
                        self.edges
                            .get(&edge)
                            .cloned()
                            .unwrap_or_else(|| vec![EdgeTotals::EMPTY; stages].into())
                    });
                }
                old_hosts.entry(host).or_insert_with(|| {
                    self.hosts
                        .get(&host)
                        .cloned()
                        .unwrap_or_else(|| vec![HostTotals::EMPTY; stages].into())
                });
                self.add(host, &adjacency, span, &stats, &held);
            }
        }
        for (edge, old) in &old_edges {
            if let Some(new) = self.edges.get(edge) {
                emit(windows, *edge, old, new, at, edge_update, updates);
            }
        }
        for (ip, old) in &old_hosts {
            if let Some(new) = self.hosts.get(ip) {
                emit(windows, *ip, old, new, at, host_update, updates);
            }
        }
    }

    /// Replaces every total by `fresh`, read from the graph as of `at`, emitting the rows
    /// that change.
    fn replace(
        &mut self,
        mut fresh: Totals,
        windows: &[Millis],
        at: Millis,
        updates: &mut Vec<(RankUpdate, Millis, isize)>,
    ) {
        fresh.peers.retain(|_, c| c.iter().any(|&n| n > 0));
        emit_all(windows, &self.edges, &fresh.edges, at, edge_update, updates);
        emit_all(windows, &self.hosts, &fresh.hosts, at, host_update, updates);
        *self = fresh;
    }
}

/// Sends a time's updates and lets the graph's trace forget times before it: the operator
/// reads it at later times only.
fn finish_time(
    at: Millis,
    cap: &Capability<Millis>,
    updates: &mut Vec<(RankUpdate, Millis, isize)>,
    trace: &mut GraphTrace,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        Millis,
        VecBuilder<(RankUpdate, Millis, isize)>,
    >,
) {
    if !updates.is_empty() {
        output.session(cap).give_iterator(updates.drain(..));
    }
    trace.set_logical_compaction(Antichain::from_elem(at).borrow());
}

/// The windows (by index) that hold a group whose span starts at `first`, as of `at`.
fn held_by(schedule: &PaneSchedule, first: Millis, at: Millis, held: &mut [bool]) {
    for (w, slot) in held.iter_mut().enumerate() {
        *slot = first >= schedule.window_start(w, at);
    }
}

/// Totals that a ranking row is made of: an edge's or a host's in one window.
trait Ranked: Copy + PartialEq {
    /// The totals of a key the window does not hold.
    const EMPTY: Self;
    /// Whether the window holds the key (it has a row).
    fn present(&self) -> bool;
}

impl Ranked for EdgeTotals {
    const EMPTY: Self = EdgeTotals::EMPTY;
    fn present(&self) -> bool {
        EdgeTotals::present(self)
    }
}

impl Ranked for HostTotals {
    const EMPTY: Self = HostTotals::EMPTY;
    fn present(&self) -> bool {
        HostTotals::present(self)
    }
}

/// Emits the changes from `old` to `new` (one per window; missing ones are empty) of
/// every window's ranking row of `key`; `row` makes a window's row.
fn emit<K: Copy, T: Ranked>(
    windows: &[Millis],
    key: K,
    old: &[T],
    new: &[T],
    at: Millis,
    row: fn(Millis, K, &T) -> RankUpdate,
    out: &mut Vec<(RankUpdate, Millis, isize)>,
) {
    for (w, &window) in windows.iter().enumerate() {
        let old = old.get(w).copied().unwrap_or(T::EMPTY);
        let new = new.get(w).copied().unwrap_or(T::EMPTY);
        if old == new {
            continue;
        }
        if old.present() {
            out.push((row(window, key, &old), at, -1));
        }
        if new.present() {
            out.push((row(window, key, &new), at, 1));
        }
    }
}

/// Emits every row that differs between the totals of `old` and `fresh`.
fn emit_all<K: Copy + Eq + std::hash::Hash, T: Ranked>(
    windows: &[Millis],
    old: &FxHashMap<K, Box<[T]>>,
    fresh: &FxHashMap<K, Box<[T]>>,
    at: Millis,
    row: fn(Millis, K, &T) -> RankUpdate,
    out: &mut Vec<(RankUpdate, Millis, isize)>,
) {
    for (key, new) in fresh {
        let before = old.get(key).map_or(&[][..], |t| &t[..]);
        emit(windows, *key, before, new, at, row, out);
    }
    for (key, before) in old {
        if !fresh.contains_key(key) {
            emit(windows, *key, before, &[], at, row, out);
        }
    }
}

fn edge_update(window: Millis, edge: EdgeKey, totals: &EdgeTotals) -> RankUpdate {
    RankUpdate::Edge(edge_rank(window, edge, totals), *totals)
}

fn host_update(window: Millis, ip: IpAddr, totals: &HostTotals) -> RankUpdate {
    RankUpdate::Host(host_rank(window, ip, totals), *totals)
}

/// How many graph values a recomputation reads per activation: a read of the whole graph
/// at once would hold the worker (and every peek waiting on it) for as long as it takes.
pub const SCAN_VALUES_PER_ACTIVATION: usize = 65_536;

/// A recomputation of every total from the graph as of `at`, read a slice at a time.
///
/// Each slice reads the trace's batches of the moment: the operator's handle keeps the
/// trace's logical compaction before `at` until the read is done, so every slice sees the
/// updates up to `at` exactly, and batches merged meanwhile are not held.
struct Scan {
    at: Millis,
    /// The first host still to read; `None` before the first slice.
    resume: Option<IpAddr>,
    fresh: Totals,
}

impl Scan {
    fn new(at: Millis) -> Scan {
        Scan {
            at,
            resume: None,
            fresh: Totals::new(),
        }
    }

    /// Reads whole hosts until about `fuel` values have been read; whether it is done.
    fn read_some(&mut self, trace: &mut GraphTrace, schedule: &PaneSchedule, fuel: usize) -> bool {
        let mut held = vec![false; schedule.stages().len()];
        let Some(batches) = crate::read::complete_batches(trace) else {
            return true;
        };
        let (mut cursor, storage) = cursor_list(batches);
        if let Some(resume) = &self.resume {
            cursor.seek_key(&storage, resume);
        }
        let mut read = 0usize;
        while let Some(host) = cursor.get_key(&storage) {
            let host = *host;
            if read >= fuel {
                self.resume = Some(host);
                return false;
            }
            while let Some(adjacency) = cursor.get_val(&storage) {
                let adjacency = *adjacency;
                let mut stats = FlowStats::default();
                cursor.map_times(&storage, |time, diff| {
                    if *time <= self.at {
                        stats.plus_equals(diff);
                    }
                });
                if stats.count > 0 {
                    held_by(schedule, adjacency.span.first, self.at, &mut held);
                    if held.iter().any(|h| *h) {
                        self.fresh
                            .add(host, &adjacency, adjacency.span, &stats, &held);
                    }
                }
                read += 1;
                cursor.step_val(&storage);
            }
            cursor.step_key(&storage);
        }
        true
    }
}

/// Renders the rankings from the graph's entries and its arrangement (both on the worker
/// that owns each host), in the graph's scope; a recomputation reads about `scan_values`
/// of the graph's values per activation ([`SCAN_VALUES_PER_ACTIVATION`] in the engine).
pub fn render<'scope>(
    rendered: &GraphRendered<'scope>,
    scan_values: usize,
) -> RankingsRendered<'scope> {
    let scan_values = scan_values.max(1);
    let entries = rendered.entries.clone();
    let graph = &rendered.arranged;
    let schedule = rendered.schedule.clone();
    let mut trace = graph.trace.clone();
    let windows: Vec<Millis> = schedule.stages().iter().map(|s| s.window).collect();
    let scope = entries.scope();
    let updates = entries
        .binary_frontier::<_, VecBuilder<(RankUpdate, Millis, isize)>, _, _, _, _>(
            graph.stream.clone(),
            Pipeline,
            Pipeline,
            "GraphRankings",
            move |_capability, info| {
                let activator = scope.activator_for(info.address);
                let mut totals = Totals::new();
                let mut pending: BTreeMap<Millis, Vec<Vec<GraphEntry>>> = BTreeMap::new();
                let mut held: Option<Capability<Millis>> = None;
                let mut processed: Option<Millis> = None;
                let mut scan: Option<Scan> = None;
                let mut updates = Vec::new();
                move |(entries, entries_frontier), (batches, graph_frontier), output| {
                    entries.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        for container in data {
                            split_by_time(container, |at, updates| {
                                pending.entry(at).or_default().push(updates)
                            });
                        }
                        if held.as_ref().is_none_or(|h| h.time() > cap.time()) {
                            held = Some(cap);
                        }
                    });
                    // Only the arrangement's progress matters: the operator reads the graph
                    // through its trace.
                    batches.for_each(|_, _| {});
                    // Once both inputs have ended (a dataflow shutting down), no later time
                    // will be read: the schedule's changes are not followed to the end of
                    // the longest window, a read of the graph each.
                    let open = !entries_frontier.is_empty() || !graph_frontier.is_empty();

                    while let Some(cap) = held.as_mut() {
                        // A recomputation under way is finished first, a slice at a time.
                        if let Some(current) = scan.as_mut() {
                            if !current.read_some(&mut trace, &schedule, scan_values) {
                                activator.activate();
                                break;
                            }
                            let Some(Scan { at, fresh, .. }) = scan.take() else {
                                break;
                            };
                            totals.replace(fresh, &windows, at, &mut updates);
                            finish_time(at, cap, &mut updates, &mut trace, output);
                            processed = Some(at);
                            continue;
                        }
                        let next_pending = pending.keys().next().copied();
                        let next_change = processed
                            .filter(|_| !totals.is_empty() && open)
                            .map(|after| schedule.next_change_after(after));
                        let Some(at) = [next_pending, next_change].into_iter().flatten().min()
                        else {
                            break;
                        };
                        if entries_frontier.less_equal(&at) || graph_frontier.less_equal(&at) {
                            break;
                        }
                        cap.downgrade(&at);
                        let work = pending.remove(&at).unwrap_or_default();
                        if processed.is_none_or(|after| schedule.next_change_after(after) <= at) {
                            // The schedule moves groups or windows at `at`: every total anew
                            // from the graph as of `at`, which holds this time's entries too.
                            scan = Some(Scan::new(at));
                            continue;
                        }
                        totals.enter(&work, &schedule, &windows, at, &mut updates);
                        finish_time(at, cap, &mut updates, &mut trace, output);
                        processed = Some(at);
                    }
                    let mut complete = Antichain::new();
                    for time in graph_frontier.frontier().iter() {
                        complete.insert(*time);
                    }
                    trace.set_physical_compaction(complete.borrow());

                    // Hold a capability only for the earliest time with work left.
                    let next_pending = pending.keys().next().copied();
                    let next_scan = scan.as_ref().map(|s| s.at);
                    let next_change = processed
                        .filter(|_| !totals.is_empty() && open)
                        .map(|after| schedule.next_change_after(after));
                    match [next_scan, next_pending, next_change]
                        .into_iter()
                        .flatten()
                        .min()
                    {
                        Some(next) => {
                            if let Some(cap) = held.as_mut() {
                                if *cap.time() < next {
                                    cap.downgrade(&next);
                                }
                            }
                        }
                        None => held = None,
                    }
                }
            },
        );
    let edges = arrange_core::<
        _,
        _,
        ValBatcher<EdgeRankKey, EdgeTotals, Millis, isize>,
        ValSpine<EdgeRankKey, EdgeTotals, Millis, isize>,
    >(
        updates.clone().flat_map(|(update, at, diff)| match update {
            RankUpdate::Edge(key, totals) => Some(((key, totals), at, diff)),
            RankUpdate::Host(..) => None,
        }),
        Pipeline,
        "EdgeRanking",
        ValBatcher::new,
    );
    let hosts = arrange_core::<
        _,
        _,
        ValBatcher<HostRankKey, HostTotals, Millis, isize>,
        ValSpine<HostRankKey, HostTotals, Millis, isize>,
    >(
        updates.flat_map(|(update, at, diff)| match update {
            RankUpdate::Host(key, totals) => Some(((key, totals), at, diff)),
            RankUpdate::Edge(..) => None,
        }),
        Pipeline,
        "HostRanking",
        ValBatcher::new,
    );
    let progress = edges
        .stream
        .clone()
        .map(|_| ())
        .concat(hosts.stream.clone().map(|_| ()));
    RankingsRendered {
        traces: RankTraces {
            edges: edges.trace,
            hosts: hosts.trace,
        },
        progress,
    }
}

/// Reads a worker's part of the rankings at one `as_of`.
///
/// The caller must only read at an `as_of` that the arrangements have completed and that
/// their logical compaction has not passed.
pub struct RankingReader<'t> {
    traces: &'t mut RankTraces,
    as_of: Millis,
}

impl<'t> RankingReader<'t> {
    /// A reader of `traces` at `as_of`.
    pub fn new(traces: &'t mut RankTraces, as_of: Millis) -> Self {
        RankingReader { traces, as_of }
    }

    /// This worker's `limit` heaviest edges of the window of length `window`.
    pub fn heaviest_edges(&mut self, window: Millis, limit: usize) -> Vec<EdgeRow> {
        let mut rows = Vec::new();
        if limit == 0 {
            return rows;
        }
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let from: EdgeRankKey = (
            window,
            Reverse(u64::MAX),
            Reverse(u64::MAX),
            (unspecified, unspecified, 0, Proto::Tcp),
        );
        let as_of = self.as_of;
        visit_rows(&mut self.traces.edges, as_of, Some(&from), |key, values| {
            if key.0 != window {
                return Next::Stop;
            }
            rows.extend(
                values
                    .iter()
                    .map(|(totals, _)| edge_row(&key.3, totals, as_of)),
            );
            if rows.len() >= limit {
                Next::Stop
            } else {
                Next::Continue
            }
        });
        rows.truncate(limit);
        rows
    }

    /// This worker's `limit` busiest hosts of the window of length `window`.
    pub fn busiest_hosts(&mut self, window: Millis, limit: usize) -> Vec<HostSummary> {
        let mut rows = Vec::new();
        if limit == 0 {
            return rows;
        }
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let from: HostRankKey = (window, Reverse(u64::MAX), Reverse(u64::MAX), unspecified);
        let as_of = self.as_of;
        visit_rows(&mut self.traces.hosts, as_of, Some(&from), |key, values| {
            if key.0 != window {
                return Next::Stop;
            }
            rows.extend(
                values
                    .iter()
                    .map(|(totals, _)| totals.summary(key.3, as_of)),
            );
            if rows.len() >= limit {
                Next::Stop
            } else {
                Next::Continue
            }
        });
        rows.truncate(limit);
        rows
    }
}
