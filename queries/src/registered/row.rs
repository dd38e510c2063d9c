//! The data of a registered query inside the dataflow: record fields and aggregate states
//! as [`Datum`]s, the aggregation of a group, and the order of result rows.
//!
//! Datums are what travel between workers and sit in arrangements, so they are totally
//! ordered and hashable (a float average is kept as its exact sum and count); they become
//! the plan's [`Value`]s only when a result is read.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::IpAddr;

use flowscope_events::{Event, Proto, Status};
use serde::{Deserialize, Serialize};

use crate::plan::{Aggregate, Column, Term, ValidPlan, Value};

/// One field of a record, or one aggregate of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Datum {
    Null,
    Int(i128),
    Ip(IpAddr),
    Proto(Proto),
    Status(Status),
    /// An average as its exact sum and (non-zero) count.
    Avg(i128, u64),
}

impl Datum {
    /// A field of a record.
    pub fn of(column: Column, event: &Event) -> Datum {
        match column {
            Column::Ts => Datum::Int(i128::from(event.ts)),
            Column::SrcIp => Datum::Ip(event.src_ip),
            Column::DstIp => Datum::Ip(event.dst_ip),
            Column::SrcPort => Datum::Int(i128::from(event.src_port)),
            Column::DstPort => Datum::Int(i128::from(event.dst_port)),
            Column::Proto => Datum::Proto(event.proto),
            Column::BytesOut => Datum::Int(i128::from(event.bytes_out)),
            Column::BytesIn => Datum::Int(i128::from(event.bytes_in)),
            Column::Packets => Datum::Int(i128::from(event.packets)),
            Column::DurationMs => event
                .duration_ms
                .map_or(Datum::Null, |d| Datum::Int(i128::from(d))),
            Column::Status => Datum::Status(event.status),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Datum::Null => Value::Null,
            Datum::Int(i) => Value::Int(*i),
            Datum::Ip(ip) => Value::Ip(*ip),
            Datum::Proto(p) => Value::Text(p.as_str().to_string()),
            Datum::Status(s) => Value::Text(s.as_str().to_string()),
            Datum::Avg(sum, count) => Value::Float(*sum as f64 / *count as f64),
        }
    }

    fn int(&self) -> Option<i128> {
        match self {
            Datum::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The SQL order of two non-NULL values of one column (text columns by name).
    fn sql_cmp(&self, other: &Datum) -> Ordering {
        match (self, other) {
            (Datum::Proto(a), Datum::Proto(b)) => a.as_str().cmp(b.as_str()),
            (Datum::Status(a), Datum::Status(b)) => a.as_str().cmp(b.as_str()),
            _ => self.cmp(other),
        }
    }
}

/// What the dataflow needs of a validated plan to aggregate a group.
#[derive(Clone, Debug)]
pub struct Shape {
    /// The group key's columns.
    pub key: Vec<Column>,
    /// The aggregates computed per group; `[COUNT(*)]` (the multiplicity of equal rows) for
    /// a query without aggregates.
    pub aggregates: Vec<Aggregate>,
    /// The distinct columns the aggregates read, in the order of each group value.
    pub inputs: Vec<Column>,
    /// Whether a group stands for that many equal rows (a query without aggregates).
    pub multiplicity: bool,
}

impl Shape {
    pub fn new(plan: &ValidPlan) -> Self {
        let aggregates = if plan.aggregated {
            plan.aggregates.clone()
        } else {
            vec![Aggregate::CountStar]
        };
        let inputs: BTreeSet<Column> = aggregates.iter().filter_map(Aggregate::column).collect();
        Shape {
            key: plan.key.clone(),
            aggregates,
            inputs: inputs.into_iter().collect(),
            multiplicity: !plan.aggregated,
        }
    }

    /// A record's group key and the fields its aggregates read.
    pub fn split(&self, event: &Event) -> (Vec<Datum>, Vec<Datum>) {
        (
            self.key.iter().map(|c| Datum::of(*c, event)).collect(),
            self.inputs.iter().map(|c| Datum::of(*c, event)).collect(),
        )
    }

    /// The aggregates of a group from its values (`(fields, multiplicity)`, sorted).
    /// Multiplicities are positive: the window's records never go below zero.
    pub fn aggregate(&self, values: &[(&Vec<Datum>, isize)]) -> Vec<Datum> {
        self.aggregates
            .iter()
            .map(|aggregate| {
                let position = aggregate
                    .column()
                    .and_then(|c| self.inputs.iter().position(|i| *i == c));
                let field = |row: &Vec<Datum>| position.and_then(|p| row.get(p)).cloned();
                let present = values.iter().filter_map(|(row, n)| match field(row) {
                    Some(Datum::Null) | None => None,
                    Some(datum) => Some((datum, *n as i128)),
                });
                match aggregate {
                    Aggregate::CountStar => {
                        Datum::Int(values.iter().map(|(_, n)| *n as i128).sum())
                    }
                    Aggregate::Count(_) => Datum::Int(present.map(|(_, n)| n).sum()),
                    Aggregate::CountDistinct(_) => {
                        let distinct: BTreeSet<Datum> = present.map(|(d, _)| d).collect();
                        Datum::Int(distinct.len() as i128)
                    }
                    Aggregate::Sum(_) => {
                        let mut sum = None;
                        for (datum, n) in present {
                            *sum.get_or_insert(0) += datum.int().unwrap_or(0) * n;
                        }
                        sum.map_or(Datum::Null, Datum::Int)
                    }
                    Aggregate::Avg(_) => {
                        let (mut sum, mut count) = (0i128, 0u64);
                        for (datum, n) in present {
                            sum += datum.int().unwrap_or(0) * n;
                            count += n as u64;
                        }
                        if count == 0 {
                            Datum::Null
                        } else {
                            Datum::Avg(sum, count)
                        }
                    }
                    Aggregate::Min(_) => present
                        .map(|(d, _)| d)
                        .min_by(Datum::sql_cmp)
                        .unwrap_or(Datum::Null),
                    Aggregate::Max(_) => present
                        .map(|(d, _)| d)
                        .max_by(Datum::sql_cmp)
                        .unwrap_or(Datum::Null),
                }
            })
            .collect()
    }

    /// The aggregates of a group with no rows (a query without GROUP BY over no records).
    pub fn empty(&self) -> Vec<Datum> {
        self.aggregates
            .iter()
            .map(|a| match a {
                Aggregate::CountStar | Aggregate::Count(_) | Aggregate::CountDistinct(_) => {
                    Datum::Int(0)
                }
                _ => Datum::Null,
            })
            .collect()
    }

    /// The value of a grouped column or an aggregate in a group.
    pub fn term(&self, term: &Term, key: &[Datum], aggregates: &[Datum]) -> Value {
        let found = match term {
            Term::Column(c) => self
                .key
                .iter()
                .position(|k| k == c)
                .and_then(|p| key.get(p)),
            Term::Aggregate(a) => self
                .aggregates
                .iter()
                .position(|x| x == a)
                .and_then(|p| aggregates.get(p)),
        };
        found.map_or(Value::Null, Datum::to_value)
    }
}

/// A group's row as it sorts: its ORDER BY values, its output values, its key.
pub struct SortableRow {
    pub order: Vec<Value>,
    pub output: Vec<Value>,
    pub key: Vec<Value>,
}

/// How result rows are ordered: by the plan's ORDER BY keys, then by the output columns and
/// the group key ascending, so that a LIMIT always keeps the same rows.
#[derive(Clone, Debug)]
pub struct RowOrder {
    shape: Shape,
    select: Vec<Term>,
    order: Vec<(Term, bool)>,
}

impl RowOrder {
    pub fn new(plan: &ValidPlan) -> Self {
        RowOrder {
            shape: Shape::new(plan),
            select: plan.plan.select.iter().map(|s| s.term.clone()).collect(),
            order: plan
                .plan
                .order_by
                .iter()
                .map(|o| (o.term.clone(), o.descending))
                .collect(),
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn row(&self, key: &[Datum], aggregates: &[Datum]) -> SortableRow {
        let value = |term: &Term| self.shape.term(term, key, aggregates);
        SortableRow {
            order: self.order.iter().map(|(t, _)| value(t)).collect(),
            output: self.select.iter().map(value).collect(),
            key: key.iter().map(Datum::to_value).collect(),
        }
    }

    pub fn compare(&self, a: &SortableRow, b: &SortableRow) -> Ordering {
        for ((x, y), (_, descending)) in a.order.iter().zip(&b.order).zip(&self.order) {
            let order = x.sort_cmp(y);
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        let ascending = |xs: &[Value], ys: &[Value]| {
            xs.iter()
                .zip(ys)
                .map(|(x, y)| x.sort_cmp(y))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        };
        ascending(&a.output, &b.output).then_with(|| ascending(&a.key, &b.key))
    }
}
