//! What the control plane carries: commands sequenced to every worker, the peeks' questions
//! and the parts of their answers, gathered back.

use flowsight_operators::Millis;
use serde::{Deserialize, Serialize};

/// A command applied by every worker, in the same order everywhere.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    /// Read a view at `as_of` (or later, if the views have been compacted past it).
    Peek(PeekRequest),
    /// Let the arrangements forget history before `as_of`: no later peek reads earlier.
    Advance {
        /// The latest time (ms since the epoch) complete on cluster worker 0's process; the
        /// peek input's time moves up to it.
        as_of: Millis,
    },
    /// A process announces its configuration; every worker stops the cluster if it differs
    /// from its own, since mismatched options would silently give wrong answers.
    Hello {
        /// The announcing process's index in the host file.
        process: usize,
        /// Its [`EngineConfig::fingerprint`](crate::config::EngineConfig::fingerprint).
        fingerprint: String,
    },
    /// Register a query (its [`QueryDefinition`](crate::queries::QueryDefinition) as JSON text: plans carry optional fields
    /// that bincode, which timely uses between processes, cannot skip). Worker `origin`
    /// answers request `id`.
    RegisterQuery {
        /// The request's id, unique in the cluster: its client waits for the answer under it.
        id: u64,
        /// The worker that answers: the asking process's first worker.
        origin: usize,
        /// The definition, as JSON text.
        definition: String,
    },
    /// Drop a query and free its dataflow.
    DropQuery {
        /// The request's id, unique in the cluster: its client waits for the answer under it.
        id: u64,
        /// The worker that answers: the asking process's first worker.
        origin: usize,
        /// The query to drop.
        name: String,
    },
    /// A query kept more groups than allowed: every worker stops it.
    StopQuery {
        /// The query to stop.
        name: String,
        /// Which registration of that name: a later query of the same name is left running.
        generation: u64,
        /// Why it stops, as its failed state shows it to users.
        reason: String,
    },
    /// Stop every worker.
    Shutdown,
}

/// One peek, as every worker sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeekRequest {
    /// Unique in the cluster (the asking process's first worker in the high bits): matches
    /// the parts to the waiting client.
    pub id: u64,
    /// The worker that gathers the parts and answers.
    pub origin: usize,
    /// The time asked for (ms since the epoch, on a tick); workers read at it, or at the
    /// peek input's time if that is later.
    pub as_of: Millis,
    /// The view asked of: its [`View::NAME`](crate::view::View::NAME).
    pub view: String,
    /// The question: the view's value, encoded.
    pub question: Vec<u8>,
}

/// One worker's part of an answer, on its way to the origin worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartAnswer {
    /// The peek's [`PeekRequest::id`].
    pub id: u64,
    /// The worker that asked: the part is exchanged to it.
    pub origin: usize,
    /// The time the worker read at; the same on every worker for one peek.
    pub as_of: Millis,
    /// The worker's answer.
    pub part: Part,
}

/// What a worker answers a peek with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Part {
    /// The view's part, encoded.
    Read(Vec<u8>),
    /// This worker is still rebuilding its views after a restart: they are exact only
    /// from `ready_from` on.
    CatchingUp {
        /// The time (ms since the epoch) from which this worker's views are exact again.
        ready_from: Millis,
    },
    /// The question could not be decoded or the part encoded (processes of different
    /// builds, or a bug).
    Unreadable(String),
}
