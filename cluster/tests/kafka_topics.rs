//! No client of ours creates a topic it was not asked to, even on a broker that creates a
//! topic on any metadata request that names it (Tansu does, as Apache Kafka does by
//! default): a mistyped `--topic` or `--alerts-topic` is refused with "does not exist",
//! and `produce --partitions N` creates exactly N partitions.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::tansu::{spawn_produce, Tansu};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

/// Runs `flowsight <args>` to its end within a minute; returns (success, stderr).
fn flowsight(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start flowsight");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("flowsight {args:?} did not exit within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("flowsight output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `flowsight run --source kafka --topic <topic> <extra>` with a state directory of its own.
fn run_kafka(brokers: &str, topic: &str, extra: &[&str]) -> (bool, String) {
    let state = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "--source",
        "kafka",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--http",
        "127.0.0.1:0",
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    flowsight(&args)
}

#[test]
fn no_client_creates_a_topic_it_was_not_asked_to() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();

    // The broker does create topics on lookup: a plain client naming a topic makes it.
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "3")
        .create()
        .expect("a plain producer");
    let _ = plain
        .client()
        .fetch_metadata(Some("made-by-lookup"), Duration::from_secs(5));
    assert!(
        tansu.partitions("made-by-lookup").is_some(),
        "this broker no longer creates topics on lookup: the test below proves nothing"
    );

    // A mistyped source topic is refused, and stays missing.
    let (ok, stderr) = run_kafka(brokers, "flwos", &[]);
    assert!(!ok, "run against a missing topic must fail: {stderr}");
    assert!(
        stderr.contains("topic flwos does not exist"),
        "run names the missing topic: {stderr}"
    );
    assert_eq!(tansu.partitions("flwos"), None, "run created its topic");
    assert_eq!(
        tansu.partitions("flwos.dead-letters"),
        None,
        "run created a dead-letter topic for a topic it refused"
    );

    // produce without --partitions is refused; with it, creates exactly that many.
    let (ok, stderr) = flowsight(&[
        "produce",
        "--brokers",
        brokers,
        "--topic",
        "typo",
        "--count",
        "10",
        "--fast",
    ]);
    assert!(
        !ok,
        "produce to a missing topic without --partitions must fail"
    );
    assert!(stderr.contains("topic typo does not exist"), "{stderr}");
    assert_eq!(tansu.partitions("typo"), None, "produce created its topic");

    let child = spawn_produce(
        brokers,
        "five",
        &["--partitions", "5", "--count", "100", "--fast"],
    );
    let stderr = common::tansu::finish_produce(child);
    assert!(
        stderr.contains("produced 100 records to five (5 partitions)"),
        "{stderr}"
    );
    assert_eq!(tansu.partitions("five"), Some(5));

    // A mistyped alerts topic is refused before anything runs, and stays missing.
    tansu.create_topic("flows", 2);
    let (ok, stderr) = run_kafka(brokers, "flows", &["--alerts-topic", "alrets"]);
    assert!(!ok, "run with a missing alerts topic must fail: {stderr}");
    assert!(
        stderr.contains("alerts topic alrets does not exist"),
        "{stderr}"
    );
    assert_eq!(
        tansu.partitions("alrets"),
        None,
        "run created the alerts topic"
    );
}
