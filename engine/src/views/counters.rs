//! The views of the workers' own counters: the cluster's status and the recent dead
//! letters. They read no arrangement, so they answer at any time, even while a restarted
//! worker is catching up.

use std::cell::RefCell;
use std::collections::BTreeMap;

use flowsight_connectors::DeadLetter;
use serde::{Deserialize, Serialize};

use crate::engine::Shared;
use crate::peek::Views;
use crate::state_size::SharedSizes;
use crate::status::{ClusterStatus, WorkerStats, WorkerStatus};
use crate::view::{Merging, Reading, View};

/// Counters, frontiers and partitions of every worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status;

impl View for Status {
    const NAME: &'static str = "status";
    const READS_ARRANGEMENTS: bool = false;
    type Part = WorkerStatus;
    type Rows = ClusterStatus;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> WorkerStatus {
        worker_status(at.stats, &views.sizes, at.shared, at.local_index)
    }

    fn merge(&self, mut workers: Vec<WorkerStatus>, at: &Merging<'_>) -> ClusterStatus {
        workers.sort_by_key(|w| w.worker);
        ClusterStatus::merge(at.processes, at.as_of, workers)
    }
}

/// A worker's counters now, with its views' state; the process's first worker (local
/// index 0) adds the dead-letter sink's counts.
pub(crate) fn worker_status(
    stats: &RefCell<WorkerStats>,
    sizes: &SharedSizes,
    shared: &Shared,
    local_index: usize,
) -> WorkerStatus {
    let mut status = stats.borrow().snapshot();
    if let Ok(sizes) = sizes.try_borrow() {
        status.state = sizes.by_view();
    }
    // The dead-letter sink is the process's: its first worker reports it.
    if local_index == 0 {
        status.dead_letter_sink = shared
            .runtime
            .dead_letters
            .as_ref()
            .map(|sink| sink.counts());
    }
    status
}

/// The most recent dead letters: each worker's newest first, worker by worker, cut at
/// `limit` (workers share no clock to order letters across them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// The most letters to answer with, over the whole cluster.
    pub limit: usize,
}

/// One worker's recent dead letters, and its counts by reason.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerLetters {
    /// The worker's index in the cluster: parts merge in worker order.
    pub worker: usize,
    /// Its most recent letters, at most the question's limit, newest first.
    pub letters: Vec<DeadLetter>,
    /// Every dead letter it counted, by reason, those before a restart included.
    pub counts: BTreeMap<String, u64>,
}

/// The recent dead letters of the cluster, and how many there were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterAnswer {
    /// The most recent letters of each worker, worker by worker, newest first.
    pub letters: Vec<DeadLetter>,
    /// How many dead letters the cluster counted, of every reason.
    pub total: u64,
    /// How many it counted, by reason.
    pub by_reason: BTreeMap<String, u64>,
}

impl View for DeadLetters {
    const NAME: &'static str = "dead_letters";
    const READS_ARRANGEMENTS: bool = false;
    type Part = WorkerLetters;
    type Rows = DeadLetterAnswer;

    fn read(&self, _: &mut Views, at: &Reading<'_>) -> WorkerLetters {
        let stats = at.stats.borrow();
        WorkerLetters {
            worker: stats.worker,
            letters: stats.dead_letters.recent(self.limit),
            counts: stats.dead_letters.counts().clone(),
        }
    }

    fn merge(&self, mut parts: Vec<WorkerLetters>, _: &Merging<'_>) -> DeadLetterAnswer {
        parts.sort_by_key(|part| part.worker);
        let mut by_reason = BTreeMap::new();
        let mut letters = Vec::new();
        for part in parts {
            for (reason, count) in part.counts {
                *by_reason.entry(reason).or_insert(0u64) += count;
            }
            letters.extend(part.letters);
        }
        letters.truncate(self.limit);
        DeadLetterAnswer {
            letters,
            total: by_reason.values().sum(),
            by_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::merging;
    use flowsight_connectors::Position;

    fn letter(offset: u64) -> DeadLetter {
        DeadLetter {
            reason: "invalid_json".into(),
            error: "bad".into(),
            position: Position {
                source: "f".into(),
                partition: 0,
                offset,
            },
            bytes: "{".into(),
            raw: None,
        }
    }

    fn part(worker: usize, offsets: &[u64]) -> WorkerLetters {
        WorkerLetters {
            worker,
            letters: offsets.iter().map(|o| letter(*o)).collect(),
            counts: BTreeMap::from([("invalid_json".to_string(), offsets.len() as u64 + 10)]),
        }
    }

    #[test]
    fn dead_letters_merge_in_worker_order_whatever_the_arrival_order() {
        let answer = merging(3_000, |at| {
            DeadLetters { limit: 3 }.merge(vec![part(1, &[20, 21]), part(0, &[10, 11])], at)
        });
        let offsets: Vec<u64> = answer.letters.iter().map(|l| l.position.offset).collect();
        assert_eq!(offsets, vec![10, 11, 20]);
        assert_eq!(answer.total, 24);
        assert_eq!(answer.by_reason["invalid_json"], 24);
    }
}
