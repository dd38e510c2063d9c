//! Sliding windows kept per (key, pane): pre-aggregation by (key, tick), then a schedule of
//! future moves to coarser buckets and out of the windows (docs/design.md §3).
//!
//! Two operators, composable or used together ([`PreAggregateWindowed`]):
//!
//! * [`PreAggregateByTick`] groups records by `(key, tick of their ts)` per timely time and
//!   emits each group once that time is complete, as an *entry* at the time it entered.
//!   Work grows with distinct (key, tick) pairs, not with records. Consumers that keep
//!   their own windows (the risk view) read these entries directly.
//! * [`Paned`] turns entries into a differential collection whose contents, at every time,
//!   are the groups of every window, each at the granularity the [`PaneSchedule`] gives it
//!   then: an entry is added at its tick (exact first and last timestamps) and later moved
//!   — retracted and added again under a coarser bucket — when its pane closes and as it
//!   leaves each shorter window, then retracted when it leaves the longest. Pending moves
//!   are merged per (key, bucket), so what is held grows with distinct (key, pane).
//!
//! Where a group is kept depends only on its tick and the time, never on when it arrived:
//! a late record (one that entered at the frontier rather than at its own time) enters
//! straight into the bucket the schedule has its tick in by then.
//!
//! Moves are held here, under a capability for the earliest of them, and released only once
//! the input frontier has passed their time: handing them downstream early would park a
//! whole window of future updates in the arrangement's batcher, which re-sorts what it holds
//! on every seal.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::difference::{Abelian, Semigroup};
use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::panes::{floor, Bucket, Move, PaneSchedule};
use crate::time::{Millis, TimeModel};

/// The extent of one group in time. For a group kept at the tick: the first and last record
/// timestamps, both in that tick. For a group moved to a pane: the pane's bounds
/// (`first` its start, `last` its end − 1).
///
/// Kept as part of each update's value so that readers can tell which windows a group is in
/// (`first ≥` the window's start) and report first / last seen times, exact to the record
/// while the records are at the tick and to the pane after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupSpan {
    /// The earliest record timestamp (at the tick) or the pane's start, ms since epoch.
    pub first: Millis,
    /// The latest record timestamp (at the tick) or the pane's end − 1; never before `first`.
    pub last: Millis,
}

impl GroupSpan {
    /// The span of a whole bucket of `length` ms starting at `start`.
    fn bucket(start: Millis, length: Millis) -> Self {
        GroupSpan {
            first: start,
            last: start + (length - 1),
        }
    }

    /// Where a group of one tick that enters at `at` is kept from then on, as its span:
    /// the tick's own span while the schedule keeps it at the tick, else the whole pane
    /// that holds it (a late group enters straight into its pane); `None` once it has
    /// left the longest window. The [`Paned`] operator keeps groups this way, and readers
    /// that follow groups as they enter must see them the same way.
    pub fn entering(self, schedule: &PaneSchedule, at: Millis) -> Option<(GroupSpan, Millis)> {
        match schedule.bucket_at(self.first, at)? {
            Bucket::Tick => Some((self, floor(self.first, schedule.tick()))),
            Bucket::Pane(length) => {
                let bucket = floor(self.first, length);
                Some((GroupSpan::bucket(bucket, length), bucket))
            }
        }
    }
}

/// One group as it enters: `((key, span), time it entered, aggregate)`.
pub type GroupEntry<K, A> = ((K, GroupSpan), Millis, A);
/// The groups gathered at one timely time, keyed by (key, tick).
type Groups<K, A> = FxHashMap<(K, Millis), (GroupSpan, A)>;

/// Pre-aggregates a stream into (key, tick) groups, emitted once per timely time.
pub trait PreAggregateByTick<'scope, D> {
    /// Groups records by `(key, tick(ts))` per timely time and emits each group, once that
    /// time is complete, as an entry at that time. `split` returns a record's key, event
    /// timestamp and aggregate.
    fn pre_aggregate_by_tick_named<K, A, F>(
        self,
        name: &str,
        time: TimeModel,
        split: F,
    ) -> Stream<'scope, Millis, Vec<GroupEntry<K, A>>>
    where
        K: Clone + Hash + Eq + 'static,
        A: Semigroup + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static;
}

impl<'scope, D: 'static> PreAggregateByTick<'scope, D> for Stream<'scope, Millis, Vec<D>> {
    fn pre_aggregate_by_tick_named<K, A, F>(
        self,
        name: &str,
        time: TimeModel,
        mut split: F,
    ) -> Stream<'scope, Millis, Vec<GroupEntry<K, A>>>
    where
        K: Clone + Hash + Eq + 'static,
        A: Semigroup + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static,
    {
        self.unary_frontier::<crate::VecBuilder<GroupEntry<K, A>>, _, _, _>(
            Pipeline,
            name,
            move |_capability, _info| {
                // Groups gathered per timely time, each under a capability for that time.
                let mut open: BTreeMap<Millis, (Capability<Millis>, Groups<K, A>)> =
                    BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let at = *cap.time();
                        let groups = &mut open
                            .entry(at)
                            .or_insert_with(|| (cap, FxHashMap::default()))
                            .1;
                        for record in data.flat_map(|container| container.drain(..)) {
                            let (key, ts, aggregate) = split(&record);
                            match groups.entry((key, time.floor(ts))) {
                                Entry::Occupied(mut group) => {
                                    let (span, sum) = group.get_mut();
                                    span.first = span.first.min(ts);
                                    span.last = span.last.max(ts);
                                    sum.plus_equals(&aggregate);
                                }
                                Entry::Vacant(slot) => {
                                    let span = GroupSpan {
                                        first: ts,
                                        last: ts,
                                    };
                                    slot.insert((span, aggregate));
                                }
                            }
                        }
                    });
                    // Emit the groups of every time the input has completed.
                    while let Some(entry) = open.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (at, (cap, groups)) = entry.remove_entry();
                        let mut session = output.session(&cap);
                        for ((key, _tick), (span, aggregate)) in groups {
                            session.give(((key, span), at, aggregate));
                        }
                    }
                }
            },
        )
    }
}

/// A group waiting for its next move: the start of its tick or bucket (which decides its
/// moves) and its aggregate so far.
type Waiting<K, A> = FxHashMap<(K, GroupSpan), (Millis, A)>;

/// Moves one run of the pane operator carries out: enough to keep up with any rate, few
/// enough that a closing pane does not hold the worker for seconds.
pub const MOVES_PER_ACTIVATION: usize = 32_768;

/// Keeps entries in their windows, per (key, pane), by the moves of a [`PaneSchedule`].
pub trait Paned<'scope, K, A> {
    /// Turns entries (as [`PreAggregateByTick`] makes them) into the collection of every
    /// window's groups: each enters at the tick when it entered, moves to coarser buckets
    /// as the schedule says, and leaves with the longest window. An entry whose tick has
    /// already left the longest window is dropped (late beyond the retention).
    ///
    /// ```
    /// use flowsight_operators::{GroupSpan, Paned, PaneSchedule, PreAggregateByTick, Stage, TimeModel};
    /// use timely::dataflow::operators::{ToStream, Capture};
    /// use timely::dataflow::operators::capture::Extract;
    ///
    /// let time = TimeModel::new(1000).unwrap();
    /// // One 6-s window kept in 3-s panes.
    /// let schedule = PaneSchedule::new(&time, vec![Stage { window: 6_000, pane: 3_000 }]).unwrap();
    /// let captured = timely::example(move |scope| {
    ///     // (key, ts) records, all entering at timely time 0.
    ///     let records = vec![("a", 1_500u64), ("a", 1_700), ("a", 2_100)].to_stream(scope).container::<Vec<_>>();
    ///     records
    ///         .pre_aggregate_by_tick_named("Ticks", time, |&(k, ts)| (k, ts, 1i64))
    ///         .panes_named("Panes", schedule)
    ///         .inner
    ///         .capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// updates.sort_by_key(|&((_, span), t, _)| (t, span));
    /// let tick1 = ("a", GroupSpan { first: 1_500, last: 1_700 });
    /// let tick2 = ("a", GroupSpan { first: 2_100, last: 2_100 });
    /// let pane = ("a", GroupSpan { first: 0, last: 2_999 });
    /// assert_eq!(updates, vec![
    ///     // Both ticks enter at time 0, exact...
    ///     (tick1, 0, 2), (tick2, 0, 1),
    ///     // ...move to their pane when it closes at 3 s...
    ///     (pane, 3_000, 1), (pane, 3_000, 2), (tick1, 3_000, -2), (tick2, 3_000, -1),
    ///     // ...and leave once the window's start, floor_3s(T − 6 s), is past them.
    ///     (pane, 9_000, -3),
    /// ]);
    /// ```
    fn panes_named(
        self,
        name: &str,
        schedule: PaneSchedule,
    ) -> VecCollection<'scope, Millis, (K, GroupSpan), A>
    where
        Self: Sized,
    {
        self.panes_fuelled(name, schedule, MOVES_PER_ACTIVATION)
    }

    /// [`Paned::panes_named`], carrying out at most `moves_per_run` moves each time the
    /// operator runs (it asks to run again for the rest).
    fn panes_fuelled(
        self,
        name: &str,
        schedule: PaneSchedule,
        moves_per_run: usize,
    ) -> VecCollection<'scope, Millis, (K, GroupSpan), A>;
}

impl<'scope, K, A> Paned<'scope, K, A> for Stream<'scope, Millis, Vec<GroupEntry<K, A>>>
where
    K: Clone + Hash + Eq + 'static,
    A: Abelian + 'static,
{
    fn panes_fuelled(
        self,
        name: &str,
        schedule: PaneSchedule,
        moves_per_run: usize,
    ) -> VecCollection<'scope, Millis, (K, GroupSpan), A> {
        let moves_per_run = moves_per_run.max(1);
        // The first move of a group whose tick or bucket starts at `start`, after `after`.
        let next_move = {
            let schedule = schedule.clone();
            move |start: Millis, after: Millis| {
                schedule
                    .moves(start)
                    .into_iter()
                    .find(|(at, _)| *at > after)
            }
        };
        let scope = self.scope();
        self.unary_frontier::<crate::VecBuilder<GroupEntry<K, A>>, _, _, _>(
            Pipeline,
            name,
            move |_capability, info| {
                let activator = scope.activator_for(info.address);
                // Groups by the time of their next move, under one capability for the earliest.
                let mut waiting: BTreeMap<Millis, Waiting<K, A>> = BTreeMap::new();
                // The groups of the move under way, when one run did not finish them.
                #[allow(clippy::type_complexity)]
                let mut moving: Option<(
                    Millis,
                    Vec<((K, GroupSpan), (Millis, A))>,
                )> = None;
                let mut held: Option<Capability<Millis>> = None;

                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let mut session = output.session(&cap);
                        for container in data {
                            for ((key, span), at, aggregate) in container.drain(..) {
                                // A group enters where the schedule has its tick by now:
                                // at the tick, or (late) already in a pane.
                                let Some((span, start)) = span.entering(&schedule, at) else {
                                    // Late beyond the retention: it left every window already.
                                    continue;
                                };
                                if let Some((next, _)) = next_move(start, at) {
                                    add(&mut waiting, next, (key.clone(), span), start, &aggregate);
                                }
                                session.give(((key, span), at, aggregate));
                            }
                        }
                        drop(session);
                        if let Some(&earliest) = waiting.keys().next() {
                            if held.as_ref().is_none_or(|h| *h.time() > earliest) {
                                held = Some(cap.delayed(&earliest));
                            }
                        }
                    });

                    // Carry out the moves whose time the input has passed, at most
                    // `moves_per_run` a run: a pane closing moves every group of the
                    // pane at once, and the rest of the worker (peeks, status) must not
                    // wait for all of them in one step.
                    let mut fuel = moves_per_run;
                    if let Some(cap) = held.as_mut() {
                        loop {
                            if moving.is_none() {
                                let Some(entry) = waiting.first_entry() else {
                                    break;
                                };
                                if frontier.less_equal(entry.key()) {
                                    break;
                                }
                                let (at, groups) = entry.remove_entry();
                                moving = Some((at, groups.into_iter().collect()));
                            }
                            let Some((at, groups)) = moving.as_mut() else {
                                break;
                            };
                            let at = *at;
                            cap.downgrade(&at);
                            let mut session = output.session(cap);
                            while fuel > 0 {
                                let Some(((key, span), (start, aggregate))) = groups.pop() else {
                                    break;
                                };
                                fuel -= 1;
                                let mut negated = aggregate.clone();
                                negated.negate();
                                session.give(((key.clone(), span), at, negated));
                                // The move due now is the first after the time before.
                                let Some((_, Move::To(length))) = next_move(start, at - 1) else {
                                    continue;
                                };
                                let bucket = floor(start, length);
                                let moved = GroupSpan::bucket(bucket, length);
                                if let Some((next, _)) = next_move(bucket, at) {
                                    add(
                                        &mut waiting,
                                        next,
                                        (key.clone(), moved),
                                        bucket,
                                        &aggregate,
                                    );
                                }
                                session.give(((key, moved), at, aggregate));
                            }
                            if groups.is_empty() {
                                moving = None;
                            }
                            if fuel == 0 {
                                break;
                            }
                        }
                    }
                    if fuel == 0 {
                        // Moves may be left, of this time or of a later one already due:
                        // the next run carries them out (no input may come to wake it).
                        activator.activate();
                    }
                    if moving.is_some() {
                        // The time of the move under way stays held.
                        return;
                    }
                    match waiting.keys().next() {
                        Some(&earliest) => {
                            if let Some(cap) = held.as_mut() {
                                cap.downgrade(&earliest);
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
        .as_collection()
    }
}

/// Adds a group to those waiting to move at `at`, merging it with the same group.
fn add<K: Hash + Eq, A: Semigroup>(
    waiting: &mut BTreeMap<Millis, Waiting<K, A>>,
    at: Millis,
    group: (K, GroupSpan),
    start: Millis,
    aggregate: &A,
) {
    match waiting.entry(at).or_default().entry(group) {
        Entry::Occupied(mut slot) => slot.get_mut().1.plus_equals(aggregate),
        Entry::Vacant(slot) => {
            slot.insert((start, aggregate.clone()));
        }
    }
}

/// Pre-aggregates a stream and keeps it in its windows: [`PreAggregateByTick`] then
/// [`Paned`].
pub trait PreAggregateWindowed<'scope, D> {
    /// Groups records by `(key, tick(ts))` and keeps each group in the windows of
    /// `schedule`, per (key, pane). `split` returns a record's key, event timestamp and
    /// aggregate.
    fn pre_aggregate_windowed_named<K, A, F>(
        self,
        name: &str,
        schedule: PaneSchedule,
        split: F,
    ) -> VecCollection<'scope, Millis, (K, GroupSpan), A>
    where
        K: Clone + Hash + Eq + 'static,
        A: Abelian + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static;
}

impl<'scope, D: 'static> PreAggregateWindowed<'scope, D> for Stream<'scope, Millis, Vec<D>> {
    fn pre_aggregate_windowed_named<K, A, F>(
        self,
        name: &str,
        schedule: PaneSchedule,
        split: F,
    ) -> VecCollection<'scope, Millis, (K, GroupSpan), A>
    where
        K: Clone + Hash + Eq + 'static,
        A: Abelian + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static,
    {
        let time = schedule.time();
        self.pre_aggregate_by_tick_named(&format!("{name}Ticks"), time, split)
            .panes_named(&format!("{name}Panes"), schedule)
    }
}
