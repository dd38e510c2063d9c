//! Temporal filters: narrowing a collection to the times before each record's own deadline.
//!
//! A registered query over a 30-minute window reads the shared arrangement of every record
//! of the longest window, so it must drop each record again once the record has left its
//! own window. That is a temporal filter, as in Materialize's `mz_now()`: an update
//! `(d, t, r)` stands for `r` at every time from `t` on; keeping it only before a deadline
//! `u` is the update itself and its negation at `max(t, u)` (nothing at all when `t ≥ u`).
//!
//! The negations are held here until the input frontier passes their time, for the reason
//! the windowed pre-aggregation holds its retractions: handed downstream early they would
//! wait in the next arrangement's batcher, which re-sorts all it holds at every seal.

use std::collections::BTreeMap;

use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::difference::Abelian;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};

use crate::time::Millis;

/// Keeps each record only at times before its deadline.
pub trait TemporalFilter<'scope, D, R> {
    /// Keeps every update of the collection only until `deadline(record)` (exclusive).
    ///
    /// ```
    /// use differential_dataflow::input::Input;
    /// use flowscope_operators::temporal::TemporalFilter;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let captured = timely::example(|scope| {
    ///     // (name, deadline) records, all entering at time 0.
    ///     let (_, records) = scope.new_collection_from(vec![("a", 5u64), ("b", 0)]);
    ///     records.until_named("Until", |&(_, deadline)| deadline).inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// updates.sort();
    /// // "a" is there from 0 and leaves at 5; "b" was never before its deadline.
    /// assert_eq!(updates, vec![(("a", 5), 0, 1), (("a", 5), 5, -1)]);
    /// ```
    fn until_named<F>(self, name: &str, deadline: F) -> VecCollection<'scope, Millis, D, R>
    where
        F: FnMut(&D) -> Millis + 'static;
}

type Update<D, R> = (D, Millis, R);

impl<'scope, D, R> TemporalFilter<'scope, D, R> for VecCollection<'scope, Millis, D, R>
where
    D: Ord + Clone + 'static,
    R: Abelian + 'static,
{
    fn until_named<F>(self, name: &str, mut deadline: F) -> VecCollection<'scope, Millis, D, R>
    where
        F: FnMut(&D) -> Millis + 'static,
    {
        self.inner
            .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Update<D, R>>>, _, _, _>(
                Pipeline,
                name,
                move |_capability, _info| {
                    // Negations by the time they take effect, under one capability for the
                    // earliest of them.
                    let mut pending: BTreeMap<Millis, Vec<Update<D, R>>> = BTreeMap::new();
                    let mut held: Option<Capability<Millis>> = None;
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            let Some(cap) = cap.retain_least(output.output_index()) else {
                                return;
                            };
                            let mut session = output.session(&cap);
                            for (record, time, diff) in data.flat_map(|c| c.drain(..)) {
                                let until = deadline(&record);
                                if time >= until {
                                    continue;
                                }
                                let mut negated = diff.clone();
                                negated.negate();
                                let waiting = pending.entry(until).or_default();
                                waiting.push((record.clone(), until, negated));
                                // Equal records due at one time cancel or merge while they
                                // wait, so what is held follows the distinct records, not
                                // the records (amortised: at each doubling).
                                if waiting.len() >= 64 && waiting.len().is_power_of_two() {
                                    consolidate_updates(waiting);
                                }
                                session.give((record, time, diff));
                            }
                            drop(session);
                            if let Some(&earliest) = pending.keys().next() {
                                if held.as_ref().is_none_or(|h| *h.time() > earliest) {
                                    held = Some(cap.delayed(&earliest));
                                }
                            }
                        });
                        if let Some(cap) = held.as_mut() {
                            let mut session = output.session(cap);
                            while let Some(entry) = pending.first_entry() {
                                if frontier.less_equal(entry.key()) {
                                    break;
                                }
                                session.give_iterator(entry.remove().into_iter());
                            }
                        }
                        match pending.keys().next() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::consolidation::consolidate_updates;
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    /// Many equal records due at one deadline are merged while they wait (past the first
    /// consolidation threshold), and the output still accumulates to the exact counts.
    #[test]
    fn many_equal_records_leave_with_their_exact_count() {
        let mut records: Vec<(&str, u64)> = vec![("a", 5); 300];
        records.extend(vec![("b", 7); 70]);
        records.push(("c", 0));
        let captured = timely::example(move |scope| {
            let (_, collection) = scope.new_collection_from(records);
            collection
                .until_named("Until", |&(_, deadline)| deadline)
                .inner
                .capture()
        });
        let mut updates: Vec<_> = captured
            .extract()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        consolidate_updates(&mut updates);
        assert_eq!(
            updates,
            vec![
                (("a", 5), 0, 300),
                (("a", 5), 5, -300),
                (("b", 7), 0, 70),
                (("b", 7), 7, -70),
            ]
        );
    }
}
