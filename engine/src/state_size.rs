//! How much state each view holds: the records of its arrangements (from differential's
//! own `differential/arrange` log events) and the bytes waiting in their batchers, per view
//! family, on one worker.
//!
//! Differential reports every batch an arrangement makes, every merge and every drop,
//! with the id of the operator that owns the trace; the events balance, so summing them
//! per operator gives the records each trace holds now. Operators are attributed to a view
//! by the range of operator ids allocated while the view was rendered (every arrangement
//! of the view, those inside its reductions included), so no operator needs a name.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::worker::Worker;

/// The state one view holds on one worker (or, summed, on the cluster).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewState {
    /// Updates held in its arrangements' traces: one per (key, value, time) after
    /// consolidation, so with panes about one per distinct (key, pane).
    pub records: u64,
    /// Updates waiting in its arrangements' batchers to be sealed into the traces.
    pub batcher_records: u64,
    /// Bytes those batchers hold.
    pub batcher_bytes: u64,
}

impl ViewState {
    /// Adds another worker's state of the same view.
    pub fn add(&mut self, other: &ViewState) {
        self.records += other.records;
        self.batcher_records += other.batcher_records;
        self.batcher_bytes += other.batcher_bytes;
    }
}

#[derive(Default)]
struct OperatorState {
    records: i64,
    batcher_records: i64,
    batcher_bytes: i64,
}

/// One worker's account of its arrangements, fed by differential's log events.
#[derive(Default)]
pub struct StateSizes {
    operators: FxHashMap<usize, OperatorState>,
    /// Which view each range of operator ids belongs to.
    views: Vec<(Range<usize>, String)>,
}

/// A worker's [`StateSizes`], shared between the logger that feeds it and the status view.
pub type SharedSizes = Rc<RefCell<StateSizes>>;

impl StateSizes {
    /// Starts counting this worker's arrangements: registers a `differential/arrange` logger.
    /// Dataflows built before this call are not counted.
    pub fn install(worker: &mut Worker) -> SharedSizes {
        let sizes: SharedSizes = Rc::new(RefCell::new(StateSizes::default()));
        let fed = Rc::clone(&sizes);
        if let Some(mut register) = worker.log_register() {
            register.insert::<DifferentialEventBuilder, _>(
                "differential/arrange",
                move |_time, data| {
                    let Some(events) = data else { return };
                    // Events come between operator runs, never while the status view reads.
                    let Ok(mut sizes) = fed.try_borrow_mut() else {
                        return;
                    };
                    for (_, event) in events.iter() {
                        sizes.apply(event);
                    }
                },
            );
        }
        sizes
    }

    fn apply(&mut self, event: &DifferentialEvent) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        match event {
            DifferentialEvent::Batch(batch) => {
                self.operators.entry(batch.operator).or_default().records += count(batch.length);
            }
            DifferentialEvent::Merge(merge) => {
                if let Some(complete) = merge.complete {
                    let state = self.operators.entry(merge.operator).or_default();
                    state.records += count(complete) - count(merge.length1) - count(merge.length2);
                }
            }
            DifferentialEvent::Drop(drop) => {
                self.operators.entry(drop.operator).or_default().records -= count(drop.length);
            }
            DifferentialEvent::Batcher(batcher) => {
                let state = self.operators.entry(batcher.operator).or_default();
                state.batcher_records += i64::try_from(batcher.records_diff).unwrap_or(0);
                state.batcher_bytes += i64::try_from(batcher.size_diff).unwrap_or(0);
            }
            DifferentialEvent::MergeShortfall(_) | DifferentialEvent::TraceShare(_) => {}
        }
    }

    /// Attributes the operators with ids in `ids` (those allocated while a view was
    /// rendered) to the view `name`.
    pub fn name(&mut self, ids: Range<usize>, name: &str) {
        self.views.push((ids, name.to_string()));
    }

    /// Each view's state now, by name; arrangements of no named view count as `other`.
    pub fn by_view(&self) -> BTreeMap<String, ViewState> {
        let mut views: BTreeMap<String, ViewState> = BTreeMap::new();
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        for (id, state) in &self.operators {
            let name = self
                .views
                .iter()
                .find(|(ids, _)| ids.contains(id))
                .map_or("other", |(_, name)| name.as_str());
            views.entry(name.to_string()).or_default().add(&ViewState {
                records: clamp(state.records),
                batcher_records: clamp(state.batcher_records),
                batcher_bytes: clamp(state.batcher_bytes),
            });
        }
        views
    }
}

/// Renders a view with `render` and attributes the operators it builds to `name`.
pub fn rendering<R>(
    sizes: &SharedSizes,
    next_id: impl Fn() -> usize,
    name: &str,
    render: impl FnOnce() -> R,
) -> R {
    let start = next_id();
    let rendered = render();
    sizes.borrow_mut().name(start..next_id(), name);
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::logging::{BatchEvent, BatcherEvent, DropEvent, MergeEvent};

    #[test]
    fn batches_merges_and_drops_balance_per_view() {
        let mut sizes = StateSizes::default();
        sizes.name(10..20, "graph");
        sizes.name(20..25, "risk");
        let events: Vec<DifferentialEvent> = vec![
            BatchEvent {
                operator: 12,
                length: 100,
            }
            .into(),
            BatchEvent {
                operator: 12,
                length: 50,
            }
            .into(),
            // A merge starts (no effect) and completes: 150 updates consolidate to 120.
            MergeEvent {
                operator: 12,
                scale: 1,
                length1: 100,
                length2: 50,
                complete: None,
            }
            .into(),
            MergeEvent {
                operator: 12,
                scale: 1,
                length1: 100,
                length2: 50,
                complete: Some(120),
            }
            .into(),
            BatchEvent {
                operator: 21,
                length: 7,
            }
            .into(),
            BatchEvent {
                operator: 30,
                length: 5,
            }
            .into(),
            BatcherEvent {
                operator: 21,
                records_diff: 9,
                size_diff: 512,
                capacity_diff: 0,
                allocations_diff: 0,
            }
            .into(),
        ];
        for event in &events {
            sizes.apply(event);
        }
        let views = sizes.by_view();
        assert_eq!(views["graph"].records, 120);
        assert_eq!(
            views["risk"],
            ViewState {
                records: 7,
                batcher_records: 9,
                batcher_bytes: 512
            }
        );
        assert_eq!(views["other"].records, 5, "an operator of no named view");
        // A dropped trace takes its updates with it.
        sizes.apply(
            &DropEvent {
                operator: 12,
                length: 120,
            }
            .into(),
        );
        assert_eq!(sizes.by_view()["graph"].records, 0);
    }
}
