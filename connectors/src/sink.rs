//! [`DeadLetterSink`]: where dead letters go besides the engine's own log of recent ones
//! (the Kafka dead-letter topic, [`crate::kafka::KafkaDeadLetters`]).

use std::time::Duration;

use crate::dead_letter::DeadLetter;

/// How many dead letters a sink has delivered, and how many it had to keep on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SinkCounts {
    /// Letters the destination confirmed it received.
    pub delivered: u64,
    /// Letters it could not deliver, written to a file on disk instead.
    pub kept_on_disk: u64,
}

/// A destination for dead letters, shared by every worker of a process.
pub trait DeadLetterSink: Send + Sync {
    /// Queues one letter; never drops it (an undeliverable letter is kept on disk).
    fn send(&self, letter: &DeadLetter);
    /// Waits until every letter sent so far has been delivered or kept on disk.
    fn flush(&self, timeout: Duration) -> Result<(), String>;
    /// The sink's counts since it was created.
    fn counts(&self) -> SinkCounts;
}
