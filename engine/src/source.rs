//! The source operator: reads a worker's partitions and emits each event at its timely time.
//!
//! DESIGN §3: an event belongs at its own time (`floor(ts) + tick`); once the source's
//! frontier has passed that time (the event is later than the watermark allows) it enters
//! at the frontier instead and is counted as late. The frontier follows the source's
//! watermark: this worker's partitions together with the [`WatermarkBoard`] of every other
//! worker's, so that an idle partition anywhere stops holding the source back and every
//! record becomes visible once all input is idle.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use flowscope_connectors::{DeadLetter, EventPartition, PollStatus};
use flowscope_events::Event;
use flowscope_operators::{Millis, TimeModel, WatermarkReport, WatermarkTracker};
use rustc_hash::FxHashMap;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use crate::status::{PartitionStatus, WorkerStats};

/// Records read from one partition before the operator yields to the rest of the dataflow.
const CHUNK: usize = 4096;
/// Chunks per partition per activation: bounds how long one activation runs.
const CHUNKS_PER_ACTIVATION: usize = 32;
/// How soon to look again at partitions that had nothing to give.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// One partition assigned to this worker.
pub struct AssignedPartition {
    pub source: String,
    pub partition: u32,
    pub reader: Box<dyn EventPartition>,
}

/// Settings of the source operator.
#[derive(Clone, Copy, Debug)]
pub struct SourceTiming {
    pub time: TimeModel,
    pub lateness: Millis,
    pub idle_timeout: Duration,
}

/// Every worker's latest watermark report, as this worker knows it, and this worker's
/// report waiting to be sent to the others (see `worker.rs`).
#[derive(Debug)]
pub struct WatermarkBoard {
    pub reports: Vec<Option<WatermarkReport>>,
    pub outbox: Option<WatermarkReport>,
}

impl WatermarkBoard {
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

/// Builds the source operator for this worker's `partitions`.
///
/// A worker with no partitions reports that it holds nothing back and drops its
/// capability. `stop` makes the operator drop its capability, so the dataflow can finish.
pub fn event_source<'scope>(
    scope: Scope<'scope, Millis>,
    mut partitions: Vec<AssignedPartition>,
    timing: SourceTiming,
    stats: Rc<RefCell<WorkerStats>>,
    board: Rc<RefCell<WatermarkBoard>>,
    stop: Rc<Cell<bool>>,
) -> Stream<'scope, Millis, Vec<Event>> {
    source(scope, "EventSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut tracker =
            WatermarkTracker::new(partitions.len(), timing.lateness, timing.idle_timeout);
        let mut finished = vec![false; partitions.len()];
        let mut published: Option<WatermarkReport> = None;
        let mut events: Vec<Event> = Vec::with_capacity(CHUNK);
        let mut dead: Vec<DeadLetter> = Vec::new();
        let mut by_time: FxHashMap<Millis, Vec<Event>> = FxHashMap::default();
        let worker = stats.borrow().worker;
        activator.activate();

        move |output| {
            let Some(cap) = capability.as_mut() else {
                return;
            };
            if partitions.is_empty() || stop.get() {
                board.borrow_mut().outbox = Some(WatermarkReport::default());
                capability = None;
                return;
            }
            // The frontier as the records read so far move it: each record is placed against
            // the watermark of the records before it, however the reads happen to be
            // chunked, and the capability catches up at the end. Nothing can be complete
            // before the first tick, so that is the least frontier.
            let mut frontier = (*cap.time()).max(timing.time.tick());
            let mut more = false;
            let mut records = 0u64;
            let mut late = 0u64;
            for (index, part) in partitions.iter_mut().enumerate() {
                if finished[index] {
                    continue;
                }
                let mut last = PollStatus::Pending;
                for _ in 0..CHUNKS_PER_ACTIVATION {
                    let status = part.reader.poll(CHUNK, &mut events, &mut dead);
                    last = status;
                    let now = Instant::now();
                    tracker.polled(
                        index,
                        status == PollStatus::Ready || !events.is_empty(),
                        now,
                    );
                    for event in events.drain(..) {
                        if tracker.observe(index, event.ts, &timing.time) {
                            let own = tracker.report(now);
                            if let Some(watermark) =
                                board.borrow().watermark(worker, &own, &timing.time)
                            {
                                frontier =
                                    frontier.max(timing.time.frontier_for_watermark(watermark));
                            }
                        }
                        let own = timing.time.own_time(event.ts);
                        if own < frontier {
                            late += 1;
                        }
                        records += 1;
                        by_time.entry(own.max(frontier)).or_default().push(event);
                    }
                    match status {
                        PollStatus::Ready => continue,
                        PollStatus::Pending => break,
                        PollStatus::Finished => {
                            // Never polled again: quiet from now on, so idle after the timeout.
                            finished[index] = true;
                            tracker.polled(index, false, Instant::now());
                            break;
                        }
                    }
                }
                // A partition that was still ready after its last chunk has more to give now.
                more |= last == PollStatus::Ready;
            }
            for (at, mut batch) in by_time.drain() {
                let at_cap = cap.delayed(&at);
                output.session(&at_cap).give_container(&mut batch);
            }

            let now = Instant::now();
            let own = tracker.report(now);
            {
                let mut board = board.borrow_mut();
                if let Some(watermark) = board.watermark(worker, &own, &timing.time) {
                    frontier = frontier.max(timing.time.frontier_for_watermark(watermark));
                }
                if published != Some(own) {
                    published = Some(own);
                    board.outbox = Some(own);
                }
            }
            if frontier > *cap.time() {
                cap.downgrade(&frontier);
            }

            {
                let mut stats = stats.borrow_mut();
                stats.records += records;
                stats.late_records += late;
                for letter in dead.drain(..) {
                    stats.dead_letters.record(letter);
                }
                stats.partitions = partitions
                    .iter()
                    .enumerate()
                    .map(|(index, part)| PartitionStatus {
                        source: part.source.clone(),
                        partition: part.partition,
                        worker,
                        next_offset: part.reader.next_offset(),
                        max_ts: tracker.max_ts(index),
                        idle: tracker.is_idle(index, now),
                        finished: finished[index],
                    })
                    .collect();
            }

            if more {
                activator.activate();
            } else {
                let wait = tracker
                    .next_idle_check(now)
                    .map_or(POLL_INTERVAL, |d| d.min(POLL_INTERVAL));
                activator.activate_after(wait);
            }
        }
    })
}
