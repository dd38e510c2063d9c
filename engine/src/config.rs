//! The engine's validated configuration, and the timely configuration built from it
//! (never from timely's own command-line parsing).

use std::path::PathBuf;
use std::time::Duration;

use flowsight_connectors::kafka::KafkaOptions;
use flowsight_connectors::{Format, GeneratorConfig};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::segments::propagation::SegmentRules;
use flowsight_queries::{RiskSettings, Windows};

use serde::{Deserialize, Serialize};

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceConfig {
    /// The embedded synthetic network.
    Generator(GeneratorConfig),
    /// A file replayed once, as one partition read by the first worker.
    File {
        /// The file to read; its path, as given, is the source's name.
        path: PathBuf,
        /// How its records are written.
        format: Format,
    },
    /// Every partition of a Kafka topic, partition `p` read by worker `p % peers`.
    Kafka(KafkaSourceConfig),
}

/// A Kafka topic as a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KafkaSourceConfig {
    /// How to reach the brokers, with the user's extra librdkafka options.
    pub options: KafkaOptions,
    /// The topic to read; it must exist (the engine never creates it). It also names the
    /// source in status pages, dead letters and checkpoints.
    pub topic: String,
    /// How the messages' payloads are written.
    pub format: Format,
    /// Where malformed records go, unchanged, with headers saying why.
    pub dead_letter_topic: String,
}

impl SourceConfig {
    /// How many partitions the source has, if fixed; partition `p` is read by worker
    /// `p % peers`. (A Kafka topic's partitions are looked up, and may grow.)
    pub fn partitions(&self) -> Option<u32> {
        match self {
            SourceConfig::Generator(g) => Some(g.partitions),
            SourceConfig::File { .. } => Some(1),
            SourceConfig::Kafka(_) => None,
        }
    }

    /// The name that status pages and dead letters use for the source.
    pub fn name(&self) -> String {
        match self {
            SourceConfig::Generator(_) => "generator".to_string(),
            SourceConfig::File { path, .. } => path.display().to_string(),
            SourceConfig::Kafka(kafka) => kafka.topic.clone(),
        }
    }
}

/// How the timely workers are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterConfig {
    /// One process with `workers` worker threads.
    Single {
        /// Worker threads in the process; at least 1.
        workers: usize,
    },
    /// Process `process` of a cluster whose processes listen at `addresses` (host:port, one
    /// per process, in process order), each with `workers` worker threads.
    Cluster {
        /// Worker threads in each process; at least 1.
        workers: usize,
        /// This process's index in `addresses`.
        process: usize,
        /// Every process's `host:port`, in process order (the host file).
        addresses: Vec<String>,
    },
}

impl ClusterConfig {
    /// Worker threads in each process.
    pub fn workers_per_process(&self) -> usize {
        match self {
            ClusterConfig::Single { workers } | ClusterConfig::Cluster { workers, .. } => *workers,
        }
    }

    /// How many processes the cluster has (1 for a single process).
    pub fn processes(&self) -> usize {
        match self {
            ClusterConfig::Single { .. } => 1,
            ClusterConfig::Cluster { addresses, .. } => addresses.len(),
        }
    }

    /// This process's index in the cluster (0 for a single process).
    pub fn process(&self) -> usize {
        match self {
            ClusterConfig::Single { .. } => 0,
            ClusterConfig::Cluster { process, .. } => *process,
        }
    }

    /// Workers in the whole cluster (timely's peers): partition `p` is read by worker
    /// `p % peers`.
    pub fn peers(&self) -> usize {
        self.workers_per_process() * self.processes()
    }

    /// The timely configuration of this layout, built here rather than parsed from
    /// timely's command-line options.
    pub fn timely_config(&self) -> timely::Config {
        let communication = match self {
            ClusterConfig::Single { workers } => timely::CommunicationConfig::Process(*workers),
            ClusterConfig::Cluster {
                workers,
                process,
                addresses,
            } => timely::CommunicationConfig::Cluster {
                threads: *workers,
                process: *process,
                addresses: addresses.clone(),
                report: false,
                zerocopy: false,
            },
        };
        // Arrangements merge their batches as updates arrive, not while idle
        // (differential's `idle_merge_effort` stays off): idle merging kept every worker
        // scheduled, and reads waited behind it — p99 of 30–50 ms instead of 3–8 ms with 8
        // clients, for about 8 % less memory (docs/benchmarks.md).
        let worker = timely::WorkerConfig::default();
        timely::Config {
            communication,
            worker,
        }
    }
}

/// Everything a running engine needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// The tick: how event timestamps map to timely times.
    pub time: TimeModel,
    /// How far behind the largest timestamp seen a partition's watermark stays.
    pub lateness: Millis,
    /// Wall-clock time without data after which a partition stops holding the watermark.
    pub idle_timeout: Duration,
    /// How far (event time, ms) a partition may read ahead of the views' frontier: past it
    /// the source waits until the views catch up, so what is read but not yet in the views
    /// stays bounded however fast the source could go.
    #[serde(default = "default_max_ahead")]
    pub max_ahead: Millis,
    /// How long a status read waits for the workers to answer before it answers from the
    /// counters each worker last published (busy workers reach a peek only between two
    /// operator runs); zero answers from them always.
    #[serde(default = "default_status_patience")]
    pub status_patience: Duration,
    /// The windows views are read over, shortest first; the longest is how long records
    /// stay in the views.
    pub windows: Windows,
    /// Where events come from.
    pub source: SourceConfig,
    /// How the timely workers are laid out.
    pub cluster: ClusterConfig,
    /// Where checkpoints (and dead letters that could not be delivered) are kept; used by
    /// sources that can resume (Kafka).
    pub state_dir: Option<PathBuf>,
    /// Whether the risk and anomaly views run (off: the graph view only).
    pub risk_views: bool,
    /// How hosts are scored and which anomalies are reported.
    pub analysis: RiskSettings,
    /// Where alerts go, if anywhere.
    pub alerts: Option<AlertsConfig>,
    /// Whether the segmentation views run (segments, hubs, policy, policy violations).
    pub segment_views: bool,
    /// The thresholds of the segmentation.
    pub segments: SegmentRules,
    /// Registered queries: whether they run, and their limits.
    pub queries: QueryLimits,
}

/// The default of [`EngineConfig::max_ahead`]: 10 s of event time. A source in real time
/// is a tick or so ahead of the views, so it never waits; a backlog or a generator at full
/// speed reads at most this much (at 113,000 events/s, about 1.1 million events) beyond
/// what the views hold.
pub const DEFAULT_MAX_AHEAD: Millis = 10_000;

fn default_max_ahead() -> Millis {
    DEFAULT_MAX_AHEAD
}

/// The default of [`EngineConfig::status_patience`]: a quarter of a second, so that
/// `/v1/status` answers well within a second however busy the workers are.
pub const DEFAULT_STATUS_PATIENCE: Duration = Duration::from_millis(250);

fn default_status_patience() -> Duration {
    DEFAULT_STATUS_PATIENCE
}

/// What registered queries may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryLimits {
    /// Whether queries can be registered at all; off, the engine keeps no arrangement of
    /// the window's records (which costs memory in proportion to them).
    pub enabled: bool,
    /// How many queries may be registered at once.
    pub max_queries: usize,
    /// How many groups (result rows before LIMIT) one query may keep; a query that grows
    /// past it is stopped with an error rather than let memory grow without bound.
    pub max_groups: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            enabled: true,
            max_queries: 500,
            max_groups: 1_000_000,
        }
    }
}

/// The Kafka topic that receives anomaly and severity alerts as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsConfig {
    /// How to reach the brokers, with the user's extra librdkafka options.
    pub options: KafkaOptions,
    /// The topic alerts are written to; it must exist (the engine never creates it).
    pub topic: String,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A process configured with no worker threads.
    #[error("--workers must be at least 1")]
    NoWorkers,
    /// This process's index is not one of the host file's processes.
    #[error("process index {process} is out of range: the host file lists {processes} processes")]
    ProcessOutOfRange {
        /// This process's index.
        process: usize,
        /// How many processes the host file lists.
        processes: usize,
    },
    /// A cluster whose host file lists no process.
    #[error("the host file lists no processes")]
    EmptyCluster,
    /// A generator configured with no partitions.
    #[error("the generator needs at least one partition")]
    NoPartitions,
    /// A Kafka source without a state directory to keep its checkpoints in.
    #[error("a Kafka source needs a state directory for its checkpoints (--state-dir)")]
    NoStateDir,
    /// The risk settings cannot work; the text says why.
    #[error("risk settings: {0}")]
    Analysis(String),
    /// A segmentation threshold is 0; holds its name.
    #[error("segment settings: {0} must be at least 1")]
    Segments(&'static str),
    /// The distance a source may read ahead of the views is less than a tick.
    #[error("--max-ahead must be at least one tick ({tick} ms), got {max_ahead} ms")]
    MaxAheadTooSmall {
        /// The distance asked for, ms of event time.
        max_ahead: Millis,
        /// The tick, ms.
        tick: Millis,
    },
    /// A registered-query limit is 0; holds its option.
    #[error("registered queries: {0} must be at least 1")]
    Queries(&'static str),
}

impl EngineConfig {
    /// What every process of a cluster must agree on, as text: options that change which
    /// worker reads what or what the views hold. (A file's path may differ per process.)
    pub fn fingerprint(&self) -> String {
        let source = match &self.source {
            // Each process picks its own start instant (`now` by default); a few ms apart is fine.
            SourceConfig::Generator(g) => {
                serde_json::json!({ "generator": GeneratorConfig { start_ms: 0, ..g.clone() } })
            }
            SourceConfig::File { format, .. } => serde_json::json!({ "file": format.to_string() }),
            SourceConfig::Kafka(kafka) => serde_json::json!({
                "kafka": kafka.topic,
                "format": kafka.format.to_string(),
                "dead_letters": kafka.dead_letter_topic,
            }),
        };
        serde_json::json!({
            "tick": self.time.tick(),
            "lateness": self.lateness,
            "idle_timeout_ms": self.idle_timeout.as_millis() as u64,
            "windows": self.windows.names(),
            "source": source,
            "workers": self.cluster.workers_per_process(),
            "processes": self.cluster.processes(),
            "hosts": match &self.cluster {
                ClusterConfig::Cluster { addresses, .. } => addresses.clone(),
                ClusterConfig::Single { .. } => Vec::new(),
            },
            "risk_views": self.risk_views,
            "analysis": self.analysis,
            "segment_views": self.segment_views,
            "segments": self.segments,
            "queries": self.queries,
        })
        .to_string()
    }

    /// Checks that the configuration can run; [`Engine::start`](crate::Engine::start)
    /// calls it before anything else.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.workers_per_process() == 0 {
            return Err(ConfigError::NoWorkers);
        }
        if let ClusterConfig::Cluster {
            process, addresses, ..
        } = &self.cluster
        {
            if addresses.is_empty() {
                return Err(ConfigError::EmptyCluster);
            }
            if *process >= addresses.len() {
                return Err(ConfigError::ProcessOutOfRange {
                    process: *process,
                    processes: addresses.len(),
                });
            }
        }
        if self.source.partitions() == Some(0) {
            return Err(ConfigError::NoPartitions);
        }
        if self.max_ahead < self.time.tick() {
            return Err(ConfigError::MaxAheadTooSmall {
                max_ahead: self.max_ahead,
                tick: self.time.tick(),
            });
        }
        if matches!(self.source, SourceConfig::Kafka(_)) && self.state_dir.is_none() {
            return Err(ConfigError::NoStateDir);
        }
        self.analysis
            .risk
            .validate()
            .map_err(ConfigError::Analysis)?;
        if self.segments.hub_degree == 0 {
            return Err(ConfigError::Segments("hub_degree"));
        }
        if self.segments.min_edge_connections == 0 {
            return Err(ConfigError::Segments("min_edge_connections"));
        }
        if self.queries.max_queries == 0 {
            return Err(ConfigError::Queries("--max-queries"));
        }
        if self.queries.max_groups == 0 {
            return Err(ConfigError::Queries("--max-query-groups"));
        }
        Ok(())
    }
}
