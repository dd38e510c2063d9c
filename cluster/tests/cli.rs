//! Invalid command lines get a clear message and exit code 2.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `flowsight run <args>`; one that does not exit on its own within a few seconds
/// (it accepted the options and started) is killed and reported as `None`.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .arg("run")
        .args(args)
        .args(["--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (code, stderr)
}

#[test]
fn invalid_options_exit_with_code_2_and_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (&["--tick", "0"], "tick must be at least 1 ms"),
        (&["--tick", "soon"], "--tick"),
        (&["--windows", "30x"], "unit"),
        (
            &["--windows", "1500ms", "--tick", "1s"],
            "not a positive multiple of the tick",
        ),
        (&["--windows", "60m,1h"], "same length"),
        (&["--workers", "0"], "--workers must be at least 1"),
        (&["--workers", "many"], "--workers"),
        (&["--source", "file"], "needs --path"),
        (&["--source", "kafkaesque"], "--source"),
        (
            &["--source", "file", "--path", "/definitely/not/here.jsonl"],
            "cannot open",
        ),
        (&["--path", "x.jsonl"], "--path is only for --source file"),
        (&["--format", "xml"], "--format"),
        (&["--process", "0"], "--hostfile"),
        (&["--rate", "0"], "--rate must be at least 1"),
        (&["--bogus"], "unexpected argument"),
    ];
    for (args, message) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
    }
}

#[test]
fn a_bad_host_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "localhost:2101\nnot an address\n").unwrap();
    let (code, stderr) = run(&["--hostfile", hosts.to_str().unwrap(), "--process", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    std::fs::write(&hosts, "localhost:2101\n").unwrap();
    let (code, stderr) = run(&["--hostfile", hosts.to_str().unwrap(), "--process", "3"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("out of range"), "{stderr}");
}

/// Regressions of a new user's first hour: the help named a document outside the
/// repository, `--kafka-option` had no environment variable, the version said nothing of
/// the build, and logs written to a file carried terminal colour codes.
#[test]
fn help_version_environment_and_logs_read_well() {
    let output = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowsight"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let help = output(&["run", "--help"]);
    assert!(!help.contains("DESIGN"), "{help}");
    assert!(help.contains("FLOWSIGHT_KAFKA_OPTIONS"), "{help}");
    let version = output(&["--version"]);
    assert!(version.starts_with("flowsight 0."), "{version}");
    assert!(version.contains("(commit "), "{version}");

    // Options from the environment are checked like those on the command line.
    let child = Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .args([
            "run",
            "--source",
            "kafka",
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "t",
        ])
        .env("FLOWSIGHT_KAFKA_OPTIONS", "client.id=me\ngroup.id=mine")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert_eq!(child.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--kafka-option group.id cannot be set"),
        "{stderr}"
    );

    // Logs to a pipe (a file, a journal) are plain text.
    let (code, stderr) = run(&["--rate", "100"]);
    assert_eq!(code, None, "it runs: {stderr}");
    assert!(stderr.contains("serving the HTTP API"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a log: {stderr:?}"
    );
}
