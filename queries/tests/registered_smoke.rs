//! A first end-to-end check of a registered query's dataflow on one worker: records enter,
//! the query is read at several times, and a record leaves its 5 s window.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use flowsight_events::{Event, Proto, Status};
use flowsight_operators::TimeModel;
use flowsight_queries::plan::Plan;
use flowsight_queries::registered::{merge_parts, read_part, render_query, render_tap};
use flowsight_queries::Windows;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::ProbeHandle;

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
        let probe = ProbeHandle::new();
        let (mut input, mut trace) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, events) = scope.new_input::<Vec<Event>>();
            let tap = render_tap(events, time.tick());
            let schedule = windows.schedule_of(plan.window);
            let rendered =
                render_query(tap.as_collection(|r, _| r.clone()), &plan, schedule, 0).unwrap();
            rendered.progress.probe_with(&probe);
            (input, rendered.trace)
        });
        input.send(event(500, "10.0.0.1", "10.0.0.9", 22, 10));
        input.send(event(700, "10.0.0.2", "10.0.0.9", 22, 20));
        input.send(event(2_100, "10.0.0.2", "10.0.0.8", 22, 30));
        input.send(event(2_200, "10.0.0.2", "10.0.0.8", 80, 40));
        // At 6 s the record of 0.5 s has left the 5 s window (it covers [1 s, 6 s)).
        let mut out = Vec::new();
        for at in [3_000u64, 6_000, 8_000] {
            // Reading at `at` needs every update at times up to `at` in.
            input.advance_to(at + 1_000);
            while probe.less_than(&(at + 1)) {
                worker.step();
            }
            let part = read_part(&mut trace, &plan, at, 100);
            out.push(merge_parts(&plan, vec![part], 100));
        }
        out
    });
    let rows: Vec<String> = results
        .iter()
        .map(|r| serde_json::to_string(&r.rows).unwrap())
        .collect();
    assert_eq!(rows[0], r#"[["10.0.0.2",2,50]]"#);
    assert_eq!(rows[1], r#"[["10.0.0.2",1,30]]"#);
    assert_eq!(rows[2], r#"[]"#);
}
