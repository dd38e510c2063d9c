//! Transports: the [`EventPartition`] trait the engine polls, and its file implementation.
//! (The generator, a source too, lives in its own module.)

mod file;
mod lines;

use crate::dead_letter::DeadLetter;
use flowsight_events::Event;

pub use file::{FilePartition, SourceError, IO_ERROR_REASON};

/// One partition of a source, polled by the engine's source operator on one worker.
pub trait EventPartition: Send {
    /// Appends up to `max` decoded events to `events` and dead letters to `dead`; never
    /// blocks for long. Records appended by the call that returns
    /// [`PollStatus::Finished`] are as valid as any others.
    fn poll(
        &mut self,
        max: usize,
        events: &mut Vec<Event>,
        dead: &mut Vec<DeadLetter>,
    ) -> PollStatus;

    /// The next offset this partition will read (for status pages and checkpoints).
    fn next_offset(&self) -> u64;

    /// The partition's end offset as the broker last reported it, if known (for the lag).
    fn end_offset(&self) -> Option<u64> {
        None
    }

    /// Asks the partition to call `wake` when records arrive after a poll found none, so
    /// that the engine need not poll on a timer (Kafka's partition queues can). Sources
    /// that cannot ignore it and are polled on a short timer.
    fn on_ready(&mut self, wake: std::sync::Arc<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }

    /// Whether the last poll that found nothing had reached the partition's end, rather
    /// than waiting for records on their way (a fetch in flight). Only a partition at its
    /// end can turn idle and stop holding the watermark back.
    fn at_end(&self) -> bool {
        true
    }

    /// Makes [`poll`](EventPartition::poll) give no record at or past `offset` until
    /// lifted with `None`; once it is reached, [`next_offset`](EventPartition::next_offset)
    /// is at least `offset`. The engine uses it to tell records it replays (already
    /// counted before a restart) from new ones. Sources that are never resumed ignore it.
    fn stop_at(&mut self, offset: Option<u64>) {
        let _ = offset;
    }

    /// Stops (`true`) or resumes fetching ahead of [`poll`](EventPartition::poll), while the
    /// engine waits for its views to catch up: a Kafka partition is paused at the consumer,
    /// so that nothing piles up in its client while it is not read. Sources that read only
    /// when polled ignore it.
    fn pause(&mut self, paused: bool) {
        let _ = paused;
    }
}

/// The partitions of one source that one worker reads. Kafka's may grow while running.
pub trait PartitionSource {
    /// The source's name in status pages.
    fn name(&self) -> &str;

    /// Partitions that are new since the last call (all of them, the first time), each
    /// with its number. Called at every activation of the source; cheap when nothing is due.
    fn discover(&mut self) -> Vec<(u32, Box<dyn EventPartition>)>;

    /// Serves background work (a client's callbacks) at every activation.
    fn service(&mut self) {}

    /// Whether partitions may still appear: a worker with none keeps waiting for them.
    fn may_grow(&self) -> bool {
        false
    }
}

/// A fixed set of partitions (a file, the generator).
pub struct FixedPartitions {
    name: String,
    partitions: Vec<(u32, Box<dyn EventPartition>)>,
}

impl FixedPartitions {
    /// A source called `name` whose partitions, each with its number, are all handed out
    /// by the first [`discover`](PartitionSource::discover).
    pub fn new(name: impl Into<String>, partitions: Vec<(u32, Box<dyn EventPartition>)>) -> Self {
        FixedPartitions {
            name: name.into(),
            partitions,
        }
    }
}

impl PartitionSource for FixedPartitions {
    fn name(&self) -> &str {
        &self.name
    }

    fn discover(&mut self) -> Vec<(u32, Box<dyn EventPartition>)> {
        std::mem::take(&mut self.partitions)
    }
}

/// What a partition expects after a [`poll`](EventPartition::poll).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// More may be available right away.
    Ready,
    /// Nothing is available now; poll again later.
    Pending,
    /// The partition has ended and will never produce again.
    Finished,
}
