//! The one mapping from failures to HTTP responses: every error leaves as an RFC 9457
//! `application/problem+json` document with a stable `type`, a `detail` a person can act on
//! and, for invalid input, the offending `field`. Internal errors are logged with the request
//! id and answered without internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use portcullis_core::ValidationError;
use portcullis_store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:portcullis:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated { detail: &'static str },
    /// An access token that is not (or no longer) good here: RFC 6750 `invalid_token`.
    #[error("invalid access token: {0}")]
    InvalidToken(String),
    /// A person's sign-in is not strong or recent enough for this action under the tenant's
    /// policy for administrators: RFC 9470's `insufficient_user_authentication`.
    #[error("insufficient user authentication: {detail}")]
    InsufficientUserAuthentication {
        need: portcullis_core::session::Assurance,
        detail: String,
    },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("bad request: {detail}")]
    BadRequest {
        field: Option<String>,
        detail: String,
    },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("conflict: {detail}")]
    Conflict {
        field: Option<String>,
        detail: String,
    },
    #[error("precondition failed")]
    PreconditionFailed { current_version: i64 },
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthenticated { .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            ApiError::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid-token",
                "Invalid access token",
            ),
            ApiError::InsufficientUserAuthentication { .. } => (
                StatusCode::UNAUTHORIZED,
                "insufficient-user-authentication",
                "Sign in again",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid value",
            ),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PreconditionFailed { .. } => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, field) = match self {
            ApiError::Unauthenticated { detail } => ((*detail).to_owned(), None),
            ApiError::InvalidToken(why) => (
                format!("The access token was refused: {why}. Get a new one from the tenant's token endpoint."),
                None,
            ),
            ApiError::InsufficientUserAuthentication { detail, .. } => (detail.clone(), None),
            // The engine's refusals read "denied: …" or "denied by …".
            ApiError::Forbidden(reason) => (format!("The request was {reason}."), None),
            ApiError::NotFound => ("No such object exists in your tenant.".to_owned(), None),
            ApiError::MethodNotAllowed => ("This path does not support this method; see /v1/openapi.json.".to_owned(), None),
            ApiError::BadRequest { field, detail } => (detail.clone(), field.clone()),
            ApiError::Validation(e) => (format!("{}: {}.", e.field, e.message), Some(e.field.clone())),
            ApiError::Conflict { field, detail } => (format!("{detail}."), field.clone()),
            ApiError::PreconditionFailed { current_version } => (
                format!(
                    "The object has changed since you read it (it is now at ETag \"{current_version}\"). Read it again, \
                     re-apply your change and send it with the new ETag in If-Match."
                ),
                None,
            ),
            ApiError::PayloadTooLarge { limit } => (format!("The request body must be at most {limit} bytes."), None),
            ApiError::UnsupportedMediaType => ("Send the body as JSON with Content-Type: application/json.".to_owned(), None),
            ApiError::TooManyRequests { retry_after_seconds } => (
                format!("Too many failed attempts from your address; try again in {retry_after_seconds} seconds."),
                None,
            ),
            ApiError::Unavailable(detail) => (detail.clone(), None),
            ApiError::Internal(_) => (
                "Something went wrong on the server. The request id in the x-request-id header identifies it in the logs."
                    .to_owned(),
                None,
            ),
        };
        Problem {
            kind: format!("urn:portcullis:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(error: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError;
        match error {
            EngineError::NotReached { .. } => ApiError::Conflict {
                field: Some("context.min_revision".into()),
                detail: error.to_string(),
            },
            EngineError::Store(s) => s.into(),
            EngineError::Build(b) => ApiError::Internal(b.to_string()),
            EngineError::Task(t) => ApiError::Internal(t),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict { field, message } => ApiError::Conflict {
                field,
                detail: message,
            },
            StoreError::VersionMismatch { current_version } => {
                ApiError::PreconditionFailed { current_version }
            }
            StoreError::Invalid(e) => ApiError::Validation(e),
            // The tenant's write queue is full, or every database connection stayed busy for
            // the pool's whole wait: the node is overloaded, not broken, and the caller should
            // come back shortly.
            StoreError::WriteQueueFull => {
                metrics::counter!("portcullis_write_queue_refusals_total").increment(1);
                tracing::warn!("a write was refused: its tenant's write queue is full");
                ApiError::Unavailable(
                    "The server is overloaded: too many changes to this tenant are waiting. Retry shortly.".into(),
                )
            }
            overloaded if overloaded.is_overloaded() => {
                metrics::counter!("portcullis_database_pool_timeouts_total").increment(1);
                tracing::warn!("a request waited too long for a database connection");
                ApiError::Unavailable(
                    "The server is overloaded: no database connection came free in time. Retry shortly.".into(),
                )
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if let ApiError::Internal(message) = &self {
            tracing::error!(error = %message, "request failed");
        }
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthenticated { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
            }
            ApiError::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"portcullis\", error=\"invalid_token\"",
                    ),
                );
            }
            ApiError::InsufficientUserAuthentication { need, .. } => {
                if let Ok(value) = HeaderValue::from_str(&step_up_challenge(*need)) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
            } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            ApiError::PreconditionFailed { current_version } => {
                if let Ok(value) = HeaderValue::from_str(&format!("\"{current_version}\"")) {
                    headers.insert(header::ETAG, value);
                }
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// RFC 9470 §3: what the client must come back with. `acr_values` names the strength in the
/// values the authorization endpoint takes; `max_age` is in seconds.
fn step_up_challenge(need: portcullis_core::session::Assurance) -> String {
    let mut challenge = format!(
        "Bearer realm=\"portcullis\", error=\"insufficient_user_authentication\", \
         error_description=\"A stronger or more recent sign-in is required\", acr_values=\"{}\"",
        portcullis_core::authorize::acr_value(need.strength)
    );
    if let Some(age) = need.max_age {
        challenge.push_str(&format!(", max_age={}", age.whole_seconds()));
    }
    challenge
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod overload_tests {
    use super::*;

    #[test]
    fn unavailable_says_when_to_come_back() {
        let response = ApiError::Unavailable("overloaded".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let other = ApiError::from(StoreError::Corrupt("x".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
