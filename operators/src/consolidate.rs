//! Local pre-consolidation: merging a collection's equal updates per time on this worker,
//! before they are exchanged and arranged.
//!
//! An arrangement consolidates too, but only after the exchange and by sorting everything
//! it receives. When many records of one time project onto few distinct data — a
//! registered query's group keys, for instance — merging them here in a hash map first
//! means the exchange, the batcher's sorts and the merges downstream see one update per
//! distinct datum and time instead of one per record (the rule of docs/design.md §3: work
//! grows with distinct keys, not records).
//!
//! Updates are held until the input frontier passes their time: an arrangement seals
//! nothing earlier, so holding them here adds no latency.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::difference::Semigroup;
use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};

use crate::time::Millis;

/// Merges equal updates of one time on this worker before passing them on.
pub trait PreConsolidate<'scope, D, R> {
    /// The same collection, each time's equal data merged into one update.
    ///
    /// ```
    /// use differential_dataflow::input::Input;
    /// use flowsight_operators::consolidate::PreConsolidate;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let captured = timely::example(|scope| {
    ///     let (_, records) = scope.new_collection_from(vec!["a", "b", "a", "a"]);
    ///     records.pre_consolidate_named("Merge").inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// updates.sort();
    /// assert_eq!(updates, vec![("a", 0, 3), ("b", 0, 1)]);
    /// ```
    fn pre_consolidate_named(self, name: &str) -> VecCollection<'scope, Millis, D, R>;
}

impl<'scope, D, R> PreConsolidate<'scope, D, R> for VecCollection<'scope, Millis, D, R>
where
    D: Hash + Eq + Clone + 'static,
    R: Semigroup + 'static,
{
    fn pre_consolidate_named(self, name: &str) -> VecCollection<'scope, Millis, D, R> {
        self.inner
            .unary_frontier::<crate::VecBuilder<(D, Millis, R)>, _, _, _>(
                Pipeline,
                name,
                move |_capability, _info| {
                    // Per time: a capability for it and its updates merged so far.
                    let mut waiting: BTreeMap<Millis, (Capability<Millis>, FxHashMap<D, R>)> =
                        BTreeMap::new();
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            let Some(cap) = cap.retain_least(output.output_index()) else {
                                return;
                            };
                            for (datum, time, diff) in data.flat_map(|c| c.drain(..)) {
                                let (_, merged) = waiting
                                    .entry(time)
                                    .or_insert_with(|| (cap.delayed(&time), FxHashMap::default()));
                                match merged.get_mut(&datum) {
                                    Some(total) => total.plus_equals(&diff),
                                    None => {
                                        merged.insert(datum, diff);
                                    }
                                }
                            }
                        });
                        while let Some(entry) = waiting.first_entry() {
                            if frontier.less_equal(entry.key()) {
                                break;
                            }
                            let time = *entry.key();
                            let (cap, merged) = entry.remove();
                            output.session(&cap).give_iterator(
                                merged
                                    .into_iter()
                                    .filter(|(_, diff)| !diff.is_zero())
                                    .map(|(datum, diff)| (datum, time, diff)),
                            );
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
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    /// Updates at several times, cancelling ones included, come out merged per time.
    #[test]
    fn merges_per_time_and_drops_what_cancels() {
        let captured = timely::example(|scope| {
            let (mut input, records) = scope.new_collection::<&str, isize>();
            let stream = records.pre_consolidate_named("Merge").inner.capture();
            input.update("a", 1);
            input.update("a", 1);
            input.update("b", 1);
            input.advance_to(1);
            input.update("b", -1);
            input.update("a", -1);
            input.update("c", 2);
            input.update("c", -2);
            stream
        });
        let mut updates: Vec<_> = captured
            .extract()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        updates.sort();
        assert_eq!(
            updates,
            vec![("a", 0, 2), ("a", 1, -1), ("b", 0, 1), ("b", 1, -1)]
        );
    }
}
