//! Checkpoints: what each partition has contributed, so that a restarted engine neither
//! loses a record nor counts one twice.
//!
//! The views live in memory, so a restart rebuilds them by reading again every record that
//! may still be visible. A partition's entry says:
//!
//! - `offset`: the records before it were read and counted (records, late records, dead
//!   letters by reason are stored with it). After a restart they are read again to rebuild
//!   the views but not counted again, and their dead letters are not sent again.
//! - `as_of`: the latest time at or before the source's frontier at which one of them was
//!   placed. Every one of them entered the dataflow at a time ≤ `as_of`, or at its own time
//!   past the frontier. While a restarted source replays them its frontier is held at
//!   `as_of`, so each enters at a time ≤ `as_of` again, or at the same own time: at every
//!   as_of ≥ `as_of` the rebuilt views equal those of an uninterrupted run.
//! - `marks`: (offset, largest ts of the records before it) pairs. Records leave the views
//!   at `own_time(ts) + retention`, so a record can be skipped on replay only when it left
//!   before `as_of`. The replay starts at the last mark whose records all left; out-of-order
//!   records are covered because the marks hold the *largest* ts so far, not the latest.
//!
//! Each process writes the entries of its own partitions to `checkpoint-<process>.json`
//! under the state directory, atomically (a temporary file, fsync, rename, fsync of the
//! directory): a crash at any moment leaves the previous or the new checkpoint, whole.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use flowsight_operators::{Millis, TimeModel};
use serde::{Deserialize, Serialize};

/// Bumped when the file's meaning changes; older files are refused with a message.
pub const CHECKPOINT_VERSION: u32 = 1;

/// At most about this many replay marks are kept per partition.
const MARKS_PER_RETENTION: u64 = 256;

/// All records before `offset` have a timestamp ≤ `max_ts` (`None`: there are none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayMark {
    /// An offset in the partition, where a replay may start.
    pub offset: u64,
    /// The largest timestamp (ms since the epoch) of the records before `offset`.
    pub max_ts: Option<Millis>,
}

/// One partition's entry (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    /// The next offset to read: the records before it were read and counted.
    pub offset: u64,
    /// The latest time (ms since the epoch) at or before the source's frontier at which a
    /// record before `offset` was placed; a restart holds the frontier here while it replays.
    pub as_of: Millis,
    /// Records before `offset`, counted once: a restart carries the count on.
    pub records: u64,
    /// How many of them were late: placed at the frontier, past their own time.
    pub late_records: u64,
    /// Dead letters before `offset`, by reason; a replay neither counts nor sends them again.
    pub dead_letters: BTreeMap<String, u64>,
    /// The largest ts of all records before `offset`.
    pub max_ts: Option<Millis>,
    /// Ascending by offset.
    pub marks: Vec<ReplayMark>,
}

impl PartitionCheckpoint {
    /// Where a restart must start reading so that every record still visible at any
    /// as_of ≥ `self.as_of` is read again: the last mark whose records had all left the
    /// views (`own_time(max_ts) + retention ≤ as_of`), or offset 0.
    pub fn replay_from(&self, time: &TimeModel, retention: Millis) -> u64 {
        self.marks
            .iter()
            .rev()
            .find(|mark| has_left(mark, self.as_of, time, retention))
            .map_or(0, |mark| mark.offset)
            .min(self.offset)
    }
}

fn has_left(mark: &ReplayMark, as_of: Millis, time: &TimeModel, retention: Millis) -> bool {
    mark.max_ts
        .is_none_or(|ts| time.own_time(ts).saturating_add(retention) <= as_of)
}

/// The replay marks of a partition as it is read: a new mark whenever the largest ts
/// has grown by a fraction of the retention, and none older than the last one a replay
/// could start from.
#[derive(Clone, Debug, Default)]
pub struct ReplayMarks {
    marks: VecDeque<ReplayMark>,
}

impl ReplayMarks {
    /// The marks a checkpoint entry kept, to go on from after a restart.
    pub fn from_checkpoint(marks: &[ReplayMark]) -> Self {
        ReplayMarks {
            marks: marks.iter().copied().collect(),
        }
    }

    /// Notes that the records before `offset` have a largest ts of `max_ts`, at a moment
    /// when the source's frontier is `as_of`.
    pub fn note(
        &mut self,
        offset: u64,
        max_ts: Option<Millis>,
        as_of: Millis,
        time: &TimeModel,
        retention: Millis,
    ) {
        let spacing = (retention / MARKS_PER_RETENTION).max(time.tick());
        let due = match self.marks.back() {
            None => true,
            Some(last) if last.offset >= offset => false,
            Some(last) => match (last.max_ts, max_ts) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b >= a.saturating_add(spacing),
                (_, None) => false,
            },
        };
        if due {
            self.marks.push_back(ReplayMark { offset, max_ts });
        }
        // Only the last mark whose records have all left is ever needed among the old ones.
        while self.marks.len() >= 2 && has_left(&self.marks[1], as_of, time, retention) {
            self.marks.pop_front();
        }
    }

    /// The marks kept, ascending by offset, as a checkpoint entry stores them.
    pub fn to_vec(&self) -> Vec<ReplayMark> {
        self.marks.iter().copied().collect()
    }
}

/// The contents of one process's checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format's version: [`CHECKPOINT_VERSION`] when written; another is refused on load.
    pub version: u32,
    /// The topic the offsets belong to.
    pub topic: String,
    /// The cluster layout that wrote it: which partitions each process reads follows from it.
    pub processes: usize,
    /// Workers per process in that layout.
    pub workers: usize,
    /// The retention (longest window) the marks were kept for.
    pub retention: Millis,
    /// The entries of the partitions this process's workers read, by partition number.
    pub partitions: BTreeMap<u32, PartitionCheckpoint>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A checkpoint file, or the state directory, could not be read.
    #[error("cannot read the checkpoint {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file is not a checkpoint this build reads: not its JSON, or of another version.
    #[error("the checkpoint {path} is not valid: {message}")]
    Invalid {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it: the parser's error, or the version found.
        message: String,
    },
    /// The state directory holds a checkpoint of another topic.
    #[error(
        "the checkpoint {path} is of topic {found:?}, not {wanted:?}: use another --state-dir \
         for another topic"
    )]
    OtherTopic {
        /// The checkpoint file.
        path: PathBuf,
        /// The topic it was written for.
        found: String,
        /// The topic this engine reads.
        wanted: String,
    },
    /// A checkpoint written by a cluster of another layout (processes × workers), which
    /// assigns partitions to processes differently; checked only for clusters of several
    /// processes.
    #[error(
        "the checkpoint {path} was written by a cluster of {found} (processes x workers), this \
         one is {wanted}: partitions move between processes when the layout changes, so restart \
         with the same layout, or copy every process's checkpoint-*.json into each --state-dir"
    )]
    OtherLayout {
        /// The checkpoint file.
        path: PathBuf,
        /// The layout that wrote it, as `processes x workers`.
        found: String,
        /// This cluster's layout, as `processes x workers`.
        wanted: String,
    },
    /// This process's checkpoint file could not be written durably.
    #[error("cannot write the checkpoint {path}: {source}")]
    Write {
        /// The checkpoint file being replaced.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The checkpoint files of a state directory.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    process: usize,
}

impl CheckpointStore {
    /// The checkpoint files under the state directory `dir`, of which process `process`
    /// writes `checkpoint-<process>.json`.
    pub fn new(dir: &Path, process: usize) -> Self {
        CheckpointStore {
            dir: dir.to_path_buf(),
            process,
        }
    }

    /// The state directory the checkpoint files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("checkpoint-{}.json", self.process))
    }

    /// Every partition entry found in the directory's checkpoint files (any process's:
    /// on one machine a shared state directory works whatever the layout). Where two
    /// files hold a partition, the entry further ahead wins.
    pub fn load(
        &self,
        topic: &str,
        processes: usize,
        workers: usize,
    ) -> Result<BTreeMap<u32, PartitionCheckpoint>, CheckpointError> {
        let mut found = BTreeMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        let mut files = 0;
        for path in paths {
            let text = fs::read(&path).map_err(|source| CheckpointError::Read {
                path: path.clone(),
                source,
            })?;
            let checkpoint: Checkpoint =
                serde_json::from_slice(&text).map_err(|e| CheckpointError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if checkpoint.version != CHECKPOINT_VERSION {
                return Err(CheckpointError::Invalid {
                    path,
                    message: format!(
                        "version {} (this flowsight reads version {CHECKPOINT_VERSION})",
                        checkpoint.version
                    ),
                });
            }
            if checkpoint.topic != topic {
                return Err(CheckpointError::OtherTopic {
                    path,
                    found: checkpoint.topic,
                    wanted: topic.to_string(),
                });
            }
            if processes > 1 && (checkpoint.processes, checkpoint.workers) != (processes, workers) {
                return Err(CheckpointError::OtherLayout {
                    path,
                    found: format!("{} x {}", checkpoint.processes, checkpoint.workers),
                    wanted: format!("{processes} x {workers}"),
                });
            }
            files += 1;
            for (partition, entry) in checkpoint.partitions {
                match found.get(&partition) {
                    Some(PartitionCheckpoint { offset, .. }) if *offset >= entry.offset => {}
                    _ => {
                        found.insert(partition, entry);
                    }
                }
            }
        }
        if files > 0 {
            tracing::info!(
                dir = %self.dir.display(),
                partitions = found.len(),
                "resuming from the checkpoint"
            );
        }
        Ok(found)
    }

    /// Replaces this process's checkpoint file atomically and durably.
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let path = self.path();
        let failed = |source| CheckpointError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(failed)?;
        let temporary = self
            .dir
            .join(format!(".checkpoint-{}.json.tmp", self.process));
        let bytes = serde_json::to_vec(checkpoint).map_err(|e| failed(std::io::Error::other(e)))?;
        let mut file = File::create(&temporary).map_err(failed)?;
        file.write_all(&bytes).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        drop(file);
        fs::rename(&temporary, &path).map_err(failed)?;
        // The rename itself must survive a power cut too.
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time() -> TimeModel {
        TimeModel::new(1_000).unwrap()
    }

    fn entry(offset: u64, as_of: Millis, marks: &[(u64, Option<Millis>)]) -> PartitionCheckpoint {
        PartitionCheckpoint {
            offset,
            as_of,
            records: offset,
            late_records: 0,
            dead_letters: BTreeMap::new(),
            max_ts: marks.last().and_then(|m| m.1),
            marks: marks
                .iter()
                .map(|&(offset, max_ts)| ReplayMark { offset, max_ts })
                .collect(),
        }
    }

    #[test]
    fn replay_starts_at_the_last_mark_whose_records_all_left() {
        // Retention 10 s: a record with ts 4_500 (own time 5_000) leaves at 15_000.
        let checkpoint = entry(
            900,
            16_000,
            &[
                (0, None),
                (100, Some(4_500)),
                (200, Some(6_200)),
                (300, Some(9_000)),
            ],
        );
        assert_eq!(checkpoint.replay_from(&time(), 10_000), 100);
        let later = PartitionCheckpoint {
            as_of: 17_000,
            ..checkpoint.clone()
        };
        assert_eq!(later.replay_from(&time(), 10_000), 200);
        let earlier = PartitionCheckpoint {
            as_of: 14_999,
            ..checkpoint
        };
        assert_eq!(earlier.replay_from(&time(), 10_000), 0);
    }

    #[test]
    fn an_out_of_order_record_keeps_the_replay_back() {
        // A record far ahead in time early in the partition: its mark's max_ts stays high,
        // so every later mark has it too and the replay cannot skip it.
        let mut marks = ReplayMarks::default();
        let t = time();
        marks.note(0, None, 1_000, &t, 10_000);
        marks.note(10, Some(50_000), 2_000, &t, 10_000);
        marks.note(20, Some(50_000), 30_000, &t, 10_000);
        marks.note(30, Some(52_000), 40_000, &t, 10_000);
        let checkpoint = PartitionCheckpoint {
            offset: 40,
            as_of: 40_000,
            records: 40,
            late_records: 0,
            dead_letters: BTreeMap::new(),
            max_ts: Some(52_000),
            marks: marks.to_vec(),
        };
        assert_eq!(checkpoint.replay_from(&t, 10_000), 0);
    }

    #[test]
    fn marks_stay_few_and_keep_one_that_has_left() {
        let t = time();
        let retention = 3_600_000;
        let mut marks = ReplayMarks::default();
        for second in 0..20_000u64 {
            let ts = second * 1_000;
            marks.note(second * 100, Some(ts), ts + 5_000, &t, retention);
        }
        let kept = marks.to_vec();
        assert!(
            kept.len() <= MARKS_PER_RETENTION as usize + 2,
            "{} marks",
            kept.len()
        );
        let as_of = 19_999_000 + 5_000;
        assert!(has_left(&kept[0], as_of, &t, retention));
        assert!(!has_left(&kept[1], as_of, &t, retention));
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_a_torn_temporary_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), 0);
        let mut checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            topic: "flows".into(),
            processes: 1,
            workers: 2,
            retention: 10_000,
            partitions: BTreeMap::from([(0, entry(10, 5_000, &[(0, None)]))]),
        };
        store.write(&checkpoint).unwrap();
        checkpoint
            .partitions
            .insert(1, entry(7, 6_000, &[(0, None)]));
        store.write(&checkpoint).unwrap();
        // A crash in the middle of the next write leaves a partial temporary file behind.
        fs::write(
            dir.path().join(".checkpoint-0.json.tmp"),
            b"{\"version\": 1, \"to",
        )
        .unwrap();
        let loaded = store.load("flows", 1, 2).unwrap();
        assert_eq!(loaded, checkpoint.partitions);
    }

    #[test]
    fn another_topic_or_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), 1);
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            topic: "flows".into(),
            processes: 2,
            workers: 2,
            retention: 10_000,
            partitions: BTreeMap::new(),
        };
        store.write(&checkpoint).unwrap();
        assert!(matches!(
            store.load("other", 2, 2),
            Err(CheckpointError::OtherTopic { .. })
        ));
        assert!(matches!(
            store.load("flows", 3, 2),
            Err(CheckpointError::OtherLayout { .. })
        ));
        assert!(store.load("flows", 2, 2).is_ok());
        fs::write(dir.path().join("checkpoint-0.json"), b"not json").unwrap();
        assert!(matches!(
            store.load("flows", 2, 2),
            Err(CheckpointError::Invalid { .. })
        ));
    }
}
