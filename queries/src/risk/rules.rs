//! Risk scoring (docs/design.md §4): the pure, integer-only function from a host's counters in one
//! window to its 1–100 score, severity and explained factors.
//!
//! Everything here is plain arithmetic so that any oracle can reproduce a score by hand;
//! the incremental maintenance of the counters lives in [`crate::risk::host_windows`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The default sensitive destination ports of docs/design.md §4.
pub const DEFAULT_SENSITIVE_PORTS: [u16; 11] =
    [22, 23, 445, 1433, 3306, 3389, 5432, 5900, 6379, 9200, 27017];

/// The private ranges of docs/design.md §4: RFC 1918, loopback, link-local, and IPv6 ULA,
/// link-local, loopback.
pub const DEFAULT_PRIVATE_RANGES: [&str; 8] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// How hosts are scored: which ports are sensitive, which addresses are private, and where
/// the severity bands start. The formula itself is fixed (docs/design.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskConfig {
    /// Destination ports whose distinct count makes the `sensitive` factor (default
    /// [`DEFAULT_SENSITIVE_PORTS`]; `sensitive_ports` under `[risk]` in the config file).
    pub sensitive_ports: Vec<u16>,
    /// The networks whose addresses are private: bytes sent to them do not count toward
    /// `external`, and they are never a `new_external_destination` (default
    /// [`DEFAULT_PRIVATE_RANGES`]).
    pub private_ranges: Vec<IpNet>,
    /// The scores at which `medium` and `critical` start (`[risk.severity]` in the config
    /// file); [`RiskConfig::validate`] checks them.
    pub bands: SeverityBands,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            sensitive_ports: DEFAULT_SENSITIVE_PORTS.to_vec(),
            private_ranges: DEFAULT_PRIVATE_RANGES
                .iter()
                .map(|r| r.parse().expect("the default ranges are valid"))
                .collect(),
            bands: SeverityBands::default(),
        }
    }
}

impl RiskConfig {
    /// Whether `port` is one of the `sensitive_ports`.
    pub fn is_sensitive(&self, port: u16) -> bool {
        // A handful of ports: a scan of a short list beats hashing.
        self.sensitive_ports.contains(&port)
    }

    /// Whether `ip` lies in one of the private ranges. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is judged by its IPv4 address.
    pub fn is_private(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.private_ranges.iter().any(|net| net.contains(&ip))
    }

    /// Checks the bands: `1 ≤ medium < critical ≤ 100`.
    pub fn validate(&self) -> Result<(), String> {
        let SeverityBands { medium, critical } = self.bands;
        if !(1 <= medium && medium < critical && critical <= 100) {
            return Err(format!(
                "severity bands need 1 <= medium < critical <= 100 (got medium {medium}, critical {critical})"
            ));
        }
        Ok(())
    }
}

/// The lowest score of each band above `low`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityBands {
    /// The lowest score that is `medium` (default 40); lower scores are `low`.
    pub medium: u8,
    /// The lowest score that is `critical` (default 70); above `medium`, at most 100.
    pub critical: u8,
}

impl Default for SeverityBands {
    fn default() -> Self {
        SeverityBands {
            medium: 40,
            critical: 70,
        }
    }
}

impl SeverityBands {
    /// The severity of a score (1–100) under these bands.
    pub fn of(&self, score: u8) -> Severity {
        if score >= self.critical {
            Severity::Critical
        } else if score >= self.medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

/// How alarming a host's score is: the band of [`SeverityBands`] it falls in.
///
/// Ordered `Low < Medium < Critical`; serialised in lowercase, as the HTTP API, the
/// `severity=` parameter and the alerts spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A score below `medium` (by default 1–39). Also what a host without a score counts
    /// as in severity alerts.
    Low,
    /// A score from `medium` up to below `critical` (by default 40–69).
    Medium,
    /// A score of at least `critical` (by default 70–100).
    Critical,
}

impl Severity {
    /// The lowercase name (`low`, `medium`, `critical`) that serde writes and
    /// [`str::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}; use low, medium or critical"
            )),
        }
    }
}

/// What the score of one source host in one window is computed from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HostCounters {
    /// Connections the host originated.
    pub connections: u64,
    /// Of those, the ones whose status is not `established`.
    pub failed: u64,
    /// Distinct destination addresses.
    pub destinations: u64,
    /// Distinct destination ports (any protocol).
    pub ports: u64,
    /// Distinct sensitive destination ports.
    pub sensitive_ports: u64,
    /// Originator bytes sent to non-private destinations.
    pub external_bytes: u64,
}

/// One factor of a score: the points it adds and the raw value they come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Factor {
    /// The points the factor adds to the score, from 0 up to its cap (25 for `fanout`,
    /// 15 for `sensitive`, 20 for the others).
    pub points: u8,
    /// The raw counter the points are computed from: a count, or bytes for `external`.
    pub value: u64,
}

/// The five factors of docs/design.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Factors {
    /// min(25, distinct dst_ip ÷ 4); value: distinct destinations.
    pub fanout: Factor,
    /// min(20, distinct dst_port ÷ 5); value: distinct ports.
    pub ports: Factor,
    /// 20 × failed ÷ connections when connections ≥ 10, else 0; value: failed connections.
    pub failures: Factor,
    /// min(15, 5 × distinct sensitive ports); value: distinct sensitive ports.
    pub sensitive: Factor,
    /// min(20, external bytes ÷ 10,000,000); value: bytes sent to non-private addresses.
    pub external: Factor,
}

/// A host's score in one window, with everything it is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Risk {
    /// 1 + the factors' points, clamped to 1–100.
    pub score: u8,
    /// The band of `score` under the configured [`SeverityBands`].
    pub severity: Severity,
    /// Connections the host originated in the window (the denominator of `failures`).
    pub connections: u64,
    /// What the score is made of: each factor's points and raw value.
    pub factors: Factors,
}

impl Risk {
    /// The counters the score was computed from (each factor keeps its raw value).
    pub fn counters(&self) -> HostCounters {
        HostCounters {
            connections: self.connections,
            failed: self.factors.failures.value,
            destinations: self.factors.fanout.value,
            ports: self.factors.ports.value,
            sensitive_ports: self.factors.sensitive.value,
            external_bytes: self.factors.external.value,
        }
    }
}

fn capped(cap: u64, points: u64) -> u8 {
    // `cap` ≤ 25, so the result always fits.
    points.min(cap) as u8
}

/// The score of docs/design.md §4, in integers.
///
/// ```
/// use flowsight_queries::risk::rules::{score, HostCounters, RiskConfig, Severity};
/// let counters = HostCounters {
///     connections: 40, failed: 30, destinations: 120, ports: 7,
///     sensitive_ports: 2, external_bytes: 25_000_000,
/// };
/// let risk = score(&counters, &RiskConfig::default());
/// // 1 + fanout 25 + ports 1 + failures 15 + sensitive 10 + external 2
/// assert_eq!(risk.score, 54);
/// assert_eq!(risk.severity, Severity::Medium);
/// ```
pub fn score(c: &HostCounters, config: &RiskConfig) -> Risk {
    let fanout = capped(25, c.destinations / 4);
    let ports = capped(20, c.ports / 5);
    let failures = if c.connections >= 10 {
        // failed ≤ connections, so this is at most 20; `min` guards inconsistent input.
        capped(20, (20 * c.failed.min(c.connections)) / c.connections)
    } else {
        0
    };
    let sensitive = capped(15, c.sensitive_ports.saturating_mul(5));
    let external = capped(20, c.external_bytes / 10_000_000);
    let sum = u16::from(fanout)
        + u16::from(ports)
        + u16::from(failures)
        + u16::from(sensitive)
        + u16::from(external);
    let total = (1 + sum).clamp(1, 100) as u8;
    Risk {
        score: total,
        severity: config.bands.of(total),
        connections: c.connections,
        factors: Factors {
            fanout: Factor {
                points: fanout,
                value: c.destinations,
            },
            ports: Factor {
                points: ports,
                value: c.ports,
            },
            failures: Factor {
                points: failures,
                value: c.failed,
            },
            sensitive: Factor {
                points: sensitive,
                value: c.sensitive_ports,
            },
            external: Factor {
                points: external,
                value: c.external_bytes,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn counters(connections: u64, failed: u64) -> HostCounters {
        HostCounters {
            connections,
            failed,
            ..HostCounters::default()
        }
    }

    #[test]
    fn a_risk_gives_back_its_counters() {
        let c = HostCounters {
            connections: 12,
            failed: 3,
            destinations: 7,
            ports: 4,
            sensitive_ports: 1,
            external_bytes: 99,
        };
        assert_eq!(score(&c, &RiskConfig::default()).counters(), c);
    }

    #[test]
    fn an_idle_host_scores_one() {
        let risk = score(&HostCounters::default(), &RiskConfig::default());
        assert_eq!(risk.score, 1);
        assert_eq!(risk.severity, Severity::Low);
    }

    #[test]
    fn failures_need_ten_connections() {
        let config = RiskConfig::default();
        assert_eq!(score(&counters(9, 9), &config).factors.failures.points, 0);
        assert_eq!(score(&counters(10, 9), &config).factors.failures.points, 18);
        assert_eq!(
            score(&counters(10, 10), &config).factors.failures.points,
            20
        );
        // Integer division: 20 × 1 ÷ 11 = 1, 20 × 1 ÷ 21 = 0.
        assert_eq!(score(&counters(11, 1), &config).factors.failures.points, 1);
        assert_eq!(score(&counters(21, 1), &config).factors.failures.points, 0);
    }

    #[test]
    fn every_factor_is_clamped() {
        let all = HostCounters {
            connections: 1_000,
            failed: 1_000,
            destinations: 1_000_000,
            ports: 65_535,
            sensitive_ports: 11,
            external_bytes: u64::MAX,
        };
        let risk = score(&all, &RiskConfig::default());
        let f = risk.factors;
        assert_eq!(
            (f.fanout.points, f.ports.points, f.failures.points),
            (25, 20, 20)
        );
        assert_eq!((f.sensitive.points, f.external.points), (15, 20));
        // 1 + 100 clamps to 100.
        assert_eq!(risk.score, 100);
        assert_eq!(risk.severity, Severity::Critical);
    }

    #[test]
    fn bands_start_exactly_at_their_threshold() {
        let bands = SeverityBands::default();
        assert_eq!(bands.of(39), Severity::Low);
        assert_eq!(bands.of(40), Severity::Medium);
        assert_eq!(bands.of(69), Severity::Medium);
        assert_eq!(bands.of(70), Severity::Critical);
        // A score of exactly 70: 1 + 25 + 20 + 20 + 4 external points.
        let c = HostCounters {
            connections: 10,
            failed: 10,
            destinations: 100,
            ports: 100,
            sensitive_ports: 0,
            external_bytes: 40_000_000,
        };
        assert_eq!(score(&c, &RiskConfig::default()).score, 70);
        let c = HostCounters {
            external_bytes: 39_999_999,
            ..c
        };
        let risk = score(&c, &RiskConfig::default());
        assert_eq!((risk.score, risk.severity), (69, Severity::Medium));
    }

    #[test]
    fn private_ranges_cover_both_families() {
        let config = RiskConfig::default();
        for private in [
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            IpAddr::V4(Ipv4Addr::new(172, 31, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(169, 254, 1, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd12, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            "::ffff:10.0.0.1".parse().unwrap(),
        ] {
            assert!(config.is_private(private), "{private} is private");
        }
        for public in [
            IpAddr::V4(Ipv4Addr::new(172, 32, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            "::ffff:8.8.8.8".parse().unwrap(),
        ] {
            assert!(!config.is_private(public), "{public} is public");
        }
    }

    #[test]
    fn bands_are_validated() {
        let mut config = RiskConfig::default();
        assert!(config.validate().is_ok());
        config.bands = SeverityBands {
            medium: 70,
            critical: 70,
        };
        assert!(config.validate().is_err());
    }
}
