//! The invariant restarts rest on: a replay that starts at
//! `PartitionCheckpoint::replay_from` reads again every record that is still visible at
//! the checkpoint's as_of or later, however out of order the partition is — checked
//! against a direct scan of the records, on random partitions and checkpoint moments.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use flowsight_engine::checkpoint::{PartitionCheckpoint, ReplayMarks};
use flowsight_operators::TimeModel;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Failing cases are kept in `proptest-regressions/` (tests run in the crate's directory),
/// to be committed.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/replay_marks.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// A partition: record `i` (offset `i`) has timestamp `ts[i]`.
fn partition() -> impl Strategy<Value = Vec<u64>> {
    // Mostly increasing with jitter, some records far behind, a few far ahead.
    prop::collection::vec((0u64..1_000, 0u64..100, prop::bool::weighted(0.05)), 1..400).prop_map(
        |steps| {
            let mut now = 1_000_000u64;
            steps
                .into_iter()
                .map(|(advance, jitter, outlier)| {
                    now += advance;
                    if outlier {
                        if jitter % 2 == 0 {
                            now.saturating_sub(jitter * 1_000)
                        } else {
                            now + jitter * 1_000
                        }
                    } else {
                        now.saturating_sub(jitter * 10)
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn a_replay_from_the_marks_reads_every_record_still_visible(
        ts in partition(),
        retention_ticks in 1u64..60,
        snapshot_every in 1usize..40,
        lateness in 0u64..5_000,
    ) {
        let time = TimeModel::new(1_000).unwrap();
        let retention = retention_ticks * 1_000;
        let mut marks = ReplayMarks::default();
        let mut max_ts: Option<u64> = None;
        // The source's frontier follows the largest ts less the lateness, as the
        // watermark does (never backwards).
        let mut frontier = 0u64;
        for offset in 0..=ts.len() {
            if offset % snapshot_every == 0 || offset == ts.len() {
                marks.note(offset as u64, max_ts, frontier, &time, retention);
                let checkpoint = PartitionCheckpoint {
                    offset: offset as u64,
                    as_of: frontier,
                    records: offset as u64,
                    late_records: 0,
                    dead_letters: BTreeMap::new(),
                    max_ts,
                    marks: marks.to_vec(),
                };
                let from = checkpoint.replay_from(&time, retention);
                prop_assert!(from <= offset as u64);
                // Every record before `from` has left the views by the checkpoint's as_of.
                for (i, t) in ts.iter().enumerate().take(from as usize) {
                    prop_assert!(
                        time.own_time(*t) + retention <= frontier,
                        "record {i} (ts {t}) would be visible at {frontier} but the replay starts at {from}"
                    );
                }
            }
            if let Some(t) = ts.get(offset) {
                max_ts = Some(max_ts.map_or(*t, |m| m.max(*t)));
                frontier = frontier.max(time.frontier_for_watermark(max_ts.unwrap().saturating_sub(lateness)));
            }
        }
    }

    #[test]
    fn the_marks_stay_few(ts in partition(), retention_ticks in 1u64..10) {
        let time = TimeModel::new(1_000).unwrap();
        let retention = retention_ticks * 1_000;
        let mut marks = ReplayMarks::default();
        let mut max_ts: Option<u64> = None;
        for (offset, t) in ts.iter().enumerate() {
            max_ts = Some(max_ts.map_or(*t, |m| m.max(*t)));
            marks.note(offset as u64 + 1, max_ts, max_ts.unwrap(), &time, retention);
        }
        // One per tick of the retention at most, plus the one a replay starts from.
        prop_assert!(marks.to_vec().len() as u64 <= retention_ticks + 2, "{:?}", marks.to_vec());
    }
}
