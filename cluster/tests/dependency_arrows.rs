//! The workspace keeps the arrows of docs/design.md §1: `cluster → engine → {queries →
//! operators, connectors}`, with `events` the leaf every crate may use; operators and queries never
//! reach tokio, warp or rdkafka; and nothing depends on abomonation.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

#[test]
fn workspace_crates_depend_only_downwards() {
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))
    .unwrap();
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("flowsight-events", &[][..]),
        ("flowsight-operators", &["flowsight-events"][..]),
        (
            "flowsight-queries",
            &["flowsight-events", "flowsight-operators"][..],
        ),
        ("flowsight-connectors", &["flowsight-events"][..]),
        (
            "flowsight-engine",
            &[
                "flowsight-events",
                "flowsight-operators",
                "flowsight-queries",
                "flowsight-connectors",
            ][..],
        ),
    ]);
    let mut seen = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        seen.insert(name.to_string());
        let Some(allowed) = allowed.get(name) else {
            continue;
        };
        for dependency in package["dependencies"].as_array().unwrap() {
            let dep = dependency["name"].as_str().unwrap();
            let is_normal = dependency["kind"].is_null();
            if dep.starts_with("flowsight") && is_normal {
                assert!(allowed.contains(&dep), "{name} must not depend on {dep}");
            }
        }
    }
    for name in allowed.keys() {
        assert!(
            seen.contains(*name),
            "crate {name} is missing from the workspace"
        );
    }
}

#[test]
fn pure_crates_stay_free_of_io_runtimes() {
    for pure in ["flowsight-operators", "flowsight-queries"] {
        let tree = cargo(&[
            "tree",
            "--offline",
            "-p",
            pure,
            "-e",
            "normal",
            "--prefix",
            "none",
        ]);
        for forbidden in ["tokio ", "warp ", "rdkafka ", "hyper "] {
            assert!(!tree.contains(forbidden), "{pure} depends on {forbidden}");
        }
    }
}

#[test]
fn nothing_uses_abomonation() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    assert!(
        !lock.contains("name = \"abomonation"),
        "abomonation has a RustSec unsoundness advisory"
    );
}
