//! The device authorization grant (RFC 8628), for sign-ins where the client has no browser (the
//! `portcullis login` command line): the device asks for a device code and a user code, shows
//! the user code and the verification page (`/t/{tenant}/device`, `pages::device`), and polls
//! the token endpoint until the user has approved or denied it there. An approval records a
//! grant whose one-time code is the device code, so redemption is the authorization code's.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use time::Duration;

use portcullis_core::DeviceAuthorizationId;
use portcullis_core::audit::Origin;
use portcullis_core::authorize::requested_assurance;
use portcullis_core::device::{
    DEVICE_CODE_SECONDS, POLL_INTERVAL_SECONDS, new_user_code, normalize_user_code,
};
use portcullis_core::identity::Tenant;
use portcullis_core::oauth::{GrantType, OAuthError};
use portcullis_core::session::new_session_token;
use portcullis_store::{NewDeviceAuthorization, StoreError};

use super::{
    Issue, TokenForm, answer, authenticate_client, cached_tenant, issuer, require_grant,
    secret_hash, token_response,
};
use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::state::AppState;

/// The verification page of a tenant, where a user types the code.
fn verification_uri(state: &AppState, tenant: &Tenant) -> String {
    format!("{}/t/{}/device", state.config.public_url, tenant.name)
}

/// The keyed hash a user code is kept and found under: of its normalized form, so however the
/// person types it, it finds the same request.
pub(crate) fn user_code_hash(state: &AppState, typed: &str) -> Option<String> {
    normalize_user_code(typed).map(|code| secret_hash(state, &code))
}

pub(super) async fn device_authorization(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    answer(start(&state, &tenant, origin, &headers, &body).await)
}

/// RFC 8628 §3.1–3.2: a device code for the device, a user code for the person.
async fn start(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Issue> {
    let form = TokenForm::parse(headers, body)?;
    let client = authenticate_client(state, tenant, &origin, headers, &form).await?;
    require_grant(&client, GrantType::DeviceCode, "device_code")?;
    let scopes = client.settings.grant_scopes(form.get("scope"), true)?;
    let fallback = format!("{}/oauth/userinfo", issuer(state, tenant));
    let audience = client.settings.audience(&form.resources, &fallback)?;
    // Not in RFC 8628, but as at the authorization endpoint: a client told by an API to come
    // back with a stronger or more recent sign-in (RFC 9470) asks for it here.
    let need = requested_assurance(form.get("acr_values"), form.get("max_age"))
        .map_err(|why| OAuthError::InvalidRequest(why.into()))?;
    let internal = |e: portcullis_core::secrets::SecretError| ApiError::Internal(e.to_string());
    let device_code = new_session_token().map_err(internal)?;
    let now = state.clock.now();
    // A user code already taken in this tenant is one chance in billions; draw again.
    for _ in 0..3 {
        let user_code = new_user_code().map_err(internal)?;
        let Some(user_code_hash) = user_code_hash(state, &user_code) else {
            return Err(ApiError::Internal("a new user code does not read back".into()).into());
        };
        let request = NewDeviceAuthorization {
            id: DeviceAuthorizationId::generate(),
            client_id: client.id,
            device_code_hash: secret_hash(state, &device_code),
            user_code_hash,
            scopes: scopes.clone(),
            audience: audience.clone(),
            expires_at: now + Duration::seconds(DEVICE_CODE_SECONDS),
            interval_seconds: POLL_INTERVAL_SECONDS,
            need,
        };
        match state
            .store
            .create_device_authorization(tenant.id, &request, now)
            .await
        {
            Ok(()) => {
                metrics::counter!("portcullis_device_authorizations_total").increment(1);
                let page = verification_uri(state, tenant);
                return Ok(token_response(json!({
                    "device_code": device_code,
                    "user_code": user_code,
                    "verification_uri": page,
                    "verification_uri_complete": format!("{page}?user_code={user_code}"),
                    "expires_in": DEVICE_CODE_SECONDS,
                    "interval": POLL_INTERVAL_SECONDS,
                })));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::InvalidRequest("no free user code could be drawn; try again".into()).into())
}
