//! Kafka ingest against a real Kafka-protocol broker (Tansu, in memory, one per test):
//! records produced with `flowsight produce` give the oracle's views in every layout and
//! format; malformed records become dead letters, counted by reason and forwarded
//! unchanged to the dead-letter topic; `kill -9` at any moment and SIGTERM lose nothing
//! and count nothing twice; late and out-of-order records land in the windows they
//! belong to.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::tansu::{finish_produce, produce, read_topic, spawn_produce, Tansu};
use common::{
    free_port, oracle_edges, oracle_top, rows, try_get, two_process_hostfile, write_native,
    Flowsight,
};
use flowsight_connectors::{encode, Format};
use flowsight_events::Event;
use flowsight_queries::{EdgeRow, HostSummary};
use serde_json::Value;

const START: u64 = 1_760_000_000_000;
/// How long an engine may take to read a topic to its end and show every record.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Lets records over 1 MiB through librdkafka's producers (the default limit is 1 MB):
/// `flowsight produce` must send the oversized line, and the engine must forward it.
const LARGE_MESSAGES: &str = "message.max.bytes=4000000";

type Windows = &'static [(&'static str, u64)];
const WINDOWS: Windows = &[("2s", 2_000), ("30m", 1_800_000)];

fn windows_arg(windows: Windows) -> String {
    windows
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// `flowsight run --source kafka …` arguments (without --http).
fn engine_args(
    brokers: &str,
    topic: &str,
    state_dir: &Path,
    windows: Windows,
    extra: &[&str],
) -> Vec<String> {
    [
        "--source",
        "kafka",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--idle-timeout",
        "200ms",
        "--windows",
        &windows_arg(windows),
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

fn start(args: &[String], port: u16) -> Flowsight {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Flowsight::run(&args, port)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// What a complete engine shows: these counts, `partitions` partitions all idle, not
/// catching up, and the views complete past every partition's largest timestamp.
#[derive(Clone, Debug)]
struct Expected {
    records: u64,
    dead_letters: BTreeMap<String, u64>,
    partitions: usize,
}

impl Expected {
    fn dead_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }

    fn reached_by(&self, status: &Value) -> bool {
        let Some(partitions) = status["partitions"].as_array() else {
            return false;
        };
        let max_ts = partitions
            .iter()
            .filter_map(|p| p["max_ts"].as_u64())
            .max()
            .unwrap_or(0);
        partitions.len() == self.partitions
            && partitions.iter().all(|p| p["idle"] == true)
            && status["records"].as_u64() == Some(self.records)
            && status["dead_letters"].as_u64() == Some(self.dead_total())
            && status["catching_up"] == false
            && status["as_of"].as_u64().is_some_and(|as_of| as_of > max_ts)
    }
}

/// Waits until `fs` shows everything `expected` says; panics with the last status.
fn wait_until_caught_up(fs: &mut Flowsight, expected: &Expected, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        if let Ok(Some(exit)) = fs.child.try_wait() {
            panic!(
                "flowsight exited early with {exit}; last /v1/status: {}",
                pretty(&last)
            );
        }
        if let Some((code, status)) = try_get(&format!("{}/v1/status", fs.base)) {
            if code == 200 && expected.reached_by(&status) {
                return status;
            }
            last = status;
        }
        assert!(
            Instant::now() < deadline,
            "flowsight did not complete within {timeout:?}: expected {} records, {} dead \
             letters, {} idle partitions, not catching up, as_of past every max_ts; last \
             /v1/status: {}",
            expected.records,
            expected.dead_total(),
            expected.partitions,
            pretty(&last)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks the exact counts of a complete status.
fn check_counts(status: &Value, expected: &Expected, context: &str) {
    assert_eq!(
        status["records"].as_u64(),
        Some(expected.records),
        "{context}: records; status {}",
        pretty(status)
    );
    let by_reason: BTreeMap<String, u64> =
        serde_json::from_value(status["dead_letters_by_reason"].clone())
            .unwrap_or_else(|e| panic!("{context}: dead_letters_by_reason: {e}; {status}"));
    assert_eq!(
        by_reason,
        expected.dead_letters,
        "{context}: dead letters by reason; status {}",
        pretty(status)
    );
    assert_eq!(
        status["dead_letters"].as_u64(),
        Some(expected.dead_total()),
        "{context}"
    );
}

/// Checks the per-partition fields of a Kafka status: every partition of the topic once,
/// read by worker `partition % workers`, read to `end_offsets[p]`. `end_offset` and `lag`
/// are only required to be present: Tansu's high watermarks are not reliable.
fn check_partitions(status: &Value, topic: &str, workers: u64, end_offsets: &[u64], context: &str) {
    let partitions = status["partitions"].as_array().unwrap();
    let mut seen: Vec<u64> = partitions
        .iter()
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..end_offsets.len() as u64).collect::<Vec<_>>(),
        "{context}: {}",
        pretty(status)
    );
    for p in partitions {
        let partition = p["partition"].as_u64().unwrap();
        assert_eq!(p["source"], topic, "{context}: {p}");
        assert_eq!(
            p["worker"].as_u64(),
            Some(partition % workers),
            "{context}: {p}"
        );
        assert_eq!(
            p["next_offset"].as_u64(),
            Some(end_offsets[partition as usize]),
            "{context}: next_offset of partition {partition}: {p}"
        );
        assert_eq!(
            p["finished"], false,
            "{context}: a Kafka partition never ends: {p}"
        );
        for field in ["end_offset", "lag", "reflected_offset", "replaying_until"] {
            assert!(
                p.get(field).is_some(),
                "{context}: partition without {field}: {p}"
            );
        }
    }
}

/// The oracle of `/v1/graph/hosts/{ip}`: every edge of the host each way, heaviest first,
/// and its summary, recomputed from the records.
fn check_host(
    fs: &Flowsight,
    events: &[Event],
    ip: IpAddr,
    window: &str,
    length: u64,
    context: &str,
) -> Value {
    let (code, host) = fs.get(&format!("/v1/graph/hosts/{ip}?window={window}&limit=10000"));
    assert_eq!(code, 200, "{context}: {host}");
    let as_of = host["as_of"].as_u64().unwrap();
    let all = oracle_edges(events, as_of, length);
    let mut out_edges: Vec<EdgeRow> = all.values().filter(|e| e.src_ip == ip).cloned().collect();
    let mut in_edges: Vec<EdgeRow> = all.values().filter(|e| e.dst_ip == ip).cloned().collect();
    out_edges.sort_by(EdgeRow::heaviest_first);
    in_edges.sort_by(EdgeRow::heaviest_first);
    let got_out: Vec<EdgeRow> = serde_json::from_value(host["out_edges"].clone()).unwrap();
    let got_in: Vec<EdgeRow> = serde_json::from_value(host["in_edges"].clone()).unwrap();
    assert_eq!(
        got_out, out_edges,
        "{context}: out edges of {ip}, window {window}, as of {as_of}"
    );
    assert_eq!(
        got_in, in_edges,
        "{context}: in edges of {ip}, window {window}, as of {as_of}"
    );
    let sum = |edges: &[EdgeRow], f: fn(&EdgeRow) -> u64| edges.iter().map(f).sum::<u64>();
    let both = || out_edges.iter().chain(in_edges.iter());
    let summary = HostSummary {
        ip,
        out_peers: out_edges
            .iter()
            .map(|e| e.dst_ip)
            .collect::<BTreeSet<_>>()
            .len() as u64,
        in_peers: in_edges
            .iter()
            .map(|e| e.src_ip)
            .collect::<BTreeSet<_>>()
            .len() as u64,
        connections_out: sum(&out_edges, |e| e.count),
        connections_in: sum(&in_edges, |e| e.count),
        bytes_sent: sum(&out_edges, |e| e.bytes_out) + sum(&in_edges, |e| e.bytes_in),
        bytes_received: sum(&out_edges, |e| e.bytes_in) + sum(&in_edges, |e| e.bytes_out),
        failed_out: sum(&out_edges, |e| e.failed),
        failed_in: sum(&in_edges, |e| e.failed),
        first_seen: both().map(|e| e.first_seen).min(),
        last_seen: both().map(|e| e.last_seen).max(),
    };
    let got: HostSummary = serde_json::from_value(host["host"].clone()).unwrap();
    assert_eq!(
        got, summary,
        "{context}: summary of {ip}, window {window}, as of {as_of}"
    );
    host
}

/// Every window's heaviest 1000 edges equal the oracle's at the answer's as_of, and so
/// does the busiest destination's host answer; returns the answers, to compare layouts.
fn check_views(fs: &Flowsight, events: &[Event], windows: Windows, context: &str) -> Vec<Value> {
    // Failures name the engine's state too.
    let (_, status) = fs.get("/v1/status");
    let partitions: Vec<String> = status["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    format!(
                        "{}: next_offset {} max_ts {} idle {}",
                        p["partition"], p["next_offset"], p["max_ts"], p["idle"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let context = &format!(
        "{context} (status: as_of {} frontier {} records {} late_records {} catching_up {} \
         ready_from {}; partitions {partitions:?})",
        status["as_of"],
        status["frontier"],
        status["records"],
        status["late_records"],
        status["catching_up"],
        status["ready_from"]
    );
    let mut answers = Vec::new();
    for &(window, length) in windows {
        let (code, edges) = fs.get(&format!("/v1/graph/edges?window={window}&limit=1000"));
        assert_eq!(code, 200, "{context}: {edges}");
        let as_of = edges["as_of"].as_u64().unwrap();
        let expected = oracle_top(events, as_of, length, 1000);
        assert_rows_eq(
            &rows(&edges),
            &expected,
            &format!("{context}: edges of window {window} as of {as_of}"),
        );
        answers.push(edges);
    }
    // The busiest destination of the longest window (a hub with many peers).
    let &(longest, length) = windows.last().unwrap();
    let as_of = answers.last().unwrap()["as_of"].as_u64().unwrap();
    let top = oracle_top(events, as_of, length, 1);
    assert!(
        !top.is_empty(),
        "{context}: the oracle's {longest} window is empty at {as_of}"
    );
    for &(window, length) in windows {
        answers.push(check_host(
            fs,
            events,
            top[0].dst_ip,
            window,
            length,
            context,
        ));
    }
    answers
}

/// Asserts that `got` equals `want`, and otherwise says how in a few lines rather than
/// printing both lists whole.
fn assert_rows_eq(got: &[EdgeRow], want: &[EdgeRow], context: &str) {
    if got == want {
        return;
    }
    let key = |e: &EdgeRow| (e.src_ip, e.dst_ip, e.dst_port, e.proto);
    let got_by_key: BTreeMap<_, &EdgeRow> = got.iter().map(|e| (key(e), e)).collect();
    let want_by_key: BTreeMap<_, &EdgeRow> = want.iter().map(|e| (key(e), e)).collect();
    let mut differences = Vec::new();
    for (k, w) in &want_by_key {
        match got_by_key.get(k) {
            None => differences.push(format!("missing: {w:?}")),
            Some(g) if g != w => differences.push(format!("differs: got {g:?}, want {w:?}")),
            Some(_) => {}
        }
    }
    for (k, g) in &got_by_key {
        if !want_by_key.contains_key(k) {
            differences.push(format!("extra: {g:?}"));
        }
    }
    let got_count: u64 = got.iter().map(|e| e.count).sum();
    let want_count: u64 = want.iter().map(|e| e.count).sum();
    let first_out_of_place = got.iter().zip(want).position(|(g, w)| g != w);
    panic!(
        "{context}: {} rows (connections {got_count}), the oracle has {} (connections \
         {want_count}); first row out of place: {first_out_of_place:?}; {} differences, the \
         first ones:\n{}",
        got.len(),
        want.len(),
        differences.len(),
        differences
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One line of a produced file, with the dead-letter reason it must get (None: valid).
#[derive(Clone, Debug)]
struct Line {
    bytes: Vec<u8>,
    reason: Option<&'static str>,
}

fn valid_line(event: &Event, format: Format) -> Line {
    let mut bytes = Vec::new();
    encode(format, event, &mut bytes);
    Line {
        bytes,
        reason: None,
    }
}

/// Malformed native records, each with the reason the decoder gives it (read off
/// `MessageDecoder` and `ParseError::reason`); with the over-1-MiB one if `too_large`.
fn malformed(template: &Event, too_large: bool) -> Vec<Line> {
    let valid = serde_json::to_string(template).unwrap();
    let ts = template.ts.to_string();
    let src = template.src_ip.to_string();
    let replaced = |from: &str, to: &str| {
        assert!(valid.contains(from), "{valid} lacks {from}");
        valid.replacen(from, to, 1).into_bytes()
    };
    let mut lines: Vec<(Vec<u8>, &'static str)> = vec![
        (b"{\"ts\": 1, ".to_vec(), "invalid_json"),
        (b"[1,2,3]".to_vec(), "invalid_json"),
        (b"null".to_vec(), "invalid_json"),
        (format!("{valid} trailing").into_bytes(), "invalid_json"),
        (b"\xff\xfe\x00not utf-8 \xc3\x28".to_vec(), "invalid_utf8"),
        (b"  \t  ".to_vec(), "empty_record"),
        // A byte-order mark alone is an empty document.
        (b"\xEF\xBB\xBF".to_vec(), "empty_record"),
        (replaced(&format!("\"ts\":{ts},"), ""), "missing_field"),
        (
            replaced(&format!("\"{src}\""), "\"10.0.0.300\""),
            "invalid_field",
        ),
        (
            replaced(
                &format!("\"dst_port\":{}", template.dst_port),
                "\"dst_port\":70000",
            ),
            "invalid_field",
        ),
        (
            replaced(
                &format!("\"proto\":\"{}\"", template.proto),
                "\"proto\":\"sctp\"",
            ),
            "invalid_field",
        ),
        (
            replaced(&format!("\"ts\":{ts}"), "\"ts\":-5"),
            "invalid_field",
        ),
        (
            replaced(&format!("\"ts\":{ts}"), "\"ts\":99999999999999999"),
            "invalid_field",
        ),
        (
            replaced(
                &format!("\"status\":\"{}\"", template.status),
                "\"status\":\"weird\"",
            ),
            "invalid_field",
        ),
    ];
    if too_large {
        let mut big = valid.as_bytes()[..valid.len() - 1].to_vec();
        big.extend_from_slice(b",\"padding\":\"");
        big.extend(std::iter::repeat_n(b'x', 1 << 20));
        big.extend_from_slice(b"\"}");
        lines.push((big, "too_large"));
    }
    lines
        .into_iter()
        .map(|(bytes, reason)| Line {
            bytes,
            reason: Some(reason),
        })
        .collect()
}

/// The valid events' lines with the malformed ones spread among them.
fn mix(events: &[Event], bad: &[Line]) -> Vec<Line> {
    let mut lines: Vec<Line> = events
        .iter()
        .map(|e| valid_line(e, Format::Native))
        .collect();
    // From the back, so earlier positions stay put; spread, not evenly spaced.
    for (k, line) in bad.iter().enumerate().rev() {
        let at = (k + 1) * events.len() / (bad.len() + 1) + (k * 7) % 13;
        lines.insert(at.min(lines.len()), line.clone());
    }
    lines
}

fn write_lines(path: &Path, lines: &[Line]) {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(&line.bytes);
        bytes.push(b'\n');
    }
    std::fs::write(path, bytes).unwrap();
}

fn expected(events: &[Event], lines: &[Line], partitions: usize) -> Expected {
    let mut dead_letters = BTreeMap::new();
    for reason in lines.iter().filter_map(|l| l.reason) {
        *dead_letters.entry(reason.to_string()).or_default() += 1;
    }
    Expected {
        records: events.len() as u64,
        dead_letters,
        partitions,
    }
}

/// Where `flowsight produce --path` puts the lines: line i to partition i % partitions,
/// so each partition ends at this offset.
fn end_offsets(lines: usize, partitions: usize) -> Vec<u64> {
    (0..partitions)
        .map(|p| ((lines + partitions - 1 - p) / partitions) as u64)
        .collect()
}

#[test]
fn a_topic_with_four_partitions_gives_the_oracles_views_with_one_two_workers_and_two_processes() {
    let events = common::generated(21, 4, 2_000, START, 24_000, 300);
    let expect = Expected {
        records: events.len() as u64,
        dead_letters: BTreeMap::new(),
        partitions: 4,
    };
    let ends = end_offsets(events.len(), 4);
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("flows.jsonl");
    write_native(&native, &events);
    // produce creates the topic.
    produce(
        brokers,
        "flows",
        &["--path", native.to_str().unwrap(), "--partitions", "4"],
        events.len(),
    );
    assert_eq!(tansu.partitions("flows"), Some(4));

    // One worker.
    let args = engine_args(
        brokers,
        "flows",
        &dir.path().join("one"),
        WINDOWS,
        &["--workers", "1"],
    );
    let mut one = start(&args, free_port());
    let status = wait_until_caught_up(&mut one, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "one worker");
    check_partitions(&status, "flows", 1, &ends, "one worker");
    assert_eq!(status["workers"], 1);
    let single = check_views(&one, &events, WINDOWS, "one worker");
    assert!(one.terminate().success());

    // Two workers.
    let args = engine_args(
        brokers,
        "flows",
        &dir.path().join("two"),
        WINDOWS,
        &["--workers", "2"],
    );
    let mut two = start(&args, free_port());
    let status = wait_until_caught_up(&mut two, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "two workers");
    check_partitions(&status, "flows", 2, &ends, "two workers");
    let answers = check_views(&two, &events, WINDOWS, "two workers");
    assert_eq!(answers, single, "two workers differ from one");
    assert!(two.terminate().success());

    // Two processes of one worker each, sharing a state directory.
    let hostfile = two_process_hostfile(dir.path()).display().to_string();
    let mut processes: Vec<Flowsight> = (0..2)
        .map(|i| {
            let index = i.to_string();
            let args = engine_args(
                brokers,
                "flows",
                &dir.path().join("cluster"),
                WINDOWS,
                &[
                    "--workers",
                    "1",
                    "--hostfile",
                    &hostfile,
                    "--process",
                    &index,
                ],
            );
            start(&args, free_port())
        })
        .collect();
    for (i, p) in processes.iter_mut().enumerate() {
        let context = format!("process {i} of two");
        let status = wait_until_caught_up(p, &expect, COMPLETE_TIMEOUT);
        check_counts(&status, &expect, &context);
        check_partitions(&status, "flows", 2, &ends, &context);
        assert_eq!(status["processes"], 2);
        assert_eq!(status["workers"], 2);
    }
    for (i, p) in processes.iter().enumerate() {
        let context = format!("process {i} of two");
        let answers = check_views(p, &events, WINDOWS, &context);
        assert_eq!(answers, single, "{context} differs from one worker");
    }
    for p in processes {
        assert!(p.terminate().success());
    }
    for process in 0..2 {
        let checkpoint = dir
            .path()
            .join(format!("cluster/checkpoint-{process}.json"));
        assert!(checkpoint.is_file(), "{} is missing", checkpoint.display());
    }

    // The same events as Zeek conn JSON and as CSV (a header row first, which produce skips).
    for (format, name) in [(Format::Zeek, "zeek"), (Format::Csv, "csv")] {
        let topic = format!("flows-{name}");
        let mut lines: Vec<Line> = Vec::new();
        if let Some(header) = flowsight_connectors::header(format) {
            lines.push(Line {
                bytes: header.into_bytes(),
                reason: None,
            });
        }
        lines.extend(events.iter().map(|e| valid_line(e, format)));
        let path = dir.path().join(format!("flows.{name}"));
        write_lines(&path, &lines);
        produce(
            brokers,
            &topic,
            &[
                "--path",
                path.to_str().unwrap(),
                "--partitions",
                "4",
                "--format",
                name,
            ],
            events.len(),
        );
        let args = engine_args(
            brokers,
            &topic,
            &dir.path().join(name),
            WINDOWS,
            &["--format", name, "--workers", "2"],
        );
        let mut fs = start(&args, free_port());
        let status = wait_until_caught_up(&mut fs, &expect, COMPLETE_TIMEOUT);
        check_counts(&status, &expect, name);
        check_partitions(&status, &topic, 2, &ends, name);
        let answers = check_views(&fs, &events, WINDOWS, name);
        assert_eq!(answers, single, "{name} differs from native JSON");
        assert!(fs.terminate().success());
    }
}

/// A backlog is read no faster than the views take it: each source waits once it is
/// `--max-ahead` past the views' frontier (its partitions paused at the consumer meanwhile),
/// and the views are as exact as ever.
#[test]
fn a_backlog_is_read_no_more_than_max_ahead_past_the_views() {
    const MAX_AHEAD_MS: u64 = 1_000;
    // A chunk of 4,096 records of a partition (0.8 s of event time here) may pass the
    // limit before the source looks again, and a partition held back by a slower one may
    // place 16,384 records (3.3 s) past the horizon (--max-ahead, the lateness, a tick).
    const SLACK_MS: u64 = 7_000;
    let events = common::generated(23, 4, 20_000, START, 240_000, 300);
    let expect = Expected {
        records: events.len() as u64,
        dead_letters: BTreeMap::new(),
        partitions: 4,
    };
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("flows.jsonl");
    write_native(&native, &events);
    produce(
        brokers,
        "flows",
        &["--path", native.to_str().unwrap(), "--partitions", "4"],
        events.len(),
    );
    let args = engine_args(
        brokers,
        "flows",
        &dir.path().join("state"),
        WINDOWS,
        &["--workers", "2", "--max-ahead", "1s", "--lateness", "1s"],
    );
    let mut fs = start(&args, free_port());
    let deadline = Instant::now() + COMPLETE_TIMEOUT;
    let (mut samples, mut waiting) = (0u64, 0u64);
    loop {
        assert!(
            Instant::now() < deadline,
            "the backlog was not read in time"
        );
        let Some((200, status)) = try_get(&format!("{}/v1/status", fs.base)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        samples += 1;
        // Once everything is read the partitions turn idle and the frontier moves past the
        // last record without reading anything: no longer a distance read ahead.
        if status["records"].as_u64() == Some(expect.records) {
            break;
        }
        if let (Some(ahead), Some(frontier)) =
            (status["source_ahead"].as_u64(), status["frontier"].as_u64())
        {
            // Before the views have a frontier the source's first jump is no distance.
            if frontier > START {
                assert!(
                    ahead <= MAX_AHEAD_MS + SLACK_MS,
                    "a source read {ahead} ms past the views: {}",
                    pretty(&status)
                );
            }
        }
        if status["waiting_for_views"] == true {
            waiting += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        waiting > 0,
        "in {samples} samples no source waited for the views: nothing was tested"
    );
    let status = wait_until_caught_up(&mut fs, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "max ahead");
    check_views(&fs, &events, WINDOWS, "max ahead");
    assert!(fs.terminate().success());
}

#[test]
fn malformed_records_are_dead_letters_in_the_topic_unchanged_and_counted_by_reason() {
    const PARTITIONS: usize = 3;
    let events = common::generated(22, 3, 2_000, START, 12_000, 200);
    let bad = malformed(&events[0], true);
    assert!(bad.len() >= 10);
    let lines = mix(&events, &bad);
    let expect = expected(&events, &lines, PARTITIONS);
    assert!(expect.dead_letters.len() >= 6, "{:?}", expect.dead_letters);

    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("flows", PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_lines(&path, &lines);
    produce(
        brokers,
        "flows",
        &[
            "--path",
            path.to_str().unwrap(),
            "--kafka-option",
            LARGE_MESSAGES,
        ],
        lines.len(),
    );

    let args = engine_args(
        brokers,
        "flows",
        &dir.path().join("state"),
        WINDOWS,
        &["--workers", "2", "--kafka-option", LARGE_MESSAGES],
    );
    let mut fs = start(&args, free_port());
    let status = wait_until_caught_up(&mut fs, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "status");
    check_partitions(
        &status,
        "flows",
        2,
        &end_offsets(lines.len(), PARTITIONS),
        "status",
    );
    check_views(&fs, &events, WINDOWS, "valid records");

    // The dead-letter topic holds every malformed record once, byte for byte, with headers
    // naming its reason and where it was in the source topic.
    let dead_topic = "flows.dead-letters";
    let letters = read_topic(brokers, dead_topic, bad.len(), READ_TIMEOUT);
    let summary: Vec<String> = letters
        .iter()
        .map(|l| format!("{}@{}: {:?}", l.partition, l.offset, l.headers))
        .collect();
    assert_eq!(letters.len(), bad.len(), "{summary:#?}");
    let mut got: Vec<&[u8]> = letters.iter().map(|l| l.payload.as_slice()).collect();
    let mut want: Vec<&[u8]> = bad.iter().map(|l| l.bytes.as_slice()).collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the dead-letter topic's payloads differ from the malformed lines: {summary:#?}"
    );
    for letter in &letters {
        let header = |name: &str| {
            letter
                .headers
                .get(name)
                .unwrap_or_else(|| panic!("dead letter without {name}: {:?}", letter.headers))
                .clone()
        };
        let partition: usize = header("flowsight.source.partition").parse().unwrap();
        let offset: usize = header("flowsight.source.offset").parse().unwrap();
        let line = &lines[offset * PARTITIONS + partition];
        assert_eq!(
            line.bytes, letter.payload,
            "the dead letter from partition {partition} offset {offset} is not the line \
             produced there: {:?}",
            letter.headers
        );
        assert_eq!(
            Some(header("flowsight.reason").as_str()),
            line.reason,
            "{:?}",
            letter.headers
        );
        assert_eq!(header("flowsight.source.topic"), "flows");
        assert!(!header("flowsight.error").is_empty());
        let time: u64 = header("flowsight.time").parse().unwrap();
        assert!(time > START - 365 * 86_400_000, "{:?}", letter.headers);
    }

    // /v1/dead-letters keeps them too, with their positions.
    let (code, dead) = fs.get("/v1/dead-letters?limit=1000");
    assert_eq!(code, 200, "{dead}");
    assert_eq!(dead["total"].as_u64(), Some(bad.len() as u64), "{dead}");
    for row in dead["rows"].as_array().unwrap() {
        let partition = row["position"]["partition"].as_u64().unwrap() as usize;
        let offset = row["position"]["offset"].as_u64().unwrap() as usize;
        assert_eq!(row["position"]["source"], "flows", "{row}");
        let line = &lines[offset * PARTITIONS + partition];
        assert_eq!(row["reason"].as_str(), line.reason, "{row}");
    }
    // Nothing had to be kept on disk instead of the dead-letter topic. (Checkpoints, and
    // the temporary file a checkpoint is written to before its rename, may be there.)
    let spilled: Vec<_> = walk(&dir.path().join("state"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            !name.starts_with("checkpoint") && !name.starts_with(".checkpoint")
        })
        .collect();
    assert!(
        spilled.is_empty(),
        "files besides checkpoints in the state directory: {spilled:?}; status {}",
        pretty(&status)
    );
    assert!(fs.terminate().success());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// What the tests saw of a restarted engine catching up.
#[derive(Debug, Default)]
struct CatchingUp {
    status_catching_up: u32,
    replay_remaining: u32,
    views_503: u32,
}

impl CatchingUp {
    fn seen(&self) -> bool {
        self.status_catching_up + self.replay_remaining + self.views_503 > 0
    }
}

/// Polls the status and a view of `fs` for `how_long`, noting any sign of catching up;
/// with `complete`, stops (returning the status) as soon as the engine shows everything
/// it says, and fails if that takes longer than `how_long`.
fn observe(
    fs: &mut Flowsight,
    how_long: Duration,
    seen: &mut CatchingUp,
    complete: Option<&Expected>,
) -> Option<Value> {
    let until = Instant::now() + how_long;
    let mut last = Value::Null;
    while Instant::now() < until {
        if let Ok(Some(exit)) = fs.child.try_wait() {
            panic!(
                "flowsight exited with {exit}; last /v1/status: {}",
                pretty(&last)
            );
        }
        if let Some((200, status)) = try_get(&format!("{}/v1/status", fs.base)) {
            if status["catching_up"] == true {
                seen.status_catching_up += 1;
            }
            if status["replay_remaining"].as_u64().is_some_and(|r| r > 0) {
                seen.replay_remaining += 1;
            }
            if complete.is_some_and(|expected| expected.reached_by(&status)) {
                return Some(status);
            }
            last = status;
        }
        if let Some((503, answer)) =
            try_get(&format!("{}/v1/graph/edges?window=2s&limit=1", fs.base))
        {
            if answer["error"]["code"] == "catching_up" {
                seen.views_503 += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(expected) = complete {
        panic!(
            "flowsight did not complete within {how_long:?}: expected {} records, {} dead \
             letters, {} idle partitions, not catching up, as_of past every max_ts; last \
             /v1/status: {}",
            expected.records,
            expected.dead_total(),
            expected.partitions,
            pretty(&last)
        );
    }
    None
}

/// The offsets a process's checkpoint covers, summed over its partitions (None: no file).
fn checkpointed_offsets(state_dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state_dir.join("checkpoint-0.json")).ok()?;
    let checkpoint: Value = serde_json::from_str(&text).ok()?;
    Some(
        checkpoint["partitions"]
            .as_object()?
            .values()
            .filter_map(|p| p["offset"].as_u64())
            .sum(),
    )
}

/// A small xorshift, seeded from the clock (or FLOWSIGHT_TEST_SEED) and printed, for
/// kill times that differ from run to run yet can be replayed.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::env::var("FLOWSIGHT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
                    | 1
            });
        eprintln!("random choices seeded with FLOWSIGHT_TEST_SEED={seed}");
        Jitter(seed)
    }

    fn millis(&mut self, from: u64, to: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        from + self.0 % (to - from)
    }
}

fn kill_9(mut fs: Flowsight) {
    fs.child.kill().expect("cannot kill flowsight");
    fs.child.wait().unwrap();
}

#[test]
fn kill_9_at_several_points_then_restart_loses_nothing_and_counts_nothing_twice() {
    const PARTITIONS: usize = 4;
    let events = common::generated(23, 4, 2_000, START, 60_000, 300);
    let bad = malformed(&events[0], false);
    let lines = mix(&events, &bad);
    let expect = expected(&events, &lines, PARTITIONS);
    let tansu = Tansu::start();
    let brokers = tansu.brokers().to_string();
    tansu.create_topic("flows", PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_lines(&path, &lines);

    let state = dir.path().join("state");
    let args = engine_args(&brokers, "flows", &state, WINDOWS, &["--workers", "2"]);
    // The very same command every time, HTTP port included.
    let port = free_port();
    let mut jitter = Jitter::new();
    let mut seen = CatchingUp::default();
    let mut producer = Some(spawn_produce(
        &brokers,
        "flows",
        &["--path", path.to_str().unwrap(), "--rate", "8000"],
    ));
    let started = Instant::now();
    // What each run saw: when it was killed, its last status, and what the checkpoint it
    // left covers.
    let mut kills = Vec::new();
    let note = |kills: &mut Vec<String>, what: &str, status: Option<Value>| {
        let status = status.unwrap_or(Value::Null);
        let line = format!(
            "{:?}: {what}: records {}, catching_up {}, replay_remaining {}; checkpoint covers \
             {:?} offsets",
            started.elapsed(),
            status["records"],
            status["catching_up"],
            status["replay_remaining"],
            checkpointed_offsets(&state)
        );
        eprintln!("kill -9 at {line}");
        kills.push(line);
    };
    // First kill: as soon as the process is up, likely before its first checkpoint.
    let fs = start(&args, port);
    std::thread::sleep(Duration::from_millis(jitter.millis(50, 400)));
    kill_9(fs);
    note(&mut kills, "right after start", None);
    // Mid-stream, at random-ish moments, while the producer still writes.
    loop {
        let producing = producer
            .as_mut()
            .is_some_and(|p| p.try_wait().unwrap().is_none());
        if !producing && kills.len() >= 5 {
            break;
        }
        let mut fs = start(&args, port);
        let alive = Duration::from_millis(jitter.millis(300, 2_500));
        observe(&mut fs, alive, &mut seen, None);
        let status = try_get(&format!("{}/v1/status", fs.base)).map(|(_, s)| s);
        kill_9(fs);
        note(&mut kills, &format!("after {alive:?}"), status);
        assert!(kills.len() < 40, "the producer does not finish: {kills:#?}");
    }
    let stderr = finish_produce(producer.take().unwrap());
    assert!(
        stderr.contains(&format!("produced {} records", lines.len())),
        "{stderr}"
    );

    // Once everything was consumed: at once, and again after a quiet while, when a
    // checkpoint has surely recorded the final frontier.
    let mut fs = start(&args, port);
    let status = observe(&mut fs, COMPLETE_TIMEOUT, &mut seen, Some(&expect));
    kill_9(fs);
    note(&mut kills, "as soon as everything was consumed", status);
    let mut fs = start(&args, port);
    observe(&mut fs, COMPLETE_TIMEOUT, &mut seen, Some(&expect));
    std::thread::sleep(Duration::from_millis(2_500));
    let status = try_get(&format!("{}/v1/status", fs.base)).map(|(_, s)| s);
    kill_9(fs);
    note(&mut kills, "2.5 s after everything was consumed", status);

    let mut fs = start(&args, port);
    let status = observe(&mut fs, COMPLETE_TIMEOUT, &mut seen, Some(&expect)).unwrap();
    eprintln!("kill -9 at: {kills:#?}\ncatching up seen: {seen:?}");
    check_counts(&status, &expect, "after the last restart");
    check_partitions(
        &status,
        "flows",
        2,
        &end_offsets(lines.len(), PARTITIONS),
        "after the last restart",
    );
    check_views(&fs, &events, WINDOWS, "after the last restart");
    // And it stays so: nothing is counted again later.
    std::thread::sleep(Duration::from_millis(1_500));
    let (_, later) = fs.get("/v1/status");
    check_counts(&later, &expect, "1.5 s after the last restart completed");
    assert!(
        seen.seen(),
        "no restart was ever seen catching up (status catching_up, replay_remaining > 0 or \
         a view answering 503 catching_up): {seen:?}"
    );
    // Dead letters are forwarded at least once: a kill between forwarding one and the next
    // checkpoint sends it again after the restart.
    let letters = read_topic(&brokers, "flows.dead-letters", bad.len(), READ_TIMEOUT);
    let distinct: BTreeSet<&[u8]> = letters.iter().map(|l| l.payload.as_slice()).collect();
    let wanted: BTreeSet<&[u8]> = bad.iter().map(|l| l.bytes.as_slice()).collect();
    assert_eq!(distinct, wanted, "dead-letter topic");
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for letter in &letters {
        let header = |k: &str| letter.headers.get(k).cloned().unwrap_or_default();
        let position = format!(
            "{}@{}",
            header("flowsight.source.partition"),
            header("flowsight.source.offset")
        );
        *sends.entry(position).or_default() += 1;
    }
    eprintln!(
        "dead-letter topic: {} records for {} malformed lines; sends per partition@offset: \
         {sends:?}",
        letters.len(),
        bad.len()
    );
    assert!(fs.terminate().success());
}

#[test]
fn sigterm_exits_zero_and_its_checkpoint_covers_every_record() {
    const PARTITIONS: usize = 3;
    let events = common::generated(24, 3, 2_000, START, 20_000, 300);
    let bad = malformed(&events[0], false);
    let lines = mix(&events, &bad);
    let expect = expected(&events, &lines, PARTITIONS);
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("flows", PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_lines(&path, &lines);
    produce(
        brokers,
        "flows",
        &["--path", path.to_str().unwrap()],
        lines.len(),
    );

    let state = dir.path().join("state");
    let args = engine_args(brokers, "flows", &state, WINDOWS, &["--workers", "2"]);
    let port = free_port();
    let mut fs = start(&args, port);
    let status = wait_until_caught_up(&mut fs, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "first run");
    let first = check_views(&fs, &events, WINDOWS, "first run");
    let exit = fs.terminate();
    assert_eq!(exit.code(), Some(0), "SIGTERM: {exit}");

    let text = std::fs::read_to_string(state.join("checkpoint-0.json"))
        .expect("no checkpoint-0.json after SIGTERM");
    let checkpoint: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(checkpoint["topic"], "flows", "{checkpoint}");
    assert_eq!(checkpoint["processes"], 1, "{checkpoint}");
    assert_eq!(checkpoint["workers"], 2, "{checkpoint}");
    let partitions = checkpoint["partitions"].as_object().expect("partitions");
    let keys: BTreeSet<&str> = partitions.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["0", "1", "2"]), "{checkpoint}");
    let ends = end_offsets(lines.len(), PARTITIONS);
    let mut records = 0;
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    for (p, entry) in partitions {
        let p: usize = p.parse().unwrap();
        assert_eq!(
            entry["offset"].as_u64(),
            Some(ends[p]),
            "partition {p}: {entry}"
        );
        records += entry["records"].as_u64().unwrap();
        for (reason, n) in entry["dead_letters"].as_object().unwrap() {
            *dead.entry(reason.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let offsets: u64 = partitions
        .values()
        .map(|e| e["offset"].as_u64().unwrap())
        .sum();
    assert_eq!(offsets, lines.len() as u64, "{checkpoint}");
    assert_eq!(records, expect.records, "{checkpoint}");
    assert_eq!(dead, expect.dead_letters, "{checkpoint}");

    // The same command resumes: nothing is counted twice, the views are rebuilt.
    let mut again = start(&args, port);
    let status = wait_until_caught_up(&mut again, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "after the restart");
    let answers = check_views(&again, &events, WINDOWS, "after the restart");
    assert_eq!(answers, first, "the restarted engine answers differently");
    std::thread::sleep(Duration::from_millis(1_500));
    let (_, later) = again.get("/v1/status");
    check_counts(&later, &expect, "1.5 s after the restart completed");
    // Dead letters of records before the checkpoint are not sent again.
    let letters = read_topic(brokers, "flows.dead-letters", bad.len(), READ_TIMEOUT);
    assert_eq!(
        letters.len(),
        bad.len(),
        "dead-letter topic after the restart"
    );
    assert_eq!(again.terminate().code(), Some(0));
}

#[test]
fn late_and_out_of_order_records_across_partitions_land_where_they_belong() {
    const PARTITIONS: usize = 3;
    const WINDOWS: Windows = &[("2s", 2_000), ("5m", 300_000), ("30m", 1_800_000)];
    let mut base = common::generated(25, 3, 1_000, START, 15_000, 200);
    base.sort_by_key(|e| e.ts);
    // Line i goes to partition i % 3: partition 2 carries records seven minutes behind
    // the others; within every partition, one record in ten is up to 8 s early-or-late
    // and the order is shuffled in blocks.
    let mut jitter = Jitter::new();
    let mut phase1: Vec<Event> = base
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            if i % PARTITIONS == 2 {
                e.ts -= 420_000;
            }
            if jitter.millis(0, 10) == 0 {
                e.ts -= jitter.millis(0, 8_000);
            }
            e
        })
        .collect();
    for block in phase1.chunks_mut(PARTITIONS * 40) {
        for i in 0..block.len() {
            let j = jitter.millis(0, block.len() as u64) as usize;
            // Only swap within a partition.
            let j = j - j % PARTITIONS + i % PARTITIONS;
            if j < block.len() {
                block.swap(i, j);
            }
        }
    }
    // Phase two, produced once the views have passed them: records ten minutes old,
    // spread over every partition.
    let phase2: Vec<Event> = base
        .iter()
        .step_by(50)
        .map(|e| Event {
            ts: e.ts - 600_000,
            ..e.clone()
        })
        .collect();

    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("flows", PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    write_native(&first, &phase1);
    produce(
        brokers,
        "flows",
        &["--path", first.to_str().unwrap()],
        phase1.len(),
    );
    let args = engine_args(
        brokers,
        "flows",
        &dir.path().join("state"),
        WINDOWS,
        &["--workers", "2"],
    );
    let mut fs = start(&args, free_port());
    let expect1 = Expected {
        records: phase1.len() as u64,
        dead_letters: BTreeMap::new(),
        partitions: PARTITIONS,
    };
    let status = wait_until_caught_up(&mut fs, &expect1, COMPLETE_TIMEOUT);
    check_views(&fs, &phase1, WINDOWS, "first file");
    let late1 = status["late_records"].as_u64().unwrap();
    let as_of1 = status["as_of"].as_u64().unwrap();
    assert!(phase2.iter().all(|e| e.ts < as_of1));

    let second = dir.path().join("second.jsonl");
    write_native(&second, &phase2);
    produce(
        brokers,
        "flows",
        &["--path", second.to_str().unwrap()],
        phase2.len(),
    );
    let all: Vec<Event> = phase1.iter().chain(&phase2).cloned().collect();
    let expect = Expected {
        records: all.len() as u64,
        ..expect1
    };
    let status = wait_until_caught_up(&mut fs, &expect, COMPLETE_TIMEOUT);
    check_counts(&status, &expect, "both files");
    let late = status["late_records"].as_u64().unwrap();
    eprintln!("late records: {late1} of the first file, {late} in all");
    assert_eq!(
        late - late1,
        phase2.len() as u64,
        "every record of the second file is late; status {}",
        pretty(&status)
    );
    check_views(&fs, &all, WINDOWS, "both files");
    // The late records are in the 30m window and not in the 5m one.
    let (_, edges) = fs.get("/v1/graph/edges?window=30m&limit=10000");
    let as_of = edges["as_of"].as_u64().unwrap();
    assert_rows_eq(
        &rows(&edges),
        &oracle_top(&all, as_of, 1_800_000, 10_000),
        "30m window, limit 10000",
    );
    assert_ne!(
        oracle_top(&all, as_of, 1_800_000, 10_000),
        oracle_top(&phase1, as_of, 1_800_000, 10_000),
        "the late records should change the 30m window"
    );
    assert!(fs.terminate().success());
}
