//! The operational routes: `/health`, `/metrics`, `/v1/status`, `/v1/dead-letters`.

use std::sync::Arc;

use flowsight_engine::views::counters::DeadLetters;
use flowsight_engine::Answered;
use flowsight_engine::{Client, Hub};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::params::Params;
use super::{
    json_reply, metrics, peek, raw_query, read, respond, with, ApiError, ReadFailure, Routes,
    ViewRead, PEEK_TIMEOUT,
};

/// The operational routes; `hub` counts the subscriptions for `/metrics`.
pub(super) fn routes(client: &Client, hub: &Arc<Hub>) -> Routes {
    // When this process started keeping dead letters, which `/v1/dead-letters` says.
    let started = flowsight_events::now_ms();
    let health = warp::path!("health")
        .and(read())
        .and(with(client.clone()))
        .and_then(|client: Client| async move { health(client).await })
        .boxed();
    let metrics = warp::path!("metrics")
        .and(read())
        .and(with(client.clone()))
        .and(with(Arc::clone(hub)))
        .and_then(|client: Client, hub: Arc<Hub>| async move {
            respond(metrics::render(client, hub).await)
        })
        .boxed();
    let status = warp::path!("v1" / "status")
        .and(read())
        .and(with(client.clone()))
        .and_then(|client: Client| async move { respond(status(client).await) })
        .boxed();
    let dead_letters = warp::path!("v1" / "dead-letters")
        .and(read())
        .and(raw_query())
        .and(with(client.clone()))
        .and_then(move |q: String, client: Client| async move {
            respond(dead_letters(client, q, started).await)
        })
        .boxed();
    super::join(vec![health, metrics, status, dead_letters])
}

async fn health(client: Client) -> Result<Response, Rejection> {
    let (status, mut body) = if let Some(failure) = client.failure() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "ready": false, "error": failure}),
        )
    } else if client.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "stopping", "ready": false}),
        )
    } else if let Some(ready_from) = client
        .ready_from()
        .filter(|ready| client.latest_complete().is_none_or(|as_of| as_of < *ready))
    {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "catching_up",
                "ready": false,
                "ready_from": ready_from,
                "as_of": client.latest_complete(),
            }),
        )
    } else if let Some(as_of) = client.latest_complete() {
        (
            StatusCode::OK,
            json!({"status": "ok", "ready": true, "as_of": as_of}),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting", "ready": false}),
        )
    };
    body["version"] = json!(crate::VERSION);
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

async fn status(client: Client) -> Result<Response, ApiError> {
    status_read(&client).serve(&client).await
}

/// The status of every process, with this process's configuration.
pub(crate) fn status_read(client: &Client) -> ViewRead {
    let config = client.config();
    let process = config.cluster.process();
    let windows: Vec<String> = config
        .windows
        .names()
        .into_iter()
        .map(String::from)
        .collect();
    let tick = config.time.tick();
    let source = config.source.name().to_string();
    // From the workers' published counters: it answers at once however busy they are.
    ViewRead::from_fn("status", move |client| {
        let answered = client.status(PEEK_TIMEOUT).map_err(ReadFailure::Peek)?;
        let mut value = serde_json::to_value(&answered.answer)
            .map_err(|e| ReadFailure::Render(ApiError::internal(e.to_string())))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("process".into(), json!(process));
            object.insert("windows".into(), json!(windows));
            object.insert("tick_ms".into(), json!(tick));
            object.insert("source".into(), json!(source));
            object.insert("version".into(), json!(crate::VERSION));
        }
        Ok(Answered {
            as_of: answered.as_of,
            answer: value,
        })
    })
}

/// `?limit=`: the counts since the first run (a checkpoint carries them over restarts)
/// and the most recent letters this process has seen since it started (`rows_since`):
/// the letters themselves are kept in memory; before a restart they are in the
/// dead-letter topic or its spill file (docs/operations.md).
async fn dead_letters(client: Client, raw: String, started: u64) -> Result<Response, ApiError> {
    let params = Params::parse(&raw, &["limit"])?;
    let limit = params.limit(100, 1000)?;
    let answered = peek(&client, DeadLetters { limit }).await?;
    let letters = answered.answer;
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "total": letters.total,
        "by_reason": letters.by_reason,
        "rows_since": started,
        "rows": letters.letters,
    })))
}
