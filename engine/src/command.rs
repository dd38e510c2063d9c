//! What the control plane carries: commands sequenced to every worker, the view queries
//! that peeks ask, and the answers gathered back.

use std::net::IpAddr;

use flowsight_connectors::DeadLetter;
use flowsight_operators::Millis;
use std::collections::BTreeMap;

use flowsight_queries::risk::anomaly::{Anomaly, AnomalyKind};
use flowsight_queries::risk::rules::Severity;
use flowsight_queries::risk::{SeverityDeltas, SeverityPoint};
use flowsight_queries::segments::{
    HostSegment, Label, PolicyFilter, PolicyOrder, PolicyRow, SegmentDetail, SegmentList,
};
use flowsight_queries::{EdgeFilter, EdgeRow, HostAnswer, RiskRow, WindowHistory};
use serde::{Deserialize, Serialize};

use crate::queries::{QueryError, QueryPartAnswer};
use crate::status::{ClusterStatus, WorkerStatus};
use flowsight_queries::registered::QueryResult;

/// A command applied by every worker, in the same order everywhere.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    /// Read a view at `as_of` (or later, if the views have been compacted past it).
    Peek(PeekRequest),
    /// Let the arrangements forget history before `as_of`: no later peek reads earlier.
    Advance { as_of: Millis },
    /// A process announces its configuration; every worker stops the cluster if it differs
    /// from its own, since mismatched options would silently give wrong answers.
    Hello { process: usize, fingerprint: String },
    /// Register a query (its [`QueryDefinition`] as JSON text: plans carry optional fields
    /// that bincode, which timely uses between processes, cannot skip). Worker `origin`
    /// answers request `id`.
    RegisterQuery {
        id: u64,
        origin: usize,
        definition: String,
    },
    /// Drop a query and free its dataflow.
    DropQuery {
        id: u64,
        origin: usize,
        name: String,
    },
    /// A query kept more groups than allowed: every worker stops it.
    StopQuery {
        name: String,
        generation: u64,
        reason: String,
    },
    /// Stop every worker.
    Shutdown,
}

/// One peek, as every worker sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeekRequest {
    pub id: u64,
    /// The worker that gathers the parts and answers.
    pub origin: usize,
    pub as_of: Millis,
    pub query: ViewQuery,
}

/// What a peek reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewQuery {
    /// The heaviest edges of a window.
    Edges {
        window: Millis,
        filter: EdgeFilter,
        limit: usize,
    },
    /// One host in a window, with its `limit` heaviest edges each way.
    Host {
        ip: IpAddr,
        window: Millis,
        limit: usize,
    },
    /// The highest risk scores of a window, of one severity or all.
    Risks {
        window: Millis,
        severity: Option<Severity>,
        limit: usize,
    },
    /// One host's score in every window, and its history if asked.
    RiskHost { ip: IpAddr, history: bool },
    /// How many hosts were low, medium and critical in `window` over the last `span` (at
    /// most the longest window, which the history keeps), every `step`.
    Severity {
        window: Millis,
        span: Millis,
        step: Millis,
    },
    /// The most recent anomalies of a window, of one kind or all.
    Anomalies {
        window: Millis,
        kind: Option<AnomalyKind>,
        limit: usize,
    },
    /// The largest segments, each with its `members` busiest members, and the hubs.
    Segments { limit: usize, members: usize },
    /// One segment or hub, with at most `limit` members.
    Segment { id: Label, limit: usize },
    /// Which segment a host is in.
    HostSegment { ip: IpAddr },
    /// The proposed allow-list, in key order.
    Policy {
        filter: PolicyFilter,
        order: PolicyOrder,
        limit: usize,
    },
    /// A registered query's result rows, at most `limit` of them.
    QueryResults {
        name: String,
        generation: u64,
        limit: usize,
    },
    /// Counters, frontiers and partitions of every worker.
    Status,
    /// The most recent dead letters of every worker.
    DeadLetters { limit: usize },
}

impl ViewQuery {
    /// Whether the query reads the views (and so must wait for them to be complete).
    pub fn reads_a_view(&self) -> bool {
        !matches!(self, ViewQuery::Status | ViewQuery::DeadLetters { .. })
    }
}

/// One worker's part of an answer, on its way to the origin worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartAnswer {
    pub id: u64,
    pub origin: usize,
    /// The time the worker read at; the same on every worker for one peek.
    pub as_of: Millis,
    pub part: Part,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Part {
    Edges(Vec<EdgeRow>),
    Host(HostAnswer),
    Risks(Vec<RiskRow>),
    RiskHost(RiskHostAnswer),
    Severity(SeverityDeltas),
    Anomalies(Vec<Anomaly>),
    Segments(SegmentList),
    Segment(Option<SegmentDetail>),
    HostSegment(Option<HostSegment>),
    Policy(Vec<PolicyRow>),
    QueryResults(QueryPartAnswer),
    Status(Box<WorkerStatus>),
    DeadLetters {
        worker: usize,
        letters: Vec<DeadLetter>,
        counts: BTreeMap<String, u64>,
    },
    /// This worker is still rebuilding its views after a restart: they are exact only
    /// from `ready_from` on.
    CatchingUp {
        ready_from: Millis,
    },
}

/// A host's scores: `(window length, row)` for each window it has one in, and, when
/// asked for, how its score changed in each window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskHostAnswer {
    pub rows: Vec<(Millis, RiskRow)>,
    pub history: Option<Vec<WindowHistory>>,
}

/// A gathered answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Edges(Vec<EdgeRow>),
    Host(HostAnswer),
    Risks(Vec<RiskRow>),
    RiskHost(RiskHostAnswer),
    Severity(Vec<SeverityPoint>),
    Anomalies(Vec<Anomaly>),
    Segments(SegmentList),
    Segment(Option<SegmentDetail>),
    HostSegment(Option<HostSegment>),
    Policy(Vec<PolicyRow>),
    QueryResults(Result<QueryResult, QueryError>),
    Status(ClusterStatus),
    DeadLetters {
        /// The most recent letters of each worker, worker by worker, newest first.
        letters: Vec<DeadLetter>,
        total: u64,
        by_reason: BTreeMap<String, u64>,
    },
    /// Some worker is still rebuilding its views after a restart.
    CatchingUp {
        ready_from: Millis,
    },
}

/// An answer and the time it is exact for: it covers the records with `ts < as_of`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    pub as_of: Millis,
    pub answer: Answer,
}

/// Why a peek got no answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PeekError {
    #[error("the engine did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("the engine has failed: {0}")]
    Failed(String),
    #[error(
        "the engine is catching up after a restart: it replays the records its checkpoint \
         counted, and the views are exact again from as_of {ready_from} (now at {as_of}); \
         /v1/status shows the progress"
    )]
    CatchingUp { as_of: Millis, ready_from: Millis },
}
