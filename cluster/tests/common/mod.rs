//! Shared helpers of the integration tests: starting the real `flowsight` binary, talking to
//! it over HTTP, and an independent batch oracle of the graph view.

#![allow(dead_code)]

pub mod sse;
pub mod tansu;

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowsight_connectors::{GeneratorConfig, GeneratorPartition, Pace};
use flowsight_events::{Event, Proto};
use flowsight_queries::EdgeRow;
use serde_json::Value;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// Writes `hosts.txt` in `dir`: two processes on loopback, each on a port free a moment
/// ago. Returns its path.
pub fn two_process_hostfile(dir: &Path) -> std::path::PathBuf {
    let hostfile = dir.join("hosts.txt");
    let lines = format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port());
    std::fs::write(&hostfile, lines).expect("cannot write the host file");
    hostfile
}

/// A running `flowsight` process, killed when dropped.
pub struct Flowsight {
    pub child: Child,
    pub base: String,
}

impl Flowsight {
    /// Starts `flowsight run <args> --http 127.0.0.1:<port>`.
    pub fn run(args: &[&str], port: u16) -> Flowsight {
        let http = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_flowsight"))
            .arg("run")
            .args(args)
            .args(["--http", &http])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the flowsight binary");
        Flowsight {
            child,
            base: format!("http://{http}"),
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        get(&format!("{}{}", self.base, path))
    }

    /// POSTs a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(
            reqwest::blocking::Client::new()
                .post(format!("{}{}", self.base, path))
                .json(body),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        send(reqwest::blocking::Client::new().delete(format!("{}{}", self.base, path)))
    }

    /// Waits until the process has read `records` valid records, every partition has
    /// finished, and the views are complete past the largest timestamp seen.
    pub fn wait_until_complete(&mut self, records: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("flowsight exited early with {status}");
            }
            if let Some((200, status)) = try_get(&format!("{}/v1/status", self.base)) {
                let finished = status["partitions"]
                    .as_array()
                    .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["finished"] == true));
                let max_ts = status["partitions"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| p["max_ts"].as_u64())
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0);
                let as_of = status["as_of"].as_u64().unwrap_or(0);
                if status["records"].as_u64() == Some(records) && finished && as_of > max_ts {
                    return status;
                }
            }
            assert!(
                Instant::now() < deadline,
                "flowsight did not complete within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "flowsight did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Flowsight {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn try_get(url: &str) -> Option<(u16, Value)> {
    let response = match reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(15))
        .send()
    {
        Ok(response) => response,
        // Not listening yet, or gone: the callers decide what that means.
        Err(_) => return None,
    };
    let status = response.status().as_u16();
    let text = response.text().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn send(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let response = request
        .timeout(Duration::from_secs(60))
        .send()
        .expect("the request reaches flowsight");
    let status = response.status().as_u16();
    let text = response.text().expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn get(url: &str) -> (u16, Value) {
    try_get(url).unwrap_or_else(|| panic!("GET {url} failed"))
}

/// Edge rows of a JSON answer, keyed.
pub fn rows(answer: &Value) -> Vec<EdgeRow> {
    serde_json::from_value(answer["rows"].clone()).expect("rows are edge rows")
}

type EdgeKey = (IpAddr, IpAddr, u16, Proto);

/// The oracle: every edge of the window `[as_of − window, as_of)`, recomputed from the
/// records by plain iteration.
pub fn oracle_edges(events: &[Event], as_of: u64, window: u64) -> BTreeMap<EdgeKey, EdgeRow> {
    fold_edges(events, |e| {
        (e.ts < as_of && e.ts >= as_of.saturating_sub(window)).then_some((e.ts, e.ts))
    })
}

/// The oracle with panes: every edge of window `stage` of `schedule` as of `as_of` — the
/// records with `floor_pane(as_of − W) ≤ ts < as_of` — with each record's first and last
/// seen where the schedule keeps it then: its own `ts` while at the tick, its pane's
/// bounds once moved to one (docs/design.md §3), last seen cut at `as_of − 1`.
pub fn oracle_edges_paned(
    events: &[Event],
    as_of: u64,
    schedule: &flowsight_operators::PaneSchedule,
    stage: usize,
) -> BTreeMap<EdgeKey, EdgeRow> {
    use flowsight_operators::panes::{floor, Bucket};
    let start = schedule.window_start(stage, as_of);
    let mut edges = fold_edges(events, |e| {
        if e.ts >= as_of || e.ts < start {
            return None;
        }
        match schedule.bucket_at(e.ts, as_of)? {
            Bucket::Tick => Some((e.ts, e.ts)),
            Bucket::Pane(length) => {
                let pane = floor(e.ts, length);
                Some((pane, pane + length - 1))
            }
        }
    });
    for row in edges.values_mut() {
        row.last_seen = row.last_seen.min(as_of - 1);
    }
    edges
}

/// Sums the records `span` keeps (it gives each one's first and last seen) per edge.
fn fold_edges(
    events: &[Event],
    mut span: impl FnMut(&Event) -> Option<(u64, u64)>,
) -> BTreeMap<EdgeKey, EdgeRow> {
    let mut edges: BTreeMap<EdgeKey, EdgeRow> = BTreeMap::new();
    for e in events {
        let Some((first, last)) = span(e) else {
            continue;
        };
        let row = edges
            .entry((e.src_ip, e.dst_ip, e.dst_port, e.proto))
            .or_insert(EdgeRow {
                src_ip: e.src_ip,
                dst_ip: e.dst_ip,
                dst_port: e.dst_port,
                proto: e.proto,
                count: 0,
                bytes_out: 0,
                bytes_in: 0,
                packets: 0,
                failed: 0,
                first_seen: first,
                last_seen: last,
            });
        row.count += 1;
        row.bytes_out += e.bytes_out;
        row.bytes_in += e.bytes_in;
        row.packets += e.packets;
        row.failed += u64::from(e.status != flowsight_events::Status::Established);
        row.first_seen = row.first_seen.min(first);
        row.last_seen = row.last_seen.max(last);
    }
    edges
}

/// The heaviest `limit` of `edges`, in the API's order.
fn heaviest(edges: BTreeMap<EdgeKey, EdgeRow>, limit: usize) -> Vec<EdgeRow> {
    let mut all: Vec<EdgeRow> = edges.into_values().collect();
    all.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then((b.bytes_out + b.bytes_in).cmp(&(a.bytes_out + a.bytes_in)))
            .then(
                (a.src_ip, a.dst_ip, a.dst_port, a.proto)
                    .cmp(&(b.src_ip, b.dst_ip, b.dst_port, b.proto)),
            )
    });
    all.truncate(limit);
    all
}

/// The oracle's heaviest `limit` edges, in the API's order.
pub fn oracle_top(events: &[Event], as_of: u64, window: u64, limit: usize) -> Vec<EdgeRow> {
    heaviest(oracle_edges(events, as_of, window), limit)
}

/// The pane-aware oracle's heaviest `limit` edges of window `stage`, in the API's order.
pub fn oracle_top_paned(
    events: &[Event],
    as_of: u64,
    schedule: &flowsight_operators::PaneSchedule,
    stage: usize,
    limit: usize,
) -> Vec<EdgeRow> {
    heaviest(oracle_edges_paned(events, as_of, schedule, stage), limit)
}

/// Writes events as native JSON lines.
pub fn write_native(path: &Path, events: &[Event]) {
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).expect("events serialise"));
        text.push('\n');
    }
    std::fs::write(path, text).expect("cannot write the test file");
}

/// Every event of a fast-paced generator, partition after partition, as `flowsight run
/// --pace fast --seed S --partitions P --rate R --start-ms T --count N --hosts H` reads them.
pub fn generated(
    seed: u64,
    partitions: u32,
    rate: u64,
    start_ms: u64,
    count: u64,
    hosts: u32,
) -> Vec<Event> {
    let config = GeneratorConfig {
        seed,
        partitions,
        rate,
        pace: Pace::Fast,
        start_ms,
        count: Some(count),
        hosts,
        ..GeneratorConfig::default()
    };
    (0..partitions)
        .flat_map(|p| GeneratorPartition::new(&config, p))
        .collect()
}

/// The risk oracle with the defaults of docs/design.md §4: every source host of the window
/// `[as_of − window, as_of)` with its score, as `(ip, score, severity)`, highest score
/// first, ties by address. Recomputed from the records by plain iteration.
pub fn oracle_risks(events: &[Event], as_of: u64, window: u64) -> Vec<(IpAddr, u64, String)> {
    const SENSITIVE: [u16; 11] = [22, 23, 445, 1433, 3306, 3389, 5432, 5900, 6379, 9200, 27017];
    let private = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    };
    #[derive(Default)]
    struct Host {
        connections: u64,
        failed: u64,
        dsts: std::collections::BTreeSet<IpAddr>,
        ports: std::collections::BTreeSet<u16>,
        external: u64,
    }
    let mut hosts: BTreeMap<IpAddr, Host> = BTreeMap::new();
    for e in events {
        if e.ts >= as_of || e.ts < as_of.saturating_sub(window) {
            continue;
        }
        let h = hosts.entry(e.src_ip).or_default();
        h.connections += 1;
        h.failed += u64::from(e.status != flowsight_events::Status::Established);
        h.dsts.insert(e.dst_ip);
        h.ports.insert(e.dst_port);
        if !private(&e.dst_ip) {
            h.external += e.bytes_out;
        }
    }
    let mut rows: Vec<(IpAddr, u64, String)> = hosts
        .into_iter()
        .map(|(ip, h)| {
            let sensitive = h.ports.iter().filter(|p| SENSITIVE.contains(p)).count() as u64;
            let failures = if h.connections >= 10 {
                20 * h.failed / h.connections
            } else {
                0
            };
            let sum = (h.dsts.len() as u64 / 4).min(25)
                + (h.ports.len() as u64 / 5).min(20)
                + failures
                + (5 * sensitive).min(15)
                + (h.external / 10_000_000).min(20);
            let score = (1 + sum).clamp(1, 100);
            let severity = match score {
                70.. => "critical",
                40.. => "medium",
                _ => "low",
            };
            (ip, score, severity.to_string())
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows
}

/// The segmentation of the window `[as_of − window, as_of)` by docs/segments.md, recomputed
/// with a union-find: each segment's id and size, each hub's distinct peers, and the
/// policy as `(from, to, dst_port, proto) → count` with ids written as the API does.
pub struct SegmentOracle {
    pub sizes: BTreeMap<String, u64>,
    pub hubs: BTreeMap<IpAddr, u64>,
    pub policy: BTreeMap<(String, String, u16, Proto), u64>,
}

pub fn oracle_segments(
    events: &[Event],
    as_of: u64,
    window: u64,
    hub_degree: u64,
    min_edge: u64,
) -> SegmentOracle {
    use std::collections::BTreeSet;
    let records: Vec<&Event> = events
        .iter()
        .filter(|e| e.ts < as_of && e.ts >= as_of.saturating_sub(window))
        .collect();
    let mut hosts: BTreeSet<IpAddr> = BTreeSet::new();
    let mut weights: BTreeMap<(IpAddr, IpAddr), u64> = BTreeMap::new();
    let mut peers: BTreeMap<IpAddr, BTreeSet<IpAddr>> = BTreeMap::new();
    for e in &records {
        hosts.insert(e.src_ip);
        hosts.insert(e.dst_ip);
        if e.src_ip != e.dst_ip {
            let pair = (e.src_ip.min(e.dst_ip), e.src_ip.max(e.dst_ip));
            *weights.entry(pair).or_default() += 1;
            peers.entry(e.src_ip).or_default().insert(e.dst_ip);
            peers.entry(e.dst_ip).or_default().insert(e.src_ip);
        }
    }
    let hubs: BTreeMap<IpAddr, u64> = peers
        .iter()
        .filter(|(_, p)| p.len() as u64 >= hub_degree)
        .map(|(h, p)| (*h, p.len() as u64))
        .collect();
    let mut parent: BTreeMap<IpAddr, IpAddr> = hosts
        .iter()
        .filter(|h| !hubs.contains_key(h))
        .map(|h| (*h, *h))
        .collect();
    fn root(parent: &BTreeMap<IpAddr, IpAddr>, mut h: IpAddr) -> IpAddr {
        while parent[&h] != h {
            h = parent[&h];
        }
        h
    }
    for (&(a, b), &w) in &weights {
        if w >= min_edge && parent.contains_key(&a) && parent.contains_key(&b) {
            let (ra, rb) = (root(&parent, a), root(&parent, b));
            // Union towards the smaller root, so every root is its set's smallest member.
            parent.insert(ra.max(rb), ra.min(rb));
        }
    }
    let label = |h: IpAddr| -> String {
        if hubs.contains_key(&h) {
            format!("hub:{h}")
        } else {
            root(&parent, h).to_string()
        }
    };
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for h in parent.keys() {
        *sizes.entry(label(*h)).or_default() += 1;
    }
    let mut policy = BTreeMap::new();
    for e in &records {
        let (from, to) = (label(e.src_ip), label(e.dst_ip));
        if from != to {
            *policy.entry((from, to, e.dst_port, e.proto)).or_default() += 1;
        }
    }
    SegmentOracle {
        sizes,
        hubs,
        policy,
    }
}
