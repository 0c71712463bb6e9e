//! The sign-in pages: server-rendered HTML that works without JavaScript. Sign in with a
//! password, see and end one's sessions, change one's password. Every form carries a CSRF token
//! that must match a cookie only this site can set; every page forbids framing, inline script
//! and referrers.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Router, routing::get, routing::post};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::conditional::SessionControls;
use portcullis_core::identity::{LifecycleState, PrincipalRef, Tenant, User};
use portcullis_core::names::name_key;
use portcullis_core::password::PasswordCheck;
use portcullis_core::session::{
    MfaRequired, Session, SessionTimeouts, SignInSettings, new_session_token,
};
use portcullis_core::{SessionId, ValidationError};
use portcullis_store::{NewSession, StoreError, WriteContext};

use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::throttle::BackoffPolicy;
use password::PasswordAttempt;
use portcullis_core::signin::{Opening, Step};

mod authorize;
mod console;
mod device;
mod enrol;
mod flow;
mod logout;
mod mfa;
mod passkeys;
mod password;
mod portal;
mod recovery;
mod step_up;
mod terms;
use crate::state::AppState;

const SESSION_COOKIE: &str = "portcullis_session";
const CSRF_COOKIE: &str = "portcullis_csrf";
const CONTINUE_COOKIE: &str = "portcullis_continue";
/// The origin of the application a sign-in will return to, for the pages' `form-action`.
const RETURN_ORIGIN_COOKIE: &str = "portcullis_return_origin";
/// How long a sign-in may take before the page that asked for it is forgotten.
const CONTINUE_SECONDS: i64 = 15 * 60;
/// How often a session's idle deadline is pushed out (not on every request: that is a write).
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// The Content-Security-Policy of every page: no framing, no inline or foreign script or style.
/// Forms post only to this site — and, while an application's sign-in is under way, to that
/// application's origin (`return_origin`), because browsers check `form-action` on each
/// redirect after a form is sent, and the last one goes back to the application.
fn content_security_policy(return_origin: Option<&str>) -> HeaderValue {
    let forms = return_origin
        .map(|origin| format!("'self' {origin}"))
        .unwrap_or_else(|| "'self'".to_owned());
    let policy = format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'")
    })
}

/// A CSP source for the origin of an application's redirect URI: `https://host:port`, or a
/// native app's scheme (`com.example.app:`). Anything else is no source at all.
fn origin_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    let safe = source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-.:/[]".contains(&b));
    safe.then_some(source)
}

/// Headers of every page: the CSP above, no framing, no referrer.
async fn page_headers(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let return_origin = read_cookie(
        request.headers(),
        &cookie_name(&state, RETURN_ORIGIN_COOKIE),
    )
    .and_then(|value| origin_source(&value.replace("%3A", ":").replace("%2F", "/")));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(return_origin.as_deref()),
        );
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn router(state: &AppState) -> Router<AppState> {
    let hsts = state.config.secure_cookies();
    let router = Router::new()
        .route("/assets/portcullis.css", get(stylesheet))
        .route("/t/{tenant}/branding.css", get(branding_style_sheet))
        .route("/t/{tenant}/branding/logo", get(branding_logo))
        .route("/t/{tenant}/sign-in", get(sign_in_page).post(sign_in))
        .route("/t/{tenant}/sign-out", post(sign_out))
        .route("/t/{tenant}/account", get(account))
        .route(
            "/t/{tenant}/account/password",
            get(change_password_page).post(change_password),
        )
        .route("/t/{tenant}/account/sessions/{id}/end", post(end_session))
        .route(
            "/t/{tenant}/account/terms",
            get(terms::page).post(terms::accept),
        )
        .route(
            "/t/{tenant}/enrol",
            get(enrol::page::<false>).post(enrol::submit::<false>),
        )
        .route(
            "/t/{tenant}/reset",
            get(enrol::page::<true>).post(enrol::submit::<true>),
        )
        .route(
            "/t/{tenant}/forgot",
            get(recovery::forgot_page).post(recovery::forgot_submit),
        )
        .route(
            "/t/{tenant}/verify-email",
            get(recovery::verify_page).post(recovery::verify_submit),
        )
        .route(
            "/t/{tenant}/account/email-verification",
            post(recovery::account_verification),
        )
        .route(
            "/t/{tenant}/account/applications/{id}/withdraw",
            post(withdraw_application),
        )
        .route(
            "/t/{tenant}/sign-in/code",
            get(mfa::code_page).post(mfa::submit_code),
        )
        .route(
            "/t/{tenant}/account/mfa",
            get(mfa::mfa_page).post(mfa::enrol),
        )
        .route("/t/{tenant}/account/mfa/remove", post(mfa::remove))
        .route(
            "/t/{tenant}/account/mfa/recovery-codes",
            post(mfa::regenerate_recovery_codes),
        )
        .route("/assets/passkey.js", get(passkey_script))
        .route("/assets/forms.js", get(forms_script))
        .merge(console::routes())
        .route(
            "/t/{tenant}/oauth/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/t/{tenant}/oauth/consent", post(authorize::consent))
        .route("/t/{tenant}/device", get(device::page).post(device::submit))
        .route("/t/{tenant}/device/decision", post(device::decide))
        .route(
            "/t/{tenant}/oauth/logout",
            get(logout::logout_get).post(logout::logout_post),
        )
        .route("/t/{tenant}/oauth/logout/confirm", post(logout::confirm))
        .route("/t/{tenant}/step-up", get(step_up::page))
        .route("/t/{tenant}/step-up/password", post(step_up::password))
        .route("/t/{tenant}/step-up/code", post(step_up::code))
        .route("/t/{tenant}/step-up/passkey", post(step_up::passkey))
        .route(
            "/t/{tenant}/sign-in/passkey/options",
            post(passkeys::sign_in_options),
        )
        .route("/t/{tenant}/sign-in/passkey", post(passkeys::sign_in))
        .route(
            "/t/{tenant}/account/passkeys",
            get(passkeys::passkeys_page).post(passkeys::register),
        )
        .route(
            "/t/{tenant}/account/passkeys/options",
            post(passkeys::register_options),
        )
        .route(
            "/t/{tenant}/account/passkeys/{id}/remove",
            post(passkeys::remove),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page_headers,
        ))
        .layer(axum::middleware::from_fn(|request, next| {
            crate::routes::uniform_rejections(crate::routes::Surface::Page, request, next)
        }));
    if hsts {
        router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    }
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/portcullis.css"),
    )
}

async fn passkey_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/passkey.js"),
    )
}

async fn forms_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/forms.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// What can go wrong on a page, shown as a page a person can act on. Store, API and core
/// errors come in through the one mapping below (`From<ApiError>`), which takes the API's
/// status for each (error.rs): a missing object is 404 and a refused change its 4xx on the
/// pages as on the API, and only a fault of the server itself is 500.
#[derive(Debug)]
enum PageError {
    NoTenant,
    /// What the page or form refers to does not exist, or no longer does.
    NotFound(&'static str),
    FormExpired,
    NotAllowed(&'static str),
    /// A request that cannot be served as sent, and what to do about it.
    BadRequest(String),
    /// A change the present state refuses (already made, changed meanwhile), and why.
    Conflict(String),
    Invalid(ValidationError),
    /// Any other refusal the API's mapping makes, with its status and words.
    Refused(StatusCode, String),
    Internal(String),
}

/// The page for a missing object when the handler has nothing more precise to say.
const GONE: &str = "What this page refers to does not exist any more: it may have been removed, or already finished. Go back, reload the page and try again.";

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound => PageError::NotFound(GONE),
            ApiError::Conflict { detail, .. } => PageError::Conflict(detail),
            ApiError::PreconditionFailed { .. } => {
                PageError::Conflict("it changed while you were on this page".into())
            }
            ApiError::Validation(e) => PageError::Invalid(e),
            ApiError::Internal(message) => PageError::Internal(message),
            other => {
                let problem = other.problem();
                let status = StatusCode::from_u16(problem.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                    PageError::Internal(other.to_string())
                } else {
                    PageError::Refused(status, problem.detail)
                }
            }
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ValidationError> for PageError {
    fn from(e: ValidationError) -> Self {
        PageError::Invalid(e)
    }
}

#[derive(Template)]
#[template(
    source = "{% extends \"base.html\" %}{% block title %}{{ title }}{% endblock %}{% block heading %}{{ title }}{% endblock %}{% block content %}<p>{{ message }}</p>{% endblock %}",
    ext = "html"
)]
struct ProblemPage<'a> {
    tenant: TenantFace<'a>,
    title: &'a str,
    message: &'a str,
    error: Option<String>,
    notice: Option<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message): (StatusCode, &str, std::borrow::Cow<'_, str>) = match &self
        {
            PageError::NoTenant => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such sign-in page. Check the address you were given.".into(),
            ),
            PageError::NotFound(why) => (StatusCode::NOT_FOUND, "Not found", (*why).into()),
            PageError::FormExpired => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or was not sent from this site. Go back, reload the page and try again.".into(),
            ),
            PageError::NotAllowed(why) => (StatusCode::FORBIDDEN, "Not available", (*why).into()),
            PageError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, "Cannot continue", why.as_str().into())
            }
            PageError::Conflict(why) => (
                StatusCode::CONFLICT,
                "Cannot continue",
                format!("This cannot be done now: {why}. Reload the page to see where things stand.").into(),
            ),
            PageError::Invalid(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot continue",
                format!("The {} {}. Go back, correct it and try again.", e.field, e.message).into(),
            ),
            PageError::Refused(status, why) => (*status, "Cannot continue", why.as_str().into()),
            PageError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. Try again in a moment.".into(),
            ),
        };
        if let PageError::Internal(e) = &self {
            tracing::error!(error = %e, "page failed");
        }
        let page = ProblemPage {
            tenant: TenantFace::NONE,
            title,
            message: &message,
            error: None,
            notice: None,
        };
        (status, html(&page)).into_response()
    }
}

/// A page for a request refused before any handler ran (a body too large, a path that does not
/// decode): the same page as every other refusal, with `status`.
pub(crate) fn refusal_page(status: StatusCode, message: &str) -> Response {
    let page = ProblemPage {
        tenant: TenantFace::NONE,
        title: "Cannot continue",
        message,
        error: None,
        notice: None,
    };
    let mut response = html(&page);
    *response.status_mut() = status;
    response
}

fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Cookie names and flags: `Secure` and the `__Host-` prefix when the public URL is HTTPS.
fn cookie_name(state: &AppState, base: &str) -> String {
    if state.config.secure_cookies() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn set_cookie(state: &AppState, base: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}",
        cookie_name(state, base)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The CSRF token of this browser: the cookie's, or a new one to set.
fn csrf_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), PageError> {
    match read_cookie(headers, &cookie_name(state, CSRF_COOKIE)) {
        Some(token) if is_token(token) => Ok((token.to_owned(), None)),
        _ => {
            let token = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
            let cookie = set_cookie(state, CSRF_COOKIE, &token, None);
            Ok((token, Some(cookie)))
        }
    }
}

/// The form's token must equal the cookie's (which another site can neither read nor set).
fn check_csrf(state: &AppState, headers: &HeaderMap, submitted: &str) -> Result<(), PageError> {
    let cookie = read_cookie(headers, &cookie_name(state, CSRF_COOKIE)).unwrap_or("");
    if is_token(cookie) && bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes())) {
        Ok(())
    } else {
        Err(PageError::FormExpired)
    }
}

fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether `text` could be a stored name or handle at all. None holds a control character
/// (names refuse them, handles are base64url), and PostgreSQL cannot even compare text
/// holding a NUL: such input is unknown without asking the database.
fn could_be_stored(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// The tenant as a page shows it: `{{ tenant }}` writes its name as addresses spell it, and
/// `tenant.title()` the name people read (its display name, if it has one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TenantFace<'a> {
    slug: &'a str,
    title: &'a str,
    /// Whether pages link the tenant's branding (a page for no tenant has none).
    branded: bool,
}

impl<'a> TenantFace<'a> {
    /// For pages that belong to no tenant (an unknown address, a refusal before routing).
    pub(crate) const NONE: TenantFace<'static> = TenantFace {
        slug: "Portcullis",
        title: "Portcullis",
        branded: false,
    };

    pub(crate) fn of(tenant: &'a Tenant) -> Self {
        Self {
            slug: &tenant.name,
            title: tenant.display_name.as_deref().unwrap_or(&tenant.name),
            branded: true,
        }
    }

    pub(crate) fn title(&self) -> &str {
        self.title
    }

    pub(crate) fn branded(&self) -> bool {
        self.branded
    }
}

impl std::fmt::Display for TenantFace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug)
    }
}

/// The tenant's branding as a style sheet over the design system, linked from every page of
/// the tenant. Browsers ask again on every page and are told in a few bytes when it has not
/// changed (its entity tag), so a change shows on the next page.
async fn branding_style_sheet(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let branding = state.store.branding(tenant.id).await?;
    let tag = branding.tag();
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, tag.clone()),
    ];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|asked| asked.split(',').any(|t| t.trim() == tag));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "text/css; charset=utf-8".to_owned())],
        cache,
        branding.style_sheet(&tenant.name),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LogoQuery {
    v: Option<String>,
}

/// The tenant's logo. Its address names the version (`?v=` its digest), so browsers keep it
/// for a year; it is served as the image type its bytes were checked to be, in a sandbox.
async fn branding_logo(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<LogoQuery>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let Some((logo, digest)) = state.store.branding_logo(tenant.id).await? else {
        return Err(PageError::NotFound("This organisation has no logo."));
    };
    // The digest kept with the image names its version; no need to hash it on every request.
    let cache = if query.v.as_deref() == Some(digest.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok((
        [
            (header::CONTENT_TYPE, logo.media_type.as_str()),
            (header::CACHE_CONTROL, cache),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
            (header::CONTENT_DISPOSITION, "inline; filename=\"logo\""),
        ],
        logo.bytes,
    )
        .into_response())
}

async fn active_tenant(state: &AppState, name: &str) -> Result<Tenant, PageError> {
    if !could_be_stored(name) {
        return Err(PageError::NoTenant);
    }
    match state.store.tenant_by_name(name).await {
        Ok(t) if t.state == LifecycleState::Active => Ok(t),
        Ok(_) | Err(StoreError::NotFound) => Err(PageError::NoTenant),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    user_name: &'a str,
    /// Whether to offer the passkey button.
    passkeys: bool,
    /// Whether to offer "Forgot your password?" (the server mails reset links).
    forgot: bool,
    error: Option<String>,
    notice: Option<String>,
}

impl SignInPage<'_> {
    /// The sign-in form again, with what went wrong.
    fn again(
        state: &AppState,
        (tenant, csrf): (TenantFace<'_>, &str),
        user_name: &str,
        passkeys: bool,
        error: String,
    ) -> Response {
        html(&SignInPage {
            tenant,
            csrf,
            user_name,
            passkeys,
            forgot: state.config.mail.is_some(),
            error: Some(error),
            notice: None,
        })
    }
}

#[derive(Deserialize)]
struct SignInQuery {
    /// The user name to fill in (OpenID Connect `login_hint`).
    login_hint: Option<String>,
    /// What just happened, told in fixed words (nothing from the address is shown).
    done: Option<String>,
}

/// The sign-in page's notice after signing out or choosing a new password.
fn sign_in_notice(done: Option<&str>) -> Option<String> {
    let words = match done? {
        "signed-out" => "You are signed out.",
        "signed-out-everywhere" => "You are signed out on every device.",
        "password-reset" => {
            "Your password was changed and every session of your account was signed out. Sign in with the new password."
        }
        _ => return None,
    };
    Some(words.to_owned())
}

async fn sign_in_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<SignInQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let hint: String = query
        .login_hint
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    let page = SignInPage {
        tenant: TenantFace::of(&tenant),
        csrf: &csrf,
        user_name: &hint,
        passkeys: passkeys::relying_party(&state, &tenant).await?.is_some(),
        forgot: state.config.mail.is_some(),
        error: None,
        notice: sign_in_notice(query.done.as_deref()),
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: String,
    user_name: String,
    password: String,
}

/// Why a sign-in was refused, for the audit trail. The person is told less.
fn refusal(
    user: Option<&User>,
    check: &PasswordCheck,
    now: time::OffsetDateTime,
) -> Option<&'static str> {
    let Some(user) = user else {
        return Some("unknown user");
    };
    if *check == PasswordCheck::Mismatch {
        return Some("bad password");
    }
    user.unusable_reason(now)
}

async fn sign_in(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let tenant = active_tenant(&state, &tenant).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let user_name = form.user_name.trim().chars().take(256).collect::<String>();
    let settings = state.store.sign_in_settings(tenant.id).await?;
    let passkeys = passkeys::available(&state, &settings).is_some();
    let page = |error| {
        SignInPage::again(
            &state,
            (TenantFace::of(&tenant), &csrf),
            &user_name,
            passkeys,
            error,
        )
    };
    let password = SecretString::from(form.password);
    let tried = PasswordAttempt::make(&state, &tenant, &settings, &user_name, password, &origin);
    let wrong = "That user name and password do not match. Check both and try again.";
    let wait = |seconds| {
        format!(
            "Too many failed attempts. Wait {seconds} seconds before trying your password again, or sign in with a passkey."
        )
    };
    let (attempt, user) = match tried.await?.or_page(page, wrong, wait) {
        Ok(found) => found,
        Err(response) => return Ok(*response),
    };
    let step = Step::Password {
        at: state.clock.now(),
    };
    let finished =
        flow::complete(&state, &tenant, &settings, &user, step, origin, &headers).await?;
    attempt.settle(finished.asks_for_a_code()).await;
    Ok(finished.respond(page))
}

/// Source addresses get more room than accounts: many people can share one (offices, carrier
/// NAT), so only a flood from one address slows it down.
const ADDRESS_BACKOFF: BackoffPolicy = BackoffPolicy {
    free: 50,
    base: std::time::Duration::from_secs(1),
    max: std::time::Duration::from_secs(15 * 60),
};

/// The key an account's failures are counted under, whichever way it is tried (password,
/// code, step-up): the tenant and the user name as sign-in matches it.
pub(crate) fn account_backoff_key(tenant: portcullis_core::TenantId, user_name: &str) -> String {
    format!("{tenant}:{}", name_key(user_name))
}

/// One attempt on a user's account back-off (their codes' and passwords'), under their
/// tenant's policy: let through, or the wait.
pub(crate) async fn reserve_account<'a>(
    state: &'a AppState,
    tenant: portcullis_core::TenantId,
    user_name: &str,
) -> Result<crate::throttle::Admitted<crate::throttle::Reservation<'a>>, portcullis_store::StoreError>
{
    let policy = account_backoff(&state.store.sign_in_settings(tenant).await?);
    state
        .sign_in_accounts
        .reserve(
            &account_backoff_key(tenant, user_name),
            state.clock.now(),
            &policy,
        )
        .await
}

/// An account's back-off, from its tenant's settings.
pub(crate) fn account_backoff(settings: &SignInSettings) -> BackoffPolicy {
    BackoffPolicy {
        free: settings.lockout.free_failures,
        base: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(u64::from(settings.lockout.max_wait_seconds)),
    }
}

/// Whether the tenant's own rule requires a second factor of this user.
async fn tenant_requires_mfa(
    state: &AppState,
    tenant: &Tenant,
    settings: &SignInSettings,
    user: portcullis_core::UserId,
) -> Result<bool, PageError> {
    Ok(match settings.mfa_required {
        MfaRequired::Administrators => {
            crate::engine::is_administrator(state, tenant.id, PrincipalRef::user(user))
                .await
                .map_err(ApiError::from)?
        }
        other => other.applies_to(false),
    })
}

/// Opens the session and sends the browser to `landing` (else the account page), unless the
/// session must first change its password or set up a second factor.
async fn open_session(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    origin: Origin,
    (opened, controls, seen): (Opening, SessionControls, portcullis_core::risk::Sighting),
    context: serde_json::Value,
    landing: Option<String>,
) -> Result<Response, PageError> {
    let token = new_session_token().map_err(|e| PageError::Internal(e.to_string()))?;
    let ctx = user_context(tenant, user, origin, state.clock.now());
    let session = state
        .store
        .open_session(
            &ctx,
            NewSession {
                user_id: user.id,
                token_hash: token_hash(state, &token),
                strength: opened.strength,
                methods: opened.methods,
                must_change_password: opened.must_change_password,
                must_enrol_mfa: opened.must_enrol_mfa,
                must_accept_terms: opened.must_accept_terms,
                timeouts: controls.timeouts(SessionTimeouts::default()),
                sighting: Some(seen),
                context,
            },
        )
        .await?;
    let next = if session.must_change_password {
        format!("/t/{}/account/password", tenant.name)
    } else if session.must_enrol_mfa {
        format!("/t/{}/account/mfa", tenant.name)
    } else if session.must_accept_terms {
        format!("/t/{}/account/terms", tenant.name)
    } else if let Some(to) = landing {
        to
    } else {
        format!("/t/{}/account", tenant.name)
    };
    // A new token at every sign-in: a token planted before it (fixation) is worth nothing.
    // Without a policy keeping it, the session cookie ends with the browser.
    let kept = controls.keeps_browser_session();
    let lifetime = kept.then(|| (session.absolute_expires_at - state.clock.now()).whole_seconds());
    let cookie = set_cookie(state, SESSION_COOKIE, &token, lifetime);
    let cleared = set_cookie(state, mfa::CHALLENGE_COOKIE, "", Some(0));
    let mut cookies = vec![cookie, cleared];
    if !session.must_change_password && !session.must_enrol_mfa && !session.must_accept_terms {
        cookies.push(set_cookie(state, CONTINUE_COOKIE, "", Some(0)));
    }
    Ok(with_cookies(Redirect::to(&next).into_response(), cookies))
}

/// `to` if it is a path inside this tenant's pages: never another site (no open redirect).
fn same_tenant_path(tenant: &str, to: &str) -> Option<String> {
    let prefix = format!("/t/{tenant}/");
    let safe = to.starts_with(&prefix)
        && to.len() <= 1024
        && !to.contains("//")
        && !to.contains('\\')
        && !to
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ';' || c == ',');
    safe.then(|| to.to_owned())
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after signing in, if a page (an application's authorization request) asked
/// to be returned to: kept in a short-lived cookie across the password, code and passkey steps.
fn continue_to(state: &AppState, tenant: &str, headers: &HeaderMap) -> Option<String> {
    read_cookie(headers, &cookie_name(state, CONTINUE_COOKIE))
        .and_then(|to| same_tenant_path(tenant, to))
}

pub(crate) fn token_hash(state: &AppState, token: &str) -> String {
    hex::encode(state.hasher.hash(token.as_bytes()))
}

fn user_context(
    tenant: &Tenant,
    user: &User,
    origin: Origin,
    now: time::OffsetDateTime,
) -> WriteContext {
    WriteContext {
        tenant_id: tenant.id,
        actor: Actor {
            kind: "user".into(),
            id: Some(user.id.to_string()),
            display: Some(user.user_name.clone()),

            authentication: None,
        },
        origin,
        now,
        keep_role_assigner: None,
    }
}

/// Counts an attempt refused while its account or address was backing off, for the sweeper to
/// audit in one event per key and window.
fn note_throttled(
    state: &AppState,
    tenant: &Tenant,
    account: Option<&str>,
    method: &'static str,
    origin: &Origin,
) {
    let now = state.clock.now();
    state
        .throttled
        .note_refused(tenant.id, account, origin, method, now);
}

/// How one credential attempt at a sign-in step went.
pub(super) enum Tried<T> {
    /// Right: what it proved.
    Accepted(T),
    /// Wrong (audited, and counted against the back-off).
    Refused,
    /// Backing off: how long to wait first.
    Wait(std::time::Duration),
}

impl<T> Tried<T> {
    /// The accepted value, or the page telling the person: `wrong` for a refused attempt (401),
    /// `wait`'s words with the seconds to wait for a throttled one (429 with `Retry-After`).
    pub(super) fn or_page(
        self,
        page: impl Fn(String) -> Response,
        wrong: &str,
        wait: impl FnOnce(u64) -> String,
    ) -> Result<T, Box<Response>> {
        match self {
            Tried::Accepted(value) => Ok(value),
            Tried::Refused => {
                let mut response = page(wrong.to_owned());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                Err(Box::new(response))
            }
            Tried::Wait(duration) => {
                Err(Box::new(too_many(duration, |seconds| page(wait(seconds)))))
            }
        }
    }
}

/// The page `render` makes for a refusal while backing off, as 429 with `Retry-After`.
fn too_many(wait: std::time::Duration, render: impl FnOnce(u64) -> Response) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = render(seconds);
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn record_failure(
    state: &AppState,
    tenant: &Tenant,
    user: Option<&User>,
    reason: &str,
    method: &str,
    origin: &Origin,
) -> Result<(), PageError> {
    record_refusal(
        state,
        tenant,
        user,
        reason,
        json!({ "method": method }),
        origin,
    )
    .await
}

/// Audits a refused sign-in with `details` (its method, and what conditional access decided).
async fn record_refusal(
    state: &AppState,
    tenant: &Tenant,
    user: Option<&User>,
    reason: &str,
    details: serde_json::Value,
    origin: &Origin,
) -> Result<(), PageError> {
    let event = NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "signin".into(),
        target: user.map(|u| Target::new("user", u.id)),
        outcome: Outcome::Failure,
        reason: Some(reason.into()),
        origin: origin.clone(),
        details,
    };
    metrics::counter!("portcullis_sign_in_failures_total").increment(1);
    state.audit.append(event).await?;
    Ok(())
}

/// Verifies off the async workers; without a stored hash, spends the same time and fails.
async fn verify_password(
    state: &AppState,
    password: SecretString,
    stored: Option<String>,
) -> Result<PasswordCheck, PageError> {
    let _permit = state
        .password_permits
        .acquire()
        .await
        .map_err(|_| PageError::Internal("shutting down".into()))?;
    let passwords = state.passwords.clone();
    tokio::task::spawn_blocking(move || match stored {
        Some(hash) => passwords.verify(&password, &hash),
        None => passwords.verify_nothing(&password),
    })
    .await
    .map_err(|e| PageError::Internal(e.to_string()))
}

async fn hash_password(state: &AppState, password: SecretString) -> Result<String, PageError> {
    Ok(crate::routes::users::hash_password(state, password).await?)
}

/// Whether the signed-in user typed their current password: asked before changes that a
/// borrowed, unlocked browser should not be able to make.
async fn knows_password(state: &AppState, me: &SignedIn, typed: String) -> Result<bool, PageError> {
    let stored = state
        .store
        .password(me.tenant.id, me.user.id)
        .await?
        .map(|p| p.hash);
    let check = verify_password(state, SecretString::from(typed), stored).await?;
    Ok(check != PasswordCheck::Mismatch)
}

/// The signed-in user of a page request, or where to send the browser instead.
struct SignedIn {
    tenant: Tenant,
    session: Session,
    user: User,
    origin: Origin,
}

enum NotSignedIn {
    Redirect(Response),
    Error(PageError),
}

impl From<PageError> for NotSignedIn {
    fn from(e: PageError) -> Self {
        NotSignedIn::Error(e)
    }
}

impl From<StoreError> for NotSignedIn {
    fn from(e: StoreError) -> Self {
        NotSignedIn::Error(e.into())
    }
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Redirect(r) => r,
            NotSignedIn::Error(e) => e.into_response(),
        }
    }
}

/// Which sessions a page serves. A session held back — its password must change, or the
/// tenant requires a second factor it lacks — reaches only the pages that resolve that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageKind {
    Ordinary,
    /// Setting up a second factor: also serves sessions held back for want of one.
    Enrolment,
    /// The terms of use: also serves sessions held back until they are accepted.
    Terms,
    /// Changing the password, signing out: serves every session.
    Always,
}

/// This browser's live session in `tenant`, if it has one; its idle deadline is pushed out.
async fn current_session(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<Session>, StoreError> {
    let Some(token) =
        read_cookie(headers, &cookie_name(state, SESSION_COOKIE)).filter(|t| is_token(t))
    else {
        return Ok(None);
    };
    let now = state.clock.now();
    let Some(session) = state
        .store
        .session_by_token(&token_hash(state, token), now)
        .await?
        .filter(|s| s.tenant_id == tenant.id)
    else {
        return Ok(None);
    };
    if now - session.last_seen_at >= TOUCH_EVERY {
        state
            .store
            .touch_session(&session, now, SessionTimeouts::default())
            .await?;
    }
    Ok(Some(session))
}

/// A browser's sign-in session presented to the admin API.
pub(crate) struct ApiSession {
    pub tenant: Tenant,
    pub session: Session,
    pub user: User,
}

/// Header a same-origin page sends its CSRF token in when it calls the admin API with the
/// browser's session.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The browser's sign-in session, when the request carries the session cookie and no other
/// credential: accepted only from this server's own pages, that is, with the browser's CSRF
/// token in `X-CSRF-Token` (another site can neither read nor set it), no cross-site fetch
/// metadata and no foreign `Origin`. `None` without the cookie.
pub(crate) async fn admin_api_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ApiSession>, ApiError> {
    let Some(token) = read_cookie(headers, &cookie_name(state, SESSION_COOKIE)) else {
        return Ok(None);
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross_site = text("sec-fetch-site").is_some_and(|site| site != "same-origin")
        || text(header::ORIGIN.as_str())
            .is_some_and(|origin| origin != state.config.public_url.trim_end_matches('/'));
    let csrf = read_cookie(headers, &cookie_name(state, CSRF_COOKIE)).unwrap_or("");
    let sent = text(CSRF_HEADER).unwrap_or("");
    if cross_site || !is_token(csrf) || !bool::from(csrf.as_bytes().ct_eq(sent.as_bytes())) {
        return Err(ApiError::Forbidden(
            "refused: a sign-in session is accepted only from this server's own pages, with the \
             page's CSRF token in X-CSRF-Token; other clients send an access token or an API key"
                .into(),
        ));
    }
    let ended = ApiError::Unauthenticated {
        detail: "Your sign-in session has ended or is not valid. Sign in again.",
    };
    if !is_token(token) {
        return Err(ended);
    }
    let now = state.clock.now();
    let Some(session) = state
        .store
        .session_by_token(&token_hash(state, token), now)
        .await?
    else {
        return Err(ended);
    };
    if session.must_change_password || session.must_enrol_mfa || session.must_accept_terms {
        return Err(ApiError::Forbidden(
            "refused: this session must first change its password, set up a second factor or \
             accept the terms of use, on the account pages"
                .into(),
        ));
    }
    let tenant = state.store.tenant(session.tenant_id).await?;
    let user = state.store.user(session.tenant_id, session.user_id).await?;
    let active = tenant.state == LifecycleState::Active
        && user.state == LifecycleState::Active
        && user.expires_at.is_none_or(|at| at > now);
    if !active {
        return Err(ended);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        state
            .store
            .touch_session(&session, now, SessionTimeouts::default())
            .await?;
    }
    Ok(Some(ApiSession {
        tenant,
        session,
        user,
    }))
}

async fn signed_in(
    state: &AppState,
    tenant_name: &str,
    headers: &HeaderMap,
    origin: Origin,
    kind: PageKind,
) -> Result<SignedIn, NotSignedIn> {
    let tenant = active_tenant(state, tenant_name).await?;
    let Some(session) = current_session(state, &tenant, headers).await? else {
        let to = format!("/t/{}/sign-in", tenant.name);
        return Err(NotSignedIn::Redirect(Redirect::to(&to).into_response()));
    };
    let held_at = if session.must_change_password && kind != PageKind::Always {
        Some("password")
    } else if session.must_enrol_mfa && kind == PageKind::Ordinary {
        Some("mfa")
    } else if session.must_accept_terms && kind == PageKind::Ordinary {
        Some("terms")
    } else {
        None
    };
    if let Some(page) = held_at {
        let to = format!("/t/{}/account/{page}", tenant.name);
        return Err(NotSignedIn::Redirect(Redirect::to(&to).into_response()));
    }
    let user = state.store.user(tenant.id, session.user_id).await?;
    Ok(SignedIn {
        tenant,
        session,
        user,
        origin,
    })
}

/// A time as pages show it: to the minute, in UTC.
/// A role assignment's scope in words: the whole tenant, or which environment, unit or record.
fn scope_words(scope: &portcullis_core::authz::Scope) -> String {
    use portcullis_core::authz::Scope;
    match scope {
        Scope::Tenant => "the whole organisation".to_owned(),
        Scope::Environment(id) => format!("environment {id}"),
        Scope::BusinessUnit(id) => format!("business unit {id} and those below it"),
        Scope::Record(id) => format!("record {id}"),
    }
}

fn minute(at: &time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

struct SessionRow {
    id: String,
    started: String,
    source: String,
    device: String,
    strength: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    user_name: &'a str,
    email: Option<&'a str>,
    email_verified: bool,
    /// Whether the server mails links, so the address can be confirmed.
    mail: bool,
    sessions: Vec<SessionRow>,
    applications: Vec<portcullis_core::oauth::ConsentSummary>,
    myself: portal::Myself,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct AccountQuery {
    done: Option<String>,
}

async fn account(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<AccountQuery>,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let sessions = state
        .store
        .sessions_of_user(me.tenant.id, me.user.id, state.clock.now())
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            started: minute(&s.created_at),
            source: s.source_ip.clone().unwrap_or_else(|| "unknown".into()),
            device: portcullis_core::user_agent::describe(s.user_agent.as_deref()),
            strength: s.strength.as_str(),
            current: s.id == me.session.id,
        })
        .collect();
    let applications = state.store.consents(me.tenant.id, me.user.id).await?;
    let page = AccountPage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        user_name: &me.user.user_name,
        email: me.user.email.as_deref(),
        email_verified: me.user.email_verified,
        mail: state.config.mail.is_some(),
        sessions,
        applications,
        myself: portal::myself(&state, &me).await?,
        error: None,
        notice: (query.done.as_deref() == Some("verification")).then(|| {
            "A link to confirm your address is on its way to it. It works once, for three days."
                .to_owned()
        }),
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: String,
    everywhere: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Always).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let everywhere = form.everywhere.as_deref() == Some("true");
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    let ended = (!everywhere).then_some(me.session.id);
    state.store.end_sessions(&ctx, me.user.id, ended).await?;
    crate::oauth::session_ended(&state, &me.tenant, me.user.id, ended, me.origin.clone())
        .await
        .map_err(PageError::from)?;
    let cleared = set_cookie(&state, SESSION_COOKIE, "", Some(0));
    let done = if everywhere {
        "signed-out-everywhere"
    } else {
        "signed-out"
    };
    let to = format!("/t/{}/sign-in?done={done}", me.tenant.name);
    Ok(with_cookies(Redirect::to(&to).into_response(), [cleared]))
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn end_session(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    // Only the user's own sessions: another user's id, or no id at all, ends nothing, and
    // is answered as one that has ended already (no telling whose it was).
    let gone = || {
        PageError::NotFound(
            "That session has already ended, or is not one of yours. Your account page lists the sessions still open.",
        )
    };
    let id = id.parse::<SessionId>().map_err(|_| gone())?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    match state.store.end_sessions(&ctx, me.user.id, Some(id)).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(gone().into()),
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&format!("/t/{}/account", me.tenant.name)).into_response())
}

/// The user withdraws an application's access: asked again next time, its tokens revoked.
async fn withdraw_application(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Ordinary).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let gone = || {
        PageError::NotFound(
            "That application has no access to withdraw: it was withdrawn already, or the application was removed. Your account page lists the applications you allowed.",
        )
    };
    let client = id
        .parse::<portcullis_core::ServicePrincipalId>()
        .map_err(|_| gone())?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    match state.store.withdraw_consent(&ctx, me.user.id, client).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(gone().into()),
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&format!("/t/{}/account", me.tenant.name)).into_response())
}

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePasswordPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    user_name: &'a str,
    required: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn change_password_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Always).await?;
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = ChangePasswordPage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        user_name: &me.user.user_name,
        required: me.session.must_change_password,
        error: None,
        notice: None,
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
struct ChangePasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<ChangePasswordForm>,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Always).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers)?;
    let again = |error: String| ChangePasswordPage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        user_name: &me.user.user_name,
        required: me.session.must_change_password,
        error: Some(error),
        notice: None,
    };
    if !knows_password(&state, &me, form.current_password).await? {
        return Ok((
            StatusCode::UNAUTHORIZED,
            html(&again("Your current password is not right.".into())),
        )
            .into_response());
    }
    if form.new_password != form.confirm_password {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            html(&again(
                "The two new passwords differ. Type the same one twice.".into(),
            )),
        )
            .into_response());
    }
    let new = SecretString::from(form.new_password);
    let policy = state
        .store
        .sign_in_settings(me.tenant.id)
        .await?
        .password_policy;
    if let Err(ValidationError { message, .. }) =
        crate::risk::check_new_password(&state, &policy, &me.user, &new).await?
    {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            html(&again(format!("The new password {message}."))),
        )
            .into_response());
    }
    let hash = hash_password(&state, new).await?;
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    state
        .store
        .change_own_password(&ctx, &me.session, hash)
        .await?;
    if me.session.strength >= portcullis_core::session::Strength::Mfa {
        crate::risk::password_replaced(&state, &ctx, me.user.id).await?;
    }
    let next = match continue_to(&state, &me.tenant.name, &headers) {
        Some(to) if !me.session.must_enrol_mfa => to,
        _ => format!("/t/{}/account", me.tenant.name),
    };
    Ok(Redirect::to(&next).into_response())
}
