//! flowsight's view definitions: how each built-in view is rendered with
//! `flowsight-operators`, and how an answer is read from its arrangement and merged
//! across workers.
//!
//! * [`plan`] — registered queries: the validated, serialisable Plan both their SQL and
//!   JSON forms become.
//! * [`registered`] — registered queries as dataflows over the shared arrangement of the
//!   window's records, and how their results are read.
//! * [`windows`] — the named windows (30m, 2h, 24h by default) every windowed view offers.
//! * [`graph`] — the connection graph: edges and hosts per window.
//! * [`risk`] — risk scores and anomalies per source host and window, from the graph's
//!   updates; [`read`] holds the cursor walks their readers share.
//! * [`segments`] — microsegmentation over the longest window: segments, hubs, the
//!   proposed allow-list policy and its violations.

pub mod graph;
pub mod plan;
pub mod read;
pub mod registered;
pub mod risk;
pub mod segments;
pub mod sql;
pub mod windows;

pub use graph::{EdgeFilter, EdgeRow, GraphTrace, HostAnswer, HostSummary};
pub use risk::{RiskReader, RiskRow, RiskSettings, RiskTraces, WindowHistory};
pub use segments::{SegmentReader, SegmentTraces};
pub use windows::{parse_duration_ms, WindowSpec, Windows, WindowsError};
