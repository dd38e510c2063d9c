//! What the oracle tests of the views share: scripts of phases, the scripted source that
//! stamps events the way the engine's source does, the read plan of a generated script
//! (every phase, then a sweep across the whole history), and the proptest pieces that do
//! not depend on the view (stream shapes, lateness, frontier steps, the config).
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;

use flowsight_events::Event;
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::{WindowSpec, Windows};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::Activator;

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// One step of a script: events sent at the current frontier, then the frontier advances,
/// then the view is read at `reads` (every `as_of` there is `< advance_to`).
#[derive(Clone, Debug)]
pub struct Phase {
    pub events: Vec<Event>,
    pub advance_to: Millis,
    pub reads: Vec<Millis>,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub tick: Millis,
    /// Window lengths, shortest first.
    pub windows: Vec<Millis>,
    /// Each window's pane, in the same order; empty keeps every window at the tick.
    pub panes: Vec<Millis>,
    pub phases: Vec<Phase>,
    /// Hosts read one by one at every read point.
    pub hosts: Vec<IpAddr>,
}

impl Script {
    pub fn time(&self) -> TimeModel {
        TimeModel::new(self.tick).unwrap()
    }

    /// The windows, validated as a deployment would (whole ticks, distinct lengths).
    pub fn windows(&self) -> Windows {
        let specs = self
            .windows
            .iter()
            .enumerate()
            .map(|(i, &length)| WindowSpec {
                name: format!("{length}ms"),
                length,
                pane: self.panes.get(i).copied(),
            })
            .collect();
        Windows::new(specs, &self.time()).unwrap()
    }

    /// How long after its own time a record may still be in a window.
    pub fn retention(&self) -> Millis {
        self.windows().retention()
    }

    /// The pane of window `i` (the tick when the script gives none).
    pub fn pane(&self, i: usize) -> Millis {
        self.panes.get(i).copied().unwrap_or(self.tick)
    }

    /// The first timestamp the window of `length` holds at `as_of` (`floor_pane(as_of −
    /// length)`), computed here from the script's own panes.
    pub fn window_start(&self, length: Millis, as_of: Millis) -> Millis {
        let i = self
            .windows
            .iter()
            .position(|&w| w == length)
            .expect("a window");
        let from = as_of.saturating_sub(length);
        from - from % self.pane(i)
    }

    /// The first and last seen times a record at `ts` shows at `as_of`, by docs/design.md
    /// §3's rule, computed here on its own: its own `ts` while its tick is kept at the tick;
    /// once the shortest window's pane holding it has closed (at `ceil_p0(own)`), that
    /// pane's bounds; once it has left window `i` (at `ceil_pi(own) + Wi`), the bounds of
    /// window `i + 1`'s pane if that is coarser. A pane's last is cut to `as_of − 1`.
    pub fn shown_span(&self, ts: Millis, as_of: Millis) -> (Millis, Millis) {
        let ceil = |t: Millis, p: Millis| t.div_ceil(p) * p;
        let own = ts - ts % self.tick + self.tick;
        let mut length = self.tick;
        let mut moves = vec![(ceil(own, self.pane(0)), self.pane(0))];
        for i in 0..self.windows.len().saturating_sub(1) {
            moves.push((ceil(own, self.pane(i)) + self.windows[i], self.pane(i + 1)));
        }
        for (at, pane) in moves {
            if at <= as_of && pane > length {
                length = pane;
            }
        }
        if length == self.tick {
            (ts, ts)
        } else {
            let first = ts - ts % length;
            (first, (first + length - 1).min(as_of - 1))
        }
    }

    /// Every event with the timely time the scripted source gives it: `max(own_time, C)`
    /// where `C` is the frontier in force when it is sent. Computed here, independently of
    /// the source operator.
    pub fn entries(&self) -> Vec<(Event, Millis)> {
        let time = self.time();
        let mut frontier: Millis = 0;
        let mut entries = Vec::new();
        for phase in &self.phases {
            for event in &phase.events {
                let own = (event.ts / self.tick) * self.tick + self.tick;
                assert_eq!(own, time.own_time(event.ts));
                entries.push((event.clone(), own.max(frontier)));
            }
            assert!(phase.advance_to >= frontier, "frontiers must not go back");
            assert_eq!(
                phase.advance_to % self.tick,
                0,
                "frontiers must be tick aligned"
            );
            frontier = phase.advance_to;
        }
        entries
    }

    pub fn validate(&self) {
        let mut frontier = 0;
        for phase in &self.phases {
            assert!(phase.advance_to >= frontier);
            frontier = phase.advance_to;
            for &t in &phase.reads {
                assert!(
                    t < phase.advance_to,
                    "read at {t} before the frontier {} passed it",
                    phase.advance_to
                );
                assert_eq!(t % self.tick, 0);
            }
        }
    }

    /// How many reads (as_ofs) the script makes in all.
    pub fn read_count(&self) -> usize {
        self.phases.iter().map(|p| p.reads.len()).sum()
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted source
// ---------------------------------------------------------------------------------------------

/// The longest a waiting worker parks before looking again.
pub const PARK: std::time::Duration = std::time::Duration::from_millis(1);

pub enum Command {
    Send(Vec<Event>),
    Advance(Millis),
    Close,
}

/// A source like the engine's: it holds a capability at its frontier `C` and emits each
/// event at `max(own_time(ts), C)`; commands come from the worker's script.
pub fn scripted_source<'scope>(
    scope: Scope<'scope, Millis>,
    time: TimeModel,
    commands: Rc<RefCell<VecDeque<Command>>>,
    activator: Rc<RefCell<Option<Activator>>>,
) -> Stream<'scope, Millis, Vec<Event>> {
    source::<_, CapacityContainerBuilder<Vec<Event>>, _, _>(
        scope,
        "ScriptedSource",
        move |capability, info| {
            *activator.borrow_mut() = Some(scope.activator_for(info.address));
            let mut capability = Some(capability);
            move |output| {
                while let Some(command) = commands.borrow_mut().pop_front() {
                    match command {
                        Command::Send(events) => {
                            let cap = capability.as_ref().expect("send after close");
                            let frontier = *cap.time();
                            let mut by_time: BTreeMap<Millis, Vec<Event>> = BTreeMap::new();
                            for event in events {
                                by_time
                                    .entry(time.own_time(event.ts).max(frontier))
                                    .or_default()
                                    .push(event);
                            }
                            for (at, mut batch) in by_time {
                                let at_cap = cap.delayed(&at);
                                output.session(&at_cap).give_container(&mut batch);
                            }
                        }
                        Command::Advance(to) => {
                            let cap = capability.as_mut().expect("advance after close");
                            if to > *cap.time() {
                                cap.downgrade(&to);
                            }
                        }
                        Command::Close => capability = None,
                    }
                }
            }
        },
    )
}

/// The events of a phase that worker `index` of `peers` sends: the script's events dealt
/// round-robin over the workers, `global` counting events across phases.
pub fn deal(events: &[Event], global: &mut usize, index: usize, peers: usize) -> Vec<Event> {
    events
        .iter()
        .filter(|_| {
            let keep = *global % peers == index;
            *global += 1;
            keep
        })
        .cloned()
        .collect()
}

/// Queues a phase's commands on a worker's source and wakes it.
pub fn send_phase(
    commands: &Rc<RefCell<VecDeque<Command>>>,
    activator: &Rc<RefCell<Option<Activator>>>,
    mine: Vec<Event>,
    advance_to: Millis,
) {
    commands.borrow_mut().push_back(Command::Send(mine));
    commands
        .borrow_mut()
        .push_back(Command::Advance(advance_to));
    activator
        .borrow()
        .as_ref()
        .expect("source built")
        .activate();
}

/// Closes a worker's source.
pub fn close(
    commands: &Rc<RefCell<VecDeque<Command>>>,
    activator: &Rc<RefCell<Option<Activator>>>,
) {
    commands.borrow_mut().push_back(Command::Close);
    activator
        .borrow()
        .as_ref()
        .expect("source built")
        .activate();
}

// ---------------------------------------------------------------------------------------------
// Generated scripts: shapes, steps, read plan
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Timestamps never go back.
    InOrder,
    /// Timestamps jittered back by up to 3 s.
    Jittered,
    /// Mostly mildly jittered, but some records seconds or minutes late.
    VeryLate,
}

pub fn lag_strategy(shape: Shape) -> BoxedStrategy<Millis> {
    match shape {
        Shape::InOrder => Just(0).boxed(),
        Shape::Jittered => (0..3_000u64).boxed(),
        Shape::VeryLate => prop_oneof![
            6 => 0..2_000u64,
            // Late, but still inside the longest window when it arrives (mostly).
            2 => 4_000..28_000u64,
            // Minutes late: beyond every window.
            2 => 31_000..240_000u64,
        ]
        .boxed(),
    }
}

#[derive(Clone, Debug)]
pub struct RawStep {
    pub size: usize,
    /// 0 = follow the watermark; 1 = hold the frontier; 2 = jump ahead by `jump` ticks.
    pub mode: usize,
    pub jump: u64,
}

pub fn raw_step() -> impl Strategy<Value = RawStep> {
    (
        1..8usize,
        prop_oneof![6 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        1..15u64,
    )
        .prop_map(|(size, mode, jump)| RawStep { size, mode, jump })
}

/// Cuts `events` (in arrival order) into phases: after each step the frontier follows the
/// watermark (largest ts so far − `lateness`), holds, or jumps ahead; each phase reads at
/// the last complete as_of and at the previous frontier. A last phase then moves the
/// frontier past every record and past the longest window, so everything has also left
/// again, and reads at up to `sweep` as_ofs spread across the whole history: when each
/// record entered, and the tick before and at which it leaves each window.
pub fn plan_phases(
    time: TimeModel,
    windows: &[Millis],
    lateness: Millis,
    events: &[Event],
    steps: &[RawStep],
    sweep: usize,
) -> Vec<Phase> {
    let tick = time.tick();
    let longest = *windows.iter().max().expect("a window");
    let mut phases = Vec::new();
    let mut frontier: Millis = 0;
    let mut max_ts: Option<Millis> = None;
    let mut rest = events;
    let mut step_index = 0;
    while !rest.is_empty() {
        let step = &steps[step_index % steps.len()];
        step_index += 1;
        let (now, later) = rest.split_at(step.size.min(rest.len()));
        rest = later;
        for e in now {
            max_ts = Some(max_ts.map_or(e.ts, |m| m.max(e.ts)));
        }
        let watermark_frontier = max_ts.map_or(0, |m| {
            time.frontier_for_watermark(m.saturating_sub(lateness))
        });
        let next = match step.mode {
            0 => frontier.max(watermark_frontier),
            1 => frontier,
            _ => frontier.max(watermark_frontier) + step.jump * tick,
        };
        // Reads: the last complete as_of and the previous frontier.
        let mut reads = BTreeSet::new();
        if next > frontier {
            reads.insert(next - tick);
            reads.insert(frontier);
        }
        phases.push(Phase {
            events: now.to_vec(),
            advance_to: next,
            reads: reads.into_iter().filter(|&t| t < next).collect(),
        });
        frontier = next;
    }

    let max_own = events
        .iter()
        .map(|e| time.own_time(e.ts))
        .max()
        .unwrap_or(0);
    let final_frontier = frontier.max(max_own) + longest + tick;
    let mut candidates = BTreeSet::new();
    let mut entry_frontier = 0;
    for phase in &phases {
        for e in &phase.events {
            let own = time.own_time(e.ts);
            candidates.insert(own.max(entry_frontier));
            for &w in windows {
                candidates.insert(own + w - tick);
                candidates.insert(own + w);
            }
        }
        entry_frontier = phase.advance_to;
        if phase.advance_to >= tick {
            candidates.insert(phase.advance_to - tick);
        }
    }
    candidates.insert(final_frontier - tick);
    let candidates: Vec<Millis> = candidates
        .into_iter()
        .filter(|&t| t < final_frontier)
        .collect();
    // At most `sweep` of them, evenly spread.
    let stride = candidates.len().div_ceil(sweep).max(1);
    let mut final_reads: BTreeSet<Millis> = candidates.iter().copied().step_by(stride).collect();
    // Always: the first as_of that sees every record, the frontier before input ended, and
    // the last as_of (by when everything has left every window).
    let all_in = phases
        .iter()
        .scan(0, |frontier, phase| {
            let entries: Vec<Millis> = phase
                .events
                .iter()
                .map(|e| time.own_time(e.ts).max(*frontier))
                .collect();
            *frontier = phase.advance_to;
            Some(entries)
        })
        .flatten()
        .max()
        .unwrap_or(0);
    final_reads.extend([all_in, frontier, final_frontier - tick]);
    let final_reads: Vec<Millis> = final_reads.into_iter().collect();
    phases.push(Phase {
        events: Vec::new(),
        advance_to: final_frontier,
        reads: final_reads,
    });
    phases
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number (for a deeper
/// run: `PROPTEST_CASES=500 cargo test -p flowsight-queries --test <name>`). With
/// `regressions`, failing cases are kept in that file (relative to the crate's directory,
/// where tests run), to be committed.
pub fn config(cases: u32, regressions: Option<&'static str>) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let mut config = ProptestConfig {
        cases,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    };
    if let Some(path) = regressions {
        config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(path)));
    }
    config
}
