//! Registered queries on the engine's side: what users registered, each worker's
//! dataflows for them, the process's list that the HTTP frontend reads, and the file that
//! keeps them across restarts.
//!
//! Registering and dropping are commands sequenced to every worker of every process
//! (docs/design.md §5), so every worker builds and drops the same dataflows in the same
//! order; the worker of the process that asked answers it. A query's dataflow imports the
//! shared arrangement of the window's records, history included, so it covers its whole
//! window from the start; its results are readable from the time it was registered at.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flowsight_operators::Millis;
use flowsight_queries::plan::{Plan, PlanError, PlanErrorCode, ValidPlan};
use flowsight_queries::registered::family::Slot;
use flowsight_queries::registered::plane::{Catalog, PlaneTraces, QueryReader};
use flowsight_queries::registered::QueryPart;
use flowsight_queries::{sql, Windows};
use serde::{Deserialize, Serialize};

/// What a user registers: a name and a plan, with the SQL it came from, if any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryDefinition {
    /// Unique among the registered queries: 1–64 ASCII letters, digits, `_` or `-` (it is
    /// part of URL paths).
    pub name: String,
    /// The SQL as written; absent for a query registered as a JSON plan.
    #[serde(default)]
    pub sql: Option<String>,
    /// What the query computes; validated against the windows when it is registered.
    pub plan: Plan,
}

impl QueryDefinition {
    /// The SQL to show: as written, or rendered from the plan.
    pub fn sql_text(&self) -> String {
        self.sql.clone().unwrap_or_else(|| sql::to_sql(&self.plan))
    }
}

/// The longest query name, in bytes; [`check_name`] also allows only letters, digits,
/// `_` and `-`, so that a name fits a URL path as it is.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a query name: 1–64 ASCII letters, digits, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), QueryError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if fine {
        Ok(())
    } else {
        Err(QueryError::BadName(name.to_string()))
    }
}

/// Whether a query is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum QueryState {
    /// Its dataflow runs on every worker and its results are readable.
    Running,
    /// Stopped by the engine (it kept more groups than allowed); its dataflow is gone.
    Failed {
        /// Why it was stopped, for users.
        reason: String,
    },
}

/// A registered query as the process knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryInfo {
    /// What the user registered.
    pub definition: QueryDefinition,
    /// The definition's plan as validated: what merging the workers' parts needs.
    pub plan: ValidPlan,
    /// Results exist as of this time and later.
    pub registered_at: Millis,
    /// Tells apart two queries registered under one name one after the other.
    pub generation: u64,
    /// Whether it runs, or why it stopped.
    pub state: QueryState,
}

/// Why a query operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QueryError {
    /// The SQL or plan is not a valid query.
    #[error("{message}")]
    Invalid {
        /// Which mistake it holds, as the API's error code.
        code: PlanErrorCode,
        /// What is wrong, for users.
        message: String,
    },
    /// The name is not 1–64 letters, digits, `_` or `-`; holds the name given.
    #[error("query names are 1 to {MAX_NAME_LEN} letters, digits, '_' or '-'; got {0:?}")]
    BadName(String),
    /// A query of that name is registered already; holds the name.
    #[error("a query named {0:?} is already registered; drop it first or choose another name")]
    Duplicate(String),
    /// As many queries as `--max-queries` allows are registered (failed ones
    /// included); holds how many.
    #[error("{0} queries are registered, the most allowed (--max-queries); drop one first")]
    TooMany(usize),
    /// No query of that name is registered (or not the generation asked for);
    /// holds the name.
    #[error("no query named {0:?} is registered")]
    Unknown(String),
    /// The engine stopped the query (it kept more groups than allowed).
    #[error("query {name:?} has stopped: {reason}")]
    Failed {
        /// The query.
        name: String,
        /// Why it was stopped.
        reason: String,
    },
    /// Registered queries are off (`--no-queries`).
    #[error("registered queries are off (the engine runs with --no-queries)")]
    Disabled,
    /// The engine is shutting down or has failed: the command was not sent, or got no
    /// answer.
    #[error("the engine is shutting down or has failed")]
    Stopped,
    /// The workers did not apply the command in time. It stays in the command order and
    /// takes effect when they reach it: the caller cannot tell the outcome yet.
    #[error("the workers are busy and did not apply the command within {0} s; it stays queued and takes effect in order: check the query list")]
    Pending(u64),
}

impl From<PlanError> for QueryError {
    fn from(error: PlanError) -> Self {
        QueryError::Invalid {
            code: error.code,
            message: error.message,
        }
    }
}

impl QueryDefinition {
    /// Validates the plan against the configured windows.
    pub fn validate(&self, windows: &Windows) -> Result<ValidPlan, QueryError> {
        check_name(&self.name)?;
        Ok(self.plan.clone().validate(windows)?)
    }
}

/// One worker's part of a query's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum QueryPartAnswer {
    /// This worker's part of the result.
    Rows(QueryPart),
    /// This worker does not have the query (of that generation): dropped meanwhile.
    Unknown,
    /// The engine stopped the query; holds why.
    Failed(String),
}

/// One worker's registered queries: the plane that runs them (when queries are on) and
/// each query's place in it.
#[derive(Default)]
pub(crate) struct WorkerQueries {
    pub entries: BTreeMap<String, WorkerQuery>,
    pub next_generation: u64,
    /// The plane's families, the same on every worker.
    pub catalog: Catalog,
    /// The plane's arrangements per window; `None` when queries are off.
    pub plane: Option<PlaneTraces>,
    /// Each family's number of groups, cluster-wide, as last counted (on the one worker
    /// that counts them).
    pub groups: BTreeMap<Slot, u64>,
    /// Whether `groups` changed since the worker last compared them with the bound.
    pub groups_changed: bool,
}

pub(crate) struct WorkerQuery {
    pub generation: u64,
    /// Its place in the plane and how it is read, while the query runs.
    pub running: Option<QueryReader>,
    /// The plane is read at this time at the earliest: its family started then, with the
    /// records placed since the registration's as_of (records are placed on ticks, so
    /// nothing else lies between).
    pub read_from: Millis,
    pub failed: Option<String>,
    /// Whether this worker has already asked every worker to stop the query.
    pub reported: bool,
}

impl WorkerQueries {
    /// How many queries are registered (failed ones included: they keep their name).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The file under the state directory that keeps the registered queries.
const FILE: &str = "queries.json";
/// Bumped when the file's meaning changes; older files are refused with a message.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    queries: Vec<StoredQuery>,
}

/// One registered query as the state directory's `queries.json` keeps it, so that a restart
/// registers it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredQuery {
    /// What the user registered.
    pub definition: QueryDefinition,
    /// Whether it was running: a query stopped before the restart comes back stopped,
    /// without a dataflow.
    pub state: QueryState,
    /// When it was first registered; kept across restarts (0 in files written before it
    /// was kept).
    #[serde(default)]
    pub registered_at: Millis,
}

/// Why the registered-query file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoredQueriesError {
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not the expected JSON (or, when saving, the list could not be
    /// encoded).
    #[error("{} is not a registered-query file: {source}", path.display())]
    NotQueries {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The file was written in another format version.
    #[error("{} has version {found}, this build reads version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it holds.
        found: u32,
    },
    /// The file could not be written, renamed into place or synced.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file being replaced.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Reads the queries a previous run registered, in registration order.
pub fn load(state_dir: &Path) -> Result<Vec<StoredQuery>, StoredQueriesError> {
    let path = state_dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoredQueriesError::Read { path, source }),
    };
    let stored: Stored = match serde_json::from_str(&text) {
        Ok(stored) => stored,
        Err(source) => return Err(StoredQueriesError::NotQueries { path, source }),
    };
    if stored.version != VERSION {
        return Err(StoredQueriesError::Version {
            path,
            found: stored.version,
        });
    }
    Ok(stored.queries)
}

/// Writes the registered queries atomically: a temporary file, fsync, rename, fsync of the
/// directory, so that a crash leaves the old list or the new one, whole.
pub fn save(state_dir: &Path, queries: &[StoredQuery]) -> Result<(), StoredQueriesError> {
    let path = state_dir.join(FILE);
    let temporary: PathBuf = state_dir.join(format!("{FILE}.tmp"));
    let text = match serde_json::to_string_pretty(&Stored {
        version: VERSION,
        queries: queries.to_vec(),
    }) {
        Ok(text) => text,
        Err(source) => return Err(StoredQueriesError::NotQueries { path, source }),
    };
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(state_dir)?;
        let mut file = fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        fs::File::open(state_dir)?.sync_all()
    };
    write().map_err(|source| StoredQueriesError::Write { path, source })
}
