//! The risk and anomaly views (docs/design.md §4, docs/risk-and-anomalies.md).
//!
//! Rendered from the graph's entries — each source host's outbound (destination, port,
//! tick) groups as they enter, on the worker that owns the host — by the `host_windows` operator, which
//! keeps every window of every host on the worker that owns the host. Its rows are
//! arranged, without moving between workers, five ways:
//!
//! * by (window, score descending, address) — `/v1/risks` reads the top rows in order
//!   instead of sorting every host;
//! * by host — a host's rows in every window;
//! * by host, scores only, with history kept for the longest window — how a score changed;
//! * by (window, severity), hosts counted, with the same history — how many hosts were
//!   low, medium and critical over time, network-wide;
//! * by (window, first detected descending, host, kind) — the anomaly list, newest first.

// The view's rules, pure functions and the operator that applies them per host: scores
// (`rules`), anomalies (`anomaly`), each host's windows (`host_state`) and their
// incremental maintenance (`host_windows`).
pub mod anomaly;
pub mod host_state;
pub mod host_windows;
pub mod rules;

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::risk::anomaly::{Anomaly, AnomalyConfig, AnomalyKind, Evidence};
use crate::risk::host_state::{HostRules, SeverityChange};
use crate::risk::host_windows::{ContactKey, HostOutput, HostWindows};
use crate::risk::rules::{score, Factors, HostCounters, Risk, RiskConfig, Severity};
use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::implementations::{ValBatcher, ValSpine};
use differential_dataflow::trace::TraceReader;
use flowsight_operators::Millis;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use crate::graph::{Direction, GraphRendered};
use crate::read::{updates_of, visit_rows, Next, RowTrace};
use crate::windows::Windows;

/// How hosts are scored and which anomalies are reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskSettings {
    /// Sensitive ports, private ranges and severity bands (`[risk]` in the config file).
    pub risk: RiskConfig,
    /// The anomaly thresholds (`[anomalies]` in the config file).
    pub anomalies: AnomalyConfig,
}

/// A host's score in one window, as served over HTTP (docs/design.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RiskRow {
    /// The source host scored.
    pub ip: IpAddr,
    /// Its score in the window, 1–100.
    pub score: u8,
    /// The band of `score`.
    pub severity: Severity,
    /// Connections the host originated in the window.
    pub connections: u64,
    /// Each factor's points and the raw value they come from.
    pub factors: Factors,
}

impl RiskRow {
    /// The row of host `ip` with the score `risk`.
    pub fn new(ip: IpAddr, risk: Risk) -> Self {
        RiskRow {
            ip,
            score: risk.score,
            severity: risk.severity,
            connections: risk.connections,
            factors: risk.factors,
        }
    }

    /// Highest score first, ties by address.
    pub fn ranking(a: &RiskRow, b: &RiskRow) -> Ordering {
        b.score.cmp(&a.score).then_with(|| a.ip.cmp(&b.ip))
    }
}

/// One point of a score's history: from `as_of` on, the host's score was `score`
/// (`None`: the host had no score in the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreChange {
    /// Since when, ms since the epoch: the start of the retained span, or the as_of at
    /// which the score changed.
    pub as_of: Millis,
    /// The score from then on, 1–100; `None` while the host had none.
    pub score: Option<u8>,
    /// The band of `score`; `None` with it.
    pub severity: Option<Severity>,
}

/// A host's score history in one window: the score at the start of the retained span,
/// then every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowHistory {
    /// The window's length, in ms.
    pub window: Millis,
    /// Oldest first; the first change is the state at the start of the span, even when the
    /// host had no score then.
    pub changes: Vec<ScoreChange>,
}

/// How many hosts had a score of each severity in one window at `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityPoint {
    /// The point in time, ms since the epoch.
    pub as_of: Millis,
    /// Hosts with a `low` score in the window then.
    pub low: u64,
    /// Hosts with a `medium` score in the window then.
    pub medium: u64,
    /// Hosts with a `critical` score in the window then.
    pub critical: u64,
}

/// A worker's changes to the number of hosts of each severity (low, medium, critical), by
/// time; the first time is the start of the retained span and carries the counts then.
pub type SeverityDeltas = Vec<(Millis, [i64; 3])>;

/// An event for alerting, at the time the view changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alert {
    /// A detection appeared in a window: a `port_scan` or `fanout_spike` episode started,
    /// or a first contact was seen (`"type": "anomaly"`).
    Detected {
        /// The as_of at which it appeared, ms since the epoch.
        at: Millis,
        /// The window's length, in ms.
        window: Millis,
        /// The detection, as the anomaly view lists it.
        anomaly: Anomaly,
    },
    /// A host's severity in a window changed (`"type": "severity"`).
    Severity {
        /// The as_of at which it changed, ms since the epoch.
        at: Millis,
        /// The change.
        change: SeverityChange,
    },
}

/// Differential updates of `(key, value)` rows.
type RowUpdates<K, V> = Vec<((K, V), Millis, isize)>;
/// A window's score updates: time → (score, severity) → diff.
type ScoreUpdates = BTreeMap<Millis, BTreeMap<(u8, Severity), isize>>;

/// Ranking key: (window, score descending, address).
pub type RankKey = (Millis, Reverse<u8>, IpAddr);
/// Anomaly key: (window, first detected descending, host, kind).
pub type AnomalyKey = (Millis, Reverse<Millis>, IpAddr, AnomalyKind);

/// The arrangements of the risk and anomaly views on one worker.
pub struct RiskTraces {
    /// The counters behind each row; the row itself follows from them and the settings.
    pub ranked: RowTrace<RankKey, HostCounters>,
    /// (window, score, severity) by host, compacted no further than the longest window: a
    /// host's current rows (found through `ranked`) and their history.
    pub history: RowTrace<IpAddr, (Millis, u8, Severity)>,
    /// One `()` per host with a score of that severity in that window (the updates of many
    /// hosts at one time consolidate into one), compacted like `history`.
    pub severity: RowTrace<(Millis, Severity), ()>,
    /// The anomaly rows of the first three kinds, newest first within a window, with their
    /// evidence (policy violations are in the segmentation's arrangements).
    pub anomalies: RowTrace<AnomalyKey, Evidence>,
}

impl RiskTraces {
    /// Lets the arrangements forget times before `readable` (the history keeps `longest`
    /// more) and merge batches before `complete`.
    pub fn compact(
        &mut self,
        readable: AntichainRef<'_, Millis>,
        complete: AntichainRef<'_, Millis>,
        longest: Millis,
    ) {
        let history: Antichain<Millis> =
            readable.iter().map(|t| t.saturating_sub(longest)).collect();
        self.ranked.set_logical_compaction(readable);
        self.anomalies.set_logical_compaction(readable);
        self.history.set_logical_compaction(history.borrow());
        self.severity.set_logical_compaction(history.borrow());
        self.ranked.set_physical_compaction(complete);
        self.anomalies.set_physical_compaction(complete);
        self.history.set_physical_compaction(complete);
        self.severity.set_physical_compaction(complete);
    }
}

/// What [`render`] builds.
pub struct RiskRendered<'scope> {
    /// The arrangements the views are read from ([`RiskReader`]).
    pub traces: RiskTraces,
    /// Detections and severity changes, at the time they happen.
    pub alerts: Stream<'scope, Millis, Vec<Alert>>,
    /// Completes a time once every risk arrangement has.
    pub progress: Stream<'scope, Millis, Vec<()>>,
}

fn arrange_rows<'scope, K, V>(
    rows: Stream<'scope, Millis, RowUpdates<K, V>>,
    name: &str,
) -> Arranged<'scope, RowTrace<K, V>>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    // The rows of a host are made on the worker that owns the host: they stay there.
    arrange_core::<_, _, ValBatcher<K, V, Millis, isize>, ValSpine<K, V, Millis, isize>>(
        rows,
        Pipeline,
        name,
        ValBatcher::new,
    )
}

/// Renders the risk and anomaly views from the graph's entries, which are on the worker
/// that owns each host.
pub fn render<'scope>(
    graph: &GraphRendered<'scope>,
    windows: &Windows,
    settings: &RiskSettings,
) -> RiskRendered<'scope> {
    let schedule = windows.schedule();
    let rules = HostRules {
        time: schedule.time(),
        windows: schedule.stages().iter().map(|s| s.window).collect(),
        panes: schedule.stages().iter().map(|s| s.pane).collect(),
        risk: settings.risk.clone(),
        anomalies: settings.anomalies,
    };
    let scope: Scope<'scope, Millis> = graph.arranged.stream.scope();
    let outputs = graph
        .entries
        .clone()
        .flat_map(|((host, adjacency), at, stats)| {
            (adjacency.direction == Direction::Out).then_some((
                (
                    host,
                    ContactKey {
                        dst: adjacency.peer,
                        dst_port: adjacency.dst_port,
                        span: adjacency.span,
                    },
                ),
                at,
                stats,
            ))
        })
        .host_windows_named("HostWindows", rules);

    // One stream per kind of output, each update routed once rather than cloned for all.
    let mut parts = outputs
        .partition(4, |update| {
            let part = match update.0 {
                HostOutput::Risk { .. } => 0,
                HostOutput::Score { .. } => 1,
                HostOutput::Anomaly { .. } => 2,
                HostOutput::Detected { .. } | HostOutput::SeverityChanged { .. } => 3,
            };
            (part, update)
        })
        .into_iter();
    let mut next = || parts.next().expect("four parts");
    let (risks, scores, anomaly_rows, events) = (next(), next(), next(), next());
    let ranked = arrange_rows(
        risks.flat_map(|(output, at, diff)| match output {
            HostOutput::Risk {
                window,
                ip,
                score,
                counters,
            } => Some((((window, Reverse(score), ip), counters), at, diff)),
            _ => None,
        }),
        "RiskRanked",
    );
    let severity = arrange_rows(
        scores.clone().flat_map(|(output, at, diff)| match output {
            HostOutput::Score {
                window, severity, ..
            } => Some((((window, severity), ()), at, diff)),
            _ => None,
        }),
        "RiskSeverity",
    );
    let history = arrange_rows(
        scores.flat_map(|(output, at, diff)| match output {
            HostOutput::Score {
                window,
                ip,
                score,
                severity,
            } => Some(((ip, (window, score, severity)), at, diff)),
            _ => None,
        }),
        "RiskHistory",
    );
    let anomalies = arrange_rows(
        anomaly_rows.flat_map(|(output, at, diff)| match output {
            HostOutput::Anomaly { window, anomaly } => Some((
                (
                    (
                        window,
                        Reverse(anomaly.first_detected),
                        anomaly.host,
                        anomaly.kind,
                    ),
                    anomaly.evidence,
                ),
                at,
                diff,
            )),
            _ => None,
        }),
        "Anomalies",
    );
    let alerts = events.flat_map(|(output, at, _)| match output {
        HostOutput::Detected { window, anomaly } => Some(Alert::Detected {
            at,
            window,
            anomaly,
        }),
        HostOutput::SeverityChanged(change) => Some(Alert::Severity { at, change }),
        _ => None,
    });
    let progress = scope.concatenate([
        ranked.stream.clone().map(|_| ()),
        history.stream.clone().map(|_| ()),
        severity.stream.clone().map(|_| ()),
        anomalies.stream.clone().map(|_| ()),
    ]);
    RiskRendered {
        traces: RiskTraces {
            ranked: ranked.trace,
            history: history.trace,
            severity: severity.trace,
            anomalies: anomalies.trace,
        },
        alerts,
        progress,
    }
}

/// The lowest and highest score of a severity under `bands`.
fn score_range(severity: Option<Severity>, config: &RiskConfig) -> (u8, u8) {
    let bands = config.bands;
    match severity {
        None => (1, 100),
        Some(Severity::Critical) => (bands.critical, 100),
        Some(Severity::Medium) => (bands.medium, bands.critical - 1),
        Some(Severity::Low) => (1, bands.medium - 1),
    }
}

/// Reads a worker's part of the risk and anomaly views at one `as_of`.
///
/// The caller must only read at an `as_of` that the arrangements have completed and that
/// their logical compaction has not passed.
pub struct RiskReader<'t> {
    traces: &'t mut RiskTraces,
    as_of: Millis,
    config: RiskConfig,
}

impl<'t> RiskReader<'t> {
    /// A reader of `traces` at `as_of`. `config` must be the one the views were rendered
    /// with: rows are scored again from their counters when read.
    pub fn new(traces: &'t mut RiskTraces, as_of: Millis, config: &RiskConfig) -> Self {
        RiskReader {
            traces,
            as_of,
            config: config.clone(),
        }
    }

    /// This worker's `limit` highest-scored hosts in `window`, of one severity or all.
    pub fn top(
        &mut self,
        window: Millis,
        severity: Option<Severity>,
        limit: usize,
    ) -> Vec<RiskRow> {
        let (low, high) = score_range(severity, &self.config);
        let mut rows = Vec::new();
        if limit == 0 {
            return rows;
        }
        let from: RankKey = (
            window,
            Reverse(high),
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        );
        visit_rows(
            &mut self.traces.ranked,
            self.as_of,
            Some(&from),
            |key, values| {
                if key.0 != window || key.1 .0 < low {
                    return Next::Stop;
                }
                let config = &self.config;
                rows.extend(
                    values
                        .into_iter()
                        .map(|(counters, _)| RiskRow::new(key.2, score(&counters, config))),
                );
                if rows.len() >= limit {
                    Next::Stop
                } else {
                    Next::Continue
                }
            },
        );
        rows.truncate(limit);
        rows
    }

    /// The host's row in each window where it has a score, shortest window first; empty
    /// on every worker but the host's.
    pub fn host(&mut self, ip: IpAddr) -> Vec<(Millis, RiskRow)> {
        // The history arrangement says in which windows the host has which score now ...
        let mut current: BTreeMap<(Millis, u8), isize> = BTreeMap::new();
        updates_of(
            &mut self.traces.history,
            self.as_of,
            &ip,
            |&(window, score, _), _, diff| {
                *current.entry((window, score)).or_insert(0) += diff;
            },
        );
        // ... and the ranking holds the counters of exactly that (window, score, host).
        let mut rows = Vec::new();
        for ((window, points), count) in current {
            if count <= 0 {
                continue;
            }
            let key: RankKey = (window, Reverse(points), ip);
            let config = &self.config;
            visit_rows(
                &mut self.traces.ranked,
                self.as_of,
                Some(&key),
                |found, values| {
                    if *found == key {
                        rows.extend(values.into_iter().map(|(counters, _)| {
                            (window, RiskRow::new(ip, score(&counters, config)))
                        }));
                    }
                    Next::Stop
                },
            );
        }
        rows.sort();
        rows
    }

    /// This worker's part of the severity counts in `window` over `[as_of − longest,
    /// as_of]`: the counts at the start, then each change (see [`merge_severity`]).
    pub fn severity_deltas(&mut self, window: Millis, longest: Millis) -> SeverityDeltas {
        let start = self.as_of.saturating_sub(longest);
        let mut deltas: BTreeMap<Millis, [i64; 3]> = BTreeMap::new();
        for (index, severity) in [Severity::Low, Severity::Medium, Severity::Critical]
            .into_iter()
            .enumerate()
        {
            updates_of(
                &mut self.traces.severity,
                self.as_of,
                &(window, severity),
                |(), time, diff| {
                    deltas.entry(time.max(start)).or_default()[index] += diff as i64;
                },
            );
        }
        deltas.into_iter().collect()
    }

    /// The host's score history in every window over `(as_of − longest, as_of]`.
    pub fn history(
        &mut self,
        ip: IpAddr,
        windows: &[Millis],
        longest: Millis,
    ) -> Vec<WindowHistory> {
        let start = self.as_of.saturating_sub(longest);
        // window → time → score → count
        let mut updates: BTreeMap<Millis, ScoreUpdates> = BTreeMap::new();
        updates_of(
            &mut self.traces.history,
            self.as_of,
            &ip,
            |&(window, score, severity), time, diff| {
                *updates
                    .entry(window)
                    .or_default()
                    .entry(time.max(start))
                    .or_default()
                    .entry((score, severity))
                    .or_insert(0) += diff;
            },
        );
        windows
            .iter()
            .map(|&window| {
                let mut present: BTreeMap<(u8, Severity), isize> = BTreeMap::new();
                let mut changes = Vec::new();
                let mut shown: Option<Option<(u8, Severity)>> = None;
                let by_time = updates.remove(&window).unwrap_or_default();
                let mut times = by_time.into_iter().peekable();
                // The state at `start` first, then each later time.
                let mut at = start;
                loop {
                    while let Some((_, _)) = times.peek().filter(|(t, _)| *t <= at) {
                        let (_, changes_at) = times.next().expect("peeked");
                        for (value, diff) in changes_at {
                            let count = present.entry(value).or_insert(0);
                            *count += diff;
                            if *count == 0 {
                                present.remove(&value);
                            }
                        }
                    }
                    let now = present
                        .iter()
                        .find(|(_, count)| **count > 0)
                        .map(|(value, _)| *value);
                    if shown != Some(now) {
                        changes.push(ScoreChange {
                            as_of: at,
                            score: now.map(|(s, _)| s),
                            severity: now.map(|(_, s)| s),
                        });
                        shown = Some(now);
                    }
                    match times.peek() {
                        Some((t, _)) => at = *t,
                        None => break,
                    }
                }
                WindowHistory { window, changes }
            })
            .collect()
    }

    /// This worker's `limit` most recent anomalies in `window`, of one kind or all.
    pub fn anomalies(
        &mut self,
        window: Millis,
        kind: Option<AnomalyKind>,
        limit: usize,
    ) -> Vec<Anomaly> {
        let mut rows = Vec::new();
        if limit == 0 {
            return rows;
        }
        let from: AnomalyKey = (
            window,
            Reverse(Millis::MAX),
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            AnomalyKind::PortScan,
        );
        visit_rows(
            &mut self.traces.anomalies,
            self.as_of,
            Some(&from),
            |key, values| {
                let (key_window, Reverse(first_detected), host, key_kind) = *key;
                if key_window != window {
                    return Next::Stop;
                }
                if kind.is_none_or(|k| k == key_kind) {
                    rows.extend(values.into_iter().map(|(evidence, _)| Anomaly {
                        host,
                        kind: key_kind,
                        first_detected,
                        evidence,
                    }));
                }
                if rows.len() >= limit {
                    Next::Stop
                } else {
                    Next::Continue
                }
            },
        );
        rows.sort_by(anomaly_order);
        rows.truncate(limit);
        rows
    }
}

/// Newest first, then by host, kind and evidence.
pub fn anomaly_order(a: &Anomaly, b: &Anomaly) -> Ordering {
    b.first_detected
        .cmp(&a.first_detected)
        .then_with(|| a.host.cmp(&b.host))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| a.evidence.cmp(&b.evidence))
}

/// Merges the workers' top lists.
pub fn merge_top(parts: impl IntoIterator<Item = Vec<RiskRow>>, limit: usize) -> Vec<RiskRow> {
    let mut rows: Vec<RiskRow> = parts.into_iter().flatten().collect();
    rows.sort_by(RiskRow::ranking);
    rows.truncate(limit);
    rows
}

/// Merges the workers' severity deltas into the counts at `start` — or, when the history
/// holds nothing that early, at its first change —, at each multiple of `step` after it
/// and at `as_of` (the times a chart of the span needs, whatever the tick).
pub fn merge_severity(
    parts: impl IntoIterator<Item = SeverityDeltas>,
    start: Millis,
    as_of: Millis,
    step: Millis,
) -> Vec<SeverityPoint> {
    let mut deltas: BTreeMap<Millis, [i64; 3]> = BTreeMap::new();
    for (time, delta) in parts.into_iter().flatten() {
        let sum = deltas.entry(time.max(start)).or_default();
        for (total, d) in sum.iter_mut().zip(delta) {
            *total += d;
        }
    }
    // Updates that cancel out (a host scored and gone again before `start`) change nothing.
    deltas.retain(|_, delta| *delta != [0; 3]);
    let step = step.max(1);
    let mut points = Vec::new();
    let mut counts = [0i64; 3];
    // Before the first change every count is zero: a view that has not been running that
    // long, not a network without hosts.
    let mut at = deltas
        .keys()
        .next()
        .map_or(as_of, |&first| first.min(as_of));
    let mut deltas = deltas.into_iter().peekable();
    loop {
        while let Some((_, delta)) = deltas.next_if(|(time, _)| *time <= at) {
            for (count, d) in counts.iter_mut().zip(delta) {
                *count += d;
            }
        }
        let [low, medium, critical] = counts.map(|c| u64::try_from(c).unwrap_or(0));
        points.push(SeverityPoint {
            as_of: at,
            low,
            medium,
            critical,
        });
        if at >= as_of {
            break;
        }
        // The next multiple of `step`, or `as_of` itself last.
        at = ((at / step + 1) * step).min(as_of);
    }
    points
}

/// Merges the workers' parts of a host's rows: only the host's worker has any.
pub fn merge_host(
    parts: impl IntoIterator<Item = Vec<(Millis, RiskRow)>>,
) -> Vec<(Millis, RiskRow)> {
    let mut rows: Vec<_> = parts.into_iter().flatten().collect();
    rows.sort();
    rows
}

/// Merges the workers' parts of a host's history: the host's worker is the one whose
/// history ever shows a score.
pub fn merge_history(parts: impl IntoIterator<Item = Vec<WindowHistory>>) -> Vec<WindowHistory> {
    let mut parts: Vec<Vec<WindowHistory>> = parts.into_iter().collect();
    let owner = parts.iter().position(|part| {
        part.iter()
            .any(|w| w.changes.iter().any(|c| c.score.is_some()))
    });
    match owner {
        Some(i) => parts.swap_remove(i),
        None => parts.into_iter().next().unwrap_or_default(),
    }
}

/// Merges the workers' anomaly lists.
pub fn merge_anomalies(
    parts: impl IntoIterator<Item = Vec<Anomaly>>,
    limit: usize,
) -> Vec<Anomaly> {
    let mut rows: Vec<Anomaly> = parts.into_iter().flatten().collect();
    rows.sort_by(anomaly_order);
    rows.truncate(limit);
    rows
}
