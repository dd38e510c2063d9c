//! File replay in every format: the same records written as native JSON, Zeek conn JSON,
//! Zeek conn TSV and CSV give the same views, equal to the oracle's, once the file has
//! ended and the idle timeout has passed; malformed lines become dead letters with their
//! line numbers.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{free_port, oracle_top, rows, write_native, Flowsight};
use flowsight_events::{Event, Proto, Status};

fn events() -> Vec<Event> {
    common::generated(3, 3, 1_000, 1_710_000_000_000, 6_000, 100)
}

/// Zeek writes seconds with six decimals.
fn zeek_ts(ms: u64) -> String {
    format!("{}.{:03}000", ms / 1000, ms % 1000)
}

fn conn_state(status: Status) -> &'static str {
    match status {
        Status::Established => "SF",
        Status::Rejected => "REJ",
        Status::Reset => "RSTO",
        Status::Failed => "S0",
        Status::Other => "-",
    }
}

fn zeek_proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
        Proto::Other => "unknown_transport",
    }
}

fn write_zeek_json(path: &Path, events: &[Event]) {
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let duration = e.duration_ms.map_or("null".to_string(), |d| {
            format!("{}.{:03}", d / 1000, d % 1000)
        });
        writeln!(
            text,
            r#"{{"ts":{},"uid":"C{i}","id.orig_h":"{}","id.orig_p":{},"id.resp_h":"{}","id.resp_p":{},"proto":"{}","duration":{duration},"orig_bytes":{},"resp_bytes":{},"conn_state":"{}","orig_pkts":{},"resp_pkts":{}}}"#,
            zeek_ts(e.ts),
            e.src_ip,
            e.src_port,
            e.dst_ip,
            e.dst_port,
            zeek_proto(e.proto),
            e.bytes_out,
            e.bytes_in,
            conn_state(e.status),
            e.packets / 2,
            e.packets - e.packets / 2,
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn write_zeek_tsv(path: &Path, events: &[Event]) {
    let mut text = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2024-03-09-16-00-00\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n",
    );
    for (i, e) in events.iter().enumerate() {
        let duration = e.duration_ms.map_or("-".to_string(), |d| {
            format!("{}.{:03}000", d / 1000, d % 1000)
        });
        writeln!(
            text,
            "{}\tC{i}\t{}\t{}\t{}\t{}\t{}\t-\t{duration}\t{}\t{}\t{}\tT\tF\t0\tShADadFf\t{}\t0\t{}\t0\t(empty)",
            zeek_ts(e.ts),
            e.src_ip,
            e.src_port,
            e.dst_ip,
            e.dst_port,
            zeek_proto(e.proto),
            e.bytes_out,
            e.bytes_in,
            conn_state(e.status),
            e.packets / 2,
            e.packets - e.packets / 2,
        )
        .unwrap();
    }
    text.push_str("#close\t2024-03-09-17-00-00\n");
    std::fs::write(path, text).unwrap();
}

fn write_csv(path: &Path, events: &[Event]) {
    // Columns in another order than docs/design.md §2's, with a quoted field, to show they
    // are read by name.
    let mut text = String::from("status,ts,src_ip,src_port,dst_ip,dst_port,proto,bytes_out,bytes_in,packets,duration_ms,note\n");
    for e in events {
        writeln!(
            text,
            "{},{},{},{},{},{},{},{},{},{},{},\"a, quoted note\"",
            e.status,
            e.ts,
            e.src_ip,
            e.src_port,
            e.dst_ip,
            e.dst_port,
            e.proto,
            e.bytes_out,
            e.bytes_in,
            e.packets,
            e.duration_ms.map_or(String::new(), |d| d.to_string()),
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn replay(path: &Path, format: &str, records: u64) -> (Flowsight, serde_json::Value) {
    let mut fs = Flowsight::run(
        &[
            "--source",
            "file",
            "--path",
            path.to_str().unwrap(),
            "--format",
            format,
            "--idle-timeout",
            "200ms",
            "--windows",
            "2s,30m",
        ],
        free_port(),
    );
    let status = fs.wait_until_complete(records, Duration::from_secs(120));
    (fs, status)
}

#[test]
fn every_format_replays_to_the_oracle() {
    let events = events();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("native", "flows.jsonl", write_native as fn(&Path, &[Event])),
        ("zeek", "conn.json", write_zeek_json),
        ("zeek", "conn.log", write_zeek_tsv),
        ("csv", "flows.csv", write_csv),
    ];
    let mut first_answers = None;
    for (format, name, write) in files {
        let path = dir.path().join(name);
        write(&path, &events);
        let (fs, status) = replay(&path, format, events.len() as u64);
        assert_eq!(status["dead_letters"], 0, "{name}: {status}");
        let mut answers = Vec::new();
        for (window, length) in [("2s", 2_000u64), ("30m", 1_800_000)] {
            let (code, answer) = fs.get(&format!("/v1/graph/edges?window={window}&limit=100"));
            assert_eq!(code, 200, "{name}: {answer}");
            let as_of = answer["as_of"].as_u64().unwrap();
            assert_eq!(
                rows(&answer),
                oracle_top(&events, as_of, length, 100),
                "{name}, window {window}"
            );
            answers.push(answer);
        }
        // Every format gives the very same answers, as_of included.
        match &first_answers {
            None => first_answers = Some(answers),
            Some(first) => assert_eq!(&answers, first, "{name} differs from native JSON"),
        }
    }
}

#[test]
fn malformed_lines_become_dead_letters_with_their_line_numbers() {
    let events: Vec<Event> = events().into_iter().take(50).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conn.log");
    write_zeek_tsv(&path, &events);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let header_lines = 8;
    // Line numbers of the bad lines, appended after the good ones and the #close line.
    let first_bad = header_lines + events.len() as u64 + 2;
    text.push_str("1710000000.000000\tCbad\tnot-an-ip\t1\t10.0.0.1\t2\ttcp\n");
    text.push_str("garbage without tabs\n");
    text.push_str(&"x".repeat(2 << 20));
    text.push('\n');
    std::fs::write(&path, text).unwrap();

    let (fs, status) = replay(&path, "zeek", events.len() as u64);
    assert_eq!(status["dead_letters"], 3, "{status}");
    let (_, dead) = fs.get("/v1/dead-letters?limit=10");
    let letters = dead["rows"].as_array().unwrap();
    let mut lines: Vec<u64> = letters
        .iter()
        .map(|l| l["position"]["offset"].as_u64().unwrap())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![first_bad, first_bad + 1, first_bad + 2],
        "{dead}"
    );
    assert!(letters.iter().any(|l| l["reason"] == "too_large"), "{dead}");
    assert!(letters.iter().all(|l| l["position"]["source"]
        .as_str()
        .unwrap()
        .ends_with("conn.log")));
    // The views hold the valid records.
    let (_, answer) = fs.get("/v1/graph/edges?window=30m&limit=1000");
    let as_of = answer["as_of"].as_u64().unwrap();
    assert_eq!(rows(&answer), oracle_top(&events, as_of, 1_800_000, 1000));
}

#[test]
fn records_minutes_late_are_counted_and_land_in_the_windows_they_belong_to() {
    let mut events = events();
    events.sort_by_key(|e| e.ts);
    // 100 records from ten minutes before the rest, at the end of the file: by the time
    // they are read the watermark has long passed them.
    let ten_minutes_earlier: Vec<Event> = events
        .iter()
        .take(100)
        .map(|e| Event {
            ts: e.ts - 600_000,
            ..e.clone()
        })
        .collect();
    let all: Vec<Event> = events
        .iter()
        .chain(ten_minutes_earlier.iter())
        .cloned()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.jsonl");
    write_native(&path, &all);
    let mut fs = Flowsight::run(
        &[
            "--source",
            "file",
            "--path",
            path.to_str().unwrap(),
            "--idle-timeout",
            "200ms",
            "--windows",
            "5m,30m",
        ],
        free_port(),
    );
    let status = fs.wait_until_complete(all.len() as u64, Duration::from_secs(120));
    assert_eq!(status["late_records"], 100, "{status}");
    for (window, length) in [("5m", 300_000u64), ("30m", 1_800_000)] {
        let (_, answer) = fs.get(&format!("/v1/graph/edges?window={window}&limit=10000"));
        let as_of = answer["as_of"].as_u64().unwrap();
        assert_eq!(
            rows(&answer),
            oracle_top(&all, as_of, length, 10_000),
            "window {window}"
        );
    }
    // The late records are in the 30m window and not in the 5m one.
    let (_, metrics) = common::get(&format!("{}/v1/status", fs.base));
    assert_eq!(metrics["records"].as_u64(), Some(all.len() as u64));
}

#[test]
fn a_file_without_valid_records_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong-format.jsonl");
    std::fs::write(&path, "#fields\tts\n{\"not\": \"a flow\"}\n\n").unwrap();
    let mut fs = Flowsight::run(
        &[
            "--source",
            "file",
            "--path",
            path.to_str().unwrap(),
            "--idle-timeout",
            "100ms",
        ],
        free_port(),
    );
    // Nothing valid: every view answers, empty, instead of waiting for a first record.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // The server may not be listening yet.
        let answer = common::try_get(&format!("{}/v1/status", fs.base));
        if let Some((200, status)) = &answer {
            if status["dead_letters"] == 2 && status["partitions"][0]["finished"] == true {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, edges) = fs.get("/v1/graph/edges");
    assert_eq!(code, 200, "{edges}");
    assert_eq!(edges["rows"].as_array().map(Vec::len), Some(0));
    let (code, health) = fs.get("/health");
    assert_eq!(code, 200, "{health}");
    assert!(fs.child.try_wait().unwrap().is_none());
}
