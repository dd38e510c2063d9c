//! The time model of docs/design.md §3: event-time ticks, watermarks, idle partitions.
//!
//! A timely time in flowsight *is* an `as_of`: the collection at time `T` holds exactly the
//! records with `ts < T` that had arrived by then. A record with timestamp `ts` therefore
//! first belongs at `floor(ts) + tick` (its *own time*), and a record that arrives after
//! the frontier has passed its own time enters at the frontier instead (it is *late*).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

pub use flowsight_events::Millis;

/// The error for a time configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeModelError(pub String);

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

    /// The tick length in ms: the step between consecutive timely times (`--tick`).
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
    /// Since when every poll has found nothing; `None` while the partition is delivering.
    /// Idleness is judged from this, not from the time since the last record, so that a
    /// worker that could not poll for a while does not mistake a backlog for silence.
    quiet_since: Option<Instant>,
}

/// What one worker's partitions say about the watermark, shared with every other worker
/// so that the idle rule of docs/design.md §3 holds for the source as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkReport {
    /// Minimum over the worker's non-idle partitions of `max ts − lateness`.
    pub active: Option<Millis>,
    /// A non-idle partition has produced nothing yet: the watermark cannot be known.
    pub unknown: bool,
    /// The largest timestamp the worker has seen in any partition.
    pub max_seen: Option<Millis>,
    /// The latest timely time the worker's source placed a record at. A late record is
    /// placed at the frontier; once all input is idle the frontier moves past this too,
    /// so that it becomes visible.
    #[serde(default)]
    pub placed: Option<Millis>,
}

impl WatermarkReport {
    /// The watermark of a whole source from every worker's report: the least active
    /// watermark; while nothing is active, past the largest timestamp seen anywhere (at the
    /// next tick boundary, so the tick holding that record becomes complete) and past the
    /// latest time a record was placed at (a late record placed at the frontier). `None` while
    /// it cannot be known (a worker has not reported, or has an active partition without data).
    pub fn combine<'a>(
        reports: impl IntoIterator<Item = Option<&'a WatermarkReport>>,
        time: &TimeModel,
    ) -> Option<Millis> {
        let mut active: Option<Millis> = None;
        let mut max_seen: Option<Millis> = None;
        let mut placed: Option<Millis> = None;
        for report in reports {
            let report = report?;
            if report.unknown {
                return None;
            }
            if let Some(a) = report.active {
                active = Some(active.map_or(a, |m| m.min(a)));
            }
            if let Some(m) = report.max_seen {
                max_seen = Some(max_seen.map_or(m, |x| x.max(m)));
            }
            if let Some(p) = report.placed {
                placed = Some(placed.map_or(p, |x| x.max(p)));
            }
        }
        active.or_else(|| {
            let past_seen = max_seen.map(|m| time.next_boundary(m));
            // A watermark of `placed` gives a frontier past it.
            match (past_seen, placed) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        })
    }
}

/// Tracks one worker's partitions of a source: largest timestamps and idleness.
///
/// The watermark is the minimum over partitions of `max ts seen − lateness`; a partition
/// whose polls have found nothing for `idle_timeout` stops holding it back, and when every
/// partition of the source (on every worker) is idle it moves past the largest timestamp
/// seen, so that every record is visible (see [`WatermarkReport::combine`]).
#[derive(Clone, Debug)]
pub struct WatermarkTracker {
    lateness: Millis,
    idle_timeout: Duration,
    partitions: Vec<PartitionClock>,
}

impl WatermarkTracker {
    /// A tracker for `partitions` partitions that have produced nothing yet, allowing
    /// `lateness` ms; a partition whose polls find nothing for `idle_timeout` (wall clock)
    /// stops holding the watermark back.
    pub fn new(partitions: usize, lateness: Millis, idle_timeout: Duration) -> Self {
        WatermarkTracker {
            lateness,
            idle_timeout,
            partitions: vec![
                PartitionClock {
                    max_ts: None,
                    quiet_since: None,
                };
                partitions
            ],
        }
    }

    /// Starts tracking one more partition (a partition that appeared in a running source);
    /// returns its index.
    pub fn add_partition(&mut self) -> usize {
        self.partitions.push(PartitionClock {
            max_ts: None,
            quiet_since: None,
        });
        self.partitions.len() - 1
    }

    /// Records a record with timestamp `ts` from `partition`. Returns true when the
    /// watermark may have moved to a later tick, so that callers recompute it only then:
    /// the partition's largest timestamp, less the lateness, entered a new tick.
    pub fn observe(&mut self, partition: usize, ts: Millis, time: &TimeModel) -> bool {
        let lateness = self.lateness;
        let Some(clock) = self.partitions.get_mut(partition) else {
            return false;
        };
        clock.quiet_since = None;
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

    /// Records the outcome of a poll of `partition`: whether it had (or may have) more
    /// to give right away, or found nothing.
    pub fn polled(&mut self, partition: usize, delivering: bool, now: Instant) {
        if let Some(clock) = self.partitions.get_mut(partition) {
            if delivering {
                clock.quiet_since = None;
            } else if clock.quiet_since.is_none() {
                clock.quiet_since = Some(now);
            }
        }
    }

    /// The largest timestamp seen by `partition`.
    pub fn max_ts(&self, partition: usize) -> Option<Millis> {
        self.partitions.get(partition).and_then(|c| c.max_ts)
    }

    /// Whether the polls of `partition` have found nothing for the idle timeout.
    pub fn is_idle(&self, partition: usize, now: Instant) -> bool {
        self.partitions
            .get(partition)
            .and_then(|c| c.quiet_since)
            .is_some_and(|since| now.saturating_duration_since(since) >= self.idle_timeout)
    }

    /// This worker's part of the source's watermark.
    pub fn report(&self, now: Instant) -> WatermarkReport {
        let mut report = WatermarkReport::default();
        for (index, clock) in self.partitions.iter().enumerate() {
            if let Some(m) = clock.max_ts {
                report.max_seen = Some(report.max_seen.map_or(m, |x| x.max(m)));
            }
            if self.is_idle(index, now) {
                continue;
            }
            match clock.max_ts {
                None => report.unknown = true,
                Some(max) => {
                    let held = max.saturating_sub(self.lateness);
                    report.active = Some(report.active.map_or(held, |a| a.min(held)));
                }
            }
        }
        report
    }

    /// The watermark of this worker's partitions alone (one worker, or tests).
    pub fn watermark(&self, time: &TimeModel, now: Instant) -> Option<Millis> {
        WatermarkReport::combine([Some(&self.report(now))], time)
    }

    /// How long until some quiet partition turns idle, if any; the source should look
    /// again then even when no data arrives.
    pub fn next_idle_check(&self, now: Instant) -> Option<Duration> {
        self.partitions
            .iter()
            .filter_map(|c| c.quiet_since)
            .map(|since| (since + self.idle_timeout).saturating_duration_since(now))
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
        let mut w = WatermarkTracker::new(2, 5000, Duration::from_secs(1));
        assert_eq!(w.watermark(&t, start), None);
        w.observe(0, 20_000, &t);
        // partition 1 has produced nothing and is not idle: hold.
        assert_eq!(w.watermark(&t, start), None);
        w.observe(1, 12_000, &t);
        assert_eq!(w.watermark(&t, start), Some(7_000));
        // partition 1 goes quiet; a second later it no longer holds the watermark.
        w.polled(1, false, start);
        let later = start + Duration::from_millis(1500);
        w.observe(0, 30_000, &t);
        assert_eq!(w.watermark(&t, later), Some(25_000));
        // all quiet for the idle timeout: past the largest ts, at a tick boundary.
        w.polled(0, false, later);
        let much_later = later + Duration::from_secs(2);
        assert_eq!(w.watermark(&t, much_later), Some(31_000));
    }

    #[test]
    fn a_backlog_is_not_silence() {
        let t = TimeModel::new(1000).unwrap();
        let start = Instant::now();
        let mut w = WatermarkTracker::new(2, 0, Duration::from_secs(1));
        w.observe(0, 10_000, &t);
        w.observe(1, 5_000, &t);
        // partition 1 still had data when last polled; a long pause is not idleness.
        w.polled(1, true, start);
        assert_eq!(
            w.watermark(&t, start + Duration::from_secs(60)),
            Some(5_000)
        );
    }

    #[test]
    fn an_idle_worker_follows_the_others() {
        let t = TimeModel::new(1000).unwrap();
        let busy = WatermarkReport {
            active: Some(900_000),
            unknown: false,
            max_seen: Some(905_000),
            placed: None,
        };
        let idle = WatermarkReport {
            active: None,
            unknown: false,
            max_seen: Some(100_000),
            placed: None,
        };
        assert_eq!(
            WatermarkReport::combine([Some(&busy), Some(&idle)], &t),
            Some(900_000)
        );
        let idle_too = WatermarkReport {
            active: None,
            ..busy
        };
        assert_eq!(
            WatermarkReport::combine([Some(&idle_too), Some(&idle)], &t),
            Some(906_000)
        );
        assert_eq!(WatermarkReport::combine([Some(&busy), None], &t), None);
        let starting = WatermarkReport {
            unknown: true,
            ..idle
        };
        assert_eq!(
            WatermarkReport::combine([Some(&busy), Some(&starting)], &t),
            None
        );
        // A worker without partitions reports nothing and holds nothing back.
        assert_eq!(
            WatermarkReport::combine([Some(&busy), Some(&WatermarkReport::default())], &t),
            Some(900_000)
        );
    }

    /// Regression: records that arrived late once all input was idle were placed at the
    /// frontier, which then never moved past them, so they were counted but never visible.
    #[test]
    fn once_idle_the_watermark_passes_records_placed_late_at_the_frontier() {
        let t = TimeModel::new(1000).unwrap();
        let idle = WatermarkReport {
            active: None,
            unknown: false,
            max_seen: Some(109_999),
            placed: Some(111_000),
        };
        let watermark = WatermarkReport::combine([Some(&idle)], &t).unwrap();
        assert!(t.frontier_for_watermark(watermark) > 111_000);
        // While a partition is active, the watermark follows it alone.
        let busy = WatermarkReport {
            active: Some(50_000),
            ..idle
        };
        assert_eq!(
            WatermarkReport::combine([Some(&busy), Some(&idle)], &t),
            Some(50_000)
        );
    }
}
