//! Registered queries as dataflows: the shared arrangements of each window's records that
//! the queries read, the rendering of a validated [`ValidPlan`], and how its result is read
//! at an `as_of` and merged across workers.
//!
//! The engine renders [`render_records`] once per configured window, in the dataflow of the
//! built-in views, and each registered query in a dataflow of its own that imports its
//! window's arrangement — with its history, so a query registered late still covers its
//! whole window. A record leaves a window's arrangement at its own time plus the window, so
//! a query needs no window logic of its own: what it would hold to retract records as they
//! leave its window is held once, in the shared arrangement, for every query over that
//! window. A query's dataflow:
//!
//! 1. applies WHERE to the records and projects each passing one onto its group key, the
//!    values its group keeps and its accumulable part,
//! 2. groups by the key and aggregates each group in one `reduce` (HAVING applied there),
//! 3. with a LIMIT, keeps the top rows incrementally: first per hash bucket of groups, then
//!    overall, so that no single reduction sorts every group on every change,
//! 4. arranges the result rows, which peeks read.

pub(crate) mod filter;
mod row;

use std::hash::{Hash, Hasher};

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::trace::implementations::KeySpine;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::VecCollection;
use flowsight_events::Event;
use flowsight_operators::consolidate::PreConsolidate;
use flowsight_operators::{Millis, PaneSchedule, PreAggregateWindowed};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;
use timely::progress::frontier::{Antichain, AntichainRef};

pub use filter::{Condition, Pattern};
pub use row::{Datum, Part, RowOrder, Shape, Sums};

use crate::plan::{Column, ColumnExt, PlanError, Term, ValidPlan, Value};
use crate::read::{visit_rows, Next, RowTrace};

/// The shared arrangement of every record of one window, counted by copies.
pub type RecordsTrace = TraceAgent<KeySpine<Record, Millis, isize>>;

/// The records arrangement of each window, by the window's length.
pub type WindowRecords = std::collections::BTreeMap<Millis, RecordsTrace>;

/// A record as the records arrangement holds it and exchanges it between processes (an
/// event keeps its absent duration when bincode carries it: see `Event`'s `Serialize`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Record(pub Event);

/// A result row inside the dataflow: the group key and its aggregates.
pub type GroupRow = (Vec<Datum>, Vec<Datum>);

/// A query's result rows, keyed by a hash of the group (or by 0 once reduced to a top-k).
pub type QueryTrace = RowTrace<u64, GroupRow>;

/// How many buckets the first stage of a top-k spreads the groups over.
const TOP_K_BUCKETS: u64 = 64;

/// Arranges every record for one window (`schedule`, a window and its pane): each enters at
/// its timely time and leaves when the window's start has passed it, late records included
/// (docs/design.md §3).
pub fn render_records<'scope>(
    events: Stream<'scope, Millis, Vec<Event>>,
    schedule: PaneSchedule,
) -> Arranged<'scope, RecordsTrace> {
    events
        .pre_aggregate_windowed_named("QueryRecordGroups", schedule, |e: &Event| {
            (Record(e.clone()), e.ts, 1isize)
        })
        .map(|(record, _span)| record)
        .arrange_by_self_named("QueryRecords")
}

/// What [`render_query`] builds on one worker.
pub struct QueryRendered<'scope> {
    /// The arrangement of this worker's result rows, which [`read_part`] reads.
    pub trace: QueryTrace,
    /// Completes a time once the result arrangement has.
    pub progress: Stream<'scope, Millis, Vec<()>>,
    /// The number of groups the query keeps, cluster-wide, at each time it changes (seen
    /// on one worker only).
    pub groups: Stream<'scope, Millis, Vec<(Millis, u64)>>,
}

/// Renders a validated query over `records`, the collection of its window's records (see
/// [`render_records`]).
pub fn render_query<'scope>(
    records: VecCollection<'scope, Millis, Event, isize>,
    plan: &ValidPlan,
) -> Result<QueryRendered<'scope>, PlanError> {
    let order = RowOrder::new(plan);
    let shape = order.shape().clone();
    let filter = plan
        .plan
        .filter
        .as_ref()
        .map(Condition::<Column>::compile)
        .transpose()?;
    let having = plan
        .plan
        .having
        .as_ref()
        .map(Condition::<Term>::compile)
        .transpose()?;

    // WHERE first. Then each part of the groups' aggregates is kept by an operator that
    // works per change, not per group: a group's COUNT(*), COUNT(col), SUM and AVG ride in
    // the difference of its key (accumulated by `count_total`), COUNT(DISTINCT) counts the
    // group's distinct (key, value) pairs, and MIN and MAX reduce those distinct pairs. A
    // final reduction per group only combines its few parts (and applies HAVING), so a new
    // record costs the same in a group of ten records or of a million.
    let passing = match filter {
        Some(filter) => {
            records.filter(move |e: &Event| filter.eval(&|c: &Column| c.value(e)) == Some(true))
        }
        None => records,
    };
    let split = shape.clone();
    let mut parts: VecCollection<'scope, Millis, (Vec<Datum>, Part), isize> = passing
        .clone()
        .explode(move |e: Event| Some((split.key_of(&e), split.sums_of(&e))))
        .pre_consolidate_named("QuerySums")
        .count_total()
        .map(|(key, sums)| (key, Part::Sums(sums)));
    for (input, &column) in shape.inputs.iter().enumerate() {
        let (count_distinct, min, max) = shape.needs(input);
        let split = shape.clone();
        let distinct = passing
            .clone()
            .flat_map(move |e: Event| {
                let value = Datum::of(column, &e);
                (value != Datum::Null).then(|| (split.key_of(&e), value))
            })
            .pre_consolidate_named("QueryKeptValues")
            .threshold_total(|_, _| 1isize);
        if count_distinct {
            parts = parts.concat(
                distinct
                    .clone()
                    .map(|(key, _)| key)
                    .count_total()
                    .map(move |(key, n)| (key, Part::Distinct(input, n as i128))),
            );
        }
        if min || max {
            parts = parts.concat(distinct.reduce_named(
                "QueryMinMax",
                move |_, values: &[(&Datum, isize)], output| {
                    let present = || values.iter().filter(|(_, n)| *n > 0).map(|(v, _)| *v);
                    if let (true, Some(least)) = (min, Shape::min_of(present())) {
                        output.push((Part::Min(input, least), 1));
                    }
                    if let (true, Some(greatest)) = (max, Shape::max_of(present())) {
                        output.push((Part::Max(input, greatest), 1));
                    }
                },
            ));
        }
    }

    let aggregate = shape.clone();
    let groups: VecCollection<'scope, Millis, (Vec<Datum>, Vec<Datum>), isize> = parts
        .reduce_named("QueryGroups", move |key, parts, output| {
            let Some(aggregates) = aggregate.combine(parts) else {
                return;
            };
            // Without GROUP BY the one group is always kept, and HAVING is applied when
            // the result is read: a group HAVING rejects must not read as "no records",
            // which gives the row of an empty input instead.
            let keep = key.is_empty()
                || having.as_ref().is_none_or(|having| {
                    having.eval(&|t: &Term| aggregate.term(t, key, &aggregates)) == Some(true)
                });
            if keep {
                output.push((aggregates, 1isize));
            }
        });

    let counted = groups
        .clone()
        .map(|_| ((), ()))
        .reduce_named("QueryGroupCount", |_, values, output| {
            output.push((values[0].1 as u64, 1isize))
        })
        .inner
        .flat_map(|(((), count), time, diff)| (diff > 0).then_some((time, count)));

    let rows = match plan.plan.limit {
        None => groups.map(|row| (bucket_of(&row.0, u64::MAX), row)),
        Some(limit) => {
            let first = order.clone();
            let last = order.clone();
            groups
                .map(|row| (bucket_of(&row.0, TOP_K_BUCKETS), row))
                .reduce_named("QueryTopKBuckets", move |_, values, output| {
                    top_rows(&first, values, limit, output)
                })
                .map(|(_, row)| (0u64, row))
                .reduce_named("QueryTopK", move |_, values, output| {
                    top_rows(&last, values, limit, output)
                })
        }
    };
    let arranged = rows.arrange_by_key_named("QueryResult");
    let progress = arranged.stream.clone().map(|_| ());
    Ok(QueryRendered {
        trace: arranged.trace,
        progress,
        groups: counted,
    })
}

/// Where a group goes: a hash of its key, folded into `buckets`.
fn bucket_of(key: &[Datum], buckets: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let hash = hasher.finish();
    if buckets == u64::MAX {
        hash
    } else {
        hash % buckets
    }
}

/// Keeps the first `limit` rows of a bucket in result order (a row of a query without
/// aggregates counts as many times as it occurs).
fn top_rows(
    order: &RowOrder,
    values: &[(&GroupRow, isize)],
    limit: u64,
    output: &mut Vec<(GroupRow, isize)>,
) {
    let mut rows: Vec<(row::SortableRow, &GroupRow)> = values
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(row, _)| (order.row(&row.0, &row.1), *row))
        .collect();
    rows.sort_by(|a, b| order.compare(&a.0, &b.0));
    let mut taken = 0u64;
    for (_, row) in rows {
        if taken >= limit {
            break;
        }
        taken += occurrences(order.shape(), row);
        output.push((row.clone(), 1));
    }
}

/// How many result rows a group stands for: one, or, without aggregates, its COUNT(*).
fn occurrences(shape: &Shape, row: &GroupRow) -> u64 {
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

/// Reads one worker's part of a query's result at `as_of`: its first `limit` rows.
pub fn read_part(
    trace: &mut QueryTrace,
    plan: &ValidPlan,
    as_of: Millis,
    limit: usize,
) -> QueryPart {
    let order = RowOrder::new(plan);
    let mut rows = Vec::new();
    visit_rows(trace, as_of, None, |_, values| {
        rows.extend(values.into_iter().map(|(row, _)| row));
        Next::Continue
    });
    let mut sortable: Vec<_> = rows
        .into_iter()
        .map(|row| (order.row(&row.0, &row.1), row))
        .collect();
    sortable.sort_by(|a, b| order.compare(&a.0, &b.0));
    let total = sortable
        .iter()
        .map(|(_, row)| occurrences(order.shape(), row))
        .sum();
    let mut kept = Vec::new();
    let mut taken = 0u64;
    for (_, row) in sortable {
        if taken >= limit as u64 {
            break;
        }
        taken += occurrences(order.shape(), &row);
        kept.push(row);
    }
    QueryPart { rows: kept, total }
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

/// Lets a query's result arrangement forget times before `readable` and merge batches
/// before `complete`.
pub fn compact(
    trace: &mut QueryTrace,
    readable: AntichainRef<'_, Millis>,
    complete: AntichainRef<'_, Millis>,
) {
    trace.set_logical_compaction(readable);
    // A query's dataflow completes on its own schedule (a late one is still reading the
    // records' history), so `complete` may be past its upper: merging batches beyond the
    // upper would leave nothing readable through it.
    let mut upper = Antichain::new();
    trace.read_upper(&mut upper);
    let physical = match (upper.first(), complete.first()) {
        (Some(&u), Some(&c)) => Antichain::from_elem(u.min(c)),
        (Some(&u), None) => Antichain::from_elem(u),
        (None, _) => complete.to_owned(),
    };
    trace.set_physical_compaction(physical.borrow());
}
