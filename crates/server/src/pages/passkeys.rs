//! Passkeys on the pages: registering one from "my passkeys" and signing in with one, without
//! a user name or password. Each ceremony is two requests: the script asks for options (JSON),
//! the browser talks to the authenticator, and the answer comes back in an ordinary form post.
//! The challenge stays on the server and is used once.

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use time::Duration;

use portcullis_core::PasskeyId;
use portcullis_core::audit::Origin;
use portcullis_core::identity::Tenant;
use portcullis_core::passkey::{
    Assertion, CEREMONY_SECONDS, PasskeyError, RelyingParty, parse_passkey_name,
};
use portcullis_core::session::{Assurance, SignInSettings, StepUp, Strength, new_session_token};
use portcullis_core::signin::Step;
use portcullis_store::{CeremonyPurpose, NewCeremony, SessionsAfterRemoval, StoreError};

use super::{
    NotSignedIn, PageError, PageKind, SignInPage, SignedIn, Tried, active_tenant, check_csrf,
    csrf_token, flow, html, is_token, record_failure, signed_in, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;

/// Adding a passkey gives lasting access, so it needs a sign-in this recent.
const FRESH_FOR_REGISTRATION: Duration = Duration::minutes(15);

/// A JSON refusal for the script, with a message it shows as is.
fn refuse(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// The relying party, if passkeys are on for this server and tenant.
pub(super) async fn relying_party<'a>(
    state: &'a AppState,
    tenant: &Tenant,
) -> Result<Option<&'a RelyingParty>, PageError> {
    let settings = state.store.sign_in_settings(tenant.id).await?;
    Ok(available(state, &settings))
}

/// The relying party, if passkeys are on for this server and under these tenant settings.
pub(super) fn available<'a>(
    state: &'a AppState,
    settings: &SignInSettings,
) -> Option<&'a RelyingParty> {
    state
        .relying_party
        .as_ref()
        .filter(|_| settings.allow_passkeys)
}

/// Stores a ceremony's state and answers the script with its options and handle.
async fn begin(
    state: &AppState,
    tenant: &Tenant,
    user: Option<portcullis_core::UserId>,
    purpose: CeremonyPurpose,
    ceremony: portcullis_core::passkey::Ceremony,
) -> Result<Response, PageError> {
    let handle = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
    let now = state.clock.now();
    state
        .store
        .begin_ceremony(
            NewCeremony {
                tenant_id: tenant.id,
                user_id: user,
                purpose,
                handle: handle.clone(),
                state: ceremony.state,
                expires_at: now + Duration::seconds(CEREMONY_SECONDS),
            },
            now,
        )
        .await?;
    Ok(Json(json!({
        "ceremony": handle,
        "publicKey": ceremony.options["publicKey"],
    }))
    .into_response())
}

/// Whether this source address may start another ceremony (and counts this one).
fn may_start(state: &AppState, origin: &Origin) -> bool {
    let key = origin.source_ip.clone().unwrap_or_default();
    state
        .passkey_starts
        .take(&key, std::time::Instant::now())
        .is_ok()
}

#[derive(Deserialize)]
pub(super) struct StartForm {
    csrf: String,
}

pub(super) async fn sign_in_options(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let Some(rp) = relying_party(&state, &tenant).await? else {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "Passkeys are not in use here. Sign in with your password.",
        ));
    };
    if !may_start(&state, &origin) {
        return Ok(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many passkey attempts from your network. Wait a minute and try again.",
        ));
    }
    let ceremony = rp
        .start_sign_in()
        .map_err(|e| PageError::Internal(e.to_string()))?;
    begin(&state, &tenant, None, CeremonyPurpose::SignIn, ceremony).await
}

#[derive(Deserialize)]
pub(super) struct AnswerForm {
    csrf: String,
    ceremony: String,
    credential: String,
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<AnswerForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let rp = relying_party(&state, &tenant).await?;
    let passkeys = rp.is_some();
    let refused = |status: StatusCode, message: &str| {
        let page = SignInPage::again(
            &state,
            (TenantFace::of(&tenant), &csrf),
            "",
            passkeys,
            message.to_owned(),
        );
        (status, page).into_response()
    };
    let Some(rp) = rp else {
        let message = "Passkeys are not in use here. Sign in with your password.";
        return Ok(refused(StatusCode::FORBIDDEN, message));
    };
    let at = state.clock.now();
    let wrong = "That passkey could not sign you in. Try again, or use your password.";
    let wait = |seconds| {
        format!("Too many failed attempts from your network. Wait {seconds} seconds and try again.")
    };
    let tried = attempt_passkey(&state, &tenant, rp, &form, &origin).await?;
    let user = match tried.or_page(|m| refused(StatusCode::OK, &m), wrong, wait) {
        Ok(user) => user,
        Err(response) => return Ok(*response),
    };
    let settings = state.store.sign_in_settings(tenant.id).await?;
    let step = Step::Passkey { at };
    let finished =
        flow::complete(&state, &tenant, &settings, &user, step, origin, &headers).await?;
    Ok(finished.respond(|message| refused(StatusCode::FORBIDDEN, &message)))
}

/// One passkey answer, reserved against the address's back-off before it is verified. Only
/// the address backs off: a passkey failure is no reason to slow the account's owner, and the
/// account's password back-off must not stop a passkey.
async fn attempt_passkey(
    state: &AppState,
    tenant: &Tenant,
    rp: &RelyingParty,
    form: &AnswerForm,
    origin: &portcullis_core::audit::Origin,
) -> Result<Tried<portcullis_core::identity::User>, PageError> {
    let address_key = origin.source_ip.clone().unwrap_or_default();
    let attempt = match state
        .sign_in_addresses
        .reserve(&address_key, state.clock.now(), &super::ADDRESS_BACKOFF)
        .await?
    {
        Ok(attempt) => attempt,
        Err(wait) => {
            super::note_throttled(state, tenant, None, "hwk", origin);
            return Ok(Tried::Wait(wait));
        }
    };
    let now = state.clock.now();
    let verdict = verify_sign_in(state, tenant, rp, &form.ceremony, &form.credential).await?;
    let (passkey, user) = match verdict {
        Ok(found) => found,
        Err((reason, user)) => {
            drop(attempt);
            record_failure(state, tenant, user.as_ref(), reason, "hwk", origin).await?;
            return Ok(Tried::Refused);
        }
    };
    attempt.refund().await;
    state
        .store
        .passkey_used(tenant.id, passkey.0, passkey.1, now)
        .await?;
    Ok(Tried::Accepted(user))
}

/// A verified sign-in: the passkey used (and its moved counter) and its usable owner.
pub(super) type Verified = ((PasskeyId, Option<String>), portcullis_core::identity::User);
/// A refused sign-in: the reason for the audit trail, and the user when one was identified.
pub(super) type Refused = (&'static str, Option<portcullis_core::identity::User>);

/// Verifies a passkey sign-in answer to the ceremony `ceremony`: the passkey it used and that
/// passkey's usable owner, or why not.
pub(super) async fn verify_sign_in(
    state: &AppState,
    tenant: &Tenant,
    rp: &RelyingParty,
    ceremony: &str,
    credential: &str,
) -> Result<Result<Verified, Refused>, PageError> {
    let now = state.clock.now();
    let Ok(assertion) = Assertion::parse(credential) else {
        return Ok(Err(("malformed passkey answer", None)));
    };
    let taken = if is_token(ceremony) {
        state
            .store
            .take_ceremony(tenant.id, CeremonyPurpose::SignIn, ceremony, now)
            .await?
    } else {
        None
    };
    let Some((_, challenge)) = taken else {
        return Ok(Err(("unknown or expired passkey ceremony", None)));
    };
    let Some(stored) = state
        .store
        .passkey_by_credential(tenant.id, &assertion.credential_id())
        .await?
    else {
        return Ok(Err(("unknown passkey", None)));
    };
    let user = match state.store.user(tenant.id, stored.user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return Ok(Err(("unknown passkey", None))),
        Err(e) => return Err(e.into()),
    };
    if assertion
        .user_handle()
        .is_some_and(|handle| handle != user.id.as_uuid())
    {
        return Ok(Err(("passkey user handle mismatch", Some(user))));
    }
    let moved = match rp.finish_sign_in(&assertion, &challenge, &stored.credential) {
        Ok(moved) => moved,
        Err(PasskeyError::Corrupt(e)) => return Err(PageError::Internal(e)),
        Err(e) => {
            tracing::info!(error = %e, "passkey refused");
            return Ok(Err(("passkey refused", Some(user))));
        }
    };
    if let Some(reason) = user.unusable_reason(now) {
        return Ok(Err((reason, Some(user))));
    }
    Ok(Ok(((stored.id, moved), user)))
}

struct PasskeyRow {
    id: String,
    name: String,
    added: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    available: bool,
    fresh: bool,
    /// Where to confirm it is you when the sign-in is too old to add a passkey.
    step_up: String,
    passkeys: Vec<PasskeyRow>,
    error: Option<String>,
    notice: Option<String>,
}

fn day(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// What adding a passkey asks of the session.
fn registration_needs() -> Assurance {
    Assurance {
        strength: Strength::Password,
        max_age: Some(FRESH_FOR_REGISTRATION),
    }
}

/// Whether the session's sign-in is recent enough to add a passkey.
fn is_fresh(me: &SignedIn, now: time::OffsetDateTime) -> bool {
    me.session.step_up(registration_needs(), now) == StepUp::Satisfied
}

async fn render(
    state: &AppState,
    me: &SignedIn,
    csrf: &str,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let passkeys = state
        .store
        .passkeys(me.tenant.id, me.user.id)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id.to_string(),
            name: p.name,
            added: day(p.created_at),
            last_used: p.last_used_at.map_or_else(|| "never".into(), day),
        })
        .collect();
    let page = PasskeysPage {
        tenant: TenantFace::of(&me.tenant),
        csrf,
        step_up: super::step_up::Target::link(
            &me.tenant.name,
            &format!("/t/{}/account/passkeys", me.tenant.name),
            registration_needs(),
        ),
        available: relying_party(state, &me.tenant).await?.is_some(),
        fresh: is_fresh(me, state.clock.now()),
        passkeys,
        error,
        notice,
    };
    Ok((status, html(&page)).into_response())
}

#[derive(Deserialize)]
pub(super) struct PasskeysQuery {
    added: Option<String>,
    removed: Option<String>,
    /// Arrived from an enrolment link, password just chosen.
    welcome: Option<String>,
}

pub(super) async fn passkeys_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<PasskeysQuery>,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Enrolment).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let notice = if query.welcome.is_some() {
        Some("Your password is set and you are signed in. Add a passkey now: it signs you in without a password, and cannot be phished.".to_owned())
    } else if query.added.is_some() {
        Some("Passkey added. You can now sign in with it.".to_owned())
    } else {
        query.removed.map(|_| "Passkey removed.".to_owned())
    };
    let page = render(&state, &me, &csrf, StatusCode::OK, None, notice).await?;
    Ok(with_cookies(page, set))
}

pub(super) async fn register_options(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Enrolment).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let Some(rp) = relying_party(&state, &me.tenant).await? else {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "Passkeys are not in use here.",
        ));
    };
    if !is_fresh(&me, state.clock.now()) {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "Sign in again first: adding a passkey needs a recent sign-in.",
        ));
    }
    if !may_start(&state, &me.origin) {
        return Ok(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many passkey attempts. Wait a minute and try again.",
        ));
    }
    let existing = state
        .store
        .passkey_credential_ids(me.tenant.id, me.user.id)
        .await?;
    let display = me
        .user
        .display_name
        .as_deref()
        .unwrap_or(&me.user.user_name);
    let ceremony = rp
        .start_registration(me.user.id, &me.user.user_name, display, &existing)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(begin(
        &state,
        &me.tenant,
        Some(me.user.id),
        CeremonyPurpose::Register,
        ceremony,
    )
    .await?)
}

#[derive(Deserialize)]
pub(super) struct RegisterForm {
    csrf: String,
    name: String,
    ceremony: String,
    credential: String,
}

pub(super) async fn register(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Enrolment).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let again = |error: String| {
        render(
            &state,
            &me,
            &csrf,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(error),
            None,
        )
    };
    let Some(rp) = relying_party(&state, &me.tenant).await? else {
        return Err(PageError::NotAllowed("Passkeys are not in use here.").into());
    };
    let name = match parse_passkey_name(&form.name) {
        Ok(name) => name,
        Err(e) => return Ok(again(format!("The passkey's name {}.", e.message)).await?),
    };
    let now = state.clock.now();
    let taken = if is_token(&form.ceremony) {
        state
            .store
            .take_ceremony(me.tenant.id, CeremonyPurpose::Register, &form.ceremony, now)
            .await?
    } else {
        None
    };
    let challenge = taken.filter(|(user, _)| *user == Some(me.user.id));
    let Some((_, challenge)) = challenge else {
        return Ok(again("That request expired. Press \"Add a passkey\" again.".into()).await?);
    };
    let passkey = match rp.finish_registration(&form.credential, &challenge) {
        Ok(passkey) => passkey,
        Err(PasskeyError::Corrupt(e)) => return Err(PageError::Internal(e).into()),
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            return Ok(again(
                "Your device's answer could not be accepted. Try again, or use another device."
                    .into(),
            )
            .await?);
        }
    };
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), now);
    match state
        .store
        .add_passkey(
            &ctx,
            me.user.id,
            &name,
            &passkey.credential_id,
            passkey.credential,
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict { message, .. }) => {
            return Ok(again(format!("Not added: {message}.")).await?);
        }
        Err(e) => return Err(e.into()),
    }
    let to = format!("/t/{}/account/passkeys?added=1", me.tenant.name);
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    csrf: String,
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RemoveForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    // Only the user's own passkeys: another user's id, or no id at all, removes nothing,
    // and is answered as one already removed (no telling whose it was).
    let gone = || {
        PageError::NotFound(
            "That passkey was already removed, or is not one of yours. The passkeys page lists the ones you have.",
        )
    };
    let id = id.parse::<PasskeyId>().map_err(|_| gone())?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    match state
        .store
        .remove_passkey(&ctx, me.user.id, id, SessionsAfterRemoval::Keep)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(gone().into()),
        Err(e) => return Err(e.into()),
    }
    let to = format!("/t/{}/account/passkeys?removed=1", me.tenant.name);
    Ok(Redirect::to(&to).into_response())
}
