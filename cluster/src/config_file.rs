//! The analysis settings file given to `--config` (TOML): the windows and their panes,
//! sensitive ports, private ranges, severity bands, anomaly thresholds and segmentation
//! thresholds. Every key is optional
//! and falls back to the defaults of docs/design.md §4; an unknown key is an error, so that
//! a typo never leaves a default in force unnoticed. The format is documented in
//! docs/risk-and-anomalies.md and docs/segments.md.

use std::path::Path;

use flowsight_queries::risk::anomaly::{FanoutSpikeRule, PortScanRule};
use flowsight_queries::segments::propagation::SegmentRules;
use flowsight_queries::RiskSettings;
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// The windows and their panes, written as `--windows` takes them.
    windows: Option<String>,
    #[serde(default)]
    risk: RiskSection,
    #[serde(default)]
    anomalies: AnomaliesSection,
    #[serde(default)]
    segments: SegmentsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsSection {
    hub_degree: Option<u64>,
    min_edge_connections: Option<u64>,
}

/// Everything a settings file sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub analysis: RiskSettings,
    pub segments: SegmentRules,
    /// The windows and their panes (`30m:1m,2h:5m,24h:1h`), validated with the tick by
    /// the caller; `None` when the file sets none.
    pub windows: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskSection {
    sensitive_ports: Option<Vec<u16>>,
    private_ranges: Option<Vec<String>>,
    #[serde(default)]
    severity: SeveritySection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeveritySection {
    medium: Option<u8>,
    critical: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomaliesSection {
    #[serde(default)]
    port_scan: PortScanSection,
    #[serde(default)]
    fanout_spike: FanoutSpikeSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortScanSection {
    min_connections: Option<u64>,
    min_ports: Option<u64>,
    min_hosts: Option<u64>,
    min_failed_percent: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FanoutSpikeSection {
    min_destinations: Option<u64>,
    factor: Option<u64>,
}

/// Reads and validates a settings file.
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {}: cannot read it: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// Parses settings from TOML text, defaults filling what it leaves out.
pub fn parse(text: &str) -> Result<Settings, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut settings = RiskSettings::default();
    let risk = &mut settings.risk;
    if let Some(ports) = file.risk.sensitive_ports {
        risk.sensitive_ports = ports;
    }
    if let Some(ranges) = file.risk.private_ranges {
        risk.private_ranges = ranges
            .iter()
            .map(|r| {
                r.parse::<IpNet>().map_err(|_| {
                    format!("risk.private_ranges: {r:?} is not a network such as 10.0.0.0/8 or fc00::/7")
                })
            })
            .collect::<Result<_, _>>()?;
    }
    let bands = &mut risk.bands;
    bands.medium = file.risk.severity.medium.unwrap_or(bands.medium);
    bands.critical = file.risk.severity.critical.unwrap_or(bands.critical);
    risk.validate().map_err(|e| format!("risk.severity: {e}"))?;

    let scan = file.anomalies.port_scan;
    let defaults = PortScanRule::default();
    settings.anomalies.port_scan = PortScanRule {
        min_connections: scan.min_connections.unwrap_or(defaults.min_connections),
        min_ports: scan.min_ports.unwrap_or(defaults.min_ports),
        min_hosts: scan.min_hosts.unwrap_or(defaults.min_hosts),
        min_failed_percent: scan
            .min_failed_percent
            .unwrap_or(defaults.min_failed_percent),
    };
    let rule = settings.anomalies.port_scan;
    if rule.min_connections == 0 || rule.min_ports == 0 || rule.min_hosts == 0 {
        return Err(
            "anomalies.port_scan: min_connections, min_ports and min_hosts must be at least 1"
                .into(),
        );
    }
    if rule.min_failed_percent > 100 {
        return Err("anomalies.port_scan: min_failed_percent must be from 0 to 100".into());
    }
    let spike = file.anomalies.fanout_spike;
    let defaults = FanoutSpikeRule::default();
    settings.anomalies.fanout_spike = FanoutSpikeRule {
        min_destinations: spike.min_destinations.unwrap_or(defaults.min_destinations),
        factor: spike.factor.unwrap_or(defaults.factor),
    };
    if settings.anomalies.fanout_spike.min_destinations == 0 {
        return Err("anomalies.fanout_spike: min_destinations must be at least 1".into());
    }

    let defaults = SegmentRules::default();
    let segments = SegmentRules {
        hub_degree: file.segments.hub_degree.unwrap_or(defaults.hub_degree),
        min_edge_connections: file
            .segments
            .min_edge_connections
            .unwrap_or(defaults.min_edge_connections),
    };
    if segments.hub_degree == 0 || segments.min_edge_connections == 0 {
        return Err("segments: hub_degree and min_edge_connections must be at least 1".into());
    }
    Ok(Settings {
        analysis: settings,
        segments,
        windows: file.windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn the_documented_example_parses_to_the_defaults() {
        for doc in [
            include_str!("../../docs/risk-and-anomalies.md"),
            include_str!("../../docs/segments.md"),
        ] {
            let start = doc.find("```toml").expect("the doc has a TOML example") + "```toml".len();
            let end = start + doc[start..].find("```").expect("closed");
            assert_eq!(parse(&doc[start..end]).unwrap(), Settings::default());
        }
    }

    #[test]
    fn settings_override_defaults() {
        let settings = parse(
            r#"
            [risk]
            sensitive_ports = [8443]
            private_ranges = ["100.64.0.0/10"]
            [risk.severity]
            critical = 90
            [anomalies.port_scan]
            min_failed_percent = 80
            [anomalies.fanout_spike]
            factor = 3
            [segments]
            hub_degree = 20
            "#,
        )
        .unwrap();
        assert_eq!(settings.segments.hub_degree, 20);
        assert_eq!(settings.segments.min_edge_connections, 3);
        let settings = settings.analysis;
        assert_eq!(settings.risk.sensitive_ports, vec![8443]);
        assert!(settings.risk.is_private("100.64.1.1".parse().unwrap()));
        assert!(!settings.risk.is_private("10.0.0.1".parse().unwrap()));
        assert_eq!(
            (settings.risk.bands.medium, settings.risk.bands.critical),
            (40, 90)
        );
        assert_eq!(settings.anomalies.port_scan.min_failed_percent, 80);
        assert_eq!(settings.anomalies.port_scan.min_connections, 20);
        assert_eq!(settings.anomalies.fanout_spike.factor, 3);
    }

    #[test]
    fn mistakes_are_named() {
        let err = parse("[risk]\nsensitive_port = [22]\n").unwrap_err();
        assert!(err.contains("sensitive_port"), "{err}");
        let err = parse("[risk]\nprivate_ranges = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        let err = parse("[risk.severity]\nmedium = 80\n").unwrap_err();
        assert!(err.contains("medium"), "{err}");
        let err = parse("[risk]\nsensitive_ports = [70000]\n").unwrap_err();
        assert!(err.contains("sensitive_ports"), "{err}");
        let err = parse("[anomalies.port_scan]\nmin_failed_percent = 101\n").unwrap_err();
        assert!(err.contains("min_failed_percent"), "{err}");
        let err = parse("[segments]\nmin_edge_connections = 0\n").unwrap_err();
        assert!(err.contains("min_edge_connections"), "{err}");
        let err = parse("[segments]\nhub = 3\n").unwrap_err();
        assert!(err.contains("hub"), "{err}");
        assert!(parse("not toml [").is_err());
    }
}
