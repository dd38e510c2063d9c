//! The graph view's rankings: every window's edges heaviest first and hosts busiest first,
//! maintained as records enter and as windows slide, so that `/v1/graph/edges` and
//! `/v1/graph/hosts` walk `limit` rows instead of every group the window holds.
//!
//! One operator per worker keeps, for every host it owns, its totals in each window (its
//! counters each way, its distinct peers each way, first and last seen) and the totals of
//! each of its half-edges (one end of an edge: counters, first and last seen), and emits a
//! ranking row's retraction and insertion whenever a host's or an edge's (its originator's
//! half-edge) totals change.
//!
//! It follows the graph arrangement's own updates, time by time, once the arrangement has
//! completed the time: groups entering (a late one straight into its pane) and groups
//! moving (retracted from one bucket, inserted into a coarser one or gone) when a pane of
//! the shortest window closes or a window's start passes them. Every window's start passes
//! a group only at one of its moves (unless two windows share a pane, below), so counters
//! follow exactly: an entering group adds to the windows that hold it then, a leaving one
//! subtracts from those that held it until then. First and last seen are a least and a
//! greatest and cannot be subtracted: when a leaving group held one and no entering group
//! reaches it (the oldest pane leaving a window), the operator reads that half-edge's
//! groups from the arrangement at that time, and a host whose first or last seen left with
//! a half-edge takes it anew from its other half-edges.
//!
//! Where a window and the next longer one share a pane, leaving the shorter one moves no
//! group (`PaneSchedule::silent_exit_at`): at those times the operator reads the worker's
//! whole part of the graph and recomputes every total from it, a slice at a time, as it
//! did at every change of the schedule before.
//!
//! So a ranking row at `T` is exactly what a scan of the graph at `T` gives
//! ([`super::GraphReader`]); the oracle tests check both. What it stores: per host and per
//! half-edge (both ends of every edge of the longest window) one set of totals per window,
//! per (host, direction, peer) one connection count per window, plus one ranking row per
//! (edge or host, window) in the arrangements. What it costs: per update of the graph, a
//! few hash-map operations; per half-edge whose oldest group leaves a window, a read of
//! its groups (at most one per bucket it is kept in); nothing per idle host.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::IpAddr;

use differential_dataflow::difference::{Abelian, Semigroup};
use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::trace::cursor::{cursor_list, Cursor, Navigable};
use differential_dataflow::trace::implementations::{ValBatcher, ValSpine};
use differential_dataflow::trace::TraceReader;
use flowsight_events::Proto;
use flowsight_operators::{FlowStats, GroupSpan, Millis, PaneSchedule, VecBuilder};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Operator};
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use super::{Adjacency, Direction, EdgeRow, GraphRendered, GraphTrace, HostSummary};
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

/// One end of an edge as its host sees it: direction, peer, the responder's port, the
/// protocol. An `Out` half-edge is the edge itself (on its originator's worker).
type HalfEdge = (Direction, IpAddr, u16, Proto);

fn half_edge(adjacency: &Adjacency) -> HalfEdge {
    (
        adjacency.direction,
        adjacency.peer,
        adjacency.dst_port,
        adjacency.proto,
    )
}

/// One update of the graph: a group of a half-edge entering (counters positive) or leaving
/// (negative), as the graph's batches carry it.
type GraphUpdate = (IpAddr, Adjacency, FlowStats);

fn empty_windows<T: Ranked>(stages: usize) -> Box<[T]> {
    vec![T::EMPTY; stages].into()
}

/// One host's totals in every window and what they are made of: the totals of each of its
/// half-edges, and each peer's connections per direction (a peer counts while they are
/// positive).
#[derive(Clone)]
struct HostState {
    totals: Box<[HostTotals]>,
    half_edges: FxHashMap<HalfEdge, Box<[EdgeTotals]>>,
    peers: FxHashMap<(Direction, IpAddr), Box<[i64]>>,
}

impl HostState {
    fn new(stages: usize) -> HostState {
        HostState {
            totals: empty_windows(stages),
            half_edges: FxHashMap::default(),
            peers: FxHashMap::default(),
        }
    }

    /// Replaces one half-edge's totals by `new` and moves the host's totals by the
    /// difference; whether a first or last seen time may have left with the old totals
    /// (then [`HostState::recompute_extremes`] must run before the totals are read).
    fn set(&mut self, half: HalfEdge, new: Box<[EdgeTotals]>) -> bool {
        let stages = self.totals.len();
        let old = self
            .half_edges
            .remove(&half)
            .unwrap_or_else(|| empty_windows(stages));
        let (direction, peer, ..) = half;
        let peers = self
            .peers
            .entry((direction, peer))
            .or_insert_with(|| vec![0; stages].into());
        let mut dirty = false;
        for (w, (old, new)) in old.iter().zip(new.iter()).enumerate() {
            if old == new {
                continue;
            }
            let totals = &mut self.totals[w];
            let mut delta = old.stats;
            delta.negate();
            delta.plus_equals(&new.stats);
            match direction {
                Direction::Out => totals.out.plus_equals(&delta),
                Direction::In => totals.inbound.plus_equals(&delta),
            }
            let before = peers[w];
            let after = before.wrapping_add(delta.count);
            peers[w] = after;
            if before <= 0 && after > 0 {
                *totals.peers(direction) += 1;
            } else if before > 0 && after <= 0 {
                *totals.peers(direction) -= 1;
            }
            // The host's first seen is the least of its half-edges' (its last the
            // greatest): one that only moves earlier keeps it exact, one that held it and
            // moves later (or leaves) may leave it to another half-edge.
            if old.present() {
                let first_kept = new.present() && new.first <= old.first;
                let last_kept = new.present() && new.last >= old.last;
                if (old.first == totals.first && !first_kept)
                    || (old.last == totals.last && !last_kept)
                {
                    dirty = true;
                }
            }
            if new.present() {
                totals.first = totals.first.min(new.first);
                totals.last = totals.last.max(new.last);
            }
        }
        if peers.iter().all(|&n| n == 0) {
            self.peers.remove(&(direction, peer));
        }
        if new.iter().any(EdgeTotals::present) {
            self.half_edges.insert(half, new);
        }
        dirty
    }

    /// First and last seen of every window anew from the half-edges.
    fn recompute_extremes(&mut self) {
        for (w, totals) in self.totals.iter_mut().enumerate() {
            totals.first = Millis::MAX;
            totals.last = 0;
            for half in self.half_edges.values().filter(|h| h[w].present()) {
                totals.first = totals.first.min(half[w].first);
                totals.last = totals.last.max(half[w].last);
            }
        }
    }

    /// Every total and peer count anew from the half-edges.
    fn recompute(&mut self) {
        let stages = self.totals.len();
        self.totals = empty_windows(stages);
        self.peers.clear();
        for (&(direction, peer, ..), half) in &self.half_edges {
            let peers = self
                .peers
                .entry((direction, peer))
                .or_insert_with(|| vec![0; stages].into());
            for (w, edge) in half.iter().enumerate().filter(|(_, e)| e.present()) {
                let totals = &mut self.totals[w];
                totals.add(
                    direction,
                    &edge.stats,
                    GroupSpan {
                        first: edge.first,
                        last: edge.last,
                    },
                );
                peers[w] = peers[w].wrapping_add(edge.stats.count);
            }
        }
        for (&(direction, _), counts) in &self.peers {
            for (w, &n) in counts.iter().enumerate() {
                if n > 0 {
                    *self.totals[w].peers(direction) += 1;
                }
            }
        }
    }
}

/// Every window's totals of every host of this worker and of each of its half-edges.
struct Totals {
    stages: usize,
    hosts: FxHashMap<IpAddr, HostState>,
}

/// The changes of one time under way: each touched host's totals before it, and the hosts
/// whose first or last seen must be recomputed before they are emitted.
struct Step {
    at: Millis,
    old_hosts: FxHashMap<IpAddr, Box<[HostTotals]>>,
    dirty: FxHashSet<IpAddr>,
}

impl Step {
    fn new(at: Millis) -> Step {
        Step {
            at,
            old_hosts: FxHashMap::default(),
            dirty: FxHashSet::default(),
        }
    }
}

/// What a time's updates do to one half-edge's totals.
enum Advance {
    /// Its totals from now on.
    To(Box<[EdgeTotals]>),
    /// Only a read of its groups can tell: a group that held its first or last seen left
    /// and no entering group replaces it.
    Uncertain,
}

impl Totals {
    fn new(stages: usize) -> Totals {
        Totals {
            stages,
            hosts: FxHashMap::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    fn half_edge(&self, host: IpAddr, half: &HalfEdge) -> Option<&[EdgeTotals]> {
        self.hosts.get(&host)?.half_edges.get(half).map(|t| &t[..])
    }

    /// Adds one group, present at the time being read, to the windows `held` says hold it
    /// (a recomputation building its totals; host totals follow in [`Totals::settle`]).
    fn add_group(&mut self, host: IpAddr, adjacency: &Adjacency, stats: &FlowStats, held: &[bool]) {
        let stages = self.stages;
        let half = self
            .hosts
            .entry(host)
            .or_insert_with(|| HostState::new(stages))
            .half_edges
            .entry(half_edge(adjacency))
            .or_insert_with(|| empty_windows(stages));
        for (w, _) in held.iter().enumerate().filter(|(_, h)| **h) {
            half[w].add(stats, adjacency.span);
        }
    }

    /// Computes every host's totals from its half-edges, once they are all added.
    fn settle(&mut self) {
        self.hosts.retain(|_, state| {
            state
                .half_edges
                .retain(|_, h| h.iter().any(EdgeTotals::present));
            state.recompute();
            !state.half_edges.is_empty()
        });
    }

    /// A half-edge's totals after this time's updates of it, from its totals before:
    /// counters move by the updates (an entering group counts in the windows that hold it
    /// now, a leaving one in those that held it until now), first and last seen only as
    /// far as entering groups tell.
    fn advance(
        &self,
        host: IpAddr,
        half: &HalfEdge,
        updates: &[GraphUpdate],
        schedule: &PaneSchedule,
        at: Millis,
    ) -> Advance {
        let stages = self.stages;
        let old: Box<[EdgeTotals]> = self
            .half_edge(host, half)
            .map_or_else(|| empty_windows(stages), Into::into);
        let mut new = old.clone();
        // Per window: whether a leaving group held the first (last) seen, and whether an
        // entering one reaches it.
        let mut first_left = vec![false; stages];
        let mut last_left = vec![false; stages];
        let mut first_reached = vec![false; stages];
        let mut last_reached = vec![false; stages];
        let mut held = vec![false; stages];
        for (_, adjacency, stats) in updates {
            let span = adjacency.span;
            match stats.count.cmp(&0) {
                std::cmp::Ordering::Greater => {
                    held_by(schedule, span.first, at, &mut held);
                    for (w, _) in held.iter().enumerate().filter(|(_, h)| **h) {
                        new[w].add(stats, span);
                        first_reached[w] |= span.first <= old[w].first;
                        last_reached[w] |= span.last >= old[w].last;
                    }
                }
                std::cmp::Ordering::Less => {
                    held_by(schedule, span.first, at.saturating_sub(1), &mut held);
                    for (w, _) in held.iter().enumerate().filter(|(_, h)| **h) {
                        new[w].stats.plus_equals(stats);
                        first_left[w] |= span.first == old[w].first;
                        last_left[w] |= span.last == old[w].last;
                    }
                }
                // Counters without a connection: nothing this operator expects.
                std::cmp::Ordering::Equal => return Advance::Uncertain,
            }
        }
        for w in 0..stages {
            if new[w].stats.count > 0 {
                if (first_left[w] && !first_reached[w]) || (last_left[w] && !last_reached[w]) {
                    return Advance::Uncertain;
                }
            } else if new[w].stats == FlowStats::default() {
                // Every group of the window left: nothing of it remains.
                new[w] = EdgeTotals::EMPTY;
            } else {
                return Advance::Uncertain;
            }
        }
        Advance::To(new)
    }

    /// Sets a half-edge's totals, emitting its edge's rows if it is one (`Out`), and keeps
    /// its host's totals in step.
    fn set_half_edge(
        &mut self,
        host: IpAddr,
        half: HalfEdge,
        new: Box<[EdgeTotals]>,
        step: &mut Step,
        windows: &[Millis],
        out: &mut Vec<(RankUpdate, Millis, isize)>,
    ) {
        let stages = self.stages;
        let state = self
            .hosts
            .entry(host)
            .or_insert_with(|| HostState::new(stages));
        step.old_hosts
            .entry(host)
            .or_insert_with(|| state.totals.clone());
        if half.0 == Direction::Out {
            let old = state.half_edges.get(&half).map_or(&[][..], |t| &t[..]);
            let edge = (host, half.1, half.2, half.3);
            emit(windows, edge, old, &new, step.at, edge_update, out);
        }
        if state.set(half, new) {
            step.dirty.insert(host);
        }
    }

    /// Applies one time's updates of the graph, in (host, half-edge) order, from `from` on
    /// until about `fuel` of them are applied (whole half-edges at a time); returns where
    /// it stopped. The half-edges whose totals only a read of the graph can tell are added
    /// to `unread`, in the same order.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        updates: &[GraphUpdate],
        from: usize,
        fuel: usize,
        schedule: &PaneSchedule,
        windows: &[Millis],
        step: &mut Step,
        unread: &mut Vec<(IpAddr, HalfEdge)>,
        out: &mut Vec<(RankUpdate, Millis, isize)>,
    ) -> usize {
        let mut at = from;
        let same =
            |a: &GraphUpdate, b: &GraphUpdate| a.0 == b.0 && half_edge(&a.1) == half_edge(&b.1);
        for group in updates[from..].chunk_by(same) {
            if at - from >= fuel {
                break;
            }
            let (host, half) = (group[0].0, half_edge(&group[0].1));
            match self.advance(host, &half, group, schedule, step.at) {
                Advance::To(new) => self.set_half_edge(host, half, new, step, windows, out),
                Advance::Uncertain => unread.push((host, half)),
            }
            at += group.len();
        }
        at
    }

    /// Ends a time: recomputes the first and last seen that may have left, emits the rows
    /// of every host that changed, and forgets hosts with nothing left.
    fn finish(
        &mut self,
        step: Step,
        windows: &[Millis],
        out: &mut Vec<(RankUpdate, Millis, isize)>,
    ) {
        for host in &step.dirty {
            if let Some(state) = self.hosts.get_mut(host) {
                state.recompute_extremes();
            }
        }
        for (host, old) in step.old_hosts {
            let Some(state) = self.hosts.get(&host) else {
                continue;
            };
            emit(
                windows,
                host,
                &old,
                &state.totals,
                step.at,
                host_update,
                out,
            );
            if state.half_edges.is_empty() {
                self.hosts.remove(&host);
            }
        }
    }

    /// Replaces every total by `fresh`, read from the graph as of `at`, emitting the rows
    /// that change.
    fn replace(
        &mut self,
        fresh: Totals,
        windows: &[Millis],
        at: Millis,
        out: &mut Vec<(RankUpdate, Millis, isize)>,
    ) {
        let none = HostState::new(self.stages);
        for (host, new) in &fresh.hosts {
            let old = self.hosts.get(host).unwrap_or(&none);
            emit_host(windows, *host, old, new, at, out);
        }
        for (host, old) in &self.hosts {
            if !fresh.hosts.contains_key(host) {
                emit_host(windows, *host, old, &none, at, out);
            }
        }
        *self = fresh;
    }
}

/// Emits every row of a host that differs between `old` and `new`: its own and its edges'.
fn emit_host(
    windows: &[Millis],
    host: IpAddr,
    old: &HostState,
    new: &HostState,
    at: Millis,
    out: &mut Vec<(RankUpdate, Millis, isize)>,
) {
    emit(
        windows,
        host,
        &old.totals,
        &new.totals,
        at,
        host_update,
        out,
    );
    let edge = |half: &HalfEdge| (host, half.1, half.2, half.3);
    for (half, totals) in new.half_edges.iter().filter(|(h, _)| h.0 == Direction::Out) {
        let before = old.half_edges.get(half).map_or(&[][..], |t| &t[..]);
        emit(windows, edge(half), before, totals, at, edge_update, out);
    }
    for (half, totals) in old.half_edges.iter().filter(|(h, _)| h.0 == Direction::Out) {
        if !new.half_edges.contains_key(half) {
            emit(windows, edge(half), totals, &[], at, edge_update, out);
        }
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

fn edge_update(window: Millis, edge: EdgeKey, totals: &EdgeTotals) -> RankUpdate {
    RankUpdate::Edge(edge_rank(window, edge, totals), *totals)
}

fn host_update(window: Millis, ip: IpAddr, totals: &HostTotals) -> RankUpdate {
    RankUpdate::Host(host_rank(window, ip, totals), *totals)
}

/// How many graph values a read of the graph takes per activation: a read of the whole
/// graph at once would hold the worker (and every peek waiting on it) for as long as it
/// takes.
pub const SCAN_VALUES_PER_ACTIVATION: usize = 65_536;

/// The stats of the value under `cursor` as of `at`.
fn stats_as_of<C>(cursor: &mut C, storage: &C::Storage, at: Millis) -> FlowStats
where
    C: for<'a> Cursor<TimeGat<'a> = &'a Millis, DiffGat<'a> = &'a FlowStats>,
{
    let mut stats = FlowStats::default();
    cursor.map_times(storage, |time, diff| {
        if *time <= at {
            stats.plus_equals(diff);
        }
    });
    stats
}

/// A read of the graph as of `at`, a slice at a time: every total anew (`Scan`), or only
/// the half-edges a time's updates left uncertain (`Reread`).
///
/// Each slice reads the trace's batches of the moment: the operator's handle keeps the
/// trace's logical compaction before `at` until the read is done, so every slice sees the
/// updates up to `at` exactly, and batches merged meanwhile are not held.
enum Read {
    /// Every total anew: where the first host still to read is (`None` before the first
    /// slice), and the totals built so far.
    Scan {
        at: Millis,
        resume: Option<IpAddr>,
        fresh: Totals,
    },
    /// A time's updates, in (host, half-edge) order, and how many are applied; then the
    /// half-edges they left uncertain, in the same order, and how many are read.
    Step {
        step: Step,
        updates: Vec<GraphUpdate>,
        applied: usize,
        unread: Vec<(IpAddr, HalfEdge)>,
        done: usize,
    },
}

impl Read {
    fn at(&self) -> Millis {
        match self {
            Read::Scan { at, .. } => *at,
            Read::Step { step, .. } => step.at,
        }
    }

    /// Reads until about `fuel` values have been read; whether it is done.
    fn read_some(
        &mut self,
        trace: &mut GraphTrace,
        totals: &mut Totals,
        schedule: &PaneSchedule,
        windows: &[Millis],
        fuel: usize,
        out: &mut Vec<(RankUpdate, Millis, isize)>,
    ) -> bool {
        let mut held = vec![false; schedule.stages().len()];
        let mut read = 0usize;
        if let Read::Step {
            step,
            updates,
            applied,
            unread,
            ..
        } = self
        {
            if *applied < updates.len() {
                *applied = totals.apply(
                    updates, *applied, fuel, schedule, windows, step, unread, out,
                );
                if *applied < updates.len() {
                    return false;
                }
                // Applied: what is left is reads, which start at the next activation.
                updates.clear();
                updates.shrink_to_fit();
                if !unread.is_empty() {
                    return false;
                }
            }
            if unread.is_empty() {
                return true;
            }
        }
        let Some(batches) = crate::read::complete_batches(trace) else {
            return true;
        };
        match self {
            Read::Scan { at, resume, fresh } => {
                let (mut cursor, storage) = cursor_list(batches);
                if let Some(resume) = resume {
                    cursor.seek_key(&storage, resume);
                }
                while let Some(host) = cursor.get_key(&storage) {
                    let host = *host;
                    if read >= fuel {
                        *resume = Some(host);
                        return false;
                    }
                    while let Some(adjacency) = cursor.get_val(&storage) {
                        let adjacency = *adjacency;
                        let stats = stats_as_of(&mut cursor, &storage, *at);
                        if stats.count > 0 {
                            held_by(schedule, adjacency.span.first, *at, &mut held);
                            fresh.add_group(host, &adjacency, &stats, &held);
                        }
                        read += 1;
                        cursor.step_val(&storage);
                    }
                    cursor.step_key(&storage);
                }
                fresh.settle();
                true
            }
            Read::Step {
                step, unread, done, ..
            } => {
                // One cursor per batch, not `cursor_list`: the list's `seek_val` moves
                // every batch's cursor, also those on another key or at the end.
                let mut cursors: Vec<_> = batches.iter().map(Navigable::cursor).collect();
                let stages = totals.stages;
                let mut groups: Vec<(Adjacency, FlowStats)> = Vec::new();
                while let Some(&(host, half)) = unread.get(*done) {
                    if read >= fuel {
                        return false;
                    }
                    let (direction, peer, dst_port, proto) = half;
                    let start = Adjacency {
                        direction,
                        peer,
                        dst_port,
                        proto,
                        span: GroupSpan { first: 0, last: 0 },
                    };
                    groups.clear();
                    for (cursor, batch) in cursors.iter_mut().zip(&batches) {
                        cursor.seek_key(batch, &host);
                        if cursor.get_key(batch) != Some(&host) {
                            continue;
                        }
                        cursor.seek_val(batch, &start);
                        while let Some(adjacency) = cursor.get_val(batch) {
                            if half_edge(adjacency) != half {
                                break;
                            }
                            let adjacency = *adjacency;
                            groups.push((adjacency, stats_as_of(cursor, batch, step.at)));
                            read += 1;
                            cursor.step_val(batch);
                        }
                    }
                    // A group's updates may lie in several batches: summed before it counts.
                    groups.sort_unstable_by_key(|(adjacency, _)| *adjacency);
                    let mut new: Box<[EdgeTotals]> = empty_windows(stages);
                    for run in groups.chunk_by(|a, b| a.0 == b.0) {
                        let adjacency = run[0].0;
                        let mut stats = FlowStats::default();
                        for (_, s) in run {
                            stats.plus_equals(s);
                        }
                        if stats.count > 0 {
                            held_by(schedule, adjacency.span.first, step.at, &mut held);
                            for (w, _) in held.iter().enumerate().filter(|(_, h)| **h) {
                                new[w].add(&stats, adjacency.span);
                            }
                        }
                    }
                    totals.set_half_edge(host, half, new, step, windows, out);
                    *done += 1;
                    read += 1;
                }
                true
            }
        }
    }
}

/// Renders the rankings from the graph's arrangement (its batches as they are made, and
/// its trace for reads), in the graph's scope; a read of the graph takes about
/// `scan_values` of its values per activation ([`SCAN_VALUES_PER_ACTIVATION`] in the
/// engine).
pub fn render<'scope>(
    rendered: &GraphRendered<'scope>,
    scan_values: usize,
) -> RankingsRendered<'scope> {
    let scan_values = scan_values.max(1);
    let graph = &rendered.arranged;
    let schedule = rendered.schedule.clone();
    let mut trace = graph.trace.clone();
    let windows: Vec<Millis> = schedule.stages().iter().map(|s| s.window).collect();
    let stages = windows.len();
    let scope = graph.stream.scope();
    let updates = graph
        .stream
        .clone()
        .unary_frontier::<VecBuilder<(RankUpdate, Millis, isize)>, _, _, _>(
            Pipeline,
            "GraphRankings",
            move |_capability, info| {
                let activator = scope.activator_for(info.address);
                let mut totals = Totals::new(stages);
                let mut pending: BTreeMap<Millis, Vec<GraphUpdate>> = BTreeMap::new();
                let mut held: Option<Capability<Millis>> = None;
                let mut processed: Option<Millis> = None;
                let mut reading: Option<Read> = None;
                let mut updates = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        for spans in data {
                            for batch in spans.iter().filter_map(|span| span.inner.as_ref()) {
                                let mut cursor = batch.cursor();
                                while let Some(host) = cursor.get_key(batch) {
                                    while let Some(adjacency) = cursor.get_val(batch) {
                                        cursor.map_times(batch, |time, stats| {
                                            pending
                                                .entry(*time)
                                                .or_default()
                                                .push((*host, *adjacency, *stats));
                                        });
                                        cursor.step_val(batch);
                                    }
                                    cursor.step_key(batch);
                                }
                            }
                        }
                        if held.as_ref().is_none_or(|h| h.time() > cap.time()) {
                            held = Some(cap);
                        }
                    });
                    // Once the graph has ended (a dataflow shutting down), no later time
                    // will be read: windows' silent starts are not followed to the end of
                    // the longest window, a read of the graph each.
                    let open = !frontier.is_empty();
                    let next_silent = |processed: Option<Millis>, totals: &Totals| {
                        processed
                            .filter(|_| !totals.is_empty() && open)
                            .and_then(|after| schedule.next_silent_exit_after(after))
                    };

                    while let Some(cap) = held.as_mut() {
                        // A read under way is finished first, a slice at a time.
                        if let Some(read) = reading.as_mut() {
                            let done = read.read_some(
                                &mut trace,
                                &mut totals,
                                &schedule,
                                &windows,
                                scan_values,
                                &mut updates,
                            );
                            if !done {
                                activator.activate();
                                break;
                            }
                            let at = read.at();
                            match reading.take() {
                                Some(Read::Scan { fresh, .. }) => {
                                    totals.replace(fresh, &windows, at, &mut updates)
                                }
                                Some(Read::Step { step, .. }) => {
                                    totals.finish(step, &windows, &mut updates)
                                }
                                None => {}
                            }
                            finish_time(at, cap, &mut updates, &mut trace, output);
                            processed = Some(at);
                            continue;
                        }
                        let next_pending = pending.keys().next().copied();
                        let Some(at) = [next_pending, next_silent(processed, &totals)]
                            .into_iter()
                            .flatten()
                            .min()
                        else {
                            break;
                        };
                        if frontier.less_equal(&at) {
                            break;
                        }
                        cap.downgrade(&at);
                        let mut work = pending.remove(&at).unwrap_or_default();
                        if schedule.silent_exit_at(at) && !(totals.is_empty() && work.is_empty()) {
                            // A window's start passes groups without moving them: every
                            // total anew from the graph as of `at`, which holds this time's
                            // updates too.
                            reading = Some(Read::Scan {
                                at,
                                resume: None,
                                fresh: Totals::new(stages),
                            });
                            continue;
                        }
                        // A time's updates all come from one batch, in its (host, adjacency)
                        // order: grouped by half-edge already, sorted only if not.
                        if !work.is_sorted_by_key(|u| (u.0, u.1)) {
                            work.sort_unstable_by_key(|u| (u.0, u.1));
                        }
                        // Applied a slice at a time: a minute's moves are millions of
                        // updates, and peeks wait for the worker meanwhile.
                        reading = Some(Read::Step {
                            step: Step::new(at),
                            updates: work,
                            applied: 0,
                            unread: Vec::new(),
                            done: 0,
                        });
                    }
                    let mut complete = Antichain::new();
                    for time in frontier.frontier().iter() {
                        complete.insert(*time);
                    }
                    trace.set_physical_compaction(complete.borrow());

                    // Hold a capability only for the earliest time with work left.
                    let next_pending = pending.keys().next().copied();
                    let next_read = reading.as_ref().map(Read::at);
                    match [next_read, next_pending, next_silent(processed, &totals)]
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
