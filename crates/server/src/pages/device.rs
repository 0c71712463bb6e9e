//! The verification page of the device authorization grant (RFC 8628 §3.3): a signed-in user
//! types the code their device shows, sees which application asks for what, and allows or
//! denies it. Wrong codes count against the address and the user (the per-minute failure
//! limit), so user codes cannot be guessed at speed; a code is answered once.

use crate::pages::TenantFace;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use portcullis_core::device::displayed_user_code;
use portcullis_core::session::StepUp;
use portcullis_store::{DeviceAuthorization, DeviceDecision};

use super::authorize::{describe, session_grant};
use super::step_up::Target as StepUpTarget;
use super::{
    CONTINUE_COOKIE, CONTINUE_SECONDS, NotSignedIn, PageError, PageKind, SignedIn, check_csrf,
    csrf_token, html, set_cookie, signed_in, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::oauth::user_code_hash;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    user_name: &'a str,
    /// What the user typed, to show again with an error.
    typed: &'a str,
    confirm: Option<Confirm>,
    finished: bool,
    error: Option<String>,
    notice: Option<String>,
}

/// What the user is asked to allow.
struct Confirm {
    user_code: String,
    application: String,
    scopes: Vec<(String, String)>,
    /// The tokens would be for Portcullis's own admin API.
    administers: bool,
}

#[derive(Deserialize)]
pub(super) struct Prefilled {
    user_code: Option<String>,
}

/// The code entry form, filled in from `verification_uri_complete`. Nothing is looked up
/// before the user sends it: a link alone never shows or approves anything.
pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Query(prefilled): Query<Prefilled>,
) -> Result<Response, NotSignedIn> {
    let typed = prefilled
        .user_code
        .as_deref()
        .and_then(displayed_user_code)
        .unwrap_or_default();
    let me = match signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await {
        Err(NotSignedIn::Redirect(to_sign_in)) => {
            // Back here, code and all, once signed in.
            let back = format!("/t/{tenant}/device?user_code={typed}");
            let remember = set_cookie(&state, CONTINUE_COOKIE, &back, Some(CONTINUE_SECONDS));
            return Err(NotSignedIn::Redirect(with_cookies(to_sign_in, [remember])));
        }
        other => other?,
    };
    Ok(render(&state, &headers, &me, &typed, None, None)?)
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    csrf: String,
    user_code: String,
}

/// The code the user typed: what it asks for, to allow or deny.
pub(super) async fn submit(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let request = match pending_request(&state, &me, &form.user_code).await? {
        Ok(request) => request,
        Err(refused) => {
            return Ok(render(
                &state,
                &headers,
                &me,
                &form.user_code,
                None,
                Some(refused),
            )?);
        }
    };
    if let Some(step_up) = step_up_first(&state, &me, &request, &form.user_code) {
        return Ok(step_up);
    }
    let application = state
        .store
        .service_principal(me.tenant.id, request.client_id)
        .await?;
    let confirm = Confirm {
        user_code: displayed_user_code(&form.user_code).unwrap_or_default(),
        application: application.name,
        scopes: request
            .scopes
            .iter()
            .map(|s| (s.clone(), describe(s)))
            .collect(),
        administers: request.audience == crate::auth::admin_api_resource(&state),
    };
    Ok(render(&state, &headers, &me, "", Some(confirm), None)?)
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    csrf: String,
    user_code: String,
    decision: String,
}

/// Allow or deny: recorded once; an approval records the grant the device then redeems.
pub(super) async fn decide(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let request = match pending_request(&state, &me, &form.user_code).await? {
        Ok(request) => request,
        Err(refused) => {
            return Ok(render(
                &state,
                &headers,
                &me,
                &form.user_code,
                None,
                Some(refused),
            )?);
        }
    };
    if form.decision == "allow"
        && let Some(step_up) = step_up_first(&state, &me, &request, &form.user_code)
    {
        return Ok(step_up);
    }
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    let (decision, grant) = if form.decision == "allow" {
        let Some(settings) = state
            .store
            .oauth_client(me.tenant.id, request.client_id)
            .await?
        else {
            return Err(PageError::NotFound(
                "The application that asked for this code is no longer an OAuth client.",
            )
            .into());
        };
        let grant = session_grant(
            &me.session,
            request.client_id,
            &settings,
            (request.scopes.clone(), request.audience.clone()),
            request.device_code_hash.clone(),
            request.expires_at,
        );
        (DeviceDecision::Approved, Some(grant))
    } else {
        (DeviceDecision::Denied, None)
    };
    let recorded = state
        .store
        .decide_device_authorization(&ctx, &request, decision, grant.as_ref())
        .await?;
    if !recorded {
        return Err(PageError::Conflict(
            "this code was answered meanwhile, or it has expired".into(),
        )
        .into());
    }
    let notice = match decision {
        DeviceDecision::Approved => "Allowed: your device is signed in.",
        DeviceDecision::Denied => "Denied: your device was not signed in.",
    };
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = DevicePage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        user_name: &me.user.user_name,
        typed: "",
        confirm: None,
        finished: true,
        error: None,
        notice: Some(notice.into()),
    };
    Ok(with_cookies(html(&page), set))
}

/// When the device asked for a stronger or more recent sign-in than this session has: the
/// step-up page, which asks only for what is missing and comes back to this code. The grant
/// then carries the session as it is after the step-up.
fn step_up_first(
    state: &AppState,
    me: &SignedIn,
    request: &DeviceAuthorization,
    typed: &str,
) -> Option<Response> {
    let need = request.need?;
    if me.session.step_up(need, state.clock.now()) == StepUp::Satisfied {
        return None;
    }
    let code = displayed_user_code(typed).unwrap_or_default();
    let back = format!("/t/{}/device?user_code={code}", me.tenant.name);
    let link = StepUpTarget::link(&me.tenant.name, &back, need);
    Some(Redirect::to(&link).into_response())
}

/// The unanswered, unexpired request a typed code names, or why not. Each miss counts against
/// the address and the user; past the per-minute limit every attempt is refused unanswered.
async fn pending_request(
    state: &AppState,
    me: &SignedIn,
    typed: &str,
) -> Result<Result<DeviceAuthorization, String>, PageError> {
    let started = Instant::now();
    let keys = [
        format!(
            "device:ip:{}",
            me.origin.source_ip.as_deref().unwrap_or("unknown")
        ),
        format!("device:user:{}", me.user.id),
    ];
    if let Some(seconds) = keys
        .iter()
        .filter_map(|key| state.failures.blocked_for(key, started))
        .max()
    {
        return Err(PageError::Refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many wrong codes. Wait {seconds} seconds, then try again."),
        ));
    }
    let now = state.clock.now();
    let found = match user_code_hash(state, typed) {
        Some(hash) => state
            .store
            .device_authorization_by_user_code(me.tenant.id, &hash)
            .await?
            .filter(|r| r.decision.is_none() && now < r.expires_at),
        None => None,
    };
    let found = match found {
        Some(request)
            if crate::oauth::client_is_active(state, &me.tenant, request.client_id).await? =>
        {
            Some(request)
        }
        _ => None,
    };
    if let Some(request) = found {
        return Ok(Ok(request));
    }
    for key in &keys {
        // Counting the miss; a refusal here shows at the next attempt.
        let _ = state.failures.take(key, started);
    }
    Ok(Err(
        "That code is not valid: it may be mistyped, expired or already used. Check your device and try again, or start again there."
            .into(),
    ))
}

fn render(
    state: &AppState,
    headers: &HeaderMap,
    me: &SignedIn,
    typed: &str,
    confirm: Option<Confirm>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (csrf, set) = csrf_token(state, headers)?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = DevicePage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        user_name: &me.user.user_name,
        typed,
        confirm,
        finished: false,
        error,
        notice: None,
    };
    let mut response = with_cookies(html(&page), set);
    *response.status_mut() = status;
    Ok(response.into_response())
}
