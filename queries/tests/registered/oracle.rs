//! The batch oracle of registered queries: a plan evaluated directly over a list of
//! records, from the semantics of docs/queries.md, by plain iteration. It shares nothing
//! with the dataflow but the plan's types: its own three-valued logic, LIKE matcher, value
//! order, aggregation and sorting.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use flowsight_events::Event;
use flowsight_operators::Millis;
use flowsight_queries::plan::{
    Aggregate, Column, CompareOp, Operand, Predicate, Term, ValidPlan, Value,
};

/// A value the oracle can group by and sort: NULL, integers, addresses and text in their
/// own variants (floats only appear in outputs).
fn field(column: Column, e: &Event) -> Value {
    match column {
        Column::Ts => Value::Int(e.ts as i128),
        Column::SrcIp => Value::Ip(e.src_ip),
        Column::DstIp => Value::Ip(e.dst_ip),
        Column::SrcPort => Value::Int(e.src_port as i128),
        Column::DstPort => Value::Int(e.dst_port as i128),
        Column::Proto => Value::Text(e.proto.as_str().to_string()),
        Column::BytesOut => Value::Int(e.bytes_out as i128),
        Column::BytesIn => Value::Int(e.bytes_in as i128),
        Column::Packets => Value::Int(e.packets as i128),
        Column::DurationMs => match e.duration_ms {
            Some(d) => Value::Int(d as i128),
            None => Value::Null,
        },
        Column::Status => Value::Text(e.status.as_str().to_string()),
    }
}

/// SQL comparison of two values; `None` when either is NULL.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Ip(x), Value::Ip(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (x, y) => panic!("the oracle compared {x:?} with {y:?}: a validated plan never does"),
    }
}

/// The order of sorting: NULL after every value.
fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => compare(a, b).unwrap_or(Ordering::Equal),
    }
}

/// LIKE by recursion over the pattern: `%` any run, `_` one character, `\` escapes.
fn like(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('%') => (0..=text.len()).any(|skip| like(&pattern[1..], &text[skip..])),
        Some('_') => !text.is_empty() && like(&pattern[1..], &text[1..]),
        Some('\\') if pattern.len() > 1 => {
            text.first() == Some(&pattern[1]) && like(&pattern[2..], &text[1..])
        }
        Some(c) => text.first() == Some(c) && like(&pattern[1..], &text[1..]),
    }
}

/// Evaluates a condition in three-valued logic, `value` giving each reference's value.
fn truth<T>(predicate: &Predicate<T>, value: &dyn Fn(&T) -> Value) -> Option<bool> {
    let operand = |o: &Operand<T>| match o {
        Operand::Ref(r) => value(r),
        Operand::Literal(v) => v.clone(),
    };
    let flip = |b: Option<bool>, negated: bool| if negated { b.map(|b| !b) } else { b };
    match predicate {
        Predicate::Compare { left, op, right } => {
            let o = compare(&operand(left), &operand(right))?;
            Some(match op {
                CompareOp::Eq => o.is_eq(),
                CompareOp::NotEq => o.is_ne(),
                CompareOp::Lt => o.is_lt(),
                CompareOp::LtEq => o.is_le(),
                CompareOp::Gt => o.is_gt(),
                CompareOp::GtEq => o.is_ge(),
            })
        }
        Predicate::In {
            operand: o,
            values,
            negated,
        } => {
            let v = operand(o);
            let outcomes: Vec<Option<bool>> = values
                .iter()
                .map(|c| compare(&v, c).map(|o| o.is_eq()))
                .collect();
            let result = if outcomes.contains(&Some(true)) {
                Some(true)
            } else if outcomes.contains(&None) {
                None
            } else {
                Some(false)
            };
            flip(result, *negated)
        }
        Predicate::Between {
            operand: o,
            low,
            high,
            negated,
        } => {
            let v = operand(o);
            let lower = compare(&v, low).map(|o| o.is_ge());
            let upper = compare(&v, high).map(|o| o.is_le());
            let result = match (lower, upper) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            flip(result, *negated)
        }
        Predicate::Like {
            operand: o,
            pattern,
            negated,
        } => match operand(o) {
            Value::Text(t) => {
                let p: Vec<char> = pattern.chars().collect();
                let t: Vec<char> = t.chars().collect();
                flip(Some(like(&p, &t)), *negated)
            }
            _ => None,
        },
        Predicate::IsNull {
            operand: o,
            negated,
        } => Some((operand(o) == Value::Null) != *negated),
        Predicate::CidrMatch {
            operand: o,
            network,
        } => {
            let net: ipnet::IpNet = network.parse().expect("validated network");
            match operand(o) {
                Value::Ip(ip) => Some(net.contains(&ip)),
                _ => None,
            }
        }
        Predicate::And(parts) => {
            let outcomes: Vec<Option<bool>> = parts.iter().map(|p| truth(p, value)).collect();
            if outcomes.contains(&Some(false)) {
                Some(false)
            } else if outcomes.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Predicate::Or(parts) => {
            let outcomes: Vec<Option<bool>> = parts.iter().map(|p| truth(p, value)).collect();
            if outcomes.contains(&Some(true)) {
                Some(true)
            } else if outcomes.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
        Predicate::Not(inner) => truth(inner, value).map(|b| !b),
    }
}

fn aggregate(a: &Aggregate, rows: &[&Event]) -> Value {
    let values = |c: &Column| -> Vec<Value> {
        rows.iter()
            .map(|e| field(*c, e))
            .filter(|v| *v != Value::Null)
            .collect()
    };
    match a {
        Aggregate::CountStar => Value::Int(rows.len() as i128),
        Aggregate::Count(c) => Value::Int(values(c).len() as i128),
        Aggregate::CountDistinct(c) => {
            let distinct: BTreeSet<String> = values(c).iter().map(|v| format!("{v:?}")).collect();
            Value::Int(distinct.len() as i128)
        }
        Aggregate::Sum(c) => {
            let vs = values(c);
            if vs.is_empty() {
                return Value::Null;
            }
            Value::Int(
                vs.iter()
                    .map(|v| match v {
                        Value::Int(i) => *i,
                        other => panic!("SUM over {other:?}"),
                    })
                    .sum(),
            )
        }
        Aggregate::Avg(c) => {
            let vs = values(c);
            if vs.is_empty() {
                return Value::Null;
            }
            let sum: i128 = vs
                .iter()
                .map(|v| match v {
                    Value::Int(i) => *i,
                    other => panic!("AVG over {other:?}"),
                })
                .sum();
            Value::Float(sum as f64 / vs.len() as f64)
        }
        Aggregate::Min(c) => values(c).into_iter().min_by(order).unwrap_or(Value::Null),
        Aggregate::Max(c) => values(c).into_iter().max_by(order).unwrap_or(Value::Null),
    }
}

/// One result row before sorting: ORDER BY values, outputs, and the group key.
struct Row {
    order_by: Vec<Value>,
    output: Vec<Value>,
    key: Vec<Value>,
}

/// The rows standard SQL returns for `plan` over `records` at `as_of` (the records that
/// have arrived by then; the window is applied here), in result order, LIMIT applied.
pub fn evaluate(plan: &ValidPlan, records: &[&Event], as_of: Millis) -> Vec<Vec<Value>> {
    let p = &plan.plan;
    let from = as_of.saturating_sub(plan.window);
    let passing: Vec<&Event> = records
        .iter()
        .copied()
        .filter(|e| e.ts >= from && e.ts < as_of)
        .filter(|e| {
            p.filter
                .as_ref()
                .is_none_or(|f| truth(f, &|c: &Column| field(*c, e)) == Some(true))
        })
        .collect();
    let has_aggregates = p
        .select
        .iter()
        .map(|s| &s.term)
        .chain(p.order_by.iter().map(|o| &o.term))
        .any(|t| matches!(t, Term::Aggregate(_)))
        || p.having.is_some();
    let mut rows = Vec::new();
    if !has_aggregates && p.group_by.is_empty() {
        // One row per record.
        for e in &passing {
            let value = |t: &Term| match t {
                Term::Column(c) => field(*c, e),
                Term::Aggregate(_) => unreachable!(),
            };
            rows.push(Row {
                order_by: p.order_by.iter().map(|o| value(&o.term)).collect(),
                output: p.select.iter().map(|s| value(&s.term)).collect(),
                key: plan.key.iter().map(|c| field(*c, e)).collect(),
            });
        }
    } else {
        let mut groups: BTreeMap<String, (Vec<Value>, Vec<&Event>)> = BTreeMap::new();
        if p.group_by.is_empty() {
            // Aggregates without GROUP BY: exactly one group, even over no records.
            let empty: Vec<Value> = Vec::new();
            groups.insert(format!("{empty:?}"), (empty, Vec::new()));
        }
        for e in &passing {
            let key: Vec<Value> = p.group_by.iter().map(|c| field(*c, e)).collect();
            groups
                .entry(format!("{key:?}"))
                .or_insert_with(|| (key, Vec::new()))
                .1
                .push(e);
        }
        for (_, (key, members)) in groups {
            let value = |t: &Term| match t {
                Term::Column(c) => {
                    let at = p.group_by.iter().position(|g| g == c).expect("grouped");
                    key[at].clone()
                }
                Term::Aggregate(a) => aggregate(a, &members),
            };
            if let Some(having) = &p.having {
                if truth(having, &value) != Some(true) {
                    continue;
                }
            }
            rows.push(Row {
                order_by: p.order_by.iter().map(|o| value(&o.term)).collect(),
                output: p.select.iter().map(|s| value(&s.term)).collect(),
                key: key.clone(),
            });
        }
    }
    rows.sort_by(|a, b| {
        for ((x, y), key) in a.order_by.iter().zip(&b.order_by).zip(&p.order_by) {
            let o = order(x, y);
            let o = if key.descending { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        let lexicographic = |xs: &[Value], ys: &[Value]| {
            xs.iter()
                .zip(ys)
                .map(|(x, y)| order(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        lexicographic(&a.output, &b.output).then_with(|| lexicographic(&a.key, &b.key))
    });
    let limit = p.limit.map_or(usize::MAX, |l| l as usize);
    rows.into_iter().take(limit).map(|r| r.output).collect()
}
