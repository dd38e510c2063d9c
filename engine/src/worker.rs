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

use flowscope_operators::{Millis, WatermarkReport};
use flowscope_queries::{graph, risk, segments};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Input, Operator};
use timely::synchronization::Sequencer;
use timely::worker::Worker;

use crate::alerts;
use crate::command::{Command, PeekRequest};
use crate::engine::Shared;
use crate::ingest;
use crate::peek;
use crate::source::{event_source, SourceTiming, WatermarkBoard, WorkerLinks};
use crate::status::WorkerStats;

/// How often worker 0 lets the arrangements compact up to the latest complete time.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);
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

/// Runs one worker until a `Shutdown` command.
pub(crate) fn run(worker: &mut Worker, shared: Arc<Shared>) {
    let index = worker.index();
    let peers = worker.peers();
    let _guard = ExitGuard {
        shared: Arc::clone(&shared),
        worker: index,
    };
    let local_index =
        index - shared.config.cluster.process() * shared.config.cluster.workers_per_process();
    let is_commander = local_index == 0;
    if is_commander {
        shared.register_commander();
    }
    let config = shared.config.clone();
    let stats = Rc::new(RefCell::new(WorkerStats::new(index)));
    let board = Rc::new(RefCell::new(WatermarkBoard::new(peers)));
    let stop = Rc::new(Cell::new(false));
    let stopped = Rc::new(Cell::new(false));
    let timing = SourceTiming {
        time: config.time,
        lateness: config.lateness,
        idle_timeout: config.idle_timeout,
        retention: config.windows.longest().length,
    };

    // The sequencer orders commands by its workers' elapsed time; timely starts the worker
    // timer once every process has connected, so processes started at different moments
    // still agree.
    let timer = worker.timer().unwrap_or_else(Instant::now);
    let mut sequencer: Sequencer<Command> = Sequencer::new(worker, timer);

    let mut reports = worker.dataflow_named::<u64, _, _>("Watermarks", |scope| {
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

    let partitions = ingest::partition_source(&config, &shared.runtime, index, peers);
    let mut requests = worker.dataflow_named::<Millis, _, _>("Graph", |scope| {
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
        let arranged = graph::render(events, config.time, config.windows.longest().length);
        let mut progress = arranged.stream.clone().map(|_| ());
        let mut risk_traces = None;
        if config.risk_views {
            let risks = risk::render(&arranged, config.time, &config.windows, &config.analysis);
            alerts::deliver(risks.alerts, Arc::clone(&shared));
            progress = progress.concat(risks.progress);
            risk_traces = Some(risks.traces);
        }
        let mut segment_traces = None;
        if config.segment_views {
            let rendered = segments::render(&arranged, config.segments);
            progress = progress.concat(rendered.progress);
            segment_traces = Some(rendered.traces);
        }
        let views = peek::Views {
            graph: arranged.trace,
            risk: risk_traces,
            segments: segment_traces,
        };
        let (input, requests) = scope.new_input::<Vec<PeekRequest>>();
        let parts = peek::serve_peeks(
            progress,
            views,
            requests,
            Rc::clone(&stats),
            Arc::clone(&shared),
            local_index,
        );
        peek::gather(parts, Arc::clone(&shared));
        input
    });

    if is_commander {
        sequencer.push(Command::Hello {
            process: config.cluster.process(),
            fingerprint: config.fingerprint(),
        });
    }
    let mut last_advance = Instant::now();
    let mut advanced_to: Millis = 0;
    'work: loop {
        if is_commander {
            while let Ok(command) = shared.commands.1.try_recv() {
                sequencer.push(command);
            }
        }
        if index == 0 && last_advance.elapsed() >= ADVANCE_EVERY {
            last_advance = Instant::now();
            if let Some(as_of) = shared.latest_complete() {
                if as_of > advanced_to {
                    advanced_to = as_of;
                    sequencer.push(Command::Advance { as_of });
                }
            }
        }
        if let Some(report) = board.borrow_mut().outbox.take() {
            reports.send((index, report));
            let next = *reports.time() + 1;
            reports.advance_to(next);
        }
        for command in sequencer.by_ref() {
            match command {
                Command::Peek(request) => requests.send(request),
                Command::Advance { as_of } => {
                    if as_of > *requests.time() {
                        requests.advance_to(as_of);
                    }
                }
                Command::Hello {
                    process,
                    fingerprint,
                } => {
                    if fingerprint != config.fingerprint() {
                        shared.fail(format!(
                            "process {process} runs with a different configuration than process {}; \
                             every process of a cluster needs the same options (ours: {}, theirs: {fingerprint})",
                            config.cluster.process(),
                            config.fingerprint()
                        ));
                        break 'work;
                    }
                }
                Command::Shutdown => break 'work,
            }
        }
        requests.flush();
        reports.flush();
        worker.step_or_park(Some(PARK));
    }

    // Let the source take its final snapshot (the last checkpoint) before the dataflows go.
    stop.set(true);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !stopped.get() && Instant::now() < deadline {
        worker.step_or_park(Some(Duration::from_millis(5)));
    }
    drop(requests);
    drop(reports);
    drop(sequencer);
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}
