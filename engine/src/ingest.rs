//! A process's side of its source, outside the dataflow: checking the source before the
//! workers start, loading the checkpoint to resume from, the dead-letter sink, each
//! worker's [`PartitionSource`], and the thread that writes checkpoints off the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowsight_connectors::kafka::{self, KafkaDeadLetters, KafkaSource};
use flowsight_connectors::{
    EventPartition, FilePartition, FixedPartitions, GeneratorPartition, PartitionSource,
};

use crate::checkpoint::{Checkpoint, CheckpointStore, CHECKPOINT_VERSION};
use crate::config::{EngineConfig, KafkaSourceConfig, SourceConfig};
use crate::engine::EngineError;
use crate::source::SourceRuntime;

/// How long looking the topic up may take before the engine gives up starting.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the checkpoint file is replaced when something changed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a checkpoint waits for the dead letters before it to be delivered.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(10);

/// Checks, before any worker starts, that this process can read its source, and prepares
/// what its workers share: the checkpoint to resume from and the dead-letter sink.
pub(crate) fn prepare(config: &EngineConfig) -> Result<SourceRuntime, EngineError> {
    match &config.source {
        SourceConfig::File { path, format } => {
            if reads_partition_zero(config) {
                FilePartition::open(path, *format)?;
            }
            Ok(SourceRuntime::without_checkpoints())
        }
        SourceConfig::Generator(_) => Ok(SourceRuntime::without_checkpoints()),
        SourceConfig::Kafka(kafka) => prepare_kafka(config, kafka),
    }
}

/// A file is read by worker 0 only, so only its process needs to open it.
fn reads_partition_zero(config: &EngineConfig) -> bool {
    config.cluster.process() == 0
}

fn prepare_kafka(
    config: &EngineConfig,
    kafka: &KafkaSourceConfig,
) -> Result<SourceRuntime, EngineError> {
    kafka.options.check()?;
    let partitions = kafka::topic_partitions(&kafka.options, &kafka.topic, BROKER_TIMEOUT)?
        .ok_or_else(|| EngineError::TopicMissing {
            topic: kafka.topic.clone(),
            brokers: kafka.options.brokers.clone(),
        })?;
    let state_dir = config
        .state_dir
        .as_deref()
        .ok_or(EngineError::Config(crate::ConfigError::NoStateDir))?;
    let store = CheckpointStore::new(state_dir, config.cluster.process());
    let resume = store.load(
        &kafka.topic,
        config.cluster.processes(),
        config.cluster.workers_per_process(),
    )?;

    // The dead-letter topic is created when missing, like the engine's own state; if that
    // fails the sink keeps undeliverable letters on disk and says so.
    if let Err(error) = kafka::ensure_topic(
        &kafka.options,
        &kafka.dead_letter_topic,
        partitions,
        BROKER_TIMEOUT,
    ) {
        tracing::warn!(topic = %kafka.dead_letter_topic, "cannot create the dead-letter topic: {error}");
    }
    let spill = state_dir
        .join("dead-letters")
        .join(format!("{}.jsonl", kafka.dead_letter_topic));
    let sink = KafkaDeadLetters::new(&kafka.options, &kafka.dead_letter_topic, &spill).map_err(
        |source| EngineError::Producer {
            what: "dead-letter",
            source,
        },
    )?;
    tracing::info!(
        topic = %kafka.topic,
        partitions,
        dead_letters = %kafka.dead_letter_topic,
        resumed_partitions = resume.len(),
        "reading Kafka"
    );
    let retention = config.windows.retention();
    let ready_from = resume
        .values()
        .filter(|entry| entry.replay_from(&config.time, retention) < entry.offset)
        .map(|entry| entry.as_of)
        .max();
    Ok(SourceRuntime {
        resume,
        ready_from,
        dead_letters: Some(Arc::new(sink)),
        checkpointing: true,
        board: Default::default(),
    })
}

/// The partitions that worker `index` of `peers` reads: partition `p` goes to `p % peers`.
pub(crate) fn partition_source(
    config: &EngineConfig,
    runtime: &SourceRuntime,
    index: usize,
    peers: usize,
) -> Box<dyn PartitionSource> {
    let name = config.source.name();
    let fixed = |count: u32, open: &dyn Fn(u32) -> Box<dyn EventPartition>| {
        let partitions = (0..count)
            .filter(|p| *p as usize % peers == index)
            .map(|p| (p, open(p)))
            .collect();
        Box::new(FixedPartitions::new(name.clone(), partitions)) as Box<dyn PartitionSource>
    };
    match &config.source {
        SourceConfig::Generator(g) => {
            fixed(g.partitions, &|p| Box::new(GeneratorPartition::new(g, p)))
        }
        SourceConfig::File { path, format } => {
            fixed(1, &|_| match FilePartition::open(path, *format) {
                Ok(file) => Box::new(file),
                // Checked before the workers started; if the file vanished since, the
                // partition reads nothing and says why in the dead letters.
                Err(error) => Box::new(FilePartition::from_reader(
                    name.clone(),
                    FailingReader(error.to_string()),
                    *format,
                )),
            })
        }
        SourceConfig::Kafka(kafka) => {
            let retention = config.windows.retention();
            let start: BTreeMap<u32, u64> = runtime
                .resume
                .iter()
                .map(|(p, entry)| (*p, entry.replay_from(&config.time, retention)))
                .collect();
            match KafkaSource::new(
                &kafka.options,
                &kafka.topic,
                kafka.format,
                index,
                peers,
                start,
            ) {
                Ok(source) => Box::new(source),
                Err(error) => {
                    // The brokers were reachable a moment ago; without a consumer this worker
                    // cannot read its partitions, and that must not pass unnoticed.
                    panic!("{error}");
                }
            }
        }
    }
}

/// A reader whose every read fails with the error that kept a file from opening.
struct FailingReader(String);

impl std::io::Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other(self.0.clone()))
    }
}

/// Writes the process's checkpoint in the background while the engine runs, and a last
/// time when it stops.
pub(crate) struct CheckpointWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    round: Arc<dyn Fn(Duration) -> Result<bool, CheckpointFailure> + Send + Sync>,
}

/// Why a checkpoint could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFailure {
    /// The dead letters of the records it covers were neither delivered nor kept on disk,
    /// so the checkpoint may not say the engine is past them.
    #[error("the dead letters before it were not delivered: {0}")]
    DeadLetters(String),
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] crate::checkpoint::CheckpointError),
}

impl CheckpointWriter {
    pub(crate) fn start(config: &EngineConfig, runtime: Arc<SourceRuntime>) -> Option<Self> {
        let SourceConfig::Kafka(kafka) = &config.source else {
            return None;
        };
        let state_dir = config.state_dir.as_deref()?;
        let store = CheckpointStore::new(state_dir, config.cluster.process());
        let topic = kafka.topic.clone();
        let processes = config.cluster.processes();
        let workers = config.cluster.workers_per_process();
        let retention = config.windows.retention();
        let written = std::sync::Mutex::new(None::<u64>);
        let round = Arc::new(move |flush: Duration| -> Result<bool, CheckpointFailure> {
            let (changes, partitions) = {
                let board = runtime.board.lock().unwrap_or_else(|p| p.into_inner());
                (board.changes, board.partitions.clone())
            };
            let mut last = written.lock().unwrap_or_else(|p| p.into_inner());
            if *last == Some(changes) || partitions.is_empty() {
                return Ok(false);
            }
            // Dead letters of the records before these offsets must be delivered (or kept
            // on disk) before the checkpoint says the engine is past them.
            if let Some(sink) = &runtime.dead_letters {
                sink.flush(flush).map_err(CheckpointFailure::DeadLetters)?;
            }
            store.write(&Checkpoint {
                version: CHECKPOINT_VERSION,
                topic: topic.clone(),
                processes,
                workers,
                retention,
                partitions,
            })?;
            *last = Some(changes);
            Ok(true)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let round = Arc::clone(&round);
            std::thread::Builder::new()
                .name("flowsight-checkpoint".into())
                .spawn(move || {
                    let mut failing = false;
                    while !stop.load(Ordering::Acquire) {
                        let started = Instant::now();
                        match round(DEAD_LETTER_FLUSH) {
                            Ok(_) => failing = false,
                            Err(error) => {
                                if !failing {
                                    tracing::error!(
                                        "cannot write the checkpoint: {error}; retrying"
                                    );
                                }
                                failing = true;
                            }
                        }
                        let rest = CHECKPOINT_EVERY.saturating_sub(started.elapsed());
                        let deadline = Instant::now() + rest;
                        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
                .ok()
        };
        Some(CheckpointWriter {
            stop,
            thread,
            round,
        })
    }

    /// Stops the background writes and writes the final checkpoint (the workers have
    /// stopped and handed on their last snapshots).
    pub(crate) fn finish(mut self) -> Result<(), CheckpointFailure> {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        match (self.round)(Duration::from_secs(30)) {
            Ok(_) => {
                tracing::info!("final checkpoint written");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}
