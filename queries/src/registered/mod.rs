//! Registered queries: the plane that runs them all in one dataflow ([`plane`]), the
//! families' sums it keeps ([`family`]), and how a result is merged across workers
//! (docs/design.md §6).
//!
//! A query is never a dataflow of its own. The engine renders [`plane::render_plane`] once,
//! in the dataflow of the built-in views, and registering a query adds it to the plane's
//! [`plane::Catalog`] and, when no equal query runs yet, starts a family in the plane. The
//! plane reads each record once for every query: each distinct WHERE is evaluated once, a
//! passing record is projected once per projection (group key, kept values, summed
//! columns) and added to the sums of every family that counts it, kept per (key, values,
//! pane) of the window — state grows with distinct groups and panes, never with records
//! or with queries that keep the same groups. A query's result is computed from those
//! sums when it is read: each worker reads its groups ([`plane::read_part`]) and the
//! asking worker merges the parts ([`merge_parts`]).

pub mod family;
pub(crate) mod filter;
pub mod plane;
mod row;

use serde::{Deserialize, Serialize};

pub use filter::{Condition, Pattern};
pub use row::{Datum, Part, RowOrder, Shape, Sums};

use crate::plan::{Term, ValidPlan, Value};

/// A result row: the group key and its aggregates.
pub type GroupRow = (Vec<Datum>, Vec<Datum>);

/// How many result rows a group stands for: one, or, without aggregates, its COUNT(*).
pub(crate) fn occurrences(shape: &Shape, row: &GroupRow) -> u64 {
    if shape.multiplicity {
        match row.1.first() {
            Some(Datum::Int(n)) => (*n).max(0) as u64,
            _ => 0,
        }
    } else {
        1
    }
}

/// One worker's part of a query's result: its first rows in result order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPart {
    /// This worker's first rows in result order, enough to fill the reader's limit; a row of
    /// a query without aggregates stands for as many equal rows as its `COUNT(*)`.
    pub rows: Vec<GroupRow>,
    /// How many result rows this worker holds (before the reader's limit).
    pub total: u64,
}

/// A query's result, as served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The output column names, in SELECT order.
    pub columns: Vec<String>,
    /// The rows in result order, each with one value per column; equal rows repeat.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the query has (at most its LIMIT); `rows` holds at most the
    /// reader's limit of them.
    pub total: u64,
}

/// Merges the parts of every worker into the result: at most `limit` rows in result order.
pub fn merge_parts(plan: &ValidPlan, parts: Vec<QueryPart>, limit: usize) -> QueryResult {
    let order = RowOrder::new(plan);
    let shape = order.shape();
    let held: u64 = parts.iter().map(|p| p.total).sum();
    let mut rows: Vec<GroupRow> = parts.into_iter().flat_map(|p| p.rows).collect();
    // Aggregates without GROUP BY have exactly one row, even over no records, and HAVING
    // decides whether it is shown.
    if plan.aggregated && plan.plan.group_by.is_empty() {
        let row = rows.pop().unwrap_or_else(|| (Vec::new(), shape.empty()));
        let keep = plan.plan.having.as_ref().is_none_or(|having| {
            Condition::<Term>::compile(having).is_ok_and(|having| {
                having.eval(&|t: &Term| shape.term(t, &[], &row.1)) == Some(true)
            })
        });
        let rows = if keep { vec![row] } else { Vec::new() };
        let held = rows.len() as u64;
        return finish(plan, &order, rows, limit, held);
    }
    finish(plan, &order, rows, limit, held)
}

fn finish(
    plan: &ValidPlan,
    order: &RowOrder,
    rows: Vec<GroupRow>,
    limit: usize,
    held: u64,
) -> QueryResult {
    let shape = order.shape();
    let mut sortable: Vec<_> = rows
        .into_iter()
        .map(|row| (order.row(&row.0, &row.1), row))
        .collect();
    sortable.sort_by(|a, b| order.compare(&a.0, &b.0));
    let cap = plan.plan.limit.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut total = 0u64;
    for (sortable, row) in sortable {
        let copies = occurrences(shape, &row).min(cap - total);
        let shown = copies.min(limit.saturating_sub(out.len()) as u64);
        for _ in 0..shown {
            out.push(sortable.output.clone());
        }
        total += copies;
        if total >= cap || out.len() >= limit {
            break;
        }
    }
    out.truncate(limit);
    QueryResult {
        columns: plan.columns.clone(),
        rows: out,
        total: held.min(cap),
    }
}
