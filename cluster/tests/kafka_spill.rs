//! A dead letter that the dead-letter topic will not take is kept on disk, whole, and
//! counted as such — never dropped.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::tansu::{produce, Tansu};
use common::{free_port, try_get, write_native, Flowsight};

#[test]
fn a_dead_letter_the_topic_refuses_is_kept_on_disk_with_its_exact_bytes() {
    let tansu = Tansu::start();
    tansu.create_topic("flows", 2);
    let dir = tempfile::tempdir().unwrap();
    let events = common::generated(3, 2, 1_000, 1_780_000_000_000, 2_000, 50);
    let path = dir.path().join("flows.jsonl");
    write_native(&path, &events);
    // A record just over the decoder's 1 MiB limit: a `too_large` dead letter, and more
    // than librdkafka's default message.max.bytes (1,000,000), so the dead-letter
    // producer refuses it locally. Bytes that are not UTF-8 make "exactly" meaningful.
    let mut big = b"{\"ts\":\xff".to_vec();
    big.extend(std::iter::repeat_n(b'y', 1 << 20));
    big.push(b'}');
    let mut text = std::fs::read(&path).unwrap();
    text.extend_from_slice(&big);
    text.push(b'\n');
    std::fs::write(&path, &text).unwrap();
    produce(
        tansu.brokers(),
        "flows",
        &[
            "--path",
            path.to_str().unwrap(),
            "--kafka-option",
            "message.max.bytes=4000000",
        ],
        events.len() + 1,
    );

    let state = dir.path().join("state");
    let fs = Flowsight::run(
        &[
            "--source",
            "kafka",
            "--brokers",
            tansu.brokers(),
            "--topic",
            "flows",
            "--state-dir",
            state.to_str().unwrap(),
            "--idle-timeout",
            "200ms",
        ],
        free_port(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some((200, status)) = try_get(&format!("{}/v1/status", fs.base)) {
            if status["records"] == events.len() as u64
                && status["dead_letter_sink"]["kept_on_disk"] == 1
            {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "no dead letter kept on disk: {status}"
            );
        }
        assert!(Instant::now() < deadline, "flowsight did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["dead_letters_by_reason"]["too_large"], 1, "{status}");
    assert_eq!(status["dead_letter_sink"]["delivered"], 0, "{status}");

    let spill = state.join("dead-letters").join("flows.dead-letters.jsonl");
    let kept = std::fs::read_to_string(&spill)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", spill.display()));
    let lines: Vec<serde_json::Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{kept:.300}");
    let letter = &lines[0];
    assert_eq!(letter["reason"], "too_large");
    assert_eq!(letter["source"], "flows");
    // `produce --path` sends line i to partition i % 2: the big line is the last one.
    assert_eq!(letter["partition"], (events.len() % 2) as u64);
    assert_eq!(letter["offset"], (events.len() / 2) as u64);
    let hex: String = big.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        letter["bytes_hex"].as_str().unwrap(),
        hex,
        "the kept bytes differ"
    );
    assert!(letter["not_delivered_because"]
        .as_str()
        .is_some_and(|why| !why.is_empty()));
}
