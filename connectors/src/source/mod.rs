//! Transports: the [`EventPartition`] trait the engine polls, and its file implementation.
//! (The generator, a source too, lives in its own module.)

mod file;
mod lines;

use crate::dead_letter::DeadLetter;
use flowscope_events::Event;

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

    /// The next offset this partition will read (for status pages).
    fn next_offset(&self) -> u64;
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
