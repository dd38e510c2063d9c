//! One worker: its dataflows, built in the same order on every worker, and its loop, which
//! applies the sequenced commands.
//!
//! The process's first worker is the *commander*: it takes the commands of local clients
//! and pushes them into the sequencer. The cluster's worker 0 also issues `Advance`
//! commands as the views' frontier moves, which is what lets arrangements compact.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowsight_operators::{Millis, WatermarkReport};
use flowsight_queries::registered::plane::{self, PlaneChange, QueryReader};
use flowsight_queries::{graph, risk, segments};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Input, Operator};
use timely::dataflow::InputHandle;
use timely::synchronization::Sequencer;
use timely::worker::Worker;

use crate::state_size::{rendering, StateSizes};

use crate::alerts;
use crate::command::{Command, PeekRequest};
use crate::config::EngineConfig;
use crate::engine::Shared;
use crate::ingest;
use crate::peek;
use crate::queries::{
    QueryDefinition, QueryError, QueryInfo, QueryState, WorkerQueries, WorkerQuery,
};
use crate::source::{event_source, SourceTiming, WatermarkBoard, WorkerLinks};
use crate::status::{PublishedStatus, WorkerStats, PUBLISH_EVERY};

/// How often worker 0 lets the arrangements compact up to the latest complete time.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);
/// How long a process waits for the cluster's start-up check before it says so in its log.
const HELLO_PATIENCE: Duration = Duration::from_secs(30);
/// How long a process that found another's configuration different goes on, so that its
/// own start-up check reaches every process before it stops.
const MISMATCH_GRACE: Duration = Duration::from_secs(5);
/// The longest a worker parks when nothing wakes it.
const PARK: Duration = Duration::from_millis(50);

/// Marks the process as stopping when a worker leaves its loop — or fails: a panicking
/// worker must not leave the HTTP frontend answering as if all were well.
struct ExitGuard {
    shared: Arc<Shared>,
    worker: usize,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.fail(format!("worker {} failed", self.worker));
        }
        self.shared.stopped();
    }
}

/// Runs one worker until a `Shutdown` command: builds its dataflows, rebuilds the queries
/// a previous run registered, serves the sequenced commands, and lets the source take its
/// final checkpoint.
pub(crate) fn run(worker: &mut Worker, shared: Arc<Shared>) {
    let _guard = ExitGuard {
        shared: Arc::clone(&shared),
        worker: worker.index(),
    };
    let dataflows = build_dataflows(worker, &shared);
    let mut serving = Serving::new(worker, shared, dataflows);
    if let Err(error) = serving.restore_queries() {
        serving
            .shared
            .fail(format!("cannot rebuild a registered query: {error}"));
        return;
    }
    serving.serve_loop(worker);
    serving.finish(worker);
}

/// What one worker built, in the same order on every worker (timely requires it), and the
/// handles its loop drives them with.
struct Dataflows {
    /// Orders every command the same way on every worker of the cluster.
    sequencer: Sequencer<Command>,
    /// This worker's watermark reports, broadcast to every worker.
    reports: InputHandle<u64, CapacityContainerBuilder<Vec<(usize, WatermarkReport)>>>,
    /// Peek requests, at the time every worker reads at.
    requests: InputHandle<Millis, CapacityContainerBuilder<Vec<PeekRequest>>>,
    /// The changes of the query plane's families, at the time they take effect (none when
    /// queries are off). Moved on with the peek requests, one past the views' as_of.
    changes: Option<InputHandle<Millis, CapacityContainerBuilder<Vec<PlaneChange>>>>,
    /// This worker's registered queries; also read by the peek operator.
    registry: Rc<RefCell<WorkerQueries>>,
    board: Rc<RefCell<WatermarkBoard>>,
    /// This worker's counters and its views' state, published on the status boards.
    stats: Rc<RefCell<WorkerStats>>,
    sizes: crate::state_size::SharedSizes,
    /// This worker's published counters, broadcast to the other processes' boards (none in
    /// a one-process cluster: its board is written directly).
    statuses: Option<InputHandle<u64, CapacityContainerBuilder<Vec<PublishedStatus>>>>,
    /// When this worker last published its counters.
    last_published: Option<Instant>,
    /// Set to ask the source to take its final snapshot; it sets `stopped` once it has.
    stop: Rc<Cell<bool>>,
    stopped: Rc<Cell<bool>>,
}

/// Builds the sequencer, the watermark exchange and the views' dataflow (source, graph,
/// risk, segments, query plane, peeks), in that order.
fn build_dataflows(worker: &mut Worker, shared: &Arc<Shared>) -> Dataflows {
    let index = worker.index();
    let peers = worker.peers();
    let config = shared.config.clone();
    let local_index = index - config.cluster.process() * config.cluster.workers_per_process();
    let stats = Rc::new(RefCell::new(WorkerStats::new(index)));
    let board = Rc::new(RefCell::new(WatermarkBoard::new(peers)));
    let stop = Rc::new(Cell::new(false));
    let stopped = Rc::new(Cell::new(false));
    let timing = SourceTiming {
        time: config.time,
        lateness: config.lateness,
        idle_timeout: config.idle_timeout,
        retention: config.windows.retention(),
        max_ahead: config.max_ahead,
    };

    // The sequencer orders commands by its workers' elapsed time; timely starts the worker
    // timer once every process has connected, so processes started at different moments
    // still agree.
    let timer = worker.timer().unwrap_or_else(Instant::now);
    let sequencer: Sequencer<Command> = Sequencer::new(worker, timer);

    let reports = worker.dataflow_named::<u64, _, _>("Watermarks", |scope| {
        let (input, reports) = scope.new_input::<Vec<(usize, WatermarkReport)>>();
        let board = Rc::clone(&board);
        reports
            .broadcast()
            .sink(Pipeline, "WatermarkBoard", move |(input, _)| {
                input.for_each(|_, data| {
                    let mut board = board.borrow_mut();
                    for (worker, report) in data.drain(..) {
                        if let Some(slot) = board.reports.get_mut(worker) {
                            *slot = Some(report);
                        }
                    }
                });
            });
        input
    });

    // Every worker's counters reach every process's status board (one process needs no
    // exchange: its workers write its board directly).
    let statuses = (config.cluster.processes() > 1).then(|| {
        worker.dataflow_named::<u64, _, _>("Statuses", |scope| {
            let (input, statuses) = scope.new_input::<Vec<PublishedStatus>>();
            let shared = Arc::clone(shared);
            statuses
                .broadcast()
                .sink(Pipeline, "StatusBoard", move |(input, _)| {
                    input.for_each(|_, data| {
                        for published in data.drain(..) {
                            shared.status_board.publish(published);
                        }
                    });
                });
            input
        })
    });

    let partitions = ingest::partition_source(&config, &shared.runtime, index, peers);
    let sizes = StateSizes::install(worker);
    let registry: Rc<RefCell<WorkerQueries>> = Rc::new(RefCell::new(WorkerQueries::default()));
    let (requests, changes) = worker.dataflow_named::<Millis, _, _>("Graph", |scope| {
        let next_id = || scope.worker().peek_identifier();
        let events = event_source(
            scope,
            partitions,
            Arc::clone(&shared.runtime),
            timing,
            WorkerLinks {
                stats: Rc::clone(&stats),
                board: Rc::clone(&board),
                stop: Rc::clone(&stop),
                stopped: Rc::clone(&stopped),
            },
        );
        let graph = rendering(&sizes, next_id, "graph", || {
            graph::render(events.clone(), config.windows.schedule().clone())
        });
        // The heaviest edges and busiest hosts, counted apart from the graph in `/metrics`.
        let rankings = rendering(&sizes, next_id, "graph_rankings", || {
            graph::ranking::render(&graph, graph::ranking::SCAN_VALUES_PER_ACTIVATION)
        });
        let mut progress = graph
            .arranged
            .stream
            .clone()
            .map(|_| ())
            .concat(rankings.progress);
        let mut risk_traces = None;
        if config.risk_views {
            let risks = rendering(&sizes, next_id, "risk", || {
                risk::render(&graph, &config.windows, &config.analysis)
            });
            alerts::deliver(risks.alerts, Arc::clone(shared));
            progress = progress.concat(risks.progress);
            risk_traces = Some(risks.traces);
        }
        let mut segment_traces = None;
        if config.segment_views {
            let rendered = rendering(&sizes, next_id, "segments", || {
                segments::render(&graph.arranged, config.segments)
            });
            progress = progress.concat(rendered.progress);
            segment_traces = Some(rendered.traces);
        }
        // The query plane follows the views (it is not part of `progress`, which decides
        // the as_of its changes move on with), and the source waits for it too.
        let mut changes = None;
        if config.queries.enabled {
            let (mut input, stream) = scope.new_input::<Vec<PlaneChange>>();
            // No record is placed before the first tick (the least frontier of a source):
            // starting there lets the source read before the first as_of, whatever
            // `--max-ahead` (at least a tick) is, as it can when waiting for the views.
            input.advance_to(config.time.tick());
            changes = Some(input);
            let schedules = config
                .windows
                .iter()
                .map(|w| (w.length, config.windows.schedule_of(w.length)))
                .collect();
            let rendered = rendering(&sizes, next_id, "registered_queries", || {
                plane::render_plane(events, stream, schedules)
            });
            registry.borrow_mut().plane = Some(rendered.traces);
            let plane_stats = Rc::clone(&stats);
            rendered
                .progress
                .sink(Pipeline, "QueryPlaneFrontier", move |(input, frontier)| {
                    input.for_each(|_, _| {});
                    plane_stats.borrow_mut().queries_frontier =
                        Some(frontier.frontier().first().copied().unwrap_or(Millis::MAX));
                });
            let counted = Rc::clone(&registry);
            rendered
                .groups
                .sink(Pipeline, "QueryGroupCount", move |(input, _)| {
                    input.for_each(|_, data| {
                        let mut queries = counted.borrow_mut();
                        for (slot, groups) in data.drain(..) {
                            queries.groups.insert(slot, groups);
                        }
                        queries.groups_changed = true;
                    });
                });
        }
        let views = peek::Views {
            graph: graph.arranged.trace,
            rankings: rankings.traces,
            risk: risk_traces,
            segments: segment_traces,
            queries: Rc::clone(&registry),
            sizes: Rc::clone(&sizes),
        };
        let (input, requests) = scope.new_input::<Vec<PeekRequest>>();
        let parts = peek::serve_peeks(
            progress,
            views,
            requests,
            Rc::clone(&stats),
            Arc::clone(shared),
            local_index,
        );
        peek::gather(parts, Arc::clone(shared));
        (input, changes)
    });
    Dataflows {
        sequencer,
        reports,
        requests,
        changes,
        registry,
        board,
        stats,
        sizes,
        statuses,
        last_published: None,
        stop,
        stopped,
    }
}

/// The worker's loop and what it keeps between steps.
struct Serving {
    index: usize,
    /// The process's first worker: it takes the local clients' commands.
    is_commander: bool,
    config: EngineConfig,
    shared: Arc<Shared>,
    dataflows: Dataflows,
    last_advance: Instant,
    advanced_to: Millis,
    /// Until the start-up check has come back, a process missing from the cluster (or
    /// one whose host file lists another number of processes, which timely waits for
    /// forever) leaves this one silent: it says so in its log.
    started: Instant,
    hello_seen: bool,
    hello_warned: bool,
    /// The processes whose start-up check has come back, and since when this one knows
    /// that a process differs. It goes on stepping a little after that, so that its own
    /// check reaches the others too: stopping at once could leave a peer waiting forever.
    hellos: std::collections::BTreeSet<usize>,
    mismatched: Option<Instant>,
}

/// Whether the loop goes on after a command.
enum Next {
    Continue,
    Stop,
}

impl Serving {
    fn new(worker: &Worker, shared: Arc<Shared>, dataflows: Dataflows) -> Serving {
        let index = worker.index();
        let config = shared.config.clone();
        let local_index = index - config.cluster.process() * config.cluster.workers_per_process();
        let is_commander = local_index == 0;
        if is_commander {
            shared.register_commander();
        }
        Serving {
            index,
            is_commander,
            config,
            shared,
            dataflows,
            last_advance: Instant::now(),
            advanced_to: 0,
            started: Instant::now(),
            hello_seen: false,
            hello_warned: false,
            hellos: std::collections::BTreeSet::new(),
            mismatched: None,
        }
    }

    /// Rebuilds the queries a previous run registered, in their order, before serving;
    /// each keeps the time it was first registered at.
    fn restore_queries(&mut self) -> Result<(), QueryError> {
        for stored in self.shared.stored_queries.clone() {
            let failed = match stored.state {
                QueryState::Failed { reason } => Some(reason),
                QueryState::Running => None,
            };
            let info = register(
                &self.dataflows.registry,
                self.dataflows.changes.as_mut(),
                &self.config,
                stored.definition,
                Registered::Before(stored.registered_at),
                failed,
            )?;
            if self.is_commander {
                self.shared.set_query(info);
            }
        }
        if self.is_commander {
            self.dataflows.sequencer.push(Command::Hello {
                process: self.config.cluster.process(),
                fingerprint: self.config.fingerprint(),
            });
        }
        Ok(())
    }

    /// Applies the sequenced commands and steps the dataflows until a `Shutdown` (or a
    /// start-up check that found another configuration).
    fn serve_loop(&mut self, worker: &mut Worker) {
        loop {
            if let Some(since) = self.mismatched {
                if self.hellos.len() >= self.config.cluster.processes()
                    || since.elapsed() >= MISMATCH_GRACE
                {
                    return;
                }
            }
            self.warn_if_start_up_is_slow();
            if self.is_commander {
                while let Ok(command) = self.shared.commands.1.try_recv() {
                    self.dataflows.sequencer.push(command);
                }
            }
            self.advance_compaction();
            self.send_watermark_report();
            self.publish_status();
            while let Some(command) = self.dataflows.sequencer.next() {
                if let Next::Stop = self.apply(command) {
                    return;
                }
            }
            self.stop_queries_over_their_bound();
            self.dataflows.requests.flush();
            if let Some(changes) = self.dataflows.changes.as_mut() {
                changes.flush();
            }
            self.dataflows.reports.flush();
            worker.step_or_park(Some(PARK));
        }
    }

    fn warn_if_start_up_is_slow(&mut self) {
        if !self.hello_seen
            && !self.hello_warned
            && self.index == 0
            && self.started.elapsed() >= HELLO_PATIENCE
        {
            self.hello_warned = true;
            tracing::warn!(
                "the cluster's start-up check has not come back after {} s: is every process of \
                 the host file running, with the same host file (this one lists {} processes)?",
                HELLO_PATIENCE.as_secs(),
                self.config.cluster.processes()
            );
        }
    }

    /// Worker 0 lets the arrangements compact up to the latest complete time, every
    /// `ADVANCE_EVERY`.
    fn advance_compaction(&mut self) {
        if self.index != 0 || self.last_advance.elapsed() < ADVANCE_EVERY {
            return;
        }
        self.last_advance = Instant::now();
        if let Some(as_of) = self.shared.latest_complete() {
            if as_of > self.advanced_to {
                self.advanced_to = as_of;
                self.dataflows.sequencer.push(Command::Advance { as_of });
            }
        }
    }

    /// Every `PUBLISH_EVERY`, between steps: this worker's counters on its process's
    /// status board and, in a cluster of several processes, on the others'.
    fn publish_status(&mut self) {
        let dataflows = &mut self.dataflows;
        if dataflows
            .last_published
            .is_some_and(|at| at.elapsed() < PUBLISH_EVERY)
        {
            return;
        }
        dataflows.last_published = Some(Instant::now());
        let local_index =
            self.index - self.config.cluster.process() * self.config.cluster.workers_per_process();
        let published = PublishedStatus {
            at_ms: flowsight_events::now_ms(),
            status: crate::views::counters::worker_status(
                &dataflows.stats,
                &dataflows.sizes,
                &self.shared,
                local_index,
            ),
        };
        if let Some(statuses) = dataflows.statuses.as_mut() {
            statuses.send(published.clone());
            let next = *statuses.time() + 1;
            statuses.advance_to(next);
            statuses.flush();
        }
        self.shared.status_board.publish(published);
    }

    fn send_watermark_report(&mut self) {
        let report = self.dataflows.board.borrow_mut().outbox.take();
        if let Some(report) = report {
            let reports = &mut self.dataflows.reports;
            reports.send((self.index, report));
            let next = *reports.time() + 1;
            reports.advance_to(next);
        }
    }

    fn apply(&mut self, command: Command) -> Next {
        match command {
            Command::Peek(request) => self.dataflows.requests.send(request),
            Command::Advance { as_of } => {
                if as_of > *self.dataflows.requests.time() {
                    self.dataflows.requests.advance_to(as_of);
                }
                // The plane may apply the records up to the as_of (the views hold them all),
                // and forget those before it: a query registered from now on counts from
                // the as_of at the earliest.
                if let Some(changes) = self.dataflows.changes.as_mut() {
                    let next = as_of.saturating_add(1);
                    if next > *changes.time() {
                        changes.advance_to(next);
                    }
                    changes.send(PlaneChange::Forget(as_of));
                }
            }
            Command::Hello {
                process,
                fingerprint,
            } => self.check_hello(process, fingerprint),
            Command::RegisterQuery {
                id,
                origin,
                definition,
            } => {
                let result = serde_json::from_str::<QueryDefinition>(&definition)
                    .map_err(|e| QueryError::Invalid {
                        code: flowsight_queries::plan::PlanErrorCode::BadPlan,
                        message: e.to_string(),
                    })
                    .and_then(|definition| {
                        register(
                            &self.dataflows.registry,
                            self.dataflows.changes.as_mut(),
                            &self.config,
                            definition,
                            Registered::Now(*self.dataflows.requests.time()),
                            None,
                        )
                    });
                if let (Ok(info), true) = (&result, self.is_commander) {
                    self.shared.set_query(info.clone());
                }
                if origin == self.index {
                    self.shared.reply_control(id, result.map(Some));
                }
            }
            Command::DropQuery { id, origin, name } => {
                let removed = self.dataflows.registry.borrow_mut().entries.remove(&name);
                let result = match removed {
                    Some(query) => {
                        if let Some(reader) = query.running {
                            self.leave_plane(&reader);
                        }
                        if self.is_commander {
                            self.shared.remove_query(&name);
                        }
                        Ok(None)
                    }
                    None => Err(QueryError::Unknown(name)),
                };
                if origin == self.index {
                    self.shared.reply_control(id, result);
                }
            }
            Command::StopQuery {
                name,
                generation,
                reason,
            } => self.stop_query(name, generation, reason),
            Command::Shutdown => return Next::Stop,
        }
        Next::Continue
    }

    /// Every process checks that the others run with its configuration.
    fn check_hello(&mut self, process: usize, fingerprint: String) {
        self.hello_seen = true;
        self.hellos.insert(process);
        if fingerprint != self.config.fingerprint() && self.mismatched.is_none() {
            self.shared.fail(format!(
                "process {process} runs with a different configuration than process {}; \
                 every process of a cluster needs the same options (ours: {}, theirs: {fingerprint})",
                self.config.cluster.process(),
                self.config.fingerprint()
            ));
            self.mismatched = Some(Instant::now());
        }
    }

    /// A query leaves its family in the plane; the family's last query ends it.
    fn leave_plane(&mut self, reader: &QueryReader) {
        let change = self
            .dataflows
            .registry
            .borrow_mut()
            .catalog
            .leave(&reader.member);
        if let (Some(change), Some(changes)) = (change, self.dataflows.changes.as_mut()) {
            changes.send(change);
        }
    }

    fn stop_query(&mut self, name: String, generation: u64, reason: String) {
        let reader = {
            let mut queries = self.dataflows.registry.borrow_mut();
            let Some(query) = queries
                .entries
                .get_mut(&name)
                .filter(|q| q.generation == generation && q.failed.is_none())
            else {
                return;
            };
            tracing::warn!("registered query {name:?} stopped: {reason}");
            query.failed = Some(reason.clone());
            query.running.take()
        };
        if let Some(reader) = reader {
            self.leave_plane(&reader);
        }
        if self.is_commander {
            if let Some(mut info) = self.shared.query_info(&name) {
                info.state = QueryState::Failed { reason };
                self.shared.set_query(info);
            }
        }
    }

    /// A query that grew past its bound is stopped everywhere, through the sequencer.
    fn stop_queries_over_their_bound(&mut self) {
        let mut queries = self.dataflows.registry.borrow_mut();
        let queries = &mut *queries;
        if !std::mem::take(&mut queries.groups_changed) {
            return;
        }
        for (name, query) in queries.entries.iter_mut() {
            let Some(reader) = query.running.as_ref() else {
                continue;
            };
            let groups = queries
                .groups
                .get(&reader.member.slot)
                .copied()
                .unwrap_or(0);
            if groups > self.config.queries.max_groups && !query.reported {
                query.reported = true;
                self.dataflows.sequencer.push(Command::StopQuery {
                    name: name.clone(),
                    generation: query.generation,
                    reason: format!(
                        "it kept {groups} groups, more than the {} allowed (--max-query-groups)",
                        self.config.queries.max_groups
                    ),
                });
            }
        }
    }

    /// Lets the source take its final snapshot (the last checkpoint), then drops the
    /// dataflows.
    fn finish(self, worker: &mut Worker) {
        self.dataflows.stop.set(true);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.dataflows.stopped.get() && Instant::now() < deadline {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        drop(self.dataflows);
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
    }
}

/// When a query was registered, and so from which records on it counts.
enum Registered {
    /// Now, the views' latest as_of being the given time: it counts the records placed from
    /// it on, those the plane has applied already included.
    Now(Millis),
    /// By a previous run, at the given time: the replay brings its records again.
    Before(Millis),
}

/// Registers a query on this worker: places it in the query plane (or, for a query a
/// previous run saw fail, only keeps its entry), and returns what the process lists for
/// it. Every worker calls this at the same point of the command sequence, so all agree on
/// refusals, generations and the plane's families.
fn register(
    registry: &Rc<RefCell<WorkerQueries>>,
    changes: Option<&mut InputHandle<Millis, CapacityContainerBuilder<Vec<PlaneChange>>>>,
    config: &EngineConfig,
    definition: QueryDefinition,
    registered: Registered,
    failed: Option<String>,
) -> Result<QueryInfo, QueryError> {
    let plan = definition.validate(&config.windows)?;
    let mut queries = registry.borrow_mut();
    if queries.entries.contains_key(&definition.name) {
        return Err(QueryError::Duplicate(definition.name));
    }
    if queries.len() >= config.queries.max_queries {
        return Err(QueryError::TooMany(queries.len()));
    }
    let Some(changes) = changes else {
        return Err(QueryError::Disabled);
    };
    let ready_at = match registered {
        Registered::Now(as_of) | Registered::Before(as_of) => as_of,
    };
    // The family starts at the changes' time, which may be past the as_of (the plane has
    // applied the records placed at it): the plane then gives it those records at that
    // time, and the query is read there.
    let starts_at = *changes.time();
    let running = match &failed {
        None => {
            let (member, change) = queries.catalog.join(&plan, ready_at)?;
            let reader = QueryReader::new(&plan, member)?;
            // It may join a family already past the bound.
            queries.groups_changed = true;
            if let Some(change) = change {
                changes.send(change);
            }
            // Let the plane take the change without waiting for the next as_of, so that
            // the query answers at once even when no record comes; still within the tick
            // after the as_of, where no record is placed.
            if let Registered::Now(as_of) = registered {
                let next = starts_at.saturating_add(1);
                if next < as_of.saturating_add(config.time.tick()) {
                    changes.advance_to(next);
                }
            }
            Some(reader)
        }
        Some(_) => None,
    };
    let generation = queries.next_generation;
    queries.next_generation += 1;
    let info = QueryInfo {
        definition: definition.clone(),
        plan: plan.clone(),
        registered_at: ready_at,
        generation,
        state: match &failed {
            Some(reason) => QueryState::Failed {
                reason: reason.clone(),
            },
            None => QueryState::Running,
        },
    };
    queries.entries.insert(
        definition.name,
        WorkerQuery {
            generation,
            read_from: starts_at,
            running,
            failed,
            reported: false,
        },
    );
    Ok(info)
}
