//! The HTTP API v1 (DESIGN §6) and the dashboard, served by warp on a tokio runtime of its
//! own, apart from the timely workers.
//!
//! Every view read becomes a peek through [`flowscope_engine::Client`]; the blocking wait
//! for the gathered answer runs on tokio's blocking pool.

mod error;
mod metrics;
mod params;
mod queries;
mod risk;
mod segments;

use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use flowscope_engine::{Answer, Answered, Client, ViewQuery};
use flowscope_queries::EdgeFilter;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use error::ApiError;
use params::Params;

/// The largest request body accepted on any route.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// How long a request waits for the workers' answer.
pub(crate) const PEEK_TIMEOUT: Duration = Duration::from_secs(10);

const DASHBOARD: &str = include_str!("dashboard.html");

/// All routes, with errors rendered as `{"error": {"code", "message"}}`.
pub fn routes(client: Client) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_client = warp::any().map(move || client.clone());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();

    let body_limit = warp::header::optional::<u64>("content-length").and_then(
        |length: Option<u64>| async move {
            match length {
                Some(n) if n > MAX_BODY_BYTES => Err(warp::reject::custom(
                    ApiError::payload_too_large(MAX_BODY_BYTES),
                )),
                _ => Ok(()),
            }
        },
    );

    // The method is checked after the path, so that an unknown path is a 404 and a known
    // one asked with another method a 405.
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_client.clone())
        .and_then(|client: Client| async move { health(client).await })
        .boxed();
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_client.clone())
        .and_then(|client: Client| async move { respond(metrics::render(client).await) })
        .boxed();
    let status = warp::path!("v1" / "status")
        .and(warp::get())
        .and(with_client.clone())
        .and_then(|client: Client| async move { respond(status(client).await) })
        .boxed();
    let dead_letters = warp::path!("v1" / "dead-letters")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|q: String, client: Client| async move { respond(dead_letters(client, q).await) })
        .boxed();
    let edges = warp::path!("v1" / "graph" / "edges")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|q: String, client: Client| async move { respond(edges(client, q).await) })
        .boxed();
    let host = warp::path!("v1" / "graph" / "hosts" / String)
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(host(client, ip, q).await)
        })
        .boxed();
    let risks = warp::path!("v1" / "risks")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|q: String, client: Client| async move { respond(risk::risks(client, q).await) })
        .boxed();
    let risk_host = warp::path!("v1" / "risks" / String)
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(risk::host(client, ip, q).await)
        })
        .boxed();
    let anomalies = warp::path!("v1" / "anomalies")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(risk::anomalies(client, q).await) },
        )
        .boxed();
    let segment_list = warp::path!("v1" / "segments")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(segments::list(client, q).await) },
        )
        .boxed();
    let segment = warp::path!("v1" / "segments" / String)
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|id: String, q: String, client: Client| async move {
            respond(segments::segment(client, id, q).await)
        })
        .boxed();
    let host_segment = warp::path!("v1" / "hosts" / String / "segment")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(segments::host(client, ip, q).await)
        })
        .boxed();
    let policy = warp::path!("v1" / "policy")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(segments::policy(client, q).await) },
        )
        .boxed();
    let register_query = warp::path!("v1" / "queries")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .and(with_client.clone())
        .and_then(
            |body, client: Client| async move { respond(queries::register(client, body).await) },
        )
        .boxed();
    let list_queries = warp::path!("v1" / "queries")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(queries::list(client, q).await) },
        )
        .boxed();
    let show_query = warp::path!("v1" / "queries" / String)
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|name: String, q: String, client: Client| async move {
            respond(queries::show(client, name, q).await)
        })
        .boxed();
    let drop_query = warp::path!("v1" / "queries" / String)
        .and(warp::delete())
        .and(with_client.clone())
        .and_then(|name: String, client: Client| async move {
            respond(queries::drop(client, name).await)
        })
        .boxed();
    let query_results = warp::path!("v1" / "queries" / String / "results")
        .and(warp::get())
        .and(query)
        .and(with_client.clone())
        .and_then(|name: String, q: String, client: Client| async move {
            respond(queries::results(client, name, q).await)
        })
        .boxed();
    let dashboard = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(DASHBOARD).into_response())
        .boxed();

    let routes = health
        .or(metrics)
        .unify()
        .or(status)
        .unify()
        .or(dead_letters)
        .unify()
        .or(edges)
        .unify()
        .or(host)
        .unify()
        .or(risks)
        .unify()
        .or(risk_host)
        .unify()
        .or(anomalies)
        .unify()
        .or(segment_list)
        .unify()
        .or(segment)
        .unify()
        .or(host_segment)
        .unify()
        .or(policy)
        .unify()
        .or(register_query)
        .unify()
        .or(list_queries)
        .unify()
        .or(show_query)
        .unify()
        .or(drop_query)
        .unify()
        .or(query_results)
        .unify()
        .or(dashboard)
        .unify();

    body_limit
        .and(routes)
        .map(|(), reply: Response| reply)
        .recover(error::recover)
        .unify()
        .with(warp::log("flowscope::http"))
}

fn respond(result: Result<Response, ApiError>) -> Result<Response, Rejection> {
    Ok(result.unwrap_or_else(|e| e.into_response()))
}

/// Runs a peek on the blocking pool.
pub(crate) async fn peek(client: &Client, query: ViewQuery) -> Result<Answered, ApiError> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || client.peek(query, PEEK_TIMEOUT))
        .await
        .map_err(|e| ApiError::internal(format!("peek task failed: {e}")))?
        .map_err(ApiError::from)
}

fn json_reply(value: &Value) -> Response {
    warp::reply::json(value).into_response()
}

fn window_json(name: &str, length: u64, as_of: u64) -> Value {
    json!({ "name": name, "from": as_of.saturating_sub(length), "to": as_of })
}

async fn health(client: Client) -> Result<Response, Rejection> {
    let (status, body) = if let Some(failure) = client.failure() {
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
            json!({"status": "catching_up", "ready": false, "ready_from": ready_from, "as_of": client.latest_complete()}),
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
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

async fn status(client: Client) -> Result<Response, ApiError> {
    let answered = peek(&client, ViewQuery::Status).await?;
    let Answer::Status(status) = answered.answer else {
        return Err(ApiError::internal("unexpected answer to a status peek"));
    };
    let config = client.config();
    let mut value = serde_json::to_value(&status).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        object.insert("process".into(), json!(config.cluster.process()));
        object.insert("windows".into(), json!(config.windows.names()));
        object.insert("tick_ms".into(), json!(config.time.tick()));
        object.insert("source".into(), json!(config.source.name()));
    }
    Ok(json_reply(&value))
}

async fn dead_letters(client: Client, raw: String) -> Result<Response, ApiError> {
    let params = Params::parse(&raw, &["limit"])?;
    let limit = params.limit(100, 1000)?;
    let answered = peek(&client, ViewQuery::DeadLetters { limit }).await?;
    let Answer::DeadLetters {
        letters,
        total,
        by_reason,
    } = answered.answer
    else {
        return Err(ApiError::internal(
            "unexpected answer to a dead-letter peek",
        ));
    };
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "total": total,
        "by_reason": by_reason,
        "rows": letters,
    })))
}

async fn edges(client: Client, raw: String) -> Result<Response, ApiError> {
    let params = Params::parse(&raw, &["src", "dst", "window", "limit"])?;
    let window = params.window(client.config())?;
    let filter = EdgeFilter {
        src: params.ip("src")?,
        dst: params.ip("dst")?,
    };
    let limit = params.limit(100, 10_000)?;
    let answered = peek(
        &client,
        ViewQuery::Edges {
            window: window.length,
            filter,
            limit,
        },
    )
    .await?;
    let Answer::Edges(rows) = answered.answer else {
        return Err(ApiError::internal("unexpected answer to an edge peek"));
    };
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "window": window_json(&window.name, window.length, answered.as_of),
        "rows": rows,
    })))
}

async fn host(client: Client, ip: String, raw: String) -> Result<Response, ApiError> {
    // Path segments arrive percent-encoded (an IPv6 address's colons may be `%3A`).
    let ip = percent_encoding::percent_decode_str(&ip).decode_utf8_lossy();
    let ip: IpAddr = params::parse_ip("ip", &ip)?;
    let params = Params::parse(&raw, &["window", "limit"])?;
    let window = params.window(client.config())?;
    let limit = params.limit(1000, 10_000)?;
    let answered = peek(
        &client,
        ViewQuery::Host {
            ip,
            window: window.length,
            limit,
        },
    )
    .await?;
    let Answer::Host(host) = answered.answer else {
        return Err(ApiError::internal("unexpected answer to a host peek"));
    };
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "window": window_json(&window.name, window.length, answered.as_of),
        "host": host.summary,
        "out_edges": host.out_edges,
        "in_edges": host.in_edges,
    })))
}
