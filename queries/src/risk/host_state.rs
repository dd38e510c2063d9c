//! The per-source-host state behind risk scores and anomalies, and the rules for changing
//! it: what a contact adds, what leaves a window when, and what a host looks like at a
//! time. No timely here: [`crate::risk::host_windows`] decides *when* each of these happens.
//!
//! A host keeps, per window, its records in buckets of the window's pane
//! ([`HostRules::window_bucket`]; a tick when the window has no pane): each bucket's totals,
//! distinct destinations and ports (`Bucket`), the window's running totals, and how many of
//! its buckets hold each destination and port (`WindowState`), so a window's distinct
//! counts change in O(1) when a bucket enters or leaves it. A window of length `W` and pane
//! `p` keeps at most about `W ÷ p + 1` buckets per host, so what a host keeps grows with
//! its distinct (destination, pane) per window, not with ticks.
//!
//! The invariant that makes this exact with late records: at any time, a window holds a
//! record's data iff it entered before its bucket leaves the window (the bucket's end + the
//! window: the first as_of whose window start, a pane boundary, has passed the bucket).
//! Expiries at a time are applied before the entries at that time, so when a bucket leaves
//! window `W` everything in it entered before then — and subtracting the whole bucket is
//! exact.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::risk::anomaly::{
    baseline_buckets, first_contacts, Anomaly, AnomalyConfig, AnomalyKind, Baseline, Evidence,
};
use crate::risk::rules::{score, HostCounters, Risk, RiskConfig, Severity};
use flowsight_operators::aggregates::FlowStats;
use flowsight_operators::time::{Millis, TimeModel};
use flowsight_operators::window::GroupSpan;

/// The settings every host is judged by.
#[derive(Clone, Debug)]
pub struct HostRules {
    /// The tick: a tick leaves window `W` at its own time (the first as_of after its
    /// records) + `W`.
    pub time: TimeModel,
    /// Window lengths, shortest first; the last is the retention and the baseline window.
    pub windows: Vec<Millis>,
    /// Each window's pane, in ms (the tick for a window kept at the tick): a window's start
    /// as of `T` is `floor_pane(T − W)`.
    pub panes: Vec<Millis>,
    /// How hosts are scored.
    pub risk: RiskConfig,
    /// The thresholds of `port_scan` and `fanout_spike`.
    pub anomalies: AnomalyConfig,
}

impl HostRules {
    /// Whether `port` is sensitive (a scan of the few configured ports).
    fn is_sensitive(&self, port: u16) -> bool {
        self.risk.is_sensitive(port)
    }

    /// The longest window, in ms: how long a host's ticks are kept, the span of the
    /// `fanout_spike` baseline and the lookback of first contacts. Panics without windows.
    pub fn longest(&self) -> Millis {
        *self.windows.last().expect("at least one window")
    }

    /// The end of the bucket window `w` keeps a record at `ts` in: its tick's own time
    /// rounded up to the window's pane. Every tick of the bucket leaves the window at the
    /// same time, the bucket's end + the window ([`HostRules::leaves`]).
    pub fn window_bucket(&self, w: usize, ts: Millis) -> Millis {
        let own = self.time.own_time(ts);
        let pane = self.panes.get(w).copied().unwrap_or(1).max(1);
        own.div_ceil(pane).saturating_mul(pane)
    }

    /// The first time at which window `w` no longer holds the tick whose own time is `own`:
    /// once its start, `floor_pane(T − W)`, has passed the tick — `ceil_pane(own) + W`.
    pub fn leaves(&self, w: usize, own: Millis) -> Millis {
        let pane = self.panes.get(w).copied().unwrap_or(1).max(1);
        own.div_ceil(pane)
            .saturating_mul(pane)
            .saturating_add(self.windows[w])
    }

    /// The lookback of first contacts: the longest window with its pane, less a tick (the
    /// most that window ever spans, `W + pane − tick`), so that no window holds two first
    /// contacts of one pair. The longest window's length when it is kept at the tick.
    pub fn lookback(&self) -> Millis {
        let last_pane = self.panes.last().copied().unwrap_or(self.time.tick());
        self.longest() + last_pane.saturating_sub(self.time.tick())
    }

    /// Whether window `w` has a `fanout_spike` baseline (`2 × W ≤ longest`).
    pub fn has_baseline(&self, w: usize) -> bool {
        self.windows[w].saturating_mul(2) <= self.longest()
    }
}

/// One (destination, port, tick) group of a host's outbound connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The destination address.
    pub dst: IpAddr,
    /// The destination port.
    pub dst_port: u16,
    /// The first and last timestamps of the group's records, in one tick: the tick's own
    /// time decides when the group leaves each window.
    pub span: GroupSpan,
    /// The group's summed counters; scores use its connections, failed connections and
    /// originator bytes.
    pub stats: FlowStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sums {
    connections: u64,
    failed: u64,
    external_bytes: u64,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.connections = self.connections.saturating_add(other.connections);
        self.failed = self.failed.saturating_add(other.failed);
        self.external_bytes = self.external_bytes.saturating_add(other.external_bytes);
    }

    fn subtract(&mut self, other: &Sums) {
        self.connections = self.connections.saturating_sub(other.connections);
        self.failed = self.failed.saturating_sub(other.failed);
        self.external_bytes = self.external_bytes.saturating_sub(other.external_bytes);
    }
}

/// Everything of one bucket of a host's records, in one window, that has entered so far.
struct Bucket {
    /// The earliest timestamp in this bucket.
    first_ts: Millis,
    sums: Sums,
    /// The distinct destinations and ports of the bucket.
    dsts: FxHashSet<IpAddr>,
    ports: FxHashSet<u16>,
}

/// One window of a host: its buckets by their end, its running totals, and how many of its
/// buckets hold each destination and each port.
#[derive(Default)]
struct WindowState {
    buckets: BTreeMap<Millis, Bucket>,
    totals: WindowTotals,
    dsts: FxHashMap<IpAddr, u32>,
    ports: FxHashMap<u16, u32>,
}

/// What a host knows of one destination address.
#[derive(Default)]
struct DstState {
    /// Whether the address is outside the private ranges (judged once).
    external: bool,
    /// The newest timestamp of the host's records to it: when a new record falls in the
    /// same baseline bucket as this one, the bucket already counts it.
    latest_ts: Millis,
    /// Only for non-private destinations: the history behind first contacts.
    pair: Option<Box<PairHistory>>,
}

/// One (host, non-private destination) pair, for `new_external_destination`.
#[derive(Default)]
struct PairHistory {
    /// The end of each of the longest window's buckets still kept → (first, last)
    /// timestamp of the pair in it.
    ticks: BTreeMap<Millis, (Millis, Millis)>,
    /// The latest timestamp of the pair's records in buckets no longer kept.
    before: Option<Millis>,
    /// Per window: the first contact currently listed, if any.
    listed: Vec<Option<Millis>>,
}

/// Episode bookkeeping of a rule in one window: since when it holds, and the row shown.
#[derive(Default, Clone, Copy)]
struct Episode {
    since: Option<Millis>,
    shown: Option<Anomaly>,
}

/// A change a host's evaluation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The host's score in `window`: `old` leaves, `new` enters (either may be absent).
    Risk {
        /// The window's length, in ms.
        window: Millis,
        /// The host.
        ip: IpAddr,
        /// The score shown until now; `None` when the host had none.
        old: Option<Risk>,
        /// The score shown from now on; `None` when the host left the window.
        new: Option<Risk>,
    },
    /// An anomaly row of `window` leaves (`diff` −1) or enters (+1).
    Anomaly {
        /// The window's length, in ms.
        window: Millis,
        /// The row.
        anomaly: Anomaly,
        /// −1 or +1.
        diff: isize,
    },
    /// A detection started: a rule began to hold, or a first contact was seen.
    Detected {
        /// The window's length, in ms.
        window: Millis,
        /// The detection, as its row shows it when it starts.
        anomaly: Anomaly,
    },
    /// The host's severity in a window changed (a host without a score counts as low).
    Severity(SeverityChange),
}

/// A host's severity in a window changed: what the operator reports, and what an alert
/// says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeverityChange {
    /// The window's length, in ms.
    pub window: Millis,
    /// The source host.
    pub ip: IpAddr,
    /// The severity before; low when the host had no score.
    pub from: Severity,
    /// The severity after; low when the host no longer has a score.
    pub to: Severity,
    /// The new score, 1–100; `None` when the host left the window.
    pub score: Option<u8>,
}

/// One window's running totals of a host.
#[derive(Default, Clone, Copy)]
struct WindowTotals {
    sums: Sums,
    destinations: u64,
    ports: u64,
    sensitive_ports: u64,
}

/// One source host.
pub struct HostState {
    ip: IpAddr,
    windows: Vec<WindowState>,
    dsts: FxHashMap<IpAddr, DstState>,
    /// (window with a baseline, bucket index) → distinct destinations in the bucket.
    buckets: BTreeMap<(usize, u64), FxHashSet<IpAddr>>,
    /// Per window: the last baseline computed, kept up to date as buckets gain
    /// destinations, so that it is summed again only when its range moves.
    baselines: Vec<Option<(std::ops::Range<u64>, u64)>>,
    /// Non-private destinations to re-evaluate at the next [`HostState::evaluate`].
    touched_pairs: BTreeSet<IpAddr>,
    shown_risk: Vec<Option<Risk>>,
    scans: Vec<Episode>,
    spikes: Vec<Episode>,
}

impl HostState {
    /// An empty state for the source host `ip`, with room for each of `rules.windows`.
    pub fn new(ip: IpAddr, rules: &HostRules) -> Self {
        let n = rules.windows.len();
        HostState {
            ip,
            windows: (0..n).map(|_| WindowState::default()).collect(),
            dsts: FxHashMap::default(),
            buckets: BTreeMap::new(),
            baselines: vec![None; n],
            touched_pairs: BTreeSet::new(),
            shown_risk: vec![None; n],
            scans: vec![Episode::default(); n],
            spikes: vec![Episode::default(); n],
        }
    }

    /// Adds a contact that enters at `at`. Leaves in `expiries` the (window, bucket end)
    /// pairs whose expiry the caller must schedule (at the bucket's end + the window),
    /// those of buckets new to the host.
    pub fn enter(
        &mut self,
        contact: &Contact,
        at: Millis,
        rules: &HostRules,
        expiries: &mut Vec<(usize, Millis)>,
    ) {
        let ts = contact.span.first;
        let mut is_new = false;
        let dst = self.dsts.entry(contact.dst).or_insert_with(|| {
            is_new = true;
            DstState {
                external: !rules.risk.is_private(contact.dst),
                ..DstState::default()
            }
        });
        let is_external = dst.external;
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        let sums = Sums {
            connections: unsigned(contact.stats.count),
            failed: unsigned(contact.stats.failed),
            external_bytes: if is_external {
                unsigned(contact.stats.bytes_out)
            } else {
                0
            },
        };
        let sensitive = rules.is_sensitive(contact.dst_port);
        expiries.clear();
        for (w, window) in self.windows.iter_mut().enumerate() {
            let end = rules.window_bucket(w, ts);
            // Late beyond this window: its bucket has left it already.
            if at >= end.saturating_add(rules.windows[w]) {
                continue;
            }
            let bucket = window.buckets.entry(end).or_insert_with(|| {
                expiries.push((w, end));
                Bucket {
                    first_ts: ts,
                    sums: Sums::default(),
                    dsts: FxHashSet::default(),
                    ports: FxHashSet::default(),
                }
            });
            bucket.first_ts = bucket.first_ts.min(ts);
            bucket.sums.add(&sums);
            window.totals.sums.add(&sums);
            if bucket.dsts.insert(contact.dst) {
                let held = window.dsts.entry(contact.dst).or_insert(0);
                *held += 1;
                if *held == 1 {
                    window.totals.destinations += 1;
                }
            }
            if bucket.ports.insert(contact.dst_port) {
                let held = window.ports.entry(contact.dst_port).or_insert(0);
                *held += 1;
                if *held == 1 {
                    window.totals.ports += 1;
                    if sensitive {
                        window.totals.sensitive_ports += 1;
                    }
                }
            }
        }

        for w in 0..rules.windows.len() {
            if !rules.has_baseline(w) {
                continue;
            }
            let length = rules.windows[w];
            let bucket = ts / length;
            // Fast path: the destination's newest record already put it in this bucket.
            if !is_new && dst.latest_ts / length == bucket {
                continue;
            }
            // A bucket already older than every baseline can never count again.
            if bucket >= baseline_buckets(at, length, rules.longest()).start
                && self
                    .buckets
                    .entry((w, bucket))
                    .or_default()
                    .insert(contact.dst)
            {
                // Keep the cached baseline in step with the bucket it covers.
                if let Some((range, sum)) = self.baselines[w].as_mut() {
                    if range.contains(&bucket) {
                        *sum += 1;
                    }
                }
            }
        }
        dst.latest_ts = if is_new {
            contact.span.last
        } else {
            dst.latest_ts.max(contact.span.last)
        };
        if is_external {
            let n = rules.windows.len();
            let pair = dst.pair.get_or_insert_with(|| {
                Box::new(PairHistory {
                    listed: vec![None; n],
                    ..PairHistory::default()
                })
            });
            let end = rules.window_bucket(n - 1, ts);
            pair.ticks
                .entry(end)
                .and_modify(|(first, last)| {
                    *first = (*first).min(contact.span.first);
                    *last = (*last).max(contact.span.last);
                })
                .or_insert((contact.span.first, contact.span.last));
            self.touched_pairs.insert(contact.dst);
        }
    }

    /// Window `w`'s bucket that ends at `end` leaves it; when `w` is the longest window,
    /// what only that bucket held is forgotten.
    pub fn expire(&mut self, end: Millis, w: usize, rules: &HostRules) {
        let window = &mut self.windows[w];
        let Some(bucket) = window.buckets.remove(&end) else {
            return;
        };
        let totals = &mut window.totals;
        totals.sums.subtract(&bucket.sums);
        let last_window = w + 1 == rules.windows.len();
        for dst in &bucket.dsts {
            let gone = match window.dsts.get_mut(dst) {
                Some(held) if *held > 1 => {
                    *held -= 1;
                    false
                }
                _ => true,
            };
            if gone {
                window.dsts.remove(dst);
                totals.destinations = totals.destinations.saturating_sub(1);
            }
            let Some(state) = self.dsts.get_mut(dst) else {
                continue;
            };
            if let Some(pair) = state.pair.as_mut() {
                self.touched_pairs.insert(*dst);
                if last_window {
                    if let Some((_, last)) = pair.ticks.remove(&end) {
                        pair.before = Some(pair.before.map_or(last, |b| b.max(last)));
                    }
                }
            }
            // A destination that has left every window is forgotten, unless its
            // first-contact history may still matter.
            if last_window && gone && state.pair.is_none() {
                self.dsts.remove(dst);
            }
        }
        for port in &bucket.ports {
            let gone = match window.ports.get_mut(port) {
                Some(held) if *held > 1 => {
                    *held -= 1;
                    false
                }
                _ => true,
            };
            if gone {
                window.ports.remove(port);
                totals.ports = totals.ports.saturating_sub(1);
                if rules.is_sensitive(*port) {
                    totals.sensitive_ports = totals.sensitive_ports.saturating_sub(1);
                }
            }
        }
    }

    /// Forgets baseline buckets that no baseline at `at` or later can include, and pairs
    /// whose history can no longer matter: no record that may still enter lies within the
    /// lookback of their last contact.
    pub fn forget(&mut self, at: Millis, rules: &HostRules) {
        let longest = rules.longest();
        self.buckets.retain(|&(w, bucket), _| {
            bucket >= baseline_buckets(at, rules.windows[w], longest).start
        });
        // A record entering at `at` or later has ts ≥ at − lookback − tick (it has not left
        // the longest window, which spans at most the lookback); it is within the lookback
        // of `before` iff ts − lookback ≤ before.
        let horizon = at.saturating_sub(2 * rules.lookback() + 2 * rules.time.tick());
        let longest_window = self.windows.last();
        self.dsts.retain(|dst, state| {
            let Some(pair) = &state.pair else {
                return true;
            };
            let in_windows = longest_window.is_some_and(|window| window.dsts.contains_key(dst));
            in_windows
                || !pair.ticks.is_empty()
                || pair.listed.iter().any(Option::is_some)
                || pair.before.is_some_and(|b| b >= horizon)
        });
    }

    /// Whether the host holds nothing and shows nothing, so that it can be dropped.
    pub fn is_empty(&self) -> bool {
        self.windows.iter().all(|window| window.buckets.is_empty())
            && self.dsts.is_empty()
            && self.buckets.is_empty()
            && self.shown_risk.iter().all(Option::is_none)
            && self.scans.iter().all(|e| e.shown.is_none())
            && self.spikes.iter().all(|e| e.shown.is_none())
    }

    /// Whether the host has baseline data in window `w` (so a bucket boundary may change
    /// its `fanout_spike`).
    pub fn has_buckets(&self, w: usize) -> bool {
        self.buckets.range((w, 0)..=(w, u64::MAX)).next().is_some()
    }

    fn baseline(&mut self, at: Millis, w: usize, rules: &HostRules) -> Baseline {
        let length = rules.windows[w];
        let mut range = baseline_buckets(at, length, rules.longest());
        // Buckets before the host's earliest record in the longest window say nothing about
        // its habits: a host first seen an hour ago has an hour of baseline, not a day of
        // silence. The buckets kept are exactly the longest window's, pane included.
        let earliest = self
            .windows
            .last()
            .and_then(|window| window.buckets.values().next())
            .map_or(Millis::MAX, |bucket| bucket.first_ts);
        range.start = range.start.max(earliest / length).min(range.end);
        let destinations = match &self.baselines[w] {
            Some((cached, sum)) if *cached == range => *sum,
            _ => {
                let sum = self
                    .buckets
                    .range((w, range.start)..(w, range.end))
                    .map(|(_, dsts)| dsts.len() as u64)
                    .sum();
                self.baselines[w] = Some((range.clone(), sum));
                sum
            }
        };
        Baseline {
            buckets: range.end - range.start,
            destinations,
        }
    }

    /// Brings everything the host shows up to date at `at` and reports what changed.
    pub fn evaluate(&mut self, at: Millis, rules: &HostRules, changes: &mut Vec<Change>) {
        let ip = self.ip;
        for (w, &window) in rules.windows.iter().enumerate() {
            let totals = self.windows[w].totals;
            let counters = HostCounters {
                connections: totals.sums.connections,
                failed: totals.sums.failed,
                destinations: totals.destinations,
                ports: totals.ports,
                sensitive_ports: totals.sensitive_ports,
                external_bytes: totals.sums.external_bytes,
            };
            let risk = (counters.connections > 0).then(|| score(&counters, &rules.risk));
            let old = self.shown_risk[w];
            if risk != old {
                let from = old.map_or(Severity::Low, |r| r.severity);
                let to = risk.map_or(Severity::Low, |r| r.severity);
                if from != to {
                    changes.push(Change::Severity(SeverityChange {
                        window,
                        ip,
                        from,
                        to,
                        score: risk.map(|r| r.score),
                    }));
                }
                changes.push(Change::Risk {
                    window,
                    ip,
                    old,
                    new: risk,
                });
                self.shown_risk[w] = risk;
            }

            let scanning =
                rules
                    .anomalies
                    .port_scan
                    .holds(&counters)
                    .then_some(Evidence::PortScan {
                        connections: counters.connections,
                        failed: counters.failed,
                        distinct_ports: counters.ports,
                        distinct_hosts: counters.destinations,
                    });
            update_episode(
                &mut self.scans[w],
                ip,
                AnomalyKind::PortScan,
                scanning,
                at,
                window,
                changes,
            );

            let spiking = if rules.has_baseline(w) {
                let baseline = self.baseline(at, w, rules);
                rules
                    .anomalies
                    .fanout_spike
                    .holds(counters.destinations, baseline)
                    .then_some(Evidence::FanoutSpike {
                        destinations: counters.destinations,
                        baseline_destinations: baseline.destinations,
                        baseline_buckets: baseline.buckets,
                    })
            } else {
                None
            };
            update_episode(
                &mut self.spikes[w],
                ip,
                AnomalyKind::FanoutSpike,
                spiking,
                at,
                window,
                changes,
            );
        }

        let lookback = rules.lookback();
        for dst in std::mem::take(&mut self.touched_pairs) {
            let Some(pair) = self.dsts.get_mut(&dst).and_then(|s| s.pair.as_mut()) else {
                continue;
            };
            let contacts = first_contacts(&pair.ticks, pair.before, lookback);
            let mut announced = false;
            for (w, &window) in rules.windows.iter().enumerate() {
                // At most one first contact lies in a window no longer than the lookback.
                let listed = contacts
                    .iter()
                    .copied()
                    .filter(|&t0| rules.leaves(w, rules.time.own_time(t0)) > at)
                    .max();
                let shown = pair.listed[w];
                if listed == shown {
                    continue;
                }
                let row = |t0: Millis| Anomaly {
                    host: ip,
                    kind: AnomalyKind::NewExternalDestination,
                    first_detected: t0,
                    evidence: Evidence::NewExternalDestination { dst_ip: dst },
                };
                if let Some(t0) = shown {
                    changes.push(Change::Anomaly {
                        window,
                        anomaly: row(t0),
                        diff: -1,
                    });
                }
                if let Some(t0) = listed {
                    changes.push(Change::Anomaly {
                        window,
                        anomaly: row(t0),
                        diff: 1,
                    });
                    // Announce a first contact once, in the shortest window that shows
                    // it, unless a longer window already showed it before.
                    let seen_before = pair.listed[w + 1..].contains(&Some(t0));
                    if !announced && !seen_before {
                        changes.push(Change::Detected {
                            window,
                            anomaly: row(t0),
                        });
                        announced = true;
                    }
                }
                pair.listed[w] = listed;
            }
        }
    }
}

/// Moves one rule's episode in one window to its state at `at`.
fn update_episode(
    episode: &mut Episode,
    host: IpAddr,
    kind: AnomalyKind,
    evidence: Option<Evidence>,
    at: Millis,
    window: Millis,
    changes: &mut Vec<Change>,
) {
    let row = match evidence {
        Some(evidence) => {
            let started = episode.since.is_none();
            let since = *episode.since.get_or_insert(at);
            let row = Anomaly {
                host,
                kind,
                first_detected: since,
                evidence,
            };
            if started {
                changes.push(Change::Detected {
                    window,
                    anomaly: row,
                });
            }
            Some(row)
        }
        None => {
            episode.since = None;
            None
        }
    };
    if row != episode.shown {
        if let Some(old) = episode.shown {
            changes.push(Change::Anomaly {
                window,
                anomaly: old,
                diff: -1,
            });
        }
        if let Some(new) = row {
            changes.push(Change::Anomaly {
                window,
                anomaly: new,
                diff: 1,
            });
        }
        episode.shown = row;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::anomaly::{FanoutSpikeRule, PortScanRule};

    fn rules() -> HostRules {
        HostRules {
            time: TimeModel::new(1_000).unwrap(),
            windows: vec![3_000, 10_000, 30_000],
            panes: vec![1_000; 3],
            risk: RiskConfig::default(),
            anomalies: AnomalyConfig {
                port_scan: PortScanRule::default(),
                fanout_spike: FanoutSpikeRule {
                    min_destinations: 2,
                    factor: 2,
                },
            },
        }
    }

    fn contact(dst: u8, ts: Millis) -> Contact {
        Contact {
            dst: IpAddr::from([10, 0, 1, dst]),
            dst_port: 80,
            span: GroupSpan {
                first: ts,
                last: ts,
            },
            stats: FlowStats::one(1, 1, 1, false),
        }
    }

    fn spikes(changes: &[Change], window: Millis) -> Vec<(Anomaly, isize)> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Anomaly {
                    window: w,
                    anomaly,
                    diff,
                } if *w == window && anomaly.kind == AnomalyKind::FanoutSpike => {
                    Some((*anomaly, *diff))
                }
                _ => None,
            })
            .collect()
    }

    /// Drives one host the way the operator does: at each time, the expiries due, then
    /// the entries, then an evaluation.
    struct Driver {
        rules: HostRules,
        state: HostState,
        pending: BTreeMap<Millis, Vec<(Millis, usize)>>,
    }

    impl Driver {
        fn new() -> Self {
            let rules = rules();
            let state = HostState::new(IpAddr::from([10, 0, 0, 1]), &rules);
            Driver {
                rules,
                state,
                pending: BTreeMap::new(),
            }
        }

        fn at(&mut self, at: Millis, contacts: &[Contact]) -> Vec<Change> {
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() > at {
                    break;
                }
                for (own, w) in entry.remove() {
                    self.state.expire(own, w, &self.rules);
                }
            }
            let mut expiries = Vec::new();
            for c in contacts {
                self.state.enter(c, at, &self.rules, &mut expiries);
                for &(w, end) in &expiries {
                    self.pending
                        .entry(end + self.rules.windows[w])
                        .or_default()
                        .push((end, w));
                }
            }
            let mut changes = Vec::new();
            self.state.evaluate(at, &self.rules, &mut changes);
            changes
        }
    }

    /// Regression: a late record in a baseline bucket counts at once (found by the
    /// risk oracle's hand-written case of the same name).
    #[test]
    fn a_late_record_in_a_baseline_bucket_counts_at_once() {
        let mut driver = Driver::new();
        driver.at(21_000, &[contact(1, 20_500)]);
        driver.at(42_000, &[contact(1, 41_500)]);
        let started = driver.at(43_000, &[contact(2, 42_500)]);
        assert_eq!(spikes(&started, 10_000).len(), 1, "{started:#?}");
        let ended = driver.at(44_000, &[contact(3, 25_000), contact(4, 25_100)]);
        let gone = spikes(&ended, 10_000);
        assert_eq!(gone.len(), 1, "{ended:#?}");
        assert_eq!(gone[0].1, -1);
    }

    /// All-external traffic: every byte counts toward `external`, which clamps at 20, and
    /// each public destination is a first contact, listed in every window.
    #[test]
    fn all_external_traffic() {
        let mut driver = Driver::new();
        let public = |i: u8, ts: Millis| Contact {
            dst: IpAddr::from([8, 8, 8, i]),
            dst_port: 443,
            span: GroupSpan {
                first: ts,
                last: ts,
            },
            stats: FlowStats::one(100_000_000, 1_000, 10, false),
        };
        let changes = driver.at(
            2_000,
            &[public(1, 1_100), public(2, 1_200), public(3, 1_300)],
        );
        let risks: Vec<Risk> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Risk { new: Some(r), .. } => Some(*r),
                _ => None,
            })
            .collect();
        assert_eq!(risks.len(), 3, "one row per window");
        for risk in risks {
            assert_eq!(risk.factors.external.value, 300_000_000);
            assert_eq!(risk.factors.external.points, 20);
            // 1 + external 20; 3 connections, too few for failure points.
            assert_eq!(risk.score, 21);
        }
        let contacts = changes
            .iter()
            .filter(|c| matches!(c, Change::Anomaly { anomaly, diff: 1, .. } if anomaly.kind == AnomalyKind::NewExternalDestination))
            .count();
        assert_eq!(contacts, 3 * 3, "three first contacts in three windows");
    }
}
