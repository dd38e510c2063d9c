//! Registered queries as dataflows: the tap of records the queries read, the rendering of
//! a validated [`ValidPlan`], and how its result is read at an `as_of` and merged across
//! workers.
//!
//! The engine renders [`render_tap`] once, in the dataflow of the built-in views: an
//! arrangement in which every record stays for one tick only, so it holds about one tick
//! of records however long the windows are (with no query registered, that is all
//! registered queries cost). Each registered query is a dataflow of its own that imports
//! the tap, takes the records placed from its registration on, and keeps only what it
//! needs of them (docs/design.md §6):
//!
//! 1. applies WHERE to each record and projects a passing one onto its group key, the
//!    values its group keeps (for COUNT(DISTINCT), MIN and MAX) and its accumulable part
//!    ([`Sums`]: COUNT(*), COUNT(col), SUM, AVG),
//! 2. keeps those projections in the query's window per (key, values, pane) — the pane
//!    operator of the built-in views, so that state grows with distinct groups and panes,
//!    never with records, and the window leaves as the built-in views' windows do,
//! 3. groups by the key and aggregates each group in one `reduce` (HAVING applied there),
//! 4. with a LIMIT, keeps the top rows incrementally: first per hash bucket of groups, then
//!    overall, so that no single reduction sorts every group on every change,
//! 5. arranges the result rows, which peeks read.

pub(crate) mod filter;
mod row;

use std::hash::{Hash, Hasher};

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::trace::implementations::KeySpine;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::AsCollection;
use differential_dataflow::VecCollection;
use flowsight_events::Event;
use flowsight_operators::{Millis, PaneSchedule, PreAggregateWindowed};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;
use timely::progress::frontier::{Antichain, AntichainRef};

pub use filter::{Condition, Pattern};
pub use row::{Datum, Part, RowOrder, Shape, Sums};

use crate::plan::{Column, ColumnExt, PlanError, Term, ValidPlan, Value};
use crate::read::{visit_rows, Next, RowTrace};

/// A record in the tap: the time it was placed at (its timely time when it entered), and
/// the record.
pub type TapRecord = (Millis, Record);

/// The tap registered queries read: the records of the last tick, counted by copies.
pub type TapTrace = TraceAgent<KeySpine<TapRecord, Millis, isize>>;

/// A record as the tap holds it and exchanges it between processes (an event keeps its
/// absent duration when bincode carries it: see `Event`'s `Serialize`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Record(pub Event);

/// A result row inside the dataflow: the group key and its aggregates.
pub type GroupRow = (Vec<Datum>, Vec<Datum>);

/// A query's result rows, keyed by a hash of the group (or by 0 once reduced to a top-k).
pub type QueryTrace = RowTrace<u64, GroupRow>;

/// How many buckets the first stage of a top-k spreads the groups over.
const TOP_K_BUCKETS: u64 = 64;

/// Arranges the tap: every record enters at the time it is placed at and leaves one `tick`
/// later, so that the tap holds about one tick of records. A query's dataflow imports it
/// and keeps the records itself, projected (see [`render_query`]).
pub fn render_tap<'scope>(
    events: Stream<'scope, Millis, Vec<Event>>,
    tick: Millis,
) -> Arranged<'scope, TapTrace> {
    let entering = events
        .unary::<flowsight_operators::VecBuilder<(TapRecord, Millis, isize)>, _, _, _>(
            Pipeline,
            "QueryTapEnter",
            |_capability, _info| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let at = *cap.time();
                        let mut session = output.session(&cap);
                        for event in data.flat_map(|container| container.drain(..)) {
                            session.give(((at, Record(event)), at, 1isize));
                        }
                    });
                }
            },
        )
        .as_collection();
    entering
        .clone()
        .concat(entering.negate().delay(move |t| t.saturating_add(tick)))
        .arrange_by_self_named("QueryTap")
}

/// The records of the tap a query counts, each at the time it was placed at: those placed
/// at or after `from` (its registration) that pass `filter`. The tap's retractions, one
/// tick later, only bound the tap's own state and are not records leaving.
fn entering_records<'scope>(
    tap: VecCollection<'scope, Millis, TapRecord, isize>,
    from: Millis,
    filter: Option<Condition<Column>>,
) -> Stream<'scope, Millis, Vec<Event>> {
    tap.inner
        .unary::<flowsight_operators::VecBuilder<Event>, _, _, _>(
            Pipeline,
            "QueryEntering",
            |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        for ((placed, Record(event)), time, copies) in
                            data.flat_map(|container| container.drain(..))
                        {
                            // Placed before the query was registered: not its records. (The
                            // tap's times are the records' own until it is compacted, which
                            // the engine holds at the registration's time.)
                            if copies <= 0 || placed < from {
                                continue;
                            }
                            let passes = filter.as_ref().is_none_or(|filter| {
                                filter.eval(&|c: &Column| c.value(&event)) == Some(true)
                            });
                            if passes {
                                let at = cap.delayed(&time.max(placed));
                                let mut session = output.session(&at);
                                for _ in 1..copies {
                                    session.give(event.clone());
                                }
                                session.give(event);
                            }
                        }
                    });
                }
            },
        )
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

/// Renders a validated query over the `tap` (see [`render_tap`]): the records placed at or
/// after `from`, kept in the query's window by `schedule` (the window and its pane).
pub fn render_query<'scope>(
    tap: VecCollection<'scope, Millis, TapRecord, isize>,
    plan: &ValidPlan,
    schedule: PaneSchedule,
    from: Millis,
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

    // WHERE first, then each passing record projected onto (group key, kept values) with
    // its accumulable part, kept per (key, values, pane) for as long as the window holds
    // it: the query's state grows with its distinct groups and panes, never with records.
    let project = shape.clone();
    let kept: VecCollection<'scope, Millis, (Vec<Datum>, Vec<Datum>), Sums> =
        entering_records(tap, from, filter)
            .pre_aggregate_windowed_named("QueryPanes", schedule, move |e: &Event| {
                let values = project
                    .inputs
                    .iter()
                    .map(|column| Datum::of(*column, e))
                    .collect();
                ((project.key_of(e), values), e.ts, project.sums_of(e))
            })
            .map(|(projected, _span)| projected);

    // Each part of the groups' aggregates is kept by an operator that works per change,
    // not per group: a group's COUNT(*), COUNT(col), SUM and AVG ride in the difference of
    // its key (accumulated by `count_total`), COUNT(DISTINCT) counts the group's distinct
    // (key, value) pairs, and MIN and MAX reduce those distinct pairs. A final reduction per
    // group only combines its few parts (and applies HAVING), so a new record costs the
    // same in a group of ten records or of a million.
    let mut parts: VecCollection<'scope, Millis, (Vec<Datum>, Part), isize> = kept
        .clone()
        .map(|(key, _values)| key)
        .count_total()
        .map(|(key, sums)| (key, Part::Sums(sums)));
    for input in 0..shape.inputs.len() {
        let (count_distinct, min, max) = shape.needs(input);
        if !(count_distinct || min || max) {
            continue;
        }
        // Only how many records hold each (key, value) matters here: carried as a plain
        // count, not as the whole sums, which the arrangements below would keep per update.
        let distinct = kept
            .inner
            .clone()
            .flat_map(move |((key, values), time, sums)| {
                let value = values.into_iter().nth(input).unwrap_or(Datum::Null);
                let records = isize::try_from(sums.records()).unwrap_or(isize::MAX);
                (value != Datum::Null && records != 0).then_some(((key, value), time, records))
            })
            .as_collection()
            .threshold_total(|_, records: &isize| isize::from(*records > 0));
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
