//! The source operator: reads a worker's partitions and emits each event at its timely time.
//!
//! docs/design.md §3: an event belongs at its own time (`floor(ts) + tick`); once the source's
//! frontier has passed that time (the event is later than the watermark allows) it enters
//! at the frontier instead and is counted as late. The frontier follows the source's
//! watermark: this worker's partitions together with the [`WatermarkBoard`] of every other
//! worker's, so that an idle partition anywhere stops holding the source back and every
//! record becomes visible once all input is idle.
//!
//! After a restart a partition first replays the records its checkpoint has already
//! counted (see [`crate::checkpoint`]): they rebuild the views but are not counted again,
//! and the frontier stays at the checkpoint's as_of until they are all read, so that they
//! enter at the times they entered before. The operator also takes the snapshots that
//! become checkpoints: each partition's offset, counters and replay marks, handed on once
//! the views' frontier shows the records before the offset reflected.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowsight_connectors::{
    DeadLetter, DeadLetterSink, EventPartition, PartitionSource, PollStatus,
};
use flowsight_events::Event;
use flowsight_operators::{Millis, TimeModel, WatermarkReport, WatermarkTracker};
use rustc_hash::FxHashMap;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use crate::checkpoint::{PartitionCheckpoint, ReplayMarks};
use crate::status::{PartitionStatus, WorkerStats};

/// Records read from one partition before the operator yields to the rest of the dataflow.
const CHUNK: usize = 4096;
/// Chunks per partition per activation: bounds how long one activation runs.
const CHUNKS_PER_ACTIVATION: usize = 32;
/// How long one activation may read: commands (peeks, status) are sequenced between
/// steps of the worker, so a long activation would delay every answer.
const ACTIVATION_BUDGET: Duration = Duration::from_millis(50);
/// Records one activation may read over all its partitions. Every operator downstream
/// handles what the source gave it in the same worker step, so this bounds a step's work
/// and with it how long a peek or status waits between steps when the source has a
/// backlog.
const RECORDS_PER_ACTIVATION: u64 = 16_384;
/// How soon to look again at partitions that had nothing to give.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How often a snapshot of the partitions' offsets is taken for checkpoints.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(200);
/// How many records a partition may place past the horizon before it waits for the views
/// (four chunks): a real-time source places none there.
const MAX_RECORDS_BEYOND: u64 = 4 * CHUNK as u64;
/// Snapshots waiting for the views' frontier. When the views lag this far, the newest
/// waiting one gives way to the next: the oldest, next to be reflected, keep moving the
/// checkpoint on.
const MAX_PENDING_SNAPSHOTS: usize = 64;

/// Settings of the source operator.
#[derive(Clone, Copy, Debug)]
pub struct SourceTiming {
    /// The tick: how timestamps map to timely times.
    pub time: TimeModel,
    /// How far (ms) behind the largest timestamp seen a partition's watermark stays.
    pub lateness: Millis,
    /// Wall-clock time without data after which a partition stops holding the watermark
    /// back.
    pub idle_timeout: Duration,
    /// How long records stay in the views (the longest window).
    pub retention: Millis,
    /// How far (event time) a partition may read ahead of the views' frontier.
    pub max_ahead: Millis,
}

/// Every worker's latest watermark report, as this worker knows it, and this worker's
/// report waiting to be sent to the others (see `worker.rs`).
#[derive(Debug)]
pub struct WatermarkBoard {
    /// The latest report of each worker, by worker index; `None` until one has come.
    pub reports: Vec<Option<WatermarkReport>>,
    /// This worker's newest report, which the worker's loop takes and broadcasts.
    pub outbox: Option<WatermarkReport>,
}

impl WatermarkBoard {
    /// A board for a cluster of `peers` workers, with no report yet.
    pub fn new(peers: usize) -> Self {
        WatermarkBoard {
            reports: vec![None; peers],
            outbox: None,
        }
    }

    /// The source's watermark, with this worker's fresh `own` report in place of the one
    /// the others last received.
    fn watermark(&self, worker: usize, own: &WatermarkReport, time: &TimeModel) -> Option<Millis> {
        WatermarkReport::combine(
            self.reports
                .iter()
                .enumerate()
                .map(|(w, r)| if w == worker { Some(own) } else { r.as_ref() }),
            time,
        )
    }
}

/// The checkpoint entries of a process's partitions, as its sources hand them on, for the
/// checkpoint writer.
#[derive(Debug, Default)]
pub struct CheckpointBoard {
    /// The latest entry handed on for each partition, by partition number.
    pub partitions: BTreeMap<u32, PartitionCheckpoint>,
    /// Bumped at every change, so the writer skips rounds with nothing new.
    pub changes: u64,
}

/// What the sources of a process share beyond the dataflow: where to resume from, where
/// dead letters go, and where checkpoint entries are handed on.
pub struct SourceRuntime {
    /// Checkpoint entries to resume from, by partition.
    pub resume: BTreeMap<u32, PartitionCheckpoint>,
    /// The largest as_of of the entries that need a replay: the views are exact again
    /// from there (peeks check it per worker; this is for the process's health check).
    pub ready_from: Option<Millis>,
    /// Where dead letters are sent (the Kafka dead-letter topic); without one they are only
    /// counted and kept in each worker's log.
    pub dead_letters: Option<Arc<dyn DeadLetterSink>>,
    /// Whether snapshots are taken at all (only sources that can resume are checkpointed).
    pub checkpointing: bool,
    /// Where the sources hand on checkpoint entries, for the checkpoint writer.
    pub board: Mutex<CheckpointBoard>,
}

impl SourceRuntime {
    /// What a source that cannot resume (a file, the generator) shares: nothing to
    /// resume from, no dead-letter sink, no checkpoints.
    pub fn without_checkpoints() -> Self {
        SourceRuntime {
            resume: BTreeMap::new(),
            ready_from: None,
            dead_letters: None,
            checkpointing: false,
            board: Mutex::new(CheckpointBoard::default()),
        }
    }

    fn deposit(&self, entries: impl IntoIterator<Item = (u32, PartitionCheckpoint)>) {
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, entry) in entries {
            board.partitions.insert(partition, entry);
        }
        board.changes += 1;
    }
}

/// Counters of one partition, carried in its checkpoint.
#[derive(Clone, Debug, Default)]
struct Counts {
    records: u64,
    late_records: u64,
    dead_letters: BTreeMap<String, u64>,
}

/// One partition this worker reads.
struct Reading {
    partition: u32,
    reader: Box<dyn EventPartition>,
    finished: bool,
    /// While replaying after a restart: the checkpoint being caught up with. Records
    /// before its offset are read again but not counted.
    replaying: Option<PartitionCheckpoint>,
    counts: Counts,
    /// The largest ts of every record before the reader's offset, earlier runs included.
    max_ts: Option<Millis>,
    marks: ReplayMarks,
    /// The offset that the views' frontier shows reflected.
    reflected_offset: Option<u64>,
    /// Its records placed past the horizon the views may lag by.
    beyond: Beyond,
    /// It has placed too many records past the horizon and waits for the views.
    waiting: bool,
}

/// The records of one partition placed past the horizon (`max_ahead`, the lateness and a
/// tick past the views' frontier), by placement time. A partition whose frontier is held
/// back by slower ones elsewhere, or whose clock runs ahead, places its records there; past
/// [`MAX_RECORDS_BEYOND`] of them it waits, so it cannot read without bound either.
#[derive(Debug, Default)]
struct Beyond {
    by_time: BTreeMap<Millis, u64>,
    count: u64,
}

impl Beyond {
    fn add(&mut self, at: Millis) {
        *self.by_time.entry(at).or_insert(0) += 1;
        self.count += 1;
    }

    /// Forgets the records the horizon has reached.
    fn reached(&mut self, horizon: Millis) {
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() > horizon {
                break;
            }
            self.count -= entry.remove();
        }
    }
}

impl Reading {
    fn new(
        partition: u32,
        mut reader: Box<dyn EventPartition>,
        resume: Option<&PartitionCheckpoint>,
    ) -> Self {
        let Some(entry) = resume else {
            return Reading {
                partition,
                reader,
                finished: false,
                replaying: None,
                counts: Counts::default(),
                max_ts: None,
                marks: ReplayMarks::default(),
                reflected_offset: None,
                beyond: Beyond::default(),
                waiting: false,
            };
        };
        let replaying = (reader.next_offset() < entry.offset).then(|| {
            reader.stop_at(Some(entry.offset));
            entry.clone()
        });
        Reading {
            partition,
            reader,
            finished: false,
            replaying,
            counts: Counts {
                records: entry.records,
                late_records: entry.late_records,
                dead_letters: entry.dead_letters.clone(),
            },
            max_ts: entry.max_ts,
            marks: ReplayMarks::from_checkpoint(&entry.marks),
            reflected_offset: Some(entry.offset),
            beyond: Beyond::default(),
            waiting: false,
        }
    }

    /// This partition's checkpoint entry now, with the source's frontier at `as_of`.
    fn snapshot(&self, as_of: Millis) -> PartitionCheckpoint {
        if let Some(entry) = &self.replaying {
            // Still catching up with it: it stays the partition's checkpoint.
            return entry.clone();
        }
        PartitionCheckpoint {
            offset: self.reader.next_offset(),
            as_of,
            records: self.counts.records,
            late_records: self.counts.late_records,
            dead_letters: self.counts.dead_letters.clone(),
            max_ts: self.max_ts,
            marks: self.marks.to_vec(),
        }
    }
}

/// Snapshots taken at one moment, waiting for the views to reflect them.
struct Snapshot {
    /// The latest time at or before the source's capability that a record before the
    /// offsets was placed at: once the views have passed it, they reflect every record
    /// before the offsets (but those placed at their own later time, which the views show
    /// when they reach it). It is also the entries' `as_of`.
    reflected_at: Millis,
    entries: Vec<(u32, PartitionCheckpoint)>,
}

/// What the source operator shares with its worker's loop.
pub struct WorkerLinks {
    /// The worker's counters: the source adds what it reads, and reads the views'
    /// frontier there.
    pub stats: Rc<RefCell<WorkerStats>>,
    /// The watermark reports: the other workers' to read, and this worker's to send.
    pub board: Rc<RefCell<WatermarkBoard>>,
    /// Set by the worker: take the final snapshot and stop.
    pub stop: Rc<Cell<bool>>,
    /// Set by the source once it has stopped.
    pub stopped: Rc<Cell<bool>>,
}

/// Builds the source operator for this worker's share of `partitions`.
///
/// A worker whose source has no partitions for it, and never will, reports that it holds
/// nothing back and drops its capability. `stop` makes the operator take a final snapshot
/// and drop its capability, so the dataflow can finish; it sets `stopped` once it has.
pub fn event_source<'scope>(
    scope: Scope<'scope, Millis>,
    partitions: Box<dyn PartitionSource>,
    runtime: Arc<SourceRuntime>,
    timing: SourceTiming,
    links: WorkerLinks,
) -> Stream<'scope, Millis, Vec<Event>> {
    source(scope, "EventSource", move |capability, info| {
        let activator = scope.activator_for(Rc::clone(&info.address));
        // Partitions that can say when records arrive wake the operator from their own
        // threads, rather than waiting for the next poll.
        let waker: Arc<dyn Fn() + Send + Sync> = {
            let sync = Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
            Arc::new(move || {
                let _ = sync.lock().map(|activator| activator.activate());
            })
        };
        let mut operator = SourceOperator::new(partitions, runtime, timing, links, waker);
        let mut capability = Some(capability);
        activator.activate();

        move |output| {
            let Some(cap) = capability.as_mut() else {
                operator.links.stopped.set(true);
                return;
            };
            if operator.links.stop.get() {
                operator.final_snapshot();
                capability = None;
                return;
            }
            if !operator.discover() {
                capability = None;
                return;
            }
            // Nothing can be complete before the first tick: that is the least frontier.
            let mut frontier = (*cap.time()).max(operator.timing.time.tick());
            // Replayed records must enter no later than they did before the restart; the
            // cap holds for the whole activation.
            let replay_cap = operator.replay_cap();
            let limit = operator.read_limit();
            let more = operator.poll(&mut frontier, replay_cap, limit);
            operator.pause_partitions();
            for (at, mut batch) in operator.by_time.drain() {
                operator.placed.record(at);
                output.session(&cap.delayed(&at)).give_container(&mut batch);
            }
            let now = Instant::now();
            let frontier = operator.watermark(frontier, replay_cap, now);
            if frontier > *cap.time() {
                cap.downgrade(&frontier);
            }
            operator.placed.reached(*cap.time());
            operator.snapshot(now);
            operator.publish_status(now, *cap.time());
            if more {
                activator.activate();
            } else {
                activator.activate_after(operator.next_wake(now));
            }
        }
    })
}

/// Where a source's records were placed: the latest time at or before its capability
/// (`upto`: a checkpoint's as_of, see `crate::checkpoint`), the times past it (records
/// ahead of the watermark), and the latest of all (reported to the other workers, so that
/// records placed late at the frontier become visible).
#[derive(Default)]
struct Placed {
    upto: Millis,
    ahead: BTreeSet<Millis>,
    latest: Option<Millis>,
}

impl Placed {
    fn record(&mut self, at: Millis) {
        self.latest = Some(self.latest.map_or(at, |m| m.max(at)));
        self.ahead.insert(at);
    }

    /// The capability has reached `time`: every placement up to it is behind it.
    fn reached(&mut self, time: Millis) {
        while let Some(&at) = self.ahead.first() {
            if at > time {
                break;
            }
            self.upto = self.upto.max(at);
            self.ahead.pop_first();
        }
    }
}

/// One worker's source: its partitions, their watermarks and checkpoint snapshots. Each
/// activation discovers new partitions, polls them within a time budget, places every
/// record at its own time or the frontier, moves the frontier with the watermark, takes
/// snapshots, and publishes its status.
struct SourceOperator {
    partitions: Box<dyn PartitionSource>,
    runtime: Arc<SourceRuntime>,
    timing: SourceTiming,
    links: WorkerLinks,
    waker: Arc<dyn Fn() + Send + Sync>,
    worker: usize,
    source_name: String,
    tracker: WatermarkTracker,
    readings: Vec<Reading>,
    published: Option<WatermarkReport>,
    /// Buffers reused between polls.
    events: Vec<Event>,
    dead: Vec<DeadLetter>,
    /// This activation's records by the time they are placed at.
    by_time: FxHashMap<Millis, Vec<Event>>,
    /// Snapshots waiting for the views to reflect them.
    pending: VecDeque<Snapshot>,
    /// Partitions take turns at going first, so that the time budget cannot starve one.
    rotation: usize,
    next_snapshot: Instant,
    placed: Placed,
    /// The records and late records counted in this activation.
    records: u64,
    late: u64,
    /// The last poll stopped at the read limit, waiting for the views.
    waiting_for_views: bool,
    /// Records and dead letters read in this activation, replayed ones included.
    read_this_activation: u64,
}

impl SourceOperator {
    fn new(
        partitions: Box<dyn PartitionSource>,
        runtime: Arc<SourceRuntime>,
        timing: SourceTiming,
        links: WorkerLinks,
        waker: Arc<dyn Fn() + Send + Sync>,
    ) -> SourceOperator {
        let worker = links.stats.borrow().worker;
        let source_name = partitions.name().to_string();
        SourceOperator {
            partitions,
            runtime,
            tracker: WatermarkTracker::new(0, timing.lateness, timing.idle_timeout),
            timing,
            links,
            waker,
            worker,
            source_name,
            readings: Vec::new(),
            published: None,
            events: Vec::with_capacity(CHUNK),
            dead: Vec::new(),
            by_time: FxHashMap::default(),
            pending: VecDeque::new(),
            rotation: 0,
            next_snapshot: Instant::now(),
            placed: Placed::default(),
            records: 0,
            late: 0,
            waiting_for_views: false,
            read_this_activation: 0,
        }
    }

    /// The final checkpoint: everything read so far, counted once.
    fn final_snapshot(&mut self) {
        if self.runtime.checkpointing {
            let upto = self.placed.upto;
            self.runtime.deposit(
                self.readings
                    .iter()
                    .map(|r| (r.partition, r.snapshot(upto))),
            );
        }
        self.links.board.borrow_mut().outbox = Some(WatermarkReport::default());
        self.links.stopped.set(true);
    }

    /// Takes on the partitions the source has found for this worker. False when it has
    /// none and never will: the operator then holds nothing back and stops.
    fn discover(&mut self) -> bool {
        self.partitions.service();
        for (partition, mut reader) in self.partitions.discover() {
            reader.on_ready(Arc::clone(&self.waker));
            let reading = Reading::new(partition, reader, self.runtime.resume.get(&partition));
            {
                let mut stats = self.links.stats.borrow_mut();
                if let Some(entry) = &reading.replaying {
                    stats.ready_from =
                        Some(stats.ready_from.map_or(entry.as_of, |r| r.max(entry.as_of)));
                }
                stats.records += reading.counts.records;
                stats.late_records += reading.counts.late_records;
                stats.dead_letters.add_counts(&reading.counts.dead_letters);
            }
            self.tracker.add_partition();
            self.readings.push(reading);
        }
        if self.readings.is_empty() && !self.partitions.may_grow() {
            self.links.board.borrow_mut().outbox = Some(WatermarkReport::default());
            self.links.stopped.set(true);
            return false;
        }
        true
    }

    /// The latest time replayed records may enter at: the earliest `as_of` of the
    /// checkpoints still being replayed.
    fn replay_cap(&self) -> Millis {
        self.readings
            .iter()
            .filter_map(|r| r.replaying.as_ref().map(|e| e.as_of))
            .min()
            .unwrap_or(Millis::MAX)
    }

    /// The frontier at which this worker's source stops reading until the views catch up:
    /// `max_ahead` past the views' frontier, or the query plane's if it is behind them
    /// (from 0 before the views have one). Measured
    /// from the source's frontier, the slowest partition's watermark, so that one record
    /// with a far-future timestamp cannot stop its partition; a replay after a restart
    /// is held at its cap, which the views reach, so it never waits on itself.
    fn read_limit(&self) -> Millis {
        let stats = self.links.stats.borrow();
        let views = stats.frontier.unwrap_or(0);
        // The query plane applies records once the views have completed them: waiting for
        // it too keeps what it holds unapplied within the same bound.
        let followed = stats
            .queries_frontier
            .map_or(views, |plane| plane.min(views));
        followed.saturating_add(self.timing.max_ahead)
    }

    /// Pauses the partitions' fetching while the source waits for the views (a Kafka
    /// partition then buffers nothing in its client), and resumes it once it reads again.
    fn pause_partitions(&mut self) {
        for reading in &mut self.readings {
            reading
                .reader
                .pause(self.waiting_for_views || reading.waiting);
        }
    }

    /// `frontier` moved by a watermark, never past the replay's cap.
    fn advance(&self, frontier: Millis, watermark: Millis, replay_cap: Millis) -> Millis {
        frontier.max(
            self.timing
                .time
                .frontier_for_watermark(watermark)
                .min(replay_cap),
        )
    }

    /// Reads the partitions within the activation's budget into `by_time`, counting and
    /// forwarding dead letters, until the frontier reaches `limit` (the source then waits
    /// for the views). The frontier moves as the records read so far move it: each record
    /// is placed against the watermark of the records before it, however the reads happen
    /// to be chunked. True when a partition has more to give now.
    fn poll(&mut self, frontier: &mut Millis, replay_cap: Millis, limit: Millis) -> bool {
        let mut more = false;
        self.records = 0;
        self.late = 0;
        self.read_this_activation = 0;
        self.waiting_for_views = false;
        let horizon = limit
            .saturating_add(self.timing.lateness)
            .saturating_add(self.timing.time.tick());
        let activation_started = Instant::now();
        let count = self.readings.len();
        let first = if count == 0 { 0 } else { self.rotation % count };
        self.rotation = self.rotation.wrapping_add(1);
        for index in (0..count).map(|step| (first + step) % count) {
            if self.readings[index].finished {
                continue;
            }
            let reading = &mut self.readings[index];
            reading.beyond.reached(horizon);
            reading.waiting = reading.beyond.count >= MAX_RECORDS_BEYOND;
            let mut last = PollStatus::Pending;
            for _ in 0..CHUNKS_PER_ACTIVATION {
                if *frontier >= limit {
                    // Far enough ahead of the views: read on once they have caught up.
                    self.waiting_for_views = true;
                    return false;
                }
                if self.readings[index].beyond.count >= MAX_RECORDS_BEYOND {
                    // This partition alone is far ahead: the others read on.
                    self.readings[index].waiting = true;
                    break;
                }
                if activation_started.elapsed() >= ACTIVATION_BUDGET
                    || self.read_this_activation >= RECORDS_PER_ACTIVATION
                {
                    // Let the rest of the dataflow (and the control plane) run first.
                    more = true;
                    break;
                }
                let status = self.poll_chunk(index, frontier, replay_cap, horizon);
                last = status;
                match status {
                    PollStatus::Ready => continue,
                    PollStatus::Pending => break,
                    PollStatus::Finished => {
                        // Never polled again: quiet from now on, so idle after the timeout.
                        self.readings[index].finished = true;
                        self.tracker.polled(index, false, Instant::now());
                        break;
                    }
                }
            }
            // A partition that was still ready after its last chunk has more to give now.
            more |= last == PollStatus::Ready;
        }
        more
    }

    /// Reads one chunk of partition `index`.
    fn poll_chunk(
        &mut self,
        index: usize,
        frontier: &mut Millis,
        replay_cap: Millis,
        horizon: Millis,
    ) -> PollStatus {
        let reading = &mut self.readings[index];
        let status = reading.reader.poll(CHUNK, &mut self.events, &mut self.dead);
        self.read_this_activation += (self.events.len() + self.dead.len()) as u64;
        let now = Instant::now();
        // Nothing now, but not at the end either (a fetch on its way) is not quiet.
        let delivering = status == PollStatus::Ready
            || !self.events.is_empty()
            || (status == PollStatus::Pending && !reading.reader.at_end());
        self.tracker.polled(index, delivering, now);
        let counting = reading.replaying.is_none();
        for event in self.events.drain(..) {
            reading.max_ts = Some(reading.max_ts.map_or(event.ts, |m| m.max(event.ts)));
            if self.tracker.observe(index, event.ts, &self.timing.time) {
                let mut own = self.tracker.report(now);
                own.placed = self.placed.latest;
                if let Some(watermark) =
                    self.links
                        .board
                        .borrow()
                        .watermark(self.worker, &own, &self.timing.time)
                {
                    *frontier = (*frontier).max(
                        self.timing
                            .time
                            .frontier_for_watermark(watermark)
                            .min(replay_cap),
                    );
                }
            }
            let own = self.timing.time.own_time(event.ts);
            if counting {
                if own < *frontier {
                    self.late += 1;
                    reading.counts.late_records += 1;
                }
                self.records += 1;
                reading.counts.records += 1;
            }
            let at = own.max(*frontier);
            // A replay is held at its cap, which the views can only pass once it is done:
            // it never waits for them.
            if at > horizon && reading.replaying.is_none() {
                reading.beyond.add(at);
            }
            self.by_time.entry(at).or_default().push(event);
        }
        for letter in self.dead.drain(..) {
            // Replayed dead letters were counted and sent before the restart.
            if counting {
                if let Some(sink) = &self.runtime.dead_letters {
                    sink.send(&letter);
                }
                *reading
                    .counts
                    .dead_letters
                    .entry(letter.reason.clone())
                    .or_insert(0) += 1;
                self.links.stats.borrow_mut().dead_letters.record(letter);
            }
        }
        if let Some(entry) = &reading.replaying {
            if reading.reader.next_offset() >= entry.offset {
                tracing::info!(
                    source = %self.source_name,
                    partition = reading.partition,
                    offset = entry.offset,
                    "caught up with the checkpoint"
                );
                // Counted from the checkpoint on; the maximum ts must include the records
                // before the replay's start too.
                reading.max_ts = match (reading.max_ts, entry.max_ts) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                reading.reader.stop_at(None);
                reading.replaying = None;
            }
        }
        status
    }

    /// Publishes this worker's watermark report and returns the frontier the cluster's
    /// watermark allows.
    fn watermark(&mut self, frontier: Millis, replay_cap: Millis, now: Instant) -> Millis {
        let mut own = self.tracker.report(now);
        own.placed = self.placed.latest;
        let mut board = self.links.board.borrow_mut();
        let mut frontier = frontier;
        if let Some(watermark) = board.watermark(self.worker, &own, &self.timing.time) {
            frontier = self.advance(frontier, watermark, replay_cap);
        }
        if self.published != Some(own) {
            self.published = Some(own);
            board.outbox = Some(own);
        }
        frontier
    }

    /// Snapshots for checkpoints, handed on once the views reflect them.
    fn snapshot(&mut self, now: Instant) {
        if !self.runtime.checkpointing {
            return;
        }
        let as_of = self.placed.upto;
        let views_upper = self.links.stats.borrow().frontier;
        if now >= self.next_snapshot {
            self.next_snapshot = now + SNAPSHOT_EVERY;
            for reading in self.readings.iter_mut() {
                if reading.replaying.is_none() {
                    reading.marks.note(
                        reading.reader.next_offset(),
                        reading.max_ts,
                        as_of,
                        &self.timing.time,
                        self.timing.retention,
                    );
                }
            }
            if self.pending.len() >= MAX_PENDING_SNAPSHOTS {
                self.pending.pop_back();
            }
            self.pending.push_back(Snapshot {
                reflected_at: as_of,
                entries: self
                    .readings
                    .iter()
                    .map(|r| (r.partition, r.snapshot(as_of)))
                    .collect(),
            });
        }
        let mut reflected = None;
        while let Some(first) = self.pending.front() {
            // (No frontier yet means nothing is reflected yet.)
            if views_upper.is_none_or(|upper| upper <= first.reflected_at) {
                break;
            }
            reflected = self.pending.pop_front();
        }
        if let Some(snapshot) = reflected {
            for (partition, entry) in &snapshot.entries {
                if let Some(reading) = self.readings.iter_mut().find(|r| r.partition == *partition)
                {
                    reading.reflected_offset = Some(entry.offset);
                }
            }
            self.runtime.deposit(snapshot.entries);
        }
    }

    /// This activation's counts and every partition's status, for `/v1/status`.
    fn publish_status(&mut self, now: Instant, source_frontier: Millis) {
        let mut stats = self.links.stats.borrow_mut();
        stats.source_frontier = Some(source_frontier);
        stats.waiting_for_views =
            self.waiting_for_views || self.readings.iter().any(|reading| reading.waiting);
        stats.records += self.records;
        stats.late_records += self.late;
        stats.partitions = self
            .readings
            .iter()
            .enumerate()
            .map(|(index, reading)| {
                let next_offset = reading.reader.next_offset();
                let end_offset = reading.reader.end_offset();
                PartitionStatus {
                    source: self.source_name.clone(),
                    partition: reading.partition,
                    worker: self.worker,
                    next_offset,
                    reflected_offset: reading.reflected_offset,
                    end_offset,
                    lag: end_offset.map(|end| end.saturating_sub(next_offset)),
                    unreflected: reading
                        .reflected_offset
                        .map(|reflected| next_offset.saturating_sub(reflected)),
                    replaying_until: reading.replaying.as_ref().map(|e| e.offset),
                    max_ts: self.tracker.max_ts(index),
                    idle: self.tracker.is_idle(index, now),
                    finished: reading.finished,
                }
            })
            .collect();
    }

    /// When to look again without news from a partition: soon, or when a partition may
    /// turn idle.
    fn next_wake(&self, now: Instant) -> Duration {
        self.tracker
            .next_idle_check(now)
            .map_or(POLL_INTERVAL, |d| d.min(POLL_INTERVAL))
    }
}
