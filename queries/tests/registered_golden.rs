//! The golden files of registered queries.
//!
//! - `golden/valid.txt`: queries over the fixed records of `golden/records.jsonl`, each
//!   with its expected output at `AS_OF` (the column names, then one row per line). Every
//!   query is run by the dataflow registered before the records arrive, on 2 workers, and
//!   by the batch oracle: both must print exactly the expected rows. Registered late (in
//!   the middle of the stream), it counts the records placed from then on only: it must
//!   print what the oracle prints over those records.
//! - `golden/invalid.txt`: queries that must be refused, each with the error code and
//!   message the user gets.
//!
//! The expected sections were reviewed by hand and checked against SQLite (see
//! `golden/README.md`). After a deliberate change of behaviour, rewrite them with
//! `FLOWSIGHT_BLESS=1 cargo test -p flowsight-queries --test registered_golden` and review
//! the diff.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "registered/harness.rs"]
mod harness;
#[path = "registered/oracle.rs"]
mod oracle;

use std::path::PathBuf;

use flowsight_events::Event;
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::plan::{ValidPlan, Value};
use flowsight_queries::{sql, WindowSpec, Windows};

use common::{Phase, Script};

/// The read point of every golden query: 2026-01-01T00:00:00Z.
const AS_OF: Millis = 1_767_225_600_000;
const TICK: Millis = 1_000;
const MINUTE: Millis = 60_000;
/// The deployment's default windows.
const WINDOWS: [(&str, Millis); 3] = [
    ("30m", 30 * MINUTE),
    ("2h", 120 * MINUTE),
    ("24h", 1_440 * MINUTE),
];
/// Where the first phase of the stream stops; the late queries are registered there.
const SPLIT: Millis = AS_OF - 20 * MINUTE;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn blessing() -> bool {
    std::env::var_os("FLOWSIGHT_BLESS").is_some_and(|v| v != "0")
}

fn windows() -> Windows {
    let specs = WINDOWS
        .iter()
        .map(|&(name, length)| WindowSpec {
            name: name.to_string(),
            length,
            pane: None,
        })
        .collect();
    Windows::new(specs, &TimeModel::new(TICK).unwrap()).unwrap()
}

fn records() -> Vec<Event> {
    let text = std::fs::read_to_string(golden("records.jsonl")).expect("golden records");
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("records.jsonl line {}: {e}", i + 1))
        })
        .collect()
}

/// One entry of a golden file: `# name` (and an optional description after a colon), the
/// query on the following lines, `----`, then the expected output up to the next `#`.
#[derive(Clone, Debug)]
struct Entry {
    header: String,
    sql: String,
    expected: String,
}

impl Entry {
    fn name(&self) -> &str {
        self.header.split(':').next().unwrap_or("").trim()
    }
}

fn parse_golden(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut lines = text.lines().peekable();
    // Leading comment lines (`;;`) describe the file.
    while lines
        .peek()
        .is_some_and(|l| l.starts_with(";;") || l.trim().is_empty())
    {
        lines.next();
    }
    while let Some(line) = lines.next() {
        let header = line
            .strip_prefix("# ")
            .unwrap_or_else(|| panic!("expected a `# name` line, got {line:?}"))
            .to_string();
        let mut sql = Vec::new();
        let mut expected = Vec::new();
        let mut in_expected = false;
        while let Some(next) = lines.peek() {
            if next.starts_with("# ") {
                break;
            }
            let next = lines.next().unwrap();
            if next == "----" && !in_expected {
                in_expected = true;
            } else if in_expected {
                expected.push(next);
            } else {
                sql.push(next);
            }
        }
        while expected.last().is_some_and(|l| l.trim().is_empty()) {
            expected.pop();
        }
        entries.push(Entry {
            header,
            sql: sql.join("\n").trim().to_string(),
            expected: expected.join("\n"),
        });
    }
    entries
}

fn write_golden(name: &str, preamble: &str, entries: &[Entry]) {
    let mut out = String::from(preamble);
    for e in entries {
        out.push_str(&format!("# {}\n{}\n----\n", e.header, e.sql));
        if !e.expected.is_empty() {
            out.push_str(&e.expected);
            out.push('\n');
        }
        out.push('\n');
    }
    std::fs::write(golden(name), out.trim_end().to_string() + "\n").unwrap();
}

fn preamble(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with(";;") || l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Ip(ip) => ip.to_string(),
        Value::Text(t) => format!("'{t}'"),
    }
}

/// The printed form of a result: the column names, then a row per line.
fn render(plan: &ValidPlan, rows: &[Vec<Value>]) -> String {
    let mut lines = vec![plan.columns.join(" | ")];
    lines.extend(
        rows.iter()
            .map(|row| row.iter().map(show).collect::<Vec<_>>().join(" | ")),
    );
    lines.join("\n")
}

/// The records in two phases: those before `SPLIT`, then the rest (some of them late for
/// the frontier by then), and a read at `AS_OF`.
fn script(records: &[Event]) -> Script {
    let (early, rest): (Vec<Event>, Vec<Event>) =
        records.iter().cloned().partition(|e| e.ts < SPLIT);
    Script {
        tick: TICK,
        windows: WINDOWS.iter().map(|&(_, l)| l).collect(),
        panes: Vec::new(),
        phases: vec![
            Phase {
                events: early,
                advance_to: SPLIT,
                reads: Vec::new(),
            },
            Phase {
                events: rest,
                advance_to: AS_OF + TICK,
                reads: vec![AS_OF],
            },
        ],
        hosts: Vec::new(),
    }
}

#[test]
fn valid_queries_give_the_golden_results() {
    let text = std::fs::read_to_string(golden("valid.txt")).expect("golden queries");
    let mut entries = parse_golden(&text);
    assert!(
        entries.len() >= 40,
        "the golden suite has at least 40 queries"
    );
    let windows = windows();
    let (plans, refused): (Vec<_>, Vec<_>) = entries
        .iter()
        .map(|e| {
            sql::parse_and_validate(&e.sql, &windows)
                .map_err(|err| format!("{}: {} ({})", e.name(), err, err.code))
        })
        .partition(Result::is_ok);
    let refused: Vec<String> = refused.into_iter().filter_map(Result::err).collect();
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    let plans: Vec<ValidPlan> = plans.into_iter().filter_map(Result::ok).collect();
    let records = records();
    let script = script(&records);
    let arrived: Vec<&Event> = records.iter().collect();
    // A late query counts the records placed from its registration on.
    let registered = script.phases[0].advance_to;
    let entries_after: Vec<(Event, Millis)> = script.entries();
    let placed_after: Vec<&Event> = entries_after
        .iter()
        .filter(|(_, placed)| *placed >= registered)
        .map(|(e, _)| e)
        .collect();
    assert!(
        !placed_after.is_empty() && placed_after.len() < arrived.len(),
        "the late queries see part of the records"
    );

    let from_start = harness::run(&script, &plans, &vec![None; plans.len()], 2);
    let late = harness::run(&script, &plans, &vec![Some(0); plans.len()], 2);
    assert_eq!(from_start.len(), plans.len(), "one read of each query");
    assert_eq!(late.len(), plans.len(), "one read of each late query");

    let mut failures = Vec::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        let plan = &plans[i];
        let answer = from_start.iter().find(|a| a.query == i).unwrap();
        let late_answer = late.iter().find(|a| a.query == i).unwrap();
        assert_eq!(answer.as_of, AS_OF);
        let engine = render(plan, &answer.result.rows);
        let engine_late = render(plan, &late_answer.result.rows);
        let batch = render(plan, &oracle::evaluate(plan, &arrived, AS_OF));
        let batch_late = render(plan, &oracle::evaluate(plan, &placed_after, AS_OF));
        let total = answer.result.total as usize;
        if total != answer.result.rows.len() {
            failures.push(format!(
                "{}: total {total} but {} rows",
                entry.name(),
                answer.result.rows.len()
            ));
        }
        if blessing() {
            assert_eq!(
                engine,
                batch,
                "{}: dataflow and oracle disagree",
                entry.name()
            );
            entry.expected = engine.clone();
        }
        if engine_late != batch_late {
            failures.push(format!(
                "{} (late dataflow):\n{}\n  expected (the oracle over the records placed since):\n{}\n  got:\n{}",
                entry.name(),
                entry.sql,
                batch_late,
                engine_late
            ));
        }
        for (who, got) in [("dataflow", &engine), ("oracle", &batch)] {
            if *got != entry.expected {
                failures.push(format!(
                    "{} ({who}):\n{}\n  expected:\n{}\n  got:\n{}",
                    entry.name(),
                    entry.sql,
                    entry.expected,
                    got
                ));
            }
        }
    }
    if blessing() {
        write_golden("valid.txt", &preamble(&text), &entries);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_queries_give_the_golden_errors() {
    let text = std::fs::read_to_string(golden("invalid.txt")).expect("golden queries");
    let mut entries = parse_golden(&text);
    assert!(
        entries.len() >= 20,
        "the golden suite has at least 20 invalid queries"
    );
    let windows = windows();
    let mut failures = Vec::new();
    for entry in &mut entries {
        let got = match sql::parse_and_validate(&entry.sql, &windows) {
            Ok(_) => "accepted".to_string(),
            Err(err) => format!("{}: {}", err.code, err.message),
        };
        if blessing() {
            entry.expected = got.clone();
        }
        if got != entry.expected {
            failures.push(format!(
                "{}:\n{}\n  expected: {}\n  got:      {}",
                entry.name(),
                entry.sql,
                entry.expected,
                got
            ));
        }
    }
    if blessing() {
        write_golden("invalid.txt", &preamble(&text), &entries);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The golden records cover what the queries rely on: both windows' edges, records
/// outside every window, NULL durations, IPv6, every protocol.
#[test]
fn golden_records_cover_the_edges() {
    let records = records();
    let ts: Vec<Millis> = records.iter().map(|e| e.ts).collect();
    assert!(
        ts.contains(&(AS_OF - 30 * MINUTE)),
        "a record on the 30m edge"
    );
    assert!(
        ts.contains(&(AS_OF - 30 * MINUTE - 1)),
        "a record 1 ms outside 30m"
    );
    assert!(
        ts.contains(&(AS_OF - 1_440 * MINUTE)),
        "a record on the 24h edge"
    );
    assert!(
        ts.iter().any(|&t| t < AS_OF - 1_440 * MINUTE),
        "a record outside every window"
    );
    assert!(records.iter().any(|e| e.duration_ms.is_none()));
    assert!(records.iter().any(|e| e.src_ip.is_ipv6()));
    let protos: std::collections::BTreeSet<_> = records.iter().map(|e| e.proto).collect();
    assert_eq!(protos.len(), 4, "every protocol");
}
