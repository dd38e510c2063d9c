//! Alerts: the risk view's detections and severity changes, written as JSON to the alerts
//! topic (`--alerts-topic`) by the worker that owns the host, as the frontier passes them.
//!
//! While the engine is catching up after a restart it replays records it already counted;
//! alerts before the views are exact again were sent before the restart and are skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowsight_connectors::kafka::{topic_partitions, EventProducer};
use flowsight_operators::Millis;
use flowsight_queries::risk::Alert;
use serde_json::json;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use crate::config::{AlertsConfig, EngineConfig};
use crate::engine::{EngineError, Shared};

/// How long looking the alerts topic up may take at start.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How many alerts one process raised and where they went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// Whether an alerts topic is configured.
    pub configured: bool,
    /// Handed to the producer.
    pub queued: u64,
    /// The producer would not queue them.
    pub refused: u64,
    /// Raised while replaying after a restart, not sent again.
    pub skipped: u64,
    /// Acknowledged by the brokers.
    pub delivered: u64,
    /// Queued but never acknowledged (refused by the brokers or timed out).
    pub undelivered: u64,
}

/// Where a process's alerts go, and how many went.
pub struct AlertSink {
    producer: Option<EventProducer>,
    window_names: BTreeMap<Millis, String>,
    /// Alerts handed to the producer.
    pub sent: AtomicU64,
    /// Alerts the producer refused to queue.
    pub failed: AtomicU64,
    /// Alerts raised while replaying after a restart, not sent again.
    pub skipped: AtomicU64,
}

impl AlertSink {
    /// Opens the alerts topic's producer when one is configured.
    pub fn new(config: &EngineConfig) -> Result<AlertSink, EngineError> {
        let producer = match &config.alerts {
            Some(AlertsConfig { options, topic }) => {
                // The topic must exist: producing to a missing one would create it on a
                // broker that auto-creates topics, and a mistyped name would go unnoticed.
                if topic_partitions(options, topic, BROKER_TIMEOUT)?.is_none() {
                    return Err(EngineError::AlertsTopicMissing {
                        topic: topic.clone(),
                        brokers: options.brokers.clone(),
                    });
                }
                Some(EventProducer::named(options, topic, "flowsight-alerts")?)
            }
            None => None,
        };
        Ok(AlertSink {
            producer,
            window_names: config
                .windows
                .iter()
                .map(|w| (w.length, w.name.clone()))
                .collect(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    fn window_name(&self, window: Millis) -> String {
        self.window_names
            .get(&window)
            .cloned()
            .unwrap_or_else(|| format!("{window}ms"))
    }

    /// The JSON of one alert (docs/risk-and-anomalies.md, "Alerts").
    pub fn to_json(&self, alert: &Alert) -> serde_json::Value {
        match alert {
            Alert::Detected {
                at,
                window,
                anomaly,
            } => json!({
                "type": "anomaly",
                "as_of": at,
                "window": self.window_name(*window),
                "host": anomaly.host,
                "kind": anomaly.kind,
                "first_detected": anomaly.first_detected,
                "evidence": anomaly.for_users().evidence,
            }),
            Alert::Severity { at, change } => json!({
                "type": "severity",
                "as_of": at,
                "window": self.window_name(change.window),
                "host": change.ip,
                "from": change.from,
                "to": change.to,
                "score": change.score,
            }),
        }
    }

    fn send(&self, alert: &Alert) {
        let Some(producer) = &self.producer else {
            return;
        };
        let host = match alert {
            Alert::Detected { anomaly, .. } => anomaly.host,
            Alert::Severity { change, .. } => change.ip,
        };
        let payload = self.to_json(alert).to_string();
        match producer.send_keyed(host.to_string().as_bytes(), payload.as_bytes()) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("alert not sent: {error}");
            }
        }
    }

    /// Waits for the producer's acknowledgements at shutdown.
    pub fn flush(&self) -> Result<(), flowsight_connectors::kafka::ProduceError> {
        match &self.producer {
            Some(producer) => producer.flush(Duration::from_secs(10)).map(|_| ()),
            None => Ok(()),
        }
    }

    /// This process's alert counts so far.
    pub fn counts(&self) -> AlertCounts {
        let (delivered, undelivered) = self
            .producer
            .as_ref()
            .map_or((0, 0), |p| (p.delivered(), p.failed()));
        AlertCounts {
            configured: self.producer.is_some(),
            queued: self.sent.load(Ordering::Relaxed),
            refused: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            delivered,
            undelivered,
        }
    }
}

/// Hands every alert of this worker to the process's sink.
pub(crate) fn deliver<'scope>(alerts: Stream<'scope, Millis, Vec<Alert>>, shared: Arc<Shared>) {
    alerts.sink(Pipeline, "Alerts", move |(input, _frontier)| {
        let ready_from = shared.runtime.ready_from;
        input.for_each(|_, data| {
            for alert in data.drain(..) {
                let at = match &alert {
                    Alert::Detected { at, .. } | Alert::Severity { at, .. } => *at,
                };
                if ready_from.is_some_and(|ready| at < ready) {
                    shared.alerts.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared.alerts.send(&alert);
            }
        });
    });
}
