//! [`KafkaDeadLetters`]: the dead-letter topic. Each rejected record is written unchanged,
//! with headers naming why and where it came from; a record that cannot be delivered is
//! appended to a file on disk instead, never dropped.

use flowsight_events::now_ms;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;

use super::config::KafkaOptions;
use crate::dead_letter::DeadLetter;
use crate::sink::{DeadLetterSink, SinkCounts};

/// Header names of a dead-letter record.
pub mod headers {
    /// The stable reason code, [`DeadLetter::reason`](crate::DeadLetter::reason).
    pub const REASON: &str = "flowsight.reason";
    /// The human-readable error message.
    pub const ERROR: &str = "flowsight.error";
    /// The topic the record was read from ([`Position::source`](crate::Position::source)).
    pub const SOURCE_TOPIC: &str = "flowsight.source.topic";
    /// The partition it was read from, in decimal.
    pub const SOURCE_PARTITION: &str = "flowsight.source.partition";
    /// Its offset in that partition, in decimal.
    pub const SOURCE_OFFSET: &str = "flowsight.source.offset";
    /// When the engine rejected the record, ms since the epoch.
    pub const TIME: &str = "flowsight.time";
}

/// A dead letter waiting for its delivery report.
struct InFlight {
    letter: DeadLetter,
    time: u64,
}

struct Spill {
    path: PathBuf,
    file: Mutex<Option<File>>,
    count: AtomicU64,
    delivered: AtomicU64,
}

impl Spill {
    /// Appends the letter, whole, to the spill file: one JSON object per line.
    fn keep(&self, letter: &DeadLetter, time: u64, why: &str) {
        #[derive(Serialize)]
        struct Kept<'a> {
            reason: &'a str,
            error: &'a str,
            source: &'a str,
            partition: u32,
            offset: u64,
            time: u64,
            /// The record's bytes, exactly, in hexadecimal.
            bytes_hex: String,
            not_delivered_because: &'a str,
        }
        let raw = letter.raw.as_deref().unwrap_or(letter.bytes.as_bytes());
        let kept = Kept {
            reason: &letter.reason,
            error: &letter.error,
            source: &letter.position.source,
            partition: letter.position.partition,
            offset: letter.position.offset,
            time,
            bytes_hex: raw.iter().map(|b| format!("{b:02x}")).collect(),
            not_delivered_because: why,
        };
        let mut line = serde_json::to_vec(&kept).unwrap_or_default();
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(opened) => *file = Some(opened),
                Err(error) => {
                    tracing::error!(
                        path = %self.path.display(),
                        "cannot keep an undelivered dead letter on disk: {error}; it stays in /v1/dead-letters only"
                    );
                    return;
                }
            }
        }
        if let Some(file) = file.as_mut() {
            let written = file.write_all(&line).and_then(|()| file.sync_data());
            if let Err(error) = written {
                tracing::error!(path = %self.path.display(), "cannot write an undelivered dead letter: {error}");
                return;
            }
        }
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if total == 1 || total.is_power_of_two() {
            tracing::warn!(
                path = %self.path.display(),
                "{total} dead letter(s) could not be written to the dead-letter topic ({why}); kept on disk"
            );
        }
    }
}

struct DeliveryContext {
    spill: Arc<Spill>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("Kafka (dead letters): {error}: {reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, in_flight: Box<InFlight>) {
        match result {
            Ok(_) => {
                self.spill.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.spill
                    .keep(&in_flight.letter, in_flight.time, &error.to_string())
            }
        }
    }
}

/// Writes dead letters to a Kafka topic.
pub struct KafkaDeadLetters {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    spill: Arc<Spill>,
}

impl KafkaDeadLetters {
    /// A producer for `topic`; letters it cannot deliver go to `spill_path`.
    pub fn new(
        options: &KafkaOptions,
        topic: &str,
        spill_path: &Path,
    ) -> Result<KafkaDeadLetters, KafkaError> {
        let spill = Arc::new(Spill {
            path: spill_path.to_path_buf(),
            file: Mutex::new(None),
            count: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        let producer = options
            .producer_config("flowsight-dead-letters")
            .create_with_context(DeliveryContext {
                spill: Arc::clone(&spill),
            })?;
        Ok(KafkaDeadLetters {
            producer,
            topic: topic.to_string(),
            spill,
        })
    }

    /// The dead-letter topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn send(&self, letter: &DeadLetter) {
        let time = now_ms();
        let mut in_flight = Box::new(InFlight {
            letter: letter.clone(),
            time,
        });
        // Blocks (briefly, in steps) while the producer's queue is full rather than
        // dropping the letter; gives up to the disk only after a long wait.
        for _ in 0..3000 {
            let partition = in_flight.letter.position.partition.to_string();
            let offset = in_flight.letter.position.offset.to_string();
            let time_text = time.to_string();
            let record_headers = OwnedHeaders::new()
                .insert(Header {
                    key: headers::REASON,
                    value: Some(in_flight.letter.reason.as_bytes()),
                })
                .insert(Header {
                    key: headers::ERROR,
                    value: Some(in_flight.letter.error.as_bytes()),
                })
                .insert(Header {
                    key: headers::SOURCE_TOPIC,
                    value: Some(in_flight.letter.position.source.as_bytes()),
                })
                .insert(Header {
                    key: headers::SOURCE_PARTITION,
                    value: Some(partition.as_bytes()),
                })
                .insert(Header {
                    key: headers::SOURCE_OFFSET,
                    value: Some(offset.as_bytes()),
                })
                .insert(Header {
                    key: headers::TIME,
                    value: Some(time_text.as_bytes()),
                });
            let payload: Vec<u8> = in_flight
                .letter
                .raw
                .clone()
                .unwrap_or_else(|| in_flight.letter.bytes.clone().into_bytes());
            let record = BaseRecord::with_opaque_to(&self.topic, in_flight)
                .payload(&payload)
                .headers(record_headers);
            match self.producer.send::<(), _>(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    in_flight = record.delivery_opaque;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, record)) => {
                    self.spill
                        .keep(&record.delivery_opaque.letter, time, &error.to_string());
                    return;
                }
            }
        }
        self.spill
            .keep(&in_flight.letter, time, "the producer's queue stayed full");
    }

    fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer
            .flush(timeout)
            .map_err(|e| format!("dead-letter topic {}: {e}", self.topic))
    }

    fn counts(&self) -> SinkCounts {
        SinkCounts {
            delivered: self.spill.delivered.load(Ordering::Relaxed),
            kept_on_disk: self.spill.count.load(Ordering::Relaxed),
        }
    }
}
