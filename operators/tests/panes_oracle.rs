//! `pre_aggregate_by_tick_named` then `panes_named` against an independent oracle of the
//! windows' documented semantics (operators/src/panes.rs, operators/src/window.rs).
//!
//! A window of length `W` with pane `p` holds, as of `T`, the records with
//! `floor_p(T − W) ≤ ts < T` that have entered by `T`; a record entering at timely time `at`
//! (its own time `floor_tick(ts) + tick`, or later when it is late) is visible from `at` on.
//! The collection at `as_of` `T` is the sum of the updates at times `≤ T`, and window `w` is
//! read from it by summing the groups whose `span.first ≥ schedule.window_start(w, T)`.
//!
//! * The **harness** drives a one-worker timely dataflow through an explicit input handle,
//!   advancing the input to every tick (and every off-tick arrival) up to a horizon by which
//!   everything has left the longest window, stepping the worker between advances or not
//!   (so that the operators see their input in different batches), and captures every update.
//! * The **oracle** is plain Rust over the `(key, ts, aggregate, arrival)` script: it
//!   recomputes every window's start from its length and pane (`floor_p(T − W)`, written
//!   out again here) and sums the records that have arrived.
//! * The **property** (random schedules of one to three nested windows, random records, on
//!   time, late, late past a move, late beyond the retention) checks at every as_of: every
//!   window's sum per key equals the oracle; no group has a negative sum; every group is
//!   either a tick group (within one tick) or an aligned bucket of one of the panes; nothing
//!   is kept that has left the longest window; no window reads a bucket coarser than its own
//!   pane; at the horizon the collection is empty. It also checks that every group added at
//!   the tick is one (key, tick, arrival) of records with their exact min / max timestamps
//!   and sum, and that none is added for records that arrived after they had left every
//!   window (a late group may instead enter straight in the pane its tick is in by then).
//! * A **deterministic** test (one key, a record every 100 ms for 10 minutes, windows
//!   60 s : 10 s and 300 s : 60 s) shows that what the collection holds grows with
//!   (key, pane), not with records, while the sums stay exact.
//! * A **sanity** test shows that the property catches a wrong window start.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use flowsight_operators::{
    GroupSpan, Millis, PaneSchedule, Paned, PreAggregateByTick, Stage, TimeModel,
    MOVES_PER_ACTIVATION,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use timely::dataflow::operators::capture::{Capture, Extract};
use timely::dataflow::operators::Probe;
use timely::dataflow::InputHandle;

const TICK: Millis = 1_000;

/// One record of a script: its key, event timestamp, aggregate and the timely time at
/// which it enters (at or after its own time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rec {
    key: u8,
    ts: Millis,
    agg: i64,
    at: Millis,
}

type Update = ((u8, GroupSpan), Millis, i64);

fn time() -> TimeModel {
    TimeModel::new(TICK).unwrap()
}

fn floor(x: Millis, len: Millis) -> Millis {
    x - x % len
}

fn own_time(ts: Millis) -> Millis {
    floor(ts, TICK) + TICK
}

/// The oracle's window start, written out from the documented rule `floor_p(T − W)`.
fn oracle_start(stage: Stage, as_of: Millis) -> Millis {
    floor(as_of.saturating_sub(stage.window), stage.pane)
}

/// Runs the two operators over `records` on one worker and returns every update they
/// output. The input advances through `times` (ascending); records are sent when the
/// input is at their arrival time. After the `i`-th advance the worker is stepped until
/// the output has caught up iff `drain[i % drain.len()]`.
fn run(
    schedule: &PaneSchedule,
    records: &[Rec],
    times: &BTreeSet<Millis>,
    drain: &[bool],
    moves_per_run: usize,
) -> Vec<Update> {
    let schedule = schedule.clone();
    let mut by_arrival: BTreeMap<Millis, Vec<(u8, Millis, i64)>> = BTreeMap::new();
    for r in records {
        assert!(
            times.contains(&r.at),
            "arrival {} is not an input time",
            r.at
        );
        by_arrival
            .entry(r.at)
            .or_default()
            .push((r.key, r.ts, r.agg));
    }
    let times: Vec<Millis> = times.iter().copied().collect();
    let drain = drain.to_vec();
    let receiver = timely::execute_directly(move |worker| {
        let mut input = InputHandle::new();
        let (probe, receiver) = worker.dataflow::<Millis, _, _>(|scope| {
            let (probe, stream) = input
                .to_stream(scope)
                .pre_aggregate_by_tick_named("Ticks", schedule.time(), |r: &(u8, Millis, i64)| *r)
                .panes_fuelled("Panes", schedule, moves_per_run)
                .inner
                .probe();
            (probe, stream.capture())
        });
        for (i, &t) in times.iter().enumerate() {
            input.advance_to(t);
            for record in by_arrival.remove(&t).unwrap_or_default() {
                input.send(record);
            }
            if drain[i % drain.len()] {
                while probe.less_than(&t) {
                    worker.step();
                }
            }
        }
        drop(input);
        receiver
    });
    receiver
        .extract()
        .into_iter()
        .flat_map(|(_, updates)| updates)
        .collect()
}

/// What the checks saw, for the tests that bound it.
#[derive(Debug, Default)]
struct Stats {
    /// The most groups (of any key) the collection held at any as_of checked.
    max_groups: usize,
    /// The groups held at each as_of checked.
    groups_at: BTreeMap<Millis, usize>,
}

/// Checks the captured `updates` of a run over `records` against the oracle at every
/// as_of in `times` (ascending; its last is the horizon), for `keys`.
fn check(
    schedule: &PaneSchedule,
    records: &[Rec],
    keys: &[u8],
    updates: &[Update],
    times: &BTreeSet<Millis>,
    start: impl Fn(Stage, Millis) -> Millis,
) -> Result<Stats, TestCaseError> {
    let stages = schedule.stages().to_vec();
    let longest = stages.len() - 1;
    let panes: BTreeSet<Millis> = stages.iter().map(|s| s.pane).collect();
    let horizon = *times.iter().next_back().unwrap();

    // Entries: every group added at the tick is one (key, tick, arrival) of records, with
    // their exact min / max timestamps and sum (a late group may instead enter straight in
    // the pane its tick is in by then, which the sums below check); none is for records
    // that arrived after they had left the longest window.
    let mut expected: BTreeMap<(u8, Millis, Millis), (Millis, Millis, i64)> = BTreeMap::new();
    for r in records {
        if start(stages[longest], r.at) > r.ts {
            continue; // Beyond the retention when it arrived.
        }
        let e = expected
            .entry((r.key, floor(r.ts, TICK), r.at))
            .or_insert((r.ts, r.ts, 0));
        e.0 = e.0.min(r.ts);
        e.1 = e.1.max(r.ts);
        e.2 += r.agg;
    }
    let is_tick_group = |span: &GroupSpan| floor(span.first, TICK) == floor(span.last, TICK);
    for &((key, span), at, diff) in updates {
        if diff > 0 && is_tick_group(&span) {
            let entry = expected.remove(&(key, floor(span.first, TICK), at));
            prop_assert_eq!(
                entry,
                Some((span.first, span.last, diff)),
                "tick group {:?} of key {} added at {} with {}: not the records that arrived then",
                span,
                key,
                at,
                diff
            );
        }
    }

    for &(_, t, _) in updates {
        prop_assert!(
            t <= horizon,
            "an update at {} after the horizon {}",
            t,
            horizon
        );
    }

    let mut sorted: Vec<Update> = updates.to_vec();
    sorted.sort_by_key(|&(_, t, _)| t);
    let mut pending = sorted.into_iter().peekable();
    let mut held: BTreeMap<(u8, GroupSpan), i64> = BTreeMap::new();
    let mut stats = Stats::default();

    for &as_of in times {
        // The collection at `as_of`: every update at a time ≤ `as_of`.
        while let Some(&(group, _, diff)) = pending.peek().filter(|(_, t, _)| *t <= as_of) {
            pending.next();
            let sum = held.entry(group).or_insert(0);
            *sum += diff;
            if *sum == 0 {
                held.remove(&group);
            }
        }
        stats.max_groups = stats.max_groups.max(held.len());
        stats.groups_at.insert(as_of, held.len());

        // Structure.
        for (&(key, span), &sum) in &held {
            prop_assert!(
                sum > 0,
                "as of {}: group {:?} of key {} has sum {}",
                as_of,
                span,
                key,
                sum
            );
            prop_assert!(span.first <= span.last, "as of {}: {:?}", as_of, span);
            if !is_tick_group(&span) {
                let len = span.last - span.first + 1;
                prop_assert!(
                    panes.contains(&len) && len > TICK && span.first % len == 0,
                    "as of {}: group {:?} of key {} is neither within a tick nor an aligned pane",
                    as_of,
                    span,
                    key
                );
            }
            prop_assert!(
                span.first >= schedule.window_start(longest, as_of),
                "as of {}: group {:?} of key {} has left the longest window (from {})",
                as_of,
                span,
                key,
                schedule.window_start(longest, as_of)
            );
            for (w, stage) in stages.iter().enumerate() {
                if span.first >= schedule.window_start(w, as_of) {
                    prop_assert!(
                        span.last - span.first < stage.pane,
                        "as of {}: window {} ({:?}) reads group {:?} coarser than its pane",
                        as_of,
                        w,
                        stage,
                        span
                    );
                }
            }
        }

        // Sums, window by window, key by key.
        for (w, &stage) in stages.iter().enumerate() {
            let from = schedule.window_start(w, as_of);
            let mut read: BTreeMap<u8, i64> = BTreeMap::new();
            for (&(key, span), &sum) in &held {
                if span.first >= from {
                    *read.entry(key).or_insert(0) += sum;
                }
            }
            let oracle_from = start(stage, as_of);
            let mut oracle: BTreeMap<u8, i64> = BTreeMap::new();
            for r in records {
                if r.at <= as_of && oracle_from <= r.ts && r.ts < as_of {
                    *oracle.entry(r.key).or_insert(0) += r.agg;
                }
            }
            for &key in keys {
                let got = read.get(&key).copied().unwrap_or(0);
                let want = oracle.get(&key).copied().unwrap_or(0);
                prop_assert_eq!(
                    got,
                    want,
                    "as of {}: window {} ({:?}, from {}) key {}",
                    as_of,
                    w,
                    stage,
                    oracle_from,
                    key
                );
            }
        }
    }
    prop_assert!(
        held.is_empty(),
        "at the horizon {} the collection still holds {:?}",
        horizon,
        held
    );
    Ok(stats)
}

/// The as_ofs (and input times) of a script: every tick from 0 to a horizon past the time
/// every record has left the longest window, and every arrival.
fn times_for(schedule: &PaneSchedule, records: &[Rec]) -> BTreeSet<Millis> {
    let last_in = records
        .iter()
        .map(|r| r.at.max(own_time(r.ts) + schedule.retention()))
        .max()
        .unwrap_or(schedule.retention());
    let horizon = floor(last_in, TICK) + 2 * TICK;
    let mut times: BTreeSet<Millis> = (0..=horizon).step_by(TICK as usize).collect();
    times.extend(records.iter().map(|r| r.at));
    times
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Valid stages by construction: the first pane 1, 2, 3 or 5 ticks, each next pane a
/// multiple (×1, ×2, ×3) of the one before; each window at least its pane and at least the
/// shorter window plus its pane, plus a few ticks, sometimes rounded up to its pane.
fn stages_strategy() -> impl Strategy<Value = Vec<Stage>> {
    (
        prop::sample::select(vec![1u64, 2, 3, 5]),
        1..=4u64,
        proptest::collection::vec(
            (
                prop::sample::select(vec![1u64, 2, 3]),
                0..=4u64,
                any::<bool>(),
            ),
            0..=2,
        ),
    )
        .prop_map(|(first, times, more)| {
            let pane = first * TICK;
            let mut stages = vec![Stage {
                window: pane * times,
                pane,
            }];
            for (factor, extra, round) in more {
                let prev = *stages.last().unwrap();
                let pane = prev.pane * factor;
                let mut window = (prev.window + prev.pane).max(pane) + extra * TICK;
                if round {
                    window = window.div_ceil(pane) * pane;
                }
                stages.push(Stage { window, pane });
            }
            stages
        })
}

/// How late a record arrives.
#[derive(Clone, Copy, Debug)]
enum Lag {
    /// This many ticks after its own time, plus this many ms (mostly 0).
    Ticks(u64, u64),
    /// Around one of its tick's scheduled moves: the `n`-th (mod their number), `d` ticks
    /// after it (`d` in -2..=2; never before its own time).
    AroundMove(usize, i64),
}

fn lag_strategy() -> impl Strategy<Value = Lag> {
    let offset = prop_oneof![9 => Just(0u64), 1 => 1..TICK];
    prop_oneof![
        5 => (Just(0u64), Just(0u64)).prop_map(|(n, o)| Lag::Ticks(n, o)),
        3 => (1..6u64, offset.clone()).prop_map(|(n, o)| Lag::Ticks(n, o)),
        2 => (6..80u64, offset).prop_map(|(n, o)| Lag::Ticks(n, o)),
        2 => (0..4usize, -2..=2i64).prop_map(|(n, d)| Lag::AroundMove(n, d)),
    ]
}

/// Raw records: key, timestamp, aggregate and lag.
fn raw_records() -> impl Strategy<Value = Vec<(u8, Millis, i64, Lag)>> {
    proptest::collection::vec((0..3u8, 0..40_000u64, 1..=3i64, lag_strategy()), 0..48)
}

fn resolve(schedule: &PaneSchedule, raw: &[(u8, Millis, i64, Lag)]) -> Vec<Rec> {
    raw.iter()
        .map(|&(key, ts, agg, lag)| {
            let own = own_time(ts);
            let at = match lag {
                Lag::Ticks(n, offset) => own + n * TICK + offset,
                Lag::AroundMove(n, d) => {
                    let moves = schedule.moves(floor(ts, TICK));
                    let (move_at, _) = moves[n % moves.len()];
                    let at = move_at as i64 + d * TICK as i64;
                    (at.max(0) as u64).max(own)
                }
            };
            Rec { key, ts, agg, at }
        })
        .collect()
}

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 500,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/panes_oracle.txt",
        ))),
        ..ProptestConfig::default()
    }
}

const KEYS: [u8; 3] = [0, 1, 2];

proptest! {
    #![proptest_config(config(64))]

    /// Every window's sums equal the oracle's at every as_of, whatever the schedule, the
    /// arrivals and the batching; the collection's structure holds throughout.
    #[test]
    fn panes_match_the_oracle(
        stages in stages_strategy(),
        raw in raw_records(),
        drain in proptest::collection::vec(prop::bool::weighted(0.7), 1..6),
        // A closing pane's moves over several runs, or all at once.
        moves_per_run in prop_oneof![1usize..8, Just(MOVES_PER_ACTIVATION)],
    ) {
        let schedule = PaneSchedule::new(&time(), stages.clone()).unwrap();
        prop_assert_eq!(schedule.stages(), &stages[..]);
        for (w, &stage) in stages.iter().enumerate() {
            for as_of in (0..200_000).step_by(500) {
                prop_assert_eq!(schedule.window_start(w, as_of), oracle_start(stage, as_of));
            }
        }
        let records = resolve(&schedule, &raw);
        let times = times_for(&schedule, &records);
        let updates = run(&schedule, &records, &times, &drain, moves_per_run);
        check(&schedule, &records, &KEYS, &updates, &times, oracle_start)?;
    }
}

/// One key, a record every 100 ms for 10 minutes, on time; windows 60 s : 10 s and
/// 300 s : 60 s. The collection never holds more than the panes of the windows plus the
/// ticks of the open pane, far fewer than the 6 000 records, and its sums stay exact.
#[test]
fn state_grows_with_panes_not_records() {
    let schedule = PaneSchedule::new(
        &time(),
        vec![
            Stage {
                window: 60_000,
                pane: 10_000,
            },
            Stage {
                window: 300_000,
                pane: 60_000,
            },
        ],
    )
    .unwrap();
    let records: Vec<Rec> = (0..6_000u64)
        .map(|i| {
            let ts = i * 100;
            Rec {
                key: 7,
                ts,
                agg: 1,
                at: own_time(ts),
            }
        })
        .collect();
    let times = times_for(&schedule, &records);
    let updates = run(&schedule, &records, &times, &[true], 2);
    let stats = check(&schedule, &records, &[7], &updates, &times, oracle_start).unwrap();

    // At the last record's own time: the 10-s panes of the 60-s window (+1 for the edge),
    // the 60-s panes of the 300-s window (+1), and a few ticks of an open pane at most.
    let end = 600_000;
    let at_end = stats.groups_at[&end];
    let bound = (60 / 10 + 1) + (300 / 60 + 1) + 2;
    assert!(
        at_end <= bound,
        "{at_end} groups as of {end}, more than {bound}"
    );
    // At any time, at most the ticks of one open 10-s pane more.
    let bound_any = (60 / 10 + 1) + (300 / 60 + 1) + 10;
    assert!(
        stats.max_groups <= bound_any,
        "{} groups at some as_of, more than {bound_any}",
        stats.max_groups
    );
    // The updates grow with ticks and moves too, not with records.
    assert!(
        updates.len() < records.len(),
        "{} updates for {} records",
        updates.len(),
        records.len()
    );
}

/// The checks are not vacuous: an oracle with a wrong window start (the plain
/// `T − W ≤ ts`, ignoring the pane) is caught on a hand-made script.
#[test]
fn a_wrong_window_start_is_caught() {
    let schedule = PaneSchedule::new(
        &time(),
        vec![Stage {
            window: 6_000,
            pane: 3_000,
        }],
    )
    .unwrap();
    let records: Vec<Rec> = [500u64, 1_500, 2_500, 4_200, 7_900]
        .iter()
        .map(|&ts| Rec {
            key: 0,
            ts,
            agg: 1,
            at: own_time(ts),
        })
        .collect();
    let times = times_for(&schedule, &records);
    let updates = run(
        &schedule,
        &records,
        &times,
        &[true, false],
        MOVES_PER_ACTIVATION,
    );
    check(&schedule, &records, &KEYS, &updates, &times, oracle_start).unwrap();
    let wrong = |stage: Stage, as_of: Millis| as_of.saturating_sub(stage.window);
    assert!(check(&schedule, &records, &KEYS, &updates, &times, wrong).is_err());
}
