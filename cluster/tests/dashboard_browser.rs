//! The dashboard in a real headless browser: `flowsight run` (the generator) serves it, and
//! `cluster/tests/browser/dashboard.mjs` drives Debian's Chromium with playwright-core.
//! The page must load without a console error, a page error, a failed request or an error
//! response, fill the risk table from its subscription, switch the window to 2h (a new
//! `window=2h` subscription, rows again) and render a screenshot that is not blank. The
//! screenshot is kept as `target/dashboard-screenshot.png`.
//!
//! Node, Chromium and the dashboard's node packages are required, not optional: without
//! them the test fails and says to run `scripts/setup.sh`.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, try_get, Flowsight};
use serde_json::Value;

const SETUP_HINT: &str = "run scripts/setup.sh (it installs chromium, nodejs, npm and the \
                          dashboard's node packages)";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Node, Chromium and playwright-core are there, or the test fails loudly.
fn require_tools() -> PathBuf {
    let node = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match node {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): {}; {SETUP_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("node is not installed ({e}); {SETUP_HINT}"),
    }
    let chromium = PathBuf::from(
        std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string()),
    );
    assert!(
        chromium.is_file(),
        "Chromium is not installed at {}; {SETUP_HINT}",
        chromium.display()
    );
    let playwright = manifest_dir().join("dashboard/node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "playwright-core is not installed ({} is missing); {SETUP_HINT}",
        playwright.display()
    );
    chromium
}

/// Waits until `/health` says ready.
fn wait_ready(fs: &mut Flowsight, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = fs.child.try_wait() {
            panic!("flowsight exited early with {status}");
        }
        if let Some((200, health)) = try_get(&format!("{}/health", fs.base)) {
            if health["ready"] == true {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "flowsight was not ready within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the browser script; its stdout, stderr and exit status, killed after `timeout`.
fn run_browser(url: &str, screenshot: &Path, chromium: &Path, timeout: Duration) -> Value {
    let script = manifest_dir().join("tests/browser/dashboard.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .args(["--url", url, "--screenshot"])
        .arg(screenshot)
        .env("CHROMIUM", chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node: {e}; {SETUP_HINT}"));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the browser script did not finish within {timeout:?}; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "the browser script failed ({status}); {SETUP_HINT} if something is missing.\n\
         stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report from the browser script:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("a bad report ({e}): {line}"))
}

/// Width, height and how far the picture is from blank: the share of pixels that differ
/// from the most common colour, and the number of distinct colours.
fn picture_stats(path: &Path) -> (u32, u32, f64, usize) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane PNG size")];
    let info = reader.next_frame(&mut buf).expect("the screenshot decodes");
    let samples = info.color_type.samples();
    let mut colours: HashMap<&[u8], u64> = HashMap::new();
    for row in buf[..info.buffer_size()].chunks(info.line_size) {
        for pixel in row[..info.width as usize * samples].chunks(samples) {
            *colours.entry(pixel).or_default() += 1;
        }
    }
    let total = u64::from(info.width) * u64::from(info.height);
    let most = colours.values().copied().max().unwrap_or(0);
    let differ = (total - most) as f64 / total.max(1) as f64;
    (info.width, info.height, differ, colours.len())
}

fn strings(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("the report has no {key}: {report}"))
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect()
}

#[test]
fn dashboard_loads_fills_the_risk_table_and_switches_windows_in_chromium() {
    let chromium = require_tools();
    let started = Instant::now();
    let port = free_port();
    let mut fs = Flowsight::run(&[], port);
    wait_ready(&mut fs, Duration::from_secs(60));

    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("dashboard.png");
    let url = format!("{}/", fs.base);
    let report = run_browser(&url, &screenshot, &chromium, Duration::from_secs(300));

    // Keep the picture for humans, whatever the verdict.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("dashboard-screenshot.png");
    if screenshot.is_file() {
        std::fs::copy(&screenshot, &kept)
            .unwrap_or_else(|e| panic!("cannot copy the screenshot to {}: {e}", kept.display()));
    }

    if let Ok(Some(status)) = fs.child.try_wait() {
        panic!("flowsight exited while the browser was on the page: {status}\n{report}");
    }

    let mut problems = Vec::new();
    for key in [
        "console_errors",
        "page_errors",
        "failed_requests",
        "bad_responses",
        "steps_failed",
    ] {
        for item in strings(&report, key) {
            problems.push(format!("{key}: {item}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the page misbehaved:\n  {}\nfull report: {report}",
        problems.join("\n  ")
    );

    let rows = report["risk_rows"].as_u64().unwrap_or(0);
    assert!(rows > 0, "the risk table stayed empty: {report}");
    // One view per stream (`/v1/subscribe/risks?window=2h…`) or several on one
    // (`/v1/subscribe?r=risks%3Fwindow%3D2h…`): read it decoded.
    let switch = report["switch_request"].as_str().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(switch).decode_utf8_lossy();
    assert!(
        decoded.contains("/v1/subscribe")
            && decoded.contains("risks")
            && decoded.contains("window=2h"),
        "clicking 2h did not subscribe to the 2h risks (got {switch:?}); every \
         subscription: {:?}",
        strings(&report, "requests")
    );
    let after = report["risk_rows_after_switch"].as_u64().unwrap_or(0);
    assert!(
        after > 0,
        "the risk table was empty after the switch: {report}"
    );

    let (width, height, differ, colours) = picture_stats(&screenshot);
    let seen = format!(
        "{width}×{height}, {:.1}% of pixels differ from the most common colour, {colours} \
         colours (see {})",
        differ * 100.0,
        kept.display()
    );
    assert!(width >= 1000, "the screenshot is too narrow: {seen}");
    assert!(
        differ >= 0.02 && colours >= 16,
        "the screenshot looks blank: {seen}"
    );
    eprintln!(
        "dashboard: {rows} risk rows, {after} after switching to 2h; screenshot {seen}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
