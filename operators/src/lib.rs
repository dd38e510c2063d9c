//! Generic timely / differential operators and algorithms, with no knowledge of what a
//! view means (the domain rules — risk scoring, anomalies, host windows, segmentation —
//! live with their views in `flowsight-queries`).
//!
//! Nothing here performs I/O: the crate owns the time model and watermarks ([`time`]), the
//! aggregate types that travel as differential "diffs" ([`aggregates`]), the pane
//! schedule of windows ([`panes`]), the windowing operators that pre-aggregate records by
//! (key, tick) and keep them per (key, pane) by future moves ([`window`]), top-k selection ([`topk`]), [`earliest`], which keeps the smallest value
//! under each key, and [`consolidate`], which merges equal updates per time before they are
//! exchanged.

pub mod aggregates;
pub mod consolidate;
pub mod earliest;
pub mod panes;
pub mod time;
pub mod topk;
pub mod window;

pub use aggregates::FlowStats;
pub use panes::{PaneError, PaneSchedule, Stage};
pub use time::{Millis, TimeModel, TimeModelError, WatermarkReport, WatermarkTracker};
pub use window::{
    GroupEntry, GroupSpan, Paned, PreAggregateByTick, PreAggregateWindowed, MOVES_PER_ACTIVATION,
};

/// How an operator that outputs a `Vec` of updates batches them: timely's default capacity.
pub type VecBuilder<D> = timely::container::CapacityContainerBuilder<Vec<D>>;

/// Hands the updates of `container` to `put` one time at a time, emptying it: the whole
/// container when all its updates are at one time (the usual case), without a copy.
pub fn split_by_time<D, R>(
    container: &mut Vec<(D, Millis, R)>,
    mut put: impl FnMut(Millis, Vec<(D, Millis, R)>),
) {
    let Some(first) = container.first().map(|update| update.1) else {
        return;
    };
    if container.iter().all(|update| update.1 == first) {
        put(first, std::mem::take(container));
    } else {
        let mut by_time: std::collections::BTreeMap<Millis, Vec<(D, Millis, R)>> =
            std::collections::BTreeMap::new();
        for update in container.drain(..) {
            by_time.entry(update.1).or_default().push(update);
        }
        for (at, updates) in by_time {
            put(at, updates);
        }
    }
}
