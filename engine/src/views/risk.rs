//! The risk views: the highest scores of a window, one host's scores, how many hosts were
//! of each severity over time, and the most recent anomalies (which include the
//! segmentation views' policy violations).
//!
//! Without the risk views (`--no-risk-views`) the parts are empty; the HTTP layer answers
//! `view_disabled` before asking.

use std::net::IpAddr;

use flowsight_operators::Millis;
use flowsight_queries::risk::anomaly::{Anomaly, AnomalyKind};
use flowsight_queries::risk::rules::Severity;
use flowsight_queries::risk::{
    merge_anomalies, merge_history, merge_severity, merge_top, RiskReader, SeverityDeltas,
    SeverityPoint,
};
use flowsight_queries::{RiskRow, SegmentReader, WindowHistory};
use serde::{Deserialize, Serialize};

use crate::peek::Views;
use crate::view::{Merging, Reading, View};

/// The highest risk scores of a window, of one severity or all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risks {
    /// The window's length (ms): one of the configured windows.
    pub window: Millis,
    /// Only hosts of this severity; `None` for all.
    pub severity: Option<Severity>,
    /// The most rows to answer with, highest score first.
    pub limit: usize,
}

impl View for Risks {
    const NAME: &'static str = "risks";
    type Part = Vec<RiskRow>;
    type Rows = Vec<RiskRow>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Vec<RiskRow> {
        let Some(traces) = views.risk.as_mut() else {
            return Vec::new();
        };
        RiskReader::new(traces, at.time, at.risk_config()).top(
            self.window,
            self.severity,
            self.limit,
        )
    }

    fn merge(&self, parts: Vec<Vec<RiskRow>>, _: &Merging<'_>) -> Vec<RiskRow> {
        merge_top(parts, self.limit)
    }
}

/// One host's score in every window, and how it changed if `history` is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskHost {
    /// The host asked about; only the worker that holds it answers with rows.
    pub ip: IpAddr,
    /// Whether to add how its score changed in each window over the longest window.
    pub history: bool,
}

/// A host's scores: `(window length, row)` for each window it has one in, and, when
/// asked for, how its score changed in each window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskHostAnswer {
    /// `(window length in ms, row)` for each window the host has a score in, shortest
    /// window first.
    pub rows: Vec<(Millis, RiskRow)>,
    /// How its score changed in each window; `None` unless asked for.
    pub history: Option<Vec<WindowHistory>>,
}

impl View for RiskHost {
    const NAME: &'static str = "risk_host";
    type Part = RiskHostAnswer;
    type Rows = RiskHostAnswer;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> RiskHostAnswer {
        let Some(traces) = views.risk.as_mut() else {
            return RiskHostAnswer::default();
        };
        let mut reader = RiskReader::new(traces, at.time, at.risk_config());
        RiskHostAnswer {
            rows: reader.host(self.ip),
            history: self
                .history
                .then(|| reader.history(self.ip, at.windows, at.longest)),
        }
    }

    fn merge(&self, parts: Vec<RiskHostAnswer>, _: &Merging<'_>) -> RiskHostAnswer {
        let mut rows = Vec::new();
        let mut histories = Vec::new();
        for part in parts {
            rows.extend(part.rows);
            histories.extend(part.history);
        }
        rows.sort();
        RiskHostAnswer {
            rows,
            history: self.history.then(|| merge_history(histories)),
        }
    }
}

/// How many hosts were low, medium and critical in `window` over the last `span` (at most
/// the longest window, which the history keeps), every `step`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityOverTime {
    /// The length (ms) of the window whose severities are counted.
    pub window: Millis,
    /// How far back (ms) from the read time the counts go.
    pub span: Millis,
    /// The distance (ms) between two points; the read time is a point too.
    pub step: Millis,
}

impl View for SeverityOverTime {
    const NAME: &'static str = "severity";
    type Part = SeverityDeltas;
    type Rows = Vec<SeverityPoint>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> SeverityDeltas {
        let Some(traces) = views.risk.as_mut() else {
            return Vec::new();
        };
        RiskReader::new(traces, at.time, at.risk_config())
            .severity_deltas(self.window, self.span.min(at.longest))
    }

    fn merge(&self, parts: Vec<SeverityDeltas>, at: &Merging<'_>) -> Vec<SeverityPoint> {
        // The parts cover at most the longest window, as `read` asked.
        merge_severity(
            parts,
            at.as_of.saturating_sub(self.span.min(at.longest())),
            at.as_of,
            self.step,
        )
    }
}

/// The most recent anomalies of a window, of one kind or all: policy violations come from
/// the segmentation views, the other kinds from the risk views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    /// The window's length (ms): one of the configured windows.
    pub window: Millis,
    /// Only anomalies of this kind; `None` for all.
    pub kind: Option<AnomalyKind>,
    /// The most anomalies to answer with, newest detection first.
    pub limit: usize,
}

impl View for Anomalies {
    const NAME: &'static str = "anomalies";
    type Part = Vec<Anomaly>;
    type Rows = Vec<Anomaly>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Vec<Anomaly> {
        let violations = Some(AnomalyKind::PolicyViolation);
        let mut found = Vec::new();
        if let Some(traces) = views.risk.as_mut().filter(|_| self.kind != violations) {
            found.push(
                RiskReader::new(traces, at.time, at.risk_config()).anomalies(
                    self.window,
                    self.kind,
                    self.limit,
                ),
            );
        }
        if let Some(traces) = views
            .segments
            .as_mut()
            .filter(|_| self.kind.is_none() || self.kind == violations)
        {
            found.push(
                SegmentReader::new(traces, at.time)
                    .violations(at.window_start(self.window), self.limit),
            );
        }
        merge_anomalies(found, self.limit)
    }

    fn merge(&self, parts: Vec<Vec<Anomaly>>, _: &Merging<'_>) -> Vec<Anomaly> {
        merge_anomalies(parts, self.limit)
    }
}
