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
    Advance { as_of: Millis },
    /// A process announces its configuration; every worker stops the cluster if it differs
    /// from its own, since mismatched options would silently give wrong answers.
    Hello { process: usize, fingerprint: String },
    /// Register a query (its [`QueryDefinition`](crate::queries::QueryDefinition) as JSON text: plans carry optional fields
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
    /// The view asked of: its [`View::NAME`](crate::view::View::NAME).
    pub view: String,
    /// The question: the view's value, encoded.
    pub question: Vec<u8>,
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

/// What a worker answers a peek with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Part {
    /// The view's part, encoded.
    Read(Vec<u8>),
    /// This worker is still rebuilding its views after a restart: they are exact only
    /// from `ready_from` on.
    CatchingUp { ready_from: Millis },
    /// The question could not be decoded or the part encoded (processes of different
    /// builds, or a bug).
    Unreadable(String),
}
