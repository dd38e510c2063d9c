//! The connection graph's routes: `/v1/graph/edges`, `/v1/graph/hosts` and
//! `/v1/graph/hosts/{ip}`.

use std::net::IpAddr;

use flowsight_engine::views::graph::{BusiestHosts, Edges, Host};
use flowsight_engine::Client;
use flowsight_queries::EdgeFilter;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::params::{self, Params};
use super::ErrorCode;
use super::{
    cut, get, get_one, json_reply, list_body, one_more, peek, window_json, ApiError, Routes,
    ViewRead,
};

pub(super) fn routes(client: &Client) -> Routes {
    let edges = get(warp::path!("v1" / "graph" / "edges"), client, edges);
    let hosts = get(warp::path!("v1" / "graph" / "hosts"), client, hosts);
    let host = get_one(warp::path!("v1" / "graph" / "hosts" / String), client, host);
    super::join(vec![edges, hosts, host])
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
    let view = Edges {
        window: window.length,
        filter,
        limit: one_more(limit),
    };
    Ok(ViewRead::new(view, move |answered| {
        Ok(list_body(answered.as_of, &window, answered.answer, limit))
    }))
}

async fn hosts(client: Client, raw: String) -> Result<Response, ApiError> {
    hosts_read(&client, &raw)?.serve(&client).await
}

/// `?window=&limit=`: the busiest hosts of a window, with their totals.
pub(crate) fn hosts_read(client: &Client, raw: &str) -> Result<ViewRead, ApiError> {
    let params = Params::parse(raw, &["window", "limit"])?;
    let window = params.window(client.config())?;
    let limit = params.limit(100, 10_000)?;
    let view = BusiestHosts {
        window: window.length,
        limit: one_more(limit),
    };
    Ok(ViewRead::new(view, move |answered| {
        Ok(list_body(answered.as_of, &window, answered.answer, limit))
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
        Host {
            ip,
            window: window.length,
            limit: one_more(limit),
        },
    )
    .await?;
    let mut host = answered.answer;
    // As for a host's segment: a host the window has not seen is not found, not zeros.
    if host.summary.connections_out == 0 && host.summary.connections_in == 0 {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::UnknownHost,
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
        "window": window_json(&window, answered.as_of),
        "host": host.summary,
        "out_edges": host.out_edges,
        "in_edges": host.in_edges,
        "truncated": truncated_out || truncated_in,
    })))
}
