//! The time model of DESIGN §3: event-time ticks, watermarks, idle partitions.
//!
//! A timely time in flowscope *is* an `as_of`: the collection at time `T` holds exactly the
//! records with `ts < T` that had arrived by then. A record with timestamp `ts` therefore
//! first belongs at `floor(ts) + tick` (its *own time*), and a record that arrives after
//! the frontier has passed its own time enters at the frontier instead (it is *late*).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The error for a time configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeModelError(pub String);

impl std::fmt::Display for TimeModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimeModelError {}

/// Tick arithmetic: how event timestamps map to timely times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeModel {
    tick: Millis,
}

impl TimeModel {
    /// A model with the given tick (ms); the tick must be positive.
    pub fn new(tick: Millis) -> Result<Self, TimeModelError> {
        if tick == 0 {
            return Err(TimeModelError("the tick must be at least 1 ms".into()));
        }
        Ok(TimeModel { tick })
    }

    pub fn tick(&self) -> Millis {
        self.tick
    }

    /// The start of the tick that contains `ts`.
    pub fn floor(&self, ts: Millis) -> Millis {
        ts - ts % self.tick
    }

    /// The first tick boundary strictly after `ts`.
    pub fn next_boundary(&self, ts: Millis) -> Millis {
        self.floor(ts).saturating_add(self.tick)
    }

    /// The first `as_of` whose answer covers a record at `ts`: its own timely time.
    pub fn own_time(&self, ts: Millis) -> Millis {
        self.next_boundary(ts)
    }

    /// The timely frontier a source may advance to once its watermark is `watermark`:
    /// records with `ts >= watermark` still get their own time, earlier ones are late.
    pub fn frontier_for_watermark(&self, watermark: Millis) -> Millis {
        self.next_boundary(watermark)
    }

    /// Checks that a window length is a positive whole number of ticks, so that a window's
    /// edge never cuts a tick in two (which the pre-aggregation by tick relies on).
    pub fn check_window(&self, window: Millis) -> Result<(), TimeModelError> {
        if window == 0 || window % self.tick != 0 {
            return Err(TimeModelError(format!(
                "window of {window} ms is not a positive multiple of the tick ({} ms)",
                self.tick
            )));
        }
        Ok(())
    }
}

/// Per-partition event-time progress of one source on one worker.
#[derive(Clone, Debug)]
struct PartitionClock {
    max_ts: Option<Millis>,
    last_data: Instant,
}

/// Computes a source's watermark from its partitions (DESIGN §3).
///
/// The watermark is the minimum over partitions of `max ts seen − lateness`; a partition that
/// has had no new data for `idle_timeout` stops holding it back, and when every partition is
/// idle the watermark moves past the largest timestamp seen so that every record is visible.
#[derive(Clone, Debug)]
pub struct WatermarkTracker {
    lateness: Millis,
    idle_timeout: Duration,
    partitions: Vec<PartitionClock>,
}

impl WatermarkTracker {
    pub fn new(partitions: usize, lateness: Millis, idle_timeout: Duration, now: Instant) -> Self {
        WatermarkTracker {
            lateness,
            idle_timeout,
            partitions: vec![
                PartitionClock {
                    max_ts: None,
                    last_data: now,
                };
                partitions
            ],
        }
    }

    /// Records that `partition` produced a record with timestamp `ts` at `now`. Returns true
    /// when the watermark may have moved to a later tick, so that callers need to recompute
    /// it only then: the partition's largest timestamp, less the lateness, entered a new tick.
    pub fn observe(
        &mut self,
        partition: usize,
        ts: Millis,
        now: Instant,
        time: &TimeModel,
    ) -> bool {
        let lateness = self.lateness;
        let Some(clock) = self.partitions.get_mut(partition) else {
            return false;
        };
        clock.last_data = now;
        match clock.max_ts {
            Some(max) if max >= ts => false,
            Some(max) => {
                clock.max_ts = Some(ts);
                time.floor(ts.saturating_sub(lateness)) > time.floor(max.saturating_sub(lateness))
            }
            None => {
                clock.max_ts = Some(ts);
                true
            }
        }
    }

    /// The largest timestamp seen by `partition`.
    pub fn max_ts(&self, partition: usize) -> Option<Millis> {
        self.partitions.get(partition).and_then(|c| c.max_ts)
    }

    /// Whether `partition` has been without data for the idle timeout.
    pub fn is_idle(&self, partition: usize, now: Instant) -> bool {
        self.partitions
            .get(partition)
            .is_some_and(|c| now.saturating_duration_since(c.last_data) >= self.idle_timeout)
    }

    /// The current watermark, or `None` while it cannot be known (a partition that is not
    /// idle has not produced anything yet, or nothing was ever seen).
    pub fn watermark(&self, time: &TimeModel, now: Instant) -> Option<Millis> {
        let mut active_min: Option<Millis> = None;
        let mut any_active = false;
        for (index, clock) in self.partitions.iter().enumerate() {
            if self.is_idle(index, now) {
                continue;
            }
            any_active = true;
            let held = clock.max_ts?.saturating_sub(self.lateness);
            active_min = Some(active_min.map_or(held, |m| m.min(held)));
        }
        if any_active {
            return active_min;
        }
        // Everything is idle: move past the largest timestamp seen, to the next tick boundary,
        // so that the tick holding that record becomes complete.
        let max_seen = self.partitions.iter().filter_map(|c| c.max_ts).max()?;
        Some(time.next_boundary(max_seen))
    }

    /// How long until some partition that is active now turns idle, if any; the source should
    /// look again then even when no data arrives.
    pub fn next_idle_check(&self, now: Instant) -> Option<Duration> {
        self.partitions
            .iter()
            .map(|c| (c.last_data + self.idle_timeout).saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_time_is_the_first_covering_as_of() {
        let t = TimeModel::new(1000).unwrap();
        assert_eq!(t.own_time(0), 1000);
        assert_eq!(t.own_time(999), 1000);
        assert_eq!(t.own_time(1000), 2000);
        assert_eq!(t.frontier_for_watermark(1500), 2000);
        assert!(TimeModel::new(0).is_err());
        assert!(t.check_window(1500).is_err());
        assert!(t.check_window(60_000).is_ok());
    }

    #[test]
    fn watermark_follows_slowest_active_partition_and_idles_past_max() {
        let t = TimeModel::new(1000).unwrap();
        let start = Instant::now();
        let mut w = WatermarkTracker::new(2, 5000, Duration::from_secs(1), start);
        assert_eq!(w.watermark(&t, start), None);
        w.observe(0, 20_000, start, &t);
        // partition 1 has produced nothing and is not idle yet: hold.
        assert_eq!(w.watermark(&t, start), None);
        w.observe(1, 12_000, start, &t);
        assert_eq!(w.watermark(&t, start), Some(7_000));
        let later = start + Duration::from_millis(1500);
        w.observe(0, 30_000, later, &t);
        // partition 1 is idle now: only partition 0 holds the watermark.
        assert_eq!(w.watermark(&t, later), Some(25_000));
        let much_later = later + Duration::from_secs(2);
        // all idle: past the largest ts, at a tick boundary.
        assert_eq!(w.watermark(&t, much_later), Some(31_000));
    }
}
