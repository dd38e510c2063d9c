//! A first end-to-end check of the query plane on one worker: records enter, a query is
//! read at several times, and a record leaves its 5 s window; an equal query shares its
//! family, and a family dropped is fed no more.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use flowsight_events::{Event, Proto, Status};
use flowsight_operators::TimeModel;
use flowsight_queries::plan::Plan;
use flowsight_queries::registered::merge_parts;
use flowsight_queries::registered::plane::{
    read_part, render_plane, Catalog, PlaneChange, PlaneTraces, QueryReader,
};
use flowsight_queries::Windows;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

fn event(ts: u64, src: &str, dst: &str, port: u16, bytes: u64) -> Event {
    Event {
        ts,
        src_ip: src.parse::<IpAddr>().unwrap(),
        dst_ip: dst.parse::<IpAddr>().unwrap(),
        src_port: 40_000,
        dst_port: port,
        proto: Proto::Tcp,
        bytes_out: bytes,
        bytes_in: 0,
        packets: 1,
        duration_ms: None,
        status: Status::Established,
    }
}

/// The records' and the changes' inputs of a plane over `windows` on one worker, its
/// arrangements and a probe of its progress.
#[allow(clippy::type_complexity)]
fn plane(
    worker: &mut timely::worker::Worker,
    windows: &Windows,
) -> (
    InputHandle<u64, CapacityContainerBuilder<Vec<Event>>>,
    InputHandle<u64, CapacityContainerBuilder<Vec<PlaneChange>>>,
    PlaneTraces,
    ProbeHandle<u64>,
) {
    let probe = ProbeHandle::new();
    let schedules = windows
        .iter()
        .map(|w| (w.length, windows.schedule_of(w.length)))
        .collect();
    let (input, changes, traces) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, events) = scope.new_input::<Vec<Event>>();
        let (changes_input, changes) = scope.new_input::<Vec<PlaneChange>>();
        let rendered = render_plane(events, changes, schedules);
        rendered.progress.probe_with(&probe);
        (input, changes_input, rendered.traces)
    });
    (input, changes, traces, probe)
}

#[test]
fn a_grouped_top_k_query_follows_its_window() {
    let time = TimeModel::new(1_000).unwrap();
    let windows = Windows::parse("5s,20s", &time).unwrap();
    let plan: Plan = serde_json::from_str(
        r#"{"from": "flows_5s",
            "select": [{"column": "src_ip"}, {"aggregate": "count_star", "as": "conns"},
                       {"aggregate": {"sum": "bytes_out"}, "as": "bytes"}],
            "where": {"compare": {"left": {"ref": "dst_port"}, "op": "eq", "right": {"literal": 22}}},
            "group_by": ["src_ip"],
            "order_by": [{"term": {"aggregate": "count_star"}, "descending": true}],
            "limit": 1}"#,
    )
    .unwrap();
    let plan = plan.validate(&windows).unwrap();
    let results = timely::execute_directly(move |worker| {
        let (mut input, mut changes, mut traces, probe) = plane(worker, &windows);
        let mut catalog = Catalog::default();
        let (member, change) = catalog.join(&plan, 0).unwrap();
        changes.send(change.expect("the first query starts a family"));
        // The same query again: the same family, nothing new to feed.
        let (twin, none) = catalog.join(&plan, 0).unwrap();
        assert_eq!((&twin, none.is_none()), (&member, true));
        let reader = QueryReader::new(&plan, member.clone()).unwrap();
        input.send(event(500, "10.0.0.1", "10.0.0.9", 22, 10));
        input.send(event(700, "10.0.0.2", "10.0.0.9", 22, 20));
        input.send(event(2_100, "10.0.0.2", "10.0.0.8", 22, 30));
        input.send(event(2_200, "10.0.0.2", "10.0.0.8", 80, 40));
        // At 6 s the record of 0.5 s has left the 5 s window (it covers [1 s, 6 s)).
        let mut out = Vec::new();
        for at in [3_000u64, 6_000, 8_000] {
            // Reading at `at` needs every update at times up to `at` in.
            input.advance_to(at + 1_000);
            changes.advance_to(at + 1_000);
            while probe.less_than(&(at + 1)) {
                worker.step();
            }
            let window = traces.get_mut(&plan.window).unwrap();
            let part = read_part(window, &reader, at, 100);
            out.push(merge_parts(&plan, vec![part], 100));
        }
        // Both queries dropped: the family is fed no more, records placed from then on
        // do not count (what it holds leaves with its window).
        assert!(catalog.leave(&member).is_none(), "its twin still runs");
        changes.send(
            catalog
                .leave(&twin)
                .expect("the last query ends the family"),
        );
        input.send(event(9_100, "10.0.0.3", "10.0.0.9", 22, 10));
        input.advance_to(11_000);
        changes.advance_to(11_000);
        while probe.less_than(&10_001) {
            worker.step();
        }
        let window = traces.get_mut(&plan.window).unwrap();
        out.push(merge_parts(
            &plan,
            vec![read_part(window, &reader, 10_000, 100)],
            100,
        ));
        out
    });
    let rows: Vec<String> = results
        .iter()
        .map(|r| serde_json::to_string(&r.rows).unwrap())
        .collect();
    assert_eq!(rows[0], r#"[["10.0.0.2",2,50]]"#);
    assert_eq!(rows[1], r#"[["10.0.0.2",1,30]]"#);
    assert_eq!(rows[2], r#"[]"#);
    assert_eq!(
        rows[3], r#"[]"#,
        "a dropped family counts no record placed after"
    );
}

/// A family added before any record but counting from a later time — a query a previous
/// run registered, rebuilt before the replay — counts only the records placed from then on.
#[test]
fn a_family_counts_the_records_placed_from_its_registration() {
    let time = TimeModel::new(1_000).unwrap();
    let windows = Windows::parse("10s", &time).unwrap();
    let plan: Plan = serde_json::from_str(
        r#"{"from": "flows_10s", "select": [{"aggregate": "count_star", "as": "n"}]}"#,
    )
    .unwrap();
    let plan = plan.validate(&windows).unwrap();
    let counts = timely::execute_directly(move |worker| {
        let (mut input, mut changes, mut traces, probe) = plane(worker, &windows);
        let mut catalog = Catalog::default();
        let (member, change) = catalog.join(&plan, 2_000).unwrap();
        changes.send(change.unwrap());
        let reader = QueryReader::new(&plan, member).unwrap();
        input.send(event(500, "10.0.0.1", "10.0.0.9", 22, 10));
        input.advance_to(2_000);
        input.send(event(2_500, "10.0.0.2", "10.0.0.9", 22, 10));
        input.send(event(2_600, "10.0.0.3", "10.0.0.9", 22, 10));
        input.advance_to(4_000);
        changes.advance_to(4_000);
        while probe.less_than(&3_001) {
            worker.step();
        }
        let window = traces.get_mut(&plan.window).unwrap();
        merge_parts(&plan, vec![read_part(window, &reader, 3_000, 10)], 10)
    });
    assert_eq!(serde_json::to_string(&counts.rows).unwrap(), "[[2]]");
}
