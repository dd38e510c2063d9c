//! When each event of a partition is due: partitions interleave so that together they
//! produce `rate` events per second of event time, and each gets its share of `count`.

use super::GeneratorConfig;
use crate::time::TS_LIMIT;
use flowsight_events::Millis;

#[derive(Debug)]
pub(crate) struct Schedule {
    start_ms: Millis,
    rate: u64,
    partitions: u32,
    partition: u32,
    /// Events this partition produces in all; `None` is endless.
    share: Option<u64>,
}

impl Schedule {
    pub(crate) fn new(config: &GeneratorConfig, partition: u32) -> Schedule {
        let partitions = config.partitions.max(1);
        // A partition the config does not have owns nothing.
        let share = if partition < partitions {
            config
                .count
                .map(|count| share_of(count, partitions, partition))
        } else {
            Some(0)
        };
        Schedule {
            start_ms: config.start_ms,
            rate: config.rate.max(1),
            partitions,
            partition,
            share,
        }
    }

    /// The scheduled event time of this partition's `seq`th event (from 0), or `None`
    /// once the partition has produced its share or time would pass [`TS_LIMIT`].
    ///
    /// Event `seq` of partition `p` is event `seq * partitions + p` of the whole stream,
    /// and the whole stream is spaced `1000 / rate` ms apart.
    pub(crate) fn due_ms(&self, seq: u64) -> Option<Millis> {
        if self.share.is_some_and(|share| seq >= share) {
            return None;
        }
        // In u128 nothing here can overflow: seq < 2^64, partitions < 2^32.
        let global = u128::from(seq) * u128::from(self.partitions) + u128::from(self.partition);
        let due = u128::from(self.start_ms) + global * 1000 / u128::from(self.rate);
        u64::try_from(due).ok().filter(|&due| due < TS_LIMIT)
    }

    /// Milliseconds from the start of event time to `due`.
    pub(crate) fn offset_ms(&self, due: Millis) -> u64 {
        due.saturating_sub(self.start_ms)
    }
}

/// Partition `partition`'s share of `count` events over `partitions` partitions.
pub(crate) fn share_of(count: u64, partitions: u32, partition: u32) -> u64 {
    let partitions = u64::from(partitions.max(1));
    count / partitions + u64::from(u64::from(partition) < count % partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for count in [0, 1, 3, 4, 5, 1001] {
            let shares: Vec<u64> = (0..4).map(|p| share_of(count, 4, p)).collect();
            assert_eq!(shares.iter().sum::<u64>(), count);
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
        assert_eq!(share_of(10, 4, 0), 3);
        assert_eq!(share_of(10, 4, 3), 2);
    }

    #[test]
    fn partitions_interleave_at_the_rate() {
        let config = GeneratorConfig {
            partitions: 4,
            rate: 8,
            start_ms: 1000,
            ..GeneratorConfig::default()
        };
        let p0 = Schedule::new(&config, 0);
        let p3 = Schedule::new(&config, 3);
        assert_eq!(p0.due_ms(0), Some(1000));
        assert_eq!(p0.due_ms(1), Some(1500));
        assert_eq!(p3.due_ms(0), Some(1375));
        assert_eq!(p3.due_ms(1), Some(1875));
    }

    #[test]
    fn ends_at_the_share_and_at_the_time_limit() {
        let config = GeneratorConfig {
            count: Some(5),
            partitions: 2,
            ..GeneratorConfig::default()
        };
        let p1 = Schedule::new(&config, 1);
        assert!(p1.due_ms(1).is_some());
        assert_eq!(p1.due_ms(2), None);
        assert_eq!(Schedule::new(&config, 2).due_ms(0), None);
        let late = GeneratorConfig {
            start_ms: TS_LIMIT - 1,
            rate: 1,
            ..GeneratorConfig::default()
        };
        assert!(Schedule::new(&late, 0).due_ms(0).is_some());
        assert_eq!(Schedule::new(&late, 0).due_ms(1), None);
        assert_eq!(Schedule::new(&late, 0).due_ms(u64::MAX), None);
    }
}
