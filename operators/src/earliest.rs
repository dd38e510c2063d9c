//! `earliest_by_key`: the smallest value present under each key, kept current as values
//! come and go.
//!
//! Differential's `reduce` would answer this too, but it re-reads a key's whole history
//! of values each time the key changes: for a key that gains a value every tick and keeps
//! a day of them (an edge's first-seen time in a 24h window), that is a day of values per
//! tick. This operator keeps each key's present values in an ordered multiset instead, so
//! an update costs a logarithm and only keys whose minimum moved produce output.
//!
//! It needs totally ordered times (event time), which is what every flowsight view runs
//! on; updates are applied one complete time at a time, in time order.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// Updates waiting for their time to complete, under a capability for that time.
type Pending<T, K, V> = BTreeMap<T, (Capability<T>, Vec<(K, V, isize)>)>;

/// Maintains, for each key, the smallest value whose accumulated count is positive.
pub trait EarliestByKey<'scope, T: Timestamp, K: 'static, V: 'static> {
    /// Outputs `(key, min value)` with count 1 for every key that has a value present.
    ///
    /// ```
    /// use differential_dataflow::input::Input;
    /// use flowsight_operators::earliest::EarliestByKey;
    ///
    /// timely::example(|scope| {
    ///     let (_, values) = scope.new_collection_from(vec![(10u32, 3u32), (10, 1), (20, 7)]);
    ///     let (_, expected) = scope.new_collection_from(vec![(10u32, 1u32), (20, 7)]);
    ///     values.earliest_by_key_named("Earliest").assert_eq(expected);
    /// });
    /// ```
    fn earliest_by_key_named(self, name: &str) -> VecCollection<'scope, T, (K, V), isize>;
}

impl<'scope, T, K, V> EarliestByKey<'scope, T, K, V> for VecCollection<'scope, T, (K, V), isize>
where
    T: Timestamp + TotalOrder + Lattice,
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    fn earliest_by_key_named(self, name: &str) -> VecCollection<'scope, T, (K, V), isize> {
        let by_key = Exchange::new(|update: &((K, V), T, isize)| update.0 .0.hashed());
        self.inner
            .unary_frontier::<crate::VecBuilder<((K, V), T, isize)>, _, _, _>(
                by_key,
                name,
                |_capability, _info| {
                    let mut pending: Pending<T, K, V> = BTreeMap::new();
                    // Each key's present values and their counts; a key with none is removed.
                    let mut present: HashMap<K, BTreeMap<V, isize>> = HashMap::new();
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            let Some(cap) = cap.retain_least(output.output_index()) else {
                                return;
                            };
                            for ((key, value), time, diff) in
                                data.flat_map(|container| container.drain(..))
                            {
                                pending
                                    .entry(time.clone())
                                    .or_insert_with(|| (cap.delayed(&time), Vec::new()))
                                    .1
                                    .push((key, value, diff));
                            }
                        });

                        while let Some(entry) = pending.first_entry() {
                            if frontier.less_equal(entry.key()) {
                                break;
                            }
                            let (time, (cap, updates)) = entry.remove_entry();
                            // The minimum each touched key had before this time.
                            let mut before: HashMap<K, Option<V>> = HashMap::new();
                            for (key, value, diff) in updates {
                                let values = present.entry(key.clone()).or_default();
                                before.entry(key).or_insert_with(|| least_present(values));
                                let count = values.entry(value.clone()).or_insert(0);
                                *count += diff;
                                if *count == 0 {
                                    values.remove(&value);
                                }
                            }
                            let mut session = output.session(&cap);
                            for (key, old) in before {
                                let new = present.get(&key).and_then(least_present);
                                if present.get(&key).is_some_and(BTreeMap::is_empty) {
                                    present.remove(&key);
                                }
                                if old == new {
                                    continue;
                                }
                                if let Some(old) = old {
                                    session.give(((key.clone(), old), time.clone(), -1));
                                }
                                if let Some(new) = new {
                                    session.give(((key, new), time.clone(), 1));
                                }
                            }
                        }
                    }
                },
            )
            .as_collection()
    }
}

/// The smallest value with a positive count.
fn least_present<V: Clone>(values: &BTreeMap<V, isize>) -> Option<V> {
    values
        .iter()
        .find(|(_, count)| **count > 0)
        .map(|(value, _)| value.clone())
}
