//! Runs registered queries the way the engine does, on 1, 2 or 4 timely workers, for the
//! oracle tests: the tap of records in one dataflow, the queries registered either at the
//! start (reading the records as they come) or in the middle of a script (a dataflow of
//! their own that imports the tap, compacted up to then, and counts the records placed
//! from then on), every query read at every read point of the script and merged across
//! workers.
//!
//! Included by `registered_oracle.rs` with `#[path]`; not a test binary of its own.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use differential_dataflow::trace::TraceReader;
use flowsight_operators::Millis;
use flowsight_queries::plan::ValidPlan;
use flowsight_queries::registered::{
    merge_parts, read_part, render_query, render_tap, QueryPart, QueryResult, QueryTrace,
};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::progress::Antichain;
use timely::scheduling::Activator;

use crate::common::{close, deal, scripted_source, send_phase, Script, PARK};

/// One query's merged answer at one read point.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub query: usize,
    pub phase: usize,
    pub as_of: Millis,
    pub result: QueryResult,
}

/// How many rows each read asks for (a reader's limit, apart from the query's LIMIT).
pub const READ_LIMIT: usize = 1_000;

/// Runs `plans` over `script` on `workers` workers. Queries `i` with `late[i] = Some(p)` are
/// registered after phase `p` (and read from then on), the others before the first phase.
pub fn run(
    script: &Script,
    plans: &[ValidPlan],
    late: &[Option<usize>],
    workers: usize,
) -> Vec<Answer> {
    script.validate();
    assert_eq!(plans.len(), late.len());
    let shared = std::sync::Arc::new((script.clone(), plans.to_vec(), late.to_vec()));
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (script, plans, late) = &*shared;
        let time = script.time();
        let index = worker.index();
        let peers = worker.peers();
        let commands = Rc::new(RefCell::new(VecDeque::new()));
        let activator = Rc::new(RefCell::new(None::<Activator>));

        // The tap, and the queries registered from the start, in one dataflow.
        let (tap_probe, mut tap, mut traces) = worker.dataflow::<Millis, _, _>(|scope| {
            let events = scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
            let probe = ProbeHandle::new();
            let tap = render_tap(events, time.tick());
            tap.stream.clone().probe_with(&probe);
            let traces: Vec<Option<(QueryTrace, ProbeHandle<Millis>)>> = plans
                .iter()
                .zip(late)
                .map(|(plan, late)| {
                    late.is_none().then(|| {
                        let collection = tap.clone().as_collection(|record, _| record.clone());
                        let schedule = script.windows().schedule_of(plan.window);
                        let rendered = render_query(collection, plan, schedule, 0)
                            .expect("a valid plan renders");
                        let (probe, _) = rendered.progress.probe();
                        (rendered.trace, probe)
                    })
                })
                .collect();
            (probe, tap.trace, traces)
        });

        let mut answers = Vec::new();
        let mut global = 0usize;
        let mut registered_at: Vec<Option<Millis>> =
            late.iter().map(|l| l.is_none().then_some(0)).collect();
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);
            let target = phase.advance_to;
            let caught_up = |probe: &ProbeHandle<Millis>, trace: &mut QueryTrace| {
                let mut upper = Antichain::new();
                trace.read_upper(&mut upper);
                !probe.less_than(&target) && !upper.less_than(&target)
            };
            loop {
                let mut done = !tap_probe.less_than(&target);
                for (trace, probe) in traces.iter_mut().flatten() {
                    done &= caught_up(probe, trace);
                }
                if done {
                    break;
                }
                worker.step_or_park(Some(PARK));
            }

            for &as_of in &phase.reads {
                for (query, slot) in traces.iter_mut().enumerate() {
                    let Some((trace, _)) = slot.as_mut() else {
                        continue;
                    };
                    if registered_at[query].is_some_and(|at| as_of < at) {
                        continue;
                    }
                    let part = read_part(trace, &plans[query], as_of, READ_LIMIT);
                    answers.push((query, phase_index, as_of, part));
                }
            }

            // Register the late queries now: the tap may forget the times before this
            // frontier (as the engine lets it), and the new dataflow imports what is left
            // and counts the records placed from now on. (The queries' own arrangements
            // keep every time: the read plan sweeps back over the whole history at the
            // end, and a late query is read only from its registration on.)
            let frontier = Antichain::from_elem(phase.advance_to);
            tap.set_logical_compaction(frontier.borrow());
            tap.set_physical_compaction(frontier.borrow());
            for (query, when) in late.iter().enumerate() {
                if *when != Some(phase_index) {
                    continue;
                }
                let plan = plans[query].clone();
                let schedule = script.windows().schedule_of(plan.window);
                let from = phase.advance_to;
                let rendered = worker.dataflow::<Millis, _, _>(|scope| {
                    let imported = tap.import(scope);
                    let collection = imported.as_collection(|record, _| record.clone());
                    let rendered = render_query(collection, &plan, schedule, from)
                        .expect("a valid plan renders");
                    let (probe, _) = rendered.progress.probe();
                    (rendered.trace, probe)
                });
                traces[query] = Some(rendered);
                registered_at[query] = Some(from);
            }
        }

        close(&commands, &activator);
        while !tap_probe.done() {
            worker.step_or_park(Some(PARK));
        }
        drop(traces);
        drop(tap);
        answers
    })
    .expect("timely starts");

    let parts: Vec<Vec<(usize, usize, Millis, QueryPart)>> = guards
        .join()
        .into_iter()
        .map(|r| r.expect("a worker panicked"))
        .collect();
    let n = parts[0].len();
    assert!(
        parts.iter().all(|p| p.len() == n),
        "workers made different reads"
    );
    (0..n)
        .map(|i| {
            let (query, phase, as_of, _) = parts[0][i].clone();
            assert!(parts
                .iter()
                .all(|p| (p[i].0, p[i].1, p[i].2) == (query, phase, as_of)));
            let result = merge_parts(
                &plans[query],
                parts.iter().map(|p| p[i].3.clone()).collect(),
                READ_LIMIT,
            );
            Answer {
                query,
                phase,
                as_of,
                result,
            }
        })
        .collect()
}
