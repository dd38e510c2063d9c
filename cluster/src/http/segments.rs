//! The segmentation routes: `/v1/segments`, `/v1/segments/{id}`, `/v1/hosts/{ip}/segment`
//! and `/v1/policy` (docs/segments.md).

use std::net::IpAddr;

use flowsight_engine::views::segments::{HostSegment, Policy, Segment, Segments};
use flowsight_engine::Client;
use flowsight_queries::segments::{Label, PolicyFilter, PolicyOrder};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::params::{self, Params};
use super::ErrorCode;
use super::{
    get, get_one, json_reply, list_body, one_more, peek, window_json, ApiError, Routes, ViewRead,
};

/// The segmentation routes answer 404 `view_disabled` when the engine runs without them.
pub(super) fn require_segment_views(client: &Client) -> Result<(), ApiError> {
    if client.config().segment_views {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        code: ErrorCode::ViewDisabled,
        message: "the segmentation views are off (the engine runs with --no-segment-views)".into(),
    })
}

/// The window every segmentation answer is over: the longest.
fn segment_window(client: &Client, as_of: u64) -> serde_json::Value {
    let longest = client.config().windows.longest();
    window_json(longest, as_of)
}

fn parse_label(key: &str, value: &str) -> Result<Label, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::BadSegment,
            format!("{key} must be an address or hub:<address>, got {value:?}"),
        )
    })
}

/// The segmentation routes.
pub(super) fn routes(client: &Client) -> Routes {
    let segment_list = get(warp::path!("v1" / "segments"), client, list);
    let segment = get_one(warp::path!("v1" / "segments" / String), client, segment);
    let host_segment = get_one(
        warp::path!("v1" / "hosts" / String / "segment"),
        client,
        host,
    );
    let policy = get(warp::path!("v1" / "policy"), client, policy);
    super::join(vec![segment_list, segment, host_segment, policy])
}

/// `GET /v1/segments?limit=&members=`: largest segments first, and the hubs.
pub async fn list(client: Client, raw: String) -> Result<Response, ApiError> {
    list_read(&client, &raw)?.serve(&client).await
}

pub(crate) fn list_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    require_segment_views(client)?;
    let params = Params::parse(raw, &["limit", "members"])?;
    let limit = params.limit(100, 10_000)?;
    let members = params.count("members", ErrorCode::BadMembers, 5, 1_000)?;
    let longest = client.config().windows.longest().clone();
    Ok(ViewRead::new(
        Segments { limit, members },
        move |answered| {
            let list = answered.answer;
            // `segments` and `hubs` count them all; the rows stop at the limit.
            let truncated = (list.rows.len() as u64) < list.segments
                || (list.hub_rows.len() as u64) < list.hubs;
            Ok(json!({
                "as_of": answered.as_of,
                "window": window_json(&longest, answered.as_of),
                "segments": list.segments,
                "hubs": list.hubs,
                "rows": list.rows,
                "hub_rows": list.hub_rows,
                "truncated": truncated,
            }))
        },
    ))
}

/// `GET /v1/segments/{id}?limit=`: one segment (or hub) with its members and edges.
pub async fn segment(client: Client, id: String, raw: String) -> Result<Response, ApiError> {
    require_segment_views(&client)?;
    let id = percent_encoding::percent_decode_str(&id).decode_utf8_lossy();
    let id = parse_label("a segment id", &id)?;
    let params = Params::parse(&raw, &["limit"])?;
    let limit = params.limit(1000, 100_000)?;
    let answered = peek(&client, Segment { id, limit }).await?;
    let Some(detail) = answered.answer else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::UnknownSegment,
            message: format!(
                "no segment {id} as of {}: segment ids are the smallest member's address \
                 (or hub:<address>), and change when segments merge or split",
                answered.as_of
            ),
        });
    };
    let mut body = serde_json::to_value(&detail).map_err(|e| ApiError::internal(e.to_string()))?;
    body["as_of"] = json!(answered.as_of);
    body["window"] = segment_window(&client, answered.as_of);
    Ok(json_reply(&body))
}

/// `GET /v1/hosts/{ip}/segment`: which segment a host is in, or that it is a hub.
pub async fn host(client: Client, ip: String, raw: String) -> Result<Response, ApiError> {
    require_segment_views(&client)?;
    let ip = percent_encoding::percent_decode_str(&ip).decode_utf8_lossy();
    let ip: IpAddr = params::parse_ip("ip", &ip)?;
    Params::parse(&raw, &[])?;
    let answered = peek(&client, HostSegment { ip }).await?;
    let Some(host) = answered.answer else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::UnknownHost,
            message: format!(
                "host {ip} has no connections in the window as of {}",
                answered.as_of
            ),
        });
    };
    Ok(json_reply(&json!({
        "as_of": answered.as_of,
        "window": segment_window(&client, answered.as_of),
        "ip": host.ip,
        "segment": host.segment.to_string(),
        "hub": host.hub,
    })))
}

/// `GET /v1/policy?from=&to=&order=key|count&limit=&format=json|csv`: the proposed
/// allow-list.
pub async fn policy(client: Client, raw: String) -> Result<Response, ApiError> {
    let params = Params::parse(&raw, &["from", "to", "order", "limit", "format"])?;
    let csv = match params.text("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::BadFormat,
                format!("format must be json or csv, got {other:?}"),
            ))
        }
    };
    let read = policy_read(&client, &params)?;
    if !csv {
        return read.serve(&client).await;
    }
    // The CSV holds what the JSON answer holds.
    policy_csv(&read.body(&client).await?)
}

/// `?from=&to=&order=&limit=`: the proposed allow-list, in key order (from, to, port,
/// protocol) or, with `order=count`, most connections first.
pub(crate) fn policy_read(client: &Client, params: &Params) -> Result<ViewRead, ApiError> {
    require_segment_views(client)?;
    let label = |key: &str| -> Result<Option<Label>, ApiError> {
        params.text(key).map(|v| parse_label(key, v)).transpose()
    };
    let filter = PolicyFilter {
        from: label("from")?,
        to: label("to")?,
    };
    let order = match params.text("order") {
        None | Some("key") => PolicyOrder::Key,
        Some("count") => PolicyOrder::Busiest,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::BadOrder,
                format!("order must be key or count, got {other:?}"),
            ))
        }
    };
    let limit = params.limit(10_000, 1_000_000)?;
    let longest = client.config().windows.longest().clone();
    Ok(ViewRead::new(
        Policy {
            filter,
            order,
            limit: one_more(limit),
        },
        move |answered| Ok(list_body(answered.as_of, &longest, answered.answer, limit)),
    ))
}

/// The policy's JSON answer as CSV; its `as_of` and whether the list was cut at its limit
/// come as the headers `flowsight-as-of` and `flowsight-truncated`.
fn policy_csv(answer: &serde_json::Value) -> Result<Response, ApiError> {
    const COLUMNS: [&str; 5] = ["from", "to", "dst_port", "proto", "count"];
    // The header is written by hand so that an empty policy still has one.
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let failed = |e: csv::Error| ApiError::internal(format!("cannot write CSV: {e}"));
    writer.write_record(COLUMNS).map_err(failed)?;
    for row in answer["rows"].as_array().into_iter().flatten() {
        let field = |name: &str| match &row[name] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        writer.write_record(COLUMNS.map(field)).map_err(failed)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?;
    let reply = warp::reply::with_header(body, "content-type", "text/csv; charset=utf-8");
    let reply = warp::reply::with_header(reply, "flowsight-as-of", answer["as_of"].to_string());
    let truncated = answer["truncated"].to_string();
    Ok(warp::reply::with_header(reply, "flowsight-truncated", truncated).into_response())
}
