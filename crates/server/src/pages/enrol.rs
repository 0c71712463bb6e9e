//! Links to choose a password. With an invitation (enrolment link), a user an administrator
//! created chooses their own password, and is signed in and sent on to add a passkey (or an
//! authenticator app). With a reset link, a user who forgot their password chooses a new one
//! and is sent to sign in with it, so a second factor they have is still asked for. Either
//! link is used once: the store marks it used, sets the password and ends the user's other
//! sessions in one transaction.

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

use portcullis_core::ValidationError;
use portcullis_core::identity::{Tenant, User};
use portcullis_core::mail::LinkPurpose;
use portcullis_core::signin::Step;
use portcullis_store::UnusableLink;

use super::{
    ADDRESS_BACKOFF, PageError, active_tenant, check_csrf, csrf_token, flow, hash_password, html,
    is_token, token_hash, user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage<'a> {
    tenant: TenantFace<'a>,
    /// A forgotten password's reset, rather than a first password.
    reset: bool,
    csrf: &'a str,
    token: &'a str,
    /// The account the link is for; `None` when the link cannot be used.
    user_name: Option<&'a str>,
    min_length: u32,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EnrolQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub(super) struct EnrolForm {
    csrf: String,
    token: String,
    new_password: String,
    confirm_password: String,
}

/// Sets the password the person chose (typed twice) and uses the link up, or says why not.
async fn redeem(
    state: &AppState,
    ctx: &portcullis_store::WriteContext,
    settings: &portcullis_core::session::SignInSettings,
    user: &portcullis_core::identity::User,
    (purpose, token): (LinkPurpose, &str),
    (new_password, confirm_password): (String, String),
) -> Result<Result<(), (StatusCode, String)>, PageError> {
    if new_password != confirm_password {
        let message = "The two passwords differ. Type the same one twice.";
        return Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, message.into())));
    }
    let password = SecretString::from(new_password);
    if let Err(ValidationError { message, .. }) =
        crate::risk::check_new_password(state, &settings.password_policy, user, &password).await?
    {
        let message = format!("The password {message}.");
        return Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, message)));
    }
    let hash = hash_password(state, password).await?;
    let redeemed = state
        .store
        .redeem_password_link(ctx, purpose, &token_hash(state, token), hash)
        .await?;
    Ok(redeemed.map(|_| ()).map_err(|why| {
        let (status, message) = unusable(why, purpose);
        (status, message.to_owned())
    }))
}

/// What the person is told about a link that cannot be used, and with which status.
pub(super) fn unusable(why: UnusableLink, purpose: LinkPurpose) -> (StatusCode, &'static str) {
    let reset = purpose == LinkPurpose::Reset;
    match why {
        UnusableLink::Unknown if reset => (
            StatusCode::NOT_FOUND,
            "This link is not valid: check that you opened all of it. A newer link replaces older ones, so use the latest message, or ask for a new link on the sign-in page.",
        ),
        UnusableLink::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not valid: check that you opened all of it, or ask your administrator for a new one. A newer link replaces older ones.",
        ),
        UnusableLink::Expired if reset => (
            StatusCode::GONE,
            "This link has expired. Ask for a new one on the sign-in page (Forgot your password?).",
        ),
        UnusableLink::Expired => (
            StatusCode::GONE,
            "This link has expired. Ask your administrator for a new one.",
        ),
        UnusableLink::Used if reset => (
            StatusCode::GONE,
            "This link has already been used. Sign in with the password you chose, or ask for a new link on the sign-in page.",
        ),
        UnusableLink::Used => (
            StatusCode::GONE,
            "This link has already been used. Sign in with the password you chose, or ask your administrator for a new link.",
        ),
        UnusableLink::UserInactive => (
            StatusCode::FORBIDDEN,
            "This account is not active. Ask your administrator.",
        ),
        UnusableLink::AddressChanged => (
            StatusCode::GONE,
            "This link was sent to an address the account no longer has. Ask for a new link.",
        ),
    }
}

/// The link's user, if it can be used; a guess at a link (one that names nothing) counts
/// against the source address like a wrong password, so links cannot be tried in bulk.
pub(super) async fn link_user(
    state: &AppState,
    tenant: &Tenant,
    (purpose, token): (LinkPurpose, &str),
    address: &str,
) -> Result<Result<User, UnusableLink>, PageError> {
    let attempt = match state
        .sign_in_addresses
        .reserve(address, state.clock.now(), &ADDRESS_BACKOFF)
        .await?
    {
        Ok(attempt) => attempt,
        Err(wait) => {
            return Err(PageError::Refused(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many attempts from your network. Wait {} seconds and open the link again.",
                    wait.as_secs().max(1)
                ),
            ));
        }
    };
    let found = if is_token(token) {
        state
            .store
            .link_user(
                tenant.id,
                purpose,
                &token_hash(state, token),
                state.clock.now(),
            )
            .await?
    } else {
        Err(UnusableLink::Unknown)
    };
    let user_id = match found {
        Ok(user_id) => user_id,
        Err(UnusableLink::Unknown) => return Ok(Err(UnusableLink::Unknown)),
        Err(why) => {
            attempt.refund().await;
            return Ok(Err(why));
        }
    };
    attempt.refund().await;
    Ok(Ok(state.store.user(tenant.id, user_id).await?))
}

fn render(page: &EnrolPage<'_>, status: StatusCode) -> Response {
    (status, html(page)).into_response()
}

/// The page again, saying why the enrolment did not go through.
fn refuse(
    page: &mut EnrolPage<'_>,
    (status, message): (StatusCode, impl Into<String>),
) -> Response {
    page.error = Some(message.into());
    render(page, status)
}

/// The link's page: an invitation (`RESET` false) or a reset of a forgotten password.
pub(super) async fn page<const RESET: bool>(
    state: State<AppState>,
    tenant: Path<String>,
    origin: RequestOrigin,
    query: Query<EnrolQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    show(purpose(RESET), state, tenant, origin, query, headers).await
}

/// The password chosen on the link's page.
pub(super) async fn submit<const RESET: bool>(
    state: State<AppState>,
    tenant: Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
    form: Form<EnrolForm>,
) -> Result<Response, PageError> {
    choose(purpose(RESET), state, tenant, origin, headers, form).await
}

fn purpose(reset: bool) -> LinkPurpose {
    if reset {
        LinkPurpose::Reset
    } else {
        LinkPurpose::Enrol
    }
}

async fn show(
    purpose: LinkPurpose,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<EnrolQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let address = origin.source_ip.unwrap_or_default();
    let settings = state.store.sign_in_settings(tenant.id).await?;
    let user = link_user(&state, &tenant, (purpose, &query.token), &address).await?;
    let mut page = EnrolPage {
        tenant: TenantFace::of(&tenant),
        reset: purpose == LinkPurpose::Reset,
        csrf: &csrf,
        token: &query.token,
        user_name: None,
        min_length: settings.password_policy.min_length,
        error: None,
        notice: None,
    };
    let response = match &user {
        Ok(user) => {
            page.user_name = Some(&user.user_name);
            render(&page, StatusCode::OK)
        }
        Err(why) => {
            let (status, message) = unusable(*why, purpose);
            page.error = Some(message.into());
            render(&page, status)
        }
    };
    Ok(with_cookies(response, set))
}

async fn choose(
    purpose: LinkPurpose,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<EnrolForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let address = origin.source_ip.clone().unwrap_or_default();
    let settings = state.store.sign_in_settings(tenant.id).await?;
    let mut page = EnrolPage {
        tenant: TenantFace::of(&tenant),
        reset: purpose == LinkPurpose::Reset,
        csrf: &form.csrf,
        token: &form.token,
        user_name: None,
        min_length: settings.password_policy.min_length,
        error: None,
        notice: None,
    };
    let user = match link_user(&state, &tenant, (purpose, &form.token), &address).await? {
        Ok(user) => user,
        Err(why) => return Ok(refuse(&mut page, unusable(why, purpose))),
    };
    page.user_name = Some(&user.user_name);
    let now = state.clock.now();
    let ctx = user_context(&tenant, &user, origin.clone(), now);
    let chosen = (form.new_password, form.confirm_password);
    let link = (purpose, form.token.as_str());
    if let Err(refusal) = redeem(&state, &ctx, &settings, &user, link, chosen).await? {
        return Ok(refuse(&mut page, refusal));
    }
    if purpose == LinkPurpose::Reset {
        // Signing in is a separate step, so a second factor the user has is still asked for.
        let signed_out = axum::response::Redirect::to(&format!(
            "/t/{}/sign-in?done=password-reset",
            tenant.name
        ));
        return Ok(signed_out.into_response());
    }
    let step = Step::Enrolment { at: now };
    let finished =
        flow::complete(&state, &tenant, &settings, &user, step, origin, &headers).await?;
    Ok(finished.respond(|message| refuse(&mut page, (StatusCode::FORBIDDEN, message))))
}
