//! `cargo build --release -p flowsight && cargo run --release -p flowsight-benches --bin
//! memory -- [--hours H] [--every 1h] [--rate R] [--workers W] [--processes P]
//! [--max-rss-gib G] [-- <flowsight run options>]`
//!
//! How memory grows over hours of event time. One `flowsight run --pace fast` (the binary
//! built beside this one; generator at `--rate` records per second of event time, read as
//! fast as the views allow, every default view unless the options after `--` say
//! otherwise) is sampled every second: the process's resident memory, how long
//! `/v1/status` takes to answer, and the views' `as_of`. A line is printed each time the
//! `as_of` has moved `--every` further in event time: RSS then and its growth over the
//! last step, the slowest status answer of the step, records read, and each view's
//! arrangement records. It stops after `--hours` of event time, or when RSS passes
//! `--max-rss-gib`. With `--processes 2` or more it runs a cluster on this machine
//! (`flowsight cluster start`, `--workers` per process) and prints each process's RSS; the
//! RSS that `--max-rss-gib` watches is then the largest process's.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{exit_usage, flowsight_binary, free_ports, get_json, supervised_pid};
use flowsight_queries::parse_duration_ms;
use serde_json::Value;

/// Memory over hours of event time, for one `flowsight run --pace fast`.
#[derive(Parser)]
#[command(name = "memory", args_override_self = true)]
struct Args {
    /// Hours of event time to run for.
    #[arg(long, value_name = "H", default_value_t = 4.0)]
    hours: f64,
    /// How much event time between two printed lines (`10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    every: String,
    /// The generator's records per second of event time.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    rate: u64,
    /// Timely workers (per process).
    #[arg(long, value_name = "W", default_value_t = 2)]
    workers: usize,
    /// Processes: more than one runs a cluster on this machine through `flowsight cluster
    /// start`.
    #[arg(long, value_name = "P", default_value_t = 1)]
    processes: usize,
    /// Stop once the resident memory passes this many GiB.
    #[arg(long, value_name = "G", default_value_t = 16.0)]
    max_rss_gib: f64,
    /// More options for `flowsight run` (such as `--no-queries` or `--windows 30m,2h,24h`).
    #[arg(last = true, value_name = "RUN OPTIONS")]
    run: Vec<String>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn main() {
    let args = Args::parse();
    let every = parse_duration_ms(&args.every)
        .ok()
        .filter(|&ms| ms > 0)
        .unwrap_or_else(|| exit_usage::<Args>(format!("--every {}: not a duration", args.every)));
    let binary = flowsight_binary().unwrap_or_else(|problem| exit_usage::<Args>(problem));
    let dir = std::env::temp_dir().join(format!("flowsight-memory-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a state directory");
    let port = free_ports(args.processes.max(1) as u16);
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(&binary);
    if args.processes > 1 {
        let cluster = free_ports(args.processes as u16);
        let hosts = dir.join("hosts.txt");
        let lines: String = (0..args.processes)
            .map(|i| format!("127.0.0.1:{}\n", cluster + i as u16))
            .collect();
        std::fs::write(&hosts, lines).expect("a host file");
        command.args(["cluster", "start", "--hostfile"]).arg(&hosts);
    } else {
        command.arg("run");
    }
    let mut child: Child = command
        .args(["--pace", "fast"])
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
        "flowsight {} --pace fast --rate {} --workers {} {}",
        if args.processes > 1 {
            format!("cluster start ({} processes)", args.processes)
        } else {
            "run".to_string()
        },
        args.rate,
        args.workers,
        args.run.join(" ")
    );
    println!(
        "{:>8} {:>9} {:>9} {:>12} {:>10} {:>8}  arrangement records by view",
        "event", "RSS GiB", "growth", "records", "status max", "wall s"
    );
    let started = Instant::now();
    let hours_ms = (args.hours * 3_600_000.0) as u64;
    let mut first_as_of: Option<u64> = None;
    let mut next_line = every;
    let mut last_rss: Option<u64> = None;
    let mut slowest = Duration::ZERO;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(Some(status)) = child.try_wait() {
            println!("flowsight exited: {status}");
            break;
        }
        // The process itself, or each process of the cluster by its index.
        let each: Vec<u64> = if args.processes > 1 {
            (0..args.processes)
                .map(|i| {
                    supervised_pid(child.id(), i)
                        .and_then(rss_bytes)
                        .unwrap_or(0)
                })
                .collect()
        } else {
            match rss_bytes(child.id()) {
                Some(rss) => vec![rss],
                None => break,
            }
        };
        let rss = each.iter().copied().max().unwrap_or(0);
        let asked = Instant::now();
        let answer = get_json(&format!("{base}/v1/status"), Duration::from_secs(30));
        slowest = slowest.max(asked.elapsed());
        if rss as f64 > args.max_rss_gib * GIB {
            println!(
                "stopped: RSS {:.2} GiB passed --max-rss-gib {}",
                rss as f64 / GIB,
                args.max_rss_gib
            );
            break;
        }
        let Some((200, status)) = answer else {
            continue;
        };
        let Some(as_of) = status["as_of"].as_u64().filter(|&t| t > 0) else {
            continue;
        };
        let start = *first_as_of.get_or_insert(as_of);
        let elapsed = as_of.saturating_sub(start);
        if elapsed < next_line {
            continue;
        }
        let growth = last_rss.map_or("".to_string(), |last| {
            format!("{:+.1} %", (rss as f64 / last as f64 - 1.0) * 100.0)
        });
        println!(
            "{:>8} {:>9} {:>9} {:>12} {:>9.0}ms {:>8.0}  {}",
            format_event_time(next_line),
            each.iter()
                .map(|rss| format!("{:.2}", *rss as f64 / GIB))
                .collect::<Vec<_>>()
                .join("/"),
            growth,
            status["records"].as_u64().unwrap_or(0),
            slowest.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64(),
            views(&status["state"]),
        );
        last_rss = Some(rss);
        slowest = Duration::ZERO;
        next_line += every;
        if elapsed >= hours_ms {
            break;
        }
    }
    // SIGTERM: a supervisor stops its processes before it exits (SIGKILL would orphan them).
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of process `pid`, from `/proc`.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `90m` → `1h30m`.
fn format_event_time(ms: u64) -> String {
    let minutes = ms / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

/// `graph=1.2M risk=0.3M …` from the status's `state`.
fn views(state: &Value) -> String {
    let Some(views) = state.as_object() else {
        return String::new();
    };
    let sorted: BTreeMap<&String, u64> = views
        .iter()
        .map(|(name, v)| (name, v["records"].as_u64().unwrap_or(0)))
        .collect();
    sorted
        .iter()
        .map(|(name, records)| format!("{name}={:.2}M", *records as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_read_as_hours_and_minutes() {
        assert_eq!(format_event_time(600_000), "10m");
        assert_eq!(format_event_time(3_600_000), "1h");
        assert_eq!(format_event_time(5_400_000), "1h30m");
    }

    #[test]
    fn the_documented_command_lines_parse() {
        use flowsight_benches::parse_line;
        // docs/benchmarks.md
        for options in [
            "--hours 4 --every 30m -- --no-queries",
            "--hours 4 --every 30m -- --no-queries --no-risk-views",
            "--hours 4 --every 1m --max-rss-gib 10",
            "--hours 0.5 --every 10m --processes 2 --workers 1",
        ] {
            parse_line::<Args>(&format!("memory {options}"));
        }
    }

    #[test]
    fn options_after_the_separator_go_to_flowsight() {
        let args = Args::parse_from(["memory", "--hours", "1", "--", "--no-queries"]);
        assert_eq!(args.run, vec!["--no-queries".to_string()]);
        assert_eq!(args.every, "1h");
    }
}
