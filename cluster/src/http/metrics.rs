//! `GET /metrics`: the cluster status in Prometheus text format, built with
//! `prometheus-client` from a status peek at scrape time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use flowsight_engine::{Client, Hub};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use warp::http::header::CONTENT_TYPE;
use warp::reply::Response;
use warp::Reply;

use super::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabels {
    view: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    source: String,
    partition: String,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub async fn render(client: Client, hub: Arc<Hub>) -> Result<Response, ApiError> {
    let reader = client.clone();
    let status = tokio::task::spawn_blocking(move || reader.status(super::PEEK_TIMEOUT))
        .await
        .map_err(|e| ApiError::internal(format!("status task failed: {e}")))??
        .answer;
    let mut registry = Registry::with_prefix("flowsight");

    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: env!("FLOWSIGHT_COMMIT").to_string(),
        })
        .set(1);
    registry.register(
        "build_info",
        "The version and commit of this binary (always 1)",
        build,
    );

    let records: Counter = Counter::default();
    records.inc_by(status.records);
    registry.register("records", "Valid records read from every source", records);

    let late: Counter = Counter::default();
    late.inc_by(status.late_records);
    registry.register(
        "late_records",
        "Records that arrived after the frontier passed their own time and entered at the frontier",
        late,
    );

    let dead = Family::<ReasonLabels, Counter>::default();
    for (reason, count) in &status.dead_letters_by_reason {
        dead.get_or_create(&ReasonLabels {
            reason: reason.clone(),
        })
        .inc_by(*count);
    }
    registry.register(
        "dead_letters",
        "Malformed records kept as dead letters, by reason",
        dead,
    );

    gauge(
        &mut registry,
        "as_of_ms",
        "Latest as_of complete on every worker (ms since epoch)",
        clamp(status.as_of),
    );
    gauge(
        &mut registry,
        "frontier_ms",
        "First as_of not yet complete on some worker (ms since epoch)",
        clamp(status.frontier.unwrap_or(u64::MAX)),
    );
    gauge(
        &mut registry,
        "source_ahead_ms",
        "How far the sources have read past the views' frontier, the most over the workers (ms of event time)",
        clamp(status.source_ahead.unwrap_or(0)),
    );
    gauge(
        &mut registry,
        "source_waiting_for_views",
        "1 while some source has read --max-ahead past the views and waits for them",
        i64::from(status.waiting_for_views),
    );
    let families = [
        (
            "view_state_records",
            "Updates held in each view's arrangements, summed over the workers (about one per distinct key and pane)",
            Family::<ViewLabels, Gauge>::default(),
        ),
        (
            "view_batcher_records",
            "Updates waiting in each view's arrangement batchers",
            Family::<ViewLabels, Gauge>::default(),
        ),
        (
            "view_batcher_bytes",
            "Bytes held by each view's arrangement batchers",
            Family::<ViewLabels, Gauge>::default(),
        ),
    ];
    for (view, state) in &status.state {
        let labels = ViewLabels { view: view.clone() };
        let values = [state.records, state.batcher_records, state.batcher_bytes];
        for ((_, _, family), value) in families.iter().zip(values) {
            family.get_or_create(&labels).set(clamp(value));
        }
    }
    for (name, help, family) in families {
        registry.register(name, help, family);
    }
    gauge(
        &mut registry,
        "processes",
        "Processes in the cluster",
        clamp(status.processes as u64),
    );
    gauge(
        &mut registry,
        "workers",
        "Timely workers in the cluster",
        clamp(status.workers as u64),
    );

    gauge(
        &mut registry,
        "catching_up",
        "1 while the engine replays what its checkpoint counted after a restart",
        i64::from(status.catching_up),
    );
    gauge(
        &mut registry,
        "replay_remaining_records",
        "Offsets still to replay before the views are exact again after a restart",
        clamp(status.replay_remaining),
    );
    if let Some(sink) = status.dead_letter_sink {
        let delivered: Counter = Counter::default();
        delivered.inc_by(sink.delivered);
        registry.register(
            "dead_letters_delivered",
            "Dead letters written to the dead-letter topic",
            delivered,
        );
        let kept: Counter = Counter::default();
        kept.inc_by(sink.kept_on_disk);
        registry.register(
            "dead_letters_kept_on_disk",
            "Dead letters the dead-letter topic did not take, kept in the state directory",
            kept,
        );
    }

    let alerts = client.alerts();
    if alerts.configured {
        for (name, help, value) in [
            (
                "alerts_sent",
                "Alerts this process handed to the alerts topic's producer",
                alerts.queued,
            ),
            (
                "alerts_delivered",
                "Alerts of this process the brokers acknowledged",
                alerts.delivered,
            ),
            (
                "alerts_failed",
                "Alerts of this process that could not be queued or were not acknowledged",
                alerts.refused + alerts.undelivered,
            ),
            (
                "alerts_skipped",
                "Alerts raised while replaying after a restart, not sent again",
                alerts.skipped,
            ),
        ] {
            let counter: Counter = Counter::default();
            counter.inc_by(value);
            registry.register(name, help, counter);
        }
    }

    let offsets = Family::<PartitionLabels, Gauge>::default();
    let reflected = Family::<PartitionLabels, Gauge>::default();
    let ends = Family::<PartitionLabels, Gauge>::default();
    let lags = Family::<PartitionLabels, Gauge>::default();
    let max_ts = Family::<PartitionLabels, Gauge>::default();
    for p in &status.partitions {
        let labels = PartitionLabels {
            source: p.source.clone(),
            partition: p.partition.to_string(),
        };
        offsets.get_or_create(&labels).set(clamp(p.next_offset));
        if let Some(offset) = p.reflected_offset {
            reflected.get_or_create(&labels).set(clamp(offset));
        }
        if let Some(end) = p.end_offset {
            ends.get_or_create(&labels).set(clamp(end));
        }
        if let Some(lag) = p.lag {
            lags.get_or_create(&labels).set(clamp(lag));
        }
        if let Some(ts) = p.max_ts {
            max_ts.get_or_create(&labels).set(clamp(ts));
        }
    }
    registry.register(
        "partition_reflected_offset",
        "Records before this offset are reflected in the views and checkpointed, per partition",
        reflected,
    );
    registry.register(
        "partition_end_offset",
        "The partition's end offset (high watermark) as the broker last reported it",
        ends,
    );
    registry.register(
        "partition_lag",
        "Records in the broker not yet read, per partition",
        lags,
    );
    registry.register(
        "partition_next_offset",
        "Next offset to read, per source partition",
        offsets,
    );
    registry.register(
        "partition_max_ts_ms",
        "Largest event timestamp seen, per source partition",
        max_ts,
    );

    let subscriptions = hub.stats();
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    gauge(
        &mut registry,
        "subscription_clients",
        "Clients connected to /v1/subscribe on this process",
        clamp(load(&subscriptions.clients)),
    );
    gauge(
        &mut registry,
        "subscription_feeds",
        "Distinct subscriptions (view and parameters) this process reads at every tick",
        clamp(load(&subscriptions.feeds)),
    );
    let counters = [
        (
            "subscription_events",
            "Change and progress events captured by this process's subscriptions",
            &subscriptions.events,
        ),
        (
            "subscription_overflows",
            "Times a subscriber fell too far behind and was sent a new snapshot",
            &subscriptions.overflows,
        ),
        (
            "subscription_resumes",
            "Reconnections with Last-Event-ID that resumed from the retained events",
            &subscriptions.resumed,
        ),
    ];
    for (name, help, value) in counters {
        let counter: Counter = Counter::default();
        counter.inc_by(load(value));
        registry.register(name, help, counter);
    }

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
