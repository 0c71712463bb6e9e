//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): an application sends the
//! browser here to end the user's session, optionally naming where to go afterwards. Without an
//! ID token proving the application speaks for this very session, the user confirms first, so
//! a link on another site cannot sign anyone out. Ending the session tells every application
//! that got tokens from it (back-channel logout).

use crate::pages::TenantFace;
use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use portcullis_core::ServicePrincipalId;
use portcullis_core::identity::Tenant;
use portcullis_core::oauth::verify_id_token_hint;

use super::{
    PageError, SESSION_COOKIE, active_tenant, check_csrf, content_security_policy, csrf_token,
    current_session, html, origin_source, set_cookie, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::oauth::issuer;
use crate::state::AppState;

/// The parameters carried from the request to the confirmation form.
const CARRIED: [&str; 4] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
];

pub(super) async fn logout_get(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let raw = query.unwrap_or_default();
    logout(&state, &tenant, origin, &headers, raw.as_bytes(), false).await
}

pub(super) async fn logout_post(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    logout(&state, &tenant, origin, &headers, &body, false).await
}

/// The user's "Sign out" on the confirmation page.
pub(super) async fn confirm(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    logout(&state, &tenant, origin, &headers, &body, true).await
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    application: Option<String>,
    user_name: &'a str,
    fields: Vec<(&'static str, String)>,
    error: Option<String>,
    notice: Option<String>,
}

fn bad(why: &str) -> PageError {
    PageError::BadRequest(format!(
        "The application's sign-out request cannot be followed: {why}. You are still signed in; sign out from your account page if you meant to."
    ))
}

async fn logout(
    state: &AppState,
    tenant: &str,
    origin: portcullis_core::audit::Origin,
    headers: &HeaderMap,
    raw: &[u8],
    confirmed: bool,
) -> Result<Response, PageError> {
    let tenant = active_tenant(state, tenant).await?;
    let mut params: HashMap<String, String> = HashMap::new();
    for (name, value) in form_urlencoded::parse(raw) {
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(bad(&format!("the parameter {name:?} is repeated")));
        }
    }
    if confirmed {
        check_csrf(
            state,
            headers,
            params.get("csrf").map_or("", String::as_str),
        )?;
    }
    let hint = match params.get("id_token_hint") {
        Some(token) => {
            let keys = crate::oauth::published_keys(state, tenant.id).await?;
            Some(
                verify_id_token_hint(token, &keys, &issuer(state, &tenant))
                    .map_err(|_| bad("id_token_hint is not an ID token issued here"))?,
            )
        }
        None => None,
    };
    let client_id = match (
        hint.as_ref().map(|h| h.aud.clone()),
        params.get("client_id"),
    ) {
        (Some(aud), Some(named)) if aud != *named => {
            return Err(bad("client_id differs from the ID token's audience"));
        }
        (Some(aud), _) => Some(aud),
        (None, named) => named.cloned(),
    };
    let client = client_id.and_then(|id| id.parse::<ServicePrincipalId>().ok());
    let settings = match client {
        Some(id) => state.store.oauth_client(tenant.id, id).await?,
        None => None,
    };
    let after = params.get("post_logout_redirect_uri");
    if let Some(uri) = after
        && !settings
            .as_ref()
            .is_some_and(|s| s.post_logout_redirect_uris.contains(uri))
    {
        return Err(bad(
            "post_logout_redirect_uri is not one the application registered (or the application is not named)",
        ));
    }

    if let Some(session) = current_session(state, &tenant, headers).await? {
        let vouched = hint
            .as_ref()
            .is_some_and(|h| h.sid.as_deref() == Some(&session.id.to_string()));
        if !confirmed && !vouched {
            let user = state.store.user(tenant.id, session.user_id).await?;
            let application = match client {
                Some(id) => state
                    .store
                    .service_principal(tenant.id, id)
                    .await
                    .ok()
                    .map(|sp| sp.name),
                None => None,
            };
            return confirmation(
                state,
                &tenant,
                headers,
                &params,
                application,
                &user.user_name,
            );
        }
        let user = state.store.user(tenant.id, session.user_id).await?;
        let ctx = user_context(&tenant, &user, origin.clone(), state.clock.now());
        state
            .store
            .end_sessions(&ctx, user.id, Some(session.id))
            .await?;
        crate::oauth::session_ended(state, &tenant, user.id, Some(session.id), origin).await?;
    }
    let cleared = set_cookie(state, SESSION_COOKIE, "", Some(0));
    Ok(with_cookies(
        signed_out(&tenant, after, params.get("state")),
        [cleared],
    ))
}

/// Where the browser goes once signed out: the application's registered URI (with its
/// `state`), else the sign-in page.
fn signed_out(tenant: &Tenant, after: Option<&String>, client_state: Option<&String>) -> Response {
    let Some(uri) = after else {
        return Redirect::to(&format!("/t/{}/sign-in", tenant.name)).into_response();
    };
    match url::Url::parse(uri) {
        Ok(mut url) => {
            if let Some(client_state) = client_state {
                url.query_pairs_mut().append_pair("state", client_state);
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => {
            PageError::Internal(format!("registered URI {uri:?} does not parse")).into_response()
        }
    }
}

fn confirmation(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    application: Option<String>,
    user_name: &str,
) -> Result<Response, PageError> {
    let (csrf, set) = csrf_token(state, headers)?;
    let fields = CARRIED
        .iter()
        .filter_map(|name| params.get(*name).map(|v| (*name, v.clone())))
        .collect();
    let page = LogoutPage {
        tenant: TenantFace::of(tenant),
        csrf: &csrf,
        application,
        user_name,
        fields,
        error: None,
        notice: None,
    };
    let mut response = with_cookies(html(&page), set);
    // The form ends in a redirect to the application's page: allow its origin.
    let back = params
        .get("post_logout_redirect_uri")
        .and_then(|uri| origin_source(uri));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy(back.as_deref()),
    );
    Ok(response)
}
