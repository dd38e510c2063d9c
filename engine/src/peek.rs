//! Peeks: every worker reads its part of a view at one `as_of`, and the parts are gathered
//! through the dataflow to the worker that asked.
//!
//! Peek requests enter a timely input that every worker advances in the same sequenced
//! order (see [`crate::worker`]), so every worker reads at the same time: the later of the
//! requested `as_of` and that input's time. A worker answers only once its arrangement's
//! frontier has passed that time — never from an incomplete frontier — and the
//! arrangement's logical compaction is held at the requests' frontier so that the time
//! stays readable until the last pending peek is served.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::trace::TraceReader;
use flowsight_operators::Millis;
use flowsight_queries::graph::ranking::RankTraces;
use flowsight_queries::{GraphTrace, RiskTraces, SegmentTraces};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Exchange, Operator};
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use crate::command::{Part, PartAnswer, PeekRequest};
use crate::engine::Shared;
use crate::queries::WorkerQueries;
use crate::status::WorkerStats;
use crate::view::{Question, Reading};
use crate::views;

/// How soon a peek waiting for a registered query's dataflow looks again.
const QUERY_RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

/// The arrangements a worker answers peeks from.
pub struct Views {
    /// The connection graph, keyed by host: the longest window's groups, which every
    /// window's reads select from.
    pub graph: GraphTrace,
    /// Every window's edges and hosts, heaviest and busiest first.
    pub rankings: RankTraces,
    /// Absent when the risk views are off.
    pub risk: Option<RiskTraces>,
    /// Absent when the segmentation views are off.
    pub segments: Option<SegmentTraces>,
    /// This worker's registered queries and the plane's arrangements.
    pub(crate) queries: Rc<RefCell<WorkerQueries>>,
    /// How much state each view's arrangements hold on this worker.
    pub(crate) sizes: crate::state_size::SharedSizes,
}

impl Views {
    /// Lets every arrangement forget what no read needs: times before `readable` and
    /// merged batches before `complete`.
    fn compact(
        &mut self,
        readable: &Antichain<Millis>,
        complete: AntichainRef<'_, Millis>,
        longest: Millis,
    ) {
        self.graph.set_logical_compaction(readable.borrow());
        self.graph.set_physical_compaction(complete);
        self.rankings.compact(readable.borrow(), complete);
        if let Some(risk) = self.risk.as_mut() {
            risk.compact(readable.borrow(), complete, longest);
        }
        if let Some(segments) = self.segments.as_mut() {
            segments.compact(readable.borrow(), complete);
        }
        if let Some(plane) = self.queries.borrow_mut().plane.as_mut() {
            for traces in plane.values_mut() {
                traces.compact(readable.borrow(), complete);
            }
        }
    }
}

/// How the peek operator's output (the parts of answers) is batched.
type PartsBuilder = flowsight_operators::VecBuilder<PartAnswer>;

/// A peek waiting on this worker: its question decoded (or why it could not be).
struct Pending {
    cap: Capability<Millis>,
    request: PeekRequest,
    question: Result<Box<dyn Question>, String>,
    read_at: Millis,
}

impl Pending {
    fn new(cap: Capability<Millis>, request: PeekRequest) -> Pending {
        let question = match views::find(&request.view) {
            Some(entry) => (entry.decode)(&request.question),
            None => Err(format!("no view {:?} on this worker", request.view)),
        };
        let read_at = request.as_of.max(*cap.time());
        Pending {
            cap,
            request,
            question,
            read_at,
        }
    }

    fn reads_arrangements(&self) -> bool {
        self.question
            .as_ref()
            .is_ok_and(|question| question.reads_arrangements())
    }

    /// This worker's part of the answer (every view's frontier has passed `read_at`, and
    /// the question's own dataflow, if any, too).
    fn part(&self, views: &mut Views, at: &Reading<'_>) -> Part {
        let question = match &self.question {
            Ok(question) => question,
            Err(reason) => return Part::Unreadable(reason.clone()),
        };
        let ready_from = at.stats.borrow().ready_from;
        match ready_from {
            Some(ready_from) if question.reads_arrangements() && at.time < ready_from => {
                Part::CatchingUp { ready_from }
            }
            _ => match question.read_encoded(views, at) {
                Ok(bytes) => Part::Read(bytes),
                Err(reason) => Part::Unreadable(reason),
            },
        }
    }
}

/// Serves peek requests from the views' arrangements and this worker's counters.
/// `progress` completes a time once every arrangement in `views` has.
pub fn serve_peeks<'scope>(
    progress: Stream<'scope, Millis, Vec<()>>,
    mut views: Views,
    requests: Stream<'scope, Millis, Vec<PeekRequest>>,
    stats: Rc<RefCell<WorkerStats>>,
    shared: Arc<Shared>,
    local_index: usize,
) -> Stream<'scope, Millis, Vec<PartAnswer>> {
    let windows: Vec<Millis> = shared.config.windows.iter().map(|w| w.length).collect();
    let longest = shared.config.windows.longest().length;
    let scope = progress.scope();
    progress.binary_frontier::<_, PartsBuilder, _, _, _, _>(
        requests,
        Pipeline,
        Pipeline,
        "Peek",
        move |_capability, info| {
            // The query plane progresses behind the views: a peek waiting for it looks
            // again shortly rather than waiting for this operator's inputs to move.
            let activator = scope.activator_for(info.address.clone());
            let mut pending: Vec<Pending> = Vec::new();
            move |(batches, view_frontier), (incoming, request_frontier), output| {
                batches.for_each(|_, _| {});
                incoming.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(output.output_index()) else {
                        return;
                    };
                    for request in data.flat_map(|c| c.drain(..)) {
                        pending.push(Pending::new(cap.clone(), request));
                    }
                });

                let upper = view_frontier.frontier().first().copied();
                stats.borrow_mut().frontier = upper;
                shared.publish_upper(local_index, upper);

                pending.retain(|peek| {
                    if peek.reads_arrangements() && view_frontier.less_equal(&peek.read_at) {
                        return true;
                    }
                    if let Ok(question) = &peek.question {
                        if question.behind(&views, peek.read_at) {
                            activator.activate_after(QUERY_RECHECK);
                            return true;
                        }
                    }
                    let at = Reading {
                        time: peek.read_at,
                        stats: &stats,
                        shared: &shared,
                        windows: &windows,
                        longest,
                        local_index,
                    };
                    output.session(&peek.cap).give(PartAnswer {
                        id: peek.request.id,
                        origin: peek.request.origin,
                        as_of: peek.read_at,
                        part: peek.part(&mut views, &at),
                    });
                    false
                });

                // Keep every time a pending or future peek may read at; let the rest merge.
                let mut readable: Antichain<Millis> = request_frontier.frontier().to_owned();
                for peek in &pending {
                    readable.insert(peek.read_at);
                }
                views.compact(&readable, view_frontier.frontier(), longest);
            }
        },
    )
}

/// Sends every part to the worker that asked, which hands it to the waiting client.
pub fn gather<'scope>(parts: Stream<'scope, Millis, Vec<PartAnswer>>, shared: Arc<Shared>) {
    parts.exchange(|part: &PartAnswer| part.origin as u64).sink(
        Pipeline,
        "Gather",
        move |(input, _frontier)| {
            input.for_each(|_, data| {
                for part in data.drain(..) {
                    shared.deliver(part);
                }
            });
        },
    );
}
