//! The data of a registered query inside the dataflow: record fields and aggregate states
//! as [`Datum`]s, the aggregation of a group, and the order of result rows.
//!
//! Datums are what travel between workers and sit in arrangements, so they are totally
//! ordered and hashable (a float average is kept as its exact sum and count); they become
//! the plan's [`Value`]s only when a result is read.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::IpAddr;

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use flowsight_events::{Event, Proto, Status};
use serde::{Deserialize, Serialize};

use crate::plan::{Aggregate, Column, Term, ValidPlan, Value};

/// One field of a record, or one aggregate of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Datum {
    /// SQL NULL: a record's missing `duration_ms`, or a SUM, MIN, MAX or AVG over no
    /// non-NULL value.
    Null,
    /// An integer field, a count or a sum.
    Int(i128),
    /// An address: `src_ip` or `dst_ip`.
    Ip(IpAddr),
    /// `proto`, kept as the enum; it reads as, and sorts in SQL by, its lowercase name.
    Proto(Proto),
    /// `status`, kept as the enum; it reads as, and sorts in SQL by, its lowercase name.
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

    /// The plan's value for this datum, as results, HAVING and ORDER BY see it: text for
    /// `proto` and `status`, an average's sum divided by its count as a float.
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

/// The accumulable part of a group's records: `[COUNT(*)]`, then for each summed column
/// its count of non-NULL values and its sum. It is the *difference* of the reduction's
/// input, so records of one group (and one set of non-accumulable values) consolidate
/// into one entry per tick instead of one per record.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sums(pub Vec<i128>);

impl IsZero for Sums {
    fn is_zero(&self) -> bool {
        self.0.iter().all(|x| *x == 0)
    }
}

impl Semigroup for Sums {
    fn plus_equals(&mut self, rhs: &Self) {
        if self.0.len() < rhs.0.len() {
            self.0.resize(rhs.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&rhs.0) {
            *a += b;
        }
    }
}

impl Monoid for Sums {
    fn zero() -> Self {
        Sums(Vec::new())
    }
}

impl Abelian for Sums {
    fn negate(&mut self) {
        for x in &mut self.0 {
            *x = -*x;
        }
    }
}

impl Multiply<isize> for Sums {
    type Output = Sums;
    fn multiply(self, rhs: &isize) -> Sums {
        let by = *rhs as i128;
        Sums(self.0.into_iter().map(|x| x * by).collect())
    }
}

impl Sums {
    fn get(&self, at: usize) -> i128 {
        self.0.get(at).copied().unwrap_or(0)
    }

    /// How many records these sums are of: their COUNT(*).
    pub fn records(&self) -> i128 {
        self.get(0)
    }
}

/// One part of a group's aggregates, each maintained by an operator of its own that does
/// work per change rather than per group (see `render_query`), and combined per group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Part {
    /// COUNT(*), and the count and sum of each summed column.
    Sums(Sums),
    /// The number of distinct non-NULL values of the kept column `inputs[i]`.
    Distinct(usize, i128),
    /// The least non-NULL value of the kept column `inputs[i]`.
    Min(usize, Datum),
    /// The greatest non-NULL value of the kept column `inputs[i]`.
    Max(usize, Datum),
}

/// What the dataflow needs of a validated plan to aggregate a group.
#[derive(Clone, Debug)]
pub struct Shape {
    /// The group key's columns.
    pub key: Vec<Column>,
    /// The aggregates computed per group; `[COUNT(*)]` (the multiplicity of equal rows) for
    /// a query without aggregates.
    pub aggregates: Vec<Aggregate>,
    /// The columns whose values the group keeps (distinct values, with their counts): those
    /// of COUNT(DISTINCT), MIN and MAX.
    pub inputs: Vec<Column>,
    /// The columns carried in [`Sums`]: those of COUNT(col), SUM and AVG.
    pub summed: Vec<Column>,
    /// Whether a group stands for that many equal rows (a query without aggregates).
    pub multiplicity: bool,
}

impl Shape {
    /// The shape of a validated plan's groups: its key, its aggregates (`[COUNT(*)]`
    /// without any) and the columns those keep or sum.
    pub fn new(plan: &ValidPlan) -> Self {
        let aggregates = if plan.aggregated {
            plan.aggregates.clone()
        } else {
            vec![Aggregate::CountStar]
        };
        let mut inputs = BTreeSet::new();
        let mut summed = BTreeSet::new();
        for aggregate in &aggregates {
            match aggregate {
                Aggregate::CountStar => {}
                Aggregate::Count(c) | Aggregate::Sum(c) | Aggregate::Avg(c) => {
                    summed.insert(*c);
                }
                Aggregate::CountDistinct(c) | Aggregate::Min(c) | Aggregate::Max(c) => {
                    inputs.insert(*c);
                }
            }
        }
        Shape {
            key: plan.key.clone(),
            aggregates,
            inputs: inputs.into_iter().collect(),
            summed: summed.into_iter().collect(),
            multiplicity: !plan.aggregated,
        }
    }

    /// A record's group key.
    pub fn key_of(&self, event: &Event) -> Vec<Datum> {
        self.key.iter().map(|c| Datum::of(*c, event)).collect()
    }

    /// A record's accumulable part: `[1]`, then for each summed column 1 and its value, or
    /// 0 and 0 for NULL.
    pub fn sums_of(&self, event: &Event) -> Sums {
        let mut sums = Vec::with_capacity(1 + 2 * self.summed.len());
        sums.push(1);
        for column in &self.summed {
            match Datum::of(*column, event) {
                Datum::Null => sums.extend([0, 0]),
                datum => sums.extend([1, datum.int().unwrap_or(0)]),
            }
        }
        Sums(sums)
    }

    /// Which parts a group's aggregates need of the kept column `inputs[input]`: its
    /// number of distinct values, its minimum, its maximum.
    pub fn needs(&self, input: usize) -> (bool, bool, bool) {
        let column = self.inputs[input];
        let mut needs = (false, false, false);
        for aggregate in &self.aggregates {
            match aggregate {
                Aggregate::CountDistinct(c) if *c == column => needs.0 = true,
                Aggregate::Min(c) if *c == column => needs.1 = true,
                Aggregate::Max(c) if *c == column => needs.2 = true,
                _ => {}
            }
        }
        needs
    }

    /// The least of a group's distinct values of a kept column, in SQL order.
    pub fn min_of<'a>(values: impl Iterator<Item = &'a Datum>) -> Option<Datum> {
        values.min_by(|a, b| a.sql_cmp(b)).cloned()
    }

    /// The greatest of a group's distinct values of a kept column, in SQL order.
    pub fn max_of<'a>(values: impl Iterator<Item = &'a Datum>) -> Option<Datum> {
        values.max_by(|a, b| a.sql_cmp(b)).cloned()
    }

    /// The aggregates of a group from its parts, or `None` when it has no records.
    pub fn combine(&self, parts: &[(&Part, isize)]) -> Option<Vec<Datum>> {
        let mut total = None;
        let mut distinct = vec![0i128; self.inputs.len()];
        let mut least = vec![Datum::Null; self.inputs.len()];
        let mut greatest = vec![Datum::Null; self.inputs.len()];
        for (part, _) in parts.iter().filter(|(_, n)| *n > 0) {
            match part {
                Part::Sums(sums) => total = Some(sums),
                Part::Distinct(i, n) => distinct[*i] = *n,
                Part::Min(i, datum) => least[*i] = datum.clone(),
                Part::Max(i, datum) => greatest[*i] = datum.clone(),
            }
        }
        let total = total.filter(|t| t.get(0) > 0)?;
        let input = |c: Column| self.inputs.iter().position(|i| *i == c);
        let summed = |c: Column| {
            self.summed
                .iter()
                .position(|s| *s == c)
                .map(|p| (total.get(1 + 2 * p), total.get(2 + 2 * p)))
        };
        Some(
            self.aggregates
                .iter()
                .map(|aggregate| match aggregate {
                    Aggregate::CountStar => Datum::Int(total.get(0)),
                    Aggregate::Count(c) => Datum::Int(summed(*c).map_or(0, |(n, _)| n)),
                    Aggregate::CountDistinct(c) => Datum::Int(input(*c).map_or(0, |i| distinct[i])),
                    Aggregate::Sum(c) => match summed(*c) {
                        Some((n, sum)) if n > 0 => Datum::Int(sum),
                        _ => Datum::Null,
                    },
                    Aggregate::Avg(c) => match summed(*c) {
                        Some((n, sum)) if n > 0 => Datum::Avg(sum, n as u64),
                        _ => Datum::Null,
                    },
                    Aggregate::Min(c) => input(*c).map_or(Datum::Null, |i| least[i].clone()),
                    Aggregate::Max(c) => input(*c).map_or(Datum::Null, |i| greatest[i].clone()),
                })
                .collect(),
        )
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
    /// The order of a validated plan's result rows.
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

    /// The shape of the plan's groups, from which rows take their values.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// A group's row, from its key and aggregates, as [`compare`](Self::compare) sorts it.
    pub fn row(&self, key: &[Datum], aggregates: &[Datum]) -> SortableRow {
        let value = |term: &Term| self.shape.term(term, key, aggregates);
        SortableRow {
            order: self.order.iter().map(|(t, _)| value(t)).collect(),
            output: self.select.iter().map(value).collect(),
            key: key.iter().map(Datum::to_value).collect(),
        }
    }

    /// Orders two rows: by the ORDER BY keys (NULL last ascending, first descending), then
    /// by their output values and their group key, ascending.
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
