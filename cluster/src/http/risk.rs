//! The risk and anomaly routes: `/v1/risks`, `/v1/risks/severity`, `/v1/risks/{ip}`,
//! `/v1/anomalies`.

use std::net::IpAddr;

use flowsight_engine::views::risk::{Anomalies, RiskHost, Risks, SeverityOverTime};
use flowsight_engine::Client;
use flowsight_queries::risk::anomaly::AnomalyKind;
use flowsight_queries::risk::rules::Severity;
use serde_json::{json, Value};
use warp::reply::Response;

use super::params::{self, Params};
use super::segments::require_segment_views;
use super::ErrorCode;
use super::{
    get, get_one, json_reply, list_body, one_more, peek, window_json, ApiError, Routes, ViewRead,
};

/// The risk routes answer 404 `view_disabled` when the engine runs without them.
fn require_risk_views(client: &Client) -> Result<(), ApiError> {
    if client.config().risk_views {
        return Ok(());
    }
    Err(ApiError {
        status: warp::http::StatusCode::NOT_FOUND,
        code: ErrorCode::ViewDisabled,
        message: "the risk and anomaly views are off (the engine runs with --no-risk-views)".into(),
    })
}

/// The risk and anomaly routes; `severity` comes before `/v1/risks/{ip}`: it is no address.
pub(super) fn routes(client: &Client) -> Routes {
    let risks = get(warp::path!("v1" / "risks"), client, risks);
    let severity = get(warp::path!("v1" / "risks" / "severity"), client, severity);
    let risk_host = get_one(warp::path!("v1" / "risks" / String), client, host);
    let anomalies = get(warp::path!("v1" / "anomalies"), client, anomalies);
    super::join(vec![risks, severity, risk_host, anomalies])
}

/// `GET /v1/risks?window=&severity=&limit=`: highest score first, ties by address.
pub async fn risks(client: Client, raw: String) -> Result<Response, ApiError> {
    risks_read(&client, &raw)?.serve(&client).await
}

pub(crate) fn risks_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    require_risk_views(client)?;
    let params = Params::parse(raw, &["window", "severity", "limit"])?;
    let window = params.window(client.config())?;
    let severity = params
        .parsed::<Severity>("severity")
        .map_err(|message| ApiError::bad_request(ErrorCode::BadSeverity, message))?;
    let limit = params.limit(100, 10_000)?;
    let view = Risks {
        window: window.length,
        severity,
        limit: one_more(limit),
    };
    Ok(ViewRead::new(view, move |answered| {
        let mut body = list_body(answered.as_of, &window, answered.answer, limit);
        body["severity"] = json!(severity);
        Ok(body)
    }))
}

/// The most points a severity read answers with.
const MAX_SEVERITY_POINTS: u64 = 10_000;
/// The points a severity read has when it names no step.
const DEFAULT_SEVERITY_POINTS: u64 = 720;

/// `GET /v1/risks/severity?window=&span=&step=`: how many hosts were low, medium and
/// critical over the last `span` (at most the longest window, which the history keeps;
/// the default), network-wide.
pub async fn severity(client: Client, raw: String) -> Result<Response, ApiError> {
    severity_read(&client, &raw)?.serve(&client).await
}

pub(crate) fn severity_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    require_risk_views(client)?;
    let params = Params::parse(raw, &["window", "span", "step"])?;
    let window = params.window(client.config())?;
    let tick = client.config().time.tick();
    // Points fall on ticks: a span or step is rounded up to a whole number of ticks.
    let on_ticks = |step: u64| step.div_ceil(tick).max(1) * tick;
    let longest = client.config().windows.longest();
    let span = match params.text("span") {
        None => longest.length,
        Some(text) => {
            let bad = |why: String| ApiError::bad_request(ErrorCode::BadSpan, why);
            let span = flowsight_queries::parse_duration_ms(text).map_err(|e| bad(e.0))?;
            if span == 0 || on_ticks(span) > longest.length {
                return Err(bad(format!(
                    "span must be positive and at most the longest window ({}), which the \
                     history keeps; got {text:?}",
                    longest.name
                )));
            }
            on_ticks(span)
        }
    };
    let step = match params.text("step") {
        None => on_ticks(span.div_ceil(DEFAULT_SEVERITY_POINTS)),
        Some(text) => {
            let bad = |why: String| ApiError::bad_request(ErrorCode::BadStep, why);
            let step = flowsight_queries::parse_duration_ms(text).map_err(|e| bad(e.0))?;
            if step == 0 {
                return Err(bad(format!("step must be positive, got {text:?}")));
            }
            let step = on_ticks(step);
            if span / step > MAX_SEVERITY_POINTS {
                return Err(bad(format!(
                    "step {text:?} gives more than {MAX_SEVERITY_POINTS} points over the \
                     span of {span} ms"
                )));
            }
            step
        }
    };
    let view = SeverityOverTime {
        window: window.length,
        span,
        step,
    };
    Ok(ViewRead::new(view, move |answered| {
        let points = answered.answer;
        Ok(json!({
            "as_of": answered.as_of,
            "window": window_json(&window, answered.as_of),
            "from": answered.as_of.saturating_sub(span),
            "step": step,
            "rows": points,
        }))
    }))
}

/// `GET /v1/risks/{ip}?window=&history=1`: the host in every window (or one), side by
/// side, and how its score changed.
pub async fn host(client: Client, ip: String, raw: String) -> Result<Response, ApiError> {
    require_risk_views(&client)?;
    let ip = percent_encoding::percent_decode_str(&ip).decode_utf8_lossy();
    let ip: IpAddr = params::parse_ip("ip", &ip)?;
    let params = Params::parse(&raw, &["window", "history"])?;
    let only = match params.has("window") {
        true => Some(params.window(client.config())?),
        false => None,
    };
    let history = params.flag("history")?;
    let answered = peek(&client, RiskHost { ip, history }).await?;
    let answer = answered.answer;
    let as_of = answered.as_of;
    let config = client.config();
    let selected: Vec<_> = config
        .windows
        .iter()
        .filter(|w| only.as_ref().is_none_or(|o| o.length == w.length))
        .collect();
    let windows: Vec<Value> = selected
        .iter()
        .map(|w| {
            let window = window_json(w, as_of);
            match answer.rows.iter().find(|(length, _)| *length == w.length) {
                Some((_, row)) => json!({
                    "window": window,
                    "score": row.score,
                    "severity": row.severity,
                    "connections": row.connections,
                    "factors": row.factors,
                }),
                None => json!({ "window": window, "score": null, "severity": null }),
            }
        })
        .collect();
    let mut body = json!({ "as_of": as_of, "ip": ip, "windows": windows });
    if let Some(histories) = answer.history {
        let history: Vec<Value> = selected
            .iter()
            .filter_map(|w| {
                histories
                    .iter()
                    .find(|h| h.window == w.length)
                    .map(|h| json!({ "window": w.name, "changes": h.changes }))
            })
            .collect();
        body["history"] = Value::Array(history);
    }
    Ok(json_reply(&body))
}

/// `GET /v1/anomalies?window=&kind=&limit=`: newest detection first. Policy violations
/// come from the segmentation views, the other kinds from the risk views: the route
/// answers while either runs, and a kind whose view is off is `view_disabled`.
pub async fn anomalies(client: Client, raw: String) -> Result<Response, ApiError> {
    anomalies_read(&client, &raw)?.serve(&client).await
}

pub(crate) fn anomalies_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    let params = Params::parse(raw, &["window", "kind", "limit"])?;
    let window = params.window(client.config())?;
    let kind = params
        .parsed::<AnomalyKind>("kind")
        .map_err(|message| ApiError::bad_request(ErrorCode::BadKind, message))?;
    match kind {
        Some(AnomalyKind::PolicyViolation) => require_segment_views(client)?,
        Some(_) => require_risk_views(client)?,
        None => require_risk_views(client).or_else(|_| require_segment_views(client))?,
    }
    let limit = params.limit(100, 10_000)?;
    let view = Anomalies {
        window: window.length,
        kind,
        limit: one_more(limit),
    };
    Ok(ViewRead::new(view, move |answered| {
        let rows: Vec<_> = answered.answer.iter().map(|a| a.for_users()).collect();
        let mut body = list_body(answered.as_of, &window, rows, limit);
        body["kind"] = json!(kind);
        Ok(body)
    }))
}
