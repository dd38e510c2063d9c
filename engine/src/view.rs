//! The contract every readable view keeps, and how the engine reads any of them without
//! knowing which.
//!
//! A view is a type implementing [`View`]: its value is the question (a window, a limit,
//! a host…), [`View::read`] answers it from one worker's arrangements, and [`View::merge`]
//! combines every worker's part into the answer a client gets, typed as [`View::Rows`].
//! The views are listed once, in [`crate::views::LIST`]; the peek operator, the gathering
//! of parts and the [`Client`](crate::Client) are generic over them. A question travels to
//! every worker, and each part back to the asking worker, encoded with bincode (the
//! encoding timely itself uses between processes), so the control plane carries bytes and
//! a view's name rather than an enum of every view.

use std::cell::RefCell;
use std::fmt::Debug;

use flowsight_operators::Millis;
use flowsight_queries::plan::ValidPlan;
use flowsight_queries::risk::rules::RiskConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::Shared;
use crate::peek::Views;
use crate::status::WorkerStats;

/// A view that peeks read: its value is the question, asked of every worker at one
/// `as_of`.
///
/// To add one, see "How to add a view" in `docs/architecture.md`.
pub trait View: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The view's name: its entry in [`crate::views::LIST`], the key its subscriptions
    /// share, and the word in error messages. Unique among the views.
    const NAME: &'static str;

    /// Whether a read waits for the views' arrangements to be complete at the read time
    /// (and answers "catching up" while a restarted worker rebuilds them). False for views
    /// of a worker's counters, which are readable at any time.
    const READS_ARRANGEMENTS: bool = true;

    /// One worker's part of the answer, sent to the worker that asked.
    type Part: Serialize + DeserializeOwned + Send + 'static;

    /// The answer a client gets: every worker's part, merged.
    type Rows: Send + 'static;

    /// Reads this worker's part at `at.time`, which every arrangement's frontier has
    /// passed (and [`View::behind`] has said is readable).
    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Self::Part;

    /// Combines the parts of every worker (one each, in no particular order).
    fn merge(&self, parts: Vec<Self::Part>, at: &Merging<'_>) -> Self::Rows;

    /// Whether this worker must wait before reading at `read_at` for a dataflow that
    /// progresses on its own schedule (a registered query's). Most views read only the
    /// arrangements the peek operator already waits for.
    fn behind(&self, _views: &Views, _read_at: Millis) -> bool {
        false
    }
}

/// What a worker reads a part with, besides the arrangements.
pub struct Reading<'a> {
    /// The time every worker reads at for this peek.
    pub time: Millis,
    pub(crate) stats: &'a RefCell<WorkerStats>,
    pub(crate) shared: &'a Shared,
    /// Every window's length, shortest first.
    pub windows: &'a [Millis],
    /// The longest window's length.
    pub longest: Millis,
    /// This worker's index among its process's workers.
    pub local_index: usize,
}

impl Reading<'_> {
    /// How the risk views score, for their readers.
    pub fn risk_config(&self) -> &RiskConfig {
        &self.shared.config.analysis.risk
    }

    /// The first timestamp the window of `length` ms holds at the time read:
    /// `floor_pane(time − length)`.
    pub fn window_start(&self, length: Millis) -> Millis {
        self.shared.config.windows.start(length, self.time)
    }
}

/// What the asking worker's client merges the parts with.
pub struct Merging<'a> {
    /// The time every worker read at.
    pub as_of: Millis,
    /// How many processes the cluster has.
    pub processes: usize,
    pub(crate) shared: &'a Shared,
}

impl Merging<'_> {
    /// The longest window's length, in ms: how far back the history a view keeps reaches.
    pub fn longest(&self) -> Millis {
        self.shared.config.windows.longest().length
    }

    /// The plan of a registered query's generation, if it is still registered.
    pub fn query_plan(&self, name: &str, generation: u64) -> Option<ValidPlan> {
        self.shared.query_plan(name, generation)
    }
}

/// An answer and the time it is exact for: it covers the records with `ts < as_of`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answered<R> {
    /// The time every worker read at (ms since the epoch).
    pub as_of: Millis,
    /// The view's rows: every worker's part, merged.
    pub answer: R,
}

/// Why a peek got no answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PeekError {
    /// No answer came within the client's timeout, which it holds.
    #[error("the engine did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The workers stopped, or are stopping, before they answered.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The engine has failed and answers no more; holds why.
    #[error("the engine has failed: {0}")]
    Failed(String),
    /// A restarted worker is still replaying what its checkpoint counted: the views are not
    /// exact at `as_of` yet.
    #[error(
        "the engine is catching up after a restart: it replays the records its checkpoint \
         counted, and the views are exact again from as_of {ready_from} (now at {as_of}); \
         /v1/status shows the progress"
    )]
    CatchingUp {
        /// The time the peek read at (ms since the epoch).
        as_of: Millis,
        /// The time from which the views are exact again.
        ready_from: Millis,
    },
    /// A question or part could not be decoded: processes of different builds, or a bug.
    #[error("the {view} view could not be read: {reason}")]
    Unreadable {
        /// The view's [`View::NAME`].
        view: String,
        /// The decoding or encoding error.
        reason: String,
    },
}

/// A question of some view, decoded on a worker: what the peek operator needs of it
/// without knowing the view.
pub(crate) trait Question {
    fn reads_arrangements(&self) -> bool;
    fn behind(&self, views: &Views, read_at: Millis) -> bool;
    /// This worker's part, encoded for the asking worker.
    fn read_encoded(&self, views: &mut Views, at: &Reading<'_>) -> Result<Vec<u8>, String>;
}

impl<V: View> Question for V {
    fn reads_arrangements(&self) -> bool {
        V::READS_ARRANGEMENTS
    }

    fn behind(&self, views: &Views, read_at: Millis) -> bool {
        View::behind(self, views, read_at)
    }

    fn read_encoded(&self, views: &mut Views, at: &Reading<'_>) -> Result<Vec<u8>, String> {
        encode(&self.read(views, at))
    }
}

/// One entry of [`crate::views::LIST`]: a view's name, and how to decode its questions.
pub struct Entry {
    /// The view's [`View::NAME`], which a peek carries to name it.
    pub name: &'static str,
    pub(crate) decode: Decode,
}

/// Decodes a question of one view.
pub(crate) type Decode = fn(&[u8]) -> Result<Box<dyn Question>, String>;

impl Entry {
    /// The entry of view `V`.
    pub const fn of<V: View>() -> Entry {
        Entry {
            name: V::NAME,
            decode: decode_question::<V>,
        }
    }
}

fn decode_question<V: View>(bytes: &[u8]) -> Result<Box<dyn Question>, String> {
    let view: V = decode(bytes)?;
    Ok(Box::new(view))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(value).map_err(|e| e.to_string())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::deserialize(bytes).map_err(|e| e.to_string())
}
