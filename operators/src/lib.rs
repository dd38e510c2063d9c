//! Pure timely / differential operators and algorithms used by flowscope's views.
//!
//! Nothing here performs I/O: the crate owns the time model ([`time`]), the aggregate
//! types that travel as differential "diffs" ([`aggregates`]), the windowing operator that
//! pre-aggregates records by (key, tick) and retracts them in the future ([`window`]), and
//! small algorithms shared by views ([`topk`]).

pub mod aggregates;
pub mod time;
pub mod topk;
pub mod window;

pub use aggregates::FlowStats;
pub use time::{Millis, TimeModel, TimeModelError, WatermarkReport, WatermarkTracker};
pub use window::{PreAggregateWindowed, TickSpan};
