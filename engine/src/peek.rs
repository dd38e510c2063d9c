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
use flowsight_queries::graph::GraphReader;
use flowsight_queries::registered::{self, WindowRecords};
use flowsight_queries::risk::anomaly::AnomalyKind;
use flowsight_queries::risk::merge_anomalies;
use flowsight_queries::{GraphTrace, RiskReader, RiskTraces, SegmentReader, SegmentTraces};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Exchange, Operator};
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use crate::command::{Part, PartAnswer, PeekRequest, RiskHostAnswer, ViewQuery};
use crate::engine::Shared;
use crate::queries::{QueryPartAnswer, WorkerQueries};
use crate::status::WorkerStats;

/// How soon a peek waiting for a registered query's dataflow looks again.
const QUERY_RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

/// The arrangements a worker answers peeks from.
pub struct Views {
    pub graph: GraphTrace,
    /// Absent when the risk views are off.
    pub risk: Option<RiskTraces>,
    /// Absent when the segmentation views are off.
    pub segments: Option<SegmentTraces>,
    /// The shared arrangements of each window's records (none when queries are off), which
    /// registered queries import.
    pub records: Rc<RefCell<WindowRecords>>,
    /// This worker's registered queries and their result arrangements.
    pub(crate) queries: Rc<RefCell<WorkerQueries>>,
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
        if let Some(risk) = self.risk.as_mut() {
            risk.compact(readable.borrow(), complete, longest);
        }
        if let Some(segments) = self.segments.as_mut() {
            segments.compact(readable.borrow(), complete);
        }
        for records in self.records.borrow_mut().values_mut() {
            records.set_logical_compaction(readable.borrow());
            records.set_physical_compaction(complete);
        }
        for query in self.queries.borrow_mut().entries.values_mut() {
            if let Some((_, trace)) = query.running.as_mut() {
                registered::compact(trace, readable.borrow(), complete);
            }
        }
    }

    /// Whether a peek of a registered query must wait for the query's own dataflow to pass
    /// `read_at` (it imports the records and catches up on its own schedule).
    fn query_behind(&self, name: &str, generation: u64, read_at: Millis) -> bool {
        let queries = self.queries.borrow();
        let Some((_, trace)) = queries
            .entries
            .get(name)
            .filter(|q| q.generation == generation)
            .and_then(|q| q.running.as_ref())
        else {
            return false;
        };
        let mut upper = Antichain::new();
        let mut trace = trace.clone();
        trace.read_upper(&mut upper);
        upper.less_equal(&read_at)
    }

    fn query_part(
        &mut self,
        name: &str,
        generation: u64,
        read_at: Millis,
        limit: usize,
    ) -> QueryPartAnswer {
        let mut queries = self.queries.borrow_mut();
        let Some(query) = queries
            .entries
            .get_mut(name)
            .filter(|q| q.generation == generation)
        else {
            return QueryPartAnswer::Unknown;
        };
        if let Some(reason) = &query.failed {
            return QueryPartAnswer::Failed(reason.clone());
        }
        match query.running.as_mut() {
            Some((_, trace)) => {
                QueryPartAnswer::Rows(registered::read_part(trace, &query.plan, read_at, limit))
            }
            None => QueryPartAnswer::Unknown,
        }
    }
}

/// How the peek operator's output (the parts of answers) is batched.
type PartsBuilder = timely::container::CapacityContainerBuilder<Vec<PartAnswer>>;

/// What a part of an answer is read with, besides the views.
struct Reading<'a> {
    stats: &'a RefCell<WorkerStats>,
    shared: &'a Shared,
    /// Every window's length, and the longest.
    windows: &'a [Millis],
    longest: Millis,
    local_index: usize,
}

impl Views {
    /// This worker's part of the answer to `query`, read at `read_at` (which every view's
    /// frontier has passed, except a registered query's, checked before).
    fn part(&mut self, query: &ViewQuery, read_at: Millis, at: &Reading<'_>) -> Part {
        let Reading {
            stats,
            shared,
            windows,
            longest,
            local_index,
        } = *at;
        let views = self;
        let ready_from = stats.borrow().ready_from;
        match query {
            query if query.reads_a_view() && ready_from.is_some_and(|ready| read_at < ready) => {
                Part::CatchingUp {
                    ready_from: ready_from.unwrap_or_default(),
                }
            }
            ViewQuery::Edges {
                window,
                filter,
                limit,
            } => Part::Edges(
                GraphReader::new(&mut views.graph, read_at, *window).edges(*filter, *limit),
            ),
            ViewQuery::Host { ip, window, limit } => {
                Part::Host(GraphReader::new(&mut views.graph, read_at, *window).host(*ip, *limit))
            }
            // Without risk views (never asked for by the frontend) the parts are empty.
            ViewQuery::Risks {
                window,
                severity,
                limit,
            } => Part::Risks(match views.risk.as_mut() {
                Some(traces) => RiskReader::new(traces, read_at, &shared.config.analysis.risk)
                    .top(*window, *severity, *limit),
                None => Vec::new(),
            }),
            ViewQuery::RiskHost { ip, history } => Part::RiskHost(match views.risk.as_mut() {
                Some(traces) => {
                    let mut reader = RiskReader::new(traces, read_at, &shared.config.analysis.risk);
                    RiskHostAnswer {
                        rows: reader.host(*ip),
                        history: history.then(|| reader.history(*ip, windows, longest)),
                    }
                }
                None => RiskHostAnswer::default(),
            }),
            ViewQuery::Severity { window, span, .. } => Part::Severity(match views.risk.as_mut() {
                Some(traces) => RiskReader::new(traces, read_at, &shared.config.analysis.risk)
                    .severity_deltas(*window, (*span).min(longest)),
                None => Vec::new(),
            }),
            ViewQuery::Anomalies {
                window,
                kind,
                limit,
            } => {
                let mut found = Vec::new();
                if let Some(traces) = views
                    .risk
                    .as_mut()
                    .filter(|_| *kind != Some(AnomalyKind::PolicyViolation))
                {
                    found.push(
                        RiskReader::new(traces, read_at, &shared.config.analysis.risk)
                            .anomalies(*window, *kind, *limit),
                    );
                }
                if let Some(traces) = views
                    .segments
                    .as_mut()
                    .filter(|_| kind.is_none_or(|kind| kind == AnomalyKind::PolicyViolation))
                {
                    found.push(SegmentReader::new(traces, read_at).violations(*window, *limit));
                }
                Part::Anomalies(merge_anomalies(found, *limit))
            }
            // Without segmentation views (never asked for by the frontend) the parts are empty.
            ViewQuery::Segments { limit, members } => {
                Part::Segments(match views.segments.as_mut() {
                    Some(traces) => SegmentReader::new(traces, read_at).list(*limit, *members),
                    None => Default::default(),
                })
            }
            ViewQuery::Segment { id, limit } => Part::Segment(
                views
                    .segments
                    .as_mut()
                    .and_then(|traces| SegmentReader::new(traces, read_at).segment(id, *limit)),
            ),
            ViewQuery::HostSegment { ip } => Part::HostSegment(
                views
                    .segments
                    .as_mut()
                    .and_then(|traces| SegmentReader::new(traces, read_at).host(*ip)),
            ),
            ViewQuery::Policy {
                filter,
                order,
                limit,
            } => Part::Policy(match views.segments.as_mut() {
                Some(traces) => SegmentReader::new(traces, read_at).policy(*filter, *order, *limit),
                None => Vec::new(),
            }),
            ViewQuery::QueryResults {
                name,
                generation,
                limit,
            } => Part::QueryResults(views.query_part(name, *generation, read_at, *limit)),
            ViewQuery::Status => {
                let mut status = stats.borrow().snapshot();
                if local_index == 0 {
                    status.dead_letter_sink = shared
                        .runtime
                        .dead_letters
                        .as_ref()
                        .map(|sink| sink.counts());
                }
                Part::Status(Box::new(status))
            }
            ViewQuery::DeadLetters { limit } => {
                let stats = stats.borrow();
                Part::DeadLetters {
                    worker: stats.worker,
                    letters: stats.dead_letters.recent(*limit),
                    counts: stats.dead_letters.counts().clone(),
                }
            }
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
            // Registered queries progress in dataflows of their own: a peek waiting for one
            // looks again shortly rather than waiting for this operator's inputs to move.
            let activator = scope.activator_for(info.address.clone());
            let mut pending: Vec<(Capability<Millis>, PeekRequest, Millis)> = Vec::new();
            move |(batches, view_frontier), (incoming, request_frontier), output| {
                batches.for_each(|_, _| {});
                incoming.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(output.output_index()) else {
                        return;
                    };
                    for request in data.flat_map(|c| c.drain(..)) {
                        let read_at = request.as_of.max(*cap.time());
                        pending.push((cap.clone(), request, read_at));
                    }
                });

                let upper = view_frontier.frontier().first().copied();
                stats.borrow_mut().frontier = upper;
                shared.publish_upper(local_index, upper);

                pending.retain(|(cap, request, read_at)| {
                    let needs_view = request.query.reads_a_view();
                    if needs_view && view_frontier.less_equal(read_at) {
                        return true;
                    }
                    if let ViewQuery::QueryResults {
                        name, generation, ..
                    } = &request.query
                    {
                        if views.query_behind(name, *generation, *read_at) {
                            activator.activate_after(QUERY_RECHECK);
                            return true;
                        }
                    }
                    let part = views.part(
                        &request.query,
                        *read_at,
                        &Reading {
                            stats: &stats,
                            shared: &shared,
                            windows: &windows,
                            longest,
                            local_index,
                        },
                    );
                    output.session(cap).give(PartAnswer {
                        id: request.id,
                        origin: request.origin,
                        as_of: *read_at,
                        part,
                    });
                    false
                });

                // Keep every time a pending or future peek may read at; let the rest merge.
                let mut readable: Antichain<Millis> = request_frontier.frontier().to_owned();
                for (_, _, read_at) in &pending {
                    readable.insert(*read_at);
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
