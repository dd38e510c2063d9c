//! `cargo build --release -p flowsight && cargo run --release -p flowsight-benches --bin
//! viewers -- [--viewers N] [--rate R] [--secs S]`
//!
//! Many people watching the dashboard while the engine ingests in real time. One
//! `flowsight run` (generator at `--rate` records/s following the wall clock, every view
//! on) is measured twice for `--secs` each: alone, then with `--viewers` clients that each
//! hold the dashboard's stream (status, the 30m risks in full, anomalies, the severity
//! counts, segments, the busiest policy entries on one connection) and read every event. Reported per phase: records/s ingested, how far the
//! complete as_of trails the wall clock (sampled every 200 ms), the process's CPU; and for
//! the viewers: how long after its as_of a risk event reaches a client, events and bytes
//! per client, overflows.

use flowsight_events::{lock, now_ms};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{exit_usage, flowsight_binary, free_port, get_json};
use serde_json::Value;

/// The dashboard's stream (cluster/dashboard/src): its subscriptions on one connection.
const DASHBOARD_STREAM: &str = "/v1/subscribe?status=status\
    &risks=risks%3Fwindow%3D30m%26limit%3D10000\
    &anomalies=anomalies%3Fwindow%3D30m%26limit%3D200\
    &severity=severity%3Fwindow%3D30m%26span%3D1h%26step%3D5s\
    &segments=segments%3Flimit%3D40%26members%3D5\
    &policy=policy%3Forder%3Dcount%26limit%3D2000";
/// How a risk event's data begins on that stream, before its as_of.
const RISK_EVENT: &str = "{\"subscription\":\"risks\",\"as_of\":";

/// Many people watching the dashboard while one `flowsight run` (the binary built beside
/// this one) ingests in real time: measured alone, then with the viewers.
#[derive(Parser)]
#[command(name = "viewers", args_override_self = true)]
struct Args {
    /// Clients that each hold the dashboard's stream and read every event, in the second
    /// phase.
    #[arg(long, value_name = "N", default_value_t = 5)]
    viewers: u64,
    /// The generator's records per second, following the wall clock.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// How long each phase is measured, in seconds.
    #[arg(long, value_name = "S", default_value_t = 60)]
    secs: u64,
}

fn main() {
    let Args {
        viewers,
        rate,
        secs,
    } = Args::parse();
    let binary = flowsight_binary().unwrap_or_else(|problem| exit_usage::<Args>(problem));
    let dir = std::env::temp_dir().join(format!("flowsight-viewers-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&binary, &dir, port, rate);
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&format!("{base}/health")).is_none_or(|(code, _)| code != 200) {
        assert!(Instant::now() < deadline, "flowsight did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the views fill a little before measuring.
    std::thread::sleep(Duration::from_secs(10));

    println!("{rate} records/s in real time, every view on, {secs} s per phase");
    let alone = measure(&base, child.id(), secs, 0);
    alone.print("no viewers");
    let watched = measure(&base, child.id(), secs, viewers);
    watched.print(&format!("{viewers} viewers"));

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn start(binary: &PathBuf, dir: &std::path::Path, port: u16, rate: u64) -> Child {
    Command::new(binary)
        .args(["run", "--workers", "2", "--rate", &rate.to_string()])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .arg("--state-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start flowsight")
}

#[derive(Default)]
struct Viewer {
    events: u64,
    bytes: u64,
    overflows: u64,
    /// Wall clock at receipt minus as_of, of each risk event, in ms.
    risk_delays: Vec<u64>,
}

struct Phase {
    records_per_s: f64,
    behind: Vec<u64>,
    cpu: f64,
    viewers: Vec<Viewer>,
}

impl Phase {
    fn print(&self, name: &str) {
        let mut behind = self.behind.clone();
        println!(
            "{name}: {:.0} records/s; complete as_of behind the wall clock p50 {:.2} s, p99 {:.2} s; \
             CPU {:.0}% of a core",
            self.records_per_s,
            percentile(&mut behind, 50) as f64 / 1000.0,
            percentile(&mut behind, 99) as f64 / 1000.0,
            self.cpu * 100.0
        );
        if self.viewers.is_empty() {
            return;
        }
        let mut delays: Vec<u64> = self
            .viewers
            .iter()
            .flat_map(|v| v.risk_delays.iter().copied())
            .collect();
        let events: u64 = self.viewers.iter().map(|v| v.events).sum();
        let bytes: u64 = self.viewers.iter().map(|v| v.bytes).sum();
        let overflows: u64 = self.viewers.iter().map(|v| v.overflows).sum();
        let n = self.viewers.len() as f64;
        println!(
            "  per viewer: {:.0} events, {:.1} MB; risk events reach a viewer p50 {:.2} s, \
             p99 {:.2} s after their as_of; overflows {overflows}",
            events as f64 / n,
            bytes as f64 / n / 1e6,
            percentile(&mut delays, 50) as f64 / 1000.0,
            percentile(&mut delays, 99) as f64 / 1000.0,
        );
    }
}

fn measure(base: &str, pid: u32, secs: u64, viewers: u64) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let results: Arc<Mutex<Vec<Viewer>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..viewers {
        let url = format!("{base}{DASHBOARD_STREAM}");
        let stop = Arc::clone(&stop);
        let results = Arc::clone(&results);
        threads.push(std::thread::spawn(move || {
            let viewer = watch(&url, &stop);
            lock(&results).push(viewer);
        }));
    }
    let start_records = records(base);
    let start_cpu = cpu_ticks(pid);
    let started = Instant::now();
    let mut behind = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        if let Some((200, health)) = get(&format!("{base}/health")) {
            if let Some(as_of) = health["as_of"].as_u64() {
                behind.push(now_ms().saturating_sub(as_of));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed().as_secs_f64();
    let records_per_s = (records(base) - start_records) as f64 / took;
    let cpu = (cpu_ticks(pid) - start_cpu) as f64 / 100.0 / took;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let viewers = std::mem::take(&mut *lock(&results));
    Phase {
        records_per_s,
        behind,
        cpu,
        viewers,
    }
}

/// Reads one subscription until `stop`.
fn watch(url: &str, stop: &AtomicBool) -> Viewer {
    let mut viewer = Viewer::default();
    let response = reqwest::blocking::Client::builder()
        .timeout(None::<Duration>)
        .build()
        .and_then(|c| c.get(url).send());
    let Ok(response) = response else {
        eprintln!("cannot subscribe to {url}");
        return viewer;
    };
    let mut reader = BufReader::new(response);
    let mut kind = String::new();
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => viewer.bytes += n as u64,
        }
        if let Some(name) = line.strip_prefix("event:") {
            kind = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            viewer.events += 1;
            if kind == "overflow" {
                viewer.overflows += 1;
            }
            if kind != "snapshot" {
                // The as_of leads the data: no need to parse the whole event.
                let as_of = data
                    .trim()
                    .strip_prefix(RISK_EVENT)
                    .and_then(|rest| rest.split([',', '}']).next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(as_of) = as_of {
                    viewer.risk_delays.push(now_ms().saturating_sub(as_of));
                }
            }
        }
    }
    viewer
}

fn records(base: &str) -> u64 {
    get(&format!("{base}/v1/status"))
        .and_then(|(_, s)| s["records"].as_u64())
        .unwrap_or(0)
}

/// The process's user and system CPU time, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn percentile(values: &mut [u64], p: usize) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[(values.len() - 1) * p / 100]
}

fn get(url: &str) -> Option<(u16, Value)> {
    get_json(url, Duration::from_secs(15))
}

#[cfg(test)]
#[test]
fn the_documented_command_line_parses() {
    let args: Args = flowsight_benches::parse_line("viewers --viewers 5 --rate 20000 --secs 45");
    assert_eq!((args.viewers, args.rate, args.secs), (5, 20_000, 45));
}
