//! Registered queries through the real binary: registering in SQL and as a JSON plan,
//! listing, showing, reading and dropping; every refusal with its status and code; the
//! group bound; surviving a restart; the `flowsight query` client; and registering and
//! dropping while records flow, every answer checked against plain iteration over the
//! records.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{free_port, write_native, Flowsight};
use flowsight_events::{Event, Proto, Status};
use serde_json::{json, Value};

const START: u64 = 1_700_000_000_000;

fn event(offset: u64, src: &str, dst: &str, port: u16, bytes_out: u64) -> Event {
    Event {
        ts: START + offset,
        src_ip: src.parse().unwrap(),
        dst_ip: dst.parse().unwrap(),
        src_port: 40_000 + port,
        dst_port: port,
        proto: if port == 53 { Proto::Udp } else { Proto::Tcp },
        bytes_out,
        bytes_in: 100,
        packets: 2,
        duration_ms: (port != 53).then_some(offset % 7),
        status: if port == 23 {
            Status::Rejected
        } else {
            Status::Established
        },
    }
}

/// A small capture: an SSH fan-out from 10.0.0.5 to seven hosts, two of them outside
/// 10/8; DNS from three hosts; telnet attempts.
fn capture() -> Vec<Event> {
    let mut events = Vec::new();
    for (i, dst) in [
        "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "8.8.8.8", "1.1.1.1",
    ]
    .iter()
    .enumerate()
    {
        events.push(event(
            100 + i as u64 * 10,
            "10.0.0.5",
            dst,
            22,
            1_000 * (i as u64 + 1),
        ));
    }
    for (i, src) in ["10.0.0.6", "10.0.0.7", "10.0.0.6"].iter().enumerate() {
        events.push(event(200 + i as u64, src, "10.0.0.53", 53, 60));
    }
    events.push(event(300, "10.0.0.7", "10.0.2.1", 23, 0));
    events.push(event(310, "10.0.0.7", "10.0.2.2", 23, 0));
    events
}

fn serve(events: &[Event], extra: &[&str]) -> (Flowsight, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, events);
    let state = dir.path().join("state");
    let args = [
        &[
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
        ][..],
        extra,
    ]
    .concat();
    let mut fs = Flowsight::run(&args, free_port());
    fs.wait_until_complete(events.len() as u64, Duration::from_secs(60));
    (fs, dir)
}

const SSH_FANOUT: &str = "SELECT src_ip, COUNT(*) AS conns, COUNT(DISTINCT dst_ip) AS targets, \
     SUM(bytes_out) AS bytes FROM flows_30m WHERE dst_port IN (22, 3389) AND NOT \
     cidr_match(dst_ip, '10.0.0.0/8') GROUP BY src_ip HAVING COUNT(DISTINCT dst_ip) > 1 \
     ORDER BY targets DESC LIMIT 20";

fn by_port_plan() -> Value {
    json!({
        "from": "flows_2h",
        "select": [
            {"column": "dst_port"},
            {"aggregate": "count_star", "as": "n"},
            {"aggregate": {"avg": "duration_ms"}, "as": "avg_duration"},
            {"aggregate": {"min": "src_ip"}, "as": "lowest"}
        ],
        "group_by": ["dst_port"],
        "order_by": [{"term": {"aggregate": "count_star"}, "descending": true}]
    })
}

#[test]
fn register_list_show_read_and_drop() {
    let events = capture();
    let (fs, _dir) = serve(&events, &[]);

    let (code, created) = fs.post(
        "/v1/queries",
        &json!({"name": "ssh_fanout", "sql": SSH_FANOUT}),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], "ssh_fanout");
    assert_eq!(created["sql"], SSH_FANOUT);
    assert_eq!(created["window"], "30m");
    assert_eq!(created["state"], "running");
    assert_eq!(
        created["columns"],
        json!(["src_ip", "conns", "targets", "bytes"])
    );
    assert_eq!(created["plan"]["from"], "flows_30m");

    let (code, created) = fs.post(
        "/v1/queries",
        &json!({"name": "by_port", "plan": by_port_plan()}),
    );
    assert_eq!(code, 201, "{created}");
    // A plan is shown as SQL too.
    assert!(
        created["sql"].as_str().unwrap().starts_with("SELECT"),
        "{created}"
    );

    let (code, list) = fs.get("/v1/queries");
    assert_eq!(code, 200, "{list}");
    let names: Vec<&str> = list["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["by_port", "ssh_fanout"]);

    let (code, shown) = fs.get("/v1/queries/ssh_fanout");
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["sql"], SSH_FANOUT);

    // Only the fan-out to 8.8.8.8 and 1.1.1.1 is outside 10/8.
    let (code, results) = fs.get("/v1/queries/ssh_fanout/results");
    assert_eq!(code, 200, "{results}");
    assert_eq!(results["window"]["name"], "30m");
    assert_eq!(
        results["columns"],
        json!(["src_ip", "conns", "targets", "bytes"])
    );
    assert_eq!(
        results["rows"],
        json!([{"src_ip": "10.0.0.5", "conns": 2, "targets": 2, "bytes": 13_000}])
    );
    assert_eq!(results["total"], 1);

    // By port, most records first. AVG skips the DNS records' missing durations: NULL.
    let (_, results) = fs.get("/v1/queries/by_port/results");
    // Durations are offset % 7: port 22's are 2, 5, 1, 4, 0, 3, 6; port 23's 6 and 2.
    assert_eq!(
        results["rows"],
        json!([
            {"dst_port": 22, "n": 7, "avg_duration": 3.0, "lowest": "10.0.0.5"},
            {"dst_port": 53, "n": 3, "avg_duration": null, "lowest": "10.0.0.6"},
            {"dst_port": 23, "n": 2, "avg_duration": 4.0, "lowest": "10.0.0.7"}
        ])
    );
    let (_, limited) = fs.get("/v1/queries/by_port/results?limit=1");
    assert_eq!(limited["rows"].as_array().unwrap().len(), 1);
    assert_eq!(limited["total"], 3);

    let (code, dropped) = fs.delete("/v1/queries/ssh_fanout");
    assert_eq!(code, 200, "{dropped}");
    assert_eq!(dropped["dropped"], "ssh_fanout");
    for (code, answer) in [
        fs.get("/v1/queries/ssh_fanout/results"),
        fs.get("/v1/queries/ssh_fanout"),
        fs.delete("/v1/queries/ssh_fanout"),
    ] {
        assert_eq!(code, 404, "{answer}");
        assert_eq!(answer["error"]["code"], "unknown_query");
    }
    // The name is free again.
    let (code, again) = fs.post(
        "/v1/queries",
        &json!({"name": "ssh_fanout", "plan": by_port_plan()}),
    );
    assert_eq!(code, 201, "{again}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let (fs, _dir) = serve(&capture(), &["--max-queries", "2"]);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"sql": "SELECT COUNT(*) FROM flows_30m"}),
            400,
            "bad_definition",
        ),
        (
            json!({"name": "a b", "sql": "SELECT COUNT(*) FROM flows_30m"}),
            400,
            "bad_name",
        ),
        (json!({"name": "x"}), 400, "bad_definition"),
        (
            json!({"name": "x", "sql": "SELECT 1", "plan": {}}),
            400,
            "bad_definition",
        ),
        (
            json!({"name": "x", "sql": "SELECT COUNT(*) FROM flows_30m", "extra": 1}),
            400,
            "bad_definition",
        ),
        (
            json!({"name": "x", "plan": {"from": "flows_30m"}}),
            400,
            "bad_plan",
        ),
        (
            json!({"name": "x", "sql": "SELECT COUNT(*) FROM flows_1h"}),
            400,
            "unknown_table",
        ),
        (
            json!({"name": "x", "sql": "SELECT SUM(proto) FROM flows_30m"}),
            400,
            "type_mismatch",
        ),
        (
            json!({"name": "x", "sql": "SELECT src_ip, COUNT(*) FROM flows_30m"}),
            400,
            "ungrouped_column",
        ),
        (
            json!({"name": "x", "sql": "SELECT COUNT(*) FROM flows_30m WHERE cidr_match(dst_ip, '10.0.0.1/8')"}),
            400,
            "bad_cidr",
        ),
        (
            json!({"name": "x", "sql": "SELECT COUNT(*) FROM flows_30m WHERE COUNT(*) > 1"}),
            400,
            "aggregate_in_where",
        ),
        (
            json!({"name": "x", "sql": "SELECT srcip FROM flows_30m"}),
            400,
            "unknown_column",
        ),
        (
            json!({"name": "x", "sql": "SELEC COUNT(*) FROM flows_30m"}),
            400,
            "syntax_error",
        ),
        (
            json!({"name": "x", "sql": "SELECT a.src_ip FROM flows_30m a JOIN flows_2h b ON a.src_ip = b.src_ip"}),
            400,
            "unsupported",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = fs.post("/v1/queries", &body);
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let count = json!({"from": "flows_30m", "select": [{"aggregate": "count_star"}]});
    assert_eq!(
        fs.post("/v1/queries", &json!({"name": "one", "plan": count}))
            .0,
        201
    );
    let (code, answer) = fs.post("/v1/queries", &json!({"name": "one", "plan": count}));
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (409, Some("duplicate_query"))
    );
    assert_eq!(
        fs.post("/v1/queries", &json!({"name": "two", "plan": count}))
            .0,
        201
    );
    let (code, answer) = fs.post("/v1/queries", &json!({"name": "three", "plan": count}));
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (409, Some("too_many_queries")),
        "{answer}"
    );

    let (code, answer) = fs.get("/v1/queries/one/results?limit=0");
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (400, Some("bad_limit"))
    );
    let (code, answer) = fs.get("/v1/queries/one/results?rows=5");
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (400, Some("unknown_parameter"))
    );
    let (code, answer) = fs.get("/v1/queries/nope/results");
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (404, Some("unknown_query"))
    );
    // Not JSON at all.
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/queries", fs.base))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["error"]["code"], "bad_json");
}

#[test]
fn a_query_keeping_too_many_groups_is_stopped_not_left_to_grow() {
    let (fs, _dir) = serve(&capture(), &["--max-query-groups", "3"]);
    // Ten destinations: more groups than allowed.
    let (code, created) = fs.post(
        "/v1/queries",
        &json!({"name": "ports", "sql": "SELECT dst_ip, COUNT(*) FROM flows_24h GROUP BY dst_ip"}),
    );
    assert_eq!(code, 201, "{created}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let (_, shown) = fs.get("/v1/queries/ports");
        if shown["state"] == "failed" || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(shown["state"], "failed", "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("--max-query-groups"),
        "{shown}"
    );
    let (code, answer) = fs.get("/v1/queries/ports/results");
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (409, Some("query_failed")),
        "{answer}"
    );
    // A query within the bound runs beside it, and the stopped one can be dropped.
    let (code, _) = fs.post(
        "/v1/queries",
        &json!({"name": "protos", "sql": "SELECT proto, COUNT(*) AS n FROM flows_24h GROUP BY proto"}),
    );
    assert_eq!(code, 201);
    let (_, results) = fs.get("/v1/queries/protos/results");
    assert_eq!(
        results["rows"],
        json!([{"proto": "tcp", "n": 9}, {"proto": "udp", "n": 3}])
    );
    assert_eq!(fs.delete("/v1/queries/ports").0, 200);
}

#[test]
fn registered_queries_survive_a_restart() {
    let events = capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, &events);
    let state = dir.path().join("state");
    let args = [
        "--source",
        "file",
        "--path",
        path.to_str().unwrap(),
        "--idle-timeout",
        "200ms",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut first = Flowsight::run(&args, free_port());
    first.wait_until_complete(events.len() as u64, Duration::from_secs(60));
    assert_eq!(
        first
            .post(
                "/v1/queries",
                &json!({"name": "ssh_fanout", "sql": SSH_FANOUT})
            )
            .0,
        201
    );
    assert_eq!(
        first
            .post(
                "/v1/queries",
                &json!({"name": "by_port", "plan": by_port_plan()})
            )
            .0,
        201
    );
    let (_, before) = first.get("/v1/queries/ssh_fanout/results");
    let (_, before_port) = first.get("/v1/queries/by_port/results");
    assert!(first.terminate().success());

    let mut second = Flowsight::run(&args, free_port());
    second.wait_until_complete(events.len() as u64, Duration::from_secs(60));
    let (_, list) = second.get("/v1/queries");
    let names: Vec<&str> = list["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["by_port", "ssh_fanout"]);
    let (_, shown) = second.get("/v1/queries/ssh_fanout");
    assert_eq!(shown["sql"], SSH_FANOUT);
    let (_, after) = second.get("/v1/queries/ssh_fanout/results");
    let (_, after_port) = second.get("/v1/queries/by_port/results");
    assert_eq!(after["rows"], before["rows"]);
    assert_eq!(after_port["rows"], before_port["rows"]);
}

#[test]
fn the_query_command_line_client() {
    let (fs, dir) = serve(&capture(), &[]);
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowsight"))
            .arg("query")
            .args(args)
            .args(["--url", &fs.base])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (code, out, err) = cli(&["register", "fanout", "--sql", SSH_FANOUT]);
    assert_eq!(code, Some(0), "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["name"], "fanout");

    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, by_port_plan().to_string()).unwrap();
    let (code, _, err) = cli(&["register", "ports", "--plan", plan.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");

    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["rows"].as_array().unwrap().len(), 2);

    let (code, out, _) = cli(&["show", "fanout"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["sql"],
        SSH_FANOUT
    );

    let (code, out, _) = cli(&["results", "fanout", "--limit", "5"]);
    assert_eq!(code, Some(0));
    let results: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(results["rows"][0]["targets"], 2);

    let (code, _, err) = cli(&["register", "fanout", "--sql", SSH_FANOUT]);
    assert_eq!(code, Some(1));
    assert!(err.contains("duplicate_query"), "{err}");

    let (code, _, _) = cli(&["drop", "fanout"]);
    assert_eq!(code, Some(0));
    let (code, _, err) = cli(&["results", "fanout"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown_query"), "{err}");
}

// -------------------------------------------------------------------------------------
// While records flow
// -------------------------------------------------------------------------------------

const FLOW_COUNT: u64 = 60_000;
const FLOW_RATE: u64 = 5_000;

/// Per destination port: records and distinct sources over the 30 s window.
fn ports_query() -> Value {
    json!({
        "from": "flows_30s",
        "select": [{"column": "dst_port"}, {"aggregate": "count_star", "as": "n"},
                   {"aggregate": {"count_distinct": "src_ip"}, "as": "sources"}],
        "group_by": ["dst_port"],
        "order_by": [{"term": {"aggregate": "count_star"}, "descending": true}],
        "limit": 5
    })
}

/// Everything in the 2 minute window.
fn totals_query() -> Value {
    json!({
        "from": "flows_2m",
        "select": [{"aggregate": "count_star", "as": "n"},
                   {"aggregate": {"sum": "bytes_out"}, "as": "bytes"},
                   {"aggregate": {"max": "ts"}, "as": "last"}]
    })
}

/// Whether a record, on time, was placed at or after `since`: at the end of its 1-s tick.
fn placed_since(e: &Event, since: u64) -> bool {
    e.ts / 1_000 * 1_000 + 1_000 >= since
}

fn oracle_ports(events: &[Event], as_of: u64, since: u64) -> Value {
    let mut groups: BTreeMap<u16, (u64, BTreeSet<IpAddr>)> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.ts >= as_of.saturating_sub(30_000) && e.ts < as_of && placed_since(e, since))
    {
        let group = groups.entry(e.dst_port).or_default();
        group.0 += 1;
        group.1.insert(e.src_ip);
    }
    let mut rows: Vec<(u16, u64, u64)> = groups
        .into_iter()
        .map(|(port, (n, sources))| (port, n, sources.len() as u64))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.cmp(b)));
    rows.truncate(5);
    Value::Array(
        rows.into_iter()
            .map(|(port, n, sources)| json!({"dst_port": port, "n": n, "sources": sources}))
            .collect(),
    )
}

fn oracle_totals(events: &[Event], as_of: u64, since: u64) -> Value {
    let inside: Vec<&Event> = events
        .iter()
        .filter(|e| e.ts >= as_of.saturating_sub(120_000) && e.ts < as_of && placed_since(e, since))
        .collect();
    let bytes: u64 = inside.iter().map(|e| e.bytes_out).sum();
    json!([{
        "n": inside.len(),
        "bytes": if inside.is_empty() { Value::Null } else { json!(bytes) },
        "last": inside.iter().map(|e| e.ts).max(),
    }])
}

/// The generator's records lag their schedule by at most 2 s and the lateness is 5 s (and
/// a partition counts as idle only after 5 s), so no record is late: at every as_of every
/// record before it has arrived and each was placed at the end of its tick, and each
/// answer must equal the oracle's at its as_of over the records placed since the query
/// was registered (its `window.since`).
#[test]
fn registering_and_dropping_while_records_flow_never_shows_a_partial_result() {
    let start = 1_750_000_000_000u64;
    let events = common::generated(5, 2, FLOW_RATE, start, FLOW_COUNT, 200);
    let args: Vec<String> = [
        "--pace",
        "realtime",
        "--seed",
        "5",
        "--rate",
        "5000",
        "--partitions",
        "2",
        "--hosts",
        "200",
        "--idle-timeout",
        "5s",
        "--windows",
        "30s,2m",
        "--lateness",
        "5s",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--count".to_string(),
        FLOW_COUNT.to_string(),
        "--start-ms".to_string(),
        start.to_string(),
    ])
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut fs = Flowsight::run(
        &[&args[..], &["--state-dir", state.to_str().unwrap()]].concat(),
        free_port(),
    );
    // Zero until the server answers.
    let records_now = |fs: &Flowsight| {
        common::try_get(&format!("{}/v1/status", fs.base))
            .and_then(|(_, status)| status["records"].as_u64())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while records_now(&fs) < FLOW_RATE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    let check = |fs: &Flowsight, name: &str| -> u64 {
        let (code, answer) = fs.get(&format!("/v1/queries/{name}/results"));
        assert_eq!(code, 200, "{name}: {answer}");
        let as_of = answer["as_of"].as_u64().unwrap();
        let since = answer["window"]["since"].as_u64().unwrap();
        let expected = if name.starts_with("ports") {
            oracle_ports(&events, as_of, since)
        } else {
            oracle_totals(&events, as_of, since)
        };
        assert_eq!(answer["rows"], expected, "{name} as of {as_of}");
        as_of
    };

    let mut reads_while_flowing = 0;
    let mut generation = 0;
    assert_eq!(
        fs.post(
            "/v1/queries",
            &json!({"name": "totals", "plan": totals_query()})
        )
        .0,
        201
    );
    while records_now(&fs) < FLOW_COUNT - FLOW_RATE {
        // A query registered now counts the records placed from now on, exactly.
        let name = format!("ports-{generation}");
        let (code, created) = fs.post("/v1/queries", &json!({"name": name, "plan": ports_query()}));
        assert_eq!(code, 201, "{created}");
        check(&fs, &name);
        check(&fs, "totals");
        reads_while_flowing += 1;
        if generation > 0 {
            let old = format!("ports-{}", generation - 1);
            assert_eq!(fs.delete(&format!("/v1/queries/{old}")).0, 200);
        }
        generation += 1;
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(
        reads_while_flowing >= 3,
        "only {reads_while_flowing} reads while records flowed"
    );
    fs.wait_until_complete(FLOW_COUNT, Duration::from_secs(60));
    check(&fs, "totals");
    check(&fs, &format!("ports-{}", generation - 1));
}
