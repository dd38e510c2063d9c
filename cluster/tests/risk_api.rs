//! The risk and anomaly endpoints and alerts, end to end through the real binary: a small
//! hand-computed capture whose every score, factor and anomaly is written out below
//! (golden answers), the `--config` file, and `--alerts-topic` into a real broker.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::tansu::{read_topic, Tansu};
use common::{free_port, write_native, Flowsight};
use flowsight_events::{Event, Proto, Status};
use serde_json::{json, Value};

const START: u64 = 1_700_000_000_000;

/// A scanner, 10.0.0.5: 30 connections to 30 private hosts on ports 1..=30 (22 and 23
/// among them), 24 of them rejected.
const SCANNER: &str = "10.0.0.5";
/// An uploader, 10.0.0.6: one connection sending 25 MB to 8.8.8.8:443.
const UPLOADER: &str = "10.0.0.6";
/// An IPv6 host, fd00::7, five SSH sessions to 2001:db8::1.
const SSH_CLIENT: &str = "fd00::7";

fn event(ts: u64, src: &str, dst: &str, port: u16, bytes_out: u64, status: Status) -> Event {
    Event {
        ts,
        src_ip: src.parse().unwrap(),
        dst_ip: dst.parse().unwrap(),
        src_port: 40_000,
        dst_port: port,
        proto: Proto::Tcp,
        bytes_out,
        bytes_in: 100,
        packets: 4,
        duration_ms: None,
        status,
    }
}

fn capture() -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..30u64 {
        let status = if i < 24 {
            Status::Rejected
        } else {
            Status::Established
        };
        let dst = format!("10.0.1.{}", i + 1);
        events.push(event(
            START + i * 100,
            SCANNER,
            &dst,
            (i + 1) as u16,
            60,
            status,
        ));
    }
    events.push(event(
        START + 1_500,
        UPLOADER,
        "8.8.8.8",
        443,
        25_000_000,
        Status::Established,
    ));
    for i in 0..5u64 {
        events.push(event(
            START + 2_000 + i * 10,
            SSH_CLIENT,
            "2001:db8::1",
            22,
            1_000,
            Status::Established,
        ));
    }
    events
}

fn serve(events: &[Event], extra: &[&str]) -> (Flowsight, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, events);
    let state = dir.path().join("state");
    let mut args = vec![
        "--source",
        "file",
        "--path",
        path.to_str().unwrap(),
        "--idle-timeout",
        "200ms",
        "--workers",
        "2",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut fs = Flowsight::run(&args, free_port());
    fs.wait_until_complete(events.len() as u64, Duration::from_secs(60));
    (fs, dir)
}

fn factor(points: u64, value: u64) -> Value {
    json!({ "points": points, "value": value })
}

/// The scanner in every window: fanout 30 ÷ 4 = 7, ports 30 ÷ 5 = 6, failures
/// 20 × 24 ÷ 30 = 16, sensitive 5 × 2 = 10, external 0: 1 + 39 = 40, medium.
fn scanner_row() -> Value {
    json!({
        "ip": SCANNER, "score": 40, "severity": "medium", "connections": 30,
        "factors": {
            "fanout": factor(7, 30), "ports": factor(6, 30), "failures": factor(16, 24),
            "sensitive": factor(10, 2), "external": factor(0, 0),
        },
    })
}

/// 5 × 1 000 bytes to a public address, port 22: 1 + sensitive 5 = 6, low.
fn ssh_row() -> Value {
    json!({
        "ip": SSH_CLIENT, "score": 6, "severity": "low", "connections": 5,
        "factors": {
            "fanout": factor(0, 1), "ports": factor(0, 1), "failures": factor(0, 0),
            "sensitive": factor(5, 1), "external": factor(0, 5_000),
        },
    })
}

/// 25 MB to 8.8.8.8: external 2, fewer than 10 connections so no failure points: 3, low.
fn uploader_row() -> Value {
    json!({
        "ip": UPLOADER, "score": 3, "severity": "low", "connections": 1,
        "factors": {
            "fanout": factor(0, 1), "ports": factor(0, 1), "failures": factor(0, 0),
            "sensitive": factor(0, 0), "external": factor(2, 25_000_000),
        },
    })
}

fn rows(answer: &Value) -> Vec<Value> {
    answer["rows"].as_array().cloned().unwrap_or_default()
}

#[test]
fn risks_and_anomalies_of_a_hand_computed_capture() {
    let events = capture();
    let (fs, _dir) = serve(&events, &[]);

    for window in ["30m", "2h", "24h"] {
        let (code, answer) = fs.get(&format!("/v1/risks?window={window}"));
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["window"]["name"], window);
        assert_eq!(
            rows(&answer),
            vec![scanner_row(), ssh_row(), uploader_row()],
            "{window}"
        );
    }
    let (_, medium) = fs.get("/v1/risks?severity=medium");
    assert_eq!(rows(&medium), vec![scanner_row()]);
    let (_, low) = fs.get("/v1/risks?severity=low&limit=1");
    assert_eq!(rows(&low), vec![ssh_row()]);
    let (_, critical) = fs.get("/v1/risks?severity=critical");
    assert_eq!(rows(&critical), Vec::<Value>::new());

    // One host, every window side by side, and its history.
    let (code, host) = fs.get(&format!("/v1/risks/{SCANNER}?history=1"));
    assert_eq!(code, 200, "{host}");
    let windows = host["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3);
    for (w, name) in windows.iter().zip(["30m", "2h", "24h"]) {
        assert_eq!(w["window"]["name"], name);
        assert_eq!(w["score"], 40);
        assert_eq!(w["severity"], "medium");
        assert_eq!(w["factors"], scanner_row()["factors"]);
    }
    for history in host["history"].as_array().unwrap() {
        let changes = history["changes"].as_array().unwrap();
        assert_eq!(
            changes[0]["score"],
            Value::Null,
            "no score a day before: {history}"
        );
        assert_eq!(changes.last().unwrap()["score"], 40, "{history}");
        let times: Vec<u64> = changes
            .iter()
            .map(|c| c["as_of"].as_u64().unwrap())
            .collect();
        assert!(times.windows(2).all(|p| p[0] < p[1]), "{history}");
    }
    // Hosts by severity over the day, network-wide: nothing before the capture's first
    // tick, then the three scored hosts (the scanner medium, the other two low).
    let (code, severity) = fs.get("/v1/risks/severity?window=2h&step=1h");
    assert_eq!(code, 200, "{severity}");
    assert_eq!(severity["step"], 3_600_000);
    assert_eq!(severity["window"]["name"], "2h");
    let as_of = severity["as_of"].as_u64().unwrap();
    assert_eq!(severity["from"], as_of - 86_400_000);
    let points = severity["rows"].as_array().unwrap();
    let last = points.last().unwrap();
    assert_eq!(last["as_of"], as_of, "{severity}");
    assert_eq!(
        (&last["low"], &last["medium"], &last["critical"]),
        (&json!(2), &json!(1), &json!(0)),
        "{severity}"
    );
    assert!(
        points[0]["as_of"].as_u64().unwrap() > START,
        "the first point is the first tick with a scored host: {severity}"
    );
    let times: Vec<u64> = points
        .iter()
        .map(|p| p["as_of"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|p| p[0] < p[1]), "{severity}");
    assert!(
        times[1..times.len() - 1].iter().all(|t| t % 3_600_000 == 0),
        "points between the first and the last fall on the step: {severity}"
    );
    // The last hour only: from the first scored host (within it), every 10 minutes.
    let (code, hour) = fs.get("/v1/risks/severity?window=2h&span=1h&step=10m");
    assert_eq!(code, 200, "{hour}");
    assert_eq!(hour["from"], hour["as_of"].as_u64().unwrap() - 3_600_000);
    assert_eq!(
        hour["rows"], severity["rows"],
        "the capture is all within the hour"
    );
    // A step that is no whole number of ticks is rounded up to one.
    let (code, rounded) = fs.get("/v1/risks/severity?step=10500ms");
    assert_eq!(code, 200, "{rounded}");
    assert_eq!(rounded["step"], 11_000);

    // An IPv6 host, percent-encoded, and one window only.
    let (code, v6) = fs.get("/v1/risks/fd00%3A%3A7?window=2h");
    assert_eq!(code, 200, "{v6}");
    assert_eq!(v6["windows"].as_array().unwrap().len(), 1);
    assert_eq!(v6["windows"][0]["score"], 6);
    assert!(v6.get("history").is_none());
    // A host never seen has no score anywhere.
    let (code, stranger) = fs.get("/v1/risks/10.9.9.9");
    assert_eq!(code, 200);
    assert!(stranger["windows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["score"].is_null()));

    // Anomalies: the scan (30 connections, 30 ports, 80 % failed) and the two first
    // contacts with public addresses; no fan-out spike (30 < 50 destinations).
    let (code, anomalies) = fs.get("/v1/anomalies?window=24h");
    assert_eq!(code, 200, "{anomalies}");
    // The segmentation's policy violations are listed too (segments_api checks them);
    // here only that both views' anomalies come in one list.
    let all = rows(&anomalies);
    assert!(
        all.iter().any(|a| a["kind"] == "policy_violation"),
        "{anomalies}"
    );
    let found: Vec<Value> = all
        .into_iter()
        .filter(|a| a["kind"] != "policy_violation")
        .collect();
    let kinds: Vec<(String, String)> = found
        .iter()
        .map(|a| {
            (
                a["host"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            // Newest first: the scan's first_detected is the as_of at which it first held,
            // at or after the own time of its 20th record (START + 2 000; ties sort by
            // host); the first contacts carry their records' timestamps.
            (SCANNER.to_string(), "port_scan".to_string()),
            (
                SSH_CLIENT.to_string(),
                "new_external_destination".to_string()
            ),
            (UPLOADER.to_string(), "new_external_destination".to_string()),
        ],
        "{anomalies}"
    );
    assert_eq!(
        found[0]["evidence"],
        json!({"connections": 30, "failed": 24, "distinct_ports": 30, "distinct_hosts": 30})
    );
    assert_eq!(found[1]["first_detected"], START + 2_000);
    assert_eq!(found[1]["evidence"], json!({"dst_ip": "2001:db8::1"}));
    assert_eq!(found[2]["first_detected"], START + 1_500);
    assert_eq!(found[2]["evidence"], json!({"dst_ip": "8.8.8.8"}));
    let (_, scans) = fs.get("/v1/anomalies?kind=port_scan");
    assert_eq!(rows(&scans).len(), 1);
    let (_, spikes) = fs.get("/v1/anomalies?kind=fanout_spike");
    assert_eq!(rows(&spikes), Vec::<Value>::new());
    let (_, one) = fs.get("/v1/anomalies?limit=1");
    assert_eq!(rows(&one).len(), 1);
}

#[test]
fn a_config_file_changes_bands_ports_ranges_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowsight.toml");
    // 8.8.8.0/24 private: the uploader's bytes no longer count; 443 sensitive; the
    // scanner critical from 35 on; a scan needs 90 % failures (it has 80 %).
    std::fs::write(
        &config,
        r#"
[risk]
sensitive_ports = [22, 23, 443]
private_ranges = ["10.0.0.0/8", "8.8.8.0/24", "fc00::/7"]
[risk.severity]
medium = 5
critical = 35
[anomalies.port_scan]
min_failed_percent = 90
"#,
    )
    .unwrap();
    let events = capture();
    let (fs, _dir) = serve(&events, &["--config", config.to_str().unwrap()]);
    let (_, answer) = fs.get("/v1/risks");
    let scores: Vec<(String, u64, String)> = rows(&answer)
        .iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap().to_string(),
                r["score"].as_u64().unwrap(),
                r["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        scores,
        vec![
            (SCANNER.to_string(), 40, "critical".to_string()),
            // 1 + sensitive 5 (443); external 0 now that 8.8.8.8 is private. A tie with
            // the IPv6 host: by address, IPv4 first.
            (UPLOADER.to_string(), 6, "medium".to_string()),
            (SSH_CLIENT.to_string(), 6, "medium".to_string()),
        ]
    );
    let (_, anomalies) = fs.get("/v1/anomalies");
    let found = rows(&anomalies);
    let kinds: Vec<&str> = found
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .filter(|kind| *kind != "policy_violation")
        .collect();
    // No scan at 80 % failed, and 8.8.8.8 is no longer external.
    assert_eq!(kinds, vec!["new_external_destination"], "{anomalies}");
}

#[test]
fn a_bad_config_file_is_refused_with_its_mistake_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[risk]\nsensitive_port = [22]\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sensitive_port"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}

#[test]
fn without_risk_views_the_routes_say_so() {
    let events = capture();
    let (fs, _dir) = serve(&events, &["--no-risk-views"]);
    for path in [
        "/v1/risks",
        "/v1/risks/10.0.0.5",
        "/v1/risks/severity",
        "/v1/anomalies?kind=port_scan",
    ] {
        let (code, body) = fs.get(path);
        assert_eq!(code, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "view_disabled", "{path}: {body}");
    }
    let (code, _) = fs.get("/v1/graph/edges");
    assert_eq!(code, 200);
    // The segmentation views still run: the anomaly list holds their violations only.
    let (code, anomalies) = fs.get("/v1/anomalies");
    assert_eq!(code, 200, "{anomalies}");
    assert!(
        rows(&anomalies)
            .iter()
            .all(|a| a["kind"] == "policy_violation"),
        "{anomalies}"
    );
    drop(fs);
    let (fs, _dir) = serve(&events, &["--no-risk-views", "--no-segment-views"]);
    let (code, body) = fs.get("/v1/anomalies");
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"]["code"], "view_disabled", "{body}");
}

#[test]
fn alerts_go_to_the_alerts_topic_as_json() {
    let tansu = Tansu::start();
    tansu.create_topic("alerts", 2);
    let events = capture();
    let (fs, _dir) = serve(
        &events,
        &["--brokers", tansu.brokers(), "--alerts-topic", "alerts"],
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", fs.base))
        .unwrap()
        .text()
        .unwrap();
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("flowsight_alerts_sent_total "))
        .unwrap_or_else(|| panic!("no alert counter in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(sent >= 8, "{metrics}");
    // Stop, which flushes the producer.
    let status = fs.terminate();
    assert!(status.success(), "{status}");

    // Expected at least: the scan in each of the 3 windows, the scanner turning medium in
    // each, and one alert per first contact (2). The scanner's score may pass through
    // other values while the file is read, so more severity alerts may come.
    let records = read_topic(tansu.brokers(), "alerts", 8, Duration::from_secs(30));
    let alerts: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("alerts are JSON"))
        .collect();
    let mut by_kind: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for alert in &alerts {
        let kind = alert["kind"]
            .as_str()
            .or(alert["to"].as_str())
            .unwrap_or("?");
        by_kind
            .entry((
                alert["host"].as_str().unwrap().to_string(),
                kind.to_string(),
            ))
            .or_default()
            .push(alert);
    }
    let scans = &by_kind[&(SCANNER.to_string(), "port_scan".to_string())];
    let mut windows: Vec<&str> = scans
        .iter()
        .map(|a| a["window"].as_str().unwrap())
        .collect();
    windows.sort();
    assert_eq!(windows, vec!["24h", "2h", "30m"], "{alerts:#?}");
    assert!(scans
        .iter()
        .all(|a| a["type"] == "anomaly" && a["evidence"]["distinct_ports"].as_u64().is_some()));
    let medium = &by_kind[&(SCANNER.to_string(), "medium".to_string())];
    assert!(medium
        .iter()
        .all(|a| a["type"] == "severity" && a["score"].as_u64().is_some()));
    for (host, dst) in [(UPLOADER, "8.8.8.8"), (SSH_CLIENT, "2001:db8::1")] {
        let contacts = &by_kind[&(host.to_string(), "new_external_destination".to_string())];
        assert_eq!(
            contacts.len(),
            1,
            "one alert per first contact: {alerts:#?}"
        );
        assert_eq!(contacts[0]["evidence"]["dst_ip"], dst);
        assert_eq!(contacts[0]["window"], "30m");
    }
    // Keyed by host, so one host's alerts stay in order within a partition.
    let scanner_key: IpAddr = SCANNER.parse().unwrap();
    let partitions: std::collections::BTreeSet<u32> = records
        .iter()
        .zip(&alerts)
        .filter(|(_, a)| a["host"] == scanner_key.to_string())
        .map(|(r, _)| r.partition)
        .collect();
    assert_eq!(partitions.len(), 1, "{partitions:?}");
}
