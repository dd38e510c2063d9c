//! The flowsight engine: timely workers built from a typed configuration, running the
//! views' dataflow, with a control plane that sequences commands to every worker and
//! answers peeks from every worker's part of the arrangements.
//!
//! * [`config`] — the validated configuration, and the timely configuration built from it.
//! * [`source`] — the source operator: partitions → events at their timely times.
//! * [`checkpoint`] — what each partition contributed, so a restart loses and repeats nothing.
//! * `ingest` — a process's source outside the dataflow: checks, resume points, the
//!   dead-letter sink, the checkpoint writer.
//! * [`command`] — what the control plane carries: commands, peeks' questions, parts.
//! * [`view`] — the contract every readable view keeps ([`View`]), and the typed answers.
//! * [`views`] — every view, one module per area, and the one list that registers them.
//! * [`peek`] — the peek operator and the gathering of answers to the asking process.
//! * [`queries`] — registered queries: definitions, each worker's dataflows for them, the
//!   process's list, and the file that keeps them across restarts.
//! * [`subscribe`] — subscriptions: a view's changes between complete times, captured by
//!   one feed per view and parameters and fanned out to its clients.
//! * [`status`] — per-worker counters and the cluster status merged from them.
//! * [`worker`] — one worker's dataflows and its loop.
//! * [`engine`] — starting the workers and the [`Client`] that the HTTP frontend uses.

pub mod alerts;
pub mod checkpoint;
pub mod command;
pub mod config;
pub mod engine;
mod ingest;
pub mod peek;
pub mod queries;
pub mod source;
pub mod state_size;
pub mod status;
pub mod subscribe;
pub mod view;
pub mod views;
pub mod worker;

pub use config::{
    AlertsConfig, ClusterConfig, ConfigError, EngineConfig, KafkaSourceConfig, QueryLimits,
    SourceConfig,
};
pub use engine::{Client, Engine, EngineError, EngineFailure};
pub use ingest::CheckpointFailure;
pub use queries::{QueryDefinition, QueryError, QueryInfo, QueryState};
pub use status::{ClusterStatus, PartitionStatus, WorkerStatus};
pub use subscribe::{Hub, SubscriptionSettings, ViewReader, ViewRows};
pub use view::{Answered, PeekError, View};
