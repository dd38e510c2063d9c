//! The command line: clap types, and their translation into a validated engine config.

use flowsight_events::now_ms;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowsight_connectors::kafka::{default_dead_letter_topic, KafkaOptions};
use flowsight_connectors::{Format, GeneratorConfig, Pace};
use flowsight_engine::{
    AlertsConfig, ClusterConfig, EngineConfig, KafkaSourceConfig, QueryLimits, SourceConfig,
    SubscriptionSettings,
};
use flowsight_operators::TimeModel;
use flowsight_queries::windows::DEFAULT_WINDOWS;
use flowsight_queries::Windows;

use crate::hostfile;

#[derive(Debug, Parser)]
#[command(
    name = "flowsight",
    version = crate::VERSION,
    about = "Streaming analytics for network connection events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine (one process, or one process of a cluster) with the HTTP API and dashboard.
    // Boxed: parsed once, and far larger than the other commands' arguments.
    Run(Box<RunArgs>),
    /// Write generated records (or a file's records) into a Kafka topic.
    Produce(ProduceArgs),
    /// Register, list, show, drop registered queries and read their results, over the HTTP
    /// API of a running engine.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Start, supervise, inspect and stop a multi-process cluster from a host file.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `flowsight cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start every process of the host file that runs on this machine (and, with --ssh,
    /// the others) and supervise them: when one dies, the whole cluster is restarted from
    /// its checkpoints. Takes the options of `flowsight run` (with --hostfile, without
    /// --process); process i serves HTTP on the --http port plus i and keeps its state in
    /// <state-dir>/process-<i>.
    Start(ClusterStartArgs),
    /// Show every process of the host file: up or down, and the cluster's partitions,
    /// frontier and lag.
    Status(ClusterStatusArgs),
    /// Stop a cluster started by `cluster start`: every process takes its final checkpoint
    /// and exits 0.
    Stop(ClusterStopArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClusterStartArgs {
    /// Start the processes on other hosts over ssh (`flowsight` must be on their PATH);
    /// without it, the command to run there is printed.
    #[arg(long)]
    pub ssh: bool,
    /// Failures in a row (each within a minute of its start) after which the supervisor
    /// gives up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_restarts: u32,
    /// The options of `flowsight run` for every process: --hostfile FILE, --workers N, the
    /// source, --http ADDR (the base port), --state-dir DIR, …
    #[arg(
        value_name = "RUN OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub run_options: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
pub struct ClusterStatusArgs {
    /// The --state-dir a cluster was started with by `cluster start`: its processes and
    /// their HTTP addresses are read from there. Used when --hostfile is not given.
    #[arg(long, value_name = "DIR", default_value = "flowsight-state")]
    pub state_dir: PathBuf,
    /// The cluster's host file, for processes started by hand (with --http).
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// With --hostfile: the HTTP address of process 0 (default 127.0.0.1:8080); process i
    /// answers on its port plus i.
    #[arg(long, value_name = "ADDR", requires = "hostfile")]
    pub http: Option<SocketAddr>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ClusterStopArgs {
    /// The --state-dir the cluster was started with.
    #[arg(long, value_name = "DIR", default_value = "flowsight-state")]
    pub state_dir: PathBuf,
    /// How long to wait for every process to stop, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

/// `flowsight query …`: a client of the HTTP API's query routes.
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Register a query, given as SQL or as a JSON plan.
    Register {
        /// The query's name: letters, digits, '_' or '-'.
        name: String,
        /// The query in SQL.
        #[arg(
            long,
            value_name = "SQL",
            conflicts_with = "plan",
            required_unless_present = "plan"
        )]
        sql: Option<String>,
        /// A file holding the query's JSON plan ('-' reads standard input).
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the registered queries.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one query: its SQL, plan and state.
    Show {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Drop a query and free what it holds.
    Drop {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a query's current results.
    Results {
        name: String,
        /// At most this many rows.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Where the engine's HTTP API is.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The engine's HTTP address.
    #[arg(
        long,
        value_name = "URL",
        env = "FLOWSIGHT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The embedded synthetic network (no Kafka needed).
    Generator,
    /// Replay a file once.
    File,
    /// Every partition of a Kafka topic (--brokers, --topic).
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Native,
    Zeek,
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Native => Format::Native,
            FormatArg::Zeek => Format::Zeek,
            FormatArg::Csv => Format::Csv,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
    /// Event time runs at wall-clock speed, starting now.
    Realtime,
    /// As fast as the engine takes it, with simulated event time.
    Fast,
    /// As fast as the engine takes it until event time reaches the wall clock, then at
    /// wall-clock speed: with `--start-ms` in the past, a backlog caught up, then live.
    CatchUp,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where events come from.
    #[arg(
        long,
        value_enum,
        default_value = "generator",
        env = "FLOWSIGHT_SOURCE"
    )]
    pub source: SourceKind,
    /// The file to replay (with --source file).
    #[arg(long, value_name = "PATH", env = "FLOWSIGHT_PATH")]
    pub path: Option<PathBuf>,
    /// Record format of the file or topic.
    #[arg(long, value_enum, default_value = "native", env = "FLOWSIGHT_FORMAT")]
    pub format: FormatArg,
    /// Address of the HTTP API and dashboard [default: 127.0.0.1:8080, plus the process index in a cluster].
    #[arg(long, value_name = "ADDR", env = "FLOWSIGHT_HTTP")]
    pub http: Option<SocketAddr>,
    /// Worker threads in this process.
    #[arg(long, value_name = "N", default_value_t = 1, env = "FLOWSIGHT_WORKERS")]
    pub workers: usize,
    /// This process's index in the host file.
    #[arg(
        long,
        value_name = "I",
        requires = "hostfile",
        env = "FLOWSIGHT_PROCESS"
    )]
    pub process: Option<usize>,
    /// Host file of a multi-process cluster: one host:port per line, in process order.
    #[arg(
        long,
        value_name = "FILE",
        requires = "process",
        env = "FLOWSIGHT_HOSTFILE"
    )]
    pub hostfile: Option<PathBuf>,
    /// Event-time tick: the granularity of every as_of.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_duration_ms,
        env = "FLOWSIGHT_TICK"
    )]
    pub tick: u64,
    /// How far behind the largest timestamp seen a partition's watermark stays.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_duration_ms,
        env = "FLOWSIGHT_LATENESS"
    )]
    pub lateness: u64,
    /// Wall-clock time without data after which a partition stops holding the watermark back.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_duration_ms,
        env = "FLOWSIGHT_IDLE_TIMEOUT"
    )]
    pub idle_timeout: u64,
    /// How far (event time) a source may read ahead of the views before it waits for
    /// them: what is read but not yet in the views stays bounded however fast the source
    /// (a backlog, a file, `--pace fast`) could go. At least one tick.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration_ms,
        env = "FLOWSIGHT_MAX_AHEAD"
    )]
    pub max_ahead: u64,
    /// How long `/v1/status` waits for the workers to answer before it answers from the
    /// counters each worker last published (with their age, `age_ms`); `0ms` always
    /// answers from them.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "250ms",
        value_parser = parse_duration_ms,
        env = "FLOWSIGHT_STATUS_PATIENCE"
    )]
    pub status_patience: u64,
    /// Windows of the windowed views and their panes, comma separated: `<length>[:<pane>]`
    /// (a window without a pane is kept at the tick) [default: 30m:1m,2h:5m,24h:1h, or
    /// the --config file's].
    #[arg(long, value_name = "LIST", env = "FLOWSIGHT_WINDOWS")]
    pub windows: Option<String>,
    /// Where checkpoints (Kafka offsets) and undeliverable dead letters are kept.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "flowsight-state",
        env = "FLOWSIGHT_STATE_DIR"
    )]
    pub state_dir: PathBuf,
    /// Analysis settings (sensitive ports, private ranges, severity bands, anomaly and
    /// segmentation thresholds) in TOML; see docs/risk-and-anomalies.md and
    /// docs/segments.md. Without it, the built-in defaults apply (docs/design.md §4).
    #[arg(long, value_name = "FILE", env = "FLOWSIGHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run the connection graph only, without the risk and anomaly views.
    #[arg(long, env = "FLOWSIGHT_NO_RISK_VIEWS", conflicts_with = "alerts_topic")]
    pub no_risk_views: bool,
    /// Run without the segmentation views (segments, hubs, policy, policy violations).
    #[arg(long, env = "FLOWSIGHT_NO_SEGMENT_VIEWS")]
    pub no_segment_views: bool,
    /// Hosts with at least this many distinct peers in the 24h window are hubs (shared
    /// services), not clustered [default: 50, or the --config file's].
    #[arg(
        long,
        value_name = "N",
        env = "FLOWSIGHT_HUB_DEGREE",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub hub_degree: Option<u64>,
    /// Two hosts with at least this many connections between them in the 24h window are
    /// in one segment [default: 3, or the --config file's].
    #[arg(
        long,
        value_name = "N",
        env = "FLOWSIGHT_MIN_EDGE_CONNECTIONS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub min_edge_connections: Option<u64>,
    /// Run without registered queries; the engine then keeps no arrangement of the
    /// window's records.
    #[arg(long, env = "FLOWSIGHT_NO_QUERIES")]
    pub no_queries: bool,
    /// How many queries may be registered at once.
    #[arg(
        long,
        value_name = "N",
        env = "FLOWSIGHT_MAX_QUERIES",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_queries: u64,
    /// How many groups one registered query may keep before it is stopped with an error.
    #[arg(
        long,
        value_name = "N",
        env = "FLOWSIGHT_MAX_QUERY_GROUPS",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_query_groups: u64,
    /// How many events a subscriber (`/v1/subscribe`) may fall behind before it is told and
    /// sent a new snapshot instead: the engine never waits for a slow client.
    #[arg(
        long,
        value_name = "EVENTS",
        env = "FLOWSIGHT_SUBSCRIPTION_QUEUE",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub subscription_queue: u64,
    /// How many events each subscription keeps so that a client reconnecting with
    /// `Last-Event-ID` resumes without a gap (one event per tick).
    #[arg(
        long,
        value_name = "EVENTS",
        env = "FLOWSIGHT_SUBSCRIPTION_HISTORY",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub subscription_history: u64,
    /// Write anomalies and severity changes as JSON to this Kafka topic (needs --brokers).
    #[arg(long, value_name = "TOPIC", env = "FLOWSIGHT_ALERTS_TOPIC")]
    pub alerts_topic: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub generator: GeneratorArgs,
}

/// How to reach Kafka.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, value_name = "HOSTS", env = "FLOWSIGHT_BROKERS")]
    pub brokers: Option<String>,
    /// The topic of connection records.
    #[arg(long, value_name = "TOPIC", env = "FLOWSIGHT_TOPIC")]
    pub topic: Option<String>,
    /// An extra librdkafka option, e.g. security.protocol=SASL_SSL (repeatable). From the
    /// environment: one KEY=VALUE per line, which keeps secrets such as SASL passwords out
    /// of the process list.
    #[arg(
        long = "kafka-option",
        value_name = "KEY=VALUE",
        env = "FLOWSIGHT_KAFKA_OPTIONS",
        value_delimiter = '\n'
    )]
    pub kafka_options: Vec<String>,
    /// Where malformed records go [default: <topic>.dead-letters].
    #[arg(long, value_name = "TOPIC", env = "FLOWSIGHT_DEAD_LETTER_TOPIC")]
    pub dead_letter_topic: Option<String>,
}

impl KafkaArgs {
    /// The brokers, topic and options, or a message naming what is missing.
    fn options(&self, command: &str) -> Result<(KafkaOptions, String), String> {
        let brokers = self
            .brokers
            .clone()
            .ok_or_else(|| format!("{command} needs --brokers HOST:PORT"))?;
        let topic = self
            .topic
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| format!("{command} needs --topic TOPIC"))?;
        let options = KafkaOptions::new(brokers)
            .with_extra(self.kafka_options.iter().map(String::as_str))
            .map_err(|e| e.to_string())?;
        Ok((options, topic))
    }

    /// Whether options that only a Kafka source uses were given.
    fn given_for_source(&self) -> bool {
        self.topic.is_some() || self.dead_letter_topic.is_some()
    }

    fn given(&self) -> bool {
        self.brokers.is_some()
            || self.topic.is_some()
            || !self.kafka_options.is_empty()
            || self.dead_letter_topic.is_some()
    }
}

/// `flowsight produce`: records into a topic.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,
    /// Records per second [default: as fast as the brokers take them for --path; 5000 for
    /// generated records, whose event time then follows the wall clock].
    #[arg(long, value_name = "R")]
    pub rate: Option<u64>,
    /// Stop after this many records [default: endless for generated records].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Format of the records written.
    #[arg(long, value_enum, default_value = "native")]
    pub format: FormatArg,
    /// Send this file's records (one per line, unchanged) instead of generated ones.
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Generated records: as fast as possible with simulated event time, instead of
    /// event time following the wall clock.
    #[arg(long)]
    pub fast: bool,
    /// Seed of the synthetic network.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Client hosts in the synthetic network.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub hosts: u32,
    /// Event time of the first generated record, ms since epoch [default: now].
    #[arg(long, value_name = "MS")]
    pub start_ms: Option<u64>,
}

/// Everything `flowsight produce` needs, validated.
#[derive(Debug)]
pub struct ProduceConfig {
    pub options: KafkaOptions,
    pub topic: String,
    pub create_partitions: Option<u32>,
    pub format: Format,
    pub what: ProduceWhat,
}

#[derive(Debug)]
pub enum ProduceWhat {
    /// Each line of the file, unchanged, paced at `rate` records/s if given.
    File {
        path: PathBuf,
        rate: Option<u64>,
        count: Option<u64>,
    },
    /// Generated records; the generator's partitions are the topic's.
    Generated(GeneratorConfig),
}

impl ProduceArgs {
    pub fn into_config(self) -> Result<ProduceConfig, String> {
        let (options, topic) = self.kafka.options("produce")?;
        if self.kafka.dead_letter_topic.is_some() {
            return Err("--dead-letter-topic is an option of run, not produce".into());
        }
        if self.partitions == Some(0) {
            return Err("--partitions must be at least 1".into());
        }
        if self.rate == Some(0) {
            return Err("--rate must be at least 1".into());
        }
        if !(1..=MAX_HOSTS).contains(&self.hosts) {
            return Err(format!("--hosts must be from 1 to {MAX_HOSTS}"));
        }
        let what = match self.path {
            Some(path) => {
                if self.fast {
                    return Err("--fast is for generated records, not --path".into());
                }
                ProduceWhat::File {
                    path,
                    rate: self.rate,
                    count: self.count,
                }
            }
            None => ProduceWhat::Generated(GeneratorConfig {
                seed: self.seed,
                // Set to the topic's partition count once it is known.
                partitions: 1,
                rate: self.rate.unwrap_or(5_000),
                pace: if self.fast {
                    Pace::Fast
                } else {
                    Pace::Realtime
                },
                start_ms: self.start_ms.unwrap_or_else(now_ms),
                count: self.count,
                hosts: self.hosts,
                ..GeneratorConfig::default()
            }),
        };
        Ok(ProduceConfig {
            options,
            topic,
            create_partitions: self.partitions,
            format: self.format.into(),
            what,
        })
    }
}

/// Options of the embedded generator.
#[derive(Debug, Args)]
pub struct GeneratorArgs {
    /// Generated events per second of event time, over all partitions.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 5_000,
        env = "FLOWSIGHT_RATE"
    )]
    pub rate: u64,
    /// Realtime (event time follows the wall clock) or fast (simulated time).
    #[arg(long, value_enum, default_value = "realtime", env = "FLOWSIGHT_PACE")]
    pub pace: PaceArg,
    /// Seed of the synthetic network.
    #[arg(long, value_name = "SEED", default_value_t = 1, env = "FLOWSIGHT_SEED")]
    pub seed: u64,
    /// Generator partitions (spread over all workers of all processes).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        env = "FLOWSIGHT_PARTITIONS"
    )]
    pub partitions: u32,
    /// Stop after this many events in total [default: endless].
    #[arg(long, value_name = "N", env = "FLOWSIGHT_COUNT")]
    pub count: Option<u64>,
    /// Client hosts in the synthetic network.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2_000,
        env = "FLOWSIGHT_HOSTS"
    )]
    pub hosts: u32,
    /// Event time of the first generated event, ms since epoch [default: now].
    #[arg(long, value_name = "MS", env = "FLOWSIGHT_START_MS")]
    pub start_ms: Option<u64>,
}

/// The generator's network model supports up to this many client hosts.
const MAX_HOSTS: u32 = 6_000_000;
/// Generator partitions beyond this only cost memory.
const MAX_PARTITIONS: u32 = 4096;

/// Parses `500ms`, `1s`, `5m`, `2h` into milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    flowsight_queries::parse_duration_ms(s).map_err(|e| e.to_string())
}

/// Everything `flowsight run` needs, validated.
#[derive(Debug)]
pub struct RunConfig {
    pub engine: EngineConfig,
    pub http: SocketAddr,
    pub subscriptions: SubscriptionSettings,
}

impl RunArgs {
    /// Turns the arguments into a validated config; the error is a message for the user.
    pub fn into_config(self) -> Result<RunConfig, String> {
        let time = TimeModel::new(self.tick).map_err(|e| format!("--tick: {e}"))?;
        if self.idle_timeout == 0 {
            // Zero would make every partition idle at once and the lateness meaningless.
            return Err("--idle-timeout must be at least 1ms".into());
        }
        if self.source != SourceKind::Kafka && self.kafka.given_for_source() {
            return Err("--topic and --dead-letter-topic are for --source kafka".into());
        }
        if self.source != SourceKind::Kafka && self.alerts_topic.is_none() && self.kafka.given() {
            return Err(
                "--brokers and --kafka-option are for --source kafka or --alerts-topic".into(),
            );
        }
        let settings = match &self.config {
            Some(path) => crate::config_file::load(path)?,
            None => Default::default(),
        };
        let windows = match (&self.windows, &settings.windows) {
            (Some(list), _) => {
                Windows::parse(list, &time).map_err(|e| format!("--windows: {e}"))?
            }
            (None, Some(list)) => Windows::parse(list, &time)
                .map_err(|e| format!("windows in the --config file: {e}"))?,
            (None, None) => Windows::parse(DEFAULT_WINDOWS, &time)
                .map_err(|e| format!("--windows {DEFAULT_WINDOWS} with --tick: {e}"))?,
        };
        let analysis = settings.analysis;
        let mut segments = settings.segments;
        if let Some(degree) = self.hub_degree {
            segments.hub_degree = degree;
        }
        if let Some(connections) = self.min_edge_connections {
            segments.min_edge_connections = connections;
        }
        let alerts = match &self.alerts_topic {
            Some(topic) if topic.trim().is_empty() => {
                return Err("--alerts-topic must not be empty".into())
            }
            Some(topic) => {
                let brokers = self
                    .kafka
                    .brokers
                    .clone()
                    .ok_or("--alerts-topic needs --brokers HOST:PORT")?;
                let options = KafkaOptions::new(brokers)
                    .with_extra(self.kafka.kafka_options.iter().map(String::as_str))
                    .map_err(|e| e.to_string())?;
                if self.kafka.topic.as_deref() == Some(topic.as_str()) {
                    return Err("--alerts-topic must differ from --topic".into());
                }
                Some(AlertsConfig {
                    options,
                    topic: topic.clone(),
                })
            }
            None => None,
        };
        let source = match self.source {
            SourceKind::Kafka => {
                if self.path.is_some() {
                    return Err("--path is only for --source file".into());
                }
                let (options, topic) = self.kafka.options("--source kafka")?;
                let dead_letter_topic = self
                    .kafka
                    .dead_letter_topic
                    .clone()
                    .unwrap_or_else(|| default_dead_letter_topic(&topic));
                if dead_letter_topic == topic {
                    return Err("--dead-letter-topic must differ from --topic".into());
                }
                SourceConfig::Kafka(KafkaSourceConfig {
                    options,
                    topic,
                    format: self.format.into(),
                    dead_letter_topic,
                })
            }
            SourceKind::Generator => {
                if self.path.is_some() {
                    return Err("--path is only for --source file".into());
                }
                let g = &self.generator;
                if g.rate == 0 {
                    return Err("--rate must be at least 1".into());
                }
                if g.partitions == 0 {
                    return Err("--partitions must be at least 1".into());
                }
                if !(1..=MAX_HOSTS).contains(&g.hosts) {
                    return Err(format!("--hosts must be from 1 to {MAX_HOSTS}"));
                }
                if g.partitions > MAX_PARTITIONS {
                    return Err(format!("--partitions must be at most {MAX_PARTITIONS}"));
                }
                let start_ms = g.start_ms.unwrap_or_else(now_ms);
                SourceConfig::Generator(GeneratorConfig {
                    seed: g.seed,
                    partitions: g.partitions,
                    rate: g.rate,
                    pace: match g.pace {
                        PaceArg::Realtime => Pace::Realtime,
                        PaceArg::Fast => Pace::Fast,
                        PaceArg::CatchUp => Pace::CatchUp,
                    },
                    start_ms,
                    count: g.count,
                    hosts: g.hosts,
                    ..GeneratorConfig::default()
                })
            }
            SourceKind::File => {
                let path = self
                    .path
                    .ok_or_else(|| "--source file needs --path FILE".to_string())?;
                SourceConfig::File {
                    path,
                    format: self.format.into(),
                }
            }
        };
        let cluster = match (&self.hostfile, self.process) {
            (Some(file), Some(process)) => {
                let addresses = hostfile::read(file).map_err(|e| e.to_string())?;
                ClusterConfig::Cluster {
                    workers: self.workers,
                    process,
                    addresses,
                }
            }
            _ => ClusterConfig::Single {
                workers: self.workers,
            },
        };
        let http = match self.http {
            Some(addr) => addr,
            None => {
                let port = 8080u16
                    .checked_add(cluster.process() as u16)
                    .ok_or("--process is too large to derive an HTTP port; give --http")?;
                SocketAddr::from(([127, 0, 0, 1], port))
            }
        };
        let engine = EngineConfig {
            time,
            lateness: self.lateness,
            idle_timeout: Duration::from_millis(self.idle_timeout),
            max_ahead: self.max_ahead,
            status_patience: Duration::from_millis(self.status_patience),
            windows,
            source,
            cluster,
            state_dir: Some(self.state_dir),
            risk_views: !self.no_risk_views,
            analysis,
            alerts,
            segment_views: !self.no_segment_views,
            segments,
            queries: QueryLimits {
                enabled: !self.no_queries,
                max_queries: usize::try_from(self.max_queries).unwrap_or(usize::MAX),
                max_groups: self.max_query_groups,
            },
        };
        engine.validate().map_err(|e| e.to_string())?;
        let queue = usize::try_from(self.subscription_queue).unwrap_or(usize::MAX);
        let history = usize::try_from(self.subscription_history).unwrap_or(usize::MAX);
        if history < queue {
            return Err(format!(
                "--subscription-history ({history}) must be at least --subscription-queue \
                 ({queue}): a client may be as far behind as the queue allows"
            ));
        }
        let subscriptions = SubscriptionSettings {
            queue,
            history,
            ..SubscriptionSettings::default()
        };
        Ok(RunConfig {
            engine,
            http,
            subscriptions,
        })
    }
}
