//! Per-worker counters, the board each process keeps of every worker's latest counters,
//! and the cluster status merged from them.
//!
//! `/v1/status` must answer at once even while the workers are busy: a peek would wait
//! for every worker to reach the peek operator between two operator runs. So every
//! worker publishes its counters between steps, on its process's [`StatusBoard`]
//! directly and to the other processes through the dataflow, and the status is merged
//! from the board, saying how old its oldest part is.

use std::collections::BTreeMap;
use std::sync::Mutex;

use flowsight_connectors::{DeadLetterLog, SinkCounts, DEFAULT_DEAD_LETTER_CAPACITY};
use flowsight_operators::Millis;
use serde::{Deserialize, Serialize};

use crate::state_size::ViewState;

/// One partition of a source as its worker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// The source's name: the topic, the file's path, or `generator`.
    pub source: String,
    /// The partition's number within the source.
    pub partition: u32,
    /// The worker that reads it: partition `p` is read by worker `p % peers`.
    pub worker: usize,
    /// The next offset to read: records before it have been consumed.
    pub next_offset: u64,
    /// Records before this offset are reflected in the views (and in the last checkpoint
    /// handed to the writer); only for checkpointed sources.
    pub reflected_offset: Option<u64>,
    /// The partition's end offset as the broker last reported it (Kafka).
    pub end_offset: Option<u64>,
    /// `end_offset − next_offset`: records waiting in the broker.
    pub lag: Option<u64>,
    /// `next_offset − reflected_offset`: records read but not yet in the views.
    pub unreflected: Option<u64>,
    /// After a restart, while the records up to this offset (counted before the restart)
    /// are read again to rebuild the views.
    pub replaying_until: Option<u64>,
    /// The largest event timestamp seen in this partition.
    pub max_ts: Option<Millis>,
    /// No data for the idle timeout: the partition does not hold the watermark back.
    pub idle: bool,
    /// The partition has ended (a replayed file at its end, a generator with a count).
    pub finished: bool,
}

/// One worker's counters, as sent to the process that asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker's index in the cluster.
    pub worker: usize,
    /// Records its source counted, those counted before a restart included.
    pub records: u64,
    /// How many of them were late: placed at the frontier, past their own time.
    pub late_records: u64,
    /// Dead letters its source counted, by reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// The first as_of not yet complete in this worker's arrangements.
    pub frontier: Option<Millis>,
    /// How far its source has read: the first time it may still place records at.
    pub source_frontier: Option<Millis>,
    /// Its source is waiting for the views, having read `max_ahead` past their frontier.
    pub waiting_for_views: bool,
    /// After a restart: views are exact from this as_of on (see [`WorkerStats::ready_from`]).
    pub ready_from: Option<Millis>,
    /// The partitions it reads.
    pub partitions: Vec<PartitionStatus>,
    /// The process's dead-letter sink, reported by its first worker only.
    pub dead_letter_sink: Option<SinkCounts>,
    /// The state each view's arrangements hold on this worker, by view.
    #[serde(default)]
    pub state: BTreeMap<String, ViewState>,
}

/// A worker's live counters.
#[derive(Debug)]
pub struct WorkerStats {
    /// The worker's index in the cluster.
    pub worker: usize,
    /// Records counted so far, those a checkpoint counted included; the source adds to it.
    pub records: u64,
    /// How many of them were late.
    pub late_records: u64,
    /// Dead letters counted by reason, and the most recent ones themselves.
    pub dead_letters: DeadLetterLog,
    /// The first as_of not yet complete in this worker's arrangements, set by the peek
    /// operator; `None` before it first runs, or once the frontier is empty.
    pub frontier: Option<Millis>,
    /// How far the source has read (its capability), set by the source operator.
    pub source_frontier: Option<Millis>,
    /// The first time the query plane has not completed on this worker (`None` with
    /// queries off): the source waits for it as for the views.
    pub queries_frontier: Option<Millis>,
    /// Whether the source last stopped reading to let the views catch up.
    pub waiting_for_views: bool,
    /// After a restart: the largest checkpoint as_of of this worker's partitions. Views read
    /// before it would miss records still being replayed, so peeks wait for it.
    pub ready_from: Option<Millis>,
    /// Each partition's status, as the source last published it.
    pub partitions: Vec<PartitionStatus>,
}

impl WorkerStats {
    /// Counters of worker `worker`, all at zero.
    pub fn new(worker: usize) -> Self {
        WorkerStats {
            worker,
            records: 0,
            late_records: 0,
            dead_letters: DeadLetterLog::new(DEFAULT_DEAD_LETTER_CAPACITY),
            frontier: None,
            source_frontier: None,
            queries_frontier: None,
            waiting_for_views: false,
            ready_from: None,
            partitions: Vec::new(),
        }
    }

    /// The counters as sent to the asking worker; the process's first worker adds the
    /// dead-letter sink's.
    pub fn snapshot(&self) -> WorkerStatus {
        WorkerStatus {
            worker: self.worker,
            records: self.records,
            late_records: self.late_records,
            dead_letters: self.dead_letters.counts().clone(),
            frontier: self.frontier,
            source_frontier: self.source_frontier,
            waiting_for_views: self.waiting_for_views,
            ready_from: self.ready_from,
            partitions: self.partitions.clone(),
            dead_letter_sink: None,
            state: BTreeMap::new(),
        }
    }
}

/// The whole cluster's status, merged from every worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// How many processes the cluster has.
    pub processes: usize,
    /// How many workers answered: every worker of the cluster.
    pub workers: usize,
    /// The latest as_of every worker has completed (answers are read there).
    pub as_of: Millis,
    /// The least frontier over the workers: the first as_of still incomplete somewhere.
    pub frontier: Option<Millis>,
    /// How far the sources have read past the views' frontier, the most over the workers
    /// (ms of event time); at most about `--max-ahead`, past which a source waits.
    pub source_ahead: Option<Millis>,
    /// Some worker's source is waiting for the views to catch up.
    pub waiting_for_views: bool,
    /// Records counted, summed over the workers.
    pub records: u64,
    /// Late records, summed over the workers.
    pub late_records: u64,
    /// Dead letters of every reason, summed over the workers.
    pub dead_letters: u64,
    /// Dead letters by reason, summed over the workers.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// After a restart, until every partition has replayed what its checkpoint counted
    /// and the views have passed the checkpoint's as_of: view reads answer 503 meanwhile.
    pub catching_up: bool,
    /// The as_of from which the views are exact again after a restart.
    pub ready_from: Option<Millis>,
    /// Records still to replay, summed over the partitions that are catching up.
    pub replay_remaining: u64,
    /// Dead letters written to the dead-letter topic, and kept on disk when it failed.
    pub dead_letter_sink: Option<SinkCounts>,
    /// Every partition of the cluster, sorted by source and partition number.
    pub partitions: Vec<PartitionStatus>,
    /// The state each view's arrangements hold, summed over the workers, by view (`graph`,
    /// `graph_rankings`, `risk`, `segments`, `registered_queries`, `other`).
    #[serde(default)]
    pub state: BTreeMap<String, ViewState>,
    /// Each process of the cluster: its workers, what they read and how far they are.
    pub by_process: Vec<ProcessStatus>,
    /// How old the oldest worker's part was when this status was merged, in ms of wall
    /// clock: the parts are the counters each worker last published, between two steps.
    #[serde(default)]
    pub age_ms: u64,
}

/// How often a worker publishes its counters on the status boards.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A worker's counters as it published them, with when (wall clock, ms since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedStatus {
    /// When the worker published them.
    pub at_ms: u64,
    /// Its counters then.
    pub status: WorkerStatus,
}

/// The latest counters of every worker of the cluster, as one process knows them: its own
/// workers write theirs directly, the other processes' arrive through the dataflow.
pub struct StatusBoard {
    parts: Mutex<Vec<Option<PublishedStatus>>>,
}

impl StatusBoard {
    /// A board for a cluster of `peers` workers, with nothing published yet.
    pub fn new(peers: usize) -> Self {
        StatusBoard {
            parts: Mutex::new(vec![None; peers]),
        }
    }

    /// Keeps `published` unless the board already holds a newer part of that worker.
    pub fn publish(&self, published: PublishedStatus) {
        let mut parts = flowsight_events::lock(&self.parts);
        if let Some(slot) = parts.get_mut(published.status.worker) {
            if slot.as_ref().is_none_or(|old| old.at_ms <= published.at_ms) {
                *slot = Some(published);
            }
        }
    }

    /// The cluster's status merged from every worker's latest part at `now_ms`, once every
    /// worker has published one; its `as_of` is the latest time every worker completed.
    pub fn merged(&self, processes: usize, tick: Millis, now_ms: u64) -> Option<ClusterStatus> {
        let parts = flowsight_events::lock(&self.parts).clone();
        let mut workers = Vec::with_capacity(parts.len());
        let mut oldest = now_ms;
        for part in parts {
            let part = part?;
            oldest = oldest.min(part.at_ms);
            workers.push(part.status);
        }
        // The least frontier over the workers (an empty one, `None`, holds nothing back).
        let frontier = workers.iter().filter_map(|w| w.frontier).min();
        let as_of = frontier
            .and_then(|f| f.checked_sub(1))
            .map_or(0, |last| last - last % tick.max(1));
        let mut status = ClusterStatus::merge(processes, as_of, workers);
        status.age_ms = now_ms.saturating_sub(oldest);
        Some(status)
    }
}

/// One process of the cluster, from its workers' parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// The process's index in the cluster.
    pub process: usize,
    /// Its workers' indices in the cluster.
    pub workers: Vec<usize>,
    /// The partitions its workers read, by source.
    pub partitions: Vec<String>,
    /// Records its workers counted.
    pub records: u64,
    /// The first as_of not yet complete on every one of its workers.
    pub frontier: Option<Millis>,
    /// Records waiting in the broker for its partitions, when the broker says.
    pub lag: Option<u64>,
}

impl ClusterStatus {
    /// Merges every worker's part (one each) into the status of a cluster of `processes`
    /// processes, read at `as_of`.
    pub fn merge(processes: usize, as_of: Millis, parts: Vec<WorkerStatus>) -> Self {
        let mut status = ClusterStatus {
            processes,
            workers: parts.len(),
            as_of,
            frontier: None,
            source_ahead: None,
            waiting_for_views: false,
            records: 0,
            late_records: 0,
            dead_letters: 0,
            dead_letters_by_reason: BTreeMap::new(),
            catching_up: false,
            ready_from: None,
            replay_remaining: 0,
            dead_letter_sink: None,
            partitions: Vec::new(),
            state: BTreeMap::new(),
            by_process: Vec::new(),
            age_ms: 0,
        };
        let per_process = parts.len().div_ceil(processes.max(1)).max(1);
        for part in &parts {
            let process = part.worker / per_process;
            if status.by_process.len() <= process {
                status
                    .by_process
                    .resize_with(process + 1, || ProcessStatus {
                        process: 0,
                        workers: Vec::new(),
                        partitions: Vec::new(),
                        records: 0,
                        frontier: None,
                        lag: None,
                    });
            }
            let entry = &mut status.by_process[process];
            let first = entry.workers.is_empty();
            entry.process = process;
            entry.workers.push(part.worker);
            entry.records += part.records;
            entry.frontier = match (first, entry.frontier, part.frontier) {
                (true, _, f) => f,
                (false, Some(a), Some(b)) => Some(a.min(b)),
                (false, a, b) => a.or(b),
            };
            for p in &part.partitions {
                entry
                    .partitions
                    .push(format!("{}/{}", p.source, p.partition));
                if let Some(lag) = p.lag {
                    entry.lag = Some(entry.lag.unwrap_or(0) + lag);
                }
            }
        }
        let mut frontier: Option<Option<Millis>> = None;
        for part in parts {
            status.records += part.records;
            status.late_records += part.late_records;
            for (reason, count) in part.dead_letters {
                status.dead_letters += count;
                *status.dead_letters_by_reason.entry(reason).or_insert(0) += count;
            }
            if let (Some(source), Some(views)) = (part.source_frontier, part.frontier) {
                let ahead = source.saturating_sub(views);
                status.source_ahead = Some(status.source_ahead.map_or(ahead, |a| a.max(ahead)));
            }
            status.waiting_for_views |= part.waiting_for_views;
            for (view, state) in &part.state {
                status.state.entry(view.clone()).or_default().add(state);
            }
            // `None` (an empty frontier: finished) is later than any time.
            frontier = Some(match (frontier, part.frontier) {
                (None, f) => f,
                (Some(None), f) => f,
                (Some(Some(a)), Some(b)) => Some(a.min(b)),
                (Some(Some(a)), None) => Some(a),
            });
            if let Some(sink) = part.dead_letter_sink {
                let total = status
                    .dead_letter_sink
                    .get_or_insert_with(SinkCounts::default);
                total.delivered += sink.delivered;
                total.kept_on_disk += sink.kept_on_disk;
            }
            if let Some(ready) = part.ready_from {
                status.ready_from = Some(status.ready_from.map_or(ready, |r| r.max(ready)));
            }
            status.partitions.extend(part.partitions);
        }
        for partition in &status.partitions {
            if let Some(until) = partition.replaying_until {
                status.replay_remaining += until.saturating_sub(partition.next_offset);
                status.catching_up = true;
            }
        }
        if status.ready_from.is_some_and(|ready| as_of < ready) {
            status.catching_up = true;
        }
        status.frontier = frontier.flatten();
        status
            .partitions
            .sort_by(|a, b| (&a.source, a.partition).cmp(&(&b.source, b.partition)));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(
        worker: usize,
        records: u64,
        frontier: Option<Millis>,
        reasons: &[(&str, u64)],
    ) -> WorkerStatus {
        WorkerStatus {
            worker,
            records,
            late_records: records / 10,
            dead_letters: reasons.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            frontier,
            source_frontier: frontier.map(|f| f + 3_000 * worker as u64),
            waiting_for_views: worker == 1,
            ready_from: None,
            dead_letter_sink: None,
            state: BTreeMap::from([(
                "graph".to_string(),
                ViewState {
                    records: 10 * records,
                    batcher_records: 1,
                    batcher_bytes: 64,
                },
            )]),
            partitions: vec![PartitionStatus {
                source: "generator".into(),
                partition: 3 - worker as u32,
                worker,
                next_offset: records,
                reflected_offset: None,
                end_offset: None,
                lag: None,
                unreflected: None,
                replaying_until: None,
                max_ts: Some(1_000),
                idle: false,
                finished: false,
            }],
        }
    }

    #[test]
    fn merge_sums_counters_and_takes_the_least_frontier() {
        let status = ClusterStatus::merge(
            2,
            5_000,
            vec![
                worker(0, 100, Some(7_000), &[("invalid_json", 2)]),
                worker(1, 50, Some(6_000), &[("invalid_json", 1), ("too_large", 4)]),
                // A worker whose frontier is empty has seen everything: it holds nothing back.
                worker(2, 0, None, &[]),
            ],
        );
        assert_eq!(status.workers, 3);
        assert_eq!(status.records, 150);
        assert_eq!(status.late_records, 15);
        assert_eq!(status.dead_letters, 7);
        assert_eq!(status.dead_letters_by_reason["invalid_json"], 3);
        assert_eq!(status.frontier, Some(6_000));
        // Each worker's source against its own views: worker 1 is 3 s ahead, and waits.
        assert_eq!(status.source_ahead, Some(3_000));
        assert!(status.waiting_for_views);
        let partitions: Vec<u32> = status.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(partitions, vec![1, 2, 3], "sorted by source and partition");
        // Each view's state is summed over the workers.
        let graph = status.state["graph"];
        assert_eq!(graph.records, 1_500);
        assert_eq!((graph.batcher_records, graph.batcher_bytes), (3, 192));
    }

    #[test]
    fn the_board_merges_once_every_worker_published_and_keeps_the_newest_part() {
        let board = StatusBoard::new(2);
        let published = |at_ms, status| PublishedStatus { at_ms, status };
        board.publish(published(1_000, worker(0, 10, Some(9_500), &[])));
        assert_eq!(
            board.merged(1, 1_000, 1_050),
            None,
            "worker 1 has not published"
        );
        board.publish(published(1_020, worker(1, 20, Some(12_000), &[])));
        // An older part arriving late (from another process) does not replace a newer one.
        board.publish(published(900, worker(1, 5, Some(3_000), &[])));
        let status = board.merged(1, 1_000, 1_250).expect("both published");
        assert_eq!(status.workers, 2);
        assert_eq!(status.records, 30);
        // The least frontier is 9.5 s: 9 s is the latest tick every worker completed.
        assert_eq!(status.as_of, 9_000);
        assert_eq!(
            status.age_ms, 250,
            "the oldest part, worker 0's, is 250 ms old"
        );
        board.publish(published(1_300, worker(0, 40, Some(13_000), &[])));
        let status = board.merged(1, 1_000, 1_300).unwrap();
        assert_eq!(
            (status.records, status.as_of, status.age_ms),
            (60, 11_000, 280)
        );
        // A worker index beyond the cluster is ignored, not a panic.
        board.publish(published(1_400, worker(3, 1, None, &[])));
        assert_eq!(board.merged(1, 1_000, 1_400).unwrap().workers, 2);
    }

    #[test]
    fn all_frontiers_empty_is_an_empty_frontier() {
        let status =
            ClusterStatus::merge(1, 0, vec![worker(0, 0, None, &[]), worker(1, 0, None, &[])]);
        assert_eq!(status.frontier, None);
    }
}
