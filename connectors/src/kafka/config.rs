//! The one place where every librdkafka configuration is built: the engine's consumers,
//! the dead-letter producer, `flowsight produce` and the admin client. Each option the
//! engine sets says why; users add their own (SASL, TLS, timeouts) with `--kafka-option`,
//! except the few the engine must own to keep its guarantees.

use std::fmt;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Options the engine sets itself and a user may not override: they are what lets the
/// engine assign partitions and own its offsets (docs/design.md §9).
const OWNED_BY_THE_ENGINE: &[(&str, &str)] = &[
    (
        "enable.auto.commit",
        "the engine keeps its own offsets in its checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "the engine keeps its own offsets in its checkpoint",
    ),
    (
        "group.id",
        "the engine assigns partitions itself, without a consumer group",
    ),
    (
        "enable.partition.eof",
        "the engine needs end-of-partition events to know when a partition is idle",
    ),
    (
        "auto.offset.reset",
        "the engine decides where to start from its checkpoint",
    ),
    ("bootstrap.servers", "use --brokers"),
    (
        "allow.auto.create.topics",
        "the engine never lets a lookup create a topic: a mistyped name must be refused",
    ),
    (
        "statistics.interval.ms",
        "the engine reads each partition's end offset from librdkafka's statistics",
    ),
];

/// How to reach the brokers, with the user's extra librdkafka options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaOptions {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Extra librdkafka options, applied after the engine's own (e.g.
    /// `security.protocol=SASL_SSL`).
    pub extra: Vec<(String, String)>,
}

/// librdkafka refused the options when a client was built from them.
#[derive(Debug, thiserror::Error)]
#[error("invalid Kafka {client} options: {source}")]
pub struct InvalidKafkaOptions {
    /// `consumer` or `producer`.
    pub client: &'static str,
    /// What librdkafka reported when it refused them.
    pub source: rdkafka::error::KafkaError,
}

/// An extra option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaOptionError {
    /// The option, as given, has no `=` or an empty key.
    #[error("--kafka-option {0:?} is not of the form key=value")]
    NotKeyValue(String),
    /// The option is one the engine sets itself to keep its guarantees.
    #[error("--kafka-option {key} cannot be set: {why}")]
    OwnedByTheEngine {
        /// The librdkafka option name, e.g. `group.id`.
        key: String,
        /// Why the engine owns it, or which flag sets it instead.
        why: &'static str,
    },
}

impl KafkaOptions {
    /// Options for the brokers at `brokers` (`host:port[,host:port…]`), with no extras.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaOptions {
            brokers: brokers.into(),
            extra: Vec::new(),
        }
    }

    /// Parses `key=value` options as given on the command line, refusing the ones the
    /// engine owns.
    pub fn with_extra<'a>(
        mut self,
        options: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, KafkaOptionError> {
        for option in options {
            let (key, value) = option
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
                .ok_or_else(|| KafkaOptionError::NotKeyValue(option.to_string()))?;
            let key = key.trim();
            if let Some((_, why)) = OWNED_BY_THE_ENGINE.iter().find(|(owned, _)| *owned == key) {
                return Err(KafkaOptionError::OwnedByTheEngine {
                    key: key.to_string(),
                    why,
                });
            }
            self.extra.push((key.to_string(), value.to_string()));
        }
        Ok(self)
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // Names the engine's connections in the brokers' logs and quotas.
            .set("client.id", client_id)
            // librdkafka logs through its own callback; errors also reach our error
            // callback, so its debug chatter stays off.
            .set("log_level", "3")
            // A metadata request that names a missing topic must not create it (Apache
            // Kafka does by default, with one partition): a mistyped --topic is refused, and
            // topics are only created where the engine means to (the dead-letter topic,
            // `produce --partitions`). Brokers that create topics whatever the client asks
            // are handled by looking topics up without naming them (admin.rs).
            .set("allow.auto.create.topics", "false");
        config
    }

    fn with_user_options(&self, mut config: ClientConfig) -> ClientConfig {
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// A consumer for the partitions of one worker.
    pub fn consumer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            // librdkafka requires a group id even for assigned partitions; it is never
            // used to join a group (no `subscribe`) nor to commit (auto commit is off).
            .set("group.id", "flowsight-unused")
            // The engine's checkpoint is its only record of what it consumed.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A partition at its end says so: that is how an idle partition stops holding
            // the watermark back without waiting on a timer alone.
            .set("enable.partition.eof", "true")
            // An offset that the broker no longer has (deleted by retention) starts at the
            // earliest one still there rather than skipping to the end.
            .set("auto.offset.reset", "earliest")
            // The end offset (high watermark) of each partition, for the lag, comes from
            // the fetch responses as librdkafka's statistics report them; once a second.
            .set("statistics.interval.ms", "1000")
            // Some brokers (Tansu among them) hold a fetch for the whole wait even when
            // records are there; a short wait keeps reading fast on them, and costs at
            // most a few empty fetches per second on an idle Kafka.
            .set("fetch.wait.max.ms", "50")
            // Prefetch per partition, bounded: when the dataflow falls behind the engine
            // stops polling and this is all that waits in memory.
            .set("queued.max.messages.kbytes", "16384")
            .set("fetch.max.bytes", "16777216")
            // New partitions of the topic are noticed within this interval.
            .set("topic.metadata.refresh.interval.ms", "10000");
        self.with_user_options(config)
    }

    /// The producer of dead letters and of `flowsight produce`.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            // Every record acknowledged by all in-sync replicas before it counts as
            // written: a dead letter must not be lost after the engine moved past it.
            .set("acks", "all")
            // Retries cannot duplicate or reorder records.
            .set("enable.idempotence", "true")
            // Batches fill for a few milliseconds: throughput over latency for a sink.
            .set("linger.ms", "5")
            // How long a record may wait for delivery before it is reported as failed
            // (then the dead-letter sink keeps it on disk).
            .set("message.timeout.ms", "30000");
        self.with_user_options(config)
    }

    /// The admin client that looks up and creates topics.
    pub fn admin_config(&self, client_id: &str) -> ClientConfig {
        let config = self.base(client_id);
        self.with_user_options(config)
    }
}

impl KafkaOptions {
    /// Builds a consumer and a producer from these options and drops them: librdkafka
    /// checks every option when a client is created, so a misspelt or invalid extra option
    /// is reported before anything starts.
    pub fn check(&self) -> Result<(), InvalidKafkaOptions> {
        self.consumer_config("flowsight-check")
            .create::<rdkafka::consumer::BaseConsumer>()
            .map_err(|source| InvalidKafkaOptions {
                client: "consumer",
                source,
            })?;
        self.producer_config("flowsight-check")
            .create::<rdkafka::producer::BaseProducer>()
            .map_err(|source| InvalidKafkaOptions {
                client: "producer",
                source,
            })?;
        Ok(())
    }
}

impl fmt::Display for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.brokers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_options_come_last_and_override_the_engines_defaults() {
        let options = KafkaOptions::new("b:9092")
            .with_extra(["security.protocol=SASL_SSL", "linger.ms=50"])
            .unwrap();
        let config = options.producer_config("p");
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn options_the_engine_owns_are_refused_with_the_reason() {
        let err = KafkaOptions::new("b:9092")
            .with_extra(["enable.auto.commit=true"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--kafka-option enable.auto.commit cannot be set: the engine keeps its own offsets in its checkpoint"
        );
        assert!(matches!(
            KafkaOptions::new("b").with_extra(["linger.ms"]),
            Err(KafkaOptionError::NotKeyValue(_))
        ));
        assert!(matches!(
            KafkaOptions::new("b").with_extra(["=5"]),
            Err(KafkaOptionError::NotKeyValue(_))
        ));
    }

    #[test]
    fn consumers_never_commit_nor_join_a_group() {
        let config = KafkaOptions::new("b").consumer_config("c");
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.partition.eof"), Some("true"));
    }
}
