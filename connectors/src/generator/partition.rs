//! [`GeneratorPartition`]: one partition of the generator's stream, with its own seeded
//! RNG, its schedule and its pacing.

use super::schedule::Schedule;
use super::topology::Topology;
use super::traffic::connection;
use super::{GeneratorConfig, Pace};
use crate::dead_letter::DeadLetter;
use crate::source::{EventPartition, PollStatus};
use flowsight_events::{Event, Millis};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

/// One partition of the generator. Its events are a function of the config and the
/// partition number alone.
#[derive(Debug)]
pub struct GeneratorPartition {
    topology: Topology,
    schedule: Schedule,
    rng: Xoshiro256PlusPlus,
    /// Sequence number of the next event.
    next_seq: u64,
    disorder_ms: u64,
    pace: Pace,
    /// When event time `start_ms` was, on the wall clock (for [`Pace::Realtime`]).
    started: Instant,
    /// The wall clock at `started`, ms since the epoch (for [`Pace::CatchUp`]).
    started_wall_ms: Millis,
}

impl GeneratorPartition {
    /// Partition `partition` of the stream `config` describes; a partition number the
    /// config does not have yields nothing.
    pub fn new(config: &GeneratorConfig, partition: u32) -> GeneratorPartition {
        // Each partition draws from a generator of its own, seeded from (seed, partition):
        // `seed_from_u64` spreads the two through SplitMix64. Xoshiro rather than a
        // cryptographic generator, because drawing numbers was a tenth of the pipeline's time.
        let rng = Xoshiro256PlusPlus::seed_from_u64(
            config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(partition),
        );
        GeneratorPartition {
            topology: Topology::new(config.seed, config.hosts),
            schedule: Schedule::new(config, partition),
            rng,
            next_seq: 0,
            disorder_ms: config.disorder_ms,
            pace: config.pace,
            started: Instant::now(),
            started_wall_ms: flowsight_events::now_ms(),
        }
    }

    /// The next event regardless of pacing, or `None` once the partition has produced
    /// its share.
    pub fn next_event(&mut self) -> Option<Event> {
        let due = self.schedule.due_ms(self.next_seq)?;
        self.next_seq = self.next_seq.checked_add(1)?;
        let lag = self.rng.gen_range(0..=self.disorder_ms);
        Some(connection(
            &mut self.rng,
            &self.topology,
            due.saturating_sub(lag),
        ))
    }

    /// [`EventPartition::poll`] as if the wall clock read `now`.
    pub(crate) fn poll_at(
        &mut self,
        now: Instant,
        max: usize,
        events: &mut Vec<Event>,
    ) -> PollStatus {
        let mut produced = 0;
        while produced < max && self.status_at(now) == PollStatus::Ready {
            match self.next_event() {
                Some(event) => events.push(event),
                None => break,
            }
            produced += 1;
        }
        self.status_at(now)
    }

    fn status_at(&self, now: Instant) -> PollStatus {
        let Some(due) = self.schedule.due_ms(self.next_seq) else {
            return PollStatus::Finished;
        };
        let elapsed_ms = now.saturating_duration_since(self.started).as_millis();
        match self.pace {
            Pace::Realtime if u128::from(self.schedule.offset_ms(due)) > elapsed_ms => {
                PollStatus::Pending
            }
            Pace::CatchUp if u128::from(due) > u128::from(self.started_wall_ms) + elapsed_ms => {
                PollStatus::Pending
            }
            _ => PollStatus::Ready,
        }
    }
}

impl EventPartition for GeneratorPartition {
    fn poll(
        &mut self,
        max: usize,
        events: &mut Vec<Event>,
        _dead: &mut Vec<DeadLetter>,
    ) -> PollStatus {
        self.poll_at(Instant::now(), max, events)
    }

    fn next_offset(&self) -> u64 {
        self.next_seq
    }
}

impl Iterator for GeneratorPartition {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn realtime(partitions: u32, rate: u64) -> GeneratorConfig {
        GeneratorConfig {
            partitions,
            rate,
            pace: Pace::Realtime,
            count: Some(100),
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn realtime_releases_events_as_the_clock_passes_them() {
        // 10 events per second in one partition: one every 100 ms.
        let mut partition = GeneratorPartition::new(&realtime(1, 10), 0);
        let start = partition.started;
        let mut events = Vec::new();
        assert_eq!(
            partition.poll_at(start, 100, &mut events),
            PollStatus::Pending
        );
        assert_eq!(events.len(), 1, "the first event is due at once");
        let later = start + Duration::from_millis(450);
        assert_eq!(
            partition.poll_at(later, 100, &mut events),
            PollStatus::Pending
        );
        assert_eq!(events.len(), 5);
        assert_eq!(
            partition.poll_at(later, 100, &mut events),
            PollStatus::Pending
        );
        assert_eq!(events.len(), 5, "nothing more until the clock moves");
        let end = start + Duration::from_secs(3600);
        assert_eq!(partition.poll_at(end, 10, &mut events), PollStatus::Ready);
        assert_eq!(events.len(), 15);
        assert_eq!(
            partition.poll_at(end, 1000, &mut events),
            PollStatus::Finished
        );
        assert_eq!(events.len(), 100);
        assert_eq!(partition.next_offset(), 100);
    }

    #[test]
    fn fast_ignores_the_clock() {
        let config = GeneratorConfig {
            pace: Pace::Fast,
            ..realtime(1, 10)
        };
        let mut partition = GeneratorPartition::new(&config, 0);
        let mut events = Vec::new();
        let start = partition.started;
        assert_eq!(partition.poll_at(start, 60, &mut events), PollStatus::Ready);
        assert_eq!(
            partition.poll_at(start, 60, &mut events),
            PollStatus::Finished
        );
        assert_eq!(events.len(), 100);
        assert_eq!(
            partition.poll_at(start, 60, &mut events),
            PollStatus::Finished
        );
        assert_eq!(
            partition.poll_at(start, 0, &mut events),
            PollStatus::Finished
        );
    }

    #[test]
    fn catch_up_is_fast_until_event_time_reaches_the_wall_clock() {
        // 10 events per second, starting 5 s before the partition is created: the first
        // 5 s of events are due at once, then one every 100 ms of wall clock.
        let now = flowsight_events::now_ms();
        let config = GeneratorConfig {
            pace: Pace::CatchUp,
            start_ms: now - 5_000,
            ..realtime(1, 10)
        };
        let mut partition = GeneratorPartition::new(&config, 0);
        let start = partition.started;
        let mut events = Vec::new();
        assert_eq!(
            partition.poll_at(start, 1_000, &mut events),
            PollStatus::Pending
        );
        // Due at `now − 5 s + k·100 ms ≤ started_wall_ms`: k ≤ 50 at least (the wall clock
        // may have ticked since `now` was read).
        assert!((51..=55).contains(&events.len()), "{}", events.len());
        let caught_up = events.len();
        let later = start + Duration::from_millis(1_000);
        partition.poll_at(later, 1_000, &mut events);
        assert_eq!(events.len(), caught_up + 10, "then wall-clock speed");
    }

    #[test]
    fn a_partition_beyond_the_config_is_empty() {
        let mut partition = GeneratorPartition::new(&realtime(2, 10), 2);
        assert_eq!(partition.next_event(), None);
    }
}
