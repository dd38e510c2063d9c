//! Sliding windows by future retraction, after pre-aggregation by (key, tick).
//!
//! Each record contributes to a group `(key, tick of its ts)`. When the input frontier has
//! passed a timely time `t`, every group gathered at `t` becomes one differential update
//! `((key, span), t, +aggregate)` and is scheduled to leave at `own_time(tick) + retention`
//! with the negated aggregate. So the work grows with distinct (key, tick) pairs, not with
//! records, and a late record (one that entered at the frontier rather than at its own
//! time) still leaves at its own time plus the retention, as docs/design.md §3 requires.
//!
//! Retractions are held here, under a capability for the earliest of them, and released
//! only once the input frontier has passed their time: handing them downstream early would
//! park a whole window of future updates in the arrangement's batcher, which re-sorts what
//! it holds on every seal.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::difference::Abelian;
use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::time::{Millis, TimeModel};

/// The first and last record timestamps of one (key, tick) group; both lie in the same tick.
///
/// Kept as the value of each update so that readers can report exact first / last seen
/// times and can tell which tick (and so which windows) a group belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TickSpan {
    /// The earliest record timestamp in the group, ms since epoch.
    pub first: Millis,
    /// The latest record timestamp in the group, ms since epoch; never before `first`.
    pub last: Millis,
}

type Update<K, A> = ((K, TickSpan), Millis, A);
/// The groups gathered at one timely time, keyed by (key, tick).
type Groups<K, A> = FxHashMap<(K, Millis), (TickSpan, A)>;

/// Pre-aggregates a stream into (key, tick) groups that live for `retention`.
pub trait PreAggregateWindowed<'scope, D> {
    /// Groups records by `(key, tick(ts))` per timely time and emits each group as a
    /// differential update that is retracted at `own_time(tick) + retention`.
    ///
    /// `split` returns a record's key, event timestamp and aggregate.
    ///
    /// ```
    /// use flowsight_operators::{PreAggregateWindowed, TimeModel, TickSpan};
    /// use timely::dataflow::operators::{ToStream, Capture};
    /// use timely::dataflow::operators::capture::Extract;
    ///
    /// let captured = timely::example(|scope| {
    ///     // (key, ts) records, all at timely time 0.
    ///     let records = vec![("a", 1_500u64), ("a", 1_700), ("b", 2_100)].to_stream(scope).container::<Vec<_>>();
    ///     records
    ///         .pre_aggregate_windowed_named("Window", TimeModel::new(1000).unwrap(), 5_000, |&(k, ts)| (k, ts, 1i64))
    ///         .inner
    ///         .capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// updates.sort();
    /// let a = ("a", TickSpan { first: 1_500, last: 1_700 });
    /// let b = ("b", TickSpan { first: 2_100, last: 2_100 });
    /// // Both groups enter at time 0 (records that arrive before their own time wait for
    /// // nothing here: the caller decides times) and leave at own time + retention.
    /// assert_eq!(updates, vec![(a, 0, 2), (a, 7_000, -2), (b, 0, 1), (b, 8_000, -1)]);
    /// ```
    fn pre_aggregate_windowed_named<K, A, F>(
        self,
        name: &str,
        time: TimeModel,
        retention: Millis,
        split: F,
    ) -> VecCollection<'scope, Millis, (K, TickSpan), A>
    where
        K: Clone + Hash + Eq + 'static,
        A: Abelian + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static;
}

impl<'scope, D: 'static> PreAggregateWindowed<'scope, D> for Stream<'scope, Millis, Vec<D>> {
    fn pre_aggregate_windowed_named<K, A, F>(
        self,
        name: &str,
        time: TimeModel,
        retention: Millis,
        mut split: F,
    ) -> VecCollection<'scope, Millis, (K, TickSpan), A>
    where
        K: Clone + Hash + Eq + 'static,
        A: Abelian + 'static,
        F: FnMut(&D) -> (K, Millis, A) + 'static,
    {
        self.unary_frontier::<crate::VecBuilder<Update<K, A>>, _, _, _>(
            Pipeline,
            name,
            move |_capability, _info| {
                // Groups gathered per timely time, each under a capability for that time.
                let mut open: BTreeMap<Millis, (Capability<Millis>, Groups<K, A>)> =
                    BTreeMap::new();
                // Retractions by the time they take effect, under one capability for the earliest.
                let mut retractions: BTreeMap<Millis, Vec<Update<K, A>>> = BTreeMap::new();
                let mut retraction_cap: Option<Capability<Millis>> = None;

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
                                    slot.insert((
                                        TickSpan {
                                            first: ts,
                                            last: ts,
                                        },
                                        aggregate,
                                    ));
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
                        for ((key, tick), (span, aggregate)) in groups {
                            let leaves = time.own_time(tick).saturating_add(retention);
                            if leaves <= at {
                                // Late beyond the retention: it left the window before it could be seen.
                                continue;
                            }
                            let mut negated = aggregate.clone();
                            negated.negate();
                            retractions.entry(leaves).or_default().push((
                                (key.clone(), span),
                                leaves,
                                negated,
                            ));
                            session.give(((key, span), at, aggregate));
                        }
                        drop(session);
                        if let Some(&earliest) = retractions.keys().next() {
                            if retraction_cap
                                .as_ref()
                                .is_none_or(|held| *held.time() > earliest)
                            {
                                retraction_cap = Some(cap.delayed(&earliest));
                            }
                        }
                    }

                    // Release the retractions whose time the input has passed.
                    if let Some(cap) = retraction_cap.as_mut() {
                        let mut session = output.session(cap);
                        while let Some(entry) = retractions.first_entry() {
                            if frontier.less_equal(entry.key()) {
                                break;
                            }
                            session.give_iterator(entry.remove().into_iter());
                        }
                    }
                    match retractions.keys().next() {
                        Some(&earliest) => {
                            if let Some(cap) = retraction_cap.as_mut() {
                                cap.downgrade(&earliest);
                            }
                        }
                        None => retraction_cap = None,
                    }
                }
            },
        )
        .as_collection()
    }
}
