//! Request extractors that refuse bad input with a problem document: JSON bodies (media type,
//! size, syntax, unknown fields — naming the field), query strings, path ids, and `If-Match`
//! preconditions. Also the request's origin (address, user agent, request id) for the audit trail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use portcullis_core::audit::Origin;
use portcullis_core::network::TrustedProxies;

use crate::error::ApiError;

/// The body size limit, placed in request extensions by the router so extractors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body, strictly parsed.
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest {
                    field: None,
                    detail: "The request body could not be read.".into(),
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document, rejecting trailing data and naming the field of a shape error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            field: None,
            detail: "A JSON body is required.".into(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::BadRequest {
                field: (path != ".").then(|| path.clone()),
                detail: format!("Field {path}: {}", strip_position(&inner.to_string())),
            },
            _ => not_json(&inner),
        }
    })?;
    deserializer.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        field: None,
        detail: format!("The body is not valid JSON: {error}."),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
}

/// A query string, strictly parsed.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError::BadRequest {
                field: None,
                detail: format!("Invalid query string: {}", rejection.body_text()),
            })
    }
}

/// Path parameters, strictly parsed.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| ApiError::BadRequest {
                field: None,
                detail: format!("Invalid path: {}", rejection.body_text()),
            })
    }
}

/// The `If-Match` precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: the write applies to whatever version it reads.
    None,
    /// `If-Match: *`: the object must exist.
    Exists,
    /// `If-Match: "3", "4"`: the object must be at one of these versions.
    Versions(Vec<i64>),
}

impl Precondition {
    /// Reads `If-Match`. A value that is not `*` or a list of quoted entity tags (RFC 9110
    /// §8.8.3) is refused: a write must never go through unconditionally because its condition
    /// could not be read.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let malformed = || {
            ApiError::BadRequest {
            field: None,
            detail: "If-Match must be * or a comma-separated list of quoted ETags as this API sends them, such as \"3\"".into(),
        }
        };
        let mut tags: Vec<&str> = Vec::new();
        for value in headers.get_all(header::IF_MATCH) {
            let value = value.to_str().map_err(|_| malformed())?;
            tags.extend(value.split(',').map(str::trim).filter(|t| !t.is_empty()));
        }
        if headers.get(header::IF_MATCH).is_none() {
            return Ok(Precondition::None);
        }
        if tags.is_empty() || !tags.iter().all(|t| *t == "*" || is_entity_tag(t)) {
            return Err(malformed());
        }
        if tags.contains(&"*") {
            return Ok(Precondition::Exists);
        }
        // Only strong tags that this server issued can match; any other well-formed tag
        // matches nothing, which is a failed precondition (RFC 9110 §13.1.1).
        Ok(Precondition::Versions(
            tags.iter()
                .filter_map(|t| t.strip_prefix('"')?.strip_suffix('"')?.parse::<i64>().ok())
                .collect(),
        ))
    }

    /// Checks the precondition against the version read, returning the version the write must
    /// still find when it commits.
    pub fn check(&self, current_version: i64) -> Result<i64, ApiError> {
        match self {
            Precondition::Versions(versions) if !versions.contains(&current_version) => {
                Err(ApiError::PreconditionFailed { current_version })
            }
            _ => Ok(current_version),
        }
    }

    /// The version a delete must find, if the client stated one.
    pub fn expected(&self, current_version: i64) -> Result<Option<i64>, ApiError> {
        match self {
            Precondition::None | Precondition::Exists => Ok(None),
            Precondition::Versions(_) => self.check(current_version).map(Some),
        }
    }

    pub fn is_explicit(&self) -> bool {
        matches!(self, Precondition::Versions(_))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Precondition::from_headers(&parts.headers)
    }
}

/// `[W/]"…"` with the characters RFC 9110 allows inside an entity tag.
fn is_entity_tag(tag: &str) -> bool {
    let opaque = tag.strip_prefix("W/").unwrap_or(tag);
    opaque.len() >= 2
        && opaque.starts_with('"')
        && opaque.ends_with('"')
        && opaque[1..opaque.len() - 1]
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
}

/// Where a request came from, for the audit trail.
pub struct RequestOrigin(pub Origin);

const MAX_USER_AGENT_CHARS: usize = 256;

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequestOrigin(origin_of(parts)))
    }
}

/// Where the request came from: the socket's peer, or, when the peer is a trusted proxy (the
/// `trusted_proxies` setting, put into every request by the application), the client it
/// forwarded for.
pub fn origin_of(parts: &Parts) -> Origin {
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| match parts.extensions.get::<Arc<TrustedProxies>>() {
            Some(proxies) if !proxies.is_empty() => {
                let lines = |name: header::HeaderName| -> Vec<&str> {
                    parts
                        .headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect()
                };
                proxies.client_address(
                    peer.0.ip(),
                    &lines(header::FORWARDED),
                    &lines(header::HeaderName::from_static("x-forwarded-for")),
                )
            }
            _ => peer.0.ip(),
        })
        .map(|address| address.to_string());
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(MAX_USER_AGENT_CHARS).collect())
    };
    Origin {
        source_ip,
        user_agent: header_text("user-agent"),
        request_id: header_text("x-request-id"),
    }
}

/// A JSON response carrying the object's version as its ETag.
pub struct Tagged<T> {
    pub status: axum::http::StatusCode,
    pub version: i64,
    pub body: T,
}

impl<T> Tagged<T> {
    pub fn ok(version: i64, body: T) -> Self {
        Tagged {
            status: axum::http::StatusCode::OK,
            version,
            body,
        }
    }

    pub fn created(version: i64, body: T) -> Self {
        Tagged {
            status: axum::http::StatusCode::CREATED,
            version,
            body,
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", self.version)) {
            response.headers_mut().insert(header::ETAG, tag);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        count: u32,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field_of(r#"{"name": 5}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "x", "extra": 1}"#).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field_of(r#"{"name": "x", "nested": {"count": -1}}"#).as_deref(),
            Some("nested.count")
        );
        assert_eq!(field_of(r#"{"name": "x""#), None);
        assert_eq!(field_of(r#"{"name": "x"} trailing"#), None);
        assert_eq!(field_of(""), None);
        assert!(parse_json::<Body>(br#"{"name": "x"}"#).is_ok());
    }

    #[test]
    fn deeply_nested_json_is_refused_not_crashed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_json::<serde_json::Value>(deep.as_bytes()).is_err());
    }

    #[test]
    fn if_match_parsing() {
        let parse = |headers: &HeaderMap| Precondition::from_headers(headers);
        let mut headers = HeaderMap::new();
        assert_eq!(parse(&headers).unwrap(), Precondition::None);
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"3\", \"4\""));
        let p = parse(&headers).unwrap();
        assert_eq!(p.check(4).unwrap(), 4);
        assert!(matches!(
            p.check(5),
            Err(ApiError::PreconditionFailed { current_version: 5 })
        ));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        assert!(parse(&headers).unwrap().check(3).is_err());
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"v3\""));
        assert!(
            parse(&headers).unwrap().check(3).is_err(),
            "well-formed, never ours"
        );
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(parse(&headers).unwrap(), Precondition::Exists);
        for malformed in [
            &b"3"[..],
            b"\"3",
            b"",
            b" , ",
            b"\"\xc3\xa9\"",
            b"\"3\" junk",
        ] {
            headers.insert(
                header::IF_MATCH,
                HeaderValue::from_bytes(malformed).unwrap(),
            );
            assert!(
                matches!(parse(&headers), Err(ApiError::BadRequest { .. })),
                "{malformed:?} is refused, not ignored"
            );
        }
    }
}
