//! What happens to tokens after they are issued: introspection (RFC 7662), revocation
//! (RFC 7009) and the OpenID Connect userinfo endpoint. A token is active only while its
//! signature, issuer and times hold, it was not revoked, its grant was not revoked, its user
//! may still sign in, and its client is still enabled: each is checked at every call, so a
//! revocation or a disabled user shows at once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use portcullis_core::ServicePrincipalId;
use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::identity::{LifecycleState, Tenant, User};
use portcullis_core::oauth::{AccessTokenClaims, OAuthError, verify_access_token};
use portcullis_store::{StoreError, StoredGrant};

use super::grants::{directory_claims, grant_of_jti, profile_claims, secret_hash};
use super::{
    Client, Issue, TokenForm, answer, authenticate_client, cached_tenant, client_is_active,
    client_settings, issuer, published_keys,
};
use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::state::AppState;

/// An access token that is good right now: with its user and grant for user tokens, with the
/// client itself for a client's own tokens.
pub(crate) struct ActiveToken {
    pub(crate) claims: AccessTokenClaims,
    pub(crate) user: Option<(User, StoredGrant)>,
    pub(crate) client: Option<portcullis_core::identity::ServicePrincipal>,
}

/// Whether `token` is an active access token of this tenant, and if not, why.
pub(crate) async fn active_access_token(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
) -> Result<Result<ActiveToken, String>, ApiError> {
    let now = state.clock.now();
    let checked_at = std::time::Instant::now();
    let remembered = state
        .token_caches
        .verified
        .get(token, checked_at)
        .filter(|claims| claims.iss == issuer(state, tenant));
    let claims = match remembered {
        Some(claims) if claims.exp > now.unix_timestamp() => claims,
        Some(_) => return Ok(Err("the token has expired".into())),
        None => {
            let keys = published_keys(state, tenant.id).await?;
            match verify_access_token(token, &keys, &issuer(state, tenant), now.unix_timestamp()) {
                Ok(claims) => {
                    state.token_caches.verified.insert(
                        token.to_owned(),
                        claims.clone(),
                        checked_at,
                    );
                    claims
                }
                Err(why) => return Ok(Err(why)),
            }
        }
    };
    let Ok(client) = claims.client_id.parse::<ServicePrincipalId>() else {
        return Ok(Err("the token names no client of this issuer".into()));
    };
    if claims.user.is_none() {
        // A client's own token: the client and the revocation in one read.
        let standing = state
            .store
            .client_token_standing(tenant.id, client, &claims.jti)
            .await?;
        return Ok(match standing {
            Some((_, true)) => Err("the token has been revoked".into()),
            Some((principal, false)) if principal.state == LifecycleState::Active => {
                Ok(ActiveToken {
                    claims,
                    user: None,
                    client: Some(principal),
                })
            }
            _ => Err("the client is disabled or gone".into()),
        });
    }
    if state.store.access_token_revoked(&claims.jti).await? {
        return Ok(Err("the token has been revoked".into()));
    }
    if !client_is_active(state, tenant, client).await? {
        return Ok(Err("the client is disabled or gone".into()));
    }
    let grant = match grant_of_jti(&claims.jti) {
        Some(id) => state.store.grant(tenant.id, id).await?,
        None => None,
    };
    let Some(grant) = grant.filter(|g| g.revoked_at.is_none()) else {
        return Ok(Err(
            "the sign-in this token came from has been revoked".into()
        ));
    };
    let user = match claims.sub.parse() {
        Ok(id) => match state.store.user(tenant.id, id).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => return Ok(Err("the user no longer exists".into())),
            Err(e) => return Err(e.into()),
        },
        Err(_) => return Ok(Err("the token's subject is not a user".into())),
    };
    if user.unusable_reason(now).is_some() {
        return Ok(Err("the user is disabled or has expired".into()));
    }
    Ok(Ok(ActiveToken {
        claims,
        user: Some((user, grant)),
        client: None,
    }))
}

/// Whether a JWS compact token (three dot-separated parts) rather than an opaque one.
pub(crate) fn is_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

pub(super) async fn introspect(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    answer(introspection(&state, &tenant, origin, &headers, &body).await)
}

async fn introspection(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Issue> {
    let form = TokenForm::parse(headers, body)?;
    let client = authenticate_client(state, tenant, &origin, headers, &form).await?;
    if !client.authenticated {
        return Err(OAuthError::InvalidClient(
            "introspection needs an authenticated client (a resource server's credentials)".into(),
        )
        .into());
    }
    let token = form.require("token")?;
    let inactive = || Ok(no_store(Json(json!({"active": false}))));
    if is_jwt(token) {
        let Ok(active) = active_access_token(state, tenant, token).await? else {
            return inactive();
        };
        // A client sees its own tokens, and a resource server the tokens meant for it.
        let own = active.claims.client_id == client.id.to_string();
        if !own && !client.settings.resources.contains(&active.claims.aud) {
            return inactive();
        }
        let mut body = json!(active.claims);
        body["active"] = json!(true);
        body["token_type"] = json!("Bearer");
        if let Some((user, _)) = &active.user {
            body["username"] = json!(user.user_name);
        }
        return Ok(no_store(Json(body)));
    }
    let now = state.clock.now();
    let Some(record) = state
        .store
        .refresh_token(tenant.id, &secret_hash(state, token))
        .await?
    else {
        return inactive();
    };
    let grant = &record.grant;
    // The user and the session in one read, as the refresh grant reads them.
    let (usable, session_live) = match state.store.grant_user(grant, now).await? {
        Some((user, live)) => (user.unusable_reason(now).is_none().then_some(user), live),
        None => (None, false),
    };
    let session_ok = grant.has_scope(portcullis_core::oauth::OFFLINE_ACCESS) || session_live;
    let active = grant.client_id == client.id
        && !record.used
        && grant.is_live(now)
        && now < record.expires_at
        && session_ok;
    match usable {
        Some(user) if active => Ok(no_store(Json(json!({
            "active": true,
            "token_type": "refresh_token",
            "iss": issuer(state, tenant),
            "client_id": grant.client_id.to_string(),
            "sub": grant.user_id.to_string(),
            "username": user.user_name,
            "scope": grant.scopes.join(" "),
            "exp": record.expires_at.unix_timestamp(),
        })))),
        _ => inactive(),
    }
}

fn no_store(body: impl IntoResponse) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    answer(revocation(&state, &tenant, origin, &headers, &body).await)
}

/// RFC 7009: a client revokes its own tokens. Anything else — unknown, expired, another
/// client's — is answered the same, 200, so the endpoint tells nobody which tokens exist.
async fn revocation(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Issue> {
    let form = TokenForm::parse(headers, body)?;
    let client = authenticate_client(state, tenant, &origin, headers, &form).await?;
    let token = form.require("token")?;
    let now = state.clock.now();
    if is_jwt(token) {
        let keys = published_keys(state, tenant.id).await?;
        if let Ok(claims) =
            verify_access_token(token, &keys, &issuer(state, tenant), now.unix_timestamp())
            && claims.client_id == client.id.to_string()
        {
            let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            state
                .store
                .revoke_access_token(tenant.id, &claims.jti, expires_at)
                .await?;
            audit(state, tenant, &origin, &client, "access_token", &claims.jti).await?;
        }
    } else if let Some(record) = state
        .store
        .refresh_token(tenant.id, &secret_hash(state, token))
        .await?
        && record.grant.client_id == client.id
        && state
            .store
            .revoke_grant(tenant.id, record.grant.id, "revoked by the client", now)
            .await?
    {
        let grant = record.grant.id.to_string();
        audit(state, tenant, &origin, &client, "oauth_grant", &grant).await?;
    }
    Ok(no_store(StatusCode::OK))
}

async fn audit(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    client: &Client,
    kind: &str,
    id: &str,
) -> Result<(), Issue> {
    let event = NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::service_principal(client.id),
        action: "oauth.token.revoke".into(),
        target: Some(Target::new(kind, id)),
        outcome: Outcome::Success,
        reason: None,
        origin: origin.clone(),
        details: json!({}),
    };
    state.audit.append(event).await.map_err(ApiError::from)?;
    Ok(())
}

/// A refusal of a bearer token (RFC 6750 §3): 401 with `WWW-Authenticate`, or 403 for a token
/// without the scope.
fn bearer_error(status: StatusCode, code: Option<&str>, description: &str) -> Response {
    let challenge = match code {
        Some(code) => format!(
            "Bearer realm=\"portcullis\", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ),
        None => "Bearer realm=\"portcullis\"".to_owned(),
    };
    let mut response = (
        status,
        Json(json!({"error": code.unwrap_or("invalid_request"), "error_description": description})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// OIDC Core §5.3: the signed-in user's claims, as the access token's scopes allow.
pub(super) async fn userinfo(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    let Some(token) = crate::auth::bearer_token(&headers).map(str::trim) else {
        return Ok(bearer_error(
            StatusCode::UNAUTHORIZED,
            None,
            "send the access token as Authorization: Bearer <token>",
        ));
    };
    let active = match active_access_token(&state, &tenant, token).await? {
        Ok(active) => active,
        Err(why) => {
            return Ok(bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                &why,
            ));
        }
    };
    let Some((user, _)) = active.user else {
        return Ok(bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "this token was issued to a client, not to a user",
        ));
    };
    let scopes: Vec<String> = active
        .claims
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Ok(bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "userinfo needs a token with the openid scope",
        ));
    }
    let mut claims = profile_claims(&user, &scopes);
    claims.insert("sub".into(), json!(user.id.to_string()));
    if let Ok(client) = active.claims.client_id.parse::<ServicePrincipalId>() {
        let settings = match client_settings(&state, &tenant, client).await {
            Ok(settings) => settings,
            Err(Issue::Api(e)) => return Err(e),
            Err(Issue::OAuth(_)) => {
                return Ok(bearer_error(
                    StatusCode::UNAUTHORIZED,
                    Some("invalid_token"),
                    "the token's client is no longer an OAuth client",
                ));
            }
        };
        let (groups, roles) = directory_claims(&state, &tenant, &settings, &user).await?;
        if let Some(groups) = groups {
            claims.insert("groups".into(), json!(groups));
        }
        if let Some(roles) = roles {
            claims.insert("roles".into(), json!(roles));
        }
    }
    Ok(no_store(Json(Value::Object(claims))))
}
