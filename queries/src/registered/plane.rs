//! The query plane: every registered query of the engine in one dataflow, built once, with
//! queries as data (docs/design.md §6).
//!
//! A dataflow per query would read every record once per query. Instead:
//!
//! * The [`Catalog`] (the same on every worker, since every worker registers the same
//!   queries in the same order) sorts queries into *projections* — what a query keeps of
//!   a record: its group key, the values it keeps distinct (COUNT(DISTINCT), MIN, MAX) and
//!   the columns it sums — and, within a projection and window, into *families*: the
//!   queries with the same WHERE and registration time, which have the same groups. A
//!   family is a [`Slot`] of [`FamilySums`]; identical queries share one.
//! * The gate ([`render_plane`]) reads each record once. It evaluates each distinct WHERE
//!   once, projects the record once per projection that a passing family keeps, and adds
//!   the record's sums to the slots of those families, pre-aggregated per (projection,
//!   key, values, tick). Families join and leave through a stream of [`PlaneChange`]s at
//!   timely times: the gate applies a record only once the changes' frontier has passed
//!   its time, so a family counts exactly the records placed from its registration on.
//! * Per window, the pane operator keeps the groups per (key, values, pane), and three
//!   arrangements hold what reads need, with the families' slots in their differences:
//!   the groups' sums, the number of distinct kept values, and the kept values themselves
//!   where a query orders them (MIN, MAX). A group's move from its tick to its pane
//!   cancels out in them; only records entering and panes leaving change them.
//! * A query's result is computed when it is read ([`read_part`]): its projection's groups
//!   on the worker, its slot's sums, then HAVING, ORDER BY and LIMIT. A read costs the
//!   projection's groups on the worker (bounded by `--max-query-groups`), and keeping a
//!   result costs nothing between reads.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::{KeySpine, ValSpine};
use differential_dataflow::{AsCollection, VecCollection};
use flowsight_events::Event;
use flowsight_operators::{GroupEntry, GroupSpan, Millis, PaneSchedule, Paned, TimeModel};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Operator};
use timely::dataflow::Stream;
use timely::progress::frontier::{Antichain, AntichainRef};

use super::family::{FamilySums, Slot};
use super::filter::Condition;
use super::row::{Datum, Part, RowOrder, Shape, Sums};
use super::{occurrences, QueryPart};
use crate::plan::{Column, PlanError, Term, ValidPlan};
use crate::read::complete_batches;

/// A projection's number in its plane's arrangements.
pub type ProjectionId = u32;

/// What a query keeps of a record, and so which queries can share groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Projection {
    /// The group key's columns.
    pub key: Vec<Column>,
    /// The columns whose distinct values a group keeps, with whether some query orders
    /// them (MIN or MAX), which keeps the values themselves readable.
    pub inputs: Vec<(Column, bool)>,
    /// The columns summed (COUNT(col), SUM, AVG).
    pub summed: Vec<Column>,
}

impl Projection {
    /// What a query of this shape keeps.
    pub fn of(shape: &Shape) -> Projection {
        Projection {
            key: shape.key.clone(),
            inputs: (0..shape.inputs.len())
                .map(|i| {
                    let (_, min, max) = shape.needs(i);
                    (shape.inputs[i], min || max)
                })
                .collect(),
            summed: shape.summed.clone(),
        }
    }

    /// The bits of the kept values some query orders.
    fn ordered_mask(&self) -> u16 {
        self.inputs
            .iter()
            .enumerate()
            .filter(|(_, (_, ordered))| *ordered)
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// A record's sums: `[1]`, then for each summed column 1 and its value, or 0 and 0 for
    /// NULL (as [`Shape::sums_of`]).
    fn sums_of(&self, event: &Event, into: &mut Vec<i128>) {
        into.clear();
        into.push(1);
        for column in &self.summed {
            match Datum::of(*column, event) {
                Datum::Null => into.extend([0, 0]),
                Datum::Int(value) => into.extend([1, value]),
                // COUNT(col) of a text column counts it; SUM and AVG take only integers.
                _ => into.extend([1, 0]),
            }
        }
    }
}

/// A family of queries: one window, projection, WHERE and registration time.
#[derive(Clone, Debug)]
pub struct FamilySpec {
    /// Its slot, unique in the engine's life.
    pub slot: Slot,
    /// The window's length.
    pub window: Millis,
    /// Its projection's number.
    pub projection: ProjectionId,
    /// What its queries keep of a record.
    pub kept: Projection,
    /// Its WHERE, compiled, and the number of that WHERE in the catalog (equal WHEREs are
    /// evaluated once per record).
    pub filter: Option<(u32, Condition<Column>)>,
    /// It counts the records placed at or after this time.
    pub from: Millis,
}

/// A change of the families the gate feeds, at the time it takes effect.
#[derive(Clone, Debug)]
pub enum PlaneChange {
    /// A family starts.
    Add(Box<FamilySpec>),
    /// A family's last query left: the gate feeds it no more. (What it holds leaves with
    /// its window; nothing reads it meanwhile.)
    Remove(Slot),
    /// No family added from now on counts from before this time: the gate may forget the
    /// records it applied before it. (A family added at time `C` may count from an earlier
    /// `from`, the as_of it was registered at; the gate then gives it the records applied
    /// in `[from, C)`, which it keeps until told to forget them — about one tick of
    /// records, those at the views' latest as_of.)
    Forget(Millis),
}

/// A query's place in the plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The window's length.
    pub window: Millis,
    /// Its projection.
    pub projection: ProjectionId,
    /// Its family.
    pub slot: Slot,
}

/// What tells families apart: window, projection, WHERE (by its number) and registration
/// time.
type FamilyKey = (Millis, ProjectionId, Option<u32>, Millis);

/// The families of one worker's plane, identical on every worker.
#[derive(Default)]
pub struct Catalog {
    projections: BTreeMap<Projection, ProjectionId>,
    filters: BTreeMap<String, u32>,
    /// Per (window, projection, WHERE, registration time): the family's slot and how
    /// many queries it serves.
    families: BTreeMap<FamilyKey, (Slot, usize)>,
    next_slot: Slot,
}

impl Catalog {
    /// Places a query registered at `from`: in the family of an equal query, or in a new
    /// one, which the returned change starts.
    pub fn join(
        &mut self,
        plan: &ValidPlan,
        from: Millis,
    ) -> Result<(Member, Option<PlaneChange>), PlanError> {
        let kept = Projection::of(&Shape::new(plan));
        let next = self.projections.len() as ProjectionId;
        let projection = *self.projections.entry(kept.clone()).or_insert(next);
        let filter = match &plan.plan.filter {
            Some(predicate) => {
                let condition = Condition::<Column>::compile(predicate)?;
                // Equal predicates, equal text (their validated form, printed): one
                // evaluation per record for all.
                let text = format!("{predicate:?}");
                let next = self.filters.len() as u32;
                Some((*self.filters.entry(text).or_insert(next), condition))
            }
            None => None,
        };
        let family = (
            plan.window,
            projection,
            filter.as_ref().map(|(id, _)| *id),
            from,
        );
        if let Some((slot, members)) = self.families.get_mut(&family) {
            *members += 1;
            let member = Member {
                window: plan.window,
                projection,
                slot: *slot,
            };
            return Ok((member, None));
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.families.insert(family, (slot, 1));
        let member = Member {
            window: plan.window,
            projection,
            slot,
        };
        let spec = FamilySpec {
            slot,
            window: plan.window,
            projection,
            kept,
            filter,
            from,
        };
        Ok((member, Some(PlaneChange::Add(Box::new(spec)))))
    }

    /// A query leaves its family; the returned change ends the family if it was the last.
    pub fn leave(&mut self, member: &Member) -> Option<PlaneChange> {
        let key = self
            .families
            .iter()
            .find(|(_, (slot, _))| *slot == member.slot)
            .map(|(key, _)| *key)?;
        let (slot, members) = self.families.get_mut(&key)?;
        *members -= 1;
        if *members > 0 {
            return None;
        }
        let slot = *slot;
        self.families.remove(&key);
        Some(PlaneChange::Remove(slot))
    }

    /// How many families are fed.
    pub fn families(&self) -> usize {
        self.families.len()
    }
}

/// A group of a projection in an arrangement: (projection, key).
pub type GroupKey = (ProjectionId, Vec<Datum>);
/// A kept column of a group: the group and the column's place in the projection.
///
/// It hashes as its group does, so that it is arranged on the worker that holds its
/// group's sums, where a read looks for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValueKey {
    /// The group.
    pub group: GroupKey,
    /// The kept column's place in the projection's kept values.
    pub input: u8,
}

impl Hash for ValueKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.group.hash(state);
    }
}

/// The sums of every family per group.
pub type SumsTrace = TraceAgent<KeySpine<GroupKey, Millis, FamilySums>>;
/// Per kept column of a group, its number of distinct values per family.
pub type DistinctTrace = TraceAgent<KeySpine<ValueKey, Millis, FamilySums>>;
/// Per kept column of a group that some query orders, its values (1 per family that
/// holds them).
pub type ValuesTrace = TraceAgent<ValSpine<ValueKey, Datum, Millis, FamilySums>>;

/// One window's arrangements.
#[derive(Clone)]
pub struct WindowTraces {
    /// Every family's sums per group.
    pub sums: SumsTrace,
    /// Every family's number of distinct values per kept column of a group.
    pub distinct: DistinctTrace,
    /// The values of the kept columns some query orders.
    pub values: ValuesTrace,
}

impl WindowTraces {
    /// Lets the arrangements forget times before `readable` and merge batches before
    /// `complete` (never past their own upper: the plane follows the views, a little
    /// behind, and batches merged beyond the upper would leave nothing readable).
    pub fn compact(
        &mut self,
        readable: AntichainRef<'_, Millis>,
        complete: AntichainRef<'_, Millis>,
    ) {
        use differential_dataflow::trace::TraceReader;
        fn one<Tr: TraceReader<Time = Millis>>(
            trace: &mut Tr,
            readable: AntichainRef<'_, Millis>,
            complete: AntichainRef<'_, Millis>,
        ) {
            trace.set_logical_compaction(readable);
            let mut upper = Antichain::new();
            trace.read_upper(&mut upper);
            let physical = match (upper.first(), complete.first()) {
                (Some(&u), Some(&c)) => Antichain::from_elem(u.min(c)),
                (Some(&u), None) => Antichain::from_elem(u),
                (None, _) => complete.to_owned(),
            };
            trace.set_physical_compaction(physical.borrow());
        }
        one(&mut self.sums, readable, complete);
        one(&mut self.distinct, readable, complete);
        one(&mut self.values, readable, complete);
    }

    /// Whether a read at `time` must wait: the plane has not completed it yet.
    pub fn behind(&mut self, time: Millis) -> bool {
        use differential_dataflow::trace::TraceReader;
        fn before<Tr: TraceReader<Time = Millis>>(trace: &mut Tr, time: Millis) -> bool {
            let mut upper = Antichain::new();
            trace.read_upper(&mut upper);
            upper.less_equal(&time)
        }
        // Each arrangement completes on its own: the values come after a threshold.
        before(&mut self.sums, time)
            || before(&mut self.distinct, time)
            || before(&mut self.values, time)
    }
}

/// The plane's arrangements, per window length.
pub type PlaneTraces = BTreeMap<Millis, WindowTraces>;

/// What [`render_plane`] builds on one worker.
pub struct PlaneRendered<'scope> {
    /// Each window's arrangements.
    pub traces: PlaneTraces,
    /// Completes a time once every window's arrangements have.
    pub progress: Stream<'scope, Millis, Vec<()>>,
    /// Per family, its number of groups (cluster-wide, each count seen on one worker),
    /// at each time it changes.
    pub groups: Stream<'scope, Millis, Vec<(Slot, u64)>>,
}

/// Records the gate applies per run, so that a time of many records does not hold the
/// worker for long.
pub const RECORDS_PER_RUN: usize = 65_536;

/// The key the gate pre-aggregates by: window, projection and which kept values are
/// ordered, the group key and kept values, and the record's tick.
type GateKey = (usize, ProjectionId, u16, Vec<Datum>, Vec<Datum>, Millis);
/// A pre-aggregated group on its way to its window's pane operator.
type Projected = (ProjectionId, u16, Vec<Datum>, Vec<Datum>);

/// The families the gate feeds, arranged for one pass per record.
#[derive(Default)]
struct Program {
    /// The windows, by length, as the gate numbers them.
    windows: Vec<Millis>,
    /// Every family, by slot.
    families: BTreeMap<Slot, FamilySpec>,
    /// The distinct WHEREs, by number, with their condition.
    filters: Vec<(u32, Condition<Column>)>,
    /// Per (window, projection): which kept values are ordered, the projection, and its
    /// families as (slot, index into `filters`, from), ascending by slot.
    #[allow(clippy::type_complexity)]
    groups: Vec<(
        usize,
        ProjectionId,
        u16,
        Projection,
        Vec<(Slot, Option<usize>, Millis)>,
    )>,
}

impl Program {
    fn rebuild(&mut self) {
        let mut filters: BTreeMap<u32, Condition<Column>> = BTreeMap::new();
        let mut groups: BTreeMap<(usize, ProjectionId), (Projection, Vec<_>)> = BTreeMap::new();
        for spec in self.families.values() {
            let Some(window) = self.windows.iter().position(|w| *w == spec.window) else {
                continue;
            };
            if let Some((id, condition)) = &spec.filter {
                filters.entry(*id).or_insert_with(|| condition.clone());
            }
            groups
                .entry((window, spec.projection))
                .or_insert_with(|| (spec.kept.clone(), Vec::new()))
                .1
                .push((
                    spec.slot,
                    spec.filter.as_ref().map(|(id, _)| *id),
                    spec.from,
                ));
        }
        self.filters = filters.into_iter().collect();
        let index_of = |id: u32| self.filters.iter().position(|(f, _)| *f == id);
        self.groups = groups
            .into_iter()
            .map(|((window, projection), (kept, families))| {
                let families = families
                    .into_iter()
                    .map(|(slot, filter, from)| (slot, filter.and_then(index_of), from))
                    .collect();
                (window, projection, kept.ordered_mask(), kept, families)
            })
            .collect();
    }

    /// Adds one record placed at `at` to the groups of the families that count it.
    fn apply(
        &self,
        event: &Event,
        at: Millis,
        time: TimeModel,
        scratch: &mut Scratch,
        into: &mut FxHashMap<GateKey, (GroupSpan, FamilySums)>,
    ) {
        scratch.verdicts.clear();
        scratch.verdicts.resize(self.filters.len(), None);
        for (window, projection, ordered, kept, families) in &self.groups {
            scratch.slots.clear();
            for (slot, filter, from) in families {
                if *from > at {
                    continue;
                }
                let passes = match filter {
                    None => true,
                    Some(f) => *scratch.verdicts[*f]
                        .get_or_insert_with(|| self.filters[*f].1.eval_record(event) == Some(true)),
                };
                if passes {
                    scratch.slots.push(*slot);
                }
            }
            if scratch.slots.is_empty() {
                continue;
            }
            kept.sums_of(event, &mut scratch.sums);
            let key = kept.key.iter().map(|c| Datum::of(*c, event)).collect();
            let values = kept
                .inputs
                .iter()
                .map(|(c, _)| Datum::of(*c, event))
                .collect();
            let tick = time.floor(event.ts);
            let gate_key = (*window, *projection, *ordered, key, values, tick);
            match into.entry(gate_key) {
                std::collections::hash_map::Entry::Occupied(mut group) => {
                    let (span, total) = group.get_mut();
                    span.first = span.first.min(event.ts);
                    span.last = span.last.max(event.ts);
                    total.add_uniform(&scratch.slots, &scratch.sums);
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let span = GroupSpan {
                        first: event.ts,
                        last: event.ts,
                    };
                    slot.insert((span, FamilySums::uniform(&scratch.slots, &scratch.sums)));
                }
            }
        }
    }
}

#[derive(Default)]
struct Scratch {
    verdicts: Vec<Option<bool>>,
    slots: Vec<Slot>,
    sums: Vec<i128>,
}

/// A time whose records the gate is applying: its capability, its records, how many of
/// them are applied, and the groups so far.
struct Applying {
    at: Millis,
    cap: Capability<Millis>,
    records: Vec<Event>,
    applied: usize,
    groups: FxHashMap<GateKey, (GroupSpan, FamilySums)>,
}

/// Emits the groups the gate gathered for one time, tagged with their window.
fn emit(
    session: &mut impl FnMut((usize, GroupEntry<Projected, FamilySums>)),
    at: Millis,
    groups: FxHashMap<GateKey, (GroupSpan, FamilySums)>,
) {
    for ((window, projection, ordered, key, values, _tick), (span, sums)) in groups {
        session((
            window,
            (((projection, ordered, key, values), span), at, sums),
        ));
    }
}

/// The gate's state: the families it feeds, what waits for the frontiers, and the records
/// it keeps for a family that starts with records already applied.
struct Gate {
    program: Program,
    time: TimeModel,
    /// Records waiting for both frontiers to pass their time.
    waiting: BTreeMap<Millis, (Capability<Millis>, Vec<Event>)>,
    /// Changes waiting for the records before them, each under a capability for its time.
    pending: BTreeMap<Millis, (Capability<Millis>, Vec<PlaneChange>)>,
    applying: Option<Applying>,
    /// The records applied at or after `forgotten`, by time: a family registered later
    /// may count from as early as that (see [`PlaneChange::Forget`]).
    kept: BTreeMap<Millis, Vec<Event>>,
    forgotten: Millis,
    scratch: Scratch,
}

impl Gate {
    /// Applies one change at `at`; a family that counts from before `at` is first given
    /// the kept records placed since, as groups at `at`.
    fn change(
        &mut self,
        at: Millis,
        change: PlaneChange,
        out: &mut impl FnMut((usize, GroupEntry<Projected, FamilySums>)),
    ) {
        match change {
            PlaneChange::Add(spec) => {
                if spec.from < at {
                    let mut alone = Program {
                        windows: self.program.windows.clone(),
                        ..Program::default()
                    };
                    alone.families.insert(spec.slot, (*spec).clone());
                    alone.rebuild();
                    let mut groups = FxHashMap::default();
                    for (&placed, records) in self.kept.range(spec.from..at) {
                        for event in records {
                            alone.apply(event, placed, self.time, &mut self.scratch, &mut groups);
                        }
                    }
                    emit(out, at, groups);
                }
                self.program.families.insert(spec.slot, *spec);
            }
            PlaneChange::Remove(slot) => {
                self.program.families.remove(&slot);
            }
            PlaneChange::Forget(before) => {
                self.forgotten = self.forgotten.max(before);
                self.kept = self.kept.split_off(&self.forgotten);
            }
        }
    }
}

/// Keeps what an input brought under a capability for its time, until the gate takes it.
fn stash<'a, D: 'a>(
    into: &mut BTreeMap<Millis, (Capability<Millis>, Vec<D>)>,
    cap: Capability<Millis>,
    data: impl Iterator<Item = &'a mut Vec<D>>,
) {
    let slot = into.entry(*cap.time()).or_insert_with(|| (cap, Vec::new()));
    for container in data {
        slot.1.append(container);
    }
}

/// Renders the plane over the records (each at the time it was placed) and the families'
/// `changes`, with one pane schedule per window (by its length).
pub fn render_plane<'scope>(
    events: Stream<'scope, Millis, Vec<Event>>,
    changes: Stream<'scope, Millis, Vec<PlaneChange>>,
    schedules: Vec<(Millis, PaneSchedule)>,
) -> PlaneRendered<'scope> {
    let windows: Vec<Millis> = schedules.iter().map(|(w, _)| *w).collect();
    let time = schedules
        .first()
        .map(|(_, s)| s.time())
        .unwrap_or_else(|| TimeModel::new(1_000).expect("a tick of one second is valid"));
    let scope = events.scope();
    type Tagged = (usize, GroupEntry<Projected, FamilySums>);
    let tagged: Stream<'scope, Millis, Vec<Tagged>> = events
        .binary_frontier::<_, flowsight_operators::VecBuilder<Tagged>, _, _, _, _>(
            changes,
            Pipeline,
            Pipeline,
            "QueryGate",
            move |_capability, info| {
                let activator = scope.activator_for(info.address);
                let mut gate = Gate {
                    program: Program {
                        windows: windows.clone(),
                        ..Program::default()
                    },
                    time,
                    waiting: BTreeMap::new(),
                    pending: BTreeMap::new(),
                    applying: None,
                    kept: BTreeMap::new(),
                    forgotten: 0,
                    scratch: Scratch::default(),
                };
                move |(records, record_frontier), (incoming, change_frontier), output| {
                    records.for_each_stamp(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash(&mut gate.waiting, cap, data);
                        }
                    });
                    incoming.for_each_stamp(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash(&mut gate.pending, cap, data);
                        }
                    });
                    let passed = |t: &Millis| {
                        !record_frontier.less_equal(t) && !change_frontier.less_equal(t)
                    };
                    let mut fuel = RECORDS_PER_RUN;
                    loop {
                        if gate.applying.is_none() {
                            let next_records = gate.waiting.keys().next().copied().filter(&passed);
                            // Changes at or before the next records' time take effect first.
                            while let Some(entry) = gate.pending.first_entry() {
                                let at = *entry.key();
                                if !passed(&at) || next_records.is_some_and(|r| r < at) {
                                    break;
                                }
                                let (cap, changes) = entry.remove();
                                let mut session = output.session(&cap);
                                for change in changes {
                                    gate.change(at, change, &mut |update| session.give(update));
                                }
                                drop(session);
                                gate.program.rebuild();
                            }
                            let Some(at) = next_records else {
                                break;
                            };
                            let Some((cap, records)) = gate.waiting.remove(&at) else {
                                break;
                            };
                            gate.applying = Some(Applying {
                                at,
                                cap,
                                records,
                                applied: 0,
                                groups: FxHashMap::default(),
                            });
                        }
                        let Some(work) = gate.applying.as_mut() else {
                            break;
                        };
                        if gate.program.groups.is_empty() {
                            work.applied = work.records.len();
                        }
                        let end = work.records.len().min(work.applied + fuel);
                        for event in &work.records[work.applied..end] {
                            gate.program.apply(
                                event,
                                work.at,
                                time,
                                &mut gate.scratch,
                                &mut work.groups,
                            );
                        }
                        fuel -= end - work.applied;
                        work.applied = end;
                        if work.applied < work.records.len() {
                            activator.activate();
                            break;
                        }
                        let done = gate.applying.take().expect("applying a time");
                        let mut session = output.session(&done.cap);
                        emit(&mut |update| session.give(update), done.at, done.groups);
                        if done.at >= gate.forgotten {
                            gate.kept.entry(done.at).or_default().extend(done.records);
                        }
                    }
                }
            },
        );

    let mut traces = PlaneTraces::new();
    let mut progress: Option<Stream<'scope, Millis, Vec<()>>> = None;
    let mut presence: Option<VecCollection<'scope, Millis, GroupKey, FamilySums>> = None;
    for (index, (window, schedule)) in schedules.into_iter().enumerate() {
        let paned: VecCollection<'scope, Millis, (Projected, GroupSpan), FamilySums> = tagged
            .clone()
            .flat_map(move |(w, entry)| (w == index).then_some(entry))
            .panes_named("QueryPanes", schedule);
        // A group's move from its tick to its pane cancels out here: only records entering
        // and panes leaving change the sums.
        let sums = paned
            .clone()
            .map(|((projection, _, key, _), _)| (projection, key))
            .arrange_by_self_named("QuerySums");
        let kept = paned
            .inner
            .flat_map(|(((projection, ordered, key, values), _), time, sums)| {
                let counts = sums.counts();
                values
                    .into_iter()
                    .enumerate()
                    .filter(|(_, value)| *value != Datum::Null)
                    .map(move |(i, value)| {
                        let ordered = ordered & (1 << i) != 0;
                        let group = (projection, key.clone());
                        let kept = ValueKey {
                            group,
                            input: i as u8,
                        };
                        ((kept, value, ordered), time, counts.clone())
                    })
                    .collect::<Vec<_>>()
            })
            .as_collection()
            .threshold_total(|_, counts: &FamilySums| counts.presence());
        let distinct = kept
            .clone()
            .map(|(key, _, _)| key)
            .arrange_by_self_named("QueryDistinct");
        let values = kept
            .filter(|(_, _, ordered)| *ordered)
            .map(|(key, value, _)| (key, value))
            .arrange_by_key_named("QueryValues");
        let present = sums
            .clone()
            .threshold_total(|_, sums: &FamilySums| sums.presence());
        presence = Some(match presence {
            Some(all) => all.concat(present),
            None => present,
        });
        let done = sums
            .stream
            .clone()
            .map(|_| ())
            .concat(distinct.stream.clone().map(|_| ()))
            .concat(values.stream.clone().map(|_| ()));
        progress = Some(match progress {
            Some(all) => all.concat(done),
            None => done,
        });
        traces.insert(
            window,
            WindowTraces {
                sums: sums.trace,
                distinct: distinct.trace,
                values: values.trace,
            },
        );
    }
    let (progress, groups) =
        match (progress, presence) {
            (Some(progress), Some(presence)) => {
                let groups = presence.map(|_| ()).count_total().inner.flat_map(
                    |(((), totals), _time, diff)| {
                        let mut counts = Vec::new();
                        if diff > 0 {
                            for (slot, n) in totals.iter() {
                                counts.push((slot, n.first().copied().unwrap_or(0).max(0) as u64));
                            }
                        }
                        counts
                    },
                );
                (progress, groups)
            }
            _ => {
                // No window: nothing to keep; the gate's output still completes times.
                let progress = tagged.map(|_| ());
                let groups = progress.clone().flat_map(|()| None);
                (progress, groups)
            }
        };
    PlaneRendered {
        traces,
        progress,
        groups,
    }
}

/// What reading one query needs: its place in the plane and its plan's aggregation.
#[derive(Clone, Debug)]
pub struct QueryReader {
    /// The query's place in the plane.
    pub member: Member,
    order: RowOrder,
    having: Option<Condition<Term>>,
}

impl QueryReader {
    /// The reader of `plan`, a member of the plane as `member`.
    pub fn new(plan: &ValidPlan, member: Member) -> Result<QueryReader, PlanError> {
        Ok(QueryReader {
            member,
            order: RowOrder::new(plan),
            having: plan
                .plan
                .having
                .as_ref()
                .map(Condition::<Term>::compile)
                .transpose()?,
        })
    }
}

/// Accumulates one slot's sums in the differences of the cursor's current (key, value) up
/// to `as_of` (empty when the slot has none): a read looks at its own family only.
fn accumulated<C: Cursor<Time = Millis>>(
    cursor: &mut C,
    storage: &C::Storage,
    as_of: Millis,
    slot: Slot,
) -> Vec<i128>
where
    for<'a> C::DiffGat<'a>: std::borrow::Borrow<FamilySums>,
    for<'a> C::TimeGat<'a>: std::borrow::Borrow<Millis>,
{
    use std::borrow::Borrow;
    let mut total: Vec<i128> = Vec::new();
    cursor.map_times(storage, |time, diff| {
        if *time.borrow() > as_of {
            return;
        }
        if let Some(sums) = diff.borrow().get(slot) {
            if total.len() < sums.len() {
                total.resize(sums.len(), 0);
            }
            for (a, b) in total.iter_mut().zip(sums) {
                *a += b;
            }
        }
    });
    total
}

/// Reads one worker's part of a query's result at `as_of`: its groups from the plane,
/// aggregated, filtered by HAVING and ordered, the first `limit` of them.
pub fn read_part(
    traces: &mut WindowTraces,
    reader: &QueryReader,
    as_of: Millis,
    limit: usize,
) -> QueryPart {
    let shape = reader.order.shape();
    let Member {
        projection, slot, ..
    } = reader.member;
    let (Some(sums), Some(distinct), Some(values)) = (
        complete_batches(&mut traces.sums),
        complete_batches(&mut traces.distinct),
        complete_batches(&mut traces.values),
    ) else {
        return QueryPart::default();
    };
    let (mut groups, group_storage) = cursor_list(sums);
    let (mut counts, count_storage) = cursor_list(distinct);
    let (mut kept, kept_storage) = cursor_list(values);
    let needs: Vec<(bool, bool, bool)> = (0..shape.inputs.len()).map(|i| shape.needs(i)).collect();

    let mut rows = Vec::new();
    groups.seek_key(&group_storage, &(projection, Vec::new()));
    while let Some(group) = groups.get_key(&group_storage) {
        if group.0 != projection {
            break;
        }
        let key = group.1.clone();
        let records = Sums(accumulated(&mut groups, &group_storage, as_of, slot));
        groups.step_key(&group_storage);
        if records.records() <= 0 {
            continue;
        }
        let mut parts = vec![Part::Sums(records)];
        for (input, (count_distinct, min, max)) in needs.iter().copied().enumerate() {
            let value_key = ValueKey {
                group: (projection, key.clone()),
                input: input as u8,
            };
            if count_distinct {
                counts.seek_key(&count_storage, &value_key);
                let n = match counts.get_key(&count_storage) {
                    Some(found) if *found == value_key => {
                        let n = accumulated(&mut counts, &count_storage, as_of, slot);
                        n.first().copied().unwrap_or(0)
                    }
                    _ => 0,
                };
                parts.push(Part::Distinct(input, n));
            }
            if min || max {
                kept.seek_key(&kept_storage, &value_key);
                let mut present = Vec::new();
                if kept.get_key(&kept_storage) == Some(&value_key) {
                    while let Some(value) = kept.get_val(&kept_storage) {
                        let value = value.clone();
                        let held = accumulated(&mut kept, &kept_storage, as_of, slot);
                        if held.first().is_some_and(|n| *n > 0) {
                            present.push(value);
                        }
                        kept.step_val(&kept_storage);
                    }
                }
                if let (true, Some(least)) = (min, Shape::min_of(present.iter())) {
                    parts.push(Part::Min(input, least));
                }
                if let (true, Some(greatest)) = (max, Shape::max_of(present.iter())) {
                    parts.push(Part::Max(input, greatest));
                }
            }
        }
        let parts: Vec<(&Part, isize)> = parts.iter().map(|p| (p, 1)).collect();
        let Some(aggregates) = shape.combine(&parts) else {
            continue;
        };
        // Without GROUP BY the one group is always kept, and HAVING is applied when the
        // parts are merged: a group HAVING rejects must not read as "no records", which
        // gives the row of an empty input instead.
        let keep = key.is_empty()
            || reader.having.as_ref().is_none_or(|having| {
                having.eval(&|t: &Term| shape.term(t, &key, &aggregates)) == Some(true)
            });
        if keep {
            rows.push((key, aggregates));
        }
    }

    let mut sortable: Vec<_> = rows
        .into_iter()
        .map(|row| (reader.order.row(&row.0, &row.1), row))
        .collect();
    sortable.sort_by(|a, b| reader.order.compare(&a.0, &b.0));
    let total = sortable
        .iter()
        .map(|(_, row)| occurrences(shape, row))
        .sum();
    let mut kept_rows = Vec::new();
    let mut taken = 0u64;
    for (_, row) in sortable {
        if taken >= limit as u64 {
            break;
        }
        taken += occurrences(shape, &row);
        kept_rows.push(row);
    }
    QueryPart {
        rows: kept_rows,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::Hashable;

    #[test]
    fn a_kept_column_is_arranged_with_its_group() {
        let group: GroupKey = (3, vec![Datum::Int(7), Datum::Null]);
        for input in 0..4 {
            let kept = ValueKey {
                group: group.clone(),
                input,
            };
            assert_eq!(kept.hashed(), group.hashed());
        }
    }
}
