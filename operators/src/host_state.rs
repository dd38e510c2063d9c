//! The per-source-host state behind risk scores and anomalies, and the rules for changing
//! it: what a contact adds, what leaves a window when, and what a host looks like at a
//! time. No timely here: [`crate::host_windows`] decides *when* each of these happens.
//!
//! A host keeps, per tick of its records, the tick's totals, destinations (with the first
//! and last timestamp of each) and ports ([`TickData`]); per window, running totals and
//! how many of the window's ticks hold each destination and port ([`WindowAccum`]), so a
//! window's distinct counts change in O(1) when a tick enters or leaves it.
//!
//! The invariant that makes this exact with late records: at any time, a window holds a
//! tick's data iff that data entered before the tick's own time + the window. Expiries at
//! a time are applied before the entries at that time, so when a tick leaves window `W`
//! (at own + W) everything in its [`TickData`] entered before then — and subtracting the
//! whole tick is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::aggregates::FlowStats;
use crate::anomaly::{
    baseline_buckets, first_contacts, Anomaly, AnomalyConfig, AnomalyKind, Baseline, Evidence,
};
use crate::risk::{score, HostCounters, Risk, RiskConfig, Severity};
use crate::time::{Millis, TimeModel};
use crate::window::TickSpan;

/// The settings every host is judged by.
#[derive(Clone, Debug)]
pub struct HostRules {
    pub time: TimeModel,
    /// Window lengths, shortest first; the last is the retention and the baseline window.
    pub windows: Vec<Millis>,
    pub risk: RiskConfig,
    pub anomalies: AnomalyConfig,
}

impl HostRules {
    pub fn longest(&self) -> Millis {
        *self.windows.last().expect("at least one window")
    }

    /// Whether window `w` has a `fanout_spike` baseline (`2 × W ≤ longest`).
    pub fn has_baseline(&self, w: usize) -> bool {
        self.windows[w].saturating_mul(2) <= self.longest()
    }
}

/// One (destination, port, proto, tick) group of a host's outbound connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    pub dst: IpAddr,
    pub dst_port: u16,
    pub span: TickSpan,
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

/// Everything of one tick of a host's records that has entered so far.
#[derive(Default)]
/// (`Default` gives `first_ts` 0; [`HostState::enter`] sets it.)
struct TickData {
    /// The earliest timestamp in this tick.
    first_ts: Millis,
    sums: Sums,
    /// Destination → (first, last) timestamp in this tick.
    dsts: FxHashMap<IpAddr, (Millis, Millis)>,
    ports: FxHashSet<u16>,
}

/// One window's running view of a host.
#[derive(Default)]
struct WindowAccum {
    sums: Sums,
    /// Destination → how many of the window's ticks hold it.
    dsts: FxHashMap<IpAddr, u32>,
    ports: FxHashMap<u16, u32>,
    sensitive_ports: u64,
}

impl WindowAccum {
    fn counters(&self) -> HostCounters {
        HostCounters {
            connections: self.sums.connections,
            failed: self.sums.failed,
            destinations: self.dsts.len() as u64,
            ports: self.ports.len() as u64,
            sensitive_ports: self.sensitive_ports,
            external_bytes: self.sums.external_bytes,
        }
    }

    fn add_dst(&mut self, dst: IpAddr) {
        *self.dsts.entry(dst).or_insert(0) += 1;
    }

    fn add_port(&mut self, port: u16, rules: &HostRules) {
        let count = self.ports.entry(port).or_insert(0);
        *count += 1;
        if *count == 1 && rules.risk.is_sensitive(port) {
            self.sensitive_ports += 1;
        }
    }

    fn subtract_tick(&mut self, tick: &TickData, rules: &HostRules) {
        self.sums.subtract(&tick.sums);
        for dst in tick.dsts.keys() {
            if let Some(count) = self.dsts.get_mut(dst) {
                *count -= 1;
                if *count == 0 {
                    self.dsts.remove(dst);
                }
            }
        }
        for port in &tick.ports {
            if let Some(count) = self.ports.get_mut(port) {
                *count -= 1;
                if *count == 0 {
                    self.ports.remove(port);
                    if rules.risk.is_sensitive(*port) {
                        self.sensitive_ports -= 1;
                    }
                }
            }
        }
    }
}

/// One (host, non-private destination) pair, for `new_external_destination`.
#[derive(Default)]
struct PairHistory {
    /// Own time of each tick still kept → (first, last) timestamp of the pair in it.
    ticks: BTreeMap<Millis, (Millis, Millis)>,
    /// The latest timestamp of the pair's records in ticks no longer kept.
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
        window: Millis,
        ip: IpAddr,
        old: Option<Risk>,
        new: Option<Risk>,
    },
    /// An anomaly row of `window` leaves (`diff` −1) or enters (+1).
    Anomaly {
        window: Millis,
        anomaly: Anomaly,
        diff: isize,
    },
    /// A detection started: a rule began to hold, or a first contact was seen.
    Detected { window: Millis, anomaly: Anomaly },
    /// The host's severity in `window` changed (a host without a score counts as low).
    Severity {
        window: Millis,
        ip: IpAddr,
        from: Severity,
        to: Severity,
        score: Option<u8>,
    },
}

/// One source host.
pub struct HostState {
    ip: IpAddr,
    ticks: BTreeMap<Millis, TickData>,
    windows: Vec<WindowAccum>,
    /// Per window with a baseline: bucket index → distinct destinations in it.
    buckets: Vec<BTreeMap<u64, FxHashSet<IpAddr>>>,
    external: FxHashMap<IpAddr, PairHistory>,
    /// Pairs to re-evaluate at the next [`HostState::evaluate`].
    touched_pairs: BTreeSet<IpAddr>,
    shown_risk: Vec<Option<Risk>>,
    scans: Vec<Episode>,
    spikes: Vec<Episode>,
}

impl HostState {
    pub fn new(ip: IpAddr, rules: &HostRules) -> Self {
        let n = rules.windows.len();
        HostState {
            ip,
            ticks: BTreeMap::new(),
            windows: (0..n).map(|_| WindowAccum::default()).collect(),
            buckets: (0..n).map(|_| BTreeMap::new()).collect(),
            external: FxHashMap::default(),
            touched_pairs: BTreeSet::new(),
            shown_risk: vec![None; n],
            scans: vec![Episode::default(); n],
            spikes: vec![Episode::default(); n],
        }
    }

    /// Adds a contact that enters at `at`. Returns the windows (indices) whose expiry of
    /// this contact's tick the caller must schedule (at own time + window), non-empty
    /// only when the tick is new to the host.
    pub fn enter(&mut self, contact: &Contact, at: Millis, rules: &HostRules) -> Vec<usize> {
        let own = rules.time.own_time(contact.span.first);
        let is_external = !rules.risk.is_private(contact.dst);
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
        let new_tick = !self.ticks.contains_key(&own);
        let tick = self.ticks.entry(own).or_insert_with(|| TickData {
            first_ts: contact.span.first,
            ..TickData::default()
        });
        tick.first_ts = tick.first_ts.min(contact.span.first);
        tick.sums.add(&sums);
        let mut new_dst = false;
        tick.dsts
            .entry(contact.dst)
            .and_modify(|(first, last)| {
                *first = (*first).min(contact.span.first);
                *last = (*last).max(contact.span.last);
            })
            .or_insert_with(|| {
                new_dst = true;
                (contact.span.first, contact.span.last)
            });
        let new_port = tick.ports.insert(contact.dst_port);
        let mut expiries = Vec::new();
        for (w, &length) in rules.windows.iter().enumerate() {
            if at >= own + length {
                continue;
            }
            let accum = &mut self.windows[w];
            accum.sums.add(&sums);
            if new_dst {
                accum.add_dst(contact.dst);
            }
            if new_port {
                accum.add_port(contact.dst_port, rules);
            }
            if new_tick {
                expiries.push(w);
            }
        }
        for w in 0..rules.windows.len() {
            if !rules.has_baseline(w) {
                continue;
            }
            let length = rules.windows[w];
            let bucket = contact.span.first / length;
            // A bucket already older than every baseline can never count again.
            if bucket >= baseline_buckets(at, length, rules.longest()).start {
                self.buckets[w].entry(bucket).or_default().insert(contact.dst);
            }
        }
        if is_external {
            let n = rules.windows.len();
            let pair = self.external.entry(contact.dst).or_insert_with(|| PairHistory {
                listed: vec![None; n],
                ..PairHistory::default()
            });
            pair.ticks
                .entry(own)
                .and_modify(|(first, last)| {
                    *first = (*first).min(contact.span.first);
                    *last = (*last).max(contact.span.last);
                })
                .or_insert((contact.span.first, contact.span.last));
            self.touched_pairs.insert(contact.dst);
        }
        expiries
    }

    /// The tick with own time `own` leaves window `w`; when `w` is the longest window the
    /// tick is forgotten.
    pub fn expire(&mut self, own: Millis, w: usize, rules: &HostRules) {
        let Some(tick) = self.ticks.get(&own) else {
            return;
        };
        self.windows[w].subtract_tick(tick, rules);
        for dst in tick.dsts.keys() {
            if self.external.contains_key(dst) {
                self.touched_pairs.insert(*dst);
            }
        }
        if w + 1 == rules.windows.len() {
            let tick = self.ticks.remove(&own).expect("present");
            for dst in tick.dsts.keys() {
                if let Some(pair) = self.external.get_mut(dst) {
                    if let Some((_, last)) = pair.ticks.remove(&own) {
                        pair.before = Some(pair.before.map_or(last, |b| b.max(last)));
                    }
                }
            }
        }
    }

    /// Forgets baseline buckets that no baseline at `at` or later can include, and pairs
    /// whose history can no longer matter: no record that may still enter lies within the
    /// lookback of their last contact.
    pub fn forget(&mut self, at: Millis, rules: &HostRules) {
        let longest = rules.longest();
        for (w, buckets) in self.buckets.iter_mut().enumerate() {
            let first = baseline_buckets(at, rules.windows[w], longest).start;
            while let Some(entry) = buckets.first_entry() {
                if *entry.key() >= first {
                    break;
                }
                entry.remove();
            }
        }
        // A record entering at `at` or later has ts ≥ at − longest − tick; it is within
        // the lookback of `before` iff ts − longest ≤ before.
        let horizon = at.saturating_sub(2 * longest + 2 * rules.time.tick());
        self.external.retain(|_, pair| {
            !pair.ticks.is_empty()
                || pair.listed.iter().any(Option::is_some)
                || pair.before.is_some_and(|b| b >= horizon)
        });
    }

    /// Whether the host holds nothing and shows nothing, so that it can be dropped.
    pub fn is_empty(&self) -> bool {
        self.ticks.is_empty()
            && self.external.is_empty()
            && self.buckets.iter().all(BTreeMap::is_empty)
            && self.shown_risk.iter().all(Option::is_none)
            && self.scans.iter().all(|e| e.shown.is_none())
            && self.spikes.iter().all(|e| e.shown.is_none())
    }

    /// Whether the host has baseline data in window `w` (so a bucket boundary may change
    /// its `fanout_spike`).
    pub fn has_buckets(&self, w: usize) -> bool {
        !self.buckets[w].is_empty()
    }

    fn baseline(&self, at: Millis, w: usize, rules: &HostRules) -> Baseline {
        let length = rules.windows[w];
        let mut range = baseline_buckets(at, length, rules.longest());
        // Buckets before the host's earliest kept record say nothing about its habits:
        // a host first seen an hour ago has an hour of baseline, not a day of silence.
        let earliest = self.ticks.values().next().map_or(Millis::MAX, |t| t.first_ts);
        range.start = range.start.max(earliest / length).min(range.end);
        let destinations = self.buckets[w]
            .range(range.clone())
            .map(|(_, dsts)| dsts.len() as u64)
            .sum();
        Baseline {
            buckets: range.end - range.start,
            destinations,
        }
    }

    /// Brings everything the host shows up to date at `at` and reports what changed.
    pub fn evaluate(&mut self, at: Millis, rules: &HostRules, changes: &mut Vec<Change>) {
        let ip = self.ip;
        for (w, &window) in rules.windows.iter().enumerate() {
            let counters = self.windows[w].counters();
            let risk = (counters.connections > 0).then(|| score(&counters, &rules.risk));
            let old = self.shown_risk[w];
            if risk != old {
                let from = old.map_or(Severity::Low, |r| r.severity);
                let to = risk.map_or(Severity::Low, |r| r.severity);
                if from != to {
                    changes.push(Change::Severity {
                        window,
                        ip,
                        from,
                        to,
                        score: risk.map(|r| r.score),
                    });
                }
                changes.push(Change::Risk {
                    window,
                    ip,
                    old,
                    new: risk,
                });
                self.shown_risk[w] = risk;
            }

            let scanning = rules.anomalies.port_scan.holds(&counters).then_some(Evidence::PortScan {
                connections: counters.connections,
                failed: counters.failed,
                distinct_ports: counters.ports,
                distinct_hosts: counters.destinations,
            });
            update_episode(&mut self.scans[w], ip, AnomalyKind::PortScan, scanning, at, window, changes);

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
            update_episode(&mut self.spikes[w], ip, AnomalyKind::FanoutSpike, spiking, at, window, changes);
        }

        let lookback = rules.longest();
        for dst in std::mem::take(&mut self.touched_pairs) {
            let Some(pair) = self.external.get_mut(&dst) else {
                continue;
            };
            let contacts = first_contacts(&pair.ticks, pair.before, lookback);
            let mut announced = false;
            for (w, &window) in rules.windows.iter().enumerate() {
                // At most one first contact lies in a window no longer than the lookback.
                let listed = contacts
                    .iter()
                    .copied()
                    .filter(|&t0| rules.time.own_time(t0) + window > at)
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
