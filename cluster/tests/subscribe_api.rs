//! `GET /v1/subscribe/{view}` against the real binary: a snapshot and then the changes
//! equal the batch oracles' differences between consecutive as_of times (edges, risks,
//! segments and hubs, policy, a registered query, hosts by severity over time; 2 workers; and edges and risks on either
//! process of a two-process cluster); a client reconnecting with `Last-Event-ID` resumes
//! without a gap; a client that stops reading is overflowed and
//! re-sent a snapshot while the engine goes on; SIGTERM ends open streams.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::sse::{SseEvent, SseStream};
use common::{
    free_port, generated, oracle_edges, oracle_risks, oracle_segments, try_get,
    two_process_hostfile, Flowsight,
};
use flowsight_events::Event;
use serde_json::Value;

const START: u64 = 1_760_000_000_000;
const COUNT: u64 = 9_000;
const RATE: u64 = 500;
const SEED: u64 = 5;
const PARTITIONS: u32 = 3;
const HOSTS: u32 = 40;
/// Short enough that records leave it while the stream runs.
const WINDOW: u64 = 5_000;
/// The longest window, over which segments and the policy are computed.
const LONGEST: u64 = 60_000;

/// Rows counted by their JSON text.
type Rows = BTreeMap<String, i64>;

fn add(rows: &mut Rows, row: String, diff: i64) {
    let count = rows.entry(row.clone()).or_insert(0);
    *count += diff;
    if *count == 0 {
        rows.remove(&row);
    }
}

fn snapshot_rows(event: &SseEvent) -> Rows {
    assert_eq!(event.kind, "snapshot", "expected a snapshot, got {event:?}");
    let mut rows = Rows::new();
    for row in event.data["rows"].as_array().expect("a snapshot has rows") {
        add(&mut rows, row.to_string(), 1);
    }
    rows
}

/// The changes of a `changes` event, counted.
fn change_rows(event: &SseEvent) -> Rows {
    let mut rows = Rows::new();
    for change in event.data["changes"].as_array().expect("changes") {
        let diff = change["diff"].as_i64().expect("a diff");
        assert_ne!(diff, 0, "a change of nothing: {change}");
        add(&mut rows, change["row"].to_string(), diff);
    }
    rows
}

fn difference(before: &Rows, after: &Rows) -> Rows {
    let mut diff = after.clone();
    for (row, count) in before {
        add(&mut diff, row.clone(), -count);
    }
    diff
}

fn as_of(event: &SseEvent) -> u64 {
    let as_of = event.data["as_of"]
        .as_u64()
        .expect("every event has an as_of");
    let id = event.id.as_deref().expect("every event has an id");
    match event.data["subscription"].as_str() {
        // On a stream of several subscriptions the id has every one's last as_of.
        Some(name) => assert!(
            id.split(',').any(|pair| pair == format!("{name}={as_of}")),
            "the id {id} lacks {name}={as_of}"
        ),
        None => assert_eq!(id, as_of.to_string(), "an event's id is its as_of"),
    }
    as_of
}

/// Rows keyed by what the oracle knows of them.
fn project_by(rows: &Rows, key: impl Fn(&Value) -> String) -> Rows {
    let mut projected = Rows::new();
    for (row, count) in rows {
        let row: Value = serde_json::from_str(row).unwrap();
        add(&mut projected, key(&row), *count);
    }
    projected
}

/// What one subscription is checked against: the view's rows at an as_of, by the oracle.
trait Oracle: Sync {
    fn rows(&self, as_of: u64) -> Rows;
    /// How the subscription's rows are compared with the oracle's.
    fn project(&self, rows: &Rows) -> Rows;
}

struct EdgeOracle<'a>(&'a [Event]);

impl Oracle for EdgeOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        oracle_edges(self.0, as_of, WINDOW)
            .into_values()
            .map(|row| (serde_json::to_value(row).unwrap().to_string(), 1))
            .collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        rows.clone()
    }
}

/// The busiest hosts, compared by their connections and bytes each way.
struct HostsOracle<'a>(&'a [Event]);

impl Oracle for HostsOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        // (connections out, connections in, bytes sent, bytes received) per host.
        let mut hosts: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for e in oracle_edges(self.0, as_of, WINDOW).values() {
            let src = hosts.entry(e.src_ip.to_string()).or_default();
            src[0] += e.count;
            src[2] += e.bytes_out;
            src[3] += e.bytes_in;
            let dst = hosts.entry(e.dst_ip.to_string()).or_default();
            dst[1] += e.count;
            dst[2] += e.bytes_in;
            dst[3] += e.bytes_out;
        }
        hosts
            .into_iter()
            .map(|(ip, [out, inn, sent, received])| {
                (format!("{ip} {out} {inn} {sent} {received}"), 1)
            })
            .collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            format!(
                "{} {} {} {} {}",
                row["ip"].as_str().unwrap(),
                row["connections_out"],
                row["connections_in"],
                row["bytes_sent"],
                row["bytes_received"]
            )
        })
    }
}

struct RiskOracle<'a>(&'a [Event]);

impl Oracle for RiskOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        oracle_risks(self.0, as_of, WINDOW)
            .into_iter()
            .map(|(ip, score, severity)| (format!("{ip} {score} {severity}"), 1))
            .collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            format!(
                "{} {} {}",
                row["ip"].as_str().unwrap(),
                row["score"],
                row["severity"].as_str().unwrap()
            )
        })
    }
}

/// The step the severity counts are subscribed with, and the engine's (default) tick.
const SEVERITY_STEP: u64 = 5_000;
const TICK: u64 = 1_000;

/// Hosts by severity in the 5 s window over the longest: from the first tick with a
/// scored host, every `SEVERITY_STEP`, and at the as_of.
struct SeverityOracle<'a>(&'a [Event]);

impl Oracle for SeverityOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        let counts = |t: u64| -> [u64; 3] {
            let mut counts = [0; 3];
            for (_, _, severity) in oracle_risks(self.0, t, WINDOW) {
                let index = ["low", "medium", "critical"]
                    .iter()
                    .position(|s| *s == severity)
                    .unwrap();
                counts[index] += 1;
            }
            counts
        };
        let start = as_of.saturating_sub(LONGEST);
        let mut at = (start..as_of)
            .step_by(TICK as usize)
            .find(|&t| counts(t) != [0; 3])
            .unwrap_or(as_of);
        let mut rows = Rows::new();
        loop {
            let [low, medium, critical] = counts(at);
            add(&mut rows, format!("{at} {low} {medium} {critical}"), 1);
            if at >= as_of {
                return rows;
            }
            at = ((at / SEVERITY_STEP + 1) * SEVERITY_STEP).min(as_of);
        }
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            format!(
                "{} {} {} {}",
                row["as_of"], row["low"], row["medium"], row["critical"]
            )
        })
    }
}

/// Segments and hubs of the longest window (1m here) with the default thresholds.
struct SegmentsOracle<'a>(&'a [Event]);

impl Oracle for SegmentsOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        let oracle = oracle_segments(self.0, as_of, LONGEST, 50, 3);
        let segments = oracle
            .sizes
            .iter()
            .map(|(id, size)| format!("segment {id} {size}"));
        let hubs = oracle
            .hubs
            .iter()
            .map(|(ip, peers)| format!("hub {ip} {peers}"));
        segments.chain(hubs).map(|row| (row, 1)).collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            if row["hub"] == true {
                format!("hub {} {}", row["ip"].as_str().unwrap(), row["peers"])
            } else {
                format!("segment {} {}", row["id"].as_str().unwrap(), row["size"])
            }
        })
    }
}

/// The proposed policy of the longest window.
struct PolicyOracle<'a>(&'a [Event]);

impl Oracle for PolicyOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        oracle_segments(self.0, as_of, LONGEST, 50, 3)
            .policy
            .into_iter()
            .map(|((from, to, port, proto), count)| {
                let proto = serde_json::to_value(proto).unwrap();
                let row = format!("{from} {to} {port} {} {count}", proto.as_str().unwrap());
                (row, 1)
            })
            .collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            format!(
                "{} {} {} {} {}",
                row["from"].as_str().unwrap(),
                row["to"].as_str().unwrap(),
                row["dst_port"],
                row["proto"].as_str().unwrap(),
                row["count"]
            )
        })
    }
}

/// The registered query `SELECT src_ip, COUNT(*) AS n FROM flows_5s GROUP BY src_ip`.
struct QueryOracle<'a>(&'a [Event]);

impl Oracle for QueryOracle<'_> {
    fn rows(&self, as_of: u64) -> Rows {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.0 {
            if e.ts < as_of && e.ts >= as_of.saturating_sub(WINDOW) {
                *counts.entry(e.src_ip.to_string()).or_insert(0) += 1;
            }
        }
        counts
            .into_iter()
            .map(|(ip, n)| (format!("{ip} {n}"), 1))
            .collect()
    }
    fn project(&self, rows: &Rows) -> Rows {
        project_by(rows, |row| {
            format!("{} {}", row["src_ip"].as_str().unwrap(), row["n"])
        })
    }
}

/// What a checked subscription saw.
#[derive(Debug, Default)]
struct Seen {
    checked: usize,
    retractions: usize,
    progress: usize,
    resumed: bool,
}

/// Each followed subscription checked enough events, saw rows leave the window, and
/// resumed after its reconnection.
fn assert_followed(seen: &[(&str, Seen)]) {
    for (view, seen) in seen {
        assert!(seen.checked >= 10, "{view}: only {seen:?}");
        assert!(
            seen.retractions > 0,
            "{view}: the window never let go: {seen:?}"
        );
        assert!(seen.resumed, "{view}: {seen:?}");
    }
}

/// The next event of subscription `name` (every event when `None`), remembering the last
/// id seen as a browser does.
fn next_of(stream: &mut SseStream, name: Option<&str>, last_id: &mut Option<String>) -> SseEvent {
    loop {
        let event = stream.next_event().expect("the stream goes on");
        last_id.clone_from(&event.id);
        match name {
            Some(name) if event.data["subscription"] != name => {
                as_of(&event);
            }
            _ => return event,
        }
    }
}

/// Follows a subscription until its as_of passes `last_ts`, checking every event against
/// the oracle; after `reconnect_after` events it disconnects, waits a few ticks and
/// resumes with `Last-Event-ID`. With `name`, the url is a stream of several
/// subscriptions and the one of that name is followed.
fn follow(
    url: &str,
    name: Option<&str>,
    oracle: &dyn Oracle,
    last_ts: u64,
    reconnect_after: usize,
) -> Seen {
    let mut seen = Seen::default();
    let mut last_id = None;
    let mut stream = SseStream::open(url, None);
    let first = next_of(&mut stream, name, &mut last_id);
    let mut state = snapshot_rows(&first);
    let mut at = as_of(&first);
    assert_eq!(
        oracle.project(&state),
        oracle.rows(at),
        "{url}: the snapshot at {at} differs from the oracle"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events = 0;
    while at <= last_ts {
        assert!(Instant::now() < deadline, "{url}: stuck at as_of {at}");
        if events == reconnect_after && !seen.resumed {
            drop(stream);
            thread::sleep(Duration::from_millis(2_500));
            stream = SseStream::open(url, last_id.as_deref());
            seen.resumed = true;
        }
        let event = next_of(&mut stream, name, &mut last_id);
        events += 1;
        let now = as_of(&event);
        assert!(now > at, "{url}: as_of went from {at} to {now}: {event:?}");
        let want = oracle.rows(now);
        match event.kind.as_str() {
            "changes" => {
                let changes = change_rows(&event);
                for (row, diff) in &changes {
                    if *diff < 0 {
                        seen.retractions += 1;
                        assert!(
                            state.get(row).copied().unwrap_or(0) >= -diff,
                            "{url}: at {now} retracts a row it does not have: {row}"
                        );
                    }
                    add(&mut state, row.clone(), *diff);
                }
                assert_eq!(
                    oracle.project(&changes),
                    difference(&oracle.rows(at), &want),
                    "{url}: the changes from {at} to {now} are not the oracle's difference"
                );
            }
            "progress" => {
                seen.progress += 1;
                assert_eq!(
                    oracle.rows(at),
                    want,
                    "{url}: progress from {at} to {now}, but the oracle changed"
                );
            }
            other => panic!("{url}: unexpected {other} event at {now}: {event:?}"),
        }
        assert!(
            state.values().all(|c| *c == 1),
            "{url}: a row is there twice"
        );
        assert_eq!(
            oracle.project(&state),
            want,
            "{url}: the rows at {now} differ from the oracle"
        );
        at = now;
        seen.checked += 1;
    }
    seen
}

/// The embedded generator's stream of `events()`, paced in real time, with short windows
/// and the given state directory.
fn engine_args(state_dir: &std::path::Path) -> Vec<String> {
    [
        "--pace",
        "realtime",
        "--idle-timeout",
        "200ms",
        "--windows",
        "5s,1m",
        "--state-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([state_dir.display().to_string()])
    .chain(
        [
            ("--seed", SEED),
            ("--rate", RATE),
            ("--partitions", u64::from(PARTITIONS)),
            ("--hosts", u64::from(HOSTS)),
            ("--count", COUNT),
            ("--start-ms", START),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()]),
    )
    .collect()
}

fn events() -> Vec<Event> {
    generated(SEED, PARTITIONS, RATE, START, COUNT, HOSTS)
}

#[test]
fn snapshot_then_changes_equal_the_oracles_differences_and_resume_has_no_gap() {
    let events = events();
    let last_ts = events.iter().map(|e| e.ts).max().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        engine_args(dir.path()),
        vec!["--workers".into(), "2".into()],
    ]
    .concat();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fs = Flowsight::run(&args, free_port());
    wait_listening(&fs);
    let edges_url = format!("{}/v1/subscribe/edges?window=5s&limit=10000", fs.base);
    // Risks on a stream shared with the status, as the dashboard subscribes.
    let risks_url = format!(
        "{}/v1/subscribe?status=status&risks=risks%3Fwindow%3D5s%26limit%3D10000",
        fs.base
    );

    let (code, body) = fs.post(
        "/v1/queries",
        &serde_json::json!({
            "name": "by_src",
            "sql": "SELECT src_ip, COUNT(*) AS n FROM flows_5s GROUP BY src_ip",
        }),
    );
    assert!((200..300).contains(&code), "registering: {code} {body}");
    let base = &fs.base;
    let segments_url = format!("{base}/v1/subscribe/segments?limit=10000&members=1");
    let policy_url = format!("{base}/v1/subscribe/policy?limit=1000000");
    let query_url = format!("{base}/v1/subscribe/queries/by_src?limit=10000");
    let severity_url = format!("{base}/v1/subscribe/severity?window=5s&step=5s");
    let hosts_url = format!("{base}/v1/subscribe/hosts?window=5s&limit=10000");

    let seen = thread::scope(|scope| {
        let edges = scope.spawn(|| follow(&edges_url, None, &EdgeOracle(&events), last_ts, 6));
        let risks =
            scope.spawn(|| follow(&risks_url, Some("risks"), &RiskOracle(&events), last_ts, 9));
        let segments =
            scope.spawn(|| follow(&segments_url, None, &SegmentsOracle(&events), last_ts, 4));
        let policy = scope.spawn(|| follow(&policy_url, None, &PolicyOracle(&events), last_ts, 7));
        let query = scope.spawn(|| follow(&query_url, None, &QueryOracle(&events), last_ts, 5));
        let severity =
            scope.spawn(|| follow(&severity_url, None, &SeverityOracle(&events), last_ts, 8));
        let hosts = scope.spawn(|| follow(&hosts_url, None, &HostsOracle(&events), last_ts, 3));
        [
            ("edges", edges.join().unwrap()),
            ("risks", risks.join().unwrap()),
            ("segments", segments.join().unwrap()),
            ("policy", policy.join().unwrap()),
            ("query", query.join().unwrap()),
            ("severity", severity.join().unwrap()),
            ("hosts", hosts.join().unwrap()),
        ]
    });
    assert_followed(&seen);

    // An id that is not one of the feed's events gets a snapshot.
    let mut stale = SseStream::open(&edges_url, Some("42"));
    let first = stale.next_event().unwrap();
    assert_eq!(first.kind, "snapshot", "{first:?}");
    assert_eq!(
        snapshot_rows(&first),
        EdgeOracle(&events).rows(as_of(&first))
    );

    // Subscriptions refuse what the views' GET routes refuse.
    for (path, status, code) in [
        ("/v1/subscribe/risks?window=5m", 400, "unknown_window"),
        ("/v1/subscribe/risks?windw=5s", 400, "unknown_parameter"),
        ("/v1/subscribe/flows", 404, "unknown_view"),
        ("/v1/subscribe/queries/nothing", 404, "unknown_query"),
        ("/v1/subscribe", 400, "no_subscription"),
        (
            "/v1/subscribe?a=status&b=risks%3Fwindow%3D5m",
            400,
            "unknown_window",
        ),
        ("/v1/subscribe?a%20b=status", 400, "bad_subscription_name"),
    ] {
        let (got, body) = fs.get(path);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let metrics = reqwest::blocking::get(format!("{}/metrics", fs.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("flowsight_subscription_resumes_total") && !l.ends_with(" 0")),
        "no resume counted:\n{metrics}"
    );
}

/// In a cluster of two processes started from a host file, each process streams every
/// worker's changes: a subscription on either equals the oracle, as on one process. And
/// the busiest policy entries are gathered from every worker of both.
#[test]
fn either_process_of_a_two_process_cluster_streams_the_whole_view() {
    let events = events();
    let last_ts = events.iter().map(|e| e.ts).max().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hostfile = two_process_hostfile(dir.path());
    let processes: Vec<Flowsight> = (0..2)
        .map(|process| {
            let state_dir = dir.path().join(format!("process-{process}"));
            let args = [
                engine_args(&state_dir),
                [
                    "--workers",
                    "1",
                    "--process",
                    &process.to_string(),
                    "--hostfile",
                ]
                .map(String::from)
                .to_vec(),
                vec![hostfile.display().to_string()],
            ]
            .concat();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Flowsight::run(&args, free_port())
        })
        .collect();
    for fs in &processes {
        wait_listening(fs);
    }
    let edges_url = format!(
        "{}/v1/subscribe/edges?window=5s&limit=10000",
        processes[0].base
    );
    let risks_url = format!(
        "{}/v1/subscribe?risks=risks%3Fwindow%3D5s%26limit%3D10000",
        processes[1].base
    );
    let seen = thread::scope(|scope| {
        let edges = scope.spawn(|| follow(&edges_url, None, &EdgeOracle(&events), last_ts, 5));
        let risks =
            scope.spawn(|| follow(&risks_url, Some("risks"), &RiskOracle(&events), last_ts, 8));
        [
            ("edges on process 0", edges.join().unwrap()),
            ("risks on process 1", risks.join().unwrap()),
        ]
    });
    assert_followed(&seen);

    // The busiest policy entries, gathered from the workers of both processes.
    let (code, busiest) = processes[0].get("/v1/policy?order=count&limit=5");
    assert_eq!(code, 200, "{busiest}");
    let oracle = PolicyOracle(&events);
    let every = oracle.rows(busiest["as_of"].as_u64().unwrap());
    let count_of = |row: &String| -> u64 { row.rsplit(' ').next().unwrap().parse().unwrap() };
    let mut counts: Vec<u64> = every.keys().map(count_of).collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    assert!(
        counts.len() > 5 && counts[0] > counts[counts.len() - 1],
        "the policy is too even to tell an order: {counts:?}"
    );
    let answered: Vec<String> = busiest["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let one = Rows::from([(row.to_string(), 1)]);
            oracle.project(&one).into_keys().next().unwrap()
        })
        .collect();
    for row in &answered {
        assert!(
            every.contains_key(row),
            "{row} is not in the oracle's policy"
        );
    }
    assert_eq!(
        answered.iter().map(count_of).collect::<Vec<_>>(),
        counts[..5],
        "order=count is not the busiest first: {busiest}"
    );

    for fs in processes {
        assert!(fs.terminate().success());
    }
}

/// Waits until the process answers HTTP at all (ready or not).
fn wait_listening(fs: &Flowsight) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while try_get(&format!("{}/health", fs.base)).is_none() {
        assert!(Instant::now() < deadline, "flowsight never listened");
        thread::sleep(Duration::from_millis(100));
    }
}

fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_client_that_stops_reading_is_told_and_sent_a_new_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().display().to_string();
    let fs = Flowsight::run(
        &[
            "--rate",
            "3000",
            "--no-risk-views",
            "--no-segment-views",
            "--no-queries",
            "--windows",
            "30m",
            "--subscription-queue",
            "2",
            "--subscription-history",
            "4",
            "--state-dir",
            &state_dir,
        ],
        free_port(),
    );
    wait_listening(&fs);
    let url = format!("{}/v1/subscribe/edges?limit=10000", fs.base);
    let mut stream = SseStream::open(&url, None);
    let first = stream.next_event().expect("a snapshot");
    assert_eq!(first.kind, "snapshot");

    // Stop reading: once the socket's buffers are full the client falls behind, and the
    // engine drops it rather than wait.
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(&fs.base, "flowsight_subscription_overflows_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "the client never overflowed while not reading"
        );
        thread::sleep(Duration::from_millis(500));
    }
    // Meanwhile another client is served on time.
    let mut other = SseStream::open(&url, None);
    assert_eq!(other.next_event().unwrap().kind, "snapshot");
    assert!(matches!(
        other.next_event().unwrap().kind.as_str(),
        "changes" | "progress"
    ));

    // Reading again: what was buffered, then the notice and a new snapshot, then changes
    // that apply to that snapshot.
    let mut last = as_of(&first);
    let mut overflow = None;
    for _ in 0..200 {
        let event = stream.next_event().expect("the stream goes on");
        if event.kind == "overflow" {
            overflow = Some(event);
            break;
        }
        let now = as_of(&event);
        assert!(now > last, "{event:?}");
        last = now;
        assert!(
            matches!(event.kind.as_str(), "changes" | "progress"),
            "{event:?}"
        );
    }
    let overflow = overflow.expect("an overflow notice after the buffered events");
    assert_eq!(
        overflow.data["as_of"].as_u64(),
        Some(last),
        "the notice says after which event the gap starts"
    );
    assert!(overflow.data["message"]
        .as_str()
        .unwrap()
        .contains("behind"));
    let snapshot = stream.next_event().unwrap();
    let mut state = snapshot_rows(&snapshot);
    let mut at = as_of(&snapshot);
    assert!(at > last);
    for _ in 0..3 {
        let event = stream.next_event().unwrap();
        let now = as_of(&event);
        assert!(now > at);
        if event.kind == "changes" {
            for (row, diff) in change_rows(&event) {
                if diff < 0 {
                    assert!(
                        state.contains_key(&row),
                        "retracts a row the snapshot lacks"
                    );
                }
                add(&mut state, row, diff);
            }
        } else {
            assert_eq!(event.kind, "progress");
        }
        at = now;
    }
    let distinct: BTreeSet<&String> = state.keys().collect();
    assert_eq!(distinct.len(), state.len());

    // SIGTERM with clients connected: their streams end with the reason, and the process
    // stops (open streams must not hold the server's graceful shutdown).
    let status = fs.terminate();
    assert!(status.success(), "flowsight exited with {status}");
    let mut last = None;
    while let Some(event) = other.next_event() {
        last = Some(event);
    }
    let last = last.expect("events before the end");
    assert_eq!(last.kind, "error", "{last:?}");
    assert_eq!(last.data["error"]["code"], "shutting_down");
}
