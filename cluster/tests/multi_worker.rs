//! One worker, two workers, and two processes started from a host file on localhost give
//! the same answers — edges, hosts, risk scores, score histories' final values,
//! anomalies, segments, hubs, the policy and registered queries — equal to the oracles',
//! with windows kept in panes (the edges' oracle knows where each record's group is kept).

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    free_port, oracle_risks, oracle_segments, oracle_top_paned, rows, two_process_hostfile,
    Flowsight,
};
use flowsight_events::Event;
use flowsight_operators::{PaneSchedule, Stage, TimeModel};
use serde_json::Value;

const START: u64 = 1_750_000_000_000;
const COUNT: u64 = 40_000;

fn generator_args() -> Vec<String> {
    [
        "--pace",
        "fast",
        "--seed",
        "11",
        "--rate",
        "4000",
        "--partitions",
        "4",
        "--hosts",
        "300",
        "--idle-timeout",
        "200ms",
        "--windows",
        "3s,30m:1m,2h:5m",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--count".to_string(),
        COUNT.to_string(),
        "--start-ms".to_string(),
        START.to_string(),
    ])
    .collect()
}

fn generated() -> Vec<Event> {
    common::generated(11, 4, 4_000, START, COUNT, 300)
}

/// The answers compared across layouts, once everything is visible.
fn answers(fs: &Flowsight) -> Vec<Value> {
    let mut out = Vec::new();
    for window in ["3s", "30m", "2h"] {
        let (code, edges) = fs.get(&format!("/v1/graph/edges?window={window}&limit=50"));
        assert_eq!(code, 200, "{edges}");
        out.push(edges);
        let (code, host) = fs.get(&format!("/v1/graph/hosts/10.0.0.53?window={window}"));
        assert_eq!(code, 200, "{host}");
        out.push(host);
        let (code, risks) = fs.get(&format!("/v1/risks?window={window}&limit=10000"));
        assert_eq!(code, 200, "{risks}");
        out.push(risks);
        let (code, mut anomalies) = fs.get(&format!("/v1/anomalies?window={window}&limit=10000"));
        assert_eq!(code, 200, "{anomalies}");
        // When a rule started to hold depends on when records arrived, which differs
        // between layouts; what is detected, and first contacts' times, do not.
        for row in anomalies["rows"].as_array_mut().unwrap() {
            if row["kind"] != "new_external_destination" {
                row["first_detected"] = Value::Null;
            }
        }
        let mut rows = anomalies["rows"].as_array().unwrap().clone();
        rows.sort_by_key(|r| r.to_string());
        anomalies["rows"] = Value::Array(rows);
        out.push(anomalies);
    }
    // The riskiest host: every window side by side, and where its history ends.
    let (_, top) = fs.get("/v1/risks?window=3s&limit=1");
    let ip = top["rows"][0]["ip"]
        .as_str()
        .expect("a risky host")
        .to_string();
    let (code, mut host) = fs.get(&format!("/v1/risks/{ip}?history=1"));
    assert_eq!(code, 200, "{host}");
    let finals: Vec<Value> = host["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["changes"].as_array().unwrap().last().unwrap()["score"].clone())
        .collect();
    host["history"] = Value::Array(finals);
    out.push(host);
    // The segmentation, over the longest window (2h).
    for path in [
        "/v1/segments?limit=10000&members=3",
        "/v1/policy?limit=1000000",
        "/v1/hosts/10.0.0.53/segment",
    ] {
        let (code, answer) = fs.get(path);
        assert_eq!(code, 200, "{path}: {answer}");
        out.push(answer);
    }
    out
}

/// Registered queries, registered once every record is in (so they must read the whole
/// window from the shared arrangement's history): a grouped top-k with a filter, aggregates
/// without GROUP BY over the short window, and a full grouping without LIMIT.
fn queries() -> Vec<(&'static str, Value)> {
    vec![
        (
            "top_sources",
            serde_json::json!({
                "from": "flows_30m",
                "select": [{"column": "src_ip"}, {"aggregate": "count_star", "as": "conns"},
                           {"aggregate": {"count_distinct": "dst_ip"}, "as": "targets"},
                           {"aggregate": {"sum": "bytes_out"}, "as": "bytes"}],
                "where": {"in": {"operand": {"ref": "dst_port"}, "values": [22, 53, 443]}},
                "group_by": ["src_ip"],
                "order_by": [{"term": {"aggregate": "count_star"}, "descending": true}],
                "limit": 10
            }),
        ),
        (
            "recent",
            serde_json::json!({
                "from": "flows_3s",
                "select": [{"aggregate": "count_star", "as": "n"},
                           {"aggregate": {"min": "ts"}, "as": "first"},
                           {"aggregate": {"max": "bytes_in"}, "as": "most_in"}]
            }),
        ),
        (
            "outside",
            serde_json::json!({
                "from": "flows_2h",
                "select": [{"column": "proto"}, {"column": "status"}, {"aggregate": "count_star", "as": "n"}],
                "where": {"not": {"cidr_match": {"operand": {"ref": "dst_ip"}, "network": "10.0.0.0/8"}}},
                "group_by": ["proto", "status"]
            }),
        ),
    ]
}

/// Registers the queries through `via` and reads them through `read`.
/// Registers the queries before the engine starts, as a previous run would have left them
/// in the state directory: a query counts the records placed from its registration on, so
/// only queries there from the start cover every record (and compare across layouts).
fn preregister_queries(state_dir: &str) {
    let queries: Vec<Value> = queries()
        .into_iter()
        .map(|(name, plan)| {
            serde_json::json!({
                "definition": {"name": name, "plan": plan},
                "state": {"state": "running"},
                "registered_at": 0,
            })
        })
        .collect();
    std::fs::create_dir_all(state_dir).unwrap();
    std::fs::write(
        std::path::Path::new(state_dir).join("queries.json"),
        serde_json::json!({"version": 1, "queries": queries}).to_string(),
    )
    .unwrap();
}

fn query_answers(fs: &Flowsight) -> Vec<Value> {
    queries()
        .into_iter()
        .map(|(name, _)| query_result(fs, name))
        .collect()
}

/// A registered query's results through `fs`. Another process of the cluster learns of a
/// query when its own workers apply the registration, a moment after the process that
/// took it: until then it answers 404.
fn query_result(fs: &Flowsight, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, answer) = fs.get(&format!("/v1/queries/{name}/results"));
        if code == 404 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(code, 200, "{name}: {answer}");
        return answer;
    }
}

/// The registered queries' results against plain iteration over the records.
fn check_queries_against_oracle(answers: &[Value], events: &[Event]) {
    let in_window = |as_of: u64, window: u64| {
        let from = as_of.saturating_sub(window);
        events.iter().filter(move |e| e.ts >= from && e.ts < as_of)
    };
    // top_sources
    let as_of = answers[0]["as_of"].as_u64().unwrap();
    let mut groups: std::collections::BTreeMap<
        std::net::IpAddr,
        (u64, std::collections::BTreeSet<std::net::IpAddr>, u64),
    > = Default::default();
    for e in in_window(as_of, 1_800_000).filter(|e| [22, 53, 443].contains(&e.dst_port)) {
        let group = groups.entry(e.src_ip).or_default();
        group.0 += 1;
        group.1.insert(e.dst_ip);
        group.2 += e.bytes_out;
    }
    let mut rows: Vec<(std::net::IpAddr, u64, u64, u64)> = groups
        .into_iter()
        .map(|(ip, (n, targets, bytes))| (ip, n, targets.len() as u64, bytes))
        .collect();
    // Most connections first; ties by the output columns ascending (address first).
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.cmp(b)));
    rows.truncate(10);
    let expected: Vec<Value> = rows
        .iter()
        .map(|(ip, n, targets, bytes)| {
            serde_json::json!({"src_ip": ip.to_string(), "conns": n, "targets": targets, "bytes": bytes})
        })
        .collect();
    assert!(expected.len() == 10, "the traffic has enough sources");
    assert_eq!(answers[0]["rows"], Value::Array(expected), "top_sources");

    // recent: one row, even if the window were empty.
    let as_of = answers[1]["as_of"].as_u64().unwrap();
    let recent: Vec<&Event> = in_window(as_of, 3_000).collect();
    assert!(!recent.is_empty());
    assert_eq!(
        answers[1]["rows"],
        serde_json::json!([{
            "n": recent.len(),
            "first": recent.iter().map(|e| e.ts).min(),
            "most_in": recent.iter().map(|e| e.bytes_in).max(),
        }]),
        "recent"
    );

    // outside: every (proto, status) group, by name.
    let as_of = answers[2]["as_of"].as_u64().unwrap();
    let inside: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
    let mut groups: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for e in in_window(as_of, 7_200_000).filter(|e| !inside.contains(&e.dst_ip)) {
        *groups
            .entry((e.proto.to_string(), e.status.to_string()))
            .or_default() += 1;
    }
    let expected: Vec<Value> = groups
        .into_iter()
        .map(|((proto, status), n)| serde_json::json!({"proto": proto, "status": status, "n": n}))
        .collect();
    assert!(expected.len() > 1);
    assert_eq!(answers[2]["rows"], Value::Array(expected), "outside");
}

/// The segments' ids and sizes, the hubs' peers and every policy entry, against the
/// union-find oracle with the default thresholds.
fn check_segments_against_oracle(answers: &[Value], events: &[Event]) {
    let (list, policy) = (&answers[13], &answers[14]);
    let as_of = list["as_of"].as_u64().unwrap();
    let oracle = oracle_segments(events, as_of, 7_200_000, 50, 3);
    let sizes: std::collections::BTreeMap<String, u64> = list["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        list["segments"].as_u64().unwrap(),
        oracle.sizes.len() as u64
    );
    assert_eq!(sizes, oracle.sizes, "segment sizes");
    assert!(
        oracle.sizes.values().any(|size| *size > 1) && !oracle.hubs.is_empty(),
        "the generated traffic makes segments and hubs"
    );
    let hubs: std::collections::BTreeMap<std::net::IpAddr, u64> = list["hub_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap().parse().unwrap(),
                r["peers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hubs, oracle.hubs, "hubs");
    assert_eq!(policy["as_of"].as_u64().unwrap(), as_of);
    let entries: std::collections::BTreeMap<(String, String, u16, flowsight_events::Proto), u64> =
        policy["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (
                        r["from"].as_str().unwrap().to_string(),
                        r["to"].as_str().unwrap().to_string(),
                        r["dst_port"].as_u64().unwrap() as u16,
                        serde_json::from_value(r["proto"].clone()).unwrap(),
                    ),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect();
    assert_eq!(entries, oracle.policy, "policy");
}

fn check_risks_against_oracle(answers: &[Value], events: &[Event]) {
    for (answer, length) in answers
        .iter()
        .skip(2)
        .step_by(4)
        .zip([3_000u64, 1_800_000, 7_200_000])
    {
        let as_of = answer["as_of"].as_u64().unwrap();
        let got: Vec<(std::net::IpAddr, u64, String)> = answer["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["ip"].as_str().unwrap().parse().unwrap(),
                    r["score"].as_u64().unwrap(),
                    r["severity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            oracle_risks(events, as_of, length),
            "risks, window of {length} ms"
        );
    }
}

/// The windows of [`generator_args`] and their panes: the 3 s window at the tick, the
/// others coarser, so that a record leaving 3 s moves to its minute's pane.
fn schedule() -> PaneSchedule {
    let stages = [(3_000, 1_000), (1_800_000, 60_000), (7_200_000, 300_000)]
        .map(|(window, pane)| Stage { window, pane });
    PaneSchedule::new(&TimeModel::new(1_000).unwrap(), stages.to_vec()).unwrap()
}

fn check_against_oracle(answers: &[Value], events: &[Event]) {
    let schedule = schedule();
    let mut moved = 0;
    for (stage, answer) in answers.iter().step_by(4).take(3).enumerate() {
        let as_of = answer["as_of"].as_u64().unwrap();
        let want = oracle_top_paned(events, as_of, &schedule, stage, 50);
        assert_eq!(rows(answer), want, "window {stage}");
        // Not vacuous: in the longer windows, edges show their records' minute panes.
        moved += want
            .iter()
            .filter(|row| row.first_seen % 60_000 == 0)
            .count();
    }
    assert!(moved > 0, "no edge of the longer windows showed its pane");
}

#[test]
fn one_worker_two_workers_and_two_processes_agree_with_the_oracle() {
    let events = generated();
    let args = generator_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Each run keeps its registered queries in a state directory of its own.
    let states = tempfile::tempdir().unwrap();
    let state = |name: &str| states.path().join(name).to_str().unwrap().to_string();
    let one_state = state("one");
    preregister_queries(&one_state);
    let mut one = Flowsight::run(
        &[&args[..], &["--workers", "1", "--state-dir", &one_state]].concat(),
        free_port(),
    );
    let status = one.wait_until_complete(COUNT, Duration::from_secs(120));
    assert_eq!(status["workers"], 1);
    let single = answers(&one);
    check_against_oracle(&single, &events);
    check_risks_against_oracle(&single, &events);
    check_segments_against_oracle(&single, &events);
    let single_queries = query_answers(&one);
    check_queries_against_oracle(&single_queries, &events);
    drop(one);

    for workers in ["2", "4"] {
        let many_state = state(workers);
        preregister_queries(&many_state);
        let mut many = Flowsight::run(
            &[
                &args[..],
                &["--workers", workers, "--state-dir", &many_state],
            ]
            .concat(),
            free_port(),
        );
        many.wait_until_complete(COUNT, Duration::from_secs(120));
        assert_eq!(answers(&many), single, "{workers} workers differ from one");
        assert_eq!(
            query_answers(&many),
            single_queries,
            "registered queries: {workers} workers differ from one"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let hostfile = dir.path().join("hosts.txt");
    std::fs::write(
        &hostfile,
        format!(
            "# two processes on localhost\n127.0.0.1:{}\n127.0.0.1:{}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let hostfile = hostfile.to_str().unwrap();
    let mut processes: Vec<Flowsight> = (0..2)
        .map(|i| {
            let index = i.to_string();
            let process_state = state(&format!("process-{i}"));
            preregister_queries(&process_state);
            Flowsight::run(
                &[
                    &args[..],
                    &[
                        "--workers",
                        "2",
                        "--hostfile",
                        hostfile,
                        "--process",
                        &index,
                        "--state-dir",
                        &process_state,
                        // Status from the counters every worker publishes, the other
                        // process's through the dataflow: never a peek.
                        "--status-patience",
                        "0ms",
                    ],
                ]
                .concat(),
                free_port(),
            )
        })
        .collect();
    for p in processes.iter_mut() {
        let status = p.wait_until_complete(COUNT, Duration::from_secs(120));
        assert_eq!(status["processes"], 2);
        assert_eq!(status["workers"], 4);
        assert!(status["age_ms"].as_u64().is_some(), "{status}");
        let by_process = status["by_process"].as_array().unwrap();
        assert_eq!(by_process.len(), 2, "{status}");
        assert!(
            by_process.iter().all(|p| p["records"].as_u64() > Some(0)),
            "{status}"
        );
    }
    // Either process answers, gathering every worker's part through the dataflow.
    for p in &processes {
        assert_eq!(
            answers(p),
            single,
            "a two-process cluster differs from one worker"
        );
    }
    // Every worker of both processes built the queries, and either process reads them.
    for p in &processes {
        assert_eq!(
            query_answers(p),
            single_queries,
            "registered queries: a two-process cluster differs from one worker"
        );
    }
    // A query registered through one process is built on every worker of both, and either
    // process reads the same result.
    let (name, plan) = queries().remove(0);
    let late = format!("{name}_late");
    let (code, answer) = processes[1].post(
        "/v1/queries",
        &serde_json::json!({"name": late, "plan": plan}),
    );
    assert_eq!(code, 201, "{answer}");
    let read = |p: &Flowsight| {
        let answer = query_result(p, &late);
        (answer["as_of"].clone(), answer["rows"].clone())
    };
    assert_eq!(read(&processes[0]), read(&processes[1]));
    // SIGTERM to one process stops the whole cluster cleanly.
    let mut processes = processes.into_iter();
    let first = processes.next().unwrap();
    assert!(first.terminate().success());
    let second = processes.next().unwrap();
    assert!(second.terminate().success());
}

#[test]
fn processes_with_different_options_refuse_to_run_together() {
    let dir = tempfile::tempdir().unwrap();
    let hostfile = two_process_hostfile(dir.path());
    let hostfile = hostfile.to_str().unwrap().to_string();
    let children: Vec<_> = [("0", "30m,2h"), ("1", "30m,24h")]
        .into_iter()
        .map(|(process, windows)| {
            std::process::Command::new(env!("CARGO_BIN_EXE_flowsight"))
                .args([
                    "run",
                    "--hostfile",
                    &hostfile,
                    "--process",
                    process,
                    "--windows",
                    windows,
                ])
                .args(["--http", &format!("127.0.0.1:{}", free_port())])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("different configuration"), "{stderr}");
    }
}
