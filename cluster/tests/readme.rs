//! The README's tour runs as written: against `flowsight run` with the embedded generator,
//! every `curl` and `flowsight query` command of the README that talks to the default
//! address (127.0.0.1:8080) is run in order, each must succeed, a `| jq '.field…'` after a
//! command must find its field, and every query the README registers must show rows. A
//! renamed route, field or flag then breaks this test rather than the reader's first hour.
//! (Every `flowsight` command of the docs is also parsed by the CLI, in the binary's unit
//! tests.)

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/doc_commands.rs"]
mod doc_commands;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, try_get, Flowsight};
use doc_commands::{commands, workspace_root, DocCommand};
use serde_json::Value;

const DEFAULT_ADDRESSES: [&str; 2] = ["localhost:8080", "127.0.0.1:8080"];

/// Whether the command talks to the README's default server.
fn to_default_server(words: &[String]) -> bool {
    words
        .iter()
        .any(|w| DEFAULT_ADDRESSES.iter().any(|a| w.contains(a)))
}

/// A `curl` command's request.
struct Curl {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    stream: bool,
}

fn parse_curl(command: &DocCommand, port: u16) -> Curl {
    let mut curl = Curl {
        method: "GET".into(),
        url: String::new(),
        headers: Vec::new(),
        body: None,
        stream: false,
    };
    let mut words = command.program_and_args()[1..].iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-X" | "--request" => curl.method = words.next().expect("-X METHOD").clone(),
            "-H" | "--header" => {
                let header = words.next().expect("-H HEADER");
                let (name, value) = header.split_once(':').expect("a header is name: value");
                curl.headers.push((name.trim().into(), value.trim().into()));
            }
            "-d" | "--data" | "--data-raw" => {
                curl.body = Some(words.next().expect("-d BODY").clone());
                if curl.method == "GET" {
                    curl.method = "POST".into();
                }
            }
            "-N" | "--no-buffer" => curl.stream = true,
            "-s" | "-S" | "-sS" | "--silent" | "-f" | "--fail" | "-i" => {}
            url if !url.starts_with('-') => curl.url = url.to_string(),
            other => panic!(
                "{}: curl option {other} is not understood by this test",
                command.place()
            ),
        }
    }
    let mut url = curl.url.clone();
    for address in DEFAULT_ADDRESSES {
        url = url.replace(address, &format!("127.0.0.1:{port}"));
    }
    if !url.starts_with("http") {
        url = format!("http://{url}");
    }
    curl.url = url;
    curl
}

/// The field a `jq '.field…'` stage reads first, if any.
fn jq_field(command: &DocCommand) -> Option<String> {
    let stage = command
        .piped
        .iter()
        .find(|s| s.first().is_some_and(|p| p == "jq"))?;
    let filter = stage.iter().skip(1).find(|w| !w.starts_with('-'))?;
    let field: String = filter
        .trim_start_matches('.')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(field).filter(|f| !f.is_empty())
}

fn run_curl(command: &DocCommand, port: u16) {
    let curl = parse_curl(command, port);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(if curl.stream { 15 } else { 30 }))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(curl.method.as_bytes()).unwrap();
    let mut request = client.request(method, &curl.url);
    for (name, value) in &curl.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &curl.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{}: {} failed: {e}", command.place(), curl.url));
    let status = response.status();
    assert!(
        status.is_success(),
        "{}: {} answered {status}: {}",
        command.place(),
        curl.url,
        response.text().unwrap_or_default()
    );
    if curl.stream {
        // A subscription: its first event is a snapshot.
        let mut lines = BufReader::new(response).lines();
        let first = lines
            .find(|l| l.as_ref().map_or(true, |l| l.starts_with("event:")))
            .expect("the stream ended before its first event")
            .expect("the stream could be read");
        let event = first.trim_start_matches("event:").trim();
        assert_eq!(event, "snapshot", "{}", command.place());
        return;
    }
    let text = response.text().unwrap();
    if let Some(field) = jq_field(command) {
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", command.place()));
        assert!(
            body.get(&field).is_some(),
            "{}: the answer has no field {field:?} for jq: {text}",
            command.place()
        );
    }
}

fn run_flowsight(command: &DocCommand, port: u16) {
    let args = &command.program_and_args()[1..];
    let output = Command::new(env!("CARGO_BIN_EXE_flowsight"))
        .args(args)
        .env("FLOWSIGHT_URL", format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run flowsight");
    assert!(
        output.status.success(),
        "{}: flowsight {} failed: {}{}",
        command.place(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_readme_tour_runs_as_written() {
    let readme = workspace_root().join("README.md");
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let mut server = Flowsight::run(
        &[
            "--workers",
            "2",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
        port,
    );
    // The views answer once the allowed lateness has passed (5 s of event time).
    let deadline = Instant::now() + Duration::from_secs(60);
    while try_get(&format!("{}/health", server.base)).map(|(code, _)| code) != Some(200) {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("flowsight exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "flowsight was not ready within a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut ran = 0;
    let mut registered = Vec::new();
    for command in commands(&readme) {
        let words = command.program_and_args();
        match words.first().map(String::as_str) {
            Some("curl") if to_default_server(words) => run_curl(&command, port),
            Some(program)
                if program.ends_with("flowsight")
                    && words.get(1).map(String::as_str) == Some("query") =>
            {
                if words.get(2).map(String::as_str) == Some("register") {
                    registered.push(words[3].clone());
                }
                run_flowsight(&command, port);
            }
            _ => continue,
        }
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} README commands ran");
    assert!(!registered.is_empty(), "the README registers no query");

    // A first query shows something on the generator's traffic.
    for name in registered {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/v1/queries/{name}/results", server.base);
            if let Some((200, body)) = try_get(&url) {
                if body["rows"].as_array().is_some_and(|rows| !rows.is_empty()) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the README's query {name} shows no row within a minute"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
