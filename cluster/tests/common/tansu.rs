//! Tansu, a Kafka-protocol broker, started by the Kafka tests on a free loopback port with
//! its in-memory storage; reading a topic back with librdkafka; running `flowsight
//! produce`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowsight_connectors::kafka::{ensure_topic, topic_partitions, KafkaOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::free_port;

/// How long the broker may take to answer its first metadata request.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The Tansu binary: `$TANSU_BIN`, else `tansu` on the PATH, else `~/.cargo/bin/tansu`.
/// Never skips: a missing broker is a failed test.
pub fn tansu_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "TANSU_BIN={} is not a file. Tansu is not installed: run scripts/setup.sh",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(bin) = on_path {
        return bin;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let bin = PathBuf::from(home).join(".cargo/bin/tansu");
        if bin.is_file() {
            return bin;
        }
    }
    panic!("Tansu is not installed: run scripts/setup.sh");
}

/// A running broker with in-memory storage, killed when dropped.
pub struct Tansu {
    child: Child,
    brokers: String,
}

impl Tansu {
    /// Starts a broker on a free loopback port and waits until it answers metadata
    /// requests.
    pub fn start() -> Tansu {
        let bin = tansu_binary();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut tansu = Tansu {
            child,
            brokers: format!("127.0.0.1:{port}"),
        };
        let options = KafkaOptions::new(tansu.brokers.clone());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = tansu.child.try_wait() {
                panic!(
                    "Tansu ({}) exited at start with {status}; a binary without the memory \
                     storage engine fails so: run scripts/setup.sh",
                    bin.display()
                );
            }
            let probe = topic_partitions(&options, "probe", Duration::from_secs(2));
            match probe {
                Ok(_) => return tansu,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "Tansu on {} did not answer a metadata request within {START_TIMEOUT:?}: {e}",
                    tansu.brokers
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port` of the broker.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Creates `topic` with `partitions` partitions (or checks it has them).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let got = ensure_topic(
            &KafkaOptions::new(self.brokers.clone()),
            topic,
            partitions,
            ADMIN_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("cannot create topic {topic}: {e}"));
        assert_eq!(got, partitions, "topic {topic} has {got} partitions");
    }

    /// The partition count of `topic`, `None` when the broker does not know it.
    pub fn partitions(&self, topic: &str) -> Option<u32> {
        topic_partitions(
            &KafkaOptions::new(self.brokers.clone()),
            topic,
            ADMIN_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("cannot look topic {topic} up: {e}"))
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record read back from a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub partition: u32,
    pub offset: u64,
    pub payload: Vec<u8>,
    /// Header values as (lossy) UTF-8; a header without a value is "".
    pub headers: BTreeMap<String, String>,
}

/// Reads every partition of `topic` from its beginning until `expect` records were read
/// (then a little longer, to see any extra ones), without joining a consumer group.
/// Panics, naming what was read, when `expect` records do not arrive within `timeout`.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expect: usize,
    timeout: Duration,
) -> Vec<TopicRecord> {
    let partitions = topic_partitions(&KafkaOptions::new(brokers), topic, ADMIN_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot look topic {topic} up: {e}"))
        .unwrap_or_else(|| panic!("topic {topic} does not exist"));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Required by librdkafka; never used: partitions are assigned, nothing is committed.
        .set("group.id", "flowsight-tests-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("log_level", "3")
        .create()
        .expect("cannot create a Kafka consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, Offset::Beginning)
            .unwrap();
    }
    consumer
        .assign(&assignment)
        .expect("cannot assign the partitions");
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_until: Option<Instant> = None;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|header| {
                                (
                                    header.key.to_string(),
                                    header
                                        .value
                                        .map(|v| String::from_utf8_lossy(v).into_owned())
                                        .unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(TopicRecord {
                    partition: message.partition() as u32,
                    offset: message.offset() as u64,
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None => {}
        }
        if records.len() >= expect {
            // Keep polling for a moment: more records than expected is a failure too.
            let until = *quiet_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
            if Instant::now() >= until {
                break;
            }
        } else {
            assert!(
                Instant::now() < deadline,
                "read {} of the {expect} records expected in {topic} within {timeout:?}; \
                 per partition: {:?}",
                records.len(),
                per_partition(&records)
            );
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

fn per_partition(records: &[TopicRecord]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.partition).or_default() += 1;
    }
    counts
}

/// `flowsight produce --brokers B --topic T <args>`, as a child process.
pub fn spawn_produce(brokers: &str, topic: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .args(["produce", "--brokers", brokers, "--topic", topic])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start flowsight produce")
}

/// Waits for a `flowsight produce` child and asserts it succeeded; returns its stderr.
pub fn finish_produce(child: Child) -> String {
    let output = child
        .wait_with_output()
        .expect("flowsight produce did not run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "flowsight produce failed with {}: {stderr}",
        output.status
    );
    stderr
}

/// Runs `flowsight produce --brokers B --topic T <args>` to the end, asserts exit 0 and
/// that it reports `records` records produced.
pub fn produce(brokers: &str, topic: &str, args: &[&str], records: usize) {
    let stderr = finish_produce(spawn_produce(brokers, topic, args));
    assert!(
        stderr.contains(&format!("produced {records} records")),
        "flowsight produce did not produce {records} records: {stderr}"
    );
}
