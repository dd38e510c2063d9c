//! `cargo build --release -p flowsight && cargo run --release -p flowsight-benches --bin
//! reads -- [--state 2h] [--rate R] [--clients C] [--secs S] [--workers W] [--settle S]
//! [-- <flowsight run options>]`
//!
//! How fast the list endpoints answer under live ingest with hours of state. One
//! `flowsight run --pace catch-up` (the binary built beside this one; every default view
//! unless the options after `--` say otherwise) starts `--state` of event time in the past:
//! it reads that backlog as fast as the views allow, then follows the wall clock at
//! `--rate` records/s. Once its `as_of` has caught up with the wall clock (and `--settle`
//! seconds more), each endpoint is
//! asked by `--clients` clients at once, each asking again as soon as it has its answer,
//! for `--secs` seconds: per endpoint, the answers per second, the latency's p50, p99 and
//! maximum, and the answers that were not `200`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{exit_usage, flowsight_binary, free_port, get_json};
use flowsight_queries::parse_duration_ms;
use std::process::{Child, Command, Stdio};

/// Latency of the list endpoints under live ingest, with hours of state.
#[derive(Parser)]
#[command(name = "reads", args_override_self = true)]
struct Args {
    /// Event time of state to build before measuring (the backlog read at full speed).
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    state: String,
    /// Records per second of event time, in the backlog and live.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// Clients asking one endpoint at once.
    #[arg(long, value_name = "C", default_value_t = 8)]
    clients: usize,
    /// How long each endpoint is asked, in seconds.
    #[arg(long, value_name = "S", default_value_t = 20)]
    secs: u64,
    /// Timely workers.
    #[arg(long, value_name = "W", default_value_t = 2)]
    workers: usize,
    /// Seconds to wait once caught up before measuring, for the last of the backlog's
    /// work (merges, compaction) to settle.
    #[arg(long, value_name = "S", default_value_t = 30)]
    settle: u64,
    /// More options for `flowsight run`.
    #[arg(last = true, value_name = "RUN OPTIONS")]
    run: Vec<String>,
}

/// The endpoints asked, `{host}` replaced by the busiest host of the 30m window.
const ENDPOINTS: [&str; 14] = [
    "/v1/status",
    "/v1/graph/edges?window=30m&limit=100",
    "/v1/graph/edges?window=24h&limit=100",
    "/v1/graph/edges?src={host}&window=30m&limit=100",
    "/v1/graph/hosts?window=30m&limit=100",
    "/v1/graph/hosts?window=24h&limit=100",
    "/v1/graph/hosts/{host}?window=30m&limit=100",
    "/v1/risks?window=30m&limit=100",
    "/v1/risks/severity?window=30m&span=1h&step=1m",
    "/v1/anomalies?window=30m&limit=100",
    "/v1/segments?limit=40",
    "/v1/policy?limit=100",
    "/v1/queries",
    "/v1/dead-letters?limit=100",
];

fn main() {
    let args = Args::parse();
    let state_ms = parse_duration_ms(&args.state)
        .unwrap_or_else(|_| exit_usage::<Args>(format!("--state {}: not a duration", args.state)));
    let binary = flowsight_binary().unwrap_or_else(|problem| exit_usage::<Args>(problem));
    let dir = std::env::temp_dir().join(format!("flowsight-reads-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let start_ms = flowsight_events::now_ms().saturating_sub(state_ms);
    let mut child: Child = Command::new(&binary)
        .arg("run")
        .args(["--pace", "catch-up"])
        .args(["--start-ms", &start_ms.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .arg("--state-dir")
        .arg(&dir)
        .args(&args.run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| exit_usage::<Args>(format!("cannot start {}: {e}", binary.display())));
    println!(
        "flowsight run --pace catch-up --start-ms <now − {}> --rate {} --workers {} {}",
        args.state,
        args.rate,
        args.workers,
        args.run.join(" ")
    );

    // Catch up with the wall clock.
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(Some(status)) = child.try_wait() {
            println!("flowsight exited: {status}");
            return;
        }
        let Some((200, status)) = get_json(&format!("{base}/v1/status"), Duration::from_secs(30))
        else {
            continue;
        };
        let as_of = status["as_of"].as_u64().unwrap_or(0);
        let behind = flowsight_events::now_ms().saturating_sub(as_of);
        if last_print.elapsed() >= Duration::from_secs(60) {
            last_print = Instant::now();
            println!(
                "catching up: {:.0} s, {} records, as_of {:.1} min behind the wall clock",
                started.elapsed().as_secs_f64(),
                status["records"].as_u64().unwrap_or(0),
                behind as f64 / 60_000.0
            );
        }
        if as_of > 0 && behind < 30_000 {
            println!(
                "caught up after {:.0} s: {} records, as_of {:.1} s behind the wall clock",
                started.elapsed().as_secs_f64(),
                status["records"].as_u64().unwrap_or(0),
                behind as f64 / 1000.0
            );
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(args.settle));
    let busiest = get_json(
        &format!("{base}/v1/graph/hosts?window=30m&limit=1"),
        Duration::from_secs(30),
    )
    .and_then(|(_, body)| body["rows"][0]["ip"].as_str().map(String::from))
    .unwrap_or_else(|| "10.0.0.1".to_string());

    println!(
        "{} clients per endpoint, {} s each; latency in ms",
        args.clients, args.secs
    );
    println!(
        "{:<52} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "endpoint", "answers/s", "p50", "p99", "max", "not 200"
    );
    for endpoint in ENDPOINTS {
        let path = endpoint.replace("{host}", &busiest);
        let url = format!("{base}{path}");
        let (latencies, failures) = ask(&url, args.clients, Duration::from_secs(args.secs));
        let n = latencies.len();
        let at = |q: f64| {
            latencies
                .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:<52} {:>8.0} {:>8.1} {:>8.1} {:>8.1} {:>6}",
            path,
            n as f64 / args.secs as f64,
            at(0.50),
            at(0.99),
            latencies
                .last()
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            failures
        );
    }
    if let Some((200, status)) = get_json(&format!("{base}/v1/status"), Duration::from_secs(30)) {
        let as_of = status["as_of"].as_u64().unwrap_or(0);
        println!(
            "after the reads: {} records, as_of {:.1} s behind the wall clock",
            status["records"].as_u64().unwrap_or(0),
            flowsight_events::now_ms().saturating_sub(as_of) as f64 / 1000.0
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `clients` clients asking `url` in a loop for `how_long`: every answer's latency, sorted,
/// and how many answers were not `200` (or no answer).
fn ask(url: &str, clients: usize, how_long: Duration) -> (Vec<Duration>, u64) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0u64));
    let deadline = Instant::now() + how_long;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, latencies, failures) = (url.to_string(), latencies.clone(), failures.clone());
            std::thread::spawn(move || {
                let Ok(client) = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                else {
                    return;
                };
                let mut mine = Vec::new();
                let mut failed = 0u64;
                while Instant::now() < deadline {
                    let asked = Instant::now();
                    let ok = client
                        .get(&url)
                        .send()
                        .and_then(|r| {
                            let code = r.status().as_u16();
                            r.bytes().map(|_| code == 200)
                        })
                        .unwrap_or(false);
                    mine.push(asked.elapsed());
                    failed += u64::from(!ok);
                }
                flowsight_events::lock(&latencies).extend(mine);
                *flowsight_events::lock(&failures) += failed;
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let mut latencies = std::mem::take(&mut *flowsight_events::lock(&latencies));
    latencies.sort();
    let failures = *flowsight_events::lock(&failures);
    (latencies, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_command_lines_parse() {
        use flowsight_benches::parse_line;
        // docs/benchmarks.md
        for options in [
            "--state 2h --rate 20000 --clients 8 --secs 20",
            "--state 10m --secs 5 -- --no-queries",
        ] {
            parse_line::<Args>(&format!("reads {options}"));
        }
    }
}
