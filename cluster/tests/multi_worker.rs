//! One worker, two workers, and two processes started from a host file on localhost give
//! the same answers, equal to the oracle's.

mod common;

use std::time::Duration;

use common::{free_port, oracle_top, rows, Flowscope};
use flowscope_events::Event;
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
        "3s,30m,2h",
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
fn answers(fs: &Flowscope) -> Vec<Value> {
    let mut out = Vec::new();
    for window in ["3s", "30m", "2h"] {
        let (code, edges) = fs.get(&format!("/v1/graph/edges?window={window}&limit=50"));
        assert_eq!(code, 200, "{edges}");
        out.push(edges);
        let (code, host) = fs.get(&format!("/v1/graph/hosts/10.0.0.53?window={window}"));
        assert_eq!(code, 200, "{host}");
        out.push(host);
    }
    out
}

fn check_against_oracle(answers: &[Value], events: &[Event]) {
    for (answer, length) in answers
        .iter()
        .step_by(2)
        .zip([3_000u64, 1_800_000, 7_200_000])
    {
        let as_of = answer["as_of"].as_u64().unwrap();
        assert_eq!(
            rows(answer),
            oracle_top(events, as_of, length, 50),
            "window of {length} ms"
        );
    }
}

#[test]
fn one_worker_two_workers_and_two_processes_agree_with_the_oracle() {
    let events = generated();
    let args = generator_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut one = Flowscope::run(&[&args[..], &["--workers", "1"]].concat(), free_port());
    let status = one.wait_until_complete(COUNT, Duration::from_secs(120));
    assert_eq!(status["workers"], 1);
    let single = answers(&one);
    check_against_oracle(&single, &events);
    drop(one);

    let mut two = Flowscope::run(&[&args[..], &["--workers", "2"]].concat(), free_port());
    two.wait_until_complete(COUNT, Duration::from_secs(120));
    assert_eq!(answers(&two), single, "two workers differ from one");
    drop(two);

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
    let mut processes: Vec<Flowscope> = (0..2)
        .map(|i| {
            let index = i.to_string();
            Flowscope::run(
                &[
                    &args[..],
                    &[
                        "--workers",
                        "2",
                        "--hostfile",
                        hostfile,
                        "--process",
                        &index,
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
    }
    // Either process answers, gathering every worker's part through the dataflow.
    for p in &processes {
        assert_eq!(
            answers(p),
            single,
            "a two-process cluster differs from one worker"
        );
    }
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
    let hostfile = dir.path().join("hosts.txt");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let hostfile = hostfile.to_str().unwrap().to_string();
    let children: Vec<_> = [("0", "30m,2h"), ("1", "30m,24h")]
        .into_iter()
        .map(|(process, windows)| {
            std::process::Command::new(env!("CARGO_BIN_EXE_flowscope"))
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
