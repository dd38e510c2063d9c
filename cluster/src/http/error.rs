//! API errors: a stable code, a message, an HTTP status, rendered as
//! `{"error": {"code": "...", "message": "..."}}`.

use std::borrow::Cow;
use std::convert::Infallible;

use flowsight_engine::PeekError;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable code; those of query validation come from the query's plan checker.
    pub code: Cow<'static, str>,
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found".into(),
            message: message.into(),
        }
    }

    pub fn payload_too_large(limit: u64) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large".into(),
            message: format!("request bodies are limited to {limit} bytes"),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<PeekError> for ApiError {
    fn from(e: PeekError) -> Self {
        let (status, code) = match e {
            PeekError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            PeekError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            // Unavailable rather than an internal error: in a supervised cluster the
            // process is about to be restarted, and a later request may well succeed.
            PeekError::Failed(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine_failed"),
            PeekError::CatchingUp { .. } => (StatusCode::SERVICE_UNAVAILABLE, "catching_up"),
        };
        ApiError {
            status,
            code: code.into(),
            message: e.to_string(),
        }
    }
}

/// Turns every rejection into a JSON error with a fitting status.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route; docs/http-api.md lists them")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed".into(),
            message: "this route only answers GET".into(),
        }
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError {
            status: StatusCode::LENGTH_REQUIRED,
            code: "length_required".into(),
            message: "a request with a body must give its Content-Length".into(),
        }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::payload_too_large(super::MAX_BODY_BYTES)
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request("bad_header", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request("bad_query", e.to_string())
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}
