//! Registered queries against the batch oracle (`registered/oracle.rs`): random valid
//! queries over random record streams — in order, jittered, very late — read at every
//! phase of the script and swept back over the whole history, on 1, 2 and 4 workers,
//! with some queries registered only in the middle of the stream (importing the tap,
//! compacted as the engine compacts it, and counting the records placed from then on).
//!
//! A deeper run: `PROPTEST_CASES=200 cargo test -p flowsight-queries --test registered_oracle`.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "registered/harness.rs"]
mod harness;
#[path = "registered/oracle.rs"]
mod oracle;

use std::net::IpAddr;

use flowsight_events::{Event, Proto, Status};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::plan::{
    Aggregate, Column, CompareOp, Operand, OrderKey, Plan, Predicate, SelectItem, Term, ValidPlan,
    Value,
};
use flowsight_queries::registered::plane::Projection;
use flowsight_queries::registered::Shape as RowShape;
use flowsight_queries::sql;
use proptest::prelude::*;

use common::{lag_strategy, plan_phases, raw_step, RawStep, Script, Shape};

const TICK: Millis = 1_000;
const WINDOWS: [Millis; 3] = [3_000, 10_000, 30_000];

fn ips() -> Vec<IpAddr> {
    [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.1.7",
        "192.168.5.5",
        "8.8.8.8",
        "fd00::1",
        "2001:db8::5",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

const PORTS: [u16; 5] = [22, 53, 80, 443, 3389];
const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
const STATUSES: [Status; 3] = [Status::Established, Status::Rejected, Status::Reset];

// ---------------------------------------------------------------------------------------------
// Records and scripts
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct RawRecord {
    gap: Millis,
    lag: Millis,
    src: usize,
    dst: usize,
    src_port: u16,
    port: usize,
    proto: usize,
    status: usize,
    bytes_out: u64,
    bytes_in: u64,
    duration: Option<u64>,
}

fn raw_record(shape: Shape) -> impl Strategy<Value = RawRecord> {
    (
        (
            0..1_500u64,
            lag_strategy(shape),
            0..7usize,
            0..7usize,
            1_000..1_003u16,
        ),
        (
            0..5usize,
            0..3usize,
            0..3usize,
            0..5u64,
            prop_oneof![Just(0u64), 0..3_000u64],
            prop::option::weighted(0.7, 0..4u64),
        ),
    )
        .prop_map(
            |(
                (gap, lag, src, dst, src_port),
                (port, proto, status, bytes_out, bytes_in, duration),
            )| {
                RawRecord {
                    gap,
                    lag,
                    src,
                    dst,
                    src_port,
                    port,
                    proto,
                    status,
                    bytes_out: bytes_out * 100,
                    bytes_in,
                    duration,
                }
            },
        )
}

fn build_script(
    base: Millis,
    lateness: Millis,
    records: Vec<RawRecord>,
    steps: Vec<RawStep>,
) -> Script {
    let time = TimeModel::new(TICK).unwrap();
    let ips = ips();
    let mut clock = base;
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            clock += r.gap;
            Event {
                ts: clock.saturating_sub(r.lag),
                src_ip: ips[r.src],
                dst_ip: ips[r.dst],
                src_port: r.src_port,
                dst_port: PORTS[r.port],
                proto: PROTOS[r.proto],
                bytes_out: r.bytes_out,
                bytes_in: r.bytes_in,
                packets: 1 + r.bytes_in % 3,
                duration_ms: r.duration,
                status: STATUSES[r.status],
            }
        })
        .collect();
    let phases = plan_phases(time, &WINDOWS, lateness, &events, &steps, 12);
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases,
        hosts: Vec::new(),
    }
}

fn script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (
        prop_oneof![Just(0u64), 0..20_000u64, Just(1_700_000_000_000u64)],
        prop_oneof![Just(0u64), Just(1_000u64), Just(5_000u64)],
        prop::collection::vec(raw_record(shape), 1..50),
        prop::collection::vec(raw_step(), 1..6),
    )
        .prop_map(|(base, lateness, records, steps)| build_script(base, lateness, records, steps))
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// A literal of a column's type, from values the records use (so that filters bite).
fn literal_for(column: Column) -> BoxedStrategy<Value> {
    match column {
        Column::SrcIp | Column::DstIp => prop::sample::select(ips()).prop_map(Value::Ip).boxed(),
        Column::Proto => prop::sample::select(vec!["tcp", "udp", "icmp", "other"])
            .prop_map(|s| Value::Text(s.to_string()))
            .boxed(),
        Column::Status => prop::sample::select(vec!["established", "rejected", "reset", "failed"])
            .prop_map(|s| Value::Text(s.to_string()))
            .boxed(),
        Column::DstPort => prop::sample::select(PORTS.to_vec())
            .prop_map(|p| Value::Int(p as i128))
            .boxed(),
        Column::DurationMs => {
            prop_oneof![4 => (0..4i128).prop_map(Value::Int), 1 => Just(Value::Null)].boxed()
        }
        Column::BytesOut => (0..6i128).prop_map(|b| Value::Int(b * 100)).boxed(),
        Column::SrcPort => (999..1_004i128).prop_map(Value::Int).boxed(),
        _ => (0..3_000i128).prop_map(Value::Int).boxed(),
    }
}

const FILTER_COLUMNS: [Column; 7] = [
    Column::SrcIp,
    Column::DstIp,
    Column::DstPort,
    Column::Proto,
    Column::Status,
    Column::DurationMs,
    Column::BytesOut,
];

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Lt,
        CompareOp::LtEq,
        CompareOp::Gt,
        CompareOp::GtEq,
    ])
}

fn leaf() -> BoxedStrategy<Predicate<Column>> {
    prop::sample::select(FILTER_COLUMNS.to_vec())
        .prop_flat_map(|column| {
            let ip = matches!(column, Column::SrcIp | Column::DstIp);
            let text = matches!(column, Column::Proto | Column::Status);
            let mut options: Vec<BoxedStrategy<Predicate<Column>>> = vec![
                (op(), literal_for(column))
                    .prop_map(move |(op, v)| Predicate::Compare {
                        left: Operand::Ref(column),
                        op,
                        right: Operand::Literal(v),
                    })
                    .boxed(),
                (
                    prop::collection::vec(literal_for(column), 1..4),
                    any::<bool>(),
                )
                    .prop_map(move |(values, negated)| Predicate::In {
                        operand: Operand::Ref(column),
                        values,
                        negated,
                    })
                    .boxed(),
                (literal_for(column), literal_for(column), any::<bool>())
                    .prop_map(move |(low, high, negated)| Predicate::Between {
                        operand: Operand::Ref(column),
                        low,
                        high,
                        negated,
                    })
                    .boxed(),
                any::<bool>()
                    .prop_map(move |negated| Predicate::IsNull {
                        operand: Operand::Ref(column),
                        negated,
                    })
                    .boxed(),
            ];
            if ip {
                options.push(
                    prop::sample::select(vec![
                        "10.0.0.0/8",
                        "10.0.0.0/24",
                        "0.0.0.0/0",
                        "fd00::/8",
                        "2001:db8::/32",
                        "8.8.8.8/32",
                    ])
                    .prop_map(move |network| Predicate::CidrMatch {
                        operand: Operand::Ref(column),
                        network: network.to_string(),
                    })
                    .boxed(),
                );
            }
            if text {
                options.push(
                    (
                        prop::sample::select(vec!["t%", "%e%", "_cp", "%", "re%t", "u\\%p"]),
                        any::<bool>(),
                    )
                        .prop_map(move |(pattern, negated)| Predicate::Like {
                            operand: Operand::Ref(column),
                            pattern: pattern.to_string(),
                            negated,
                        })
                        .boxed(),
                );
            }
            prop::strategy::Union::new(options)
        })
        .boxed()
}

fn filter() -> impl Strategy<Value = Predicate<Column>> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Predicate::And),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Predicate::Or),
            inner.prop_map(|p| Predicate::Not(Box::new(p))),
        ]
    })
}

const GROUP_COLUMNS: [Column; 6] = [
    Column::SrcIp,
    Column::DstIp,
    Column::DstPort,
    Column::Proto,
    Column::Status,
    Column::DurationMs,
];

fn aggregate() -> impl Strategy<Value = Aggregate> {
    let column = prop::sample::select(Column::ALL.to_vec());
    let numeric = prop::sample::select(vec![
        Column::BytesOut,
        Column::BytesIn,
        Column::DurationMs,
        Column::Ts,
        Column::Packets,
    ]);
    prop_oneof![
        Just(Aggregate::CountStar),
        column.clone().prop_map(Aggregate::Count),
        column.clone().prop_map(Aggregate::CountDistinct),
        numeric.clone().prop_map(Aggregate::Sum),
        numeric.prop_map(Aggregate::Avg),
        column.clone().prop_map(Aggregate::Min),
        column.prop_map(Aggregate::Max),
    ]
}

/// A random query that validates against the scripts' windows.
fn query() -> impl Strategy<Value = Plan> {
    let grouped = (
        prop::sample::subsequence(GROUP_COLUMNS.to_vec(), 0..3),
        prop::collection::vec(aggregate(), 1..4),
        prop::option::of((aggregate(), op(), 0..4i128)),
        prop::option::of((any::<prop::sample::Index>(), any::<bool>())),
    )
        .prop_map(|(group_by, aggregates, having, order)| {
            let mut select: Vec<SelectItem> = group_by
                .iter()
                .map(|c| SelectItem {
                    term: Term::Column(*c),
                    alias: None,
                })
                .collect();
            for (i, a) in aggregates.into_iter().enumerate() {
                select.push(SelectItem {
                    term: Term::Aggregate(a),
                    alias: Some(format!("a{i}")),
                });
            }
            let order_by = order
                .map(|(index, descending)| {
                    vec![OrderKey {
                        term: select[index.index(select.len())].term.clone(),
                        descending,
                    }]
                })
                .unwrap_or_default();
            let having = having.map(|(a, op, n)| Predicate::Compare {
                left: Operand::Ref(Term::Aggregate(a)),
                op,
                right: Operand::Literal(Value::Int(n)),
            });
            (select, group_by, having, order_by)
        });
    let plain = (
        prop::sample::subsequence(Column::ALL.to_vec(), 1..4),
        prop::option::of((prop::sample::select(Column::ALL.to_vec()), any::<bool>())),
    )
        .prop_map(|(columns, order)| {
            let select = columns
                .into_iter()
                .map(|c| SelectItem {
                    term: Term::Column(c),
                    alias: None,
                })
                .collect();
            let order_by = order
                .map(|(c, descending)| {
                    vec![OrderKey {
                        term: Term::Column(c),
                        descending,
                    }]
                })
                .unwrap_or_default();
            (select, Vec::new(), None, order_by)
        });
    (
        prop::sample::select(WINDOWS.to_vec()),
        prop_oneof![3 => grouped, 1 => plain],
        prop::option::of(filter()),
        prop::option::weighted(0.5, 1..4u64),
    )
        .prop_map(
            |(window, (select, group_by, having, order_by), filter, limit)| Plan {
                from: format!("flows_{window}ms"),
                select,
                filter,
                group_by,
                having,
                order_by,
                limit,
            },
        )
}

fn valid(plan: Plan, script: &Script) -> Option<ValidPlan> {
    plan.validate(&script.windows()).ok()
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// Runs the queries on 1, 2 and 4 workers and compares every answer with the oracle's.
fn check(script: &Script, plans: &[ValidPlan], late: &[Option<usize>]) -> Result<(), String> {
    let entries = script.entries();
    for workers in [1, 2, 4] {
        let answers = harness::run(script, plans, late, workers);
        for answer in &answers {
            // A query counts the records placed from its registration on: a late one was
            // registered once its phase's records had entered.
            let from = late[answer.query].map_or(0, |phase| script.phases[phase].advance_to);
            let arrived: Vec<&Event> = entries
                .iter()
                .filter(|(_, entry)| from <= *entry && *entry <= answer.as_of)
                .map(|(e, _)| e)
                .collect();
            let plan = &plans[answer.query];
            let expected = oracle::evaluate(plan, &arrived, answer.as_of);
            let shown: Vec<Vec<Value>> =
                expected.iter().take(harness::READ_LIMIT).cloned().collect();
            if answer.result.rows != shown || answer.result.total != expected.len() as u64 {
                return Err(format!(
                    "{workers} workers, query {} ({}), phase {}, as_of {}:\n  got      {:?} (total {})\n  expected {:?} (total {})",
                    answer.query,
                    sql::to_sql(&plan.plan),
                    answer.phase,
                    answer.as_of,
                    answer.result.rows,
                    answer.result.total,
                    shown,
                    expected.len()
                ));
            }
        }
        let reads = script.read_count();
        if answers.is_empty() && reads > 0 && late.iter().any(Option::is_none) {
            return Err("no answers were read".into());
        }
    }
    Ok(())
}

fn case(shape: Shape) -> impl Strategy<Value = (Script, Vec<ValidPlan>, Vec<Option<usize>>)> {
    script_strategy(shape).prop_flat_map(|script| {
        let phases = script.phases.len();
        (
            Just(script),
            prop::collection::vec((query(), prop::option::of(0..phases.max(1))), 1..5),
            // Twins: a query again (the same family when registered at the same time), or
            // with its WHERE dropped (the same projection, another family).
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                    prop::option::of(0..phases.max(1)),
                ),
                0..3,
            ),
        )
            .prop_filter_map("some query is valid", |(script, queries, twins)| {
                let (mut plans, mut late): (Vec<ValidPlan>, Vec<Option<usize>>) = queries
                    .into_iter()
                    .filter_map(|(plan, late)| valid(plan, &script).map(|p| (p, late)))
                    .unzip();
                if plans.is_empty() {
                    return None;
                }
                for (index, drop_where, when) in twins {
                    let twin = index.get(&plans).clone();
                    let registered = if drop_where {
                        when
                    } else {
                        late[index.index(late.len())]
                    };
                    let mut plan = twin.plan.clone();
                    if drop_where {
                        plan.filter = None;
                    }
                    if let Some(plan) = valid(plan, &script) {
                        plans.push(plan);
                        late.push(registered);
                    }
                }
                Some((script, plans, late))
            })
    })
}

fn config(cases: u32) -> ProptestConfig {
    common::config(cases, None)
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn queries_match_the_oracle_in_order((script, plans, late) in case(Shape::InOrder)) {
        check(&script, &plans, &late).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn queries_match_the_oracle_out_of_order((script, plans, late) in case(Shape::Jittered)) {
        check(&script, &plans, &late).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn queries_match_the_oracle_with_very_late_records((script, plans, late) in case(Shape::VeryLate)) {
        check(&script, &plans, &late).map_err(TestCaseError::fail)?;
    }
}

/// The generated queries cover what they should: each aggregate, HAVING, ORDER BY with
/// LIMIT, queries without aggregates, late registration — so a property run that passes
/// has exercised them.
#[test]
fn generated_cases_cover_the_language() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = case(Shape::Jittered);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (_, plans, late) = strategy.new_tree(&mut runner).unwrap().current();
        for (i, (a, when_a)) in plans.iter().zip(&late).enumerate() {
            for (b, when_b) in plans.iter().zip(&late).skip(i + 1) {
                let kept = |p: &ValidPlan| (p.window, Projection::of(&RowShape::new(p)));
                if kept(a) == kept(b) {
                    seen.insert("shared projection");
                    if a.plan.filter == b.plan.filter && when_a == when_b {
                        seen.insert("shared family");
                    }
                }
            }
        }
        for (plan, late) in plans.iter().zip(&late) {
            let p = &plan.plan;
            if late.is_some() {
                seen.insert("late");
            }
            if p.having.is_some() {
                seen.insert("having");
            }
            if p.limit.is_some() && !p.order_by.is_empty() {
                seen.insert("top-k");
            }
            if !plan.aggregated {
                seen.insert("no aggregates");
            }
            if p.filter.is_some() {
                seen.insert("where");
            }
            for a in &plan.aggregates {
                seen.insert(match a {
                    Aggregate::CountStar => "count(*)",
                    Aggregate::Count(_) => "count",
                    Aggregate::CountDistinct(_) => "count distinct",
                    Aggregate::Sum(_) => "sum",
                    Aggregate::Min(_) => "min",
                    Aggregate::Max(_) => "max",
                    Aggregate::Avg(_) => "avg",
                });
            }
        }
    }
    for wanted in [
        "shared projection",
        "shared family",
        "late",
        "having",
        "top-k",
        "no aggregates",
        "where",
        "count(*)",
        "count",
        "count distinct",
        "sum",
        "min",
        "max",
        "avg",
    ] {
        assert!(seen.contains(wanted), "no generated query has {wanted}");
    }
}
