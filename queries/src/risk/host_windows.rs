//! The timely operator that maintains every source host's [`HostState`] and turns its
//! changes into differential updates: risk rows and anomaly rows per window, plus
//! detection and severity events for alerting.
//!
//! Input: a host's outbound (destination, port, tick) groups as they enter, with the
//! time they enter at — the graph's entries (the same groups, so no second copy of the
//! records). Each window's contents are then maintained here: a group is added to window
//! `W` when it enters before its tick leaves `W` (`ceil_pane(own) + W`, see
//! [`HostRules::leaves`]), and its tick is subtracted then.
//!
//! Times are processed strictly in order once the input frontier has passed them, so every
//! output at time `t` reflects exactly the groups that entered by `t`; the operator holds
//! one capability for the earliest time it still has work for (an entry, an expiry, or a
//! baseline bucket boundary).

use std::collections::BTreeMap;
use std::net::IpAddr;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::risk::anomaly::Anomaly;
use crate::risk::host_state::{Change, Contact, HostRules, HostState, SeverityChange};
use crate::risk::rules::{HostCounters, Risk, Severity};
use flowsight_operators::aggregates::FlowStats;
use flowsight_operators::time::Millis;
use flowsight_operators::window::GroupSpan;
use flowsight_operators::{split_by_time, VecBuilder};

/// One update the operator emits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HostOutput {
    /// A row of the risk view of `window` (with the update's diff): the host's score and
    /// the counters it comes from (the factors follow from them).
    Risk {
        /// The window's length, in ms.
        window: Millis,
        /// The source host.
        ip: IpAddr,
        /// Its score, 1–100: part of the ranking key.
        score: u8,
        /// The counters the score comes from.
        counters: HostCounters,
    },
    /// A host's score and severity in `window` (with the update's diff): like `Risk`, but
    /// changing only when they do, for the score history.
    Score {
        /// The window's length, in ms.
        window: Millis,
        /// The source host.
        ip: IpAddr,
        /// Its score, 1–100.
        score: u8,
        /// The band of `score`.
        severity: Severity,
    },
    /// A row of the anomaly view of `window` (with the update's diff).
    Anomaly {
        /// The window's length, in ms.
        window: Millis,
        /// The row.
        anomaly: Anomaly,
    },
    /// An event, not a row: a detection started (diff always 1).
    Detected {
        /// The window's length, in ms.
        window: Millis,
        /// The detection that started.
        anomaly: Anomaly,
    },
    /// An event, not a row: a host's severity changed (diff always 1).
    SeverityChanged(SeverityChange),
}

/// A host's outbound group as the graph arrangement holds it; its counters travel as the
/// update's diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContactKey {
    /// The destination address.
    pub dst: IpAddr,
    /// The destination port.
    pub dst_port: u16,
    /// The first and last timestamps of the group's records, all in one tick.
    pub span: GroupSpan,
}

/// Updates of `(host, group)` with the group's counters as the diff.
pub type ContactUpdates = Vec<((IpAddr, ContactKey), Millis, FlowStats)>;

/// The work waiting at one time.
#[derive(Default)]
struct Pending {
    /// Input containers whose updates are all at this time, kept whole rather than copied.
    entries: Vec<ContactUpdates>,
    /// (host, end of the window's bucket, window index)
    expiries: Vec<(IpAddr, Millis, usize)>,
}

/// Maintains risk and anomaly rows from a stream of `(host, contact)` updates.
pub trait HostWindows<'scope> {
    /// Renders the per-host state machine; the input must be partitioned by host (every
    /// update of a host on the same worker), as an arrangement keyed by host already is.
    fn host_windows_named(
        self,
        name: &str,
        rules: HostRules,
    ) -> Stream<'scope, Millis, Vec<(HostOutput, Millis, isize)>>;
}

impl<'scope> HostWindows<'scope> for Stream<'scope, Millis, ContactUpdates> {
    fn host_windows_named(
        self,
        name: &str,
        rules: HostRules,
    ) -> Stream<'scope, Millis, Vec<(HostOutput, Millis, isize)>> {
        self.unary_frontier::<VecBuilder<(HostOutput, Millis, isize)>, _, _, _>(
            Pipeline,
            name,
            move |_capability, _info| {
                let longest = rules.longest();
                let last = rules.windows.len() - 1;
                let mut hosts: FxHashMap<IpAddr, HostState> = FxHashMap::default();
                let mut pending: BTreeMap<Millis, Pending> = BTreeMap::new();
                let mut held: Option<Capability<Millis>> = None;
                // The last time processed: bucket boundaries after it are still to come.
                let mut processed: Option<Millis> = None;
                let mut next_sweep: Millis = 0;
                let mut changes = Vec::new();
                let mut updates = Vec::new();
                let mut expiries = Vec::new();

                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        for container in data {
                            // Late beyond the retention: it left every window already.
                            container.retain(|((_, key), at, stats)| {
                                *at < rules.leaves(last, rules.time.own_time(key.span.first))
                                    && stats.count > 0
                            });
                            split_by_time(container, |at, updates| {
                                pending.entry(at).or_default().entries.push(updates)
                            });
                        }
                        if held.as_ref().is_none_or(|h| h.time() > cap.time()) {
                            held = Some(cap);
                        }
                    });

                    loop {
                        let next_pending = pending.keys().next().copied();
                        let next_boundary =
                            processed.and_then(|after| next_boundary(after, &rules, &hosts));
                        let Some(at) = [next_pending, next_boundary].into_iter().flatten().min()
                        else {
                            break;
                        };
                        if frontier.less_equal(&at) {
                            break;
                        }
                        let Some(cap) = held.as_mut() else {
                            // Unreachable: work is only pending under a held capability.
                            break;
                        };
                        cap.downgrade(&at);
                        let work = pending.remove(&at).unwrap_or_default();
                        let mut touched: Vec<IpAddr> = Vec::new();

                        // Expiries first: a bucket leaves window W (at its end + W) before
                        // whatever enters at that same time.
                        for (host, end, w) in work.expiries {
                            if let Some(state) = hosts.get_mut(&host) {
                                state.expire(end, w, &rules);
                                touched.push(host);
                            }
                        }
                        for updates in &work.entries {
                            // Updates come in key order: look each host up once per run.
                            let mut current: Option<(IpAddr, &mut HostState)> = None;
                            for &((host, key), _, stats) in updates {
                                if current.as_ref().is_none_or(|(ip, _)| *ip != host) {
                                    touched.push(host);
                                    let state = hosts
                                        .entry(host)
                                        .or_insert_with(|| HostState::new(host, &rules));
                                    current = Some((host, state));
                                }
                                let Some((_, state)) = current.as_mut() else {
                                    continue;
                                };
                                let contact = Contact {
                                    dst: key.dst,
                                    dst_port: key.dst_port,
                                    span: key.span,
                                    stats,
                                };
                                state.enter(&contact, at, &rules, &mut expiries);
                                for &(w, end) in &expiries {
                                    pending
                                        .entry(end + rules.windows[w])
                                        .or_default()
                                        .expiries
                                        .push((host, end, w));
                                }
                            }
                        }
                        if processed.is_some_and(|after| is_boundary_between(after, at, &rules)) {
                            for (w, _) in rules.windows.iter().enumerate() {
                                if rules.has_baseline(w) {
                                    touched.extend(
                                        hosts
                                            .iter()
                                            .filter(|(_, s)| s.has_buckets(w))
                                            .map(|(ip, _)| *ip),
                                    );
                                }
                            }
                        }
                        touched.sort_unstable();
                        touched.dedup();
                        for host in touched {
                            if let Some(state) = hosts.get_mut(&host) {
                                state.evaluate(at, &rules, &mut changes);
                            }
                        }
                        for change in changes.drain(..) {
                            emit(change, at, &mut updates);
                        }
                        if !updates.is_empty() {
                            output.session(&*cap).give_iterator(updates.drain(..));
                        }
                        processed = Some(at);

                        // Now and then, forget what can no longer matter.
                        if at >= next_sweep {
                            next_sweep = at + longest;
                            hosts.retain(|_, state| {
                                state.forget(at, &rules);
                                !state.is_empty()
                            });
                        }
                    }

                    // Hold a capability only for the earliest time with work left.
                    let next_pending = pending.keys().next().copied();
                    let next_boundary =
                        processed.and_then(|after| next_boundary(after, &rules, &hosts));
                    match [next_pending, next_boundary].into_iter().flatten().min() {
                        Some(next) => {
                            if let Some(cap) = held.as_mut() {
                                if *cap.time() < next {
                                    cap.downgrade(&next);
                                }
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
    }
}

/// The updates one change makes at time `at`.
fn emit(change: Change, at: Millis, out: &mut Vec<(HostOutput, Millis, isize)>) {
    match change {
        Change::Risk {
            window,
            ip,
            old,
            new,
        } => {
            let score = |r: &Risk| (r.score, r.severity);
            let score_changed = old.as_ref().map(score) != new.as_ref().map(score);
            // The old rows leave, the new ones enter; the score history changes only when
            // the score or severity did.
            for (risk, diff) in [(old, -1), (new, 1)] {
                let Some(risk) = risk else { continue };
                let row = HostOutput::Risk {
                    window,
                    ip,
                    score: risk.score,
                    counters: risk.counters(),
                };
                out.push((row, at, diff));
                if score_changed {
                    let (score, severity) = (risk.score, risk.severity);
                    let history = HostOutput::Score {
                        window,
                        ip,
                        score,
                        severity,
                    };
                    out.push((history, at, diff));
                }
            }
        }
        Change::Anomaly {
            window,
            anomaly,
            diff,
        } => out.push((HostOutput::Anomaly { window, anomaly }, at, diff)),
        Change::Detected { window, anomaly } => {
            out.push((HostOutput::Detected { window, anomaly }, at, 1))
        }
        Change::Severity(change) => out.push((HostOutput::SeverityChanged(change), at, 1)),
    }
}

/// The times at which some window's baseline buckets shift, for each window `W` with a
/// baseline: the range's end moves when `T ≡ 0 (mod W)`, and its start — the first
/// bucket wholly after `T − longest` — one tick after `T − longest` reaches a bucket's
/// start, when `T ≡ longest + tick (mod W)`.
fn boundaries_after(after: Millis, rules: &HostRules) -> Option<Millis> {
    let longest = rules.longest();
    rules
        .windows
        .iter()
        .enumerate()
        .filter(|(w, _)| rules.has_baseline(*w))
        .flat_map(|(_, &length)| {
            [0, (longest + rules.time.tick()) % length].map(|residue| {
                let base = after - after % length + residue;
                if base > after {
                    base
                } else {
                    base + length
                }
            })
        })
        .min()
}

fn next_boundary(
    after: Millis,
    rules: &HostRules,
    hosts: &FxHashMap<IpAddr, HostState>,
) -> Option<Millis> {
    // Waking with nothing to do is cheaper than asking every host whether it has a
    // baseline each time.
    if hosts.is_empty() {
        None
    } else {
        boundaries_after(after, rules)
    }
}

/// Whether a bucket boundary lies in `(after, at]`.
fn is_boundary_between(after: Millis, at: Millis, rules: &HostRules) -> bool {
    boundaries_after(after, rules).is_some_and(|b| b <= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::anomaly::AnomalyConfig;
    use crate::risk::rules::RiskConfig;
    use flowsight_operators::time::TimeModel;

    #[test]
    fn boundaries_follow_both_residues() {
        let rules = HostRules {
            time: TimeModel::new(1_000).unwrap(),
            windows: vec![3_000, 10_000, 25_000],
            panes: vec![1_000; 3],
            risk: RiskConfig::default(),
            anomalies: AnomalyConfig::default(),
        };
        // W = 3 s: residues 0 and (25 + 1) % 3 = 2; W = 10 s: residues 0 and 6.
        assert_eq!(boundaries_after(0, &rules), Some(2_000));
        assert_eq!(boundaries_after(2_000, &rules), Some(3_000));
        assert_eq!(boundaries_after(3_000, &rules), Some(5_000));
        assert_eq!(boundaries_after(5_000, &rules), Some(6_000));
        assert_eq!(boundaries_after(6_000, &rules), Some(8_000));
    }
}
