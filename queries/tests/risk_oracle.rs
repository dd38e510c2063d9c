//! The risk and anomaly views against an independent batch oracle
//! (docs/risk-and-anomalies.md).
//!
//! * The **oracle** recomputes every answer from scratch: plain Rust over the list of
//!   `(event, entry time)` pairs with `BTreeMap`s, following the document rule by rule. It
//!   shares only plain data types with the code under test (rows, enums, configs) and calls
//!   none of `score`, `holds`, `baseline_buckets`, `first_contacts`, `is_private`,
//!   `SeverityBands::of`, nor anything of `flowsight_queries::risk` but its row types: the
//!   score formula, the bands, the private ranges (bit masks over the configured networks),
//!   the window rule, the anomaly rules, episodes, first contacts and history are all
//!   written out again here.
//! * The **harness** runs the real dataflow (`graph::render` then `risk::render`) on 1, 2
//!   and 4 timely workers, fed by the scripted source of `common` (an event enters at
//!   `max(own_time(ts), frontier when sent)`); after each phase it steps the workers until
//!   the risk arrangements have passed the phase's frontier, reads every query at several
//!   `as_of`s, and merges the workers' parts with `merge_top`, `merge_host`,
//!   `merge_history`, `merge_severity`, `merge_anomalies`.
//! * **Strategies** produce in-order, jittered and very late streams over IPv4 and IPv6
//!   hosts, with low thresholds so that every factor, severity and anomaly kind fires (a
//!   test over a fixed seed set checks that they do).
//!
//! Hand-computed scripts pin the numbers of the document (the ten-connection rule, the band
//! boundaries, clamps, private ranges of both families, late records, episodes, baselines,
//! withdrawn first contacts), and deliberately wrong oracles are shown to be caught.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use differential_dataflow::trace::TraceReader;
use flowsight_events::{Event, Proto, Status};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::graph;
use flowsight_queries::risk::anomaly::{
    Anomaly, AnomalyConfig, AnomalyKind, Evidence, FanoutSpikeRule, PortScanRule,
};
use flowsight_queries::risk::rules::{Factor, Factors, RiskConfig, Severity, SeverityBands};
use flowsight_queries::risk::{
    self, merge_anomalies, merge_history, merge_host, merge_severity, merge_top, RiskReader,
    RiskRow, RiskSettings, ScoreChange, SeverityDeltas, SeverityPoint, WindowHistory,
};
use proptest::prelude::*;
use timely::dataflow::operators::Probe;
use timely::progress::Antichain;
use timely::scheduling::Activator;

mod common;

use common::{
    close, deal, lag_strategy, plan_phases, raw_step, scripted_source, send_phase, Phase, RawStep,
    Script, Shape, PARK,
};

const SEVERITIES: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::Critical];
const KINDS: [AnomalyKind; 3] = [
    AnomalyKind::PortScan,
    AnomalyKind::FanoutSpike,
    AnomalyKind::NewExternalDestination,
];

/// How many rows the "small limit" reads ask for.
const SMALL: usize = 2;

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// Plausible mistakes, to show that the comparison catches them. `None` is the oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mistake {
    None,
    /// Window `W` at `T` as `T − W < ts < T`.
    WindowStartExclusive,
    /// `failures` even below ten connections.
    FailuresWithoutMinimum,
    /// An IPv4-mapped IPv6 address judged as IPv6.
    MappedJudgedAsV6,
    /// The severity bands start one above their threshold.
    BandsExclusive,
    /// No clamp of the total at 100.
    NoTotalClamp,
    /// `port_scan` needs both many ports and many hosts.
    PortScanNeedsPortsAndHosts,
    /// `first_detected` of an episode is the current as_of.
    FirstDetectedIsNow,
    /// Baseline buckets include the one ending at `T − W` and beyond (one bucket more).
    BaselineOneBucketMore,
    /// A record exactly `B` earlier does not prevent a first contact.
    LookbackExclusive,
    /// A late record cannot withdraw a first contact (only records entered before the
    /// contact count as predecessors).
    LateCannotWithdraw,
    /// Records that arrive too late for the longest window still count as predecessors of
    /// first contacts.
    DroppedRecordsCount,
}

/// `true` when `ip` lies in `net_addr/prefix`, both of the same family; bits compared by
/// hand.
fn in_network(ip: IpAddr, net_addr: IpAddr, prefix: u8) -> bool {
    match (ip, net_addr) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask: u32 = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask: u128 = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Every host's counters in one window at one as_of.
type HostCounts = BTreeMap<IpAddr, Counts>;

struct Oracle<'a> {
    settings: &'a RiskSettings,
    mistake: Mistake,
    /// Every record with its entry time, without those that arrived too late for the
    /// longest window (never counted).
    records: Vec<(Event, Millis)>,
    /// Records that arrived too late for the longest window.
    dropped: Vec<(Event, Millis)>,
    tick: Millis,
    windows: Vec<Millis>,
    /// Each window's pane, in the order of `windows`.
    panes: Vec<Millis>,
    longest: Millis,
    counters_memo: RefCell<BTreeMap<(Millis, Millis), Rc<HostCounts>>>,
}

/// A host's counters in one window, as the document defines them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    connections: u64,
    failed: u64,
    destinations: u64,
    ports: u64,
    sensitive_ports: u64,
    external_bytes: u64,
}

impl<'a> Oracle<'a> {
    fn new(script: &'a Script, settings: &'a RiskSettings, mistake: Mistake) -> Self {
        let tick = script.tick;
        let longest = *script.windows.iter().max().unwrap();
        let last_pane = script.pane(script.windows.len() - 1);
        let mut records = Vec::new();
        let mut dropped = Vec::new();
        for (event, entry) in script.entries() {
            let own = (event.ts / tick) * tick + tick;
            // The longest window's start, floor_p(T − B), passes the tick at ceil_p(own) + B.
            if entry >= own.div_ceil(last_pane) * last_pane + longest {
                dropped.push((event, entry));
            } else {
                records.push((event, entry));
            }
        }
        Oracle {
            settings,
            mistake,
            records,
            dropped,
            tick,
            windows: script.windows.clone(),
            panes: (0..script.windows.len()).map(|i| script.pane(i)).collect(),
            longest,
            counters_memo: RefCell::new(BTreeMap::new()),
        }
    }

    /// Private: in one of the configured ranges; an IPv4-mapped IPv6 address by its IPv4
    /// address.
    fn is_private(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.mistake != Mistake::MappedJudgedAsV6 => {
                let o = v6.octets();
                if o[..10].iter().all(|&b| b == 0) && o[10] == 0xff && o[11] == 0xff {
                    IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
                } else {
                    IpAddr::V6(v6)
                }
            }
            other => other,
        };
        self.settings
            .risk
            .private_ranges
            .iter()
            .any(|net| in_network(ip, net.network(), net.prefix_len()))
    }

    fn is_sensitive(&self, port: u16) -> bool {
        self.settings.risk.sensitive_ports.contains(&port)
    }

    /// Whether a record is in window `window` at `as_of`: entered by then, and
    /// `floor_p(T − W) ≤ ts < T` for the window's pane `p` (`T − W ≤ ts < T` at the tick).
    fn visible(&self, event: &Event, entry: Millis, as_of: Millis, window: Millis) -> bool {
        let i = self.windows.iter().position(|&w| w == window).unwrap();
        let start = as_of.saturating_sub(window);
        let start = start - start % self.panes[i];
        let start_ok = if self.mistake == Mistake::WindowStartExclusive {
            event.ts > start
        } else {
            event.ts >= start
        };
        entry <= as_of && event.ts < as_of && start_ok
    }

    /// Every source host's counters in `window` at `as_of`.
    fn counters(&self, as_of: Millis, window: Millis) -> Rc<BTreeMap<IpAddr, Counts>> {
        if let Some(c) = self.counters_memo.borrow().get(&(as_of, window)) {
            return Rc::clone(c);
        }
        #[derive(Default)]
        struct Acc {
            connections: u64,
            failed: u64,
            destinations: BTreeSet<IpAddr>,
            ports: BTreeSet<u16>,
            sensitive: BTreeSet<u16>,
            external_bytes: u64,
        }
        let mut accs: BTreeMap<IpAddr, Acc> = BTreeMap::new();
        for (e, entry) in &self.records {
            if !self.visible(e, *entry, as_of, window) {
                continue;
            }
            let acc = accs.entry(e.src_ip).or_default();
            acc.connections += 1;
            if e.status != Status::Established {
                acc.failed += 1;
            }
            acc.destinations.insert(e.dst_ip);
            acc.ports.insert(e.dst_port);
            if self.is_sensitive(e.dst_port) {
                acc.sensitive.insert(e.dst_port);
            }
            if !self.is_private(e.dst_ip) {
                acc.external_bytes += e.bytes_out;
            }
        }
        let counters: BTreeMap<IpAddr, Counts> = accs
            .into_iter()
            .map(|(ip, a)| {
                (
                    ip,
                    Counts {
                        connections: a.connections,
                        failed: a.failed,
                        destinations: a.destinations.len() as u64,
                        ports: a.ports.len() as u64,
                        sensitive_ports: a.sensitive.len() as u64,
                        external_bytes: a.external_bytes,
                    },
                )
            })
            .collect();
        let counters = Rc::new(counters);
        self.counters_memo
            .borrow_mut()
            .insert((as_of, window), Rc::clone(&counters));
        counters
    }

    fn severity(&self, score: u8) -> Severity {
        let bands = self.settings.risk.bands;
        let (critical, medium) = if self.mistake == Mistake::BandsExclusive {
            (bands.critical + 1, bands.medium + 1)
        } else {
            (bands.critical, bands.medium)
        };
        if score >= critical {
            Severity::Critical
        } else if score >= medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// The score formula of the document, in integers.
    fn row(&self, ip: IpAddr, c: &Counts) -> RiskRow {
        let fanout = (c.destinations / 4).min(25);
        let ports = (c.ports / 5).min(20);
        let failures = if c.connections >= 10 || self.mistake == Mistake::FailuresWithoutMinimum {
            20 * c.failed / c.connections
        } else {
            0
        };
        let sensitive = (5 * c.sensitive_ports).min(15);
        let external = (c.external_bytes / 10_000_000).min(20);
        let total = 1 + fanout + ports + failures + sensitive + external;
        let score = if self.mistake == Mistake::NoTotalClamp {
            total.min(255)
        } else {
            total.clamp(1, 100)
        } as u8;
        let factor = |points: u64, value: u64| Factor {
            points: points as u8,
            value,
        };
        RiskRow {
            ip,
            score,
            severity: self.severity(score),
            connections: c.connections,
            factors: Factors {
                fanout: factor(fanout, c.destinations),
                ports: factor(ports, c.ports),
                failures: factor(failures, c.failed),
                sensitive: factor(sensitive, c.sensitive_ports),
                external: factor(external, c.external_bytes),
            },
        }
    }

    /// Every host's row in `window` at `as_of`, ranked: score descending, then address.
    fn ranked(&self, as_of: Millis, window: Millis) -> Vec<RiskRow> {
        let mut rows: Vec<RiskRow> = self
            .counters(as_of, window)
            .iter()
            .map(|(ip, c)| self.row(*ip, c))
            .collect();
        rows.sort_by_key(|r| (Reverse(r.score), r.ip));
        rows
    }

    fn top(
        &self,
        as_of: Millis,
        window: Millis,
        severity: Option<Severity>,
        limit: usize,
    ) -> Vec<RiskRow> {
        self.ranked(as_of, window)
            .into_iter()
            .filter(|r| severity.is_none_or(|s| s == r.severity))
            .take(limit)
            .collect()
    }

    /// The host's score in `window` at `as_of`, if it has one.
    fn score(&self, as_of: Millis, window: Millis, ip: IpAddr) -> Option<(u8, Severity)> {
        self.counters(as_of, window).get(&ip).map(|c| {
            let row = self.row(ip, c);
            (row.score, row.severity)
        })
    }

    /// (window, row) for each window the host has a score in, shortest first.
    fn host(&self, as_of: Millis, ip: IpAddr) -> Vec<(Millis, RiskRow)> {
        self.windows
            .iter()
            .filter_map(|&w| {
                self.counters(as_of, w)
                    .get(&ip)
                    .map(|c| (w, self.row(ip, c)))
            })
            .collect()
    }

    /// Hosts by severity in `window` at `T − L` (or at the first tick with any host),
    /// at each multiple of `step` after it, and at `T`.
    fn severity_counts(&self, as_of: Millis, window: Millis, step: Millis) -> Vec<SeverityPoint> {
        let counts = |t: Millis| -> [u64; 3] {
            let mut counts = [0; 3];
            for (&ip, c) in self.counters(t, window).iter() {
                counts[SEVERITIES
                    .iter()
                    .position(|&s| s == self.row(ip, c).severity)
                    .unwrap()] += 1;
            }
            counts
        };
        let start = as_of.saturating_sub(self.longest);
        let mut at = (start..as_of)
            .step_by(self.tick as usize)
            .find(|&t| counts(t) != [0; 3])
            .unwrap_or(as_of);
        let mut points = Vec::new();
        loop {
            let [low, medium, critical] = counts(at);
            points.push(SeverityPoint {
                as_of: at,
                low,
                medium,
                critical,
            });
            if at >= as_of {
                return points;
            }
            at = ((at / step + 1) * step).min(as_of);
        }
    }

    /// For each window: the score at `T − L` then every change in `(T − L, T]`.
    fn history(&self, as_of: Millis, ip: IpAddr) -> Vec<WindowHistory> {
        let start = as_of.saturating_sub(self.longest);
        self.windows
            .iter()
            .map(|&w| {
                let first = self.score(start, w, ip);
                let mut changes = vec![ScoreChange {
                    as_of: start,
                    score: first.map(|(s, _)| s),
                    severity: first.map(|(_, s)| s),
                }];
                let mut previous = first;
                let mut t = start + self.tick;
                while t <= as_of {
                    let now = self.score(t, w, ip);
                    if now != previous {
                        changes.push(ScoreChange {
                            as_of: t,
                            score: now.map(|(s, _)| s),
                            severity: now.map(|(_, s)| s),
                        });
                    }
                    previous = now;
                    t += self.tick;
                }
                WindowHistory { window: w, changes }
            })
            .collect()
    }

    fn port_scan_holds(&self, c: &Counts) -> bool {
        let rule = self.settings.anomalies.port_scan;
        let wide = if self.mistake == Mistake::PortScanNeedsPortsAndHosts {
            c.ports >= rule.min_ports && c.destinations >= rule.min_hosts
        } else {
            c.ports >= rule.min_ports || c.destinations >= rule.min_hosts
        };
        c.connections >= rule.min_connections
            && wide
            && 100 * c.failed >= rule.min_failed_percent * c.connections
    }

    /// The baseline of `ip` for `window` at `as_of`: (buckets, Σ distinct destinations per
    /// bucket). Buckets lie in `[as_of − B, as_of − window)` and not before the bucket of
    /// the host's earliest record in the longest window (`ts` in `[floor_p(as_of − B),
    /// as_of)` for its pane `p`, entered by `as_of`).
    fn baseline(&self, as_of: Millis, window: Millis, ip: IpAddr) -> (u64, u64) {
        let mut from = as_of.saturating_sub(self.longest).div_ceil(window);
        let mut to = as_of.saturating_sub(window) / window;
        if self.mistake == Mistake::BaselineOneBucketMore {
            to += 1;
        }
        let lowest = as_of.saturating_sub(self.longest);
        let last_pane = *self.panes.last().unwrap();
        let lowest = lowest - lowest % last_pane;
        let earliest = self
            .records
            .iter()
            .filter(|(e, entry)| {
                e.src_ip == ip && *entry <= as_of && e.ts >= lowest && e.ts < as_of
            })
            .map(|(e, _)| e.ts)
            .min();
        match earliest {
            Some(e) => from = from.max(e / window),
            None => return (0, 0),
        }
        let buckets = to.saturating_sub(from);
        let mut distinct: BTreeSet<(u64, IpAddr)> = BTreeSet::new();
        for (e, entry) in &self.records {
            let k = e.ts / window;
            if e.src_ip == ip && *entry <= as_of && k >= from && k < to {
                distinct.insert((k, e.dst_ip));
            }
        }
        (buckets, distinct.len() as u64)
    }

    fn has_baseline(&self, window: Millis) -> bool {
        2 * window <= self.longest
    }

    /// `fanout_spike`'s evidence for `ip` in `window` at `as_of` when the rule holds.
    fn fanout_spike(&self, as_of: Millis, window: Millis, ip: IpAddr) -> Option<Evidence> {
        if !self.has_baseline(window) {
            return None;
        }
        let rule = self.settings.anomalies.fanout_spike;
        let counters = self.counters(as_of, window);
        let destinations = counters.get(&ip)?.destinations;
        let (buckets, baseline_destinations) = self.baseline(as_of, window, ip);
        let holds = buckets >= 1
            && destinations >= rule.min_destinations
            && destinations * buckets >= rule.factor * baseline_destinations;
        holds.then_some(Evidence::FanoutSpike {
            destinations,
            baseline_destinations,
            baseline_buckets: buckets,
        })
    }

    fn port_scan(&self, as_of: Millis, window: Millis, ip: IpAddr) -> Option<Evidence> {
        let counters = self.counters(as_of, window);
        let c = counters.get(&ip)?;
        self.port_scan_holds(c).then_some(Evidence::PortScan {
            connections: c.connections,
            failed: c.failed,
            distinct_ports: c.ports,
            distinct_hosts: c.destinations,
        })
    }

    /// The start of the current episode: the earliest `t ≤ T` with the rule holding at
    /// every tick-aligned as_of in `[t, T]`.
    fn episode_start(&self, as_of: Millis, holds: impl Fn(Millis) -> bool) -> Millis {
        if self.mistake == Mistake::FirstDetectedIsNow {
            return as_of;
        }
        let mut t = as_of;
        while t >= self.tick && holds(t - self.tick) {
            t -= self.tick;
        }
        t
    }

    /// The first contacts of every (host, non-private destination) pair with `ts` in
    /// `window` at `as_of`.
    fn first_contacts(&self, as_of: Millis, window: Millis) -> BTreeSet<(IpAddr, IpAddr, Millis)> {
        let mut pairs: BTreeMap<(IpAddr, IpAddr), Vec<(Millis, Millis)>> = BTreeMap::new();
        for (e, entry) in &self.records {
            if !self.is_private(e.dst_ip) {
                pairs
                    .entry((e.src_ip, e.dst_ip))
                    .or_default()
                    .push((e.ts, *entry));
            }
        }
        if self.mistake == Mistake::DroppedRecordsCount {
            for (e, entry) in &self.dropped {
                if !self.is_private(e.dst_ip) {
                    pairs
                        .entry((e.src_ip, e.dst_ip))
                        .or_default()
                        .push((e.ts, *entry));
                }
            }
        }
        let mut contacts = BTreeSet::new();
        for ((host, dst), records) in &pairs {
            for (e, entry) in &self.records {
                if (e.src_ip, e.dst_ip) != (*host, *dst) || !self.visible(e, *entry, as_of, window)
                {
                    continue;
                }
                let ts = e.ts;
                // The longest window's most span, W + pane − tick: no window holds two
                // first contacts of one pair.
                let lookback = self.longest + self.panes.last().unwrap() - self.tick;
                let lookback_start = ts.saturating_sub(lookback);
                let has_predecessor = records.iter().any(|&(other_ts, other_entry)| {
                    let entered = if self.mistake == Mistake::LateCannotWithdraw {
                        other_entry <= *entry
                    } else {
                        other_entry <= as_of
                    };
                    let in_lookback = if self.mistake == Mistake::LookbackExclusive {
                        other_ts > lookback_start && other_ts < ts
                    } else {
                        other_ts >= lookback_start && other_ts < ts
                    };
                    entered && in_lookback
                });
                if !has_predecessor {
                    contacts.insert((*host, *dst, ts));
                }
            }
        }
        contacts
    }

    /// Every anomaly in `window` at `as_of`, in the document's order.
    fn anomalies(&self, as_of: Millis, window: Millis) -> Vec<Anomaly> {
        let mut rows = Vec::new();
        let hosts: Vec<IpAddr> = self.counters(as_of, window).keys().copied().collect();
        for &ip in &hosts {
            if let Some(evidence) = self.port_scan(as_of, window, ip) {
                let start = self.episode_start(as_of, |t| self.port_scan(t, window, ip).is_some());
                rows.push(Anomaly {
                    host: ip,
                    kind: AnomalyKind::PortScan,
                    first_detected: start,
                    evidence,
                });
            }
            if let Some(evidence) = self.fanout_spike(as_of, window, ip) {
                let start =
                    self.episode_start(as_of, |t| self.fanout_spike(t, window, ip).is_some());
                rows.push(Anomaly {
                    host: ip,
                    kind: AnomalyKind::FanoutSpike,
                    first_detected: start,
                    evidence,
                });
            }
        }
        for (host, dst_ip, ts) in self.first_contacts(as_of, window) {
            rows.push(Anomaly {
                host,
                kind: AnomalyKind::NewExternalDestination,
                first_detected: ts,
                evidence: Evidence::NewExternalDestination { dst_ip },
            });
        }
        let kind_rank = |k: AnomalyKind| match k {
            AnomalyKind::PortScan => 0,
            AnomalyKind::FanoutSpike => 1,
            AnomalyKind::NewExternalDestination => 2,
            AnomalyKind::PolicyViolation => 3,
        };
        rows.sort_by(|a, b| {
            b.first_detected
                .cmp(&a.first_detected)
                .then(a.host.cmp(&b.host))
                .then(kind_rank(a.kind).cmp(&kind_rank(b.kind)))
                .then_with(|| evidence_key(&a.evidence).cmp(&evidence_key(&b.evidence)))
        });
        rows
    }

    fn anomalies_filtered(
        &self,
        as_of: Millis,
        window: Millis,
        kind: Option<AnomalyKind>,
        limit: usize,
    ) -> Vec<Anomaly> {
        self.anomalies(as_of, window)
            .into_iter()
            .filter(|a| kind.is_none_or(|k| k == a.kind))
            .take(limit)
            .collect()
    }
}

/// Evidence in field order (within one kind, which is all the ordering ever compares).
fn evidence_key(e: &Evidence) -> (u64, u64, u64, u64, Option<IpAddr>) {
    match *e {
        Evidence::PortScan {
            connections,
            failed,
            distinct_ports,
            distinct_hosts,
        } => (connections, failed, distinct_ports, distinct_hosts, None),
        Evidence::FanoutSpike {
            destinations,
            baseline_destinations,
            baseline_buckets,
        } => (
            destinations,
            baseline_destinations,
            baseline_buckets,
            0,
            None,
        ),
        Evidence::NewExternalDestination { dst_ip } => (0, 0, 0, 0, Some(dst_ip)),
        Evidence::PolicyViolation { .. } => {
            unreachable!("the risk view never reports policy violations")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real dataflow on 1, 2 and 4 workers
// ---------------------------------------------------------------------------------------------

/// Everything read in one window at one as_of.
#[derive(Clone, Debug, Default)]
struct WindowRead {
    window: Millis,
    top_all: Vec<RiskRow>,
    top_small: Vec<RiskRow>,
    /// By severity (low, medium, critical): every row, and the first `SMALL`.
    top_by_severity: Vec<Vec<RiskRow>>,
    top_by_severity_small: Vec<Vec<RiskRow>>,
    anomalies_all: Vec<Anomaly>,
    anomalies_small: Vec<Anomaly>,
    /// By kind (port_scan, fanout_spike, new_external_destination): every row, and the
    /// first `SMALL`.
    anomalies_by_kind: Vec<Vec<Anomaly>>,
    anomalies_by_kind_small: Vec<Vec<Anomaly>>,
    /// A worker's severity deltas over the longest window (empty once merged).
    severity_deltas: SeverityDeltas,
    /// Hosts by severity over the longest window, one series per `SEVERITY_STEPS` (empty
    /// in a worker's part).
    severity: Vec<Vec<SeverityPoint>>,
}

/// The steps the severity counts are read with: every tick, and a step that is no
/// multiple of the windows.
const SEVERITY_STEPS: [Millis; 2] = [TICK, 7 * TICK];

/// Everything read at one as_of (one worker's part, or merged).
#[derive(Clone, Debug)]
struct Read {
    phase: usize,
    as_of: Millis,
    windows: Vec<WindowRead>,
    /// `host(ip)` and `history(ip)` for each of the script's hosts.
    hosts: Vec<Vec<(Millis, RiskRow)>>,
    histories: Vec<Vec<WindowHistory>>,
}

fn read_worker(reader: &mut RiskReader<'_>, script: &Script, phase: usize, as_of: Millis) -> Read {
    let longest = *script.windows.iter().max().unwrap();
    let windows = script
        .windows
        .iter()
        .map(|&window| WindowRead {
            window,
            top_all: reader.top(window, None, usize::MAX),
            top_small: reader.top(window, None, SMALL),
            top_by_severity: SEVERITIES
                .iter()
                .map(|&s| reader.top(window, Some(s), usize::MAX))
                .collect(),
            top_by_severity_small: SEVERITIES
                .iter()
                .map(|&s| reader.top(window, Some(s), SMALL))
                .collect(),
            anomalies_all: reader.anomalies(window, None, usize::MAX),
            anomalies_small: reader.anomalies(window, None, SMALL),
            anomalies_by_kind: KINDS
                .iter()
                .map(|&k| reader.anomalies(window, Some(k), usize::MAX))
                .collect(),
            anomalies_by_kind_small: KINDS
                .iter()
                .map(|&k| reader.anomalies(window, Some(k), SMALL))
                .collect(),
            severity_deltas: reader.severity_deltas(window, longest),
            severity: Vec::new(),
        })
        .collect();
    let hosts = script.hosts.iter().map(|&ip| reader.host(ip)).collect();
    let histories = script
        .hosts
        .iter()
        .map(|&ip| reader.history(ip, &script.windows, longest))
        .collect();
    Read {
        phase,
        as_of,
        windows,
        hosts,
        histories,
    }
}

fn merge_reads(parts: &[Read], longest: Millis) -> Read {
    let first = &parts[0];
    assert!(parts
        .iter()
        .all(|p| (p.phase, p.as_of) == (first.phase, first.as_of)));
    let windows = (0..first.windows.len())
        .map(|w| {
            let each = |f: &dyn Fn(&WindowRead) -> Vec<RiskRow>, limit| {
                merge_top(parts.iter().map(|p| f(&p.windows[w])), limit)
            };
            let each_a = |f: &dyn Fn(&WindowRead) -> Vec<Anomaly>, limit| {
                merge_anomalies(parts.iter().map(|p| f(&p.windows[w])), limit)
            };
            WindowRead {
                window: first.windows[w].window,
                top_all: each(&|r| r.top_all.clone(), usize::MAX),
                top_small: each(&|r| r.top_small.clone(), SMALL),
                top_by_severity: (0..SEVERITIES.len())
                    .map(|s| each(&|r| r.top_by_severity[s].clone(), usize::MAX))
                    .collect(),
                top_by_severity_small: (0..SEVERITIES.len())
                    .map(|s| each(&|r| r.top_by_severity_small[s].clone(), SMALL))
                    .collect(),
                anomalies_all: each_a(&|r| r.anomalies_all.clone(), usize::MAX),
                anomalies_small: each_a(&|r| r.anomalies_small.clone(), SMALL),
                anomalies_by_kind: (0..KINDS.len())
                    .map(|k| each_a(&|r| r.anomalies_by_kind[k].clone(), usize::MAX))
                    .collect(),
                anomalies_by_kind_small: (0..KINDS.len())
                    .map(|k| each_a(&|r| r.anomalies_by_kind_small[k].clone(), SMALL))
                    .collect(),
                severity_deltas: Vec::new(),
                severity: SEVERITY_STEPS
                    .iter()
                    .map(|&step| {
                        merge_severity(
                            parts.iter().map(|p| p.windows[w].severity_deltas.clone()),
                            first.as_of.saturating_sub(longest),
                            first.as_of,
                            step,
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let hosts = (0..first.hosts.len())
        .map(|h| merge_host(parts.iter().map(|p| p.hosts[h].clone())))
        .collect();
    let histories = (0..first.histories.len())
        .map(|h| merge_history(parts.iter().map(|p| p.histories[h].clone())))
        .collect();
    Read {
        phase: first.phase,
        as_of: first.as_of,
        windows,
        hosts,
        histories,
    }
}

/// Runs `script` on `workers` timely workers and returns the merged reads in plan order.
fn run_dataflow(script: &Script, settings: &RiskSettings, workers: usize) -> Vec<Read> {
    script.validate();
    let shared = std::sync::Arc::new((script.clone(), settings.clone()));
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (script, settings) = &*shared;
        let time = script.time();
        let windows = script.windows();
        let index = worker.index();
        let peers = worker.peers();
        let commands = Rc::new(RefCell::new(VecDeque::new()));
        let activator = Rc::new(RefCell::new(None::<Activator>));

        let (probe, mut traces) = worker.dataflow::<Millis, _, _>(|scope| {
            let events = scripted_source(scope, time, Rc::clone(&commands), Rc::clone(&activator));
            let graph = graph::render(events, windows.schedule().clone());
            let rendered = risk::render(&graph, &windows, settings);
            let (probe, _) = rendered.progress.probe();
            (probe, rendered.traces)
        });

        let mut reads = Vec::new();
        let mut global = 0usize;
        for (phase_index, phase) in script.phases.iter().enumerate() {
            let mine = deal(&phase.events, &mut global, index, peers);
            send_phase(&commands, &activator, mine, phase.advance_to);

            // Step until every risk arrangement (its stream and its trace) has reached the
            // phase's frontier.
            let target = phase.advance_to;
            let mut upper = Antichain::new();
            loop {
                let mut complete = !probe.less_than(&target);
                traces.ranked.read_upper(&mut upper);
                complete &= !upper.less_than(&target);
                traces.history.read_upper(&mut upper);
                complete &= !upper.less_than(&target);
                traces.anomalies.read_upper(&mut upper);
                complete &= !upper.less_than(&target);
                if complete {
                    break;
                }
                // Park rather than spin: 4 workers share 2 cores, and a parked worker is
                // woken by the messages of the others.
                worker.step_or_park(Some(PARK));
            }

            for &as_of in &phase.reads {
                let mut reader = RiskReader::new(&mut traces, as_of, &settings.risk);
                reads.push(read_worker(&mut reader, script, phase_index, as_of));
            }
        }

        // Let the dataflow finish so that the worker can shut down.
        close(&commands, &activator);
        while !probe.done() {
            worker.step_or_park(Some(PARK));
        }
        drop(traces);
        reads
    })
    .expect("timely starts");

    let parts: Vec<Vec<Read>> = guards
        .join()
        .into_iter()
        .map(|r| r.expect("worker panicked"))
        .collect();
    let n = parts[0].len();
    assert!(
        parts.iter().all(|p| p.len() == n),
        "workers made different reads"
    );
    (0..n)
        .map(|i| {
            let at_i: Vec<Read> = parts.iter().map(|p| p[i].clone()).collect();
            merge_reads(&at_i, *script.windows.iter().max().unwrap())
        })
        .collect()
}

fn differ<T: std::fmt::Debug + PartialEq>(
    what: &str,
    at: &dyn Fn() -> String,
    got: &T,
    expected: &T,
) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{}: {what} differ\n  dataflow: {got:#?}\n  oracle:   {expected:#?}",
            at()
        ))
    }
}

/// Compares the dataflow's merged reads with the oracle; the first difference is the error.
fn compare(
    script: &Script,
    settings: &RiskSettings,
    merged: &[Read],
    mistake: Mistake,
    workers: usize,
) -> Result<(), String> {
    let oracle = Oracle::new(script, settings, mistake);
    if merged.len() != script.read_count() {
        return Err(format!(
            "expected {} reads, got {}",
            script.read_count(),
            merged.len()
        ));
    }
    for m in merged {
        let t = m.as_of;
        for wr in &m.windows {
            let w = wr.window;
            let at = || {
                format!(
                    "workers={workers} phase={} (frontier {}) as_of={t} window={w}",
                    m.phase, script.phases[m.phase].advance_to
                )
            };
            differ("top", &at, &wr.top_all, &oracle.top(t, w, None, usize::MAX))?;
            differ(
                "top (small)",
                &at,
                &wr.top_small,
                &oracle.top(t, w, None, SMALL),
            )?;
            for (i, &s) in SEVERITIES.iter().enumerate() {
                differ(
                    &format!("top {s:?}"),
                    &at,
                    &wr.top_by_severity[i],
                    &oracle.top(t, w, Some(s), usize::MAX),
                )?;
                differ(
                    &format!("top {s:?} (small)"),
                    &at,
                    &wr.top_by_severity_small[i],
                    &oracle.top(t, w, Some(s), SMALL),
                )?;
            }
            differ(
                "anomalies",
                &at,
                &wr.anomalies_all,
                &oracle.anomalies_filtered(t, w, None, usize::MAX),
            )?;
            differ(
                "anomalies (small)",
                &at,
                &wr.anomalies_small,
                &oracle.anomalies_filtered(t, w, None, SMALL),
            )?;
            for (i, &k) in KINDS.iter().enumerate() {
                differ(
                    &format!("anomalies {k:?}"),
                    &at,
                    &wr.anomalies_by_kind[i],
                    &oracle.anomalies_filtered(t, w, Some(k), usize::MAX),
                )?;
                differ(
                    &format!("anomalies {k:?} (small)"),
                    &at,
                    &wr.anomalies_by_kind_small[i],
                    &oracle.anomalies_filtered(t, w, Some(k), SMALL),
                )?;
            }
            for (i, &step) in SEVERITY_STEPS.iter().enumerate() {
                differ(
                    &format!("severity step={step}"),
                    &at,
                    &wr.severity[i],
                    &oracle.severity_counts(t, w, step),
                )?;
            }
        }
        for (h, &ip) in script.hosts.iter().enumerate() {
            let at = || {
                format!(
                    "workers={workers} phase={} (frontier {}) as_of={t} host={ip}",
                    m.phase, script.phases[m.phase].advance_to
                )
            };
            differ("host rows", &at, &m.hosts[h], &oracle.host(t, ip))?;
            differ("history", &at, &m.histories[h], &oracle.history(t, ip))?;
        }
    }
    Ok(())
}

/// Runs the script on 1, 2 and 4 workers and compares each run with the oracle.
fn check_all_workers(script: &Script, settings: &RiskSettings) -> Result<(), String> {
    for workers in [1, 2, 4] {
        let merged = run_dataflow(script, settings, workers);
        compare(script, settings, &merged, Mistake::None, workers)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const TICK: Millis = 1_000;
const WINDOWS: [Millis; 3] = [3_000, 10_000, 30_000];

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The settings of the generated scripts: low thresholds so that everything fires, an
/// extra private range, a sensitive set that covers some of the generated ports.
fn test_settings() -> RiskSettings {
    let mut risk = RiskConfig {
        sensitive_ports: vec![22, 23, 445, 3389, 6379],
        bands: SeverityBands {
            medium: 5,
            critical: 12,
        },
        ..RiskConfig::default()
    };
    risk.private_ranges.push("100.64.0.0/10".parse().unwrap());
    RiskSettings {
        risk,
        anomalies: AnomalyConfig {
            port_scan: PortScanRule {
                min_connections: 3,
                min_ports: 3,
                min_hosts: 3,
                min_failed_percent: 50,
            },
            fanout_spike: FanoutSpikeRule {
                min_destinations: 2,
                factor: 2,
            },
        },
    }
}

/// Source hosts (their order is rotated per script, the first being the busiest).
fn sources() -> Vec<IpAddr> {
    vec![
        v4(10, 0, 0, 1),
        v6("fd00::1"),
        v4(8, 8, 8, 8),
        v6("2001:db8::53"),
    ]
}

/// Destinations: private and public of both families, at the edges of the ranges, IPv4-
/// mapped IPv6, and two of the sources.
fn destinations() -> Vec<IpAddr> {
    vec![
        // private IPv4
        v4(10, 0, 0, 2),
        v4(10, 255, 255, 255),
        v4(172, 16, 0, 1),
        v4(172, 31, 255, 254),
        v4(192, 168, 0, 1),
        v4(127, 0, 0, 1),
        v4(169, 254, 1, 1),
        v4(100, 64, 0, 1),
        // public IPv4
        v4(172, 32, 0, 1),
        v4(8, 8, 4, 4),
        v4(1, 1, 1, 1),
        v4(9, 9, 9, 9),
        v4(100, 128, 0, 1),
        v4(192, 169, 0, 1),
        // private IPv6
        v6("::1"),
        v6("fd12::1"),
        v6("fc00::5"),
        v6("fe80::1"),
        v6("febf::1"),
        v6("::ffff:10.0.0.9"),
        // public IPv6
        v6("2001:db8::1"),
        v6("fec0::1"),
        v6("::2"),
        v6("::ffff:8.8.8.8"),
        v6("2606:4700::1111"),
        // sources as destinations
        v4(10, 0, 0, 1),
        v6("fd00::1"),
    ]
}

const PORTS: [u16; 14] = [
    22, 23, 53, 80, 443, 445, 3389, 6379, 8080, 8443, 1024, 5000, 9999, 12345,
];
const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
const FAILURES: [Status; 4] = [
    Status::Rejected,
    Status::Reset,
    Status::Failed,
    Status::Other,
];

/// An address never used by any event, to read an unknown host.
fn stranger() -> IpAddr {
    v4(10, 9, 9, 9)
}

/// A host that only ever receives: it has no score.
fn receiver() -> IpAddr {
    v4(1, 1, 1, 1)
}

/// How one source host behaves in a script.
#[derive(Clone, Debug)]
struct Behaviour {
    /// % of its records that fail.
    fail_rate: u64,
    /// % of its records that go to any destination / port rather than its usual ones.
    spread: u64,
}

#[derive(Clone, Debug)]
struct RawRecord {
    gap: Millis,
    lag: Millis,
    /// Index into the weighted source choice.
    src: usize,
    roll_spread: u64,
    dst: usize,
    usual_dst: usize,
    port: usize,
    usual_port: usize,
    proto: usize,
    roll_fail: u64,
    failure: usize,
    bytes_out: u64,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    (
        prop_oneof![Just(0u64), 0..=100u64, Just(100u64), 50..=100u64],
        prop_oneof![0..=100u64, 50..=100u64],
    )
        .prop_map(|(fail_rate, spread)| Behaviour { fail_rate, spread })
}

fn raw_record(shape: Shape) -> impl Strategy<Value = RawRecord> {
    (
        (
            prop_oneof![3 => 0..800u64, 1 => Just(0u64), 1 => 800..4_000u64],
            lag_strategy(shape),
            0..10usize,
            0..100u64,
            0..destinations().len(),
            0..3usize,
        ),
        (
            0..PORTS.len(),
            0..3usize,
            0..PROTOS.len(),
            0..100u64,
            0..FAILURES.len(),
            prop_oneof![6 => 0..5_000u64, 2 => 2_000_000..15_000_000u64],
        ),
    )
        .prop_map(
            |(
                (gap, lag, src, roll_spread, dst, usual_dst),
                (port, usual_port, proto, roll_fail, failure, bytes_out),
            )| RawRecord {
                gap,
                lag,
                src,
                roll_spread,
                dst,
                usual_dst,
                port,
                usual_port,
                proto,
                roll_fail,
                failure,
                bytes_out,
            },
        )
}

/// Assembles a script: records in arrival order, cut into phases by `steps`, then a sweep
/// across the whole history.
fn build_script(
    (tick, windows): (Millis, Vec<Millis>),
    base: Millis,
    lateness: Millis,
    rotation: usize,
    behaviours: Vec<Behaviour>,
    records: Vec<RawRecord>,
    steps: Vec<RawStep>,
) -> Script {
    let time = TimeModel::new(tick).unwrap();
    let mut srcs = sources();
    let n = srcs.len();
    srcs.rotate_left(rotation % n);
    let dsts = destinations();
    // The first source is the busiest.
    const WEIGHTED: [usize; 10] = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3];
    let mut clock = base;
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            clock += r.gap;
            let s = WEIGHTED[r.src];
            let b = &behaviours[s];
            let wide = r.roll_spread < b.spread;
            let dst = if wide {
                dsts[r.dst]
            } else {
                dsts[(s * 5 + r.usual_dst) % dsts.len()]
            };
            let port = if wide {
                PORTS[r.port]
            } else {
                PORTS[(s * 3 + 2 + r.usual_port) % PORTS.len()]
            };
            let status = if r.roll_fail < b.fail_rate {
                FAILURES[r.failure]
            } else {
                Status::Established
            };
            Event {
                ts: clock.saturating_sub(r.lag),
                src_ip: srcs[s],
                dst_ip: dst,
                src_port: 40_000,
                dst_port: port,
                proto: PROTOS[r.proto],
                bytes_out: r.bytes_out,
                bytes_in: 100,
                packets: 2,
                duration_ms: None,
                status,
            }
        })
        .collect();
    let phases = plan_phases(time, &windows, lateness, &events, &steps, 24);
    let mut hosts = srcs;
    hosts.push(stranger());
    hosts.push(receiver());
    Script {
        tick,
        windows,
        panes: Vec::new(),
        phases,
        hosts,
    }
}

/// The time model and windows of a generated script: mostly the 1 s tick with 3 s, 10 s
/// and 30 s windows (the longest a multiple of the others), sometimes windows whose
/// lengths do not divide the longest, only two windows, or a 500 ms tick.
fn time_and_windows() -> impl Strategy<Value = (Millis, Vec<Millis>)> {
    prop_oneof![
        3 => Just((TICK, WINDOWS.to_vec())),
        1 => Just((1_000, vec![2_000, 7_000, 25_000])),
        1 => Just((1_000, vec![4_000, 11_000])),
        1 => Just((500, vec![1_500, 5_000, 14_500])),
    ]
}

fn script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (
        time_and_windows(),
        prop_oneof![
            Just(0u64),
            0..20_000u64,
            Just(1_700_000_000_000u64),
            1_700_000_000_000..1_700_000_040_000u64
        ],
        prop_oneof![Just(0u64), Just(1_000u64), Just(2_500u64), Just(5_000u64)],
        0..4usize,
        prop::collection::vec(behaviour(), 4),
        prop::collection::vec(raw_record(shape), 1..70),
        prop::collection::vec(raw_step(), 1..6),
    )
        .prop_map(
            |(time, base, lateness, rotation, behaviours, records, steps)| {
                build_script(time, base, lateness, rotation, behaviours, records, steps)
            },
        )
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number (for a deeper
/// run: `PROPTEST_CASES=100 cargo test -p flowsight-queries --test risk_oracle`). Failing
/// cases are kept in `queries/proptest-regressions/risk_oracle.txt`, to be committed.
fn config(cases: u32) -> ProptestConfig {
    common::config(cases, Some("proptest-regressions/risk_oracle.txt"))
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn risk_matches_oracle_in_order(script in script_strategy(Shape::InOrder)) {
        check_all_workers(&script, &test_settings()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn risk_matches_oracle_out_of_order(script in script_strategy(Shape::Jittered)) {
        check_all_workers(&script, &test_settings()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn risk_matches_oracle_with_very_late_records(script in script_strategy(Shape::VeryLate)) {
        check_all_workers(&script, &test_settings()).map_err(TestCaseError::fail)?;
    }
}

/// Panes for the 3 s, 10 s and 30 s windows, each valid (nested, each window at least the
/// shorter one plus its pane).
const PANES: [[Millis; 3]; 3] = [
    [1_000, 2_000, 10_000],
    [3_000, 3_000, 6_000],
    [2_000, 4_000, 12_000],
];

/// A script of `shape` on the 1 s tick with 3 s, 10 s and 30 s windows kept in panes.
fn paned_script_strategy(shape: Shape) -> impl Strategy<Value = Script> {
    (script_strategy(shape), 0..PANES.len())
        .prop_filter("the 1 s tick with 3 s, 10 s and 30 s windows", |(s, _)| {
            s.tick == TICK && s.windows == WINDOWS
        })
        .prop_map(|(mut script, panes)| {
            script.panes = PANES[panes].to_vec();
            script
        })
}

proptest! {
    #![proptest_config(config(CASES / 2))]

    /// With panes: a window's start is a pane boundary, and a tick leaves window W at
    /// ceil_p(own) + W.
    #[test]
    fn risk_matches_oracle_with_panes(script in paned_script_strategy(Shape::Jittered)) {
        check_all_workers(&script, &test_settings()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn risk_matches_oracle_with_panes_and_very_late_records(
        script in paned_script_strategy(Shape::VeryLate)
    ) {
        check_all_workers(&script, &test_settings()).map_err(TestCaseError::fail)?;
    }
}

/// Cases per property by default.
const CASES: u32 = 32;

// ---------------------------------------------------------------------------------------------
// The strategies are not vacuous
// ---------------------------------------------------------------------------------------------

/// What the oracle's answers over a whole script contain.
const FEATURES: [&str; 18] = [
    "fanout points",
    "ports points",
    "failures points",
    "failures 0 below 10 connections",
    "sensitive points",
    "external points",
    "low",
    "medium",
    "critical",
    "port_scan",
    "fanout_spike",
    "new_external_destination",
    "episode started before as_of",
    "history with 3+ changes",
    "late record counted",
    "mapped / IPv6 destination external",
    "spike held back by the baseline",
    "a pair new again after the lookback",
];

fn features(script: &Script, settings: &RiskSettings) -> [bool; FEATURES.len()] {
    let oracle = Oracle::new(script, settings, Mistake::None);
    let mut seen = [false; FEATURES.len()];
    let tick = script.tick;
    for phase in &script.phases {
        for &t in &phase.reads {
            for &w in &script.windows {
                for row in oracle.top(t, w, None, usize::MAX) {
                    let f = row.factors;
                    seen[0] |= f.fanout.points > 0;
                    seen[1] |= f.ports.points > 0;
                    seen[2] |= f.failures.points > 0;
                    seen[3] |=
                        f.failures.points == 0 && f.failures.value > 0 && row.connections < 10;
                    seen[4] |= f.sensitive.points > 0;
                    seen[5] |= f.external.points > 0;
                    seen[6] |= row.severity == Severity::Low;
                    seen[7] |= row.severity == Severity::Medium;
                    seen[8] |= row.severity == Severity::Critical;
                }
                for a in oracle.anomalies(t, w) {
                    match a.kind {
                        AnomalyKind::PortScan => seen[9] = true,
                        AnomalyKind::FanoutSpike => seen[10] = true,
                        AnomalyKind::NewExternalDestination => {
                            seen[11] = true;
                            if let Evidence::NewExternalDestination {
                                dst_ip: IpAddr::V6(_),
                            } = a.evidence
                            {
                                seen[15] = true;
                            }
                        }
                        AnomalyKind::PolicyViolation => {
                            unreachable!("the oracle never makes policy violations")
                        }
                    }
                    seen[12] |=
                        a.kind != AnomalyKind::NewExternalDestination && a.first_detected < t;
                }
            }
            for &w in &script.windows {
                if !oracle.has_baseline(w) {
                    continue;
                }
                let rule = settings.anomalies.fanout_spike;
                for (ip, c) in oracle.counters(t, w).iter() {
                    let (n, b) = oracle.baseline(t, w, *ip);
                    seen[16] |= n >= 1
                        && c.destinations >= rule.min_destinations
                        && b > 0
                        && c.destinations * n < rule.factor * b;
                }
                for a in oracle.anomalies(t, w) {
                    if let Evidence::NewExternalDestination { dst_ip } = a.evidence {
                        seen[17] |= oracle.records.iter().any(|(e, entry)| {
                            (e.src_ip, e.dst_ip) == (a.host, dst_ip)
                                && *entry <= t
                                && e.ts + oracle.longest < a.first_detected
                        });
                    }
                }
            }
            for &ip in &script.hosts {
                seen[13] |= oracle.history(t, ip).iter().any(|h| h.changes.len() >= 4);
            }
        }
    }
    for (e, entry) in &oracle.records {
        let own = (e.ts / tick) * tick + tick;
        seen[14] |= *entry > own;
    }
    seen
}

/// Over a fixed set of generated scripts (the first ones of a deterministic runner), the
/// oracle's answers contain every factor, every severity and every anomaly kind in a good
/// share of the scripts: the properties above cannot pass vacuously.
#[test]
fn generated_scripts_exercise_every_factor_severity_and_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let settings = test_settings();
    let mut counts = [0usize; FEATURES.len()];
    let mut scripts = 0;
    for shape in [Shape::InOrder, Shape::Jittered, Shape::VeryLate] {
        let mut runner = TestRunner::deterministic();
        let strategy = script_strategy(shape);
        for _ in 0..20 {
            let script = strategy.new_tree(&mut runner).unwrap().current();
            scripts += 1;
            for (count, seen) in counts.iter_mut().zip(features(&script, &settings)) {
                *count += usize::from(seen);
            }
        }
    }
    let report: Vec<String> = FEATURES
        .iter()
        .zip(&counts)
        .map(|(name, n)| format!("{name}: {n}/{scripts}"))
        .collect();
    println!("{}", report.join("\n"));
    for (name, n) in FEATURES.iter().zip(&counts) {
        assert!(
            *n * 4 >= scripts,
            "only {n} of {scripts} scripts show {name}:\n{}",
            report.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed examples: exact numbers from the document
// ---------------------------------------------------------------------------------------------

/// The oracle's answers in the shape of a dataflow read, for the hand-computed checks.
fn oracle_read(oracle: &Oracle<'_>, script: &Script, phase: usize, as_of: Millis) -> Read {
    let windows = script
        .windows
        .iter()
        .map(|&w| WindowRead {
            window: w,
            top_all: oracle.top(as_of, w, None, usize::MAX),
            top_small: oracle.top(as_of, w, None, SMALL),
            top_by_severity: SEVERITIES
                .iter()
                .map(|&s| oracle.top(as_of, w, Some(s), usize::MAX))
                .collect(),
            top_by_severity_small: SEVERITIES
                .iter()
                .map(|&s| oracle.top(as_of, w, Some(s), SMALL))
                .collect(),
            anomalies_all: oracle.anomalies_filtered(as_of, w, None, usize::MAX),
            anomalies_small: oracle.anomalies_filtered(as_of, w, None, SMALL),
            anomalies_by_kind: KINDS
                .iter()
                .map(|&k| oracle.anomalies_filtered(as_of, w, Some(k), usize::MAX))
                .collect(),
            anomalies_by_kind_small: KINDS
                .iter()
                .map(|&k| oracle.anomalies_filtered(as_of, w, Some(k), SMALL))
                .collect(),
            severity_deltas: Vec::new(),
            severity: SEVERITY_STEPS
                .iter()
                .map(|&step| oracle.severity_counts(as_of, w, step))
                .collect(),
        })
        .collect();
    Read {
        phase,
        as_of,
        windows,
        hosts: script
            .hosts
            .iter()
            .map(|&ip| oracle.host(as_of, ip))
            .collect(),
        histories: script
            .hosts
            .iter()
            .map(|&ip| oracle.history(as_of, ip))
            .collect(),
    }
}

/// Runs a hand-made script and checks `expect` first against the oracle's answers, then
/// against the dataflow's on 1, 2 and 4 workers, and finally the whole comparison.
/// `expect` sees each read and says what it checked (so that no read goes unchecked
/// unnoticed); it panics on a wrong number.
fn check_by_hand(script: &Script, settings: &RiskSettings, expect: impl Fn(&Read, &str)) {
    let oracle = Oracle::new(script, settings, Mistake::None);
    for (phase_index, phase) in script.phases.iter().enumerate() {
        for &as_of in &phase.reads {
            let read = oracle_read(&oracle, script, phase_index, as_of);
            expect(&read, "oracle");
        }
    }
    for workers in [1, 2, 4] {
        let merged = run_dataflow(script, settings, workers);
        for read in &merged {
            expect(read, &format!("dataflow on {workers} workers"));
        }
        if let Err(e) = compare(script, settings, &merged, Mistake::None, workers) {
            panic!("the dataflow disagrees with the oracle: {e}");
        }
    }
}

fn window_of(read: &Read, window: Millis) -> &WindowRead {
    read.windows.iter().find(|w| w.window == window).unwrap()
}

fn ev(ts: Millis, src: IpAddr, dst: IpAddr, port: u16, status: Status, bytes_out: u64) -> Event {
    Event {
        ts,
        src_ip: src,
        dst_ip: dst,
        src_port: 40_000,
        dst_port: port,
        proto: Proto::Tcp,
        bytes_out,
        bytes_in: 7,
        packets: 2,
        duration_ms: None,
        status,
    }
}

/// A row from its factors, each `(points, value)` in the order fanout, ports, failures,
/// sensitive, external.
fn risk_row(
    ip: IpAddr,
    score: u8,
    severity: Severity,
    connections: u64,
    f: [(u8, u64); 5],
) -> RiskRow {
    let factor = |(points, value): (u8, u64)| Factor { points, value };
    RiskRow {
        ip,
        score,
        severity,
        connections,
        factors: Factors {
            fanout: factor(f[0]),
            ports: factor(f[1]),
            failures: factor(f[2]),
            sensitive: factor(f[3]),
            external: factor(f[4]),
        },
    }
}

fn one_phase(events: Vec<Event>, advance_to: Millis, reads: Vec<Millis>) -> Phase {
    Phase {
        events,
        advance_to,
        reads,
    }
}

/// The scores of the document with its default settings, every record in the tick
/// `[1000, 2000)` and read at 2000, where every window holds all of them:
///
/// | host | records | counters | score |
/// |---|---|---|---|
/// | .1 | 9, all rejected | failed 9 of 9: below ten connections, 0 points | 1 low |
/// | .3 | 10, 5 rejected | 20 × 5 ÷ 10 = 10 | 11 low |
/// | .4 | 11, 1 rejected | 20 × 1 ÷ 11 = 1 | 2 low |
/// | .5 | 10 failed to 8.8.8.8 on 22, 445, 3389; 30 MB | 20 + 15 + 3 | 39 low |
/// | .6 | the same with 40 MB | 20 + 15 + 4 | 40 medium |
/// | .8 | 100 failed to 100 public hosts on 100 ports; 39,999,999 B | 25 + 20 + 20 + 3 | 69 medium |
/// | .7 | the same with 40 MB | 25 + 20 + 20 + 4 | 70 critical |
/// | .9 | 120 failed to 120 public hosts, 110 ports (4 sensitive), 300 MB | 25+20+20+15+20 = 101 | 100 critical |
fn scores_script() -> Script {
    use Status::*;
    let host = |d: u8| v4(10, 0, 0, d);
    let internal = v4(10, 0, 0, 2);
    let mut events = Vec::new();
    let mut ts = 1_000;
    let mut next = || {
        ts += 1;
        ts
    };
    for _ in 0..9 {
        events.push(ev(next(), host(1), internal, 80, Rejected, 0));
    }
    for i in 0..10 {
        let status = if i % 2 == 0 { Rejected } else { Established };
        events.push(ev(next(), host(3), internal, 80, status, 0));
    }
    for i in 0..11 {
        let status = if i == 0 { Rejected } else { Established };
        events.push(ev(next(), host(4), internal, 80, status, 0));
    }
    for (h, bytes) in [(5, 3_000_000), (6, 4_000_000)] {
        for i in 0..10 {
            let port = [22, 445, 3389][i % 3];
            events.push(ev(next(), host(h), v4(8, 8, 8, 8), port, Failed, bytes));
        }
    }
    for (h, last) in [(7, 400_000), (8, 399_999)] {
        for i in 0..100u8 {
            let bytes = if i == 99 { last } else { 400_000 };
            let port = 10_000 + u16::from(i);
            events.push(ev(next(), host(h), v4(203, 0, 113, i), port, Reset, bytes));
        }
    }
    for i in 0..120u16 {
        let port = match i {
            0..=3 => [22, 23, 445, 3389][usize::from(i)],
            4..=109 => 20_000 + i,
            _ => 20_004,
        };
        let dst = v4(198, 51, 100, i as u8);
        events.push(ev(next(), host(9), dst, port, Other, 2_500_000));
    }
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(events, 3_000, vec![2_000])],
        hosts: vec![host(1), host(9), stranger()],
    }
}

fn scores_expected() -> Vec<RiskRow> {
    use Severity::*;
    let host = |d: u8| v4(10, 0, 0, d);
    vec![
        risk_row(
            host(9),
            100,
            Critical,
            120,
            [(25, 120), (20, 110), (20, 120), (15, 4), (20, 300_000_000)],
        ),
        risk_row(
            host(7),
            70,
            Critical,
            100,
            [(25, 100), (20, 100), (20, 100), (0, 0), (4, 40_000_000)],
        ),
        risk_row(
            host(8),
            69,
            Medium,
            100,
            [(25, 100), (20, 100), (20, 100), (0, 0), (3, 39_999_999)],
        ),
        risk_row(
            host(6),
            40,
            Medium,
            10,
            [(0, 1), (0, 3), (20, 10), (15, 3), (4, 40_000_000)],
        ),
        risk_row(
            host(5),
            39,
            Low,
            10,
            [(0, 1), (0, 3), (20, 10), (15, 3), (3, 30_000_000)],
        ),
        risk_row(
            host(3),
            11,
            Low,
            10,
            [(0, 1), (0, 1), (10, 5), (0, 0), (0, 0)],
        ),
        risk_row(
            host(4),
            2,
            Low,
            11,
            [(0, 1), (0, 1), (1, 1), (0, 0), (0, 0)],
        ),
        risk_row(host(1), 1, Low, 9, [(0, 1), (0, 1), (0, 9), (0, 0), (0, 0)]),
    ]
}

#[test]
fn scores_at_the_ten_connection_rule_band_boundaries_and_clamps() {
    let script = scores_script();
    let settings = RiskSettings::default();
    let expected = scores_expected();
    check_by_hand(&script, &settings, |read, who| {
        assert_eq!(read.as_of, 2_000);
        for &w in &WINDOWS {
            let wr = window_of(read, w);
            assert_eq!(wr.top_all, expected, "{who}: top in {w}");
            assert_eq!(wr.top_small, expected[..SMALL], "{who}: top {SMALL} in {w}");
            for (i, s) in SEVERITIES.iter().enumerate() {
                let of_s: Vec<RiskRow> = expected
                    .iter()
                    .filter(|r| r.severity == *s)
                    .copied()
                    .collect();
                assert_eq!(wr.top_by_severity[i], of_s, "{who}: {s:?} in {w}");
            }
        }
        // The host view: every window, shortest first; nothing for a stranger.
        let by_window: Vec<(Millis, RiskRow)> = WINDOWS.iter().map(|&w| (w, expected[7])).collect();
        assert_eq!(read.hosts[0], by_window, "{who}: host .1");
        assert_eq!(read.hosts[1][0], (3_000, expected[0]), "{who}: host .9");
        assert!(read.hosts[2].is_empty(), "{who}: a stranger has no score");
        // History at 2000 (T − L saturates at 0): no score at 0, then the score from 2000.
        let history: Vec<WindowHistory> = WINDOWS
            .iter()
            .map(|&w| WindowHistory {
                window: w,
                changes: vec![
                    ScoreChange {
                        as_of: 0,
                        score: None,
                        severity: None,
                    },
                    ScoreChange {
                        as_of: 2_000,
                        score: Some(100),
                        severity: Some(Severity::Critical),
                    },
                ],
            })
            .collect();
        assert_eq!(read.histories[1], history, "{who}: history of .9");
        // The default anomalies: .9 (120 failed connections to 120 hosts) scans, .7 and
        // .8 too (100 to 100); none spikes (no baseline yet); every public destination
        // is new.
        let wr = window_of(read, 3_000);
        let scans: Vec<IpAddr> = wr.anomalies_by_kind[0].iter().map(|a| a.host).collect();
        assert_eq!(
            scans,
            vec![host_ip(7), host_ip(8), host_ip(9)],
            "{who}: port scans"
        );
        assert!(wr.anomalies_by_kind[1].is_empty(), "{who}: no spike");
        assert_eq!(
            wr.anomalies_by_kind[2].len(),
            2 + 2 * 100 + 120,
            "{who}: first contacts"
        );
    });
}

fn host_ip(d: u8) -> IpAddr {
    v4(10, 0, 0, d)
}

/// Private ranges of both families, with the configured list (the defaults plus
/// `100.64.0.0/10` and `2001:db8:1::/48`); 10 MB to each destination, ts 1000 + 10 i.
///
/// * `fd00::1` sends to 8 private addresses (ULA, link-local at both ends of fe80::/10,
///   loopback, mapped 10/8 and 192.168/16, the configured 2001:db8:1::/48) and 6 public
///   ones (documentation, fec0::, fe00::, ::2, mapped 8.8.8.8 and 172.32.0.1):
///   external 60 MB → 6, 14 destinations → 3, score 10.
/// * `192.168.1.7` sends 5 MB to 7 public IPv4 addresses just outside the ranges (35 MB
///   → 3) and 1 GB to 6 private ones at their edges (not counted); 13 destinations → 3,
///   score 7.
fn ranges_script() -> Script {
    let v6_host = v6("fd00::1");
    let v4_host = v4(192, 168, 1, 7);
    let v6_private = [
        "fd12::1",
        "fc00::1",
        "fe80::1",
        "febf:ffff::1",
        "::1",
        "::ffff:10.0.0.9",
        "::ffff:192.168.1.1",
        "2001:db8:1::5",
    ];
    let v6_public = [
        "2001:db8:2::5",
        "fec0::1",
        "fe00::1",
        "::2",
        "::ffff:8.8.8.8",
        "::ffff:172.32.0.1",
    ];
    let v4_public = [
        v4(172, 32, 0, 1),
        v4(172, 15, 255, 255),
        v4(11, 0, 0, 1),
        v4(192, 169, 0, 1),
        v4(169, 255, 0, 1),
        v4(128, 0, 0, 1),
        v4(100, 128, 0, 1),
    ];
    let v4_private = [
        v4(172, 31, 255, 255),
        v4(10, 255, 255, 255),
        v4(192, 168, 255, 255),
        v4(127, 255, 255, 255),
        v4(169, 254, 255, 255),
        v4(100, 127, 255, 255),
    ];
    let mut events = Vec::new();
    let mut ts = 1_000;
    for dst in v6_private.iter().chain(&v6_public) {
        events.push(ev(
            ts,
            v6_host,
            v6(dst),
            443,
            Status::Established,
            10_000_000,
        ));
        ts += 10;
    }
    for &dst in &v4_public {
        events.push(ev(ts, v4_host, dst, 443, Status::Established, 5_000_000));
        ts += 10;
    }
    for &dst in &v4_private {
        events.push(ev(
            ts,
            v4_host,
            dst,
            443,
            Status::Established,
            1_000_000_000,
        ));
        ts += 10;
    }
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(events, 3_000, vec![2_000])],
        hosts: vec![v6_host, v4_host],
    }
}

fn ranges_settings() -> RiskSettings {
    let mut settings = RiskSettings::default();
    settings
        .risk
        .private_ranges
        .push("100.64.0.0/10".parse().unwrap());
    settings
        .risk
        .private_ranges
        .push("2001:db8:1::/48".parse().unwrap());
    settings
}

#[test]
fn private_ranges_of_both_families() {
    let script = ranges_script();
    let settings = ranges_settings();
    let v6_host = v6("fd00::1");
    let v4_host = v4(192, 168, 1, 7);
    use Severity::Low;
    let v6_row = risk_row(
        v6_host,
        10,
        Low,
        14,
        [(3, 14), (0, 1), (0, 0), (0, 0), (6, 60_000_000)],
    );
    let v4_row = risk_row(
        v4_host,
        7,
        Low,
        13,
        [(3, 13), (0, 1), (0, 0), (0, 0), (3, 35_000_000)],
    );
    check_by_hand(&script, &settings, |read, who| {
        for &w in &WINDOWS {
            let wr = window_of(read, w);
            // IPv4 hosts rank before IPv6 ones at equal scores; here the scores differ.
            assert_eq!(wr.top_all, vec![v6_row, v4_row], "{who}: window {w}");
            let mut contacts: Vec<IpAddr> = wr.anomalies_by_kind[2]
                .iter()
                .map(|a| match a.evidence {
                    Evidence::NewExternalDestination { dst_ip } => dst_ip,
                    other => panic!("{other:?}"),
                })
                .collect();
            contacts.sort();
            let mut public: Vec<IpAddr> = ["2001:db8:2::5", "fec0::1", "fe00::1", "::2"]
                .iter()
                .map(|s| v6(s))
                .chain(
                    ["::ffff:8.8.8.8", "::ffff:172.32.0.1"]
                        .iter()
                        .map(|s| v6(s)),
                )
                .chain([
                    v4(172, 32, 0, 1),
                    v4(172, 15, 255, 255),
                    v4(11, 0, 0, 1),
                    v4(192, 169, 0, 1),
                    v4(169, 255, 0, 1),
                    v4(128, 0, 0, 1),
                    v4(100, 128, 0, 1),
                ])
                .collect();
            public.sort();
            assert_eq!(contacts, public, "{who}: first contacts in {w}");
        }
    });
}

/// A late record entering and leaving every window (default settings, all destinations
/// private, port 22 / 445 / 3389 sensitive: 5 points each).
///
/// * phase 0: `.1 → .2:22` at 5500; the frontier moves to 10000.
/// * phase 1, late at 10000: `.1 → .3:445` at 2500 (own time 3000). It is in the 10 s
///   window from 10000 (it entered) to 12000 and leaves at 13000 (2500 + 10 s); in the
///   30 s window until 32000; never in the 3 s one (it entered after 5500).
/// * phase 2, at frontier 40000: `.1 → .4:3389` at 29500 (own 30000), in the 30 s window
///   only; and at 1000 (own 2000): 38 s late, beyond every window, never counted.
fn late_script() -> Script {
    let a = host_ip(1);
    let est = Status::Established;
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![
            one_phase(
                vec![ev(5_500, a, host_ip(2), 22, est, 10)],
                10_000,
                vec![6_000, 9_000],
            ),
            one_phase(
                vec![ev(2_500, a, host_ip(3), 445, est, 10)],
                40_000,
                vec![
                    10_000, 12_000, 13_000, 15_000, 16_000, 32_000, 33_000, 35_000, 36_000, 39_000,
                ],
            ),
            one_phase(
                vec![
                    ev(29_500, a, host_ip(4), 3389, est, 10),
                    ev(1_000, a, host_ip(5), 3389, est, 10),
                ],
                45_000,
                vec![40_000, 44_000],
            ),
        ],
        hosts: vec![a],
    }
}

#[test]
fn a_late_record_enters_and_leaves_the_windows() {
    let script = late_script();
    let settings = RiskSettings::default();
    let a = host_ip(1);
    // (connections, distinct sensitive ports) → the row.
    let row = |n: u64| {
        risk_row(
            a,
            1 + 5 * n as u8,
            Severity::Low,
            n,
            [(0, n), (0, n), (0, 0), (5 * n as u8, n), (0, 0)],
        )
    };
    let change = |as_of: Millis, score: Option<u8>| ScoreChange {
        as_of,
        score,
        severity: score.map(|_| Severity::Low),
    };
    check_by_hand(&script, &settings, |read, who| {
        // Records in each window: [3 s, 10 s, 30 s].
        let expected: [u64; 3] = match read.as_of {
            6_000 => [1, 1, 1],
            9_000 => [0, 1, 1],
            10_000 | 12_000 => [0, 2, 2],
            13_000 | 15_000 => [0, 1, 2],
            16_000 | 32_000 => [0, 0, 2],
            33_000 | 35_000 => [0, 0, 1],
            36_000 | 39_000 => [0, 0, 0],
            40_000 | 44_000 => [0, 0, 1],
            other => panic!("no read at {other}"),
        };
        for (i, &w) in WINDOWS.iter().enumerate() {
            let top = &window_of(read, w).top_all;
            let want: Vec<RiskRow> = (expected[i] > 0)
                .then(|| row(expected[i]))
                .into_iter()
                .collect();
            assert_eq!(top, &want, "{who}: as_of {} window {w}", read.as_of);
            assert!(
                window_of(read, w).anomalies_all.is_empty(),
                "{who}: all private"
            );
        }
        let host: Vec<(Millis, RiskRow)> = WINDOWS
            .iter()
            .zip(expected)
            .filter(|(_, n)| *n > 0)
            .map(|(&w, n)| (w, row(n)))
            .collect();
        assert_eq!(read.hosts[0], host, "{who}: host at {}", read.as_of);
        let history = |changes: [&[(Millis, Option<u8>)]; 3]| -> Vec<WindowHistory> {
            WINDOWS
                .iter()
                .zip(changes)
                .map(|(&w, c)| WindowHistory {
                    window: w,
                    changes: c.iter().map(|&(t, s)| change(t, s)).collect(),
                })
                .collect()
        };
        match read.as_of {
            10_000 => assert_eq!(
                read.histories[0],
                history([
                    &[(0, None), (6_000, Some(6)), (9_000, None)],
                    &[(0, None), (6_000, Some(6)), (10_000, Some(11))],
                    &[(0, None), (6_000, Some(6)), (10_000, Some(11))],
                ]),
                "{who}: history at 10000"
            ),
            44_000 => assert_eq!(
                read.histories[0],
                history([
                    &[(14_000, None)],
                    &[(14_000, Some(6)), (16_000, None)],
                    &[
                        (14_000, Some(11)),
                        (33_000, Some(6)),
                        (36_000, None),
                        (40_000, Some(6)),
                    ],
                ]),
                "{who}: history at 44000"
            ),
            _ => {}
        }
    });
}

/// `port_scan` episodes (test settings: 3 connections, 3 ports or hosts, 50 % failed),
/// `.1 → .2` (one private destination, so nothing else fires):
///
/// * 10100 :22 rejected, 10200 :23 rejected, 10300 :80 established;
/// * 15100 :22, 15200 :23, 15300 :80 failed;
/// * 16500, 16600, 16700, 16800 :80 established; 17500 :80 established.
///
/// 3 s window: an episode from 11000 to 13000 ({3, 2, 3, 1}); a new one at 16000 only
/// ({3, 3, 3, 1}; at 17000 [14000, 17000) holds 7 connections, 3 failed: 43 %).
/// 10 s and 30 s windows: one episode from 11000 to 17000, where 5 of 10 failed is exactly
/// 50 %; at 18000 5 of 11 is not.
fn scan_script() -> Script {
    use Status::*;
    let (s, d) = (host_ip(1), host_ip(2));
    let events = vec![
        ev(10_100, s, d, 22, Rejected, 1),
        ev(10_200, s, d, 23, Rejected, 1),
        ev(10_300, s, d, 80, Established, 1),
        ev(15_100, s, d, 22, Failed, 1),
        ev(15_200, s, d, 23, Failed, 1),
        ev(15_300, s, d, 80, Failed, 1),
        ev(16_500, s, d, 80, Established, 1),
        ev(16_600, s, d, 80, Established, 1),
        ev(16_700, s, d, 80, Established, 1),
        ev(16_800, s, d, 80, Established, 1),
        ev(17_500, s, d, 80, Established, 1),
    ];
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            events,
            30_000,
            (10..=20).map(|s| s * 1_000).collect(),
        )],
        hosts: vec![s],
    }
}

#[test]
fn port_scan_episodes_and_their_first_detection() {
    let script = scan_script();
    let settings = test_settings();
    let s = host_ip(1);
    let scan = |first_detected: Millis, c: u64, f: u64| Anomaly {
        host: s,
        kind: AnomalyKind::PortScan,
        first_detected,
        evidence: Evidence::PortScan {
            connections: c,
            failed: f,
            distinct_ports: 3,
            distinct_hosts: 1,
        },
    };
    check_by_hand(&script, &settings, |read, who| {
        let t = read.as_of;
        let short = match t {
            11_000..=13_000 => vec![scan(11_000, 3, 2)],
            16_000 => vec![scan(16_000, 3, 3)],
            _ => vec![],
        };
        let long = match t {
            11_000..=15_000 => vec![scan(11_000, 3, 2)],
            16_000 => vec![scan(11_000, 6, 5)],
            17_000 => vec![scan(11_000, 10, 5)],
            _ => vec![],
        };
        assert_eq!(
            window_of(read, 3_000).anomalies_all,
            short,
            "{who}: 3 s at {t}"
        );
        assert_eq!(
            window_of(read, 10_000).anomalies_all,
            long,
            "{who}: 10 s at {t}"
        );
        assert_eq!(
            window_of(read, 30_000).anomalies_all,
            long,
            "{who}: 30 s at {t}"
        );
        assert_eq!(
            window_of(read, 3_000).anomalies_by_kind[0],
            short,
            "{who}: 3 s port scans at {t}"
        );
    });
}

/// `fanout_spike` against a baseline (test settings: 2 destinations, factor 2). `.7` talks
/// to `10.0.1.1` and `10.0.1.2` in every 3 s bucket (at 3000 k + 100 and + 200, k = 0…9),
/// then to `.1`, `.2`, `.3` at 30100…30300 and to `.4` at 32500.
///
/// * 3 s window, at 31000 and 32000: 3 destinations over 8 buckets of 2 each (3 × 8 < 2 ×
///   16); at 33000: 4 over 9 buckets (4 × 9 ≥ 2 × 18, exactly): a spike, first detected
///   at 33000, evidence {4, 18, 9}; at 34000 only `.4` is left.
/// * 10 s window: from 33000 ({4, 2, 1}) to 40000 ({4, 4, 2}); nothing at 41000.
/// * 30 s window: no baseline (2 × 30 s > 30 s).
fn spike_script() -> Script {
    let f = host_ip(7);
    let d = |i: u8| v4(10, 0, 1, i);
    let est = Status::Established;
    let mut events = Vec::new();
    for k in 0..10 {
        events.push(ev(3_000 * k + 100, f, d(1), 80, est, 1));
        events.push(ev(3_000 * k + 200, f, d(2), 80, est, 1));
    }
    events.push(ev(30_100, f, d(1), 80, est, 1));
    events.push(ev(30_200, f, d(2), 80, est, 1));
    events.push(ev(30_300, f, d(3), 80, est, 1));
    events.push(ev(32_500, f, d(4), 80, est, 1));
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            events,
            45_000,
            (28..=42).map(|s| s * 1_000).collect(),
        )],
        hosts: vec![f],
    }
}

#[test]
fn fanout_spike_against_a_baseline() {
    let script = spike_script();
    let settings = test_settings();
    let f = host_ip(7);
    let spike = |first_detected: Millis, d: u64, b: u64, n: u64| Anomaly {
        host: f,
        kind: AnomalyKind::FanoutSpike,
        first_detected,
        evidence: Evidence::FanoutSpike {
            destinations: d,
            baseline_destinations: b,
            baseline_buckets: n,
        },
    };
    check_by_hand(&script, &settings, |read, who| {
        let t = read.as_of;
        let short = match t {
            33_000 => vec![spike(33_000, 4, 18, 9)],
            _ => vec![],
        };
        let long = match t {
            33_000..=39_000 => vec![spike(33_000, 4, 2, 1)],
            40_000 => vec![spike(33_000, 4, 4, 2)],
            _ => vec![],
        };
        assert_eq!(
            window_of(read, 3_000).anomalies_all,
            short,
            "{who}: 3 s at {t}"
        );
        assert_eq!(
            window_of(read, 10_000).anomalies_all,
            long,
            "{who}: 10 s at {t}"
        );
        assert!(
            window_of(read, 30_000).anomalies_all.is_empty(),
            "{who}: 30 s at {t}"
        );
    });
}

/// The baseline counts empty buckets, but none before the bucket of the host's earliest
/// record (docs/risk-and-anomalies.md): `.1` first sends to `.1` at 3000 (bucket 1 of
/// the 3 s window), nothing in bucket 2, then to `.2` and `.3` at 9100 and 9200.
/// At 6000 there is no complete bucket since the host appeared (bucket 0 does not count).
/// At 10000 and 11000 the recent window holds 2 destinations against bucket 1 alone
/// ({2, 1, 1}: 2 × 1 ≥ 2 × 1); at 12000 the empty bucket 2 joins ({2, 1, 2}), the episode
/// still first detected at 10000; at 13000 the recent window [10000, 13000) is empty.
#[test]
fn fanout_spike_baseline_counts_empty_buckets_from_the_hosts_first() {
    let a = host_ip(1);
    let d = |i: u8| v4(10, 0, 1, i);
    let est = Status::Established;
    let script = Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            vec![
                ev(3_000, a, d(1), 53, est, 1),
                ev(9_100, a, d(2), 53, est, 1),
                ev(9_200, a, d(3), 53, est, 1),
            ],
            14_000,
            vec![6_000, 9_000, 10_000, 11_000, 12_000, 13_000],
        )],
        hosts: vec![a],
    };
    check_by_hand(&script, &test_settings(), |read, who| {
        let t = read.as_of;
        let spike = |baseline_destinations, baseline_buckets| {
            vec![Anomaly {
                host: a,
                kind: AnomalyKind::FanoutSpike,
                first_detected: 10_000,
                evidence: Evidence::FanoutSpike {
                    destinations: 2,
                    baseline_destinations,
                    baseline_buckets,
                },
            }]
        };
        let expected = match t {
            10_000 | 11_000 => spike(1, 1),
            12_000 => spike(1, 2),
            _ => vec![],
        };
        assert_eq!(
            window_of(read, 3_000).anomalies_all,
            expected,
            "{who}: 3 s at {t}"
        );
    });
}

/// A bucket leaves the baseline as soon as it is no longer wholly in `[T − B, T − W)`:
/// bucket 0 = [0, 10000) of the 10 s window is in the baseline at 30000 ([0, 20000)) and
/// out of it at 31000 ([1000, 21000)), although nothing else happens then. `fd00::1`
/// sends to `169.254.1.1` at 4873, then to `127.0.0.1` and `169.254.1.1` at 21200:
/// a spike from 22000 ({2, 1, 1}: bucket 0 only) to 31000; at 30000 the 10 s evidence
/// is {2, 1, 2} (buckets 0 and 1), at 31000 {2, 0, 1} (bucket 1 only); at 32000 the
/// window [22000, 32000) is empty.
#[test]
fn a_baseline_bucket_leaves_one_tick_after_t_minus_b_reaches_its_start() {
    let a = v6("fd00::1");
    let est = Status::Established;
    let script = Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![one_phase(
            vec![
                ev(4_873, a, v4(169, 254, 1, 1), 3389, est, 1),
                ev(21_200, a, v4(127, 0, 0, 1), 3389, est, 1),
                ev(21_200, a, v4(169, 254, 1, 1), 445, est, 1),
            ],
            35_000,
            vec![29_000, 30_000, 31_000, 32_000],
        )],
        hosts: vec![a],
    };
    check_by_hand(&script, &test_settings(), |read, who| {
        let t = read.as_of;
        let (b, n) = match t {
            29_000 => (1, 1),
            30_000 => (1, 2),
            31_000 => (0, 1),
            // [22000, 32000) holds nothing.
            32_000 => {
                assert!(
                    window_of(read, 10_000).anomalies_all.is_empty(),
                    "{who}: at {t}"
                );
                return;
            }
            other => panic!("no read at {other}"),
        };
        let expected = vec![Anomaly {
            host: a,
            kind: AnomalyKind::FanoutSpike,
            first_detected: 22_000,
            evidence: Evidence::FanoutSpike {
                destinations: 2,
                baseline_destinations: b,
                baseline_buckets: n,
            },
        }];
        assert_eq!(
            window_of(read, 10_000).anomalies_all,
            expected,
            "{who}: 10 s at {t}"
        );
    });
}

/// A late record counts in the baseline as soon as it enters, even when the baseline's
/// buckets stay the same (test settings; 10 s window, whose baseline between 40000 and
/// 50000 is bucket 2 = [20000, 30000)). `.1` sends to `10.0.1.1` at 20500, 41500 and to
/// `10.0.1.2` at 42500: at 43000 a spike {2, 1, 1} (2 × 1 ≥ 2 × 1), first detected at
/// 43000 (at 42000 only one destination). Then, late at frontier 44000, to `10.0.1.3` at
/// 25000 and `10.0.1.4` at 25100: bucket 2 now holds 3 destinations, 2 × 1 < 2 × 3, and
/// the spike is over at 44000.
#[test]
fn a_late_record_in_a_baseline_bucket_counts_at_once() {
    let a = host_ip(1);
    let d = |i: u8| v4(10, 0, 1, i);
    let est = Status::Established;
    let script = Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![
            one_phase(
                vec![
                    ev(20_500, a, d(1), 80, est, 1),
                    ev(41_500, a, d(1), 80, est, 1),
                    ev(42_500, a, d(2), 80, est, 1),
                ],
                44_000,
                vec![42_000, 43_000],
            ),
            one_phase(
                vec![
                    ev(25_000, a, d(3), 80, est, 1),
                    ev(25_100, a, d(4), 80, est, 1),
                ],
                46_000,
                vec![44_000, 45_000],
            ),
        ],
        hosts: vec![a],
    };
    check_by_hand(&script, &test_settings(), |read, who| {
        let t = read.as_of;
        let expected = match t {
            43_000 => vec![Anomaly {
                host: a,
                kind: AnomalyKind::FanoutSpike,
                first_detected: 43_000,
                evidence: Evidence::FanoutSpike {
                    destinations: 2,
                    baseline_destinations: 1,
                    baseline_buckets: 1,
                },
            }],
            _ => vec![],
        };
        assert_eq!(
            window_of(read, 10_000).anomalies_all,
            expected,
            "{who}: 10 s at {t}"
        );
    });
}

/// `new_external_destination` (default settings), host `.8`:
///
/// * phase 0: to 8.8.4.4 at 1999, to 9.9.9.9 at 2000, to 1.1.1.1 at 20500; the frontier
///   moves to 23000. At 21000 and 22000 all three are first contacts (in the 30 s
///   window; 20500 in every window).
/// * phase 1, late at 23000: to 1.1.1.1 at 18000. It withdraws 20500 (18000 lies in
///   [20500 − 30 s, 20500)) and is a first contact itself: from 23000 the 3 s window lists
///   nothing, the 10 s and 30 s windows list 18000.
/// * phase 2 at 25000: to 9.9.9.9 and 8.8.4.4 at 32000: 2000 = 32000 − 30 s is within
///   the lookback, 1999 is not: only 8.8.4.4 is new again.
/// * phase 3 at 34000: to 9.9.9.8 at 3500 (own time 4000, 30 s late: never counted) and at
///   33500: a first contact, the record at 3500 not existing.
fn contacts_script() -> Script {
    let n = host_ip(8);
    let est = Status::Established;
    Script {
        tick: TICK,
        windows: WINDOWS.to_vec(),
        panes: Vec::new(),
        phases: vec![
            one_phase(
                vec![
                    ev(1_999, n, v4(8, 8, 4, 4), 443, est, 1),
                    ev(2_000, n, v4(9, 9, 9, 9), 443, est, 1),
                    ev(20_500, n, v4(1, 1, 1, 1), 443, est, 1),
                ],
                23_000,
                vec![21_000, 22_000],
            ),
            one_phase(
                vec![ev(18_000, n, v4(1, 1, 1, 1), 443, est, 1)],
                25_000,
                vec![23_000, 24_000],
            ),
            one_phase(
                vec![
                    ev(32_000, n, v4(9, 9, 9, 9), 443, est, 1),
                    ev(32_000, n, v4(8, 8, 4, 4), 443, est, 1),
                ],
                34_000,
                vec![33_000],
            ),
            one_phase(
                vec![
                    ev(3_500, n, v4(9, 9, 9, 8), 443, est, 1),
                    ev(33_500, n, v4(9, 9, 9, 8), 443, est, 1),
                ],
                36_000,
                vec![34_000, 35_000],
            ),
        ],
        hosts: vec![n],
    }
}

#[test]
fn first_contacts_withdrawn_by_a_late_earlier_record_and_the_lookback_edge() {
    let script = contacts_script();
    let settings = RiskSettings::default();
    let n = host_ip(8);
    let new = |ts: Millis, dst: IpAddr| Anomaly {
        host: n,
        kind: AnomalyKind::NewExternalDestination,
        first_detected: ts,
        evidence: Evidence::NewExternalDestination { dst_ip: dst },
    };
    let one = v4(1, 1, 1, 1);
    let quad8 = v4(8, 8, 4, 4);
    let quad9 = v4(9, 9, 9, 9);
    let other9 = v4(9, 9, 9, 8);
    check_by_hand(&script, &settings, |read, who| {
        let t = read.as_of;
        let [short, middle, long]: [Vec<Anomaly>; 3] = match t {
            21_000 | 22_000 => [
                vec![new(20_500, one)],
                vec![new(20_500, one)],
                vec![new(20_500, one), new(2_000, quad9), new(1_999, quad8)],
            ],
            23_000 | 24_000 => [
                vec![],
                vec![new(18_000, one)],
                vec![new(18_000, one), new(2_000, quad9), new(1_999, quad8)],
            ],
            33_000 => [
                vec![new(32_000, quad8)],
                vec![new(32_000, quad8)],
                vec![new(32_000, quad8), new(18_000, one)],
            ],
            34_000 | 35_000 => [
                vec![new(33_500, other9), new(32_000, quad8)],
                vec![new(33_500, other9), new(32_000, quad8)],
                vec![new(33_500, other9), new(32_000, quad8), new(18_000, one)],
            ],
            other => panic!("no read at {other}"),
        };
        assert_eq!(
            window_of(read, 3_000).anomalies_all,
            short,
            "{who}: 3 s at {t}"
        );
        assert_eq!(
            window_of(read, 10_000).anomalies_all,
            middle,
            "{who}: 10 s at {t}"
        );
        assert_eq!(
            window_of(read, 30_000).anomalies_all,
            long,
            "{who}: 30 s at {t}"
        );
        assert_eq!(
            window_of(read, 30_000).anomalies_small,
            long[..long.len().min(SMALL)],
            "{who}: 30 s, {SMALL} newest, at {t}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Wrong oracles are caught
// ---------------------------------------------------------------------------------------------

const MISTAKES: [Mistake; 11] = [
    Mistake::WindowStartExclusive,
    Mistake::FailuresWithoutMinimum,
    Mistake::MappedJudgedAsV6,
    Mistake::BandsExclusive,
    Mistake::NoTotalClamp,
    Mistake::PortScanNeedsPortsAndHosts,
    Mistake::FirstDetectedIsNow,
    Mistake::BaselineOneBucketMore,
    Mistake::LookbackExclusive,
    Mistake::LateCannotWithdraw,
    Mistake::DroppedRecordsCount,
];

/// Every wrong oracle disagrees with the dataflow on at least one of the hand-made scripts
/// (and the right one agrees with the dataflow on each script where it is caught).
#[test]
fn wrong_oracles_are_caught_on_the_hand_scripts() {
    let scripts = [
        (scores_script(), RiskSettings::default()),
        (ranges_script(), ranges_settings()),
        (late_script(), RiskSettings::default()),
        (scan_script(), test_settings()),
        (spike_script(), test_settings()),
        (contacts_script(), RiskSettings::default()),
    ];
    let mut caught = [false; MISTAKES.len()];
    for (script, settings) in &scripts {
        let merged = run_dataflow(script, settings, 2);
        let right = compare(script, settings, &merged, Mistake::None, 2);
        for (i, &mistake) in MISTAKES.iter().enumerate() {
            if compare(script, settings, &merged, mistake, 2).is_err() {
                assert!(
                    right.is_ok(),
                    "{mistake:?} is caught, but the right oracle disagrees too: {}",
                    right.unwrap_err()
                );
                caught[i] = true;
            }
        }
    }
    for (mistake, caught) in MISTAKES.iter().zip(caught) {
        assert!(caught, "the wrong oracle {mistake:?} was not caught");
    }
}
