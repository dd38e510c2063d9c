//! Sources wait for the views (docs/design.md §3): a generator at full speed never reads
//! more than `--max-ahead` of event time past the views' frontier, it does wait for them,
//! and what the views answer at the end is still exact.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{free_port, oracle_top, rows, Flowsight};

const START: u64 = 1_750_000_000_000;
const COUNT: u64 = 600_000;
const RATE: u64 = 20_000;
const MAX_AHEAD_MS: u64 = 2_000;
/// How far past `--max-ahead` a source's frontier may still be: a chunk of 4,096 records
/// read before the next check (0.4 s of event time per partition here), and a partition
/// held back by a slower one may read up to 16,384 records (1.6 s) past the horizon —
/// `--max-ahead` plus the lateness (1 s) and a tick — before it waits too.
const SLACK_MS: u64 = 5_000;

#[test]
fn a_fast_source_stays_within_max_ahead_of_the_views_and_the_views_stay_exact() {
    let state = tempfile::tempdir().unwrap();
    let count = COUNT.to_string();
    let start = START.to_string();
    let rate = RATE.to_string();
    let args = [
        "--pace",
        "fast",
        "--seed",
        "5",
        "--rate",
        &rate,
        "--partitions",
        "2",
        "--hosts",
        "300",
        "--count",
        &count,
        "--start-ms",
        &start,
        "--workers",
        "2",
        "--idle-timeout",
        "200ms",
        "--lateness",
        "1s",
        "--max-ahead",
        "2s",
        // At the tick, so that first and last seen times are exact records' (panes have
        // their own oracle tests).
        "--windows",
        "30m,2h,24h",
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    let mut fs = Flowsight::run(&args, free_port());

    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut samples, mut waiting, mut most_ahead) = (0u64, 0u64, 0u64);
    loop {
        assert!(Instant::now() < deadline, "the run did not finish");
        let Some((200, status)) = common::try_get(&format!("{}/v1/status", fs.base)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        samples += 1;
        // Once everything is read the partitions turn idle and the frontier moves past the
        // last record without reading anything: no longer a distance read ahead.
        if status["records"].as_u64() == Some(COUNT) {
            break;
        }
        if let Some(ahead) = status["source_ahead"].as_u64() {
            // Before the views have a frontier the source's first jump is no distance.
            if status["frontier"].as_u64().is_some_and(|f| f > START) {
                most_ahead = most_ahead.max(ahead);
                assert!(
                    ahead <= MAX_AHEAD_MS + SLACK_MS,
                    "the source read {ahead} ms past the views: {status}"
                );
            }
        }
        // Waiting for the views' first frontier is no test of the distance.
        let views_started = status["frontier"].as_u64().is_some_and(|f| f > START);
        if views_started && status["waiting_for_views"] == true {
            waiting += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        waiting > 0,
        "in {samples} samples the source never waited for the views: nothing was tested \
         (most ahead: {most_ahead} ms)"
    );

    // Waiting changed when records were read, not what the views hold.
    let status = fs.wait_until_complete(COUNT, Duration::from_secs(120));
    let as_of = status["as_of"].as_u64().unwrap();
    let (code, answer) = fs.get("/v1/graph/edges?window=2h&limit=100");
    assert_eq!(code, 200, "{answer}");
    let answered_as_of = answer["as_of"].as_u64().unwrap();
    assert!(answered_as_of >= as_of);
    let events = common::generated(5, 2, RATE, START, COUNT, 300);
    assert_eq!(
        rows(&answer),
        oracle_top(&events, answered_as_of, 7_200_000, 100)
    );
}
