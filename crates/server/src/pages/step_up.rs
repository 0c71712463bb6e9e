//! Step-up: a page that needs a fresher or stronger sign-in than the session has sends the
//! browser to `/t/{tenant}/step-up?to=…&strength=…&max_age=…`, which asks only for what is
//! missing — the password again, the second factor alone, or a passkey — adds each proof to the
//! session (with a new token), and returns to the page once nothing is missing.

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

use portcullis_core::session::{Assurance, MethodUse, StepUp, Strength, new_session_token};

use super::{
    NotSignedIn, PageError, PageKind, SESSION_COOKIE, SignedIn, check_csrf, csrf_token, html,
    knows_password, record_failure, same_tenant_path, set_cookie, signed_in, token_hash, urlencode,
    user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;
use crate::throttle::{Backoff, BackoffPolicy, Reservation};

/// Where to go once the session is strong enough, and what "enough" is. Sent as query
/// parameters and carried through every form, all as text: nothing here is trusted.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Target {
    to: Option<String>,
    strength: Option<String>,
    max_age: Option<String>,
}

/// Longest `max_age` worth asking for: a session lives 12 hours at most.
const MAX_AGE_LIMIT: i64 = 12 * 3600;
/// Shortest: a proof must stay fresh long enough to get back to the page that asked for it.
const MAX_AGE_FLOOR: i64 = 60;

impl Target {
    /// The link that asks for `need` before returning to `to` (a path of the same tenant).
    pub(super) fn link(tenant: &str, to: &str, need: Assurance) -> String {
        let mut link = format!(
            "/t/{tenant}/step-up?to={}&strength={}",
            urlencode(to),
            need.strength.as_str()
        );
        if let Some(age) = need.max_age {
            link.push_str(&format!("&max_age={}", age.whole_seconds()));
        }
        link
    }

    fn need(&self) -> Assurance {
        Assurance {
            strength: self
                .strength
                .as_deref()
                .and_then(Strength::parse)
                .unwrap_or(Strength::Password),
            max_age: self
                .max_age
                .as_deref()
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| Duration::seconds(s.clamp(MAX_AGE_FLOOR, MAX_AGE_LIMIT))),
        }
    }

    /// Where to return: a path inside this tenant's pages, never another site (no open
    /// redirect), else the account page.
    fn destination(&self, tenant: &str) -> String {
        self.to
            .as_deref()
            .and_then(|to| same_tenant_path(tenant, to))
            .unwrap_or_else(|| format!("/t/{tenant}/account"))
    }

    fn again(&self, tenant: &str) -> String {
        Self::link(tenant, &self.destination(tenant), self.need())
    }
}

#[derive(Template)]
#[template(path = "step_up.html")]
struct StepUpPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    user_name: &'a str,
    ask: Ask,
    to: String,
    strength: &'static str,
    max_age: String,
    passkeys: bool,
    error: Option<String>,
    notice: Option<String>,
}

/// What the page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Password,
    Code,
    /// Only a passkey will do (or it is the only second factor the user has).
    Passkey,
    /// The user has nothing that can prove what is needed.
    Nothing,
}

async fn render(
    state: &AppState,
    me: &SignedIn,
    target: &Target,
    csrf: &str,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let need = target.need();
    let step = me.session.step_up(need, state.clock.now());
    let has_passkey = super::passkeys::relying_party(state, &me.tenant)
        .await?
        .is_some()
        && !state
            .store
            .passkeys(me.tenant.id, me.user.id)
            .await?
            .is_empty();
    let has_code = state
        .store
        .totp(me.tenant.id, me.user.id)
        .await?
        .is_some_and(|t| t.confirmed);
    let ask = match step {
        StepUp::Satisfied => {
            return Ok(Redirect::to(&target.destination(&me.tenant.name)).into_response());
        }
        StepUp::Password => Ask::Password,
        StepUp::SecondFactor if has_code => Ask::Code,
        StepUp::SecondFactor | StepUp::Passkey if has_passkey => Ask::Passkey,
        StepUp::SecondFactor | StepUp::Passkey => Ask::Nothing,
    };
    let page = StepUpPage {
        tenant: TenantFace::of(&me.tenant),
        csrf,
        user_name: &me.user.user_name,
        ask,
        to: target.destination(&me.tenant.name),
        strength: need.strength.as_str(),
        max_age: need
            .max_age
            .map(|a| a.whole_seconds().to_string())
            .unwrap_or_default(),
        passkeys: has_passkey,
        error,
        notice: None,
    };
    Ok((status, html(&page)).into_response())
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(target): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = render(&state, &me, &target, &csrf, StatusCode::OK, None).await?;
    Ok(with_cookies(page, set))
}

/// Adds a proof to the session, replaces its token, and goes back to see what is still missing.
async fn proved(
    state: &AppState,
    me: &SignedIn,
    target: &Target,
    method: &str,
) -> Result<Response, PageError> {
    let token = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), now);
    state
        .store
        .step_up_session(
            &ctx,
            &me.session,
            token_hash(state, &token),
            MethodUse {
                method: method.into(),
                at: now,
            },
        )
        .await?;
    let cookie = set_cookie(state, SESSION_COOKIE, &token, None);
    Ok(with_cookies(
        Redirect::to(&target.again(&me.tenant.name)).into_response(),
        [cookie],
    ))
}

/// The account's back-off key, shared with password sign-in: step-up is no way around it.
fn account_key(me: &SignedIn) -> String {
    super::account_backoff_key(me.tenant.id, &me.user.user_name)
}

/// A refused proof (its reservation already counted against the account): audited, and the
/// page again.
async fn refused(
    state: &AppState,
    me: &SignedIn,
    target: &Target,
    headers: &HeaderMap,
    (reason, method): (&str, &str),
    message: &str,
) -> Result<Response, PageError> {
    record_failure(
        state,
        &me.tenant,
        Some(&me.user),
        reason,
        method,
        &me.origin,
    )
    .await?;
    let (csrf, _) = csrf_token(state, headers)?;
    render(
        state,
        me,
        target,
        &csrf,
        StatusCode::UNAUTHORIZED,
        Some(message.to_owned()),
    )
    .await
}

/// One proof attempt reserved against `backoff`'s `key` before it is checked, or the page
/// that refuses it while the key is backing off.
async fn reserve<'a>(
    state: &'a AppState,
    (backoff, key, policy): (&'a Backoff, &str, BackoffPolicy),
    (me, method): (&SignedIn, &'static str),
    target: &Target,
    headers: &HeaderMap,
) -> Result<Result<Reservation<'a>, Response>, PageError> {
    let wait = match backoff.reserve(key, state.clock.now(), &policy).await? {
        Ok(reservation) => return Ok(Ok(reservation)),
        Err(wait) => wait,
    };
    super::note_throttled(
        state,
        &me.tenant,
        Some(&me.user.user_name),
        method,
        &me.origin,
    );
    let (csrf, _) = csrf_token(state, headers)?;
    let message = format!(
        "Too many failed attempts. Wait {} seconds and try again.",
        wait.as_secs().max(1)
    );
    let page = render(state, me, target, &csrf, StatusCode::OK, Some(message)).await?;
    Ok(Err(super::too_many(wait, |_| page)))
}

/// A password or code attempt, reserved against the account's back-off (shared with sign-in).
async fn reserve_account<'a>(
    state: &'a AppState,
    me: &SignedIn,
    method: &'static str,
    target: &Target,
    headers: &HeaderMap,
) -> Result<Result<Reservation<'a>, Response>, PageError> {
    let policy = super::account_backoff(&state.store.sign_in_settings(me.tenant.id).await?);
    let key = account_key(me);
    let backoff = (&state.sign_in_accounts, key.as_str(), policy);
    reserve(state, backoff, (me, method), target, headers).await
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    csrf: String,
    password: String,
    #[serde(flatten)]
    target: Target,
}

pub(super) async fn password(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let attempt = match reserve_account(&state, &me, "pwd", &form.target, &headers).await? {
        Ok(attempt) => attempt,
        Err(throttled) => return Ok(throttled),
    };
    if !knows_password(&state, &me, form.password).await? {
        drop(attempt);
        let why = ("bad password", "pwd");
        let message = "That password is not right.";
        return Ok(refused(&state, &me, &form.target, &headers, why, message).await?);
    }
    // Proving the password again neither adds to nor clears the account's back-off.
    attempt.refund().await;
    Ok(proved(&state, &me, &form.target, "pwd").await?)
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    csrf: String,
    code: Option<String>,
    recovery_code: Option<String>,
    #[serde(flatten)]
    target: Target,
}

pub(super) async fn code(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let attempt = match reserve_account(&state, &me, "otp", &form.target, &headers).await? {
        Ok(attempt) => attempt,
        Err(throttled) => return Ok(throttled),
    };
    let (accepted, method, reason) = super::mfa::check_code(
        &state,
        me.tenant.id,
        me.user.id,
        form.code.as_deref(),
        form.recovery_code.as_deref(),
    )
    .await?;
    if !accepted {
        drop(attempt);
        let message =
            "That code is not right, or was already used. Enter the current code from your app.";
        return Ok(refused(
            &state,
            &me,
            &form.target,
            &headers,
            (reason, method),
            message,
        )
        .await?);
    }
    attempt.refund().await;
    Ok(proved(&state, &me, &form.target, method).await?)
}

#[derive(Deserialize)]
pub(super) struct PasskeyForm {
    csrf: String,
    ceremony: String,
    credential: String,
    #[serde(flatten)]
    target: Target,
}

pub(super) async fn passkey(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<PasskeyForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let Some(rp) = super::passkeys::relying_party(&state, &me.tenant).await? else {
        return Err(PageError::NotAllowed("Passkeys are not in use here.").into());
    };
    let address = me.origin.source_ip.clone().unwrap_or_default();
    let backoff = (
        &state.sign_in_addresses,
        address.as_str(),
        super::ADDRESS_BACKOFF,
    );
    let attempt = match reserve(&state, backoff, (&me, "hwk"), &form.target, &headers).await? {
        Ok(attempt) => attempt,
        Err(throttled) => return Ok(throttled),
    };
    let verdict =
        super::passkeys::verify_sign_in(&state, &me.tenant, rp, &form.ceremony, &form.credential)
            .await?;
    // Only the signed-in user's own passkey proves anything about this session.
    let reason = match verdict {
        Ok(((id, moved), user)) if user.id == me.user.id => {
            state
                .store
                .passkey_used(me.tenant.id, id, moved, state.clock.now())
                .await?;
            attempt.refund().await;
            return Ok(proved(&state, &me, &form.target, "hwk").await?);
        }
        Ok(_) => "passkey of another user",
        Err((reason, _)) => reason,
    };
    drop(attempt);
    record_failure(
        &state,
        &me.tenant,
        Some(&me.user),
        reason,
        "hwk",
        &me.origin,
    )
    .await?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let message = "That passkey could not confirm it is you. Use one of your own passkeys.";
    Ok(render(
        &state,
        &me,
        &form.target,
        &csrf,
        StatusCode::UNAUTHORIZED,
        Some(message.into()),
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(to: &str) -> Target {
        Target {
            to: Some(to.into()),
            ..Target::default()
        }
    }

    #[test]
    fn returns_only_inside_the_tenant() {
        assert_eq!(
            target("/t/acme/account/passkeys").destination("acme"),
            "/t/acme/account/passkeys"
        );
        for hostile in [
            "https://evil.example/",
            "//evil.example/t/acme/",
            "/t/acme//evil.example",
            "/t/other/account",
            "/t/acme/\\evil",
            "/t/acme/a\nb",
        ] {
            assert_eq!(target(hostile).destination("acme"), "/t/acme/account");
        }
    }

    #[test]
    fn reads_what_is_needed_and_links_back() {
        let need = Assurance {
            strength: Strength::Mfa,
            max_age: Some(Duration::minutes(15)),
        };
        let link = Target::link("acme", "/t/acme/account/passkeys?x=1", need);
        assert_eq!(
            link,
            "/t/acme/step-up?to=/t/acme/account/passkeys%3Fx%3D1&strength=mfa&max_age=900"
        );
        let parsed = Target {
            to: None,
            strength: Some("mfa".into()),
            max_age: Some("900".into()),
        };
        assert_eq!(parsed.need(), need);
        let hostile = Target {
            to: None,
            strength: Some("admin".into()),
            max_age: Some("-5".into()),
        };
        assert_eq!(
            hostile.need(),
            Assurance {
                strength: Strength::Password,
                max_age: Some(Duration::minutes(1))
            }
        );
    }
}
