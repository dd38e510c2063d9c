//! [`EventProducer`]: writes records into a topic, for `flowsight produce` (demos, load
//! tests, replaying a capture into Kafka). Every record is acknowledged or counted as
//! failed; none is dropped silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::config::KafkaOptions;

/// Why an [`EventProducer`] could not be built or could not get its records delivered.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// librdkafka refused to build the producer (e.g. an invalid option).
    #[error("cannot create a Kafka producer: {0}")]
    Create(KafkaError),
    /// A record could not be queued for a reason other than a full queue.
    #[error("cannot write to {topic}: {source}")]
    Send {
        /// The topic written to.
        topic: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The flush finished, but records were refused or timed out since the producer was
    /// created.
    #[error("{failed} record(s) could not be delivered to {topic} (first error: {first})")]
    Undelivered {
        /// The topic written to.
        topic: String,
        /// Records that failed since the producer was created.
        failed: u64,
        /// The first delivery error, as text.
        first: String,
    },
    /// Some records were still waiting for an answer when the flush gave up.
    #[error("records to {topic} still unacknowledged after {timeout:?}")]
    FlushTimeout {
        /// The topic written to.
        topic: String,
        /// How long the flush waited.
        timeout: Duration,
    },
}

#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

struct CountingContext {
    deliveries: Arc<Deliveries>,
}

impl ClientContext for CountingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("Kafka (producer): {error}: {reason}");
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.deliveries.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .deliveries
                    .first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Writes records to one topic.
pub struct EventProducer {
    producer: ThreadedProducer<CountingContext>,
    topic: String,
    deliveries: Arc<Deliveries>,
}

impl EventProducer {
    /// A producer for `topic` whose connections are named `flowsight-produce`.
    pub fn new(options: &KafkaOptions, topic: &str) -> Result<EventProducer, ProduceError> {
        EventProducer::named(options, topic, "flowsight-produce")
    }

    /// A producer whose connections carry `client_id`, so brokers' logs tell them apart.
    pub fn named(
        options: &KafkaOptions,
        topic: &str,
        client_id: &str,
    ) -> Result<EventProducer, ProduceError> {
        let deliveries = Arc::new(Deliveries::default());
        let producer = options
            .producer_config(client_id)
            .create_with_context(CountingContext {
                deliveries: Arc::clone(&deliveries),
            })
            .map_err(ProduceError::Create)?;
        Ok(EventProducer {
            producer,
            topic: topic.to_string(),
            deliveries,
        })
    }

    /// Queues one record for `partition`, waiting while the producer's queue is full.
    pub fn send(&self, partition: u32, key: &[u8], payload: &[u8]) -> Result<(), ProduceError> {
        self.send_to(Some(partition), key, payload)
    }

    /// Queues one record for the partition the producer's partitioner picks from `key`
    /// (the same key always lands in the same partition), waiting while the queue is full.
    pub fn send_keyed(&self, key: &[u8], payload: &[u8]) -> Result<(), ProduceError> {
        self.send_to(None, key, payload)
    }

    fn send_to(
        &self,
        partition: Option<u32>,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), ProduceError> {
        loop {
            let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
            if let Some(partition) = partition {
                record = record.partition(i32::try_from(partition).unwrap_or(i32::MAX));
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((source, _)) => {
                    return Err(ProduceError::Send {
                        topic: self.topic.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Records acknowledged by the brokers so far.
    pub fn delivered(&self) -> u64 {
        self.deliveries.delivered.load(Ordering::Relaxed)
    }

    /// Records the brokers refused or that timed out so far.
    pub fn failed(&self) -> u64 {
        self.deliveries.failed.load(Ordering::Relaxed)
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits until every queued record is acknowledged; an error if any failed.
    pub fn flush(&self, timeout: Duration) -> Result<u64, ProduceError> {
        self.producer
            .flush(timeout)
            .map_err(|_| ProduceError::FlushTimeout {
                topic: self.topic.clone(),
                timeout,
            })?;
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .deliveries
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(ProduceError::Undelivered {
                topic: self.topic.clone(),
                failed,
                first,
            });
        }
        Ok(self.delivered())
    }
}
