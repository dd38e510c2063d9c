//! HTTP integration tests over a real socket against the real binary replaying a file:
//! every endpoint against the oracle, and every error case.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{free_port, oracle_edges, oracle_top, rows, write_native, Flowsight};
use flowsight_events::Event;
use flowsight_queries::{EdgeRow, HostSummary};

const START: u64 = 1_700_000_000_000;

fn generated(count: u64) -> Vec<Event> {
    common::generated(7, 2, 2_000, START, count, 200)
}

/// Starts the binary on a file of `events` plus `bad_lines`, and waits for all of it.
fn serve(
    events: &[Event],
    bad_lines: &[&str],
    windows: &str,
) -> (Flowsight, tempfile::TempDir, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, events);
    if !bad_lines.is_empty() {
        let mut text = std::fs::read_to_string(&path).unwrap();
        for line in bad_lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
    }
    let port = free_port();
    let mut flowsight = Flowsight::run(
        &[
            "--source",
            "file",
            "--path",
            path.to_str().unwrap(),
            "--format",
            "native",
            "--idle-timeout",
            "200ms",
            "--windows",
            windows,
            "--workers",
            "2",
        ],
        port,
    );
    let status = flowsight.wait_until_complete(events.len() as u64, Duration::from_secs(120));
    (flowsight, dir, status)
}

#[test]
fn every_view_endpoint_matches_the_oracle() {
    let events = generated(30_000);
    let bad = [
        "{not json",
        r#"{"ts": 1, "src_ip": "10.0.0.1"}"#,
        r#"{"ts":1700000000000,"src_ip":"10.0.0.999","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"proto":"tcp","bytes_out":1,"bytes_in":1,"packets":1,"status":"established"}"#,
    ];
    let (fs, _dir, status) = serve(&events, &bad, "5s,30m,2h");
    let as_of = status["as_of"].as_u64().unwrap();
    assert_eq!(status["dead_letters"], 3, "{status}");
    assert_eq!(status["workers"], 2);
    assert_eq!(status["processes"], 1);

    // /health
    let (code, health) = fs.get("/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["ready"], true);

    // /v1/graph/edges for every window, with and without filters.
    for (window, length) in [("5s", 5_000u64), ("30m", 1_800_000), ("2h", 7_200_000)] {
        let (code, answer) = fs.get(&format!("/v1/graph/edges?window={window}&limit=20"));
        assert_eq!(code, 200, "{answer}");
        let answered_as_of = answer["as_of"].as_u64().unwrap();
        assert!(answered_as_of >= as_of);
        assert_eq!(answer["window"]["name"], window);
        assert_eq!(answer["window"]["to"].as_u64(), Some(answered_as_of));
        assert_eq!(
            answer["window"]["from"].as_u64(),
            Some(answered_as_of - length)
        );
        assert_eq!(
            rows(&answer),
            oracle_top(&events, answered_as_of, length, 20),
            "window {window}"
        );

        let all = oracle_edges(&events, answered_as_of, length);
        let busiest = oracle_top(&events, answered_as_of, length, 1)[0].clone();
        let (_, by_src) = fs.get(&format!(
            "/v1/graph/edges?window={window}&src={}&limit=10000",
            busiest.src_ip
        ));
        let expected: Vec<EdgeRow> = {
            let mut v: Vec<EdgeRow> = all
                .values()
                .filter(|e| e.src_ip == busiest.src_ip)
                .cloned()
                .collect();
            v.sort_by(flowsight_queries::EdgeRow::heaviest_first);
            v
        };
        assert_eq!(rows(&by_src), expected);
        let (_, by_dst) = fs.get(&format!(
            "/v1/graph/edges?window={window}&dst={}&limit=10000",
            busiest.dst_ip
        ));
        let mut expected: Vec<EdgeRow> = all
            .values()
            .filter(|e| e.dst_ip == busiest.dst_ip)
            .cloned()
            .collect();
        expected.sort_by(EdgeRow::heaviest_first);
        assert_eq!(rows(&by_dst), expected);
        let (_, pair) = fs.get(&format!(
            "/v1/graph/edges?window={window}&src={}&dst={}",
            busiest.src_ip, busiest.dst_ip
        ));
        let mut expected: Vec<EdgeRow> = all
            .values()
            .filter(|e| e.src_ip == busiest.src_ip && e.dst_ip == busiest.dst_ip)
            .cloned()
            .collect();
        expected.sort_by(EdgeRow::heaviest_first);
        assert_eq!(rows(&pair), expected);

        // /v1/graph/hosts/{ip}
        for ip in [busiest.src_ip, busiest.dst_ip] {
            let (code, host) = fs.get(&format!("/v1/graph/hosts/{ip}?window={window}"));
            assert_eq!(code, 200, "{host}");
            let mut out_edges: Vec<EdgeRow> =
                all.values().filter(|e| e.src_ip == ip).cloned().collect();
            let mut in_edges: Vec<EdgeRow> =
                all.values().filter(|e| e.dst_ip == ip).cloned().collect();
            out_edges.sort_by(EdgeRow::heaviest_first);
            in_edges.sort_by(EdgeRow::heaviest_first);
            let got_out: Vec<EdgeRow> = serde_json::from_value(host["out_edges"].clone()).unwrap();
            let got_in: Vec<EdgeRow> = serde_json::from_value(host["in_edges"].clone()).unwrap();
            assert_eq!(got_out, out_edges);
            assert_eq!(got_in, in_edges);
            let summary: HostSummary = serde_json::from_value(host["host"].clone()).unwrap();
            let peers_out: std::collections::BTreeSet<_> =
                out_edges.iter().map(|e| e.dst_ip).collect();
            assert_eq!(summary.out_peers, peers_out.len() as u64);
            assert_eq!(
                summary.connections_out,
                out_edges.iter().map(|e| e.count).sum::<u64>()
            );
            assert_eq!(
                summary.connections_in,
                in_edges.iter().map(|e| e.count).sum::<u64>()
            );
        }
    }

    // /v1/graph/hosts: every host of the window, busiest first, with its totals.
    for (window, length) in [("5s", 5_000u64), ("2h", 7_200_000)] {
        let (code, answer) = fs.get(&format!("/v1/graph/hosts?window={window}&limit=10000"));
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["truncated"], false, "{answer}");
        let answered_as_of = answer["as_of"].as_u64().unwrap();
        let all = oracle_edges(&events, answered_as_of, length);
        // (connections out, connections in, bytes sent, bytes received) per host.
        let mut expected: std::collections::BTreeMap<std::net::IpAddr, [u64; 4]> =
            Default::default();
        for e in all.values() {
            let src = expected.entry(e.src_ip).or_default();
            src[0] += e.count;
            src[2] += e.bytes_out;
            src[3] += e.bytes_in;
            let dst = expected.entry(e.dst_ip).or_default();
            dst[1] += e.count;
            dst[2] += e.bytes_in;
            dst[3] += e.bytes_out;
        }
        let hosts: Vec<HostSummary> = serde_json::from_value(answer["rows"].clone()).unwrap();
        assert_eq!(hosts.len(), expected.len(), "window {window}");
        for host in &hosts {
            let totals = [
                host.connections_out,
                host.connections_in,
                host.bytes_sent,
                host.bytes_received,
            ];
            assert_eq!(Some(&totals), expected.get(&host.ip), "{}", host.ip);
        }
        let order = |h: &HostSummary| {
            (
                std::cmp::Reverse(h.connections_out + h.connections_in),
                std::cmp::Reverse(h.bytes_sent + h.bytes_received),
                h.ip,
            )
        };
        assert!(
            hosts.windows(2).all(|w| order(&w[0]) < order(&w[1])),
            "window {window}: not busiest first"
        );
        let (_, first) = fs.get(&format!("/v1/graph/hosts?window={window}&limit=1"));
        assert_eq!(first["rows"].as_array().map(Vec::len), Some(1), "{first}");
        assert_eq!(first["truncated"], true, "{first}");
        let (_, one) = fs.get(&format!("/v1/graph/hosts/{}?window={window}", hosts[0].ip));
        assert_eq!(first["rows"][0], one["host"], "a row is the host's summary");
    }

    // A host the window has not seen is not found (as for its segment), not zeros.
    let (code, quiet) = fs.get("/v1/graph/hosts/192.0.2.1");
    assert_eq!(code, 404, "{quiet}");
    assert_eq!(quiet["error"]["code"], "unknown_host", "{quiet}");

    // A host's edge lists are limited, its summary still covers every edge.
    let busiest = oracle_top(&events, as_of, 7_200_000, 1)[0].clone();
    let (_, full) = fs.get(&format!("/v1/graph/hosts/{}?window=2h", busiest.dst_ip));
    let (code, limited) = fs.get(&format!(
        "/v1/graph/hosts/{}?window=2h&limit=1",
        busiest.dst_ip
    ));
    assert_eq!(code, 200, "{limited}");
    assert!(full["in_edges"].as_array().unwrap().len() > 1, "{full}");
    assert_eq!(limited["in_edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(limited["in_edges"][0], full["in_edges"][0]);
    assert_eq!(limited["host"], full["host"]);
    // ...and say when they were cut.
    assert_eq!(limited["truncated"], true, "{limited}");
    assert_eq!(full["truncated"], false, "{full}");
    let (_, one) = fs.get("/v1/graph/edges?window=2h&limit=1");
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["truncated"], true, "{one}");
    let (_, all_edges) = fs.get("/v1/graph/edges?window=2h&limit=10000");
    assert!(
        all_edges["rows"].as_array().unwrap().len() < 10_000,
        "{all_edges}"
    );
    assert_eq!(all_edges["truncated"], false, "{all_edges}");
    assert_eq!(all_edges["rows"][0], one["rows"][0]);

    // IPv6 addresses work in the path, percent-encoded or not.
    for path in [
        "/v1/graph/hosts/2606:4700::1111",
        "/v1/graph/hosts/2606%3A4700%3A%3A1111",
    ] {
        let (code, v6) = fs.get(path);
        assert_eq!(code, 200, "{path}: {v6}");
        assert_eq!(v6["host"]["ip"], "2606:4700::1111");
    }

    // /v1/dead-letters
    let (code, dead) = fs.get("/v1/dead-letters?limit=10");
    assert_eq!(code, 200, "{dead}");
    assert_eq!(dead["total"], 3);
    let letters = dead["rows"].as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert!(letters
        .iter()
        .all(|l| l["position"]["offset"].as_u64().unwrap() > events.len() as u64));
    assert!(letters.iter().any(|l| l["reason"] == "invalid_json"));
    assert!(letters.iter().any(|l| l["reason"] == "missing_field"));
    assert!(letters.iter().any(|l| l["reason"] == "invalid_field"));
    let (_, one) = fs.get("/v1/dead-letters?limit=1");
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1));

    // /metrics
    let response = reqwest::blocking::get(format!("{}/metrics", fs.base)).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().unwrap();
    assert!(
        text.contains(&format!("flowsight_records_total {}", events.len())),
        "{text}"
    );
    assert!(
        text.contains("flowsight_dead_letters_total{reason=\"invalid_json\"} 1"),
        "{text}"
    );
    assert!(text.contains("flowsight_late_records_total"), "{text}");
    assert!(text.contains("flowsight_frontier_ms"), "{text}");
    assert!(text.contains("flowsight_build_info{version=\"0."), "{text}");
    // Each view's state: the graph holds its groups, and every window its records.
    let state = |view: &str| -> Option<u64> {
        let prefix = format!("flowsight_view_state_records{{view=\"{view}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    assert!(state("graph").is_some_and(|n| n > 0), "{text}");
    let (_, status) = fs.get("/v1/status");
    // (Merges may change the count between the two reads, never to nothing.)
    assert!(
        status["state"]["graph"]["records"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{status}"
    );

    // The build is named at runtime.
    let (_, health) = fs.get("/health");
    assert!(
        health["version"]
            .as_str()
            .is_some_and(|v| v.contains("(commit ")),
        "{health}"
    );
    let (_, status) = fs.get("/v1/status");
    assert_eq!(status["version"], health["version"], "{status}");

    // The dashboard.
    let page = reqwest::blocking::get(format!("{}/", fs.base)).unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("<title>flowsight</title>"));

    // SIGTERM stops it cleanly.
    assert!(fs.terminate().success());
}

#[test]
fn bad_requests_get_json_errors() {
    let events = generated(2_000);
    let (fs, _dir, _) = serve(&events, &[], "30m,2h,24h");
    let cases = [
        ("/nope", 404, "not_found"),
        ("/v1/nope/deeper", 404, "not_found"),
        ("/v1/risks/zzz", 400, "bad_ip"),
        ("/v1/risks?severity=high", 400, "bad_severity"),
        ("/v1/risks?window=7m", 400, "unknown_window"),
        ("/v1/risks?limit=0", 400, "bad_limit"),
        ("/v1/risks?sev=low", 400, "unknown_parameter"),
        ("/v1/risks/severity?step=0s", 400, "bad_step"),
        ("/v1/risks/severity?step=1ms", 400, "bad_step"),
        ("/v1/risks/severity?step=fast", 400, "bad_step"),
        ("/v1/risks/severity?window=7m", 400, "unknown_window"),
        ("/v1/risks/severity?span=25h", 400, "bad_span"),
        ("/v1/risks/severity?span=0m", 400, "bad_span"),
        ("/v1/risks/severity?span=3h&step=1s", 400, "bad_step"),
        ("/v1/risks/10.0.0.1?history=maybe", 400, "bad_flag"),
        ("/v1/risks/10.0.0.1?window=1y", 400, "unknown_window"),
        ("/v1/anomalies?kind=port_scanning", 400, "bad_kind"),
        ("/v1/anomalies?window=7m", 400, "unknown_window"),
        ("/v1/anomalies?limit=ten", 400, "bad_limit"),
        ("/v1/graph/edges?window=7m", 400, "unknown_window"),
        ("/v1/graph/edges?limit=0", 400, "bad_limit"),
        ("/v1/graph/edges?limit=10001", 400, "bad_limit"),
        ("/v1/graph/edges?limit=ten", 400, "bad_limit"),
        ("/v1/graph/edges?src=10.0.0.300", 400, "bad_ip"),
        ("/v1/graph/edges?dst=not-an-ip", 400, "bad_ip"),
        ("/v1/graph/edges?sourc=10.0.0.1", 400, "unknown_parameter"),
        ("/v1/graph/edges?limit=5&limit=6", 400, "repeated_parameter"),
        ("/v1/graph/hosts?window=1y", 400, "unknown_window"),
        ("/v1/graph/hosts?limit=0", 400, "bad_limit"),
        ("/v1/graph/hosts?src=10.0.0.1", 400, "unknown_parameter"),
        ("/v1/graph/hosts/10.0.0.300", 400, "bad_ip"),
        ("/v1/graph/hosts/10.0.0.1?window=1y", 400, "unknown_window"),
        ("/v1/dead-letters?limit=100000", 400, "bad_limit"),
        ("/v1/graph/hosts/10.0.0.1?limit=0", 400, "bad_limit"),
    ];
    for (path, status, code) in cases {
        let (got, body) = fs.get(path);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }

    // An oversized body is refused from its headers alone, before it is read.
    let mut stream = std::net::TcpStream::connect(fs.base.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"POST /v1/status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 204800\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");

    let client = reqwest::blocking::Client::new();
    let post = client
        .post(format!("{}/v1/status", fs.base))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let body: serde_json::Value = post.json().unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    // A 405 names the methods the route does answer.
    let put = client
        .put(format!("{}/v1/queries", fs.base))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 405);
    assert_eq!(put.headers()["allow"], "GET, HEAD, POST");
    let body: serde_json::Value = put.json().unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("GET, HEAD, POST")),
        "{body}"
    );
    let patch = client
        .patch(format!("{}/v1/queries/some_query", fs.base))
        .send()
        .unwrap();
    assert_eq!(patch.status().as_u16(), 405);
    assert_eq!(patch.headers()["allow"], "GET, HEAD, DELETE");

    // Health checkers ask with HEAD: the GET's status, no body.
    let head = client.head(format!("{}/health", fs.base)).send().unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.text().unwrap(), "");
    let head = client
        .head(format!("{}/v1/graph/edges", fs.base))
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
}
