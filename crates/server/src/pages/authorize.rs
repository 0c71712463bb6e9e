//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1), a page because a person
//! answers it: an application sends the browser here; Portcullis checks the client and its
//! exact redirect URI, has the user sign in, step up or approve as the request needs, and sends
//! the browser back with a one-time code (and `iss`, RFC 9207).
//!
//! A request that needs the user is kept server-side under a random handle, and the sign-in,
//! step-up and consent pages return to `…/oauth/authorize?client_id=…&request_uri=…`, the same
//! form a pushed request (RFC 9126) takes. Until the client and redirect URI are known good,
//! errors are shown here and never sent anywhere (no open redirect).

use crate::pages::TenantFace;
use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use time::Duration;

use portcullis_core::authorize::{
    AuthorizationRequest, AuthorizeError, REQUEST_URI_PREFIX, acr_value,
};
use portcullis_core::conditional::{Application, ClientType, Proofs, SessionControls};
use portcullis_core::identity::{LifecycleState, Tenant};
use portcullis_core::oauth::{ClientSettings, GrantType};
use portcullis_core::session::{Assurance, Session, StepUp, new_session_token};

use crate::conditional::{self, Verdict};
use crate::engine::Freshness;
use portcullis_core::{GrantId, ServicePrincipalId};
use portcullis_store::{KeptRequest, NewGrant, PendingRequest, StoreError};

use super::{
    CONTINUE_COOKIE, CONTINUE_SECONDS, NotSignedIn, PageError, PageKind, RETURN_ORIGIN_COOKIE,
    active_tenant, check_csrf, content_security_policy, csrf_token, current_session, html,
    origin_source, set_cookie, signed_in, urlencode, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::oauth::{CODE_SECONDS, issuer, secret_hash};
use crate::state::AppState;

pub(super) async fn authorize_get(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let raw = query.unwrap_or_default();
    authorize(&state, &tenant, origin, &headers, raw.as_bytes()).await
}

pub(super) async fn authorize_post(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    authorize(&state, &tenant, origin, &headers, &body).await
}

/// The request's parameters; none may repeat (RFC 6749 §3.1) except `resource` (RFC 8707).
fn parameters(raw: &[u8]) -> Result<(HashMap<String, String>, Vec<String>), PageError> {
    let mut single = HashMap::new();
    let mut resources = Vec::new();
    for (name, value) in form_urlencoded::parse(raw) {
        if name == "resource" {
            resources.push(value.into_owned());
        } else if single
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(bad_request(format!("the parameter {name:?} is repeated")));
        }
    }
    Ok((single, resources))
}

fn bad_request(why: impl Into<String>) -> PageError {
    PageError::BadRequest(format!(
        "The application sent a sign-in request this server cannot accept: {}. Go back to the application and try again; if it keeps happening, tell its administrator.",
        why.into()
    ))
}

/// A request being answered: what was asked, by whom, since when, and its kept handle if any.
struct Pending {
    request: AuthorizationRequest,
    client: ServicePrincipalId,
    settings: ClientSettings,
    handle: Option<String>,
    created_at: time::OffsetDateTime,
}

async fn authorize(
    state: &AppState,
    tenant: &str,
    origin: portcullis_core::audit::Origin,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, PageError> {
    let tenant = active_tenant(state, tenant).await?;
    let (params, resources) = parameters(raw)?;
    let pending = match params.get("request_uri") {
        Some(uri) => resume(state, &tenant, &params, uri).await?,
        None => match fresh(state, &tenant, &params, &resources).await? {
            Ok(pending) => pending,
            Err(response) => return Ok(response),
        },
    };
    decide(state, &tenant, origin, headers, pending).await
}

/// The client and its settings, if `client_id` names an active client that may sign users in.
async fn sign_in_client(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
) -> Result<(ServicePrincipalId, ClientSettings), PageError> {
    let unknown = || bad_request("client_id does not name an application of this organisation");
    let id: ServicePrincipalId = client_id.parse().map_err(|_| unknown())?;
    match state.store.service_principal(tenant.id, id).await {
        Ok(sp) if sp.state == LifecycleState::Active => {}
        Ok(_) | Err(StoreError::NotFound) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    }
    let settings = state
        .store
        .oauth_client(tenant.id, id)
        .await?
        .ok_or_else(unknown)?;
    if !settings.grants(GrantType::AuthorizationCode) {
        return Err(bad_request(
            "this application is not allowed to sign users in (no authorization_code grant)",
        ));
    }
    Ok((id, settings))
}

/// A new request, straight from the client.
async fn fresh(
    state: &AppState,
    tenant: &Tenant,
    params: &HashMap<String, String>,
    resources: &[String],
) -> Result<Result<Pending, Response>, PageError> {
    let client_id = params
        .get("client_id")
        .ok_or_else(|| bad_request("client_id is missing"))?;
    let (client, settings) = sign_in_client(state, tenant, client_id).await?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| bad_request("redirect_uri is missing"))?;
    // Exact comparison (RFC 9700 §4.1.3): no prefixes, no added paths or queries.
    if !portcullis_core::authorize::redirect_uri_registered(&settings.redirect_uris, redirect_uri) {
        return Err(bad_request(
            "redirect_uri is not one this application registered",
        ));
    }
    // From here on, errors go back to the application.
    let back = |error: AuthorizeError| {
        error_redirect(state, tenant, redirect_uri, params.get("state"), &error)
    };
    if settings.require_pushed_authorization_requests {
        return Ok(Err(back(AuthorizeError::new(
            "invalid_request",
            "this client must push its authorization requests first (RFC 9126)",
        ))));
    }
    let default_audience = format!("{}/oauth/userinfo", issuer(state, tenant));
    match AuthorizationRequest::parse(
        params,
        resources,
        client_id,
        redirect_uri,
        &settings,
        &default_audience,
    ) {
        Ok(request) => Ok(Ok(Pending {
            request,
            client,
            settings,
            handle: None,
            created_at: state.clock.now(),
        })),
        Err(error) => Ok(Err(back(error))),
    }
}

/// The page for a kept request that existed but can no longer be answered.
fn expired() -> PageError {
    PageError::BadRequest(
        "This sign-in request has expired or was already answered. Go back to the application and start again."
            .into(),
    )
}

/// The page for a `request_uri` this server never issued to this client (RFC 9101 §7,
/// RFC 9126 §4): malformed, from elsewhere, or forgotten long after it expired. Its redirect
/// URI cannot be trusted, so the error is shown here, never sent back.
fn invalid_request_uri() -> PageError {
    metrics::counter!("portcullis_authorize_errors_total", "error" => "invalid_request_uri")
        .increment(1);
    PageError::BadRequest(
        "The application sent a sign-in link this server did not issue to it (error invalid_request_uri). Go back to the application and start signing in again; if it keeps happening, tell the application's administrator."
            .into(),
    )
}

/// Whether a kept request can still be answered.
fn answerable(kept: &KeptRequest, now: time::OffsetDateTime) -> bool {
    kept.answered_at.is_none() && kept.expires_at > now
}

/// A kept request: pushed by the client, or waiting while the user signed in.
async fn resume(
    state: &AppState,
    tenant: &Tenant,
    params: &HashMap<String, String>,
    uri: &str,
) -> Result<Pending, PageError> {
    let handle = uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .ok_or_else(invalid_request_uri)?;
    let kept = state
        .store
        .authorization_request(tenant.id, &secret_hash(state, handle))
        .await?
        .ok_or_else(invalid_request_uri)?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| bad_request("client_id is missing"))?;
    // Another client's handle is not this client's to use, whatever became of it.
    if *client_id != kept.pending.client_id.to_string() {
        return Err(invalid_request_uri());
    }
    if !answerable(&kept, state.clock.now()) {
        return Err(expired());
    }
    let (client, settings) = sign_in_client(state, tenant, client_id).await?;
    let request: AuthorizationRequest = serde_json::from_str(&kept.pending.request)
        .map_err(|e| PageError::Internal(format!("kept authorization request: {e}")))?;
    // The client may have changed its settings since: the redirect URI must still be its own.
    if !portcullis_core::authorize::redirect_uri_registered(
        &settings.redirect_uris,
        &request.redirect_uri,
    ) {
        return Err(bad_request(
            "redirect_uri is no longer one this application registered",
        ));
    }
    Ok(Pending {
        request,
        client,
        settings,
        handle: Some(handle.to_owned()),
        created_at: kept.pending.created_at,
    })
}

/// What the user must do next, or the code.
async fn decide(
    state: &AppState,
    tenant: &Tenant,
    origin: portcullis_core::audit::Origin,
    headers: &HeaderMap,
    pending: Pending,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let request = &pending.request;
    let session = current_session(state, tenant, headers).await?;
    let none = request.prompt.none;
    let Some(session) = session else {
        if none {
            return Ok(refuse(
                state,
                tenant,
                request,
                "login_required",
                "the user is not signed in",
            ));
        }
        return ask(state, tenant, headers, pending, Ask::SignIn).await;
    };
    if session.must_change_password || session.must_enrol_mfa || session.must_accept_terms {
        if none {
            return Ok(refuse(
                state,
                tenant,
                request,
                "interaction_required",
                "the user must update their account first",
            ));
        }
        let page = if session.must_change_password {
            "password"
        } else if session.must_enrol_mfa {
            "mfa"
        } else {
            "terms"
        };
        return ask(state, tenant, headers, pending, Ask::Page(page)).await;
    }
    // `prompt=login`, or a `max_age` shorter than a step-up can honour: a whole new sign-in,
    // made after the request arrived.
    let fresh_sign_in = request.prompt.login || request.max_age.is_some_and(|age| age < 60);
    if fresh_sign_in && session.authenticated_at() < pending.created_at {
        if none {
            return Ok(refuse(
                state,
                tenant,
                request,
                "login_required",
                "a new sign-in is needed",
            ));
        }
        return ask(state, tenant, headers, pending, Ask::SignIn).await;
    }
    if !fresh_sign_in && session.step_up(request.assurance(), now) != StepUp::Satisfied {
        if none {
            return Ok(refuse(
                state,
                tenant,
                request,
                "login_required",
                "the sign-in is too old or not strong enough",
            ));
        }
        return ask(state, tenant, headers, pending, Ask::StepUp).await;
    }
    let (verdict, controls) = admitted(state, tenant, &origin, &pending, &session).await?;
    match verdict {
        Verdict::Allow => {}
        Verdict::Refuse(why) => {
            return Ok(refuse(state, tenant, request, "access_denied", &why));
        }
        Verdict::StepUp(_) if none => {
            return Ok(refuse(
                state,
                tenant,
                request,
                "interaction_required",
                "conditional access requires a stronger sign-in",
            ));
        }
        Verdict::StepUp(strength) => {
            let need = Assurance {
                strength,
                max_age: None,
            };
            return ask(state, tenant, headers, pending, Ask::StepUpTo(need)).await;
        }
    }
    // A policy's sign-in frequency: a session signed in longer ago signs in again.
    if controls.sign_in_too_old(session.authenticated_at(), now) {
        if none {
            let why = "conditional access asks for a new sign-in";
            return Ok(refuse(state, tenant, request, "login_required", why));
        }
        return ask(state, tenant, headers, pending, Ask::SignIn).await;
    }
    if pending.settings.require_consent {
        let approved = state.store.consent(session.user_id, pending.client).await?;
        let covers = approved.is_some_and(|(scopes, at)| {
            request.scopes.iter().all(|s| scopes.contains(s))
                && (!request.prompt.consent || at >= pending.created_at)
        });
        if !covers {
            if none {
                return Ok(refuse(
                    state,
                    tenant,
                    request,
                    "consent_required",
                    "the user has not approved this application",
                ));
            }
            return ask(state, tenant, headers, pending, Ask::Consent(&session)).await;
        }
    }
    issue_code(state, tenant, origin, &session, (pending, controls)).await
}

/// Sends the browser back to the client with an error (RFC 6749 §4.1.2.1).
fn refuse(
    state: &AppState,
    tenant: &Tenant,
    request: &AuthorizationRequest,
    code: &'static str,
    description: &str,
) -> Response {
    error_redirect(
        state,
        tenant,
        &request.redirect_uri,
        request.state.as_ref(),
        &AuthorizeError::new(code, description),
    )
}

fn error_redirect(
    state: &AppState,
    tenant: &Tenant,
    redirect_uri: &str,
    client_state: Option<&String>,
    error: &AuthorizeError,
) -> Response {
    metrics::counter!("portcullis_authorize_errors_total", "error" => error.code).increment(1);
    let mut pairs = vec![
        ("error", error.code.to_owned()),
        ("error_description", error.description.clone()),
    ];
    if let Some(client_state) = client_state {
        pairs.push(("state", client_state.clone()));
    }
    back_to_client(state, tenant, redirect_uri, pairs)
}

/// A redirect to the client's (already checked) redirect URI with `pairs` and `iss` added to
/// its query.
fn back_to_client(
    state: &AppState,
    tenant: &Tenant,
    redirect_uri: &str,
    mut pairs: Vec<(&str, String)>,
) -> Response {
    pairs.push(("iss", issuer(state, tenant)));
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            let cleared = [
                set_cookie(state, CONTINUE_COOKIE, "", Some(0)),
                set_cookie(state, RETURN_ORIGIN_COOKIE, "", Some(0)),
            ];
            with_cookies(Redirect::to(url.as_str()).into_response(), cleared)
        }
        Err(_) => PageError::Internal(format!(
            "registered redirect URI {redirect_uri:?} does not parse"
        ))
        .into_response(),
    }
}

/// Where the pages return to when the user has done what a kept request needed.
fn resume_path(tenant: &Tenant, client: ServicePrincipalId, handle: &str) -> String {
    format!(
        "/t/{}/oauth/authorize?client_id={client}&request_uri={}",
        tenant.name,
        urlencode(&format!("{REQUEST_URI_PREFIX}{handle}"))
    )
}

enum Ask<'a> {
    SignIn,
    /// An account page that must be visited first (`password`, `mfa`).
    Page(&'static str),
    StepUp,
    /// A stronger sign-in than the application asked for, because conditional access does.
    StepUpTo(Assurance),
    Consent(&'a Session),
}

/// Conditional access on the person's authorization of this application, from their browser,
/// with what their session proved. A refusal is recorded in the sign-in log.
async fn admitted(
    state: &AppState,
    tenant: &Tenant,
    origin: &portcullis_core::audit::Origin,
    pending: &Pending,
    session: &Session,
) -> Result<(Verdict, SessionControls), PageError> {
    // Most tenants have no policies: then nothing more is read.
    let held = conditional::snapshot(state, tenant.id, Freshness::Held)
        .await
        .map_err(crate::error::ApiError::from)?;
    if held.access.is_empty() {
        return Ok((Verdict::Allow, SessionControls::default()));
    }
    let user = state.store.user(tenant.id, session.user_id).await?;
    let client_type = match pending.settings.client_type {
        portcullis_core::oauth::ClientType::Public => ClientType::Native,
        portcullis_core::oauth::ClientType::Confidential => ClientType::Browser,
    };
    let judged = conditional::for_user(
        state,
        &user,
        Application::Client(pending.client),
        client_type,
        origin,
        Freshness::Held,
    )
    .await
    .map_err(crate::error::ApiError::from)?;
    let proofs = Proofs {
        strength: Some(session.strength),
        terms_accepted: conditional::terms_accepted(state, &judged, user.id).await?,
        ..Proofs::default()
    };
    let (verdict, evaluation) = conditional::verdict(&judged, &proofs);
    let controls = evaluation.session;
    if let Verdict::Refuse(why) = &verdict {
        conditional::record_refusal(
            state,
            &judged,
            &evaluation.refused(),
            why,
            "authorization",
            origin,
        )
        .await?;
    }
    Ok((verdict, controls))
}

/// Keeps the request (if not kept yet) and sends the user where they must act; that page
/// returns here when done.
async fn ask(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    pending: Pending,
    what: Ask<'_>,
) -> Result<Response, PageError> {
    let handle = match &pending.handle {
        Some(handle) => handle.clone(),
        None => {
            let handle = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
            let kept = PendingRequest {
                client_id: pending.client,
                request: json!(pending.request).to_string(),
                pushed: false,
                created_at: pending.created_at,
            };
            let expires_at = state.clock.now() + Duration::seconds(CONTINUE_SECONDS);
            state
                .store
                .save_authorization_request(
                    tenant.id,
                    &secret_hash(state, &handle),
                    &kept,
                    expires_at,
                )
                .await?;
            handle
        }
    };
    let back = resume_path(tenant, pending.client, &handle);
    let remember = [
        set_cookie(state, CONTINUE_COOKIE, &back, Some(CONTINUE_SECONDS)),
        set_cookie(
            state,
            RETURN_ORIGIN_COOKIE,
            &origin_source(&pending.request.redirect_uri)
                .unwrap_or_default()
                .replace(':', "%3A")
                .replace('/', "%2F"),
            Some(CONTINUE_SECONDS),
        ),
    ];
    let to = match what {
        Ask::SignIn => {
            let hint = pending
                .request
                .login_hint
                .as_deref()
                .map(|h| format!("?login_hint={}", urlencode(h)))
                .unwrap_or_default();
            format!("/t/{}/sign-in{hint}", tenant.name)
        }
        Ask::Page(page) => format!("/t/{}/account/{page}", tenant.name),
        Ask::StepUp => {
            super::step_up::Target::link(&tenant.name, &back, pending.request.assurance())
        }
        Ask::StepUpTo(need) => super::step_up::Target::link(&tenant.name, &back, need),
        Ask::Consent(session) => {
            return consent_page(state, tenant, headers, &pending, session, &handle, remember)
                .await;
        }
    };
    Ok(with_cookies(Redirect::to(&to).into_response(), remember))
}

/// A grant of `session`'s sign-in to `client` for `scopes` at `audience`, whose one-time code
/// (kept as `code_hash`) lasts until `code_expires_at`, and which itself lasts as long as
/// anything issued from it may be used.
pub(super) fn session_grant(
    session: &Session,
    client: ServicePrincipalId,
    settings: &ClientSettings,
    (scopes, audience): (Vec<String>, String),
    code_hash: String,
    code_expires_at: time::OffsetDateTime,
) -> NewGrant {
    let mut lifetime = i64::from(settings.access_token_seconds);
    if settings.grants(GrantType::RefreshToken) {
        lifetime = lifetime.max(i64::from(settings.refresh_chain_seconds));
    }
    NewGrant {
        id: GrantId::generate(),
        client_id: client,
        user_id: session.user_id,
        session_id: session.id,
        scopes,
        audience,
        auth_time: session.authenticated_at(),
        acr: acr_value(session.strength).to_owned(),
        amr: session.amr(),
        nonce: None,
        redirect_uri: String::new(),
        code_challenge: String::new(),
        code_hash,
        code_expires_at,
        expires_at: code_expires_at + Duration::seconds(lifetime),
        token_seconds: None,
    }
}

async fn issue_code(
    state: &AppState,
    tenant: &Tenant,
    origin: portcullis_core::audit::Origin,
    session: &Session,
    (pending, controls): (Pending, SessionControls),
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let request = pending.request;
    let settings = &pending.settings;
    let user = state.store.user(tenant.id, session.user_id).await?;
    let code = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
    let code_hash = secret_hash(state, &code);
    let code_expires_at = now + Duration::seconds(CODE_SECONDS);
    let grant = NewGrant {
        nonce: request.nonce.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        token_seconds: controls
            .max_token_lifetime_minutes
            .map(|m| m.saturating_mul(60)),
        ..session_grant(
            session,
            pending.client,
            settings,
            (request.scopes.clone(), request.audience.clone()),
            code_hash,
            code_expires_at,
        )
    };
    let ctx = user_context(tenant, &user, origin, now);
    state.store.create_grant(&ctx, &grant).await?;
    if let Some(handle) = &pending.handle {
        state
            .store
            .answer_authorization_request(&secret_hash(state, handle), now)
            .await?;
    }
    metrics::counter!("portcullis_authorization_codes_total").increment(1);
    let mut pairs = vec![("code", code)];
    if let Some(client_state) = request.state {
        pairs.push(("state", client_state));
    }
    Ok(back_to_client(state, tenant, &request.redirect_uri, pairs))
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    application: &'a str,
    user_name: &'a str,
    scopes: Vec<(String, String)>,
    request: &'a str,
    error: Option<String>,
    notice: Option<String>,
}

/// What a scope lets the application do, in words.
pub(super) fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account id)".into(),
        "profile" => "See your name and user name".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Keep access while you are signed out".into(),
        other => format!("Use {other:?} for you"),
    }
}

async fn consent_page(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    pending: &Pending,
    session: &Session,
    handle: &str,
    remember: [axum::http::HeaderValue; 2],
) -> Result<Response, PageError> {
    let application = state
        .store
        .service_principal(tenant.id, pending.client)
        .await?;
    let user = state.store.user(tenant.id, session.user_id).await?;
    let (csrf, set) = csrf_token(state, headers)?;
    let page = ConsentPage {
        tenant: TenantFace::of(tenant),
        csrf: &csrf,
        application: &application.name,
        user_name: &user.user_name,
        scopes: pending
            .request
            .scopes
            .iter()
            .map(|s| (s.clone(), describe(s)))
            .collect(),
        request: handle,
        error: None,
        notice: None,
    };
    let mut response = with_cookies(html(&page), set.into_iter().chain(remember));
    // This page's form ends in a redirect to the application: allow its origin.
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        content_security_policy(origin_source(&pending.request.redirect_uri).as_deref()),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct ConsentForm {
    csrf: String,
    request: String,
    decision: String,
}

/// The user's answer on the consent page: approval is remembered and the request goes on;
/// refusal sends `access_denied` back to the application.
pub(super) async fn consent(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let handle_hash = secret_hash(&state, &form.request);
    let now = state.clock.now();
    // The form names a request this server kept for this page; gone means its application
    // was removed meanwhile, or the form was tampered with.
    let kept = state
        .store
        .authorization_request(me.tenant.id, &handle_hash)
        .await?
        .ok_or(PageError::NotFound(
            "This sign-in request does not exist any more: the application may have been removed. Go back to the application and start again.",
        ))?;
    if !answerable(&kept, now) {
        return Err(expired().into());
    }
    let kept = kept.pending;
    let request: AuthorizationRequest = serde_json::from_str(&kept.request)
        .map_err(|e| PageError::Internal(format!("kept authorization request: {e}")))?;
    if form.decision != "allow" {
        state
            .store
            .answer_authorization_request(&handle_hash, now)
            .await?;
        return Ok(refuse(
            &state,
            &me.tenant,
            &request,
            "access_denied",
            "the user did not allow access",
        ));
    }
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    state
        .store
        .record_consent(&ctx, me.user.id, kept.client_id, &request.scopes)
        .await?;
    let back = resume_path(&me.tenant, kept.client_id, &form.request);
    Ok(Redirect::to(&back).into_response())
}
