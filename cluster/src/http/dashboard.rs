//! The dashboard: its page at `/` and its assets, built by `scripts/build-dashboard.sh`
//! from `cluster/dashboard/` and compiled into the binary.

use warp::reply::Response;
use warp::{Filter, Reply};

use super::{read, Routes};

const DASHBOARD_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

pub(super) fn routes() -> Routes {
    let page = warp::path::end()
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
            Ok::<Response, warp::Rejection>(
                warp::reply::with_header(body, "content-type", kind).into_response(),
            )
        })
        .boxed();
    super::join(vec![page, assets])
}
