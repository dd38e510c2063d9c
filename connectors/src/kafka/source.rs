//! [`KafkaSource`]: the partitions of a topic that one worker reads.
//!
//! Each worker has its own consumer and is assigned its partitions directly — partition
//! `p` belongs to worker `p % peers` of the whole cluster — with no consumer group and no
//! commits: the engine's checkpoint says where each partition starts. Every partition is
//! read through its own queue (librdkafka's partition queues), so the engine polls the
//! partitions one by one like any other [`EventPartition`]. New partitions of the topic are
//! picked up as the metadata shows them.

use flowsight_events::lock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowsight_events::Event;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

use super::config::KafkaOptions;
use crate::dead_letter::{DeadLetter, Position};
use crate::decode::MessageDecoder;
use crate::format::Format;
use crate::source::{EventPartition, PartitionSource, PollStatus};

/// How often the topic's partition count is looked up again.
const DISCOVER_EVERY: Duration = Duration::from_secs(5);
/// How long one metadata lookup may block the worker.
const METADATA_TIMEOUT: Duration = Duration::from_millis(500);

/// The end offset (high watermark) of each partition, from librdkafka's statistics.
type EndOffsets = Arc<Mutex<HashMap<i32, u64>>>;

/// Messages that reached the consumer's main queue instead of their partition's queue
/// (fetched before the queue was split off); they are handed to their partition.
type Strays = Arc<Mutex<VecDeque<(i64, Option<Vec<u8>>)>>>;

/// Receives librdkafka's statistics and errors for one consumer.
pub struct SourceContext {
    topic: String,
    ends: EndOffsets,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut ends = lock(&self.ends);
        for (id, partition) in &topic.partitions {
            // -1 is "not known yet"; the internal partition -1 is librdkafka's own.
            if *id >= 0 && partition.hi_offset >= 0 {
                ends.insert(*id, partition.hi_offset as u64);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition reaches the partition's queue too, where it is used.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(topic = %self.topic, "Kafka: {error}: {reason}");
    }
}

impl ConsumerContext for SourceContext {}

type SourceConsumer = BaseConsumer<SourceContext>;

/// Why a worker could not start reading its topic.
#[derive(Debug, thiserror::Error)]
#[error("cannot create a Kafka consumer for {topic}: {source}")]
pub struct ConsumerError {
    topic: String,
    source: KafkaError,
}

/// One worker's share of a topic's partitions.
pub struct KafkaSource {
    consumer: Arc<SourceConsumer>,
    topic: String,
    format: Format,
    worker: usize,
    peers: usize,
    /// Where each partition starts (from the checkpoint); others start at the beginning.
    start: BTreeMap<u32, u64>,
    /// Partitions `0..known` of the topic have been looked at.
    known: u32,
    ends: EndOffsets,
    strays: HashMap<i32, Strays>,
    next_discovery: Instant,
}

impl KafkaSource {
    /// A consumer for worker `worker` of `peers`; it reads nothing until
    /// [`discover`](PartitionSource::discover) assigns its partitions.
    pub fn new(
        options: &KafkaOptions,
        topic: &str,
        format: Format,
        worker: usize,
        peers: usize,
        start: BTreeMap<u32, u64>,
    ) -> Result<KafkaSource, ConsumerError> {
        let ends = EndOffsets::default();
        let context = SourceContext {
            topic: topic.to_string(),
            ends: Arc::clone(&ends),
        };
        let consumer: SourceConsumer = options
            .consumer_config(&format!("flowsight-worker-{worker}"))
            .create_with_context(context)
            .map_err(|source| ConsumerError {
                topic: topic.to_string(),
                source,
            })?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            topic: topic.to_string(),
            format,
            worker,
            peers: peers.max(1),
            start,
            known: 0,
            ends,
            strays: HashMap::new(),
            next_discovery: Instant::now(),
        })
    }

    fn assign(&mut self, partition: u32) -> Option<KafkaPartition> {
        let id = i32::try_from(partition).ok()?;
        // Split the partition's queue off before assigning it, so that its messages never
        // land in the main queue.
        let queue = self.consumer.split_partition_queue(&self.topic, id)?;
        let start = self.start.get(&partition).copied();
        let offset = start.map_or(Offset::Beginning, |o| Offset::Offset(o as i64));
        let mut list = TopicPartitionList::new();
        if let Err(error) = list.add_partition_offset(&self.topic, id, offset) {
            tracing::error!(topic = %self.topic, partition, "cannot assign: {error}");
            return None;
        }
        if let Err(error) = self.consumer.incremental_assign(&list) {
            tracing::error!(topic = %self.topic, partition, "cannot assign: {error}");
            return None;
        }
        let strays = Strays::default();
        self.strays.insert(id, Arc::clone(&strays));
        tracing::debug!(topic = %self.topic, partition, worker = self.worker, ?start, "assigned");
        Some(KafkaPartition {
            consumer: Arc::clone(&self.consumer),
            paused: false,
            queue,
            reader: MessageReader {
                topic: self.topic.clone(),
                partition,
                decoder: MessageDecoder::new(self.format),
                next_offset: start.unwrap_or(0),
                held: None,
                stop_at: None,
                at_end: false,
            },
            ends: Arc::clone(&self.ends),
            strays,
            last_error: None,
        })
    }
}

impl PartitionSource for KafkaSource {
    fn name(&self) -> &str {
        &self.topic
    }

    fn discover(&mut self) -> Vec<(u32, Box<dyn EventPartition>)> {
        let now = Instant::now();
        if now < self.next_discovery {
            return Vec::new();
        }
        self.next_discovery = now + DISCOVER_EVERY;
        let count = match self
            .consumer
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
        {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == self.topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len() as u32),
            Err(error) => {
                tracing::warn!(topic = %self.topic, "cannot look up the topic's partitions: {error}");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for partition in new_partitions(self.known, count, self.worker, self.peers) {
            match self.assign(partition) {
                Some(reader) => {
                    found.push((partition, Box::new(reader) as Box<dyn EventPartition>))
                }
                // Tried again at the next discovery.
                None => return found,
            }
            self.known = partition + 1;
        }
        self.known = self.known.max(count);
        found
    }

    fn service(&mut self) {
        // Serves the statistics and error callbacks; messages should all go to their
        // partition queues, but any that did not are handed on, never dropped.
        while let Some(result) = self.consumer.poll(Duration::ZERO) {
            match result {
                Ok(message) => match self.strays.get(&message.partition()) {
                    Some(strays) => lock(strays)
                        .push_back((message.offset(), message.payload().map(<[u8]>::to_vec))),
                    None => tracing::error!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "a message of a partition this worker does not read"
                    ),
                },
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(error) => tracing::warn!(topic = %self.topic, "Kafka: {error}"),
            }
        }
    }

    fn may_grow(&self) -> bool {
        true
    }
}

/// The partitions among `known..count` that worker `worker` of `peers` reads.
fn new_partitions(known: u32, count: u32, worker: usize, peers: usize) -> Vec<u32> {
    (known..count)
        .filter(|p| *p as usize % peers == worker)
        .collect()
}

/// One partition of the topic, read through its own queue.
pub struct KafkaPartition {
    /// The worker's consumer, to pause and resume this partition's fetching.
    consumer: Arc<SourceConsumer>,
    /// Fetching is paused while the engine waits for its views.
    paused: bool,
    queue: rdkafka::consumer::base_consumer::PartitionQueue<SourceContext>,
    /// Apart from the queue, so that a message borrowed from the queue can be offered.
    reader: MessageReader,
    ends: EndOffsets,
    strays: Strays,
    last_error: Option<String>,
}

/// Where a partition's reading stands, and what turns its messages into events.
struct MessageReader {
    topic: String,
    partition: u32,
    decoder: MessageDecoder,
    next_offset: u64,
    /// A message read past [`stop_at`](EventPartition::stop_at), given out once it is lifted.
    held: Option<(i64, Option<Vec<u8>>)>,
    stop_at: Option<u64>,
    /// The last poll found the end of the partition.
    at_end: bool,
}

/// Decodes one message into an event or a dead letter that keeps its bytes unchanged.
fn decode_message(
    decoder: &mut MessageDecoder,
    topic: &str,
    partition: u32,
    offset: u64,
    payload: &[u8],
    events: &mut Vec<Event>,
    dead: &mut Vec<DeadLetter>,
) {
    match decoder.decode(payload) {
        Ok(event) => events.push(event),
        Err(error) => {
            let position = Position {
                source: topic.to_string(),
                partition,
                offset,
            };
            dead.push(DeadLetter::new(&error, position, payload).with_raw(payload.to_vec()));
        }
    }
}

impl MessageReader {
    /// Takes one message, unless it lies at or past `stop_at`: then it is held back.
    fn offer(
        &mut self,
        offset: i64,
        payload: Option<&[u8]>,
        events: &mut Vec<Event>,
        dead: &mut Vec<DeadLetter>,
    ) -> bool {
        let at = u64::try_from(offset).unwrap_or(0);
        if self.stop_at.is_some_and(|stop| at >= stop) {
            self.held = Some((offset, payload.map(<[u8]>::to_vec)));
            // The held message is the next to read: the stop has been reached.
            self.next_offset = at;
            return false;
        }
        self.at_end = false;
        self.next_offset = at + 1;
        decode_message(
            &mut self.decoder,
            &self.topic,
            self.partition,
            at,
            payload.unwrap_or_default(),
            events,
            dead,
        );
        true
    }
}

impl EventPartition for KafkaPartition {
    fn poll(
        &mut self,
        max: usize,
        events: &mut Vec<Event>,
        dead: &mut Vec<DeadLetter>,
    ) -> PollStatus {
        let mut taken = 0;
        // Owned messages (held back past a stop, or strays) come before the queue's.
        while taken < max {
            let owned = match self.reader.held.take() {
                Some(held) => Some(held),
                None => lock(&self.strays).pop_front(),
            };
            let Some((offset, payload)) = owned else {
                break;
            };
            if !self.reader.offer(offset, payload.as_deref(), events, dead) {
                return PollStatus::Ready;
            }
            taken += 1;
        }
        while taken < max {
            let message = match self.queue.poll(Duration::ZERO) {
                None => return PollStatus::Pending,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    self.reader.at_end = true;
                    return PollStatus::Pending;
                }
                Some(Err(error)) => {
                    let text = error.to_string();
                    if self.last_error.as_deref() != Some(&text) {
                        let (topic, partition) = (&self.reader.topic, self.reader.partition);
                        tracing::warn!(topic = %topic, partition, "Kafka: {text}");
                        self.last_error = Some(text);
                    }
                    return PollStatus::Pending;
                }
                Some(Ok(message)) => message,
            };
            if !self
                .reader
                .offer(message.offset(), message.payload(), events, dead)
            {
                return PollStatus::Ready;
            }
            taken += 1;
        }
        PollStatus::Ready
    }

    fn next_offset(&self) -> u64 {
        self.reader.next_offset
    }

    fn pause(&mut self, paused: bool) {
        if paused == self.paused {
            return;
        }
        let mut list = TopicPartitionList::new();
        let id = i32::try_from(self.reader.partition).unwrap_or(i32::MAX);
        list.add_partition(&self.reader.topic, id);
        let done = match paused {
            true => self.consumer.pause(&list),
            false => self.consumer.resume(&list),
        };
        match done {
            Ok(()) => self.paused = paused,
            // Not fatal: the partition is only read when polled; its client may prefetch.
            Err(error) => tracing::warn!(
                topic = %self.reader.topic,
                partition = self.reader.partition,
                "cannot {} fetching: {error}",
                if paused { "pause" } else { "resume" }
            ),
        }
    }

    fn end_offset(&self) -> Option<u64> {
        let reported = lock(&self.ends)
            .get(&(self.reader.partition as i32))
            .copied();
        match (reported, self.reader.at_end) {
            (Some(end), _) => Some(end.max(self.reader.next_offset)),
            (None, true) => Some(self.reader.next_offset),
            (None, false) => None,
        }
    }

    fn stop_at(&mut self, offset: Option<u64>) {
        self.reader.stop_at = offset;
    }

    fn at_end(&self) -> bool {
        self.reader.at_end
    }

    fn on_ready(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        // Called on librdkafka's thread when the queue turns non-empty.
        self.queue.set_nonempty_callback(move || wake());
    }
}

#[cfg(test)]
mod tests {
    use super::new_partitions;

    #[test]
    fn each_partition_goes_to_one_worker_and_growth_adds_only_the_new_ones() {
        // 6 partitions over 4 workers, then the topic grows to 10.
        let first: Vec<Vec<u32>> = (0..4).map(|w| new_partitions(0, 6, w, 4)).collect();
        assert_eq!(first, vec![vec![0, 4], vec![1, 5], vec![2], vec![3]]);
        let grown: Vec<Vec<u32>> = (0..4).map(|w| new_partitions(6, 10, w, 4)).collect();
        assert_eq!(grown, vec![vec![8], vec![9], vec![6], vec![7]]);
        assert!(new_partitions(10, 10, 0, 4).is_empty());
    }
}
