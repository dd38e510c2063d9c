//! `cargo build --release -p flowsight && cargo run --release -p flowsight-benches --bin
//! cluster -- [--records N] [--rate R] [--realtime-secs S]`
//!
//! One process with 2 workers against a cluster of 2 processes with 1 worker each on this
//! machine, both through the `flowsight` binary (`flowsight run`, `flowsight cluster
//! start`): the same cores, so the difference is the cost of the network exchange between
//! processes. For each layout:
//!
//! - records/s: the generator runs as fast as the engine takes it (`--pace fast`) for
//!   `--records` records, every built-in view on; the time is until every record is
//!   visible (from the moment the HTTP API answers, so process start-up is left out);
//! - freshness: the generator follows the wall clock at `--rate` records/s for
//!   `--realtime-secs`, and the HTTP status is sampled every 100 ms: how far the complete
//!   `as_of` trails the wall clock (the allowed lateness, 5 s by default, and the 1 s tick
//!   are part of it by design).
//!
//! Then, on the cluster, `kill -9` of process 1 while it runs in real time: the time until
//! every process serves views again (after the supervisor has restarted the cluster).

use flowsight_events::now_ms;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{exit_usage, flowsight_binary, free_ports, get_json, supervised_pid};
use serde_json::Value;

/// One process with 2 workers against a cluster of 2 processes with 1 worker each, through
/// the `flowsight` binary built beside this one: records/s, freshness, and recovery from
/// `kill -9` of a process of the cluster.
#[derive(Parser)]
#[command(name = "cluster", args_override_self = true)]
struct Args {
    /// How many records the generator produces in the records/s phase, where it runs as
    /// fast as the engine takes them (`--pace fast`).
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    records: u64,
    /// The generator's records per second: the rate at which it follows the wall clock in
    /// the freshness phase (and its event-time rate in the records/s phase).
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// How long the freshness phase runs in real time, in seconds.
    #[arg(long, value_name = "S", default_value_t = 30)]
    realtime_secs: u64,
}

fn main() {
    let Args {
        records,
        rate,
        realtime_secs: realtime,
    } = Args::parse();
    let binary = flowsight_binary().unwrap_or_else(|problem| exit_usage::<Args>(problem));
    let dir = std::env::temp_dir().join(format!("flowsight-cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");

    for layout in [Layout::OneProcess, Layout::TwoProcesses] {
        let fast = [
            "--pace".to_string(),
            "fast".into(),
            "--count".into(),
            records.to_string(),
            "--rate".into(),
            rate.to_string(),
        ];
        let mut run = layout.start(&binary, &dir, &fast);
        let (up, _) = wait_for(&run, |_| true, Duration::from_secs(60));
        let (_, _) = wait_for(
            &run,
            |s| s["records"].as_u64() == Some(records) && complete(s),
            Duration::from_secs(3_600),
        );
        let took = up.elapsed();
        run.stop();
        println!(
            "{}: {records} records in {:.1} s: {:.0} records/s",
            layout.name(),
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64()
        );

        let live = ["--rate".to_string(), rate.to_string()];
        let mut run = layout.start(&binary, &dir, &live);
        wait_for(
            &run,
            |s| s["records"].as_u64().unwrap_or(0) > 0,
            Duration::from_secs(60),
        );
        let mut trailing = Vec::new();
        let until = Instant::now() + Duration::from_secs(realtime);
        while Instant::now() < until {
            if let Some(status) = status(run.http, 0) {
                if let Some(as_of) = status["as_of"].as_u64() {
                    trailing.push(now_ms().saturating_sub(as_of));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        trailing.sort_unstable();
        let at = |p: f64| trailing[((p * trailing.len() as f64) as usize).min(trailing.len() - 1)];
        println!(
            "{}: at {rate} records/s in real time, the complete as_of trails the wall clock by p50 {} ms, p99 {} ms, max {} ms ({} samples)",
            layout.name(),
            at(0.5),
            at(0.99),
            trailing.last().copied().unwrap_or(0),
            trailing.len()
        );

        if layout == Layout::TwoProcesses {
            let victim = run
                .process_pid(1)
                .expect("process 1 of the cluster is running");
            let killed = Instant::now();
            let _ = Command::new("kill")
                .args(["-9", &victim.to_string()])
                .status();
            // Serving again: a restarted process 1 and every process answering a view.
            while run.process_pid(1).is_none_or(|p| p == victim) {
                std::thread::sleep(Duration::from_millis(10));
            }
            loop {
                let serving = (0..2).all(|i| {
                    get(&format!(
                        "http://127.0.0.1:{}/v1/graph/edges?limit=1",
                        run.http + i
                    ))
                    .is_some_and(|(code, _)| code == 200)
                });
                if serving {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            println!(
                "{}: kill -9 of process 1 to every process serving views again: {:.2} s",
                layout.name(),
                killed.elapsed().as_secs_f64()
            );
        }
        run.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    OneProcess,
    TwoProcesses,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneProcess => "1 process x 2 workers",
            Layout::TwoProcesses => "2 processes x 1 worker",
        }
    }

    fn start(self, binary: &Path, dir: &Path, source: &[String]) -> Running {
        let http = free_ports(2);
        let state = dir.join(format!("state-{http}"));
        let mut command = Command::new(binary);
        match self {
            Layout::OneProcess => {
                command.args(["run", "--workers", "2"]);
            }
            Layout::TwoProcesses => {
                let cluster = free_ports(2);
                let hosts = dir.join(format!("hosts-{cluster}.txt"));
                std::fs::write(
                    &hosts,
                    format!("127.0.0.1:{cluster}\n127.0.0.1:{}\n", cluster + 1),
                )
                .expect("a host file");
                command
                    .args(["cluster", "start", "--workers", "1", "--hostfile"])
                    .arg(&hosts);
            }
        }
        let child = command
            .args(["--source", "generator"])
            .args(source)
            .arg("--state-dir")
            .arg(&state)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("flowsight starts");
        Running { child, http, state }
    }
}

struct Running {
    child: Child,
    http: u16,
    state: PathBuf,
}

impl Running {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }

    /// The pid of a supervised process, by its `--process` index.
    fn process_pid(&self, index: usize) -> Option<u32> {
        supervised_pid(self.child.id(), index)
    }
}

/// Every partition finished and the views complete past the largest timestamp.
fn complete(status: &Value) -> bool {
    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
    let max_ts = partitions.iter().filter_map(|p| p["max_ts"].as_u64()).max();
    !partitions.is_empty()
        && partitions.iter().all(|p| p["finished"] == true)
        && max_ts.is_some_and(|m| status["as_of"].as_u64().is_some_and(|a| a > m))
}

fn wait_for(run: &Running, done: impl Fn(&Value) -> bool, limit: Duration) -> (Instant, Value) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = status(run.http, 0) {
            if done(&status) {
                return (Instant::now(), status);
            }
        }
        assert!(
            Instant::now() < deadline,
            "flowsight did not get there within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(http: u16, index: u16) -> Option<Value> {
    match get(&format!("http://127.0.0.1:{}/v1/status", http + index)) {
        Some((200, status)) => Some(status),
        _ => None,
    }
}

fn get(url: &str) -> Option<(u16, Value)> {
    get_json(url, Duration::from_secs(10))
}

/// `count` consecutive free ports on loopback.
#[cfg(test)]
#[test]
fn the_documented_command_line_parses() {
    let args: Args = flowsight_benches::parse_line("cluster --records 2000000 --realtime-secs 30");
    assert_eq!(
        (args.records, args.rate, args.realtime_secs),
        (2_000_000, 20_000, 30)
    );
}
