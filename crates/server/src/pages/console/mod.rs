//! The admin console: the tenant in the browser, for people who administer it.
//!
//! There is no second way in. Every console page turns the signed-in person's browser session
//! into the same `Caller` the admin API builds for that session (conditional access for the
//! admin API included), then calls the API's own handler: the same validation, authorization,
//! policy for administrators and audit trail, and the same refusals. A refusal the API would
//! answer with RFC 9470's step-up challenge sends the browser to the step-up page and back.
//! Pages are HTML that works without JavaScript; htmx, served from this server, only makes
//! searching and paging swap the results in place.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Router, routing::get, routing::post};
use serde::Deserialize;

use portcullis_core::administrators::CONSOLE_ACTIONS;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::session::Assurance;

use super::step_up::Target;
use super::{
    CONTINUE_COOKIE, CONTINUE_SECONDS, NotSignedIn, PageError, PageKind, SignedIn, check_csrf,
    csrf_token, html, set_cookie, signed_in, with_cookies,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::state::AppState;

mod access;
mod applications;
mod conditional;
mod deny;
mod groups;
mod imports;
mod logs;
mod records;
mod resource_types;
mod risk;
mod role_editor;
mod settings;
mod users;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(choose_tenant))
        .route("/t/{tenant}", get(landing))
        .route("/t/{tenant}/", get(landing))
        .route("/t/{tenant}/console", get(home))
        .route("/t/{tenant}/console/users", get(users::list))
        .route(
            "/t/{tenant}/console/users/new",
            get(users::new_page).post(users::create),
        )
        .route("/t/{tenant}/console/users/{id}", get(users::detail))
        .route("/t/{tenant}/console/users/{id}/edit", post(users::edit))
        .route(
            "/t/{tenant}/console/users/{id}/state",
            post(users::set_state),
        )
        .route("/t/{tenant}/console/users/{id}/delete", post(users::delete))
        .route(
            "/t/{tenant}/console/users/{id}/restore",
            post(users::restore),
        )
        .route(
            "/t/{tenant}/console/users/{id}/sessions/end",
            post(users::end_sessions),
        )
        .route("/t/{tenant}/console/users/{id}/unlock", post(users::unlock))
        .route(
            "/t/{tenant}/console/users/{id}/mfa/reset",
            post(users::reset_mfa),
        )
        .route(
            "/t/{tenant}/console/users/{id}/passkeys/{passkey_id}/remove",
            post(users::remove_passkey),
        )
        .route(
            "/t/{tenant}/console/users/{id}/enrolment-link",
            post(users::enrolment_link),
        )
        .route(
            "/t/{tenant}/console/users/{id}/email-verification",
            post(users::email_verification),
        )
        .route(
            "/t/{tenant}/console/users/import",
            get(imports::upload_page).merge(imports::with_room_for_a_file(post(imports::upload))),
        )
        .route(
            "/t/{tenant}/console/users/import/{id}",
            get(imports::report),
        )
        .route(
            "/t/{tenant}/console/roles/new",
            get(role_editor::new_page).post(role_editor::create),
        )
        .route("/t/{tenant}/console/roles/{id}", get(role_editor::detail))
        .route(
            "/t/{tenant}/console/roles/{id}/edit",
            post(role_editor::edit),
        )
        .route(
            "/t/{tenant}/console/roles/{id}/delete",
            post(role_editor::delete),
        )
        .route(
            "/t/{tenant}/console/access/deny",
            get(deny::page).post(deny::create),
        )
        .route(
            "/t/{tenant}/console/access/deny/{id}/remove",
            post(deny::remove),
        )
        .route(
            "/t/{tenant}/console/resource-types",
            get(resource_types::page).post(resource_types::create),
        )
        .route(
            "/t/{tenant}/console/resource-types/{name}/remove",
            post(resource_types::remove),
        )
        .route("/t/{tenant}/console/risk", get(risk::page))
        .route("/t/{tenant}/console/risk/users/{id}", post(risk::judge))
        .route("/t/{tenant}/console/settings", get(settings::page))
        .route(
            "/t/{tenant}/console/settings/organisation",
            post(settings::organisation),
        )
        .route(
            "/t/{tenant}/console/settings/branding",
            settings::with_room_for_a_logo(post(settings::save_branding)),
        )
        .route(
            "/t/{tenant}/console/settings/sign-in",
            post(settings::save_sign_in),
        )
        .route(
            "/t/{tenant}/console/settings/administrators",
            post(settings::save_administrators),
        )
        .route(
            "/t/{tenant}/console/settings/signing-keys/rotate",
            post(settings::rotate_key),
        )
        .route("/t/{tenant}/console/applications", get(applications::list))
        .route(
            "/t/{tenant}/console/applications/new",
            get(applications::new_page).post(applications::create),
        )
        .route(
            "/t/{tenant}/console/applications/{id}",
            get(applications::detail),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/edit",
            post(applications::edit),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/state",
            post(applications::set_state),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/delete",
            post(applications::delete),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/secrets",
            post(applications::new_secret),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/secrets/{key_id}/revoke",
            post(applications::revoke_secret),
        )
        .route(
            "/t/{tenant}/console/applications/{id}/client",
            post(applications::save_client),
        )
        .route("/t/{tenant}/console/access", get(access::assignments))
        .route(
            "/t/{tenant}/console/access/assign",
            get(access::assign_page).post(access::assign),
        )
        // A form's page is the first six segments of where it posts (`form_page`): for an
        // assignment, that is the list it was removed from.
        .route("/t/{tenant}/console/access/{id}", get(access::to_list))
        .route(
            "/t/{tenant}/console/access/{id}/remove",
            post(access::remove),
        )
        .route(
            "/t/{tenant}/console/access/explorer",
            get(access::explorer_page),
        )
        .route("/t/{tenant}/console/roles", get(access::roles_page))
        .route("/t/{tenant}/console/records", get(records::list))
        .route(
            "/t/{tenant}/console/records/{resource_type}",
            get(records::list).post(records::save),
        )
        .route(
            "/t/{tenant}/console/records/{resource_type}/{external_id}",
            get(records::detail),
        )
        .route(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/delete",
            post(records::delete),
        )
        .route(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/shares",
            post(records::share),
        )
        .route(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/shares/{share}/remove",
            post(records::unshare),
        )
        .route(
            "/t/{tenant}/console/conditional-access",
            get(conditional::list),
        )
        .route(
            "/t/{tenant}/console/conditional-access/new",
            get(conditional::new_page).post(conditional::create),
        )
        .route(
            "/t/{tenant}/console/conditional-access/{id}",
            get(conditional::detail),
        )
        .route(
            "/t/{tenant}/console/conditional-access/{id}/edit",
            post(conditional::edit),
        )
        .route(
            "/t/{tenant}/console/conditional-access/{id}/delete",
            post(conditional::delete),
        )
        .route("/t/{tenant}/console/logs", get(logs::audit))
        .route("/t/{tenant}/console/logs/export", get(logs::export))
        .route("/t/{tenant}/console/logs/chain", get(logs::chain))
        .route("/t/{tenant}/console/sign-ins", get(logs::sign_ins))
        .route("/t/{tenant}/console/groups", get(groups::list))
        .route(
            "/t/{tenant}/console/groups/new",
            get(groups::new_page).post(groups::create),
        )
        .route("/t/{tenant}/console/groups/{id}", get(groups::detail))
        .route("/t/{tenant}/console/groups/{id}/edit", post(groups::edit))
        .route(
            "/t/{tenant}/console/groups/{id}/delete",
            post(groups::delete),
        )
        .route(
            "/t/{tenant}/console/groups/{id}/members",
            post(groups::add_member),
        )
        .route(
            "/t/{tenant}/console/groups/{id}/members/{kind}/{member_id}/remove",
            post(groups::remove_member),
        )
        .route("/assets/htmx.min.js", get(htmx))
        .layer(axum::middleware::from_fn(step_up_returns_here))
}

async fn htmx() -> Response {
    super::asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/htmx.min.js"),
    )
}

/// A signed-in person on a console page: their session, the API caller made from it, and the
/// browser's CSRF token for the page's forms.
struct Console {
    me: SignedIn,
    caller: Caller,
    csrf: String,
    new_csrf_cookie: Option<HeaderValue>,
}

impl Console {
    /// `enter` for a page reached by GET: a sign-in comes back to the address asked for,
    /// query and all.
    async fn enter_asked(
        state: &AppState,
        tenant: &str,
        headers: &HeaderMap,
        origin: portcullis_core::audit::Origin,
        uri: &axum::http::Uri,
    ) -> Result<Self, ConsoleError> {
        let asked = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        Self::enter(state, tenant, headers, origin, asked).await
    }

    /// The person behind the request as the API's caller, or the way to sign in and come back
    /// to `here`.
    async fn enter(
        state: &AppState,
        tenant: &str,
        headers: &HeaderMap,
        origin: portcullis_core::audit::Origin,
        here: &str,
    ) -> Result<Self, ConsoleError> {
        let me = Self::person(state, tenant, headers, origin, here).await?;
        Self::as_caller(state, headers, me).await
    }

    /// The signed-in person, or the redirect to sign in (and come back to `here`) or to the
    /// page that holds their session up.
    async fn person(
        state: &AppState,
        tenant: &str,
        headers: &HeaderMap,
        origin: portcullis_core::audit::Origin,
        here: &str,
    ) -> Result<SignedIn, ConsoleError> {
        match signed_in(state, tenant, headers, origin, PageKind::Ordinary).await {
            Ok(me) => Ok(me),
            Err(NotSignedIn::Redirect(response)) => {
                // `here` holds the address as the browser sent it: only a plain path of this
                // tenant's becomes the cookie (no `;` to smuggle in cookie attributes).
                let back = super::same_tenant_path(tenant, here)
                    .map(|back| set_cookie(state, CONTINUE_COOKIE, &back, Some(CONTINUE_SECONDS)));
                Err(ConsoleError(with_cookies(response, back)))
            }
            Err(NotSignedIn::Error(e)) => Err(e.into()),
        }
    }

    /// The person as the admin API's caller: held to conditional access for the admin API.
    async fn as_caller(
        state: &AppState,
        headers: &HeaderMap,
        me: SignedIn,
    ) -> Result<Self, ConsoleError> {
        let (csrf, new_csrf_cookie) = csrf_token(state, headers)?;
        let session = crate::pages::ApiSession {
            tenant: me.tenant.clone(),
            session: me.session.clone(),
            user: me.user.clone(),
        };
        let caller = crate::auth::console_caller(state, session, me.origin.clone()).await?;
        Ok(Self {
            me,
            caller,
            csrf,
            new_csrf_cookie,
        })
    }

    /// A form's post: the person, once its CSRF token is this browser's.
    async fn post(
        state: &AppState,
        tenant: &str,
        headers: &HeaderMap,
        origin: portcullis_core::audit::Origin,
        csrf: &str,
    ) -> Result<Self, ConsoleError> {
        check_csrf(state, headers, csrf)?;
        let here = format!("/t/{tenant}/console");
        Self::enter(state, tenant, headers, origin, &here).await
    }

    fn tenant(&self) -> &str {
        &self.me.tenant.name
    }

    fn frame(&self, section: Section) -> Frame<'_> {
        Frame {
            tenant: &self.me.tenant.name,
            tenant_display: self
                .me
                .tenant
                .display_name
                .as_deref()
                .unwrap_or(&self.me.tenant.name),
            user_name: &self.me.user.user_name,
            csrf: &self.csrf,
            section,
        }
    }

    fn page(&self, template: &impl Template) -> Response {
        with_cookies(html(template), self.new_csrf_cookie.clone())
    }

    /// A page that shows a secret once: no cache or proxy may keep it.
    fn page_no_store(&self, template: &impl Template) -> Response {
        let mut response = self.page(template);
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// What every console page shows around its content: the tenant, the person, the sections.
struct Frame<'a> {
    tenant: &'a str,
    tenant_display: &'a str,
    user_name: &'a str,
    csrf: &'a str,
    section: Section,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Overview,
    Users,
    Groups,
    Applications,
    Settings,
    Risk,
    Access,
    Roles,
    Explorer,
    Conditional,
    Logs,
    SignIns,
}

impl Frame<'_> {
    /// `aria-current` for the navigation link of `section`.
    fn current(&self, section: Section) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// A console page's refusal, already a response: a problem page, or a redirect to sign in or
/// to step up.
struct ConsoleError(Response);

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        self.0
    }
}

/// Marks a response whose request needs a stronger or fresher sign-in; `step_up_returns_here`
/// turns it into the redirect, because only it knows which page to come back to.
#[derive(Clone, Copy)]
struct StepUpNeeded(Assurance);

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InsufficientUserAuthentication { need, .. } => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                response.extensions_mut().insert(StepUpNeeded(need));
                ConsoleError(response)
            }
            other => ConsoleError(PageError::from(other).into_response()),
        }
    }
}

impl From<PageError> for ConsoleError {
    fn from(e: PageError) -> Self {
        ConsoleError(e.into_response())
    }
}

impl From<portcullis_store::StoreError> for ConsoleError {
    fn from(e: portcullis_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

/// Sends a request that needs a stronger or fresher sign-in to the step-up page, and from there
/// back to the page it came from: a page itself, or for a form's post the page the form is on.
async fn step_up_returns_here(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let Some(StepUpNeeded(need)) = response.extensions().get::<StepUpNeeded>().copied() else {
        return response;
    };
    let path = uri.path();
    let Some(tenant) = path
        .strip_prefix("/t/")
        .and_then(|rest| rest.split('/').next())
    else {
        return response;
    };
    let back = if method == Method::GET {
        uri.path_and_query()
            .map_or_else(|| path.to_owned(), |pq| pq.as_str().to_owned())
    } else {
        form_page(path)
    };
    Redirect::to(&Target::link(tenant, &back, need)).into_response()
}

/// Empty text in a form means "none".
fn given(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The version of the object the form was filled in against: a change made meanwhile by
/// someone else is refused (409), not overwritten.
fn as_shown(version: i64) -> crate::extract::Precondition {
    crate::extract::Precondition::Versions(vec![version])
}

/// The API's answer to a form: a refusal the person can mend there (a validation or a
/// conflict) becomes the sentence the form shows; anything else (no right, step-up, gone)
/// stays the API's refusal, answered as a page of its own.
fn on_the_form<T>(answer: Result<T, ApiError>) -> Result<Result<T, String>, ApiError> {
    match answer {
        Ok(value) => Ok(Ok(value)),
        Err(refusal @ (ApiError::Validation(_) | ApiError::Conflict { .. })) => {
            Ok(Err(form_error(&refusal)))
        }
        Err(other) => Err(other),
    }
}

/// A refusal of a form's content, said on the form.
fn form_error(refusal: &ApiError) -> String {
    match refusal {
        ApiError::Validation(e) => {
            // `redirect_uris` reads "redirect URIs", as the form's label says.
            let field = e
                .field
                .split('_')
                .map(|word| match word {
                    "uri" => "URI",
                    "uris" => "URIs",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(" ");
            format!("The {field} {}.", e.message)
        }
        other => format!("{}.", other.problem().detail),
    }
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// A form that turns an object on or off, as the page showed it.
#[derive(Deserialize)]
struct StateForm {
    csrf: String,
    version: i64,
    state: String,
}

impl StateForm {
    /// The state asked for and the notice it leads to; `otherwise` tells what else to do.
    fn wanted(
        &self,
        otherwise: &str,
    ) -> Result<(portcullis_core::identity::LifecycleState, &'static str), PageError> {
        use portcullis_core::identity::LifecycleState;
        match self.state.as_str() {
            "active" => Ok((LifecycleState::Active, "enabled")),
            "disabled" => Ok((LifecycleState::Disabled, "disabled")),
            _ => Err(PageError::BadRequest(otherwise.to_owned())),
        }
    }
}

/// A form that acts on an object as the page showed it.
#[derive(Deserialize)]
struct VersionForm {
    csrf: String,
    version: i64,
}

/// A list page's address with its search `params`, resumed `after` a cursor when given.
fn list_link(page: &str, params: &[(&str, &str)], after: Option<&str>) -> String {
    let mut link = page.to_owned();
    let pairs = params
        .iter()
        .copied()
        .chain(after.map(|cursor| ("after", cursor)));
    for (i, (name, value)) in pairs.enumerate() {
        link.push(if i == 0 { '?' } else { '&' });
        link.push_str(name);
        link.push('=');
        link.push_str(&super::urlencode(value));
    }
    link
}

/// The page a console form is on: every form posts to a path under its object's page,
/// `/t/{tenant}/console/{section}/{id}` (or `…/{section}/new`), whose first six segments those
/// are.
fn form_page(path: &str) -> String {
    path.split('/').take(6).collect::<Vec<_>>().join("/")
}

#[derive(Deserialize)]
struct TenantChoice {
    tenant: Option<String>,
}

#[derive(Template)]
#[template(path = "choose_tenant.html")]
struct ChooseTenantPage<'a> {
    tenant: crate::pages::TenantFace<'a>,
    error: Option<String>,
    notice: Option<String>,
}

/// `/`: which organisation? Never a list of tenants (that would tell anyone who is here); the
/// person types the name they were given.
async fn choose_tenant(Query(choice): Query<TenantChoice>) -> Response {
    let name = choice.tenant.unwrap_or_default();
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return html(&ChooseTenantPage {
            tenant: crate::pages::TenantFace::NONE,
            error: None,
            notice: None,
        });
    }
    if portcullis_core::names::parse_slug("tenant", &name).is_err() {
        let page = ChooseTenantPage {
            tenant: crate::pages::TenantFace::NONE,
            error: Some(
                "That is not an organisation name: names are lower-case letters, digits and hyphens, starting with a letter. Check the name you were given."
                    .into(),
            ),
            notice: None,
        };
        return (StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response();
    }
    Redirect::to(&format!("/t/{name}")).into_response()
}

/// `/t/{tenant}`: the console for someone who administers the tenant, their account for
/// everyone else, and the sign-in page for a browser that is not signed in.
async fn landing(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    // Signed in, the browser comes back here to be sent on (`/t/{tenant}/`: the sign-in returns
    // only to paths under the tenant's own).
    let me = Console::person(&state, &tenant, &headers, origin, &format!("/t/{tenant}/")).await?;
    let account = format!("/t/{}/account", me.tenant.name);
    let console = format!("/t/{}/console", me.tenant.name);
    let to = match Console::as_caller(&state, &headers, me).await {
        Ok(me) if administers(&state, &me.caller).await? => console,
        // Conditional access may keep a person out of the admin API and not out of their
        // account.
        _ => account,
    };
    Ok(Redirect::to(&to).into_response())
}

/// Whether the person may enter the console (core's `CONSOLE_ACTIONS`), decided by the engine
/// on the request's snapshot, tenant-wide or in any environment.
async fn administers(state: &AppState, caller: &Caller) -> Result<bool, ApiError> {
    let current = caller
        .engine(state, crate::engine::Freshness::Latest)
        .await?;
    let now = portcullis_core::engine::tenant::instant(state.clock.now());
    Ok(current
        .engine
        .holds_any(caller.principal, CONSOLE_ACTIONS, now))
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage<'a> {
    frame: Frame<'a>,
    sections: Vec<SectionCard>,
}

struct SectionCard {
    title: &'static str,
    href: String,
    about: &'static str,
}

async fn home(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    if !administers(&state, &me.caller).await? {
        return Err(PageError::NotAllowed(
            "You hold no administrative role in this organisation, so the console has nothing to show you. Your own account is at the account page.",
        )
        .into());
    }
    // What each section needs to be shown: (permission, title, path under the console, about).
    let cards: [(Action, &str, &str, &str); 11] = [
        (
            Action::UserRead,
            "Users",
            "users",
            "Find people, create and invite them, disable, delete and restore them, end their sessions and unlock their accounts.",
        ),
        (
            Action::GroupRead,
            "Groups",
            "groups",
            "Gather people (and other groups) so that roles and access can be given to all of them at once.",
        ),
        (
            Action::ServicePrincipalRead,
            "Applications",
            "applications",
            "The applications that sign people in or get tokens for themselves: redirect URIs, grants, secrets and their rotation.",
        ),
        (
            Action::RoleRead,
            "Role assignments",
            "access",
            "Who holds which role, where and until when: assign, schedule and remove roles.",
        ),
        (
            Action::RoleRead,
            "Access explorer",
            "access/explorer",
            "Why someone may or may not do something, drawn from them to the record, and who may.",
        ),
        (
            Action::TenantUpdate,
            "Conditional access",
            "conditional-access",
            "Policies that decide what a sign-in must prove, from where and to which application, with a what-if tool to try them.",
        ),
        (
            Action::AuditRead,
            "Sign-in log",
            "sign-ins",
            "Who signed in and who failed, and why, with the last day drawn hour by hour.",
        ),
        (
            Action::AuditRead,
            "Audit log",
            "logs",
            "Every change and refusal, filtered and exported as CSV or JSON, and a check that nobody altered the trail.",
        ),
        (
            Action::RoleRead,
            "Roles",
            "roles",
            "The built-in roles and the permissions each one grants, by kind of object.",
        ),
        (
            Action::UserRead,
            "Identity protection",
            "risk",
            "Users at risk and the risky sign-ins behind it: confirm a compromise or dismiss it.",
        ),
        (
            Action::TenantUpdate,
            "Settings",
            "settings",
            "The organisation's name and branding, how people sign in, and the keys that sign its tokens.",
        ),
    ];
    let mut sections = Vec::new();
    for (action, title, path, about) in cards {
        if me
            .caller
            .decide(&state, action, Scope::Tenant)
            .await?
            .allowed
        {
            sections.push(SectionCard {
                title,
                href: format!("/t/{}/console/{path}", me.tenant()),
                about,
            });
        }
    }
    let page = HomePage {
        frame: me.frame(Section::Overview),
        sections,
    };
    Ok(me.page(&page))
}
