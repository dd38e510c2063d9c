//! The HTTP API v1 (docs/design.md §6, docs/http-api.md) and the dashboard, served by warp
//! on a tokio runtime of its own, apart from the timely workers.
//!
//! Every view read becomes a peek through [`flowsight_engine::Client`]; the blocking wait
//! for the gathered answer runs on tokio's blocking pool.

mod dashboard;
mod error;
mod graph;
mod metrics;
mod ops;
mod params;
mod queries;
mod risk;
mod segments;
mod serve;
mod subscribe;

pub use serve::serve;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use flowsight_engine::{Answered, Client, Hub, PeekError, View};
use flowsight_queries::WindowSpec;
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use error::{ApiError, ErrorCode};

/// The largest request body accepted on any route.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// How long a request waits for the workers' answer.
pub(crate) const PEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// All routes, with errors rendered as `{"error": {"code", "message"}}`; `hub` holds the
/// process's subscriptions (close it to end their streams when the server stops). Each
/// area of the API lists its own routes in its module; a known path asked with a method
/// it does not answer is a 405 (`wrong_method`).
pub fn routes(
    client: Client,
    hub: Arc<Hub>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
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
    let routes = join(vec![
        ops::routes(&client, &hub),
        graph::routes(&client),
        risk::routes(&client),
        segments::routes(&client),
        queries::routes(&client),
        subscribe::routes(&client, &hub),
        dashboard::routes(),
        wrong_method(),
    ]);
    body_limit
        .and(routes)
        .map(|(), reply: Response| reply)
        .recover(error::recover)
        .unify()
        .with(warp::log("flowsight::http"))
}

/// The routes of one area, boxed: the filters a route chain builds nest their types one
/// level per route, and boxing each keeps release builds within the compiler's limits.
pub(crate) type Routes = BoxedFilter<(Response,)>;

/// Joins routes, tried in order, boxing after each join (see [`Routes`]).
pub(crate) fn join(routes: Vec<Routes>) -> Routes {
    let mut routes = routes.into_iter();
    let first = routes.next().expect("at least one route");
    routes.fold(first, |joined, route| joined.or(route).unify().boxed())
}

/// A read route: `path` asked with GET or HEAD, answered by `handler(client, query string)`.
pub(crate) fn get<P, H, F>(path: P, client: &Client, handler: H) -> Routes
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(Client, String) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    path.and(read())
        .and(raw_query())
        .and(with(client.clone()))
        .and_then(move |query: String, client: Client| {
            let answer = handler(client, query);
            async move { respond(answer.await) }
        })
        .boxed()
}

/// A read route whose path holds one value (an address, an id, a name), answered by
/// `handler(client, value, query string)`.
pub(crate) fn get_one<P, H, F>(path: P, client: &Client, handler: H) -> Routes
where
    P: Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(Client, String, String) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    path.and(read())
        .and(raw_query())
        .and(with(client.clone()))
        .and_then(move |value: String, query: String, client: Client| {
            let answer = handler(client, value, query);
            async move { respond(answer.await) }
        })
        .boxed()
}

/// A filter that hands every request a clone of `value` (the client, the hub).
pub(crate) fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

/// The raw query string, empty when there is none.
pub(crate) fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// GET, and HEAD (health checkers and link checkers ask with HEAD; the answer is the
/// GET's without its body).
pub(crate) fn read() -> impl Filter<Extract = (), Error = Rejection> + Copy {
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
fn wrong_method() -> Routes {
    warp::path::full()
        .and(warp::method())
        .and_then(
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
                    code: ErrorCode::MethodNotAllowed,
                    message: format!("{} answers {allowed}, not {method}", path.as_str()),
                };
                Ok(
                    warp::reply::with_header(error.into_response(), "allow", allowed)
                        .into_response(),
                )
            },
        )
        .boxed()
}

pub(crate) fn respond(result: Result<Response, ApiError>) -> Result<Response, Rejection> {
    Ok(result.unwrap_or_else(|e| e.into_response()))
}

/// Reads a view on the blocking pool: its answer, typed.
pub(crate) async fn peek<V: View>(client: &Client, view: V) -> Result<Answered<V::Rows>, ApiError> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || client.peek(view, PEEK_TIMEOUT))
        .await
        .map_err(|e| ApiError::internal(format!("peek task failed: {e}")))?
        .map_err(ApiError::from)
}

/// One view read: what to ask the workers, and how to turn their answer into the JSON
/// body. A `GET` serves it once; a subscription at every complete tick.
pub(crate) struct ViewRead {
    /// What subscriptions to the same read share: the view's name and its question.
    pub key: String,
    read: Arc<ReadFn>,
}

/// Reads a view at an as_of (or the latest complete one) and renders the body.
type ReadFn = dyn Fn(&Client, Option<u64>) -> Result<Answered<Value>, ReadFailure> + Send + Sync;

/// Why a view read gave no body: the peek failed, or its answer could not be rendered.
pub(crate) enum ReadFailure {
    Peek(PeekError),
    Render(ApiError),
}

impl From<ReadFailure> for ApiError {
    fn from(failure: ReadFailure) -> ApiError {
        match failure {
            ReadFailure::Peek(e) => ApiError::from(e),
            ReadFailure::Render(e) => e,
        }
    }
}

impl ViewRead {
    /// A read of `view` whose answer `render` turns into the body.
    pub fn new<V: View>(
        view: V,
        render: impl Fn(Answered<V::Rows>) -> Result<Value, ApiError> + Send + Sync + 'static,
    ) -> ViewRead {
        ViewRead {
            key: format!("{}:{view:?}", V::NAME),
            read: Arc::new(move |client, as_of| {
                let answered = client
                    .peek_at(view.clone(), as_of, PEEK_TIMEOUT)
                    .map_err(ReadFailure::Peek)?;
                let as_of = answered.as_of;
                let body = render(answered).map_err(ReadFailure::Render)?;
                Ok(Answered {
                    as_of,
                    answer: body,
                })
            }),
        }
    }

    /// A read that is not a peek of one view: `read` answers for the latest as_of (the
    /// `as_of` asked for is a hint it may ignore). `key` names it for subscriptions.
    pub fn from_fn(
        key: &str,
        read: impl Fn(&Client) -> Result<Answered<Value>, ReadFailure> + Send + Sync + 'static,
    ) -> ViewRead {
        ViewRead {
            key: key.to_string(),
            read: Arc::new(move |client, _as_of| read(client)),
        }
    }

    /// Reads the view at `as_of` (or the latest complete one), blocking.
    pub fn read(
        &self,
        client: &Client,
        as_of: Option<u64>,
    ) -> Result<Answered<Value>, ReadFailure> {
        (self.read)(client, as_of)
    }

    /// Reads the view at the latest complete as_of, on the blocking pool.
    pub async fn body(self, client: &Client) -> Result<Value, ApiError> {
        let client = client.clone();
        let answered = tokio::task::spawn_blocking(move || self.read(&client, None))
            .await
            .map_err(|e| ApiError::internal(format!("peek task failed: {e}")))??;
        Ok(answered.answer)
    }

    /// Reads the view at the latest complete as_of and answers with its body.
    pub async fn serve(self, client: &Client) -> Result<Response, ApiError> {
        Ok(json_reply(&self.body(client).await?))
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

pub(crate) fn json_reply(value: &Value) -> Response {
    warp::reply::json(value).into_response()
}

/// The body of a list read one row past `limit` ([`one_more`]): its `as_of`, the window it
/// covers, the rows cut to `limit`, and whether there were more (`truncated`).
pub(crate) fn list_body<T: serde::Serialize>(
    as_of: u64,
    window: &WindowSpec,
    mut rows: Vec<T>,
    limit: usize,
) -> Value {
    let truncated = cut(&mut rows, limit);
    json!({
        "as_of": as_of,
        "window": window_json(window, as_of),
        "rows": rows,
        "truncated": truncated,
    })
}

/// A window as answers show it: its name, and the timestamps `from ≤ ts < to` it holds at
/// `as_of` (`from` is a pane boundary, docs/design.md §3).
pub(crate) fn window_json(window: &WindowSpec, as_of: u64) -> Value {
    json!({ "name": window.name, "from": window.start(as_of), "to": as_of })
}
