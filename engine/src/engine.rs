//! Starting the timely workers, and the [`Client`] through which the HTTP frontend asks
//! them for answers.
//!
//! A process's workers share one [`Shared`]: the queue of commands that the process's first
//! worker pushes into the sequencer, the peeks waiting for their parts, the frontier its
//! workers have seen (from which a peek picks its `as_of`), and whether they stopped or
//! failed.

use flowsight_events::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flowsight_operators::Millis;
use flowsight_queries::plan::ValidPlan;

use crate::alerts::AlertSink;
use crate::command::{Command, Part, PartAnswer, PeekRequest};
use crate::config::{ConfigError, EngineConfig};
use crate::ingest::{self, CheckpointWriter};
use crate::queries::{self, QueryDefinition, QueryError, QueryInfo, StoredQuery};
use crate::source::SourceRuntime;
use crate::status::{ClusterStatus, StatusBoard};
use crate::view::{self, Answered, Merging, PeekError, View};
use crate::views::registered::QueryResults;
use crate::worker;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source file could not be opened.
    #[error("cannot open the source: {0}")]
    Source(#[from] flowsight_connectors::SourceError),
    /// Timely reports its set-up failures (say, a peer it cannot reach) as text.
    #[error("cannot start the timely workers: {0}")]
    Timely(String),
    /// librdkafka refused the Kafka options (`--kafka-option`).
    #[error("Kafka: {0}")]
    KafkaOptions(#[from] flowsight_connectors::kafka::InvalidKafkaOptions),
    /// The brokers could not be asked about a topic (the source's or the alerts').
    #[error("Kafka: {0}")]
    Topic(#[from] flowsight_connectors::kafka::TopicError),
    /// The source topic is not on the brokers; it is never created by the engine.
    #[error("Kafka: topic {topic} does not exist on {brokers}")]
    TopicMissing {
        /// The source topic.
        topic: String,
        /// The brokers asked, as configured.
        brokers: String,
    },
    /// The alerts topic is not on the brokers; it is never created by the engine.
    #[error("Kafka: alerts topic {topic} does not exist on {brokers}")]
    AlertsTopicMissing {
        /// The alerts topic (`--alerts-topic`).
        topic: String,
        /// The brokers asked, as configured.
        brokers: String,
    },
    /// The alerts producer could not be built.
    #[error("Kafka: alerts: {0}")]
    Alerts(#[from] flowsight_connectors::kafka::ProduceError),
    /// A Kafka producer the source needs could not be created.
    #[error("Kafka: cannot create the {what} producer: {source}")]
    Producer {
        /// Which producer, for the message: `dead-letter`.
        what: &'static str,
        /// librdkafka's error.
        source: flowsight_connectors::kafka::KafkaError,
    },
    /// The checkpoint to resume from cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The registered queries a previous run kept cannot be read.
    #[error(transparent)]
    StoredQueries(#[from] crate::queries::StoredQueriesError),
}

/// Why a running engine stopped other than cleanly.
#[derive(Debug, thiserror::Error)]
pub enum EngineFailure {
    /// A worker reported a failure that made the process's answers unusable (its message
    /// says which and why: a mismatched process, a lost peer, a source error).
    #[error("{0}")]
    Failed(String),
    /// A worker thread panicked.
    #[error("a worker failed: {0}")]
    Panicked(String),
    /// The workers stopped cleanly, but the last checkpoint could not be written.
    #[error("cannot write the final checkpoint: {0}")]
    FinalCheckpoint(crate::ingest::CheckpointFailure),
}

/// Sentinel for "this worker has not seen a frontier yet".
const NO_UPPER: u64 = u64::MAX - 1;
/// Sentinel for "this worker's frontier is empty: it has seen everything".
const DONE: u64 = u64::MAX;

/// The answer to a register or drop command.
pub(crate) type ControlReply = Result<Option<QueryInfo>, QueryError>;

/// How long a client waits for a register or drop command to be applied.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// A peek of one of this process's clients, gathering every worker's part.
struct PendingPeek {
    parts: Vec<PartAnswer>,
    reply: Sender<Vec<PartAnswer>>,
}

/// State shared by the workers of one process and its clients.
pub struct Shared {
    pub(crate) config: EngineConfig,
    /// What the process's sources share: resume points, the dead-letter sink, checkpoints.
    pub(crate) runtime: Arc<SourceRuntime>,
    /// Where alerts go (`--alerts-topic`), and how many went.
    pub(crate) alerts: AlertSink,
    peers: usize,
    first_worker: usize,
    /// Commands from clients, pushed into the sequencer by the process's first worker.
    pub(crate) commands: (Sender<Command>, Receiver<Command>),
    commander: OnceLock<Thread>,
    pending: Mutex<HashMap<u64, PendingPeek>>,
    next_id: AtomicU64,
    uppers: Vec<AtomicU64>,
    shutting_down: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The registered queries, as the process's first worker last applied them.
    queries: Mutex<BTreeMap<String, QueryInfo>>,
    /// Register and drop commands of this process's clients, waiting for their answer.
    controls: Mutex<HashMap<u64, Sender<ControlReply>>>,
    /// The queries a previous run registered, rebuilt by every worker before it serves.
    pub(crate) stored_queries: Vec<StoredQuery>,
    /// Every worker's latest counters, for a status that never waits on the workers.
    pub(crate) status_board: StatusBoard,
}

impl Shared {
    #[cfg(test)]
    fn new(config: EngineConfig) -> Self {
        let alerts = AlertSink::new(&config).expect("no alerts topic in tests");
        Shared::with_runtime(config, SourceRuntime::without_checkpoints(), alerts)
    }

    fn with_runtime(config: EngineConfig, runtime: SourceRuntime, alerts: AlertSink) -> Self {
        let local = config.cluster.workers_per_process();
        let peers = config.cluster.peers();
        let first_worker = config.cluster.process() * local;
        Shared {
            config,
            runtime: Arc::new(runtime),
            alerts,
            peers,
            first_worker,
            commands: crossbeam_channel::unbounded(),
            commander: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            uppers: (0..local).map(|_| AtomicU64::new(NO_UPPER)).collect(),
            shutting_down: AtomicBool::new(false),
            failure: Mutex::new(None),
            queries: Mutex::new(BTreeMap::new()),
            controls: Mutex::new(HashMap::new()),
            stored_queries: Vec::new(),
            status_board: StatusBoard::new(peers),
        }
    }

    /// Answers a register or drop command of one of this process's clients.
    pub(crate) fn reply_control(&self, id: u64, reply: ControlReply) {
        if let Some(sender) = lock(&self.controls).remove(&id) {
            let _ = sender.send(reply);
        }
    }

    /// Records a query's new state in the process's list (and its file, if any).
    pub(crate) fn set_query(&self, info: QueryInfo) {
        lock(&self.queries).insert(info.definition.name.clone(), info);
        self.persist_queries();
    }

    pub(crate) fn query_info(&self, name: &str) -> Option<QueryInfo> {
        lock(&self.queries).get(name).cloned()
    }

    pub(crate) fn remove_query(&self, name: &str) {
        lock(&self.queries).remove(name);
        self.persist_queries();
    }

    fn persist_queries(&self) {
        let Some(dir) = &self.config.state_dir else {
            return;
        };
        let mut stored: Vec<(u64, StoredQuery)> = lock(&self.queries)
            .values()
            .map(|q| {
                (
                    q.generation,
                    StoredQuery {
                        definition: q.definition.clone(),
                        state: q.state.clone(),
                        registered_at: q.registered_at,
                    },
                )
            })
            .collect();
        // Registration order, so that a restart builds the dataflows in the same order.
        stored.sort_by_key(|(generation, _)| *generation);
        let stored: Vec<StoredQuery> = stored.into_iter().map(|(_, q)| q).collect();
        if let Err(error) = queries::save(dir, &stored) {
            tracing::error!("registered queries: {error}");
        }
    }

    /// The plan of a query's generation, for merging its parts.
    pub(crate) fn query_plan(&self, name: &str, generation: u64) -> Option<ValidPlan> {
        lock(&self.queries)
            .get(name)
            .filter(|q| q.generation == generation)
            .map(|q| q.plan.clone())
    }

    pub(crate) fn register_commander(&self) {
        let _ = self.commander.set(std::thread::current());
    }

    /// Hands a command to the process's first worker and wakes it.
    pub(crate) fn send(&self, command: Command) {
        let _ = self.commands.0.send(command);
        if let Some(thread) = self.commander.get() {
            thread.unpark();
        }
    }

    /// Records the frontier a local worker's view has reached.
    pub(crate) fn publish_upper(&self, local_index: usize, upper: Option<Millis>) {
        if let Some(slot) = self.uppers.get(local_index) {
            slot.store(upper.unwrap_or(DONE), Ordering::Release);
        }
    }

    /// The latest as_of complete on every local worker, if any is.
    pub fn latest_complete(&self) -> Option<Millis> {
        let uppers: Vec<u64> = self
            .uppers
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .collect();
        // A worker that has not published a frontier yet may be behind all the others.
        if uppers.contains(&NO_UPPER) {
            return None;
        }
        match uppers.into_iter().min()? {
            // Everything seen (only at shutdown): nothing to read at.
            DONE => None,
            upper => upper
                .checked_sub(1)
                .map(|last| self.config.time.floor(last)),
        }
    }

    /// A worker has left its loop: no more answers will come. Waiting clients are woken
    /// (their reply channels close) rather than left to time out.
    pub(crate) fn stopped(&self) {
        self.shutting_down.store(true, Ordering::Release);
        lock(&self.pending).clear();
    }

    /// Something went wrong that makes this process's answers unusable.
    pub(crate) fn fail(&self, message: String) {
        tracing::error!("{message}");
        lock(&self.failure).get_or_insert(message);
        self.stopped();
    }

    fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Called on the origin worker with each part; answers the client once all are in.
    pub(crate) fn deliver(&self, part: PartAnswer) {
        let mut pending = lock(&self.pending);
        let id = part.id;
        let complete = match pending.get_mut(&id) {
            Some(peek) => {
                peek.parts.push(part);
                peek.parts.len() == self.peers
            }
            // The client gave up waiting; its late parts are dropped.
            None => false,
        };
        if !complete {
            return;
        }
        if let Some(peek) = pending.remove(&id) {
            drop(pending);
            // The client merges: it knows the view's types.
            let _ = peek.reply.send(peek.parts);
        }
    }
}

/// A running engine: this process's timely workers.
pub struct Engine {
    shared: Arc<Shared>,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
    checkpoints: Option<CheckpointWriter>,
}

impl Engine {
    /// Validates `config`, checks the source and starts this process's workers. In a
    /// cluster, this waits until every process of the host file is reachable.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        config.validate()?;
        let runtime = ingest::prepare(&config)?;
        let alerts = AlertSink::new(&config)?;
        let timely_config = config.cluster.timely_config();
        let stored_queries = match (&config.state_dir, config.queries.enabled) {
            (Some(dir), true) => queries::load(dir)?,
            _ => Vec::new(),
        };
        let mut shared = Shared::with_runtime(config, runtime, alerts);
        shared.stored_queries = stored_queries;
        let shared = Arc::new(shared);
        let checkpoints = CheckpointWriter::start(&shared.config, Arc::clone(&shared.runtime));
        let for_workers = Arc::clone(&shared);
        let (allocators, others) = timely_config
            .communication
            .try_build()
            .map_err(EngineError::Timely)?;
        let guards =
            timely::execute::execute_from(allocators, others, timely_config.worker, move |w| {
                worker::run(w, Arc::clone(&for_workers));
            })
            .map_err(EngineError::Timely)?;
        Ok(Engine {
            shared,
            guards: Some(guards),
            checkpoints,
        })
    }

    /// A client of this process's workers, for the HTTP frontend.
    pub fn client(&self) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops every worker of the cluster and waits for this process's workers. An error
    /// says why the engine failed, if it did.
    pub fn shutdown(mut self) -> Result<(), EngineFailure> {
        self.shared.send(Command::Shutdown);
        self.wait()
    }

    /// Waits until the workers stop (after a shutdown sent by any client of the cluster).
    pub fn join(mut self) -> Result<(), EngineFailure> {
        self.wait()
    }

    fn wait(&mut self) -> Result<(), EngineFailure> {
        let Some(guards) = self.guards.take() else {
            return Ok(());
        };
        let panicked = guards.join().into_iter().filter_map(Result::err).next();
        // The workers have handed on their last snapshots: the final checkpoint.
        let checkpointed = match self.checkpoints.take() {
            Some(writer) => writer.finish(),
            None => Ok(()),
        };
        if let Err(error) = self.shared.alerts.flush() {
            tracing::error!("alerts: {error}");
        }
        match (self.shared.failure(), panicked, checkpointed) {
            (Some(failure), _, _) => Err(EngineFailure::Failed(failure)),
            (None, Some(panic), _) => Err(EngineFailure::Panicked(panic)),
            (None, None, Err(error)) => Err(EngineFailure::FinalCheckpoint(error)),
            (None, None, Ok(())) => Ok(()),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.guards.is_some() {
            self.shared.send(Command::Shutdown);
            let _ = self.wait();
        }
    }
}

/// Asks the engine for answers; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The latest as_of complete on this process's workers.
    pub fn latest_complete(&self) -> Option<Millis> {
        self.shared.latest_complete()
    }

    /// After a restart from a checkpoint: the as_of from which the views are exact again
    /// (records counted before the restart are replayed until then).
    pub fn ready_from(&self) -> Option<Millis> {
        self.shared.runtime.ready_from
    }

    /// The cluster's status: read by a peek when the workers answer within the configured
    /// `status_patience` (every worker's counters at one as_of), else at once from every
    /// worker's latest published counters, with their age (`age_ms`). Until every worker
    /// has published (the first moments after start), the peek waits at most `timeout`.
    pub fn status(&self, timeout: Duration) -> Result<Answered<ClusterStatus>, PeekError> {
        let patience = self.shared.config.status_patience.min(timeout);
        match self.peek(crate::views::counters::Status, patience) {
            Err(PeekError::Timeout(_)) => {}
            answered => return answered,
        }
        let processes = self.shared.config.cluster.processes();
        let tick = self.shared.config.time.tick();
        if let Some(status) =
            self.shared
                .status_board
                .merged(processes, tick, flowsight_events::now_ms())
        {
            return Ok(Answered {
                as_of: status.as_of,
                answer: status,
            });
        }
        self.peek(
            crate::views::counters::Status,
            timeout.saturating_sub(patience),
        )
    }

    /// Reads a view at the latest complete as_of, waiting at most `timeout`.
    pub fn peek<V: View>(
        &self,
        view: V,
        timeout: Duration,
    ) -> Result<Answered<V::Rows>, PeekError> {
        self.peek_at(view, None, timeout)
    }

    /// Reads a view at `as_of` (rounded down to the tick; or the latest complete one), or
    /// later if the views have already been compacted past it. Blocks until the answer is
    /// complete or `timeout` passes.
    pub fn peek_at<V: View>(
        &self,
        view: V,
        as_of: Option<Millis>,
        timeout: Duration,
    ) -> Result<Answered<V::Rows>, PeekError> {
        let unreadable = |reason: String| PeekError::Unreadable {
            view: V::NAME.to_string(),
            reason,
        };
        let question = view::encode(&view).map_err(unreadable)?;
        let parts = self.gather(V::NAME, question, as_of, timeout)?;
        let as_of = parts.first().map_or(0, |p| p.as_of);
        let mut read = Vec::with_capacity(parts.len());
        let mut ready_from = None;
        for part in parts {
            match part.part {
                Part::Read(bytes) => {
                    read.push(view::decode::<V::Part>(&bytes).map_err(unreadable)?)
                }
                Part::CatchingUp { ready_from: from } => {
                    ready_from = ready_from.max(Some(from));
                }
                Part::Unreadable(reason) => return Err(unreadable(reason)),
            }
        }
        if let Some(ready_from) = ready_from {
            return Err(PeekError::CatchingUp { as_of, ready_from });
        }
        let merging = Merging {
            as_of,
            processes: self.shared.config.cluster.processes(),
            shared: &self.shared,
        };
        Ok(Answered {
            as_of,
            answer: view.merge(read, &merging),
        })
    }

    /// Sends a question of view `name` to every worker and waits for all their parts.
    fn gather(
        &self,
        name: &str,
        question: Vec<u8>,
        as_of: Option<Millis>,
        timeout: Duration,
    ) -> Result<Vec<PartAnswer>, PeekError> {
        self.check_running()?;
        let as_of = as_of
            .or_else(|| self.shared.latest_complete())
            .map_or(0, |t| self.shared.config.time.floor(t));
        let local = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        // Unique across the cluster: the asking worker's index in the high bits.
        let id = ((self.shared.first_worker as u64) << 40) | (local & ((1 << 40) - 1));
        let (reply, answer) = crossbeam_channel::bounded(1);
        lock(&self.shared.pending).insert(
            id,
            PendingPeek {
                parts: Vec::new(),
                reply,
            },
        );
        // The workers may have stopped while we registered: don't wait for nobody.
        if let Err(e) = self.check_running() {
            lock(&self.shared.pending).remove(&id);
            return Err(e);
        }
        self.shared.send(Command::Peek(PeekRequest {
            id,
            origin: self.shared.first_worker,
            as_of,
            view: name.to_string(),
            question,
        }));
        match answer.recv_timeout(timeout) {
            Ok(parts) => Ok(parts),
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.shared.pending).remove(&id);
                self.check_running()?;
                Err(PeekError::Timeout(timeout))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.check_running()?;
                Err(PeekError::ShuttingDown)
            }
        }
    }

    fn check_running(&self) -> Result<(), PeekError> {
        if let Some(failure) = self.shared.failure() {
            return Err(PeekError::Failed(failure));
        }
        if self.is_shutting_down() {
            return Err(PeekError::ShuttingDown);
        }
        Ok(())
    }

    /// Registers a query on every worker of the cluster; its results are readable once the
    /// views pass the time it was registered at.
    pub fn register_query(&self, definition: QueryDefinition) -> Result<QueryInfo, QueryError> {
        if !self.shared.config.queries.enabled {
            return Err(QueryError::Disabled);
        }
        definition.validate(&self.shared.config.windows)?;
        let text = serde_json::to_string(&definition).map_err(|e| QueryError::Invalid {
            code: flowsight_queries::plan::PlanErrorCode::BadPlan,
            message: e.to_string(),
        })?;
        let reply = self.control(|id, origin| Command::RegisterQuery {
            id,
            origin,
            definition: text,
        })?;
        reply.ok_or(QueryError::Unknown(definition.name))
    }

    /// Drops a query on every worker, freeing its dataflow.
    pub fn drop_query(&self, name: &str) -> Result<(), QueryError> {
        if !self.shared.config.queries.enabled {
            return Err(QueryError::Disabled);
        }
        let name = name.to_string();
        self.control(|id, origin| Command::DropQuery { id, origin, name })
            .map(|_| ())
    }

    fn control(&self, command: impl FnOnce(u64, usize) -> Command) -> ControlReply {
        if self.check_running().is_err() {
            return Err(QueryError::Stopped);
        }
        let local = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id = ((self.shared.first_worker as u64) << 40) | (local & ((1 << 40) - 1));
        let (reply, answer) = crossbeam_channel::bounded(1);
        lock(&self.shared.controls).insert(id, reply);
        self.shared.send(command(id, self.shared.first_worker));
        match answer.recv_timeout(CONTROL_TIMEOUT) {
            Ok(reply) => reply,
            Err(_) => {
                lock(&self.shared.controls).remove(&id);
                if self.check_running().is_err() {
                    Err(QueryError::Stopped)
                } else {
                    Err(QueryError::Pending(CONTROL_TIMEOUT.as_secs()))
                }
            }
        }
    }

    /// The registered queries, by name.
    pub fn queries(&self) -> Vec<QueryInfo> {
        lock(&self.shared.queries).values().cloned().collect()
    }

    /// The registered query called `name`, as this process last applied it.
    pub fn query(&self, name: &str) -> Option<QueryInfo> {
        lock(&self.shared.queries).get(name).cloned()
    }

    /// Reads a query's results at the latest complete as_of: the query as registered, and
    /// the answer. A query that is not registered is an inner error.
    #[allow(clippy::type_complexity)]
    pub fn query_results(
        &self,
        name: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Result<(QueryInfo, Answered<<QueryResults as View>::Rows>), QueryError>, PeekError>
    {
        let Some(info) = self.query(name) else {
            return Ok(Err(QueryError::Unknown(name.to_string())));
        };
        let answered = self.peek(
            QueryResults {
                name: name.to_string(),
                generation: info.generation,
                limit,
            },
            timeout,
        )?;
        Ok(Ok((info, answered)))
    }

    /// Alerts raised by this process's workers, and where they went.
    pub fn alerts(&self) -> crate::alerts::AlertCounts {
        self.shared.alerts.counts()
    }

    /// Asks every worker of the cluster to stop.
    pub fn shutdown(&self) {
        self.shared.send(Command::Shutdown);
    }

    /// Whether a worker of this process has left its loop (after a shutdown or a failure):
    /// no more answers will come.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Acquire)
    }

    /// Why the engine failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `merge` with the merging context of a one-process engine at `as_of`.
    pub(crate) fn merging<R>(as_of: Millis, merge: impl FnOnce(&Merging<'_>) -> R) -> R {
        let shared = Shared::new(config());
        merge(&Merging {
            as_of,
            processes: 1,
            shared: &shared,
        })
    }

    fn config() -> EngineConfig {
        let time = flowsight_operators::TimeModel::new(1000).unwrap();
        EngineConfig {
            time,
            lateness: 0,
            idle_timeout: Duration::from_secs(1),
            max_ahead: crate::config::DEFAULT_MAX_AHEAD,
            status_patience: crate::config::DEFAULT_STATUS_PATIENCE,
            windows: flowsight_queries::Windows::parse("30m", &time).unwrap(),
            source: crate::SourceConfig::Generator(Default::default()),
            cluster: crate::ClusterConfig::Single { workers: 2 },
            state_dir: None,
            risk_views: true,
            analysis: Default::default(),
            alerts: None,
            segment_views: true,
            segments: Default::default(),
            queries: Default::default(),
        }
    }

    #[test]
    fn latest_complete_is_the_last_tick_before_the_least_frontier() {
        let shared = Shared::new(config());
        assert_eq!(
            shared.latest_complete(),
            None,
            "no worker has a frontier yet"
        );
        shared.publish_upper(0, Some(5_000));
        assert_eq!(shared.latest_complete(), None, "worker 1 has none yet");
        shared.publish_upper(1, Some(0));
        assert_eq!(
            shared.latest_complete(),
            None,
            "nothing is complete below frontier 0"
        );
        shared.publish_upper(1, Some(1_000));
        assert_eq!(shared.latest_complete(), Some(0));
        shared.publish_upper(1, Some(9_000));
        assert_eq!(shared.latest_complete(), Some(4_000));
    }
}
