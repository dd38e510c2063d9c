//! Pure timely / differential operators and algorithms used by flowsight's views.
//!
//! Nothing here performs I/O: the crate owns the time model ([`time`]), the aggregate
//! types that travel as differential "diffs" ([`aggregates`]), the windowing operator that
//! pre-aggregates records by (key, tick) and retracts them in the future ([`window`]), and
//! small algorithms shared by views ([`topk`]). Risk scoring ([`risk`]) and the anomaly
//! rules ([`anomaly`]) are pure functions; [`host_state`] keeps each source host's windows
//! and [`host_windows`] is the operator that maintains them incrementally. [`segments`]
//! groups hosts into microsegments with differential's label propagation, and
//! [`earliest`] keeps the smallest value under each key. [`consolidate`] merges equal
//! updates per time before they are exchanged.

pub mod aggregates;
pub mod anomaly;
pub mod consolidate;
pub mod earliest;
pub mod host_state;
pub mod host_windows;
pub mod risk;
pub mod segments;
pub mod time;
pub mod topk;
pub mod window;

pub use aggregates::FlowStats;
pub use time::{Millis, TimeModel, TimeModelError, WatermarkReport, WatermarkTracker};
pub use window::{PreAggregateWindowed, TickSpan};
