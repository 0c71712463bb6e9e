//! The second factor: setting up an authenticator app (TOTP) with recovery codes, and the sign-in
//! step that asks for a code after the password. Between the two steps the browser holds a
//! short-lived challenge, MACed by the server, naming the user and when the password was right.

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use time::OffsetDateTime;

use portcullis_core::identity::{Tenant, User};
use portcullis_core::secrets::random_bytes;
use portcullis_core::signin::Step;
use portcullis_core::totp::TotpSecret;
use portcullis_core::{TenantId, UserId};
use portcullis_store::StoreError;

use super::{
    NotSignedIn, PageError, PageKind, Tried, active_tenant, check_csrf, cookie_name, csrf_token,
    flow, html, read_cookie, set_cookie, signed_in, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;

pub(super) const CHALLENGE_COOKIE: &str = "portcullis_mfa";
/// How long the second step may take after the password.
const CHALLENGE_SECONDS: i64 = 300;
const RECOVERY_CODES: usize = 10;

fn challenge_mac(
    state: &AppState,
    tenant: TenantId,
    user: UserId,
    expires: i64,
    at: i64,
) -> String {
    let message = format!("mfa-challenge\0{tenant}\0{user}\0{expires}\0{at}");
    hex::encode(state.hasher.hash(message.as_bytes()))
}

/// Sends the browser to the code page with a challenge for `user`.
pub(super) fn challenge(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    now: OffsetDateTime,
) -> Result<Response, PageError> {
    let at = now.unix_timestamp();
    let expires = at + CHALLENGE_SECONDS;
    let value = format!(
        "{}.{expires}.{at}.{}",
        user.id,
        challenge_mac(state, tenant.id, user.id, expires, at)
    );
    let cookie = set_cookie(state, CHALLENGE_COOKIE, &value, Some(CHALLENGE_SECONDS));
    let to = format!("/t/{}/sign-in/code", tenant.name);
    Ok(with_cookies(Redirect::to(&to).into_response(), [cookie]))
}

/// The user whose password was right, and when, if the challenge is genuine and fresh.
fn read_challenge(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Option<(UserId, OffsetDateTime)> {
    let value = read_cookie(headers, &cookie_name(state, CHALLENGE_COOKIE))?;
    let mut parts = value.split('.');
    let user: UserId = parts.next()?.parse().ok()?;
    let expires: i64 = parts.next()?.parse().ok()?;
    let at: i64 = parts.next()?.parse().ok()?;
    let mac = hex::decode(parts.next()?).ok()?;
    let message = format!("mfa-challenge\0{}\0{user}\0{expires}\0{at}", tenant.id);
    let genuine = state.hasher.verify(message.as_bytes(), &mac);
    let fresh = state.clock.now().unix_timestamp() < expires;
    (genuine && fresh)
        .then(|| OffsetDateTime::from_unix_timestamp(at).ok())
        .flatten()
        .map(|at| (user, at))
}

#[derive(Template)]
#[template(path = "sign_in_code.html")]
struct CodePage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    error: Option<String>,
    notice: Option<String>,
}

pub(super) async fn code_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    if read_challenge(&state, &tenant, &headers).is_none() {
        return Ok(Redirect::to(&format!("/t/{}/sign-in", tenant.name)).into_response());
    }
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = CodePage {
        tenant: TenantFace::of(&tenant),
        csrf: &csrf,
        error: None,
        notice: None,
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    csrf: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

fn recovery_hash(state: &AppState, user: UserId, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(
        state
            .hasher
            .hash(format!("recovery\0{user}\0{normalized}").as_bytes()),
    )
}

fn open_totp(state: &AppState, user: UserId, sealed: &[u8]) -> Result<TotpSecret, PageError> {
    let bytes = state
        .kek
        .open(&format!("totp:{user}"), sealed)
        .map_err(|e| PageError::Internal(format!("cannot open a TOTP secret: {e}")))?;
    TotpSecret::from_bytes(bytes.expose_secret())
        .ok_or_else(|| PageError::Internal("a TOTP secret has the wrong length".into()))
}

pub(super) async fn submit_code(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let Some((user, password_at)) = challenged_user(&state, &tenant, &headers).await? else {
        return Ok(Redirect::to(&format!("/t/{}/sign-in", tenant.name)).into_response());
    };
    let (csrf, _) = csrf_token(&state, &headers)?;
    let page = |error: String| code_page_with_error(TenantFace::of(&tenant), &csrf, error);
    let at = state.clock.now();
    let wrong =
        "That code is not right, or was already used. Enter the current code from your app.";
    let wait = |seconds| format!("Too many wrong codes. Wait {seconds} seconds and try again.");
    let tried = attempt_code(&state, &tenant, &user, &form, &origin).await?;
    let method = match tried.or_page(page, wrong, wait) {
        Ok(method) => method,
        Err(response) => return Ok(*response),
    };
    let settings = state.store.sign_in_settings(tenant.id).await?;
    let step = Step::SecondFactor {
        password_at,
        method,
        at,
    };
    let finished =
        flow::complete(&state, &tenant, &settings, &user, step, origin, &headers).await?;
    Ok(finished.respond(page))
}

fn code_page_with_error(tenant: TenantFace<'_>, csrf: &str, error: String) -> Response {
    html(&CodePage {
        tenant,
        csrf,
        error: Some(error),
        notice: None,
    })
}

/// The user whose password step this browser completed, while they may still sign in;
/// `None` sends the browser back to the start (no challenge, or the user was disabled,
/// deleted or reached a guest's expiry since).
async fn challenged_user(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<(User, time::OffsetDateTime)>, PageError> {
    let Some((user_id, password_at)) = read_challenge(state, tenant, headers) else {
        return Ok(None);
    };
    match state.store.user(tenant.id, user_id).await {
        Ok(user) if user.is_usable(state.clock.now()) => Ok(Some((user, password_at))),
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One code attempt, reserved against the account's back-off before the code is checked: of
/// simultaneous guesses, only as many as the back-off allows are ever tried.
async fn attempt_code(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    form: &CodeForm,
    origin: &portcullis_core::audit::Origin,
) -> Result<Tried<&'static str>, PageError> {
    let attempt = match super::reserve_account(state, tenant.id, &user.user_name).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            let method = if form.code.as_deref().is_some_and(|c| !c.trim().is_empty()) {
                "otp"
            } else {
                "recovery_code"
            };
            super::note_throttled(state, tenant, Some(&user.user_name), method, origin);
            return Ok(Tried::Wait(wait));
        }
    };
    let (accepted, method, reason) = check_code(
        state,
        tenant.id,
        user.id,
        form.code.as_deref(),
        form.recovery_code.as_deref(),
    )
    .await?;
    if !accepted {
        drop(attempt);
        super::record_failure(state, tenant, Some(user), reason, method, origin).await?;
        return Ok(Tried::Refused);
    }
    attempt.succeeded().await;
    Ok(Tried::Accepted(method))
}

/// Checks a code from the authenticator app, or else a recovery code, using it up if right.
/// Returns whether it was accepted, the `amr` method, and the reason when refused.
pub(super) async fn check_code(
    state: &AppState,
    tenant_id: TenantId,
    user_id: UserId,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> Result<(bool, &'static str, &'static str), PageError> {
    let now = state.clock.now();
    Ok(match (code, recovery_code) {
        (Some(code), _) if !code.trim().is_empty() => {
            let stored = state.store.totp(tenant_id, user_id).await?;
            let step = match stored.filter(|t| t.confirmed) {
                Some(t) => open_totp(state, user_id, &t.secret_sealed)?
                    .check(
                        code,
                        now.unix_timestamp().max(0) as u64,
                        t.last_used_step.map(|s| s.max(0) as u64),
                    )
                    .map(|s| s as i64),
                None => None,
            };
            let accepted = match step {
                Some(step) => state.store.use_totp_step(tenant_id, user_id, step).await?,
                None => false,
            };
            (accepted, "otp", "bad code")
        }
        (_, Some(code)) if !code.trim().is_empty() => {
            let hash = recovery_hash(state, user_id, code);
            let accepted = state
                .store
                .use_recovery_code(tenant_id, user_id, &hash, now)
                .await?;
            (accepted, "recovery_code", "bad recovery code")
        }
        _ => (false, "otp", "no code"),
    })
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    enrolled: bool,
    recovery_codes_left: i64,
    qr_svg: String,
    manual_key: String,
    error: Option<String>,
    notice: Option<String>,
}

/// Renders an otpauth URL as an SVG QR code, for inline use (no script, no external image).
fn qr_svg(url: &str) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| PageError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .build();
    // Drop the XML declaration: the SVG is embedded in HTML.
    Ok(svg
        .find("<svg")
        .map_or(svg.clone(), |start| svg[start..].to_owned()))
}

/// The authenticator page: status and removal when one is set up; otherwise the pending
/// secret (kept across reloads, so a code scanned once stays valid) as a QR code and a key.
async fn render_mfa_page(
    state: &AppState,
    me: &super::SignedIn,
    csrf: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let stored = state.store.totp(me.tenant.id, me.user.id).await?;
    let enrolled = stored.as_ref().is_some_and(|t| t.confirmed);
    if !enrolled && !state.store.sign_in_settings(me.tenant.id).await?.allow_totp {
        return Err(PageError::NotAllowed(
            "Your organisation does not use authenticator apps.",
        ));
    }
    let (qr, manual_key) = if enrolled {
        (String::new(), String::new())
    } else {
        let secret = match stored {
            Some(pending) => open_totp(state, me.user.id, &pending.secret_sealed)?,
            None => {
                let secret =
                    TotpSecret::generate().map_err(|e| PageError::Internal(e.to_string()))?;
                let sealed = state
                    .kek
                    .seal(&format!("totp:{}", me.user.id), secret.as_bytes())
                    .map_err(|e| PageError::Internal(e.to_string()))?;
                state
                    .store
                    .begin_totp(me.tenant.id, me.user.id, sealed, state.clock.now())
                    .await?;
                secret
            }
        };
        let (url, key) = secret
            .enrolment(
                &format!("Portcullis ({})", me.tenant.name),
                &me.user.user_name,
            )
            .ok_or_else(|| PageError::Internal("cannot build the otpauth URL".into()))?;
        (qr_svg(&url)?, portcullis_core::totp::grouped(&key))
    };
    let page = MfaPage {
        tenant: TenantFace::of(&me.tenant),
        csrf,
        enrolled,
        recovery_codes_left: state
            .store
            .recovery_codes_left(me.tenant.id, me.user.id)
            .await?,
        qr_svg: qr,
        manual_key,
        error: error.clone(),
        notice: None,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, html(&page)).into_response())
}

pub(super) async fn mfa_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Enrolment).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = render_mfa_page(&state, &me, &csrf, None).await?;
    Ok(with_cookies(page, set))
}

#[derive(Deserialize)]
pub(super) struct EnrolForm {
    csrf: String,
    code: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    tenant: TenantFace<'a>,
    codes: Vec<String>,
    error: Option<String>,
    notice: Option<String>,
}

fn new_recovery_code() -> Result<String, PageError> {
    // 50 bits in two groups of five base32 characters: easy to copy, impossible to guess.
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = random_bytes::<10>().map_err(|e| PageError::Internal(e.to_string()))?;
    let chars: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}

pub(super) async fn enrol(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<EnrolForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Enrolment).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    if !state.store.sign_in_settings(me.tenant.id).await?.allow_totp {
        return Err(
            PageError::NotAllowed("Your organisation does not use authenticator apps.").into(),
        );
    }
    let now = state.clock.now();
    let pending = state
        .store
        .totp(me.tenant.id, me.user.id)
        .await?
        .filter(|t| !t.confirmed);
    let step = match &pending {
        Some(t) => open_totp(&state, me.user.id, &t.secret_sealed)?.check(
            &form.code,
            now.unix_timestamp().max(0) as u64,
            None,
        ),
        None => None,
    };
    let Some(step) = step else {
        let (csrf, _) = csrf_token(&state, &headers)?;
        let error = "That code did not match. Check the time on your device and enter the code your app shows now.";
        return Ok(render_mfa_page(&state, &me, &csrf, Some(error.into())).await?);
    };
    let (codes, hashes) = new_recovery_codes(&state, me.user.id)?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), now);
    state
        .store
        .confirm_totp(&ctx, me.user.id, step as i64, hashes)
        .await?;
    let page = RecoveryCodesPage {
        tenant: TenantFace::of(&me.tenant),
        codes,
        error: None,
        notice: Some("Authenticator app turned on.".into()),
    };
    Ok(html(&page))
}

/// A fresh set of recovery codes to show once, and their hashes to keep.
fn new_recovery_codes(
    state: &AppState,
    user: UserId,
) -> Result<(Vec<String>, Vec<String>), PageError> {
    let codes = (0..RECOVERY_CODES)
        .map(|_| new_recovery_code())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes = codes
        .iter()
        .map(|c| recovery_hash(state, user, c))
        .collect();
    Ok((codes, hashes))
}

#[derive(Deserialize)]
pub(super) struct RegenerateForm {
    csrf: String,
    code: String,
}

/// New recovery codes for old ones used up or exposed. A code from the authenticator app
/// confirms it, so that a session left open cannot be turned into a way past the second
/// factor; wrong codes count against the account's back-off like a sign-in's.
pub(super) async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RegenerateForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let attempt = match super::reserve_account(&state, me.tenant.id, &me.user.user_name).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            let error = format!(
                "Too many wrong codes. Wait {} seconds and try again.",
                wait.as_secs().max(1)
            );
            let page = render_mfa_page(&state, &me, &csrf, Some(error)).await?;
            return Ok(super::too_many(wait, |_| page));
        }
    };
    let (accepted, _, _) =
        check_code(&state, me.tenant.id, me.user.id, Some(&form.code), None).await?;
    if !accepted {
        drop(attempt);
        let error = "That code did not match, or was already used. Your recovery codes have not changed; enter the code your app shows now.";
        return Ok(render_mfa_page(&state, &me, &csrf, Some(error.into())).await?);
    }
    attempt.succeeded().await;
    let (codes, hashes) = new_recovery_codes(&state, me.user.id)?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    state
        .store
        .regenerate_recovery_codes(&ctx, me.user.id, hashes)
        .await?;
    let page = RecoveryCodesPage {
        tenant: TenantFace::of(&me.tenant),
        codes,
        error: None,
        notice: Some("New recovery codes made. The old ones no longer work.".into()),
    };
    Ok(html(&page))
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    csrf: String,
    current_password: String,
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RemoveForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    if !super::knows_password(&state, &me, form.current_password).await? {
        let (csrf, _) = csrf_token(&state, &headers)?;
        let error = "Your password is not right; the authenticator app is still on.";
        return Ok(render_mfa_page(&state, &me, &csrf, Some(error.into())).await?);
    }
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    match state.store.remove_mfa(&ctx, me.user.id).await {
        Ok(()) => {}
        // The form sent twice, or the app removed in another tab meanwhile.
        Err(StoreError::NotFound) => {
            return Err(PageError::NotFound(
                "There is no authenticator app to remove: it is already off. Go to your account page to see how you sign in.",
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&format!("/t/{}/account", me.tenant.name)).into_response())
}
