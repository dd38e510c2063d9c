//! flowscope's view definitions: how each built-in view is rendered with
//! `flowscope-operators`, and how an answer is read from its arrangement and merged
//! across workers.
//!
//! * [`windows`] — the named windows (30m, 2h, 24h by default) every windowed view offers.
//! * [`graph`] — the connection graph: edges and hosts per window.

pub mod graph;
pub mod windows;

pub use graph::{EdgeFilter, EdgeRow, GraphTrace, HostAnswer, HostSummary};
pub use windows::{parse_duration_ms, WindowSpec, Windows, WindowsError};
