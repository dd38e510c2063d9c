//! The HTTP API v1 (docs/design.md §6, docs/http-api.md) and the dashboard, served by warp
//! on a tokio runtime of its own, apart from the timely workers.
//!
//! Every view read becomes a peek through [`flowsight_engine::Client`]; the blocking wait
//! for the gathered answer runs on tokio's blocking pool.

mod error;
mod metrics;
mod params;
mod queries;
mod risk;
mod segments;
mod subscribe;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use flowsight_engine::{Answer, Answered, Client, Hub, ViewQuery};
use flowsight_queries::EdgeFilter;
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

/// The dashboard, built by `scripts/build-dashboard.sh` from `cluster/dashboard/`.
const DASHBOARD_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// All routes, with errors rendered as `{"error": {"code", "message"}}`; `hub` holds the
/// process's subscriptions (close it to end their streams when the server stops).
pub fn routes(
    client: Client,
    hub: Arc<Hub>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let started = flowsight_events::now_ms();
    let with_hub = warp::any().map(move || Arc::clone(&hub));
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
        .and(read())
        .and(with_client.clone())
        .and_then(|client: Client| async move { health(client).await })
        .boxed();
    let metrics = warp::path!("metrics")
        .and(read())
        .and(with_client.clone())
        .and(with_hub.clone())
        .and_then(|client: Client, hub: Arc<Hub>| async move {
            respond(metrics::render(client, hub).await)
        })
        .boxed();
    let status = warp::path!("v1" / "status")
        .and(read())
        .and(with_client.clone())
        .and_then(|client: Client| async move { respond(status(client).await) })
        .boxed();
    let dead_letters = warp::path!("v1" / "dead-letters")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(move |q: String, client: Client| async move {
            respond(dead_letters(client, q, started).await)
        })
        .boxed();
    let edges = warp::path!("v1" / "graph" / "edges")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|q: String, client: Client| async move { respond(edges(client, q).await) })
        .boxed();
    let host = warp::path!("v1" / "graph" / "hosts" / String)
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(host(client, ip, q).await)
        })
        .boxed();
    let risks = warp::path!("v1" / "risks")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|q: String, client: Client| async move { respond(risk::risks(client, q).await) })
        .boxed();
    // Before `/v1/risks/{ip}`: `severity` is no address.
    let severity = warp::path!("v1" / "risks" / "severity")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(risk::severity(client, q).await) },
        )
        .boxed();
    let risk_host = warp::path!("v1" / "risks" / String)
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(risk::host(client, ip, q).await)
        })
        .boxed();
    let anomalies = warp::path!("v1" / "anomalies")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(risk::anomalies(client, q).await) },
        )
        .boxed();
    let segment_list = warp::path!("v1" / "segments")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(segments::list(client, q).await) },
        )
        .boxed();
    let segment = warp::path!("v1" / "segments" / String)
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|id: String, q: String, client: Client| async move {
            respond(segments::segment(client, id, q).await)
        })
        .boxed();
    let host_segment = warp::path!("v1" / "hosts" / String / "segment")
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|ip: String, q: String, client: Client| async move {
            respond(segments::host(client, ip, q).await)
        })
        .boxed();
    let policy = warp::path!("v1" / "policy")
        .and(read())
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
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(
            |q: String, client: Client| async move { respond(queries::list(client, q).await) },
        )
        .boxed();
    let show_query = warp::path!("v1" / "queries" / String)
        .and(read())
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
        .and(read())
        .and(query)
        .and(with_client.clone())
        .and_then(|name: String, q: String, client: Client| async move {
            respond(queries::results(client, name, q).await)
        })
        .boxed();
    let subscribe = warp::path!("v1" / "subscribe" / ..)
        .and(warp::path::tail())
        .and(warp::get())
        .and(query)
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with_hub)
        .and(with_client.clone())
        .and_then(
            |view: warp::path::Tail,
             q: String,
             last: Option<String>,
             hub: Arc<Hub>,
             client: Client| async move {
                respond(subscribe::subscribe(hub, client, view.as_str().to_string(), q, last).await)
            },
        )
        .boxed();
    let dashboard = warp::path::end()
        .and(read())
        .map(|| warp::reply::html(DASHBOARD_HTML).into_response())
        .boxed();
    let assets = warp::path!("assets" / String)
        .and(read())
        .and_then(|file: String| async move {
            let (body, kind) = match file.as_str() {
                "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
                "dashboard.css" => (DASHBOARD_CSS, "text/css; charset=utf-8"),
                _ => return Err(warp::reject::not_found()),
            };
            Ok(warp::reply::with_header(body, "content-type", kind).into_response())
        })
        .boxed();

    // Each route is joined to the others and boxed again, one at a time: a single chain
    // of `or`s nests its future types one level per route, which past some twenty routes
    // exceeds the compiler's recursion limit when release builds generate code.
    let routes = [
        metrics,
        status,
        dead_letters,
        edges,
        host,
        risks,
        severity,
        risk_host,
        anomalies,
        segment_list,
        segment,
        host_segment,
        policy,
        register_query,
        list_queries,
        show_query,
        drop_query,
        query_results,
        subscribe,
        dashboard,
        assets,
    ]
    .into_iter()
    .fold(health, |routes, route| routes.or(route).unify().boxed())
    .or(wrong_method())
    .unify()
    .boxed();

    body_limit
        .and(routes)
        .map(|(), reply: Response| reply)
        .recover(error::recover)
        .unify()
        .with(warp::log("flowsight::http"))
}

/// GET, and HEAD (health checkers and link checkers ask with HEAD; the answer is the
/// GET's without its body).
fn read() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::get().or(warp::head()).unify()
}

/// The methods each route answers, for the 405 answers of the others.
fn allowed_methods(path: &str) -> Option<&'static str> {
    const READ: &str = "GET, HEAD";
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        [""] | ["health"] | ["metrics"] | ["assets", _] => READ,
        ["v1", "queries"] => "GET, HEAD, POST",
        ["v1", "queries", _] => "GET, HEAD, DELETE",
        ["v1", "subscribe", ..] => "GET",
        ["v1", "status" | "dead-letters" | "risks" | "anomalies" | "segments" | "policy"]
        | ["v1", "graph", "edges"]
        | ["v1", "graph" | "risks" | "segments", _]
        | ["v1", "graph", "hosts", _]
        | ["v1", "hosts", _, "segment"]
        | ["v1", "queries", _, "results"] => READ,
        _ => return None,
    })
}

/// Tried after every route: a known path asked with a method it does not answer is a 405
/// that names the methods it does (and says so in the `Allow` header).
fn wrong_method() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full().and(warp::method()).and_then(
        |path: warp::path::FullPath, method: warp::http::Method| async move {
            let Some(allowed) = allowed_methods(path.as_str()) else {
                return Err(warp::reject::not_found());
            };
            if allowed.split(", ").any(|m| m == method.as_str()) {
                // The route answers this method and rejected the request for a reason of
                // its own (a body too large, say): that rejection stands.
                return Err(warp::reject::not_found());
            }
            let error = ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed".into(),
                message: format!("{} answers {allowed}, not {method}", path.as_str()),
            };
            Ok(warp::reply::with_header(error.into_response(), "allow", allowed).into_response())
        },
    )
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

/// One view read: what to ask the workers, and how to turn their answer into the JSON
/// body. A `GET` serves it once; a subscription at every complete tick.
pub(crate) struct ViewRead {
    pub query: ViewQuery,
    pub render: Arc<Render>,
}

pub(crate) type Render = dyn Fn(Answered) -> Result<Value, ApiError> + Send + Sync;

impl ViewRead {
    pub fn new(
        query: ViewQuery,
        render: impl Fn(Answered) -> Result<Value, ApiError> + Send + Sync + 'static,
    ) -> ViewRead {
        ViewRead {
            query,
            render: Arc::new(render),
        }
    }

    /// Reads the view at the latest complete as_of and answers with its body.
    pub async fn serve(self, client: &Client) -> Result<Response, ApiError> {
        let answered = peek(client, self.query).await?;
        Ok(json_reply(&(self.render)(answered)?))
    }
}

/// Lists are read one row past their limit: a row beyond it means the list was cut, which
/// the answer says with `truncated: true` (docs/http-api.md, "Lists").
pub(crate) fn one_more(limit: usize) -> usize {
    limit.saturating_add(1)
}

/// Cuts `rows` (read with [`one_more`]) to `limit`; true when there were more.
pub(crate) fn cut<T>(rows: &mut Vec<T>, limit: usize) -> bool {
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    truncated
}

fn json_reply(value: &Value) -> Response {
    warp::reply::json(value).into_response()
}

fn window_json(name: &str, length: u64, as_of: u64) -> Value {
    json!({ "name": name, "from": as_of.saturating_sub(length), "to": as_of })
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
    ViewRead::new(ViewQuery::Status, move |answered| {
        let Answer::Status(status) = answered.answer else {
            return Err(ApiError::internal("unexpected answer to a status peek"));
        };
        let mut value =
            serde_json::to_value(&status).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("process".into(), json!(process));
            object.insert("windows".into(), json!(windows));
            object.insert("tick_ms".into(), json!(tick));
            object.insert("source".into(), json!(source));
            object.insert("version".into(), json!(crate::VERSION));
        }
        Ok(value)
    })
}

/// `?limit=`: the counts since the first run (a checkpoint carries them over restarts)
/// and the most recent letters this process has seen since it started (`rows_since`):
/// the letters themselves are kept in memory; before a restart they are in the
/// dead-letter topic or its spill file (docs/operations.md).
async fn dead_letters(client: Client, raw: String, started: u64) -> Result<Response, ApiError> {
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
        "rows_since": started,
        "rows": letters,
    })))
}

async fn edges(client: Client, raw: String) -> Result<Response, ApiError> {
    edges_read(&client, &raw)?.serve(&client).await
}

/// `?src=&dst=&window=&limit=`: the heaviest edges of a window.
pub(crate) fn edges_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    let params = Params::parse(raw, &["src", "dst", "window", "limit"])?;
    let window = params.window(client.config())?;
    let filter = EdgeFilter {
        src: params.ip("src")?,
        dst: params.ip("dst")?,
    };
    let limit = params.limit(100, 10_000)?;
    let query = ViewQuery::Edges {
        window: window.length,
        filter,
        limit: one_more(limit),
    };
    Ok(ViewRead::new(query, move |answered| {
        let Answer::Edges(mut rows) = answered.answer else {
            return Err(ApiError::internal("unexpected answer to an edge peek"));
        };
        let truncated = cut(&mut rows, limit);
        Ok(json!({
            "as_of": answered.as_of,
            "window": window_json(&window.name, window.length, answered.as_of),
            "rows": rows,
            "truncated": truncated,
        }))
    }))
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
            limit: one_more(limit),
        },
    )
    .await?;
    let Answer::Host(mut host) = answered.answer else {
        return Err(ApiError::internal("unexpected answer to a host peek"));
    };
    // As for a host's segment: a host the window has not seen is not found, not zeros.
    if host.summary.connections_out == 0 && host.summary.connections_in == 0 {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_host".into(),
            message: format!(
                "host {ip} has no connections in the {} window as of {}",
                window.name, answered.as_of
            ),
        });
    }
    let truncated_out = cut(&mut host.out_edges, limit);
    let truncated_in = cut(&mut host.in_edges, limit);
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "window": window_json(&window.name, window.length, answered.as_of),
        "host": host.summary,
        "out_edges": host.out_edges,
        "in_edges": host.in_edges,
        "truncated": truncated_out || truncated_in,
    })))
}
