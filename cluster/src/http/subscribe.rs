//! `GET /v1/subscribe/{view}`: a view's changes as server-sent events.
//!
//! The view and its parameters are those of the view's `GET` route; the engine's
//! [`Hub`] runs one feed per distinct view read and this module turns each client's share
//! of it into an event stream. Events: `snapshot` (`{as_of, window?, columns?, rows}`),
//! `changes` (`{as_of, changes: [{row, diff}]}`), `progress` (`{as_of}`), `overflow`
//! (followed by a snapshot) and `error` (the stream ends). Every event's id is its as_of;
//! a client reconnecting with `Last-Event-ID` resumes after it when the feed still holds
//! the events since.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use flowsight_engine::subscribe::{Event, ReadError, Subscription};
use flowsight_engine::{Client, Hub, PeekError, ViewReader, ViewRows};
use flowsight_operators::Millis;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::graph::{self, edges_read};
use super::ops::status_read;
use super::ErrorCode;
use super::{params::Params, PEEK_TIMEOUT};
use super::{
    queries, raw_query, respond, risk, segments, with, ApiError, ReadFailure, Routes, ViewRead,
};

/// The views a client can subscribe to, as listed in errors.
const VIEWS: &str =
    "status, edges, hosts, risks, severity, anomalies, segments, policy, queries/{name}";

/// Fields of a view's body that a snapshot carries; the others change at every read and
/// would be stale after it.
const META: &[&str] = &["name", "window", "columns", "severity", "kind"];

/// The most subscriptions one multiplexed stream may carry.
const MAX_STREAMS: usize = 16;

/// `GET /v1/subscribe/{view}`: server-sent events.
pub(super) fn routes(client: &Client, hub: &Arc<Hub>) -> Routes {
    let subscribe = warp::path!("v1" / "subscribe" / ..)
        .and(warp::path::tail())
        .and(warp::get())
        .and(raw_query())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with(Arc::clone(hub)))
        .and(with(client.clone()))
        .and_then(
            |view: warp::path::Tail,
             q: String,
             last: Option<String>,
             hub: Arc<Hub>,
             client: Client| async move {
                respond(subscribe(hub, client, view.as_str().to_string(), q, last).await)
            },
        )
        .boxed();
    super::join(vec![subscribe])
}

/// Opens a subscription to `view` (the path after `/v1/subscribe/`) with the query
/// string `raw`; with no view, several subscriptions on one stream (see
/// [`subscribe_many`]).
pub async fn subscribe(
    hub: Arc<Hub>,
    client: Client,
    view: String,
    raw: String,
    last_event_id: Option<String>,
) -> Result<Response, ApiError> {
    check_running(&client)?;
    if view.trim_matches('/').is_empty() {
        return subscribe_many(hub, client, raw, last_event_id);
    }
    // An id that is not one of ours (or absent) gets a snapshot.
    let resume_after = last_event_id.and_then(|id| id.trim().parse::<Millis>().ok());
    let subscription = open(&hub, &client, &view, &raw, resume_after)?;
    let stream = events(subscription).map(|event| {
        Ok::<_, Infallible>(
            warp::sse::Event::default()
                .id(event.id.to_string())
                .event(event.kind)
                .data(&*event.data),
        )
    });
    Ok(sse_reply(stream))
}

/// `GET /v1/subscribe?risks=risks%3Fwindow%3D30m&st=status`: several subscriptions on one
/// stream, each named by the client (the parameter's name) and given as the path and
/// query string it would have after `/v1/subscribe/`. Every event's data carries its
/// `subscription` name; its id lists the as_of of the last event of every subscription
/// (`risks=…,st=…`), so that a reconnecting client resumes each one. A browser allows a
/// handful of connections per host: a page needs one stream, not one per view.
fn subscribe_many(
    hub: Arc<Hub>,
    client: Client,
    raw: String,
    last_event_id: Option<String>,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("cannot parse the query string: {e}"),
        )
    })?;
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::NoSubscription,
            format!(
                "name at least one view: /v1/subscribe/{{view}}, or /v1/subscribe?NAME=VIEW&... \
                 with VIEW one of {VIEWS} and its query string (URL-encoded)"
            ),
        ));
    }
    if pairs.len() > MAX_STREAMS {
        return Err(ApiError::bad_request(
            ErrorCode::TooManySubscriptions,
            format!(
                "at most {MAX_STREAMS} subscriptions share one stream, got {}",
                pairs.len()
            ),
        ));
    }
    let resume = resume_points(last_event_id.as_deref());
    let mut streams = Vec::with_capacity(pairs.len());
    let mut names = std::collections::BTreeSet::new();
    for (name, spec) in pairs {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ApiError::bad_request(
                ErrorCode::BadSubscriptionName,
                format!("subscription names are 1 to 32 letters, digits, - or _; got {name:?}"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(ApiError::bad_request(
                ErrorCode::RepeatedParameter,
                format!("subscription {name:?} is given twice"),
            ));
        }
        let (view, query) = spec.split_once('?').unwrap_or((&spec, ""));
        let subscription =
            open(&hub, &client, view, query, resume.get(&name).copied()).map_err(|mut e| {
                e.message = format!("subscription {name:?} ({spec}): {}", e.message);
                e
            })?;
        streams.push(events(subscription).map(move |event| (name.clone(), event)));
    }
    let mut cursors = BTreeMap::new();
    let stream = futures_util::stream::select_all(streams).map(move |(name, event)| {
        cursors.insert(name.clone(), event.id);
        let id: Vec<String> = cursors.iter().map(|(n, t)| format!("{n}={t}")).collect();
        // `{"subscription":"name",` and the event's own fields.
        let fields = event.data.strip_prefix('{').unwrap_or("}");
        let separator = if fields.starts_with('}') { "" } else { "," };
        let data = format!(
            "{{\"subscription\":{}{separator}{fields}",
            Value::String(name)
        );
        Ok::<_, Infallible>(
            warp::sse::Event::default()
                .id(id.join(","))
                .event(event.kind)
                .data(data),
        )
    });
    Ok(sse_reply(stream))
}

/// `name=as_of,name=as_of` as sent in a multiplexed stream's ids.
fn resume_points(last_event_id: Option<&str>) -> BTreeMap<String, Millis> {
    last_event_id
        .unwrap_or("")
        .split(',')
        .filter_map(|pair| {
            let (name, as_of) = pair.trim().split_once('=')?;
            Some((name.to_string(), as_of.parse().ok()?))
        })
        .collect()
}

fn check_running(client: &Client) -> Result<(), ApiError> {
    if let Some(failure) = client.failure() {
        return Err(PeekError::Failed(failure).into());
    }
    if client.is_shutting_down() {
        return Err(PeekError::ShuttingDown.into());
    }
    Ok(())
}

/// Attaches a client to the feed of one view read, starting the feed if needed.
fn open(
    hub: &Arc<Hub>,
    client: &Client,
    view: &str,
    raw: &str,
    resume_after: Option<Millis>,
) -> Result<Subscription, ApiError> {
    let (shape, read) = view_read(client, view, raw)?;
    // The view's question, with every default filled in, names the read exactly.
    let key = read.key.clone();
    let client = client.clone();
    let reader = move || -> Box<dyn ViewReader> {
        Box::new(PeekReader {
            client,
            read,
            shape,
        })
    };
    Ok(hub.subscribe(&key, reader, resume_after))
}

/// A subscription's events, one at a time.
fn events(subscription: Subscription) -> impl Stream<Item = Event> + Send + Unpin {
    Box::pin(futures_util::stream::unfold(
        (subscription, VecDeque::<Event>::new()),
        |(mut subscription, mut pending)| async move {
            if pending.is_empty() {
                pending.extend(subscription.next().await?);
            }
            let event = pending.pop_front()?;
            Some((event, (subscription, pending)))
        },
    ))
}

fn sse_reply(
    stream: impl Stream<Item = Result<warp::sse::Event, Infallible>> + Send + 'static,
) -> Response {
    let keep_alive = warp::sse::keep_alive().interval(Duration::from_secs(15));
    let stream = sync_wrapper::SyncStream::new(stream);
    warp::sse::reply(keep_alive.stream(stream)).into_response()
}

/// How a view's body becomes rows.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// The body's `rows`.
    Rows,
    /// The segments' `rows`, then the hubs' `hub_rows`, each marked `"hub": true` with its
    /// id `hub:<ip>`.
    Segments,
    /// The whole status body, summed up as one row.
    Status,
}

fn view_read(client: &Client, view: &str, raw: &str) -> Result<(Shape, ViewRead), ApiError> {
    let view = percent_encoding::percent_decode_str(view).decode_utf8_lossy();
    let view = view.trim_end_matches('/');
    Ok(match view {
        "status" => {
            Params::parse(raw, &[])?;
            (Shape::Status, status_read(client))
        }
        "edges" => (Shape::Rows, edges_read(client, raw)?),
        "hosts" => (Shape::Rows, graph::hosts_read(client, raw)?),
        "risks" => (Shape::Rows, risk::risks_read(client, raw)?),
        "severity" => (Shape::Rows, risk::severity_read(client, raw)?),
        "anomalies" => (Shape::Rows, risk::anomalies_read(client, raw)?),
        "segments" => (Shape::Segments, segments::list_read(client, raw)?),
        "policy" => {
            let params = Params::parse(raw, &["from", "to", "order", "limit"])?;
            (Shape::Rows, segments::policy_read(client, &params)?)
        }
        other => match other.strip_prefix("queries/") {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                (Shape::Rows, queries::results_read(client, name, raw)?)
            }
            _ => {
                return Err(ApiError {
                    status: StatusCode::NOT_FOUND,
                    code: ErrorCode::UnknownView,
                    message: format!("no view {other:?} to subscribe to; the views are {VIEWS}"),
                })
            }
        },
    })
}

/// Reads a view with a peek at each as_of the feed asks for.
struct PeekReader {
    client: Client,
    read: ViewRead,
    shape: Shape,
}

impl ViewReader for PeekReader {
    fn read(&self, as_of: Millis) -> Result<ViewRows, ReadError> {
        let answered = match self.read.read(&self.client, Some(as_of)) {
            Ok(answered) => answered,
            Err(ReadFailure::Peek(PeekError::CatchingUp { .. })) => return Err(ReadError::NotYet),
            Err(ReadFailure::Peek(PeekError::Timeout(_))) => {
                return Err(ReadError::Retry(format!(
                    "the workers did not answer within {PEEK_TIMEOUT:?}"
                )))
            }
            Err(other) => {
                let error = ApiError::from(other);
                return Err(ReadError::Ended {
                    code: error.code.as_str().to_string(),
                    message: error.message,
                });
            }
        };
        Ok(split(self.shape, answered.as_of, answered.answer))
    }
}

/// Splits a view's body into the rows that are diffed and what a snapshot carries.
fn split(shape: Shape, as_of: Millis, body: Value) -> ViewRows {
    let Value::Object(mut body) = body else {
        return ViewRows {
            as_of,
            meta: Map::new(),
            rows: Vec::new(),
        };
    };
    let mut rows: Vec<Value> = match shape {
        Shape::Status => vec![status_row(&body)],
        Shape::Rows | Shape::Segments => match body.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        },
    };
    if let (Shape::Segments, Some(Value::Array(hubs))) = (shape, body.remove("hub_rows")) {
        rows.extend(hubs.into_iter().map(|mut hub| {
            if let Some(fields) = hub.as_object_mut() {
                let id = fields
                    .get("ip")
                    .and_then(Value::as_str)
                    .map(|ip| format!("hub:{ip}"));
                fields.insert("hub".into(), Value::Bool(true));
                fields.insert("id".into(), json!(id));
            }
            hub
        }));
    }
    let meta = body
        .into_iter()
        .filter(|(key, _)| META.contains(&key.as_str()))
        .collect();
    ViewRows {
        as_of,
        meta,
        rows: rows.iter().map(Value::to_string).collect(),
    }
}

/// The status as one row: what a dashboard shows of it.
fn status_row(status: &Map<String, Value>) -> Value {
    let lags: Vec<u64> = status
        .get("partitions")
        .and_then(Value::as_array)
        .map(|partitions| {
            partitions
                .iter()
                .filter_map(|p| p.get("lag").and_then(Value::as_u64))
                .collect()
        })
        .unwrap_or_default();
    let field = |key: &str| status.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "records": field("records"),
        "late_records": field("late_records"),
        "dead_letters": field("dead_letters"),
        "lag": (!lags.is_empty()).then(|| lags.iter().sum::<u64>()),
        "frontier": field("frontier"),
        "workers": field("workers"),
        "processes": field("processes"),
        "catching_up": field("catching_up"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_bodies_become_segment_rows_then_hub_rows() {
        let body = json!({
            "as_of": 5000,
            "window": {"name": "24h", "from": 0, "to": 5000},
            "segments": 1, "hubs": 1,
            "rows": [{"id": "10.0.0.1", "size": 2, "members": []}],
            "hub_rows": [{"ip": "10.0.0.53", "peers": 60, "connections": 900}],
        });
        let rows = split(Shape::Segments, 5000, body);
        assert_eq!(
            rows.rows,
            vec![
                r#"{"id":"10.0.0.1","members":[],"size":2}"#.to_string(),
                r#"{"connections":900,"hub":true,"id":"hub:10.0.0.53","ip":"10.0.0.53","peers":60}"#
                    .to_string(),
            ]
        );
        assert_eq!(
            Value::Object(rows.meta),
            json!({"window": {"name": "24h", "from": 0, "to": 5000}}),
            "counts that change at every read stay out of the snapshot's fields"
        );
    }

    #[test]
    fn the_status_row_sums_the_known_lags() {
        let body = json!({
            "as_of": 1, "records": 10, "late_records": 1, "dead_letters": 2, "frontier": 2000,
            "workers": 2, "processes": 1, "catching_up": false,
            "partitions": [{"lag": 3}, {"lag": null}, {"lag": 4}],
        });
        let rows = split(Shape::Status, 1, body);
        let row: Value = serde_json::from_str(&rows.rows[0]).unwrap();
        assert_eq!(row["lag"], 7);
        assert_eq!(row["records"], 10);
    }
}
