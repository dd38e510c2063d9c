//! Runs registered queries the way the engine does, on 1, 2 or 4 timely workers, for the
//! oracle tests: the plane of every query in one dataflow with the records, the queries
//! registered either at the start (counting the records from the first) or after a phase
//! of the script, every query read at every read point of the script and merged across
//! workers.
//!
//! As in the engine, the plane may apply the records placed at a phase's `advance_to` (the
//! as_of the views have completed) before a query registered then: its family starts one
//! past it, is given those records there, and the query is read there at the earliest.
//!
//! Included by `registered_oracle.rs` and `registered_golden.rs` with `#[path]`; not a
//! test binary of its own.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use flowsight_operators::Millis;
use flowsight_queries::plan::ValidPlan;
use flowsight_queries::registered::plane::{
    read_part, render_plane, Catalog, PlaneChange, QueryReader,
};
use flowsight_queries::registered::{merge_parts, QueryPart, QueryResult};
use timely::dataflow::operators::{Input, Probe};
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

        // The records and the plane of every query, in one dataflow.
        let windows = script.windows();
        let schedules: Vec<(Millis, _)> = windows
            .iter()
            .map(|w| (w.length, windows.schedule_of(w.length)))
            .collect();
        let (probe, mut changes, mut traces) = worker.dataflow::<Millis, _, _>(|scope| {
            let events = scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
            let (input, changes) = scope.new_input::<Vec<PlaneChange>>();
            let rendered = render_plane(events, changes, schedules);
            let (probe, _) = rendered.progress.probe();
            (probe, input, rendered.traces)
        });

        // Every worker registers the same queries in the same order, as the engine does.
        let mut catalog = Catalog::default();
        let mut readers: Vec<Option<(QueryReader, Millis)>> = vec![None; plans.len()];
        let register = |catalog: &mut Catalog,
                        readers: &mut Vec<Option<(QueryReader, Millis)>>,
                        query: usize,
                        from: Millis,
                        starts_at: Millis,
                        sent: &mut Vec<PlaneChange>| {
            let (member, change) = catalog
                .join(&plans[query], from)
                .expect("a valid plan joins");
            sent.extend(change);
            let reader = QueryReader::new(&plans[query], member).expect("a valid plan reads");
            readers[query] = Some((reader, starts_at));
        };
        let mut sent = Vec::new();
        for (query, when) in late.iter().enumerate() {
            if when.is_none() {
                register(&mut catalog, &mut readers, query, 0, 0, &mut sent);
            }
        }
        for change in sent.drain(..) {
            changes.send(change);
        }

        let mut answers = Vec::new();
        let mut global = 0usize;
        let mut registered_at: Vec<Option<Millis>> =
            late.iter().map(|l| l.is_none().then_some(0)).collect();
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);
            // The views have completed `advance_to`: the plane may apply the records up to
            // it, and forget those before it.
            if phase.advance_to + 1 > *changes.time() {
                changes.advance_to(phase.advance_to + 1);
            }
            changes.send(PlaneChange::Forget(phase.advance_to));
            let target = phase.advance_to;
            while probe.less_than(&target) {
                worker.step_or_park(Some(PARK));
            }

            for &as_of in &phase.reads {
                for (query, reader) in readers.iter().enumerate() {
                    let Some((reader, starts_at)) = reader else {
                        continue;
                    };
                    if registered_at[query].is_some_and(|at| as_of < at) {
                        continue;
                    }
                    let window = traces
                        .get_mut(&reader.member.window)
                        .expect("a plane per window");
                    let part = read_part(window, reader, as_of.max(*starts_at), READ_LIMIT);
                    answers.push((query, phase_index, as_of, part));
                }
            }

            // Register the late queries now, at the changes' time: their families count
            // the records placed from now on, which the plane has not applied yet. (The
            // plane's arrangements keep every time here: the read plan sweeps back over
            // the whole history at the end, and a late query is read only from its
            // registration on.)
            for (query, when) in late.iter().enumerate() {
                if *when != Some(phase_index) {
                    continue;
                }
                let starts_at = *changes.time();
                register(
                    &mut catalog,
                    &mut readers,
                    query,
                    phase.advance_to,
                    starts_at,
                    &mut sent,
                );
                registered_at[query] = Some(phase.advance_to);
            }
            for change in sent.drain(..) {
                changes.send(change);
            }
            let next = *changes.time() + 1;
            changes.advance_to(next);
        }

        close(&commands, &activator);
        drop(changes);
        while !probe.done() {
            worker.step_or_park(Some(PARK));
        }
        traces.clear();
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
