//! The source operator: reads a worker's partitions and emits each event at its timely time.
//!
//! DESIGN §3: an event belongs at its own time (`floor(ts) + tick`); once the source's
//! frontier has passed that time (the event is later than the watermark allows) it enters
//! at the frontier instead and is counted as late. The frontier follows the watermark of
//! the worker's partitions, including the idle rule, so that every record becomes visible
//! once input stops.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use flowscope_connectors::{DeadLetter, EventPartition, PollStatus};
use flowscope_events::Event;
use flowscope_operators::{Millis, TimeModel, WatermarkTracker};
use rustc_hash::FxHashMap;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use crate::status::{PartitionStatus, WorkerStats};

/// Records read from one partition before the operator yields to the rest of the dataflow.
const CHUNK: usize = 4096;
/// Chunks per partition per activation: bounds how long one activation runs.
const CHUNKS_PER_ACTIVATION: usize = 8;
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

/// Builds the source operator for this worker's `partitions`.
///
/// A worker with no partitions holds nothing back: its operator drops its capability.
/// `stop` makes the operator drop its capability too, so that the dataflow can finish.
pub fn event_source<'scope>(
    scope: Scope<'scope, Millis>,
    mut partitions: Vec<AssignedPartition>,
    timing: SourceTiming,
    stats: Rc<RefCell<WorkerStats>>,
    stop: Rc<std::cell::Cell<bool>>,
) -> Stream<'scope, Millis, Vec<Event>> {
    source(scope, "EventSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut tracker = WatermarkTracker::new(
            partitions.len(),
            timing.lateness,
            timing.idle_timeout,
            Instant::now(),
        );
        let mut finished = vec![false; partitions.len()];
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
                capability = None;
                return;
            }
            // The frontier as the records read so far move it: each record is placed against
            // the watermark of the records before it in its partition, however the reads
            // happen to be chunked, and the capability catches up at the end.
            let mut frontier = *cap.time();
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
                    for event in events.drain(..) {
                        if tracker.observe(index, event.ts, now, &timing.time) {
                            if let Some(watermark) = tracker.watermark(&timing.time, now) {
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
                            finished[index] = true;
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
            if let Some(watermark) = tracker.watermark(&timing.time, now) {
                frontier = frontier.max(timing.time.frontier_for_watermark(watermark));
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
