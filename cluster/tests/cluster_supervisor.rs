//! `flowsight cluster start|status|stop` against a real Kafka-protocol broker (Tansu): three
//! processes from a host file on this machine, a topic with more partitions than workers;
//! `kill -9` of one process at several points of the stream makes the supervisor restart
//! the whole cluster, after which every process's views equal the oracle's, with nothing
//! lost and nothing counted twice; `cluster stop` ends it with exit 0. Also the failures a
//! wrong setup gets: a process index out of range, an address already in use, a host file
//! that differs between processes.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tansu::{finish_produce, spawn_produce, Tansu};
use common::{free_port, oracle_top, rows, try_get, write_native};
use flowsight_events::Event;
use serde_json::Value;

const START: u64 = 1_760_000_000_000;
const PROCESSES: usize = 3;
const PARTITIONS: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Consecutive ports for the processes' HTTP APIs (base + index), free when asked.
fn free_port_run(count: u16) -> u16 {
    // Below the kernel's ephemeral range (32768 and up by default): while a process
    // restarts its port is free, and an outgoing connection (Kafka, timely, a status
    // poll) must not take it. Linux gives `bind(0)` odd ports and connections even ones,
    // so in a run that starts at a port `bind(0)` gave, the second process's port is one a
    // connection can take: it happened in CI, and the process could not listen again.
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    let span = u64::from(HIGH - LOW - count);
    let mut base = LOW + (seed % span) as u16;
    loop {
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
        base = if base + 2 * count < HIGH {
            base + count
        } else {
            LOW
        };
    }
}

fn hostfile(dir: &Path, processes: usize) -> PathBuf {
    let path = dir.join("hosts.txt");
    let base = free_port_run(processes as u16);
    let text: String = (0..processes)
        .map(|i| format!("127.0.0.1:{}\n", base + i as u16))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn flowsight() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowsight"));
    command.env("RUST_LOG", "warn").stdin(Stdio::null());
    command
}

/// The supervisor, killed (with its processes) when dropped.
struct Supervisor {
    child: Child,
    http: u16,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            for pid in children(self.child.id()) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The processes a process started (Linux: /proc/<pid>/task/<pid>/children).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The pid of the process with index `index` among the supervisor's children.
fn process_pid(supervisor: u32, index: usize) -> Option<u32> {
    children(supervisor).into_iter().find(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"--process" && w[1] == index.to_string().as_bytes())
    })
}

fn status(http: u16, index: usize) -> Option<Value> {
    match try_get(&format!(
        "http://127.0.0.1:{}/v1/status",
        http + index as u16
    )) {
        Some((200, status)) => Some(status),
        _ => None,
    }
}

/// Waits until every process answers, and returns their statuses.
fn wait_until_up(supervisor: &mut Supervisor) -> Vec<Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(Some(exit)) = supervisor.child.try_wait() {
            panic!("the supervisor exited with {exit}");
        }
        let statuses: Vec<Option<Value>> =
            (0..PROCESSES).map(|i| status(supervisor.http, i)).collect();
        if statuses.iter().all(Option::is_some) {
            return statuses.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "the cluster is not up after {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every process shows every record, not catching up, as_of past every
/// timestamp.
fn wait_until_complete(supervisor: &mut Supervisor, records: u64, max_ts: u64) {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = Vec::new();
    loop {
        if let Ok(Some(exit)) = supervisor.child.try_wait() {
            panic!("the supervisor exited with {exit}; last statuses {last:?}");
        }
        last = (0..PROCESSES).map(|i| status(supervisor.http, i)).collect();
        let complete = last.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                s["records"].as_u64() == Some(records)
                    && s["catching_up"] == false
                    && s["as_of"].as_u64().is_some_and(|a| a > max_ts)
                    && s["partitions"].as_array().is_some_and(|ps| {
                        ps.len() == PARTITIONS as usize && ps.iter().all(|p| p["idle"] == true)
                    })
            })
        });
        if complete {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not show all {records} records within {TIMEOUT:?}: {last:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every process's heaviest edges of every window equal the oracle's at its as_of.
fn check_views(http: u16, events: &[Event], context: &str) {
    for index in 0..PROCESSES {
        for (window, length) in [("2s", 2_000u64), ("30m", 1_800_000)] {
            let url = format!(
                "http://127.0.0.1:{}/v1/graph/edges?window={window}&limit=1000",
                http + index as u16
            );
            let (code, edges) = try_get(&url).expect("the process answers");
            assert_eq!(code, 200, "{context}: process {index}: {edges}");
            let as_of = edges["as_of"].as_u64().unwrap();
            let want = oracle_top(events, as_of, length, 1000);
            assert!(
                !want.is_empty() || window == "2s",
                "{context}: empty oracle"
            );
            assert_eq!(
                rows(&edges),
                want,
                "{context}: process {index}, window {window}, as of {as_of}"
            );
        }
    }
}

fn start_cluster(hosts: &Path, state: &Path, brokers: &str, http: u16) -> Supervisor {
    let child = flowsight()
        .args(["cluster", "start", "--max-restarts", "20", "--hostfile"])
        .arg(hosts)
        .args(["--workers", "1", "--source", "kafka", "--brokers", brokers])
        .args([
            "--topic",
            "flows",
            "--idle-timeout",
            "200ms",
            "--windows",
            "2s,30m",
        ])
        .arg("--state-dir")
        .arg(state)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start flowsight cluster start");
    Supervisor { child, http }
}

#[test]
fn kill_9_of_one_process_restarts_the_cluster_and_the_views_equal_the_oracle() {
    let events = common::generated(31, 4, 2_000, START, 40_000, 300);
    let max_ts = events.iter().map(|e| e.ts).max().unwrap();
    let tansu = Tansu::start();
    let brokers = tansu.brokers().to_string();
    tansu.create_topic("flows", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.jsonl");
    write_native(&path, &events);
    let hosts = hostfile(dir.path(), PROCESSES);
    let state = dir.path().join("state");
    let http = free_port_run(PROCESSES as u16);

    let mut supervisor = start_cluster(&hosts, &state, &brokers, http);
    wait_until_up(&mut supervisor);
    let producer = spawn_produce(
        &brokers,
        "flows",
        &["--path", path.to_str().unwrap(), "--rate", "1500"],
    );
    // Kill a different process at several points while the producer writes, each time
    // once the cluster has come back and read more.
    let mut kills = Vec::new();
    for round in 0..4 {
        let victim = round % PROCESSES;
        std::thread::sleep(Duration::from_millis(500 + 300 * round as u64));
        let before = status(http, (victim + 1) % PROCESSES).map(|s| s["records"].clone());
        let pid = process_pid(supervisor.child.id(), victim)
            .unwrap_or_else(|| panic!("process {victim} is not running"));
        let killed = Instant::now();
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        // The supervisor replaces it: a new pid, and every process answers again.
        let deadline = Instant::now() + TIMEOUT;
        while process_pid(supervisor.child.id(), victim).is_none_or(|p| p == pid) {
            assert!(
                Instant::now() < deadline,
                "process {victim} was not restarted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_until_up(&mut supervisor);
        eprintln!(
            "kill -9 of process {victim} (records before: {before:?}): serving again after {:?}",
            killed.elapsed()
        );
        kills.push(killed.elapsed());
    }
    finish_produce(producer);

    wait_until_complete(&mut supervisor, events.len() as u64, max_ts);
    check_views(http, &events, "after four kills");
    // /v1/status names each process with its workers and the partitions they read.
    let cluster = status(http, 2).expect("process 2 answers");
    let by_process = cluster["by_process"].as_array().expect("by_process");
    assert_eq!(by_process.len(), PROCESSES, "{cluster}");
    let mut partitions = 0;
    for (index, process) in by_process.iter().enumerate() {
        assert_eq!(process["process"], index, "{cluster}");
        assert_eq!(process["workers"], serde_json::json!([index]), "{cluster}");
        partitions += process["partitions"].as_array().unwrap().len();
    }
    assert_eq!(partitions, PARTITIONS as usize, "{cluster}");
    // `cluster status` shows every process up and the partitions, finding the cluster
    // through its host file and --http, or through the state directory alone.
    let by_hostfile = flowsight()
        .args(["cluster", "status", "--hostfile"])
        .arg(&hosts)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .output()
        .unwrap();
    let by_state_dir = flowsight()
        .args(["cluster", "status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    for output in [by_hostfile, by_state_dir] {
        let table = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{table}");
        assert_eq!(table.matches(" up").count(), PROCESSES, "{table}");
        assert_eq!(
            table.matches("flows/").count(),
            PARTITIONS as usize,
            "{table}"
        );
    }

    // `cluster stop`: every process checkpoints and exits 0, and so does the supervisor.
    let stopped = flowsight()
        .args(["cluster", "stop", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let exit = supervisor.child.wait().unwrap();
    assert!(exit.success(), "the supervisor exited with {exit}");
    for index in 0..PROCESSES {
        assert!(
            state
                .join(format!("process-{index}"))
                .join(format!("checkpoint-{index}.json"))
                .exists(),
            "process {index} left no checkpoint"
        );
    }

    // Started again, the cluster resumes from those checkpoints: the same views, nothing
    // counted twice.
    let mut supervisor = start_cluster(&hosts, &state, &brokers, http);
    wait_until_complete(&mut supervisor, events.len() as u64, max_ts);
    check_views(http, &events, "after cluster stop and start");
}

fn run_output(args: &[&str]) -> (Option<i32>, String) {
    let output = flowsight()
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_setup_is_refused_with_a_message_that_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hostfile(dir.path(), 2);
    let hosts_arg = hosts.to_str().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();

    // A process index the host file does not have.
    let (code, stderr) = run_output(&[
        "--hostfile",
        hosts_arg,
        "--process",
        "2",
        "--state-dir",
        state_arg,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("process index 2 is out of range: the host file lists 2 processes"),
        "{stderr}"
    );

    // The process's own cluster address already taken.
    let text = std::fs::read_to_string(&hosts).unwrap();
    let own = text.lines().next().unwrap().to_string();
    let _taken = std::net::TcpListener::bind(own.as_str()).unwrap();
    // Process 0 of the host file, serving HTTP at `http`.
    let process_0 = |http: &str| {
        run_output(&[
            "--hostfile",
            hosts_arg,
            "--process",
            "0",
            "--state-dir",
            state_arg,
            "--http",
            http,
        ])
    };
    let (code, stderr) = process_0(&format!("127.0.0.1:{}", free_port()));
    assert_eq!(
        code,
        Some(2),
        "a refused set-up exits as a usage error: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot listen on {own}, the address of process 0 in the host file"
        )),
        "{stderr}"
    );
    // `cluster start` refuses the same set-up once, with its reason, and restarts nothing.
    let started = Instant::now();
    let output = flowsight()
        .args(["cluster", "start", "--hostfile", hosts_arg, "--state-dir"])
        .arg(dir.path().join("refused"))
        .args(["--http", &format!("127.0.0.1:{}", free_port_run(2))])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {own}, the address of process 0 in the host file"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("restarting"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    drop(_taken);

    // The HTTP port already taken.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let (code, stderr) = process_0(&busy_addr);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {busy_addr}")),
        "{stderr}"
    );

    // Two processes whose host files list the same number of processes at different
    // addresses: the start-up check names the difference and both stop.
    let other = dir.path().join("other-hosts.txt");
    let lines: Vec<&str> = text.lines().collect();
    let second_port = lines[1].rsplit_once(':').unwrap().1;
    std::fs::write(&other, format!("{}\nlocalhost:{second_port}\n", lines[0])).unwrap();
    let spawn = |hosts: &Path, index: usize, state: &Path| {
        flowsight()
            .arg("run")
            .arg("--hostfile")
            .arg(hosts)
            .args(["--process", &index.to_string(), "--state-dir"])
            .arg(state)
            .args(["--http", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&hosts, 0, &dir.path().join("s0"));
    let second = spawn(&other, 1, &dir.path().join("s1"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut outputs = Vec::new();
    for child in [first, second] {
        let mut child = child;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a process with a different host file kept running"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = child.wait_with_output().unwrap();
        outputs.push((
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let all: String = outputs.iter().map(|(_, e)| e.as_str()).collect();
    assert!(
        outputs.iter().all(|(status, _)| !status.success()),
        "{outputs:?}"
    );
    assert!(
        all.contains("needs the same options") && all.contains("\"hosts\""),
        "{all}"
    );
}
