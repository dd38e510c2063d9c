//! Looking topics up and creating them: the engine checks its topic before the workers
//! start, creates the dead-letter topic when missing, and `flowsight produce --partitions`
//! creates the topic it writes to.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::config::KafkaOptions;

/// Why a topic could not be looked up or created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// A metadata request to the brokers failed, most often because none answered in time.
    #[error("cannot reach the Kafka brokers at {brokers} within {timeout:?}: {source}")]
    Unreachable {
        /// The brokers asked, as configured ([`KafkaOptions::brokers`]).
        brokers: String,
        /// How long the request was allowed to take.
        timeout: Duration,
        /// The client's error.
        source: KafkaError,
    },
    /// The admin client could not be built, or its request to create a topic failed.
    #[error("Kafka client: {0}")]
    Client(KafkaError),
    /// The brokers refused to create the topic, or did not list it in time afterwards.
    #[error("cannot create topic {topic}: {reason}")]
    Create {
        /// The topic that was to be created.
        topic: String,
        /// The brokers' error code, or why the topic is not usable yet.
        reason: String,
    },
}

fn admin(options: &KafkaOptions) -> Result<AdminClient<DefaultClientContext>, TopicError> {
    options
        .admin_config("flowsight-admin")
        .create()
        .map_err(TopicError::Client)
}

/// The number of partitions of `topic`, or `None` if the brokers do not know it.
///
/// Looking a topic up never creates it. The request asks for every topic's metadata rather
/// than naming this one: a request naming a missing topic creates it on brokers configured
/// to auto-create topics (Apache Kafka's default) unless the client opts out, and some
/// brokers create it whatever the client says; a request for all topics creates nothing.
pub fn topic_partitions(
    options: &KafkaOptions,
    topic: &str,
    timeout: Duration,
) -> Result<Option<u32>, TopicError> {
    let admin = admin(options)?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|source| TopicError::Unreachable {
            brokers: options.brokers.clone(),
            timeout,
            source,
        })?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if found.error().is_some() || found.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(found.partitions().len() as u32))
}

/// Creates `topic` with `partitions` partitions unless it exists; returns its partition
/// count either way.
pub fn ensure_topic(
    options: &KafkaOptions,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Result<u32, TopicError> {
    if let Some(existing) = topic_partitions(options, topic, timeout)? {
        return Ok(existing);
    }
    let admin = admin(options)?;
    let new = NewTopic::new(
        topic,
        i32::try_from(partitions).unwrap_or(i32::MAX),
        TopicReplication::Fixed(-1),
    );
    let results = futures_executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(timeout)),
    ))
    .map_err(TopicError::Client)?;
    for result in results {
        match result {
            Ok(_) => {}
            // Created by someone else in the meantime: fine.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(TopicError::Create {
                    topic: topic.to_string(),
                    reason: code.to_string(),
                })
            }
        }
    }
    // Metadata may lag the creation by a moment.
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(count) = topic_partitions(options, topic, timeout)? {
            return Ok(count);
        }
        if std::time::Instant::now() >= deadline {
            return Err(TopicError::Create {
                topic: topic.to_string(),
                reason: "created, but the brokers do not list it yet".to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
