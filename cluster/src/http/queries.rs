//! The registered-query routes: `POST /v1/queries`, `GET /v1/queries`,
//! `GET /v1/queries/{name}`, `DELETE /v1/queries/{name}` and
//! `GET /v1/queries/{name}/results` (docs/queries.md).

use flowsight_engine::views::registered::QueryResults;
use flowsight_engine::{Client, QueryDefinition, QueryError, QueryInfo, QueryState};
use flowsight_queries::plan::Plan;
use flowsight_queries::registered::QueryResult;
use flowsight_queries::sql;
use flowsight_queries::WindowSpec;
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::params::Params;
use super::ErrorCode;
use super::{
    get, get_one, json_reply, respond, window_json, with, ApiError, Routes, ViewRead,
    MAX_BODY_BYTES,
};

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let message = error.to_string();
        let (status, code) = match error {
            QueryError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, ErrorCode::Plan(code)),
            QueryError::BadName(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadName),
            QueryError::Duplicate(_) => (StatusCode::CONFLICT, ErrorCode::DuplicateQuery),
            QueryError::TooMany(_) => (StatusCode::CONFLICT, ErrorCode::TooManyQueries),
            QueryError::Unknown(_) => (StatusCode::NOT_FOUND, ErrorCode::UnknownQuery),
            QueryError::Failed { .. } => (StatusCode::CONFLICT, ErrorCode::QueryFailed),
            QueryError::Disabled => (StatusCode::NOT_FOUND, ErrorCode::ViewDisabled),
            QueryError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::EngineStopped),
            QueryError::Pending(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::CommandPending),
        };
        ApiError {
            status,
            code,
            message,
        }
    }
}

/// A registered query as listed and shown.
fn query_json(info: &QueryInfo) -> Value {
    let mut value = json!({
        "name": info.definition.name,
        "sql": info.definition.sql_text(),
        "plan": info.definition.plan,
        "window": info.plan.window_name,
        "columns": info.plan.columns,
        "registered_at": info.registered_at,
    });
    if let (Some(object), Ok(Value::Object(state))) =
        (value.as_object_mut(), serde_json::to_value(&info.state))
    {
        object.extend(state);
    }
    value
}

/// Reads the body of a registration: `{"name", "sql"}` or `{"name", "plan"}`.
fn definition(body: &[u8]) -> Result<QueryDefinition, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(ErrorCode::BadJson, format!("the body is not JSON: {e}"))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            ErrorCode::BadDefinition,
            r#"the body must be an object: {"name": ..., "sql": ...} or {"name": ..., "plan": {...}}"#,
        ));
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "sql" | "plan"))
    {
        return Err(ApiError::bad_request(
            ErrorCode::BadDefinition,
            format!("unknown field {other:?}: a query has a name and either sql or plan"),
        ));
    }
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::BadDefinition,
                "the query needs a \"name\" (a string)",
            ))
        }
    };
    match (fields.remove("sql"), fields.remove("plan")) {
        (Some(Value::String(text)), None) => {
            let plan = sql::parse(&text)?;
            Ok(QueryDefinition {
                name,
                sql: Some(text),
                plan,
            })
        }
        (None, Some(plan)) => {
            let plan: Plan = serde_json::from_value(plan).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::Plan(flowsight_queries::plan::PlanErrorCode::BadPlan),
                    format!("the plan is not valid: {e}"),
                )
            })?;
            Ok(QueryDefinition {
                name,
                sql: None,
                plan,
            })
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            ErrorCode::BadDefinition,
            "give either \"sql\" or \"plan\", not both",
        )),
        (Some(_), None) => Err(ApiError::bad_request(
            ErrorCode::BadDefinition,
            "\"sql\" must be a string",
        )),
        (None, None) => Err(ApiError::bad_request(
            ErrorCode::BadDefinition,
            "the query needs \"sql\" (a string) or \"plan\" (an object)",
        )),
    }
}

impl From<flowsight_queries::plan::PlanError> for ApiError {
    fn from(error: flowsight_queries::plan::PlanError) -> Self {
        ApiError::bad_request(ErrorCode::Plan(error.code), error.message)
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))
}

/// The registered-query routes.
pub(super) fn routes(client: &Client) -> Routes {
    let register_query = warp::path!("v1" / "queries")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .and(with(client.clone()))
        .and_then(|body, client: Client| async move { respond(register(client, body).await) })
        .boxed();
    let list_queries = get(warp::path!("v1" / "queries"), client, list);
    let show_query = get_one(warp::path!("v1" / "queries" / String), client, show);
    let drop_query = warp::path!("v1" / "queries" / String)
        .and(warp::delete())
        .and(with(client.clone()))
        .and_then(|name: String, client: Client| async move { respond(drop(client, name).await) })
        .boxed();
    let query_results = get_one(
        warp::path!("v1" / "queries" / String / "results"),
        client,
        results,
    );
    super::join(vec![
        register_query,
        list_queries,
        show_query,
        drop_query,
        query_results,
    ])
}

/// `POST /v1/queries`: registers a query; 201 with the query.
pub async fn register(client: Client, body: bytes::Bytes) -> Result<Response, ApiError> {
    let definition = definition(&body)?;
    let info = blocking(move || client.register_query(definition)).await??;
    Ok(
        warp::reply::with_status(json_reply(&query_json(&info)), StatusCode::CREATED)
            .into_response(),
    )
}

/// `GET /v1/queries`: every registered query, by name.
pub async fn list(client: Client, raw: String) -> Result<Response, ApiError> {
    Params::parse(&raw, &[])?;
    let rows: Vec<Value> = client.queries().iter().map(query_json).collect();
    Ok(json_reply(&json!({
        "max_queries": client.config().queries.max_queries,
        "rows": rows,
    })))
}

fn known(client: &Client, name: &str) -> Result<QueryInfo, ApiError> {
    client
        .query(name)
        .ok_or_else(|| QueryError::Unknown(name.to_string()).into())
}

fn decoded(name: &str) -> String {
    percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .into_owned()
}

/// `GET /v1/queries/{name}`: the SQL, the plan and the state of one query.
pub async fn show(client: Client, name: String, raw: String) -> Result<Response, ApiError> {
    Params::parse(&raw, &[])?;
    let info = known(&client, &decoded(&name))?;
    Ok(json_reply(&query_json(&info)))
}

/// `DELETE /v1/queries/{name}`: drops a query and frees its dataflow.
pub async fn drop(client: Client, name: String) -> Result<Response, ApiError> {
    let name = decoded(&name);
    let dropped = name.clone();
    blocking(move || client.drop_query(&name)).await??;
    Ok(json_reply(&json!({ "dropped": dropped })))
}

/// `GET /v1/queries/{name}/results?limit=`: the query's rows at the latest complete as_of.
pub async fn results(client: Client, name: String, raw: String) -> Result<Response, ApiError> {
    results_read(&client, &name, &raw)?.serve(&client).await
}

/// `?limit=`: a registered query's result rows, read from the generation registered now
/// (a query dropped and registered again under the same name is another view).
pub(crate) fn results_read(client: &Client, name: &str, raw: &str) -> Result<ViewRead, ApiError> {
    let params = Params::parse(raw, &["limit"])?;
    let limit = params.limit(1000, 100_000)?;
    let name = decoded(name);
    let info = known(client, &name)?;
    if let QueryState::Failed { reason } = info.state {
        return Err(QueryError::Failed { name, reason }.into());
    }
    let view = QueryResults {
        name,
        generation: info.generation,
        limit,
    };
    let window = WindowSpec {
        name: info.plan.window_name.clone(),
        length: info.plan.window,
        pane: Some(client.config().windows.pane(info.plan.window)),
    };
    Ok(ViewRead::new(view, move |answered| {
        Ok(results_body(
            &info,
            &window,
            answered.as_of,
            answered.answer?,
        ))
    }))
}

/// A query's window: its bounds at `as_of`, and `since`, the time it was registered at: it
/// counts the records placed from then on, so its window is full once `to − since` has
/// reached the window's length (docs/queries.md).
fn query_window_json(window: &WindowSpec, as_of: u64, registered_at: u64) -> Value {
    let mut json = window_json(window, as_of);
    json["since"] = json!(registered_at);
    json
}

fn results_body(info: &QueryInfo, window: &WindowSpec, as_of: u64, result: QueryResult) -> Value {
    let rows: Vec<Value> = result
        .rows
        .iter()
        .map(|row| {
            let object: Map<String, Value> = result
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| {
                    (
                        column.clone(),
                        serde_json::to_value(value).unwrap_or(Value::Null),
                    )
                })
                .collect();
            Value::Object(object)
        })
        .collect();
    json!({
        "name": info.definition.name,
        "as_of": as_of,
        "window": query_window_json(window, as_of, info.registered_at),
        "columns": result.columns,
        "truncated": (rows.len() as u64) < result.total,
        "rows": rows,
        "total": result.total,
    })
}
