//! Pushed authorization requests (RFC 9126): the client sends the authorization request's
//! parameters straight to the server, authenticated, and gets a one-time `request_uri` to send
//! the browser with. Nothing of the request travels through the browser, where it could be
//! read or altered, and a client can be made to push every request.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::Duration;

use portcullis_core::authorize::{
    AuthorizationRequest, PUSHED_REQUEST_SECONDS, REQUEST_URI_PREFIX,
};
use portcullis_core::identity::Tenant;
use portcullis_core::oauth::{GrantType, OAuthError};
use portcullis_core::session::new_session_token;
use portcullis_store::PendingRequest;

use super::{Issue, TokenForm, answer, authenticate_client, cached_tenant, issuer, secret_hash};
use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::state::AppState;

pub(super) async fn push(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    answer(pushed(&state, &tenant, origin, &headers, &body).await)
}

async fn pushed(
    state: &AppState,
    tenant: &Tenant,
    origin: portcullis_core::audit::Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Issue> {
    let form = TokenForm::parse(headers, body)?;
    let client = authenticate_client(state, tenant, &origin, headers, &form).await?;
    if !client.settings.grants(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not sign users in (no authorization_code grant)".into(),
        )
        .into());
    }
    let client_id = client.id.to_string();
    let redirect_uri = form.require("redirect_uri")?;
    if !portcullis_core::authorize::redirect_uri_registered(
        &client.settings.redirect_uris,
        redirect_uri,
    ) {
        return Err(OAuthError::InvalidRequest(
            "redirect_uri is not one this client registered".into(),
        )
        .into());
    }
    let default_audience = format!("{}/oauth/userinfo", issuer(state, tenant));
    let request = match AuthorizationRequest::parse(
        &form.single,
        &form.resources,
        &client_id,
        redirect_uri,
        &client.settings,
        &default_audience,
    ) {
        Ok(request) => request,
        // RFC 9126 §2.3: the authorization endpoint's error codes, as a JSON answer.
        Err(error) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                [(header::CACHE_CONTROL, "no-store")],
                Json(json!({"error": error.code, "error_description": error.description})),
            )
                .into_response());
        }
    };
    let handle = new_session_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let kept = PendingRequest {
        client_id: client.id,
        request: json!(request).to_string(),
        pushed: true,
        created_at: now,
    };
    state
        .store
        .save_authorization_request(
            tenant.id,
            &secret_hash(state, &handle),
            &kept,
            now + Duration::seconds(PUSHED_REQUEST_SECONDS),
        )
        .await?;
    metrics::counter!("portcullis_pushed_requests_total").increment(1);
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{handle}"),
            "expires_in": PUSHED_REQUEST_SECONDS,
        })),
    )
        .into_response())
}
