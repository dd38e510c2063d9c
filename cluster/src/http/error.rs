//! API errors: a stable code, a message, an HTTP status, rendered as
//! `{"error": {"code": "...", "message": "..."}}`.

use std::convert::Infallible;

use flowsight_engine::PeekError;
use flowsight_queries::plan::PlanErrorCode;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable code; those of query validation come from the query's plan checker.
    pub code: ErrorCode,
    pub message: String,
}

/// The stable code of every error the API answers with (docs/http-api.md lists them);
/// [`as_str`](ErrorCode::as_str) is what clients see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadDefinition,
    BadFlag,
    BadFormat,
    BadHeader,
    BadIp,
    BadJson,
    BadKind,
    BadLimit,
    BadMembers,
    BadName,
    BadOrder,
    BadQuery,
    BadSegment,
    BadSeverity,
    BadSpan,
    BadStep,
    BadSubscriptionName,
    CatchingUp,
    CommandPending,
    DuplicateQuery,
    EngineFailed,
    EngineStopped,
    Internal,
    LengthRequired,
    MethodNotAllowed,
    NoSubscription,
    NotFound,
    PayloadTooLarge,
    QueryFailed,
    RepeatedParameter,
    ShuttingDown,
    Timeout,
    TooManyQueries,
    TooManySubscriptions,
    UnknownHost,
    UnknownParameter,
    UnknownQuery,
    UnknownSegment,
    UnknownView,
    UnknownWindow,
    ViewDisabled,
    /// A registered query that does not validate: the plan checker's own code.
    Plan(PlanErrorCode),
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadDefinition => "bad_definition",
            ErrorCode::BadFlag => "bad_flag",
            ErrorCode::BadFormat => "bad_format",
            ErrorCode::BadHeader => "bad_header",
            ErrorCode::BadIp => "bad_ip",
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadKind => "bad_kind",
            ErrorCode::BadLimit => "bad_limit",
            ErrorCode::BadMembers => "bad_members",
            ErrorCode::BadName => "bad_name",
            ErrorCode::BadOrder => "bad_order",
            ErrorCode::BadQuery => "bad_query",
            ErrorCode::BadSegment => "bad_segment",
            ErrorCode::BadSeverity => "bad_severity",
            ErrorCode::BadSpan => "bad_span",
            ErrorCode::BadStep => "bad_step",
            ErrorCode::BadSubscriptionName => "bad_subscription_name",
            ErrorCode::CatchingUp => "catching_up",
            ErrorCode::CommandPending => "command_pending",
            ErrorCode::DuplicateQuery => "duplicate_query",
            ErrorCode::EngineFailed => "engine_failed",
            ErrorCode::EngineStopped => "engine_stopped",
            ErrorCode::Internal => "internal",
            ErrorCode::LengthRequired => "length_required",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NoSubscription => "no_subscription",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::QueryFailed => "query_failed",
            ErrorCode::RepeatedParameter => "repeated_parameter",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Timeout => "timeout",
            ErrorCode::TooManyQueries => "too_many_queries",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::UnknownHost => "unknown_host",
            ErrorCode::UnknownParameter => "unknown_parameter",
            ErrorCode::UnknownQuery => "unknown_query",
            ErrorCode::UnknownSegment => "unknown_segment",
            ErrorCode::UnknownView => "unknown_view",
            ErrorCode::UnknownWindow => "unknown_window",
            ErrorCode::ViewDisabled => "view_disabled",
            ErrorCode::Plan(code) => code.as_str(),
        }
    }
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::NotFound,
            message: message.into(),
        }
    }

    pub fn payload_too_large(limit: u64) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: ErrorCode::PayloadTooLarge,
            message: format!("request bodies are limited to {limit} bytes"),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::Internal,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<PeekError> for ApiError {
    fn from(e: PeekError) -> Self {
        let (status, code) = match e {
            PeekError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout),
            PeekError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ShuttingDown),
            // Unavailable rather than an internal error: in a supervised cluster the
            // process is about to be restarted, and a later request may well succeed.
            PeekError::Failed(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::EngineFailed),
            PeekError::CatchingUp { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::CatchingUp)
            }
            PeekError::Unreadable { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
        };
        ApiError {
            status,
            code,
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
            code: ErrorCode::MethodNotAllowed,
            message: "this route only answers GET".into(),
        }
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError {
            status: StatusCode::LENGTH_REQUIRED,
            code: ErrorCode::LengthRequired,
            message: "a request with a body must give its Content-Length".into(),
        }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::payload_too_large(super::MAX_BODY_BYTES)
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(ErrorCode::BadHeader, e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(ErrorCode::BadQuery, e.to_string())
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

#[cfg(test)]
mod tests {
    /// A code added or renamed here must be in the API's error table too.
    #[test]
    fn every_code_is_documented() {
        let source = include_str!("error.rs");
        let docs = include_str!("../../../docs/http-api.md");
        let mut checked = 0;
        for line in source
            .lines()
            .filter(|l| l.trim_start().starts_with("ErrorCode::") && l.contains("=> \""))
        {
            let code = line.split('"').nth(1).expect("a quoted code");
            assert!(
                docs.contains(&format!("`{code}`")),
                "{code} is not in docs/http-api.md"
            );
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} codes found");
    }
}
