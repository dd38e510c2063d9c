//! One worker: its dataflows, built in the same order on every worker, and its loop, which
//! applies the sequenced commands.
//!
//! The process's first worker is the *commander*: it takes the commands of local clients
//! and pushes them into the sequencer. The cluster's worker 0 also issues `Advance`
//! commands as the views' frontier moves, which is what lets arrangements compact.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowscope_connectors::{EventPartition, FilePartition, GeneratorPartition};
use flowscope_operators::Millis;
use flowscope_queries::graph;
use timely::dataflow::operators::Input;
use timely::synchronization::Sequencer;
use timely::worker::Worker;

use crate::command::{Command, PeekRequest};
use crate::config::{EngineConfig, SourceConfig};
use crate::engine::Shared;
use crate::peek;
use crate::source::{event_source, AssignedPartition, SourceTiming};
use crate::status::WorkerStats;

/// How often worker 0 lets the arrangements compact up to the latest complete time.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);
/// The longest a worker parks when nothing wakes it.
const PARK: Duration = Duration::from_millis(50);

/// Checks that the source can be opened before any worker starts.
pub(crate) fn check_source(config: &EngineConfig) -> Result<(), String> {
    match &config.source {
        SourceConfig::Generator(_) => Ok(()),
        SourceConfig::File { path, format } => FilePartition::open(path, *format)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// The partitions that worker `index` of `peers` reads: partition `p` goes to `p % peers`.
fn assigned_partitions(
    config: &EngineConfig,
    index: usize,
    peers: usize,
) -> Vec<AssignedPartition> {
    let name = config.source.name();
    (0..config.source.partitions())
        .filter(|p| *p as usize % peers == index)
        .filter_map(|partition| {
            let reader: Box<dyn EventPartition> = match &config.source {
                SourceConfig::Generator(g) => Box::new(GeneratorPartition::new(g, partition)),
                SourceConfig::File { path, format } => match FilePartition::open(path, *format) {
                    Ok(file) => Box::new(file),
                    Err(error) => {
                        tracing::error!(%error, "cannot open the source file");
                        return None;
                    }
                },
            };
            Some(AssignedPartition {
                source: name.clone(),
                partition,
                reader,
            })
        })
        .collect()
}

/// Runs one worker until a `Shutdown` command.
pub(crate) fn run(worker: &mut Worker, shared: Arc<Shared>) {
    let index = worker.index();
    let peers = worker.peers();
    let local_index =
        index - shared.config.cluster.process() * shared.config.cluster.workers_per_process();
    let is_commander = local_index == 0;
    if is_commander {
        shared.register_commander();
    }
    let config = shared.config.clone();
    let stats = Rc::new(RefCell::new(WorkerStats::new(index)));
    let stop = Rc::new(Cell::new(false));
    let timing = SourceTiming {
        time: config.time,
        lateness: config.lateness,
        idle_timeout: config.idle_timeout,
    };

    let mut sequencer: Sequencer<Command> = Sequencer::new(worker, shared.started);
    let partitions = assigned_partitions(&config, index, peers);
    let mut requests = worker.dataflow_named::<Millis, _, _>("Graph", |scope| {
        let events = event_source(
            scope,
            partitions,
            timing,
            Rc::clone(&stats),
            Rc::clone(&stop),
        );
        let arranged = graph::render(events, config.time, config.windows.longest().length);
        let (input, requests) = scope.new_input::<Vec<PeekRequest>>();
        let parts = peek::serve_peeks(
            arranged,
            requests,
            Rc::clone(&stats),
            Arc::clone(&shared),
            local_index,
        );
        peek::gather(parts, Arc::clone(&shared));
        input
    });

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
        for command in sequencer.by_ref() {
            match command {
                Command::Peek(request) => requests.send(request),
                Command::Advance { as_of } => {
                    if as_of > *requests.time() {
                        requests.advance_to(as_of);
                    }
                }
                Command::Shutdown => break 'work,
            }
        }
        requests.flush();
        worker.step_or_park(Some(PARK));
    }

    shared.shutting_down.store(true, Ordering::Release);
    stop.set(true);
    drop(requests);
    drop(sequencer);
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}
