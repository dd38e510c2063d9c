//! Anomaly rules (docs/design.md §4, docs/risk-and-anomalies.md): pure predicates over a
//! host's counters, unit-tested on their own and applied incrementally by
//! [`crate::risk::host_windows`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use flowsight_events::Proto;

use crate::risk::rules::HostCounters;
use crate::segments::propagation::SegmentId;
use flowsight_operators::time::Millis;

/// The kinds of anomaly. The first three come from each host's windows
/// ([`crate::risk::host_windows`]); `policy_violation` from the segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// `port_scan`: many connections in the window, mostly failed, to many ports or hosts
    /// ([`PortScanRule`]).
    PortScan,
    /// `fanout_spike`: far more distinct destinations in the window than the host's own
    /// baseline ([`FanoutSpikeRule`]).
    FanoutSpike,
    /// `new_external_destination`: a non-private address the host had not contacted within
    /// the longest window before ([`first_contacts`]).
    NewExternalDestination,
    /// `policy_violation`: the first connection in the longest window between two segments
    /// on a (port, protocol) (docs/segments.md).
    PolicyViolation,
}

impl AnomalyKind {
    /// Every kind, in their order: the order in which anomaly listings break ties of
    /// `first_detected` and host.
    pub const ALL: [AnomalyKind; 4] = [
        AnomalyKind::PortScan,
        AnomalyKind::FanoutSpike,
        AnomalyKind::NewExternalDestination,
        AnomalyKind::PolicyViolation,
    ];

    /// The snake_case name the HTTP API (`kind=`), the alerts and serde use.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::PortScan => "port_scan",
            AnomalyKind::FanoutSpike => "fanout_spike",
            AnomalyKind::NewExternalDestination => "new_external_destination",
            AnomalyKind::PolicyViolation => "policy_violation",
        }
    }
}

impl std::str::FromStr for AnomalyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AnomalyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown anomaly kind {s:?}; use port_scan, fanout_spike, new_external_destination or policy_violation"
                )
            })
    }
}

/// Thresholds of `port_scan`: a host is scanning in a window when it made at least
/// `min_connections` connections, reached at least `min_ports` distinct ports or
/// `min_hosts` distinct hosts, and at least `min_failed_percent` % of its connections
/// failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortScanRule {
    /// The fewest connections the host must have originated in the window (default 20; 0
    /// acts as 1).
    pub min_connections: u64,
    /// The fewest distinct destination ports that make a scan (default 20), unless
    /// `min_hosts` is reached.
    pub min_ports: u64,
    /// The fewest distinct destination addresses that make a scan (default 20), unless
    /// `min_ports` is reached.
    pub min_hosts: u64,
    /// The lowest share of failed connections, in percent of all (default 60).
    pub min_failed_percent: u64,
}

impl Default for PortScanRule {
    fn default() -> Self {
        PortScanRule {
            min_connections: 20,
            min_ports: 20,
            min_hosts: 20,
            min_failed_percent: 60,
        }
    }
}

impl PortScanRule {
    /// Whether a host with the counters `c` in a window is scanning by these thresholds,
    /// in integers.
    pub fn holds(&self, c: &HostCounters) -> bool {
        c.connections >= self.min_connections.max(1)
            && (c.ports >= self.min_ports || c.destinations >= self.min_hosts)
            && c.failed.saturating_mul(100) >= self.min_failed_percent.saturating_mul(c.connections)
    }
}

/// Thresholds of `fanout_spike`: a host's distinct destinations in a window `W` are at
/// least `min_destinations` and at least `factor` times its baseline, the mean number of
/// distinct destinations per `W`-long bucket over the longest window before the current
/// one (see [`baseline_buckets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutSpikeRule {
    /// The fewest distinct destinations in the window that can be a spike, whatever the
    /// baseline (default 50; 0 acts as 1).
    pub min_destinations: u64,
    /// How many times its baseline mean (distinct destinations per bucket) the host's
    /// distinct destinations must reach (default 5).
    pub factor: u64,
}

impl Default for FanoutSpikeRule {
    fn default() -> Self {
        FanoutSpikeRule {
            min_destinations: 50,
            factor: 5,
        }
    }
}

/// A host's baseline for `fanout_spike`: over `buckets` complete buckets, `destinations`
/// distinct destinations summed bucket by bucket.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Baseline {
    /// How many window-long buckets the baseline spans, empty ones included; 0 means the
    /// host has no baseline yet.
    pub buckets: u64,
    /// The sum over those buckets of each bucket's distinct destination addresses.
    pub destinations: u64,
}

impl FanoutSpikeRule {
    /// `recent ≥ min_destinations` and `recent ≥ factor × destinations ÷ buckets`, in
    /// integers; no spike without at least one baseline bucket.
    pub fn holds(&self, recent: u64, baseline: Baseline) -> bool {
        baseline.buckets > 0
            && recent >= self.min_destinations.max(1)
            && u128::from(recent) * u128::from(baseline.buckets)
                >= u128::from(self.factor) * u128::from(baseline.destinations)
    }
}

/// The buckets of a host's `fanout_spike` baseline at `as_of` for a window of length
/// `window` against a baseline window `longest`: buckets are `window` long, aligned to the
/// epoch, and lie wholly in `[as_of − longest, as_of − window)`. Returns the half-open
/// range of bucket indices (bucket `k` covers `[k·window, (k+1)·window)`); empty when the
/// window is too long to have a baseline (`2 × window > longest`).
///
/// ```
/// use flowsight_queries::risk::anomaly::baseline_buckets;
/// // 30 min buckets over 24 h, at 10:00 on day 2: 10:00 − 24 h … 09:30.
/// let h = 3_600_000;
/// assert_eq!(baseline_buckets(34 * h, h / 2, 24 * h), 20..67);
/// ```
pub fn baseline_buckets(as_of: Millis, window: Millis, longest: Millis) -> std::ops::Range<u64> {
    if window == 0 || window.saturating_mul(2) > longest {
        return 0..0;
    }
    let first = as_of.saturating_sub(longest).div_ceil(window);
    let end = as_of.saturating_sub(window) / window;
    first..end.max(first)
}

/// The first contacts of one (host, destination) pair: given, tick by tick in order, the
/// earliest and latest timestamps of the pair's records in each tick, and the latest
/// timestamp of its records that are older than all of those ticks (`before`), returns
/// the earliest timestamp of every tick whose first record had no predecessor within
/// `lookback` — no record of the pair with ts in `[first − lookback, first)`.
///
/// ```
/// use std::collections::BTreeMap;
/// use flowsight_queries::risk::anomaly::first_contacts;
/// let ticks = BTreeMap::from([(1_000, (500, 900)), (2_000, (1_950, 1_990)), (9_000, (8_100, 8_200))]);
/// // 500 is new; 1_950 follows 900 within 5 s; 8_100 comes more than 5 s after 1_990.
/// assert_eq!(first_contacts(&ticks, None, 5_000), vec![500, 8_100]);
/// assert_eq!(first_contacts(&ticks, Some(0), 5_000), vec![8_100]);
/// ```
pub fn first_contacts(
    ticks: &BTreeMap<Millis, (Millis, Millis)>,
    before: Option<Millis>,
    lookback: Millis,
) -> Vec<Millis> {
    let mut previous = before;
    let mut contacts = Vec::new();
    for &(first, last) in ticks.values() {
        // Before the epoch nothing happened: `first − lookback` saturates at 0.
        let is_new = previous.is_none_or(|p| p < first.saturating_sub(lookback));
        if is_new {
            contacts.push(first);
        }
        previous = Some(previous.map_or(last, |p| p.max(last)));
    }
    contacts
}

/// Every anomaly rule's thresholds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyConfig {
    /// `[anomalies.port_scan]` in the config file.
    pub port_scan: PortScanRule,
    /// `[anomalies.fanout_spike]` in the config file.
    pub fanout_spike: FanoutSpikeRule,
}

/// What an anomaly shows for itself.
///
/// Serialised with its variant's name, as the binary encoding between processes needs;
/// users read it flat, through [`Anomaly::for_users`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// The host's counters in the window ([`HostCounters`]) at the time of the row; they
    /// are updated while the episode lasts.
    PortScan {
        /// Connections the host originated.
        connections: u64,
        /// Of those, the ones whose status is not `established`.
        failed: u64,
        /// Distinct destination ports.
        distinct_ports: u64,
        /// Distinct destination addresses.
        distinct_hosts: u64,
    },
    /// The host's distinct destinations in the window against its [`Baseline`], at the
    /// time of the row.
    FanoutSpike {
        /// Distinct destination addresses in the window.
        destinations: u64,
        /// [`Baseline::destinations`]: distinct destinations summed bucket by bucket.
        baseline_destinations: u64,
        /// [`Baseline::buckets`]: how many buckets the baseline spans.
        baseline_buckets: u64,
    },
    /// A first contact with a non-private address.
    NewExternalDestination {
        /// The address contacted.
        dst_ip: IpAddr,
    },
    /// A connection between two segments (or hubs) on a (port, protocol) that the policy
    /// had not seen between them before it in the window.
    PolicyViolation {
        /// The segment (or hub) of the connection's source.
        from: SegmentId<IpAddr>,
        /// The segment (or hub) of the connection's destination.
        to: SegmentId<IpAddr>,
        /// The destination address of the violating connection.
        dst_ip: IpAddr,
        /// The destination port: with `proto`, the service not seen before between
        /// `from` and `to`.
        dst_port: u16,
        /// The protocol of the connection.
        proto: Proto,
    },
}

/// One detection in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    /// The source host the detection is about (for `policy_violation`, the source of the
    /// violating connection).
    pub host: IpAddr,
    /// Which rule detected it; `evidence` is the variant of the same name.
    pub kind: AnomalyKind,
    /// `port_scan`, `fanout_spike`: the as_of from which the rule has held without a
    /// break. `new_external_destination`: the timestamp of the first contact.
    /// `policy_violation`: the timestamp of the violating connection.
    pub first_detected: Millis,
    /// What the rule saw.
    pub evidence: Evidence,
}

/// An anomaly as the HTTP API and alerts show it: the evidence's fields inline
/// (`{"connections": 30, …}` rather than `{"PortScan": {…}}`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AnomalyForUsers<'a> {
    /// [`Anomaly::host`].
    pub host: IpAddr,
    /// [`Anomaly::kind`], as its snake_case name.
    pub kind: AnomalyKind,
    /// [`Anomaly::first_detected`], ms since the epoch.
    pub first_detected: Millis,
    /// [`Anomaly::evidence`], its fields without the variant's name.
    pub evidence: FlatEvidence<'a>,
}

/// [`Evidence`] serialised as its fields only.
#[derive(Clone, Copy, Debug)]
pub struct FlatEvidence<'a>(pub &'a Evidence);

impl Serialize for FlatEvidence<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match *self.0 {
            Evidence::PortScan {
                connections,
                failed,
                distinct_ports,
                distinct_hosts,
            } => {
                map.serialize_entry("connections", &connections)?;
                map.serialize_entry("failed", &failed)?;
                map.serialize_entry("distinct_ports", &distinct_ports)?;
                map.serialize_entry("distinct_hosts", &distinct_hosts)?;
            }
            Evidence::FanoutSpike {
                destinations,
                baseline_destinations,
                baseline_buckets,
            } => {
                map.serialize_entry("destinations", &destinations)?;
                map.serialize_entry("baseline_destinations", &baseline_destinations)?;
                map.serialize_entry("baseline_buckets", &baseline_buckets)?;
            }
            Evidence::NewExternalDestination { dst_ip } => {
                map.serialize_entry("dst_ip", &dst_ip)?;
            }
            Evidence::PolicyViolation {
                from,
                to,
                dst_ip,
                dst_port,
                proto,
            } => {
                map.serialize_entry("from", &from.to_string())?;
                map.serialize_entry("to", &to.to_string())?;
                map.serialize_entry("dst_ip", &dst_ip)?;
                map.serialize_entry("dst_port", &dst_port)?;
                map.serialize_entry("proto", &proto)?;
            }
        }
        map.end()
    }
}

impl Anomaly {
    /// The anomaly as the HTTP API and the alerts show it, borrowing its evidence.
    pub fn for_users(&self) -> AnomalyForUsers<'_> {
        AnomalyForUsers {
            host: self.host,
            kind: self.kind,
            first_detected: self.first_detected,
            evidence: FlatEvidence(&self.evidence),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_scan_needs_all_three_conditions() {
        let rule = PortScanRule::default();
        let scan = HostCounters {
            connections: 20,
            failed: 12,
            destinations: 1,
            ports: 20,
            ..HostCounters::default()
        };
        assert!(rule.holds(&scan));
        assert!(!rule.holds(&HostCounters {
            connections: 19,
            failed: 12,
            ..scan
        }));
        assert!(
            !rule.holds(&HostCounters { failed: 11, ..scan }),
            "59 % failed"
        );
        assert!(!rule.holds(&HostCounters { ports: 19, ..scan }));
        assert!(rule.holds(&HostCounters {
            ports: 1,
            destinations: 20,
            ..scan
        }));
    }

    #[test]
    fn fanout_spike_compares_with_the_mean() {
        let rule = FanoutSpikeRule::default();
        let baseline = Baseline {
            buckets: 10,
            destinations: 100,
        };
        // mean 10, × 5 = 50.
        assert!(rule.holds(50, baseline));
        assert!(!rule.holds(49, baseline));
        // Below the floor even with no baseline activity.
        assert!(!rule.holds(
            49,
            Baseline {
                buckets: 10,
                destinations: 0
            }
        ));
        assert!(rule.holds(
            50,
            Baseline {
                buckets: 10,
                destinations: 0
            }
        ));
        assert!(
            !rule.holds(500, Baseline::default()),
            "no bucket, no baseline"
        );
    }

    #[test]
    fn baseline_buckets_at_the_edges() {
        let m = 60_000;
        // Too early for any complete bucket.
        assert_eq!(baseline_buckets(30 * m, 30 * m, 24 * 60 * m), 0..0);
        assert_eq!(baseline_buckets(60 * m, 30 * m, 24 * 60 * m), 0..1);
        // A window too long for a baseline.
        assert!(baseline_buckets(100 * 60 * m, 13 * 60 * m, 24 * 60 * m).is_empty());
        // Exactly on a boundary: [T − 24 h, T − 30 m) holds 47 buckets.
        let t = 48 * 60 * m;
        assert_eq!(baseline_buckets(t, 30 * m, 24 * 60 * m), 48..95);
    }

    #[test]
    fn first_contacts_respect_the_lookback_boundary() {
        let ticks = BTreeMap::from([(1_000, (0, 100)), (6_000, (5_100, 5_100))]);
        // 5_100 − 5_000 = 100: the record at 100 is within the lookback.
        assert_eq!(first_contacts(&ticks, None, 5_000), vec![0]);
        let ticks = BTreeMap::from([(1_000, (0, 99)), (6_000, (5_100, 5_100))]);
        assert_eq!(first_contacts(&ticks, None, 5_000), vec![0, 5_100]);
    }
}
