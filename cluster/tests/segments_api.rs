//! The segmentation endpoints end to end through the real binary: a small hand-computed
//! capture whose every segment, hub, policy entry and violation is written out below
//! (golden answers), both thresholds from the command line and from `--config`, bad
//! requests, and `--no-segment-views`.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{free_port, write_native, Flowsight};
use flowsight_events::{Event, Proto, Status};
use serde_json::{json, Value};

const START: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

fn event(offset: u64, src: &str, dst: &str, port: u16, proto: Proto) -> Event {
    Event {
        ts: START + offset,
        src_ip: src.parse().unwrap(),
        dst_ip: dst.parse().unwrap(),
        src_port: 40_000,
        dst_port: port,
        proto,
        bytes_out: 500,
        bytes_in: 500,
        packets: 6,
        duration_ms: None,
        status: Status::Established,
    }
}

/// * segment 10.1.0.1: 10.1.0.1 ↔ 10.1.0.2 three times, 10.1.0.2 ↔ 10.1.0.3 three times;
/// * segment 10.2.0.1: 10.2.0.2 → 10.2.0.1 three times;
/// * 10.1.0.3 → 10.2.0.2 on 5432 twice: a weak edge (2 < 3), so policy, not a merge;
/// * 10.0.0.53 answers DNS to four hosts: a hub with `--hub-degree 4`, and no other host
///   has four peers (10.1.0.2 and 10.2.0.2 have three);
/// * fd00::9 → fd00::a once, and 10.3.0.1 with itself: segments of one.
fn capture() -> Vec<Event> {
    let tcp = Proto::Tcp;
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(event(i, "10.1.0.1", "10.1.0.2", 443, tcp));
        events.push(event(10 + i, "10.1.0.2", "10.1.0.3", 443, tcp));
        events.push(event(20 + i, "10.2.0.2", "10.2.0.1", 8080, tcp));
    }
    events.push(event(30, "10.1.0.3", "10.2.0.2", 5432, tcp));
    events.push(event(40, "10.1.0.3", "10.2.0.2", 5432, tcp));
    for (i, client) in ["10.1.0.1", "10.1.0.2", "10.2.0.1", "10.2.0.2"]
        .iter()
        .enumerate()
    {
        events.push(event(50 + i as u64, client, "10.0.0.53", 53, Proto::Udp));
    }
    events.push(event(60, "fd00::9", "fd00::a", 22, tcp));
    events.push(event(70, "10.3.0.1", "10.3.0.1", 80, tcp));
    events
}

fn serve(extra: &[&str]) -> (Flowsight, tempfile::TempDir) {
    let events = capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, &events);
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

/// The default pane of the 24h window.
const ONE_HOUR: u64 = 3_600_000;

/// Checks that `answer` is over the 24h window at its `as_of` (which starts at a boundary of
/// its default one-hour pane), and returns it without those two fields, for comparison with
/// a golden answer.
fn over_the_day(mut answer: Value) -> Value {
    let as_of = answer["as_of"].as_u64().expect("an as_of");
    let from = (as_of - DAY) / ONE_HOUR * ONE_HOUR;
    assert_eq!(
        answer["window"],
        json!({ "name": "24h", "from": from, "to": as_of }),
        "{answer}"
    );
    let object = answer.as_object_mut().unwrap();
    object.remove("as_of");
    object.remove("window");
    answer
}

fn member(ip: &str, connections: u64) -> Value {
    json!({ "ip": ip, "connections": connections })
}

fn traffic(inside: u64, out: u64, inbound: u64) -> Value {
    json!({ "inside": inside, "out": out, "in": inbound })
}

fn ports(port: u16, proto: &str, count: u64) -> Value {
    json!([{ "dst_port": port, "proto": proto, "count": count }])
}

fn violation(
    offset: u64,
    host: &str,
    from: &str,
    to: &str,
    dst: &str,
    port: u16,
    proto: &str,
) -> Value {
    json!({
        "host": host, "kind": "policy_violation", "first_detected": START + offset,
        "evidence": { "from": from, "to": to, "dst_ip": dst, "dst_port": port, "proto": proto },
    })
}

#[test]
fn segments_hubs_policy_and_violations_match_the_hand_computed_answers() {
    let (fs, _dir) = serve(&["--hub-degree", "4"]);

    let (code, list) = fs.get("/v1/segments?members=2");
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        over_the_day(list),
        json!({
            "segments": 5,
            "hubs": 1,
            "rows": [
                // 10.1.0.2: 3 + 3 + 1 DNS; 10.1.0.3: 3 + 2 to 10.2.0.2; 10.1.0.1: 3 + 1 DNS.
                { "id": "10.1.0.1", "size": 3,
                  "members": [member("10.1.0.2", 7), member("10.1.0.3", 5)],
                  "traffic": traffic(6, 4, 0) },
                { "id": "10.2.0.1", "size": 2,
                  "members": [member("10.2.0.2", 6), member("10.2.0.1", 4)],
                  "traffic": traffic(3, 2, 2) },
                // Sizes tie: by id, IPv4 first.
                { "id": "10.3.0.1", "size": 1, "members": [member("10.3.0.1", 1)],
                  "traffic": traffic(1, 0, 0) },
                { "id": "fd00::9", "size": 1, "members": [member("fd00::9", 1)],
                  "traffic": traffic(0, 1, 0) },
                { "id": "fd00::a", "size": 1, "members": [member("fd00::a", 1)],
                  "traffic": traffic(0, 0, 1) },
            ],
            "hub_rows": [{ "ip": "10.0.0.53", "peers": 4, "connections": 4 }],
            "truncated": false,
        })
    );

    let (code, segment) = fs.get("/v1/segments/10.1.0.1");
    assert_eq!(code, 200, "{segment}");
    assert_eq!(
        over_the_day(segment),
        json!({
            "id": "10.1.0.1", "hub": false, "size": 3,
            "members": [member("10.1.0.2", 7), member("10.1.0.3", 5), member("10.1.0.1", 4)],
            "traffic": traffic(6, 4, 0),
            // A tie of two connections: segments before hubs.
            "edges_out": [
                { "peer": "10.2.0.1", "connections": 2, "ports": ports(5432, "tcp", 2) },
                { "peer": "hub:10.0.0.53", "connections": 2, "ports": ports(53, "udp", 2) },
            ],
            "edges_in": [],
        })
    );
    let (code, hub) = fs.get("/v1/segments/hub:10.0.0.53");
    assert_eq!(code, 200, "{hub}");
    assert_eq!(
        over_the_day(hub),
        json!({
            "id": "hub:10.0.0.53", "hub": true, "size": 1,
            "members": [member("10.0.0.53", 4)],
            "traffic": traffic(0, 0, 4),
            "edges_out": [],
            "edges_in": [
                { "peer": "10.1.0.1", "connections": 2, "ports": ports(53, "udp", 2) },
                { "peer": "10.2.0.1", "connections": 2, "ports": ports(53, "udp", 2) },
            ],
        })
    );
    // An IPv6 id, percent-encoded as a client may send it.
    let (code, lone) = fs.get("/v1/segments/fd00%3A%3Aa?limit=1");
    assert_eq!(code, 200, "{lone}");
    assert_eq!(lone["members"], json!([member("fd00::a", 1)]), "{lone}");

    for (ip, segment, is_hub) in [
        ("10.1.0.3", "10.1.0.1", false),
        ("10.2.0.2", "10.2.0.1", false),
        ("10.0.0.53", "hub:10.0.0.53", true),
        ("fd00::a", "fd00::a", false),
        ("10.3.0.1", "10.3.0.1", false),
    ] {
        let (code, host) = fs.get(&format!("/v1/hosts/{ip}/segment"));
        assert_eq!(code, 200, "{host}");
        assert_eq!(
            over_the_day(host),
            json!({ "ip": ip, "segment": segment, "hub": is_hub })
        );
    }

    let policy_rows = json!([
        { "from": "10.1.0.1", "to": "10.2.0.1", "dst_port": 5432, "proto": "tcp", "count": 2 },
        { "from": "10.1.0.1", "to": "hub:10.0.0.53", "dst_port": 53, "proto": "udp", "count": 2 },
        { "from": "10.2.0.1", "to": "hub:10.0.0.53", "dst_port": 53, "proto": "udp", "count": 2 },
        { "from": "fd00::9", "to": "fd00::a", "dst_port": 22, "proto": "tcp", "count": 1 },
    ]);
    let (code, policy) = fs.get("/v1/policy");
    assert_eq!(code, 200, "{policy}");
    assert_eq!(
        over_the_day(policy),
        json!({ "rows": policy_rows, "truncated": false })
    );
    let (_, to_hub) = fs.get("/v1/policy?to=hub:10.0.0.53");
    assert_eq!(to_hub["rows"], json!([policy_rows[1], policy_rows[2]]));
    let (_, from_a) = fs.get("/v1/policy?from=10.1.0.1&to=hub:10.0.0.53");
    assert_eq!(from_a["rows"], json!([policy_rows[1]]));
    let (_, first) = fs.get("/v1/policy?limit=1");
    assert_eq!(first["rows"], json!([policy_rows[0]]));
    assert_eq!(first["truncated"], true);
    let (_, exactly) = fs.get("/v1/policy?limit=4");
    assert_eq!(exactly["truncated"], false, "{exactly}");
    let (_, one_segment) = fs.get("/v1/segments?limit=1");
    assert_eq!(one_segment["truncated"], true, "{one_segment}");
    // Most connections first, ties in key order.
    let (_, busiest) = fs.get("/v1/policy?order=count&limit=3");
    assert_eq!(
        busiest["rows"],
        json!([policy_rows[0], policy_rows[1], policy_rows[2]])
    );
    let (_, busiest) = fs.get("/v1/policy?order=count&from=fd00::9");
    assert_eq!(busiest["rows"], json!([policy_rows[3]]));
    let (code, csv) = fs.get("/v1/policy?format=csv");
    assert_eq!(code, 200);
    assert_eq!(
        csv,
        Value::String(
            "from,to,dst_port,proto,count\n\
             10.1.0.1,10.2.0.1,5432,tcp,2\n\
             10.1.0.1,hub:10.0.0.53,53,udp,2\n\
             10.2.0.1,hub:10.0.0.53,53,udp,2\n\
             fd00::9,fd00::a,22,tcp,1\n"
                .into()
        )
    );

    // Each entry's first record, newest first. (No other kind fires: every address is
    // private and nothing scans.)
    let violations = json!([
        violation(60, "fd00::9", "fd00::9", "fd00::a", "fd00::a", 22, "tcp"),
        violation(
            52,
            "10.2.0.1",
            "10.2.0.1",
            "hub:10.0.0.53",
            "10.0.0.53",
            53,
            "udp"
        ),
        violation(
            50,
            "10.1.0.1",
            "10.1.0.1",
            "hub:10.0.0.53",
            "10.0.0.53",
            53,
            "udp"
        ),
        violation(30, "10.1.0.3", "10.1.0.1", "10.2.0.1", "10.2.0.2", 5432, "tcp"),
    ]);
    for path in [
        "/v1/anomalies",
        "/v1/anomalies?kind=policy_violation&window=24h",
    ] {
        let (code, anomalies) = fs.get(path);
        assert_eq!(code, 200, "{anomalies}");
        assert_eq!(anomalies["rows"], violations, "{path}");
    }
}

#[test]
fn thresholds_come_from_the_config_file_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("segments.toml");
    // With strong edges at two connections, the edge on 5432 merges the two segments.
    std::fs::write(
        &config,
        "[segments]\nhub_degree = 4\nmin_edge_connections = 2\n",
    )
    .unwrap();
    let (fs, _state) = serve(&["--config", config.to_str().unwrap()]);
    let (_, host) = fs.get("/v1/hosts/10.2.0.2/segment");
    assert_eq!(host["segment"], "10.1.0.1", "{host}");
    let (_, list) = fs.get("/v1/segments?limit=1");
    assert_eq!(list["rows"][0]["id"], "10.1.0.1", "{list}");
    assert_eq!(list["rows"][0]["size"], 5, "{list}");
    assert_eq!(list["rows"][0]["traffic"], traffic(9 + 2, 4, 0), "{list}");
    let (_, policy) = fs.get("/v1/policy");
    assert_eq!(
        policy["rows"],
        json!([
            { "from": "10.1.0.1", "to": "hub:10.0.0.53", "dst_port": 53, "proto": "udp", "count": 4 },
            { "from": "fd00::9", "to": "fd00::a", "dst_port": 22, "proto": "tcp", "count": 1 },
        ])
    );
    drop(fs);

    // The command line overrides the file: no hub at degree 5, and DNS then joins nothing
    // (one connection per pair).
    let (fs, _state) = serve(&["--config", config.to_str().unwrap(), "--hub-degree", "5"]);
    let (_, host) = fs.get("/v1/hosts/10.0.0.53/segment");
    assert_eq!(
        over_the_day(host),
        json!({ "ip": "10.0.0.53", "segment": "10.0.0.53", "hub": false })
    );
}

#[test]
fn bad_requests_are_named_4xx() {
    let (fs, _dir) = serve(&["--hub-degree", "4"]);
    for (path, status, code) in [
        ("/v1/segments/nope", 400, "bad_segment"),
        ("/v1/segments/hub:nope", 400, "bad_segment"),
        ("/v1/segments/9.9.9.9", 404, "unknown_segment"),
        // A member that is not the segment's smallest is not an id.
        ("/v1/segments/10.1.0.2", 404, "unknown_segment"),
        ("/v1/segments/hub:10.1.0.1", 404, "unknown_segment"),
        ("/v1/hosts/nope/segment", 400, "bad_ip"),
        ("/v1/hosts/9.9.9.9/segment", 404, "unknown_host"),
        ("/v1/segments?members=0", 400, "bad_members"),
        ("/v1/segments?limit=0", 400, "bad_limit"),
        ("/v1/segments?window=2h", 400, "unknown_parameter"),
        ("/v1/policy?format=xml", 400, "bad_format"),
        ("/v1/policy?from=10.0.0", 400, "bad_segment"),
        ("/v1/policy?limit=x", 400, "bad_limit"),
        ("/v1/policy?order=size", 400, "bad_order"),
        ("/v1/anomalies?kind=policy_violations", 400, "bad_kind"),
    ] {
        let (got, body) = fs.get(path);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}

#[test]
fn bad_thresholds_are_refused_before_starting() {
    for args in [
        vec!["--hub-degree", "0"],
        vec!["--min-edge-connections", "0"],
        vec!["--hub-degree", "many"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowsight"))
            .arg("run")
            .args(&args)
            .args(["--http", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

#[test]
fn without_segment_views_the_routes_say_so() {
    let (fs, _dir) = serve(&["--no-segment-views"]);
    for path in [
        "/v1/segments",
        "/v1/segments/10.1.0.1",
        "/v1/hosts/10.1.0.1/segment",
        "/v1/policy",
        "/v1/anomalies?kind=policy_violation",
    ] {
        let (code, body) = fs.get(path);
        assert_eq!(code, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "view_disabled", "{path}: {body}");
    }
    // The other anomaly kinds still answer, without violations.
    let (code, anomalies) = fs.get("/v1/anomalies");
    assert_eq!(code, 200, "{anomalies}");
    assert_eq!(anomalies["rows"], json!([]));
}
