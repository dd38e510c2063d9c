//! Kafka (docs/design.md §2, §9): the engine's source ([`KafkaSource`], partitions assigned per
//! worker, offsets owned by the engine), the dead-letter topic ([`KafkaDeadLetters`]), the
//! producer behind `flowsight produce` ([`EventProducer`]) and topic administration. Every
//! librdkafka configuration is built in [`config`].

mod admin;
mod config;
mod dead_letters;
mod produce;
mod source;

pub use admin::{ensure_topic, topic_partitions, TopicError};
pub use config::{InvalidKafkaOptions, KafkaOptionError, KafkaOptions};
pub use dead_letters::{headers as dead_letter_headers, KafkaDeadLetters};
pub use produce::{EventProducer, ProduceError};
/// The Kafka client's own error, which some of the errors above carry.
pub use rdkafka::error::KafkaError;
pub use source::{ConsumerError, KafkaPartition, KafkaSource};

/// The dead-letter topic of `topic` unless another is given: `<topic>.dead-letters`.
pub fn default_dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dead-letters")
}
