//! Getting back in and proving an address: "Forgot your password?" mails a single-use reset
//! link to the address on the account, answering the same whether or not there is one; a
//! verification link proves the address is the user's (the `email_verified` claim).

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::identity::Tenant;
use portcullis_core::mail::LinkPurpose;
use portcullis_core::names::{MAX_NAME_CHARS, name_key};

use super::enrol::{link_user, unusable};
use super::{
    NotSignedIn, PageError, PageKind, active_tenant, check_csrf, csrf_token, html, signed_in,
    token_hash, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    /// Whether this server mails reset links at all.
    mail: bool,
    /// The request was taken: the form is not shown again.
    sent: bool,
    error: Option<String>,
    notice: Option<String>,
}

pub(super) async fn forgot_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = ForgotPage {
        tenant: TenantFace::of(&tenant),
        csrf: &csrf,
        mail: state.config.mail.is_some(),
        sent: false,
        error: None,
        notice: None,
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
pub(super) struct ForgotForm {
    csrf: String,
    account: String,
}

/// Takes a reset request and answers at once, the same for every account name: the lookup
/// and the write happen afterwards, so neither the words nor the time it takes tell whether
/// the account exists. Each address may ask a few times a minute; each account receives at
/// most a few messages an hour (counted in the write, across nodes).
pub(super) async fn forgot_submit(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let mut page = ForgotPage {
        tenant: TenantFace::of(&tenant),
        csrf: &form.csrf,
        mail: state.config.mail.is_some(),
        sent: false,
        error: None,
        notice: None,
    };
    if !page.mail {
        return Ok(html(&page));
    }
    let account = form.account.trim();
    if account.is_empty() || account.chars().count() > MAX_NAME_CHARS {
        page.error = Some(format!(
            "Type your user name or e-mail address (at most {MAX_NAME_CHARS} characters)."
        ));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response());
    }
    let address = origin.source_ip.clone().unwrap_or_default();
    if let Err(wait) = state
        .failures
        .take(&format!("forgot:{address}"), std::time::Instant::now())
    {
        page.error = Some(format!(
            "Too many requests from your network. Wait {wait} seconds and try again."
        ));
        return Ok((StatusCode::TOO_MANY_REQUESTS, html(&page)).into_response());
    }
    let key = name_key(account);
    tokio::spawn(request_reset(state.clone(), tenant.clone(), key, origin));
    page.sent = true;
    page.notice = Some(
        "If an account with that name or address has an e-mail address, a link to choose a new password is on its way to it. It works once, for one hour. Check your inbox and spam folder."
            .into(),
    );
    Ok(html(&page))
}

/// Mails a reset link to the account named `key`, if there is an active one with an address;
/// records a refusal in the audit trail otherwise, where only administrators see it.
async fn request_reset(state: AppState, tenant: Tenant, key: String, origin: Origin) {
    let refused = |reason: &str| NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "user.password_reset.request".into(),
        target: None,
        outcome: Outcome::Failure,
        reason: Some(reason.to_owned()),
        origin: origin.clone(),
        details: json!({}),
    };
    let outcome = async {
        let Some(user) = state.store.user_by_name_or_email(tenant.id, &key).await? else {
            return Ok(Some(refused("no such account")));
        };
        // Whether the account may get one (active, with an address, under the hourly limit)
        // is the store's to decide, inside the write that creates the link.
        let mut ctx = user_context(&tenant, &user, origin.clone(), state.clock.now());
        ctx.actor = Actor::anonymous();
        let issued = crate::mail::issue_link(
            &state,
            &ctx,
            &tenant.name,
            (user.id, LinkPurpose::Reset),
            LinkPurpose::Reset.default_hours(),
            true,
        )
        .await;
        match issued {
            Ok(_) => Ok(None),
            Err(crate::error::ApiError::Conflict { detail, .. }) => {
                let mut event = refused(&detail);
                event.target = Some(Target::new("user", user.id));
                Ok(Some(event))
            }
            Err(error) => Err(error),
        }
    }
    .await;
    let written = match outcome {
        Ok(None) => Ok(()),
        Ok(Some(event)) => state.audit.append(event).await.map(|_| ()),
        Err(error) => {
            tracing::error!(%error, "a password reset request failed");
            Ok(())
        }
    };
    if let Err(error) = written {
        tracing::error!(%error, "a refused password reset could not be audited");
    }
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    token: &'a str,
    /// The address to confirm, while the link can be used.
    email: Option<String>,
    user_name: Option<String>,
    confirmed: bool,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct VerifyQuery {
    #[serde(default)]
    token: String,
}

/// The page a verification link opens: one button confirms. A mail scanner that follows
/// links confirms nothing, as only the button's post uses the link.
pub(super) async fn verify_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<VerifyQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let address = origin.source_ip.unwrap_or_default();
    let found = link_user(
        &state,
        &tenant,
        (LinkPurpose::Verify, &query.token),
        &address,
    )
    .await?;
    let mut page = VerifyPage {
        tenant: TenantFace::of(&tenant),
        csrf: &csrf,
        token: &query.token,
        email: None,
        user_name: None,
        confirmed: false,
        error: None,
        notice: None,
    };
    let status = match found {
        Ok(user) => {
            page.email = user.email;
            page.user_name = Some(user.user_name);
            StatusCode::OK
        }
        Err(why) => {
            let (status, message) = unusable(why, LinkPurpose::Verify);
            page.error = Some(message.into());
            status
        }
    };
    Ok(with_cookies((status, html(&page)).into_response(), set))
}

#[derive(Deserialize)]
pub(super) struct VerifyForm {
    csrf: String,
    token: String,
}

pub(super) async fn verify_submit(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let address = origin.source_ip.clone().unwrap_or_default();
    let mut page = VerifyPage {
        tenant: TenantFace::of(&tenant),
        csrf: &form.csrf,
        token: &form.token,
        email: None,
        user_name: None,
        confirmed: false,
        error: None,
        notice: None,
    };
    let refuse = |page: &mut VerifyPage<'_>, why| {
        let (status, message) = unusable(why, LinkPurpose::Verify);
        page.error = Some(message.into());
        (status, html(&*page)).into_response()
    };
    let user = match link_user(
        &state,
        &tenant,
        (LinkPurpose::Verify, &form.token),
        &address,
    )
    .await?
    {
        Ok(user) => user,
        Err(why) => return Ok(refuse(&mut page, why)),
    };
    let ctx = user_context(&tenant, &user, origin, state.clock.now());
    let redeemed = state
        .store
        .redeem_verification_link(&ctx, &token_hash(&state, &form.token))
        .await?;
    if let Err(why) = redeemed {
        return Ok(refuse(&mut page, why));
    }
    page.confirmed = true;
    page.notice = Some(format!(
        "Thank you: {} is confirmed as the address of {}.",
        user.email.as_deref().unwrap_or_default(),
        user.user_name
    ));
    Ok(html(&page))
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf: String,
}

/// A signed-in user asks for a link to confirm their own address (a few an hour: the store
/// counts them).
pub(super) async fn account_verification(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    if state.config.mail.is_none() {
        return Err(PageError::Conflict(
            "this server sends no mail, so addresses cannot be confirmed by a link".into(),
        )
        .into());
    }
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    crate::mail::issue_link(
        &state,
        &ctx,
        &me.tenant.name,
        (me.user.id, LinkPurpose::Verify),
        LinkPurpose::Verify.default_hours(),
        true,
    )
    .await
    .map_err(PageError::from)?;
    let to = format!("/t/{}/account?done=verification", me.tenant.name);
    Ok(Redirect::to(&to).into_response())
}
