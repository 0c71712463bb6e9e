//! The console's users: find, create, change, disable, delete and restore them, and the help
//! desk's actions (end sessions, unlock, enrolment link). Each page calls the admin API's
//! handler for the same operation (`crate::routes::users`) with the person's caller.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::users::{
    CreateUser, EnrolmentLinkRequest, MfaStatus, UnlockRequest, UpdateUser, UserQuery,
};
use portcullis_core::identity::{Group, LifecycleState, User, UserKind};
use portcullis_core::passkey::PasskeySummary;
use portcullis_core::password::PasswordStatus;
use portcullis_core::session::Session;
use portcullis_core::{PasskeyId, UserId};

use super::{
    Console, ConsoleError, CsrfForm, Frame, Section, StateForm, VersionForm, as_shown, given,
    list_link,
};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::users as api;
use crate::state::AppState;

/// Users on one page of the list.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct ListPage<'a> {
    frame: Frame<'a>,
    q: &'a str,
    state: &'a str,
    kind: &'a str,
    users: Vec<User>,
    next: Option<String>,
    first_page: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<ListQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/users");
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let q = query.q.trim();
    let api_query = UserQuery {
        state: LifecycleState::parse(&query.state),
        kind: UserKind::parse(&query.kind),
        prefix: (!q.is_empty()).then(|| q.to_owned()),
        business_unit_id: None,
        cursor: query.after.clone(),
        limit: Some(PAGE_SIZE),
    };
    let Json(page) = api::list_users(State(state), me.caller.clone(), ApiQuery(api_query)).await?;
    let search = |after: Option<&str>| {
        list_link(
            &here,
            &[("q", q), ("state", &query.state), ("kind", &query.kind)],
            after,
        )
    };
    let page = ListPage {
        frame: me.frame(Section::Users),
        q,
        state: &query.state,
        kind: &query.kind,
        users: page.items,
        next: page.next_cursor.as_deref().map(|c| search(Some(c))),
        first_page: query.after.is_some().then(|| search(None)),
    };
    Ok(me.page(&page))
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct DetailPage<'a> {
    frame: Frame<'a>,
    user: User,
    groups: Vec<Group>,
    sessions: Vec<SessionRow>,
    password: PasswordStatus,
    mfa: MfaStatus,
    passkeys: Vec<PasskeySummary>,
    locked: bool,
    failures: u32,
    /// Whether the server delivers mail, so links can be sent instead of shown.
    mail: bool,
    notice: Option<&'static str>,
}

struct SessionRow {
    started: String,
    source: String,
    device: String,
    strength: &'static str,
}

#[derive(Deserialize)]
pub(super) struct DetailQuery {
    done: Option<String>,
}

/// What a form's post did, told on the page it returns to. Only these fixed words are shown:
/// nothing from the address is echoed into the page.
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "The user was created.",
        "saved" => "Your changes were saved.",
        "disabled" => "The user is disabled: their sessions ended and they cannot sign in.",
        "enabled" => "The user is active again and may sign in.",
        "deleted" => "The user is deleted. You can restore them until the retention period ends.",
        "restored" => "The user is restored.",
        "sessions" => "All the user's sessions have ended.",
        "unlocked" => "The account is unlocked: the user may try to sign in again at once.",
        "invited" => {
            "The invitation is on its way to the user's address. It replaces any unused link."
        }
        "verification" => "A link to confirm the address is on its way to it.",
        "mfa-reset" => {
            "The authenticator app and recovery codes are removed and the user's sessions ended. Where a second factor is required, they set up a new one at their next sign-in."
        }
        "passkey-removed" => "The passkey no longer works, and the user's sessions ended.",
        _ => return None,
    })
}

pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DetailQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/users/{id}");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let id = user_id(&id)?;
    let user = api::get_user(State(state.clone()), me.caller.clone(), ApiPath(id))
        .await?
        .body;
    let Json(groups) =
        api::user_groups(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let Json(sessions) =
        api::list_sessions(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let Json(password) =
        api::password_status(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let Json(lockout) = api::lockout(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let Json(mfa) = api::mfa_status(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let Json(passkeys) =
        api::list_passkeys(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let page = DetailPage {
        frame: me.frame(Section::Users),
        user,
        groups: groups.items,
        sessions: sessions.items.iter().map(session_row).collect(),
        password,
        mfa,
        passkeys: passkeys.items,
        locked: lockout.locked,
        failures: lockout.failures,
        mail: state.config.mail.is_some(),
        notice: done_notice(query.done.as_deref()),
    };
    Ok(me.page(&page))
}

fn session_row(session: &Session) -> SessionRow {
    SessionRow {
        started: super::super::minute(&session.created_at),
        source: session
            .source_ip
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        device: portcullis_core::user_agent::describe(session.user_agent.as_deref()),
        strength: session.strength.as_str(),
    }
}

fn user_id(text: &str) -> Result<UserId, PageError> {
    text.parse::<UserId>().map_err(|_| {
        PageError::NotFound("There is no such user. The users page lists the tenant's users.")
    })
}

#[derive(Template)]
#[template(path = "console/user_new.html")]
struct NewPage<'a> {
    frame: Frame<'a>,
    form: NewUserForm,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

pub(super) async fn new_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/users/new");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let page = NewPage {
        frame: me.frame(Section::Users),
        form: NewUserForm::default(),
        error: None,
    };
    Ok(me.page(&page))
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<NewUserForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let body = CreateUser {
        user_name: form.user_name.trim().to_owned(),
        email: given(&form.email),
        display_name: given(&form.display_name),
        ..CreateUser::default()
    };
    match super::on_the_form(
        api::create_user(State(state), me.caller.clone(), ApiJson(body)).await,
    )? {
        Ok(created) => Ok(Redirect::to(&format!(
            "/t/{}/console/users/{}?done=created",
            me.tenant(),
            created.body.id
        ))
        .into_response()),
        // A mistake in the form is shown on the form, with what was typed kept.
        Err(error) => {
            let page = NewPage {
                frame: me.frame(Section::Users),
                form,
                error: Some(error),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, me.page(&page)).into_response())
        }
    }
}

fn back_to(me: &Console, id: UserId, done: &str) -> Response {
    Redirect::to(&format!(
        "/t/{}/console/users/{id}?done={done}",
        me.tenant()
    ))
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    csrf: String,
    version: i64,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<EditForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let body = UpdateUser {
        display_name: Some(given(&form.display_name)),
        email: Some(given(&form.email)),
        ..UpdateUser::default()
    };
    api::update_user(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
        ApiJson(body),
    )
    .await?;
    Ok(back_to(&me, id, "saved"))
}

pub(super) async fn set_state(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<StateForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let (new_state, done) =
        form.wanted("A user can be made active or disabled here; to delete one, use Delete.")?;
    let body = UpdateUser {
        state: Some(new_state),
        ..UpdateUser::default()
    };
    api::update_user(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
        ApiJson(body),
    )
    .await?;
    Ok(back_to(&me, id, done))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VersionForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    api::delete_user(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
    )
    .await?;
    Ok(back_to(&me, id, "deleted"))
}

pub(super) async fn restore(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    api::restore_user(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(back_to(&me, id, "restored"))
}

pub(super) async fn end_sessions(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let Json(_) = api::end_sessions(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(back_to(&me, id, "sessions"))
}

/// Removes the user's authenticator app and recovery codes (a lost phone), ending their
/// sessions.
pub(super) async fn reset_mfa(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    api::reset_mfa(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(back_to(&me, id, "mfa-reset"))
}

/// Removes one passkey (a lost device), ending the user's sessions.
pub(super) async fn remove_passkey(
    State(state): State<AppState>,
    Path((tenant, id, passkey)): Path<(String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let passkey = passkey.parse::<PasskeyId>().map_err(|_| {
        PageError::NotFound("There is no such passkey. It may have been removed already.")
    })?;
    api::remove_passkey(State(state), me.caller.clone(), ApiPath((id, passkey))).await?;
    Ok(back_to(&me, id, "passkey-removed"))
}

#[derive(Deserialize)]
pub(super) struct UnlockForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn unlock(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<UnlockForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let body = UnlockRequest {
        reason: form.reason,
    };
    let Json(_) = api::unlock(State(state), me.caller.clone(), ApiPath(id), ApiJson(body)).await?;
    Ok(back_to(&me, id, "unlocked"))
}

/// Mails the user a link to confirm their address.
pub(super) async fn email_verification(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let (_, Json(_)) =
        api::send_email_verification(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(back_to(&me, id, "verification"))
}

#[derive(Deserialize)]
pub(super) struct LinkForm {
    csrf: String,
    hours: Option<u32>,
    /// `mail` to send it to the user's address; otherwise it is shown.
    delivery: Option<String>,
}

#[derive(Template)]
#[template(path = "console/enrolment_link.html")]
struct LinkPage<'a> {
    frame: Frame<'a>,
    user: User,
    url: String,
    expires: String,
    replaced: u64,
}

/// An enrolment link, shown once to the administrator to hand over: only its keyed hash is
/// kept, and the page is not cached.
pub(super) async fn enrolment_link(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = user_id(&id)?;
    let send = form.delivery.as_deref() == Some("mail");
    let body = EnrolmentLinkRequest {
        expires_in_hours: form.hours,
        send: Some(send),
    };
    let (_, Json(link)) = api::create_enrolment_link(
        State(state.clone()),
        me.caller.clone(),
        ApiPath(id),
        ApiJson(body),
    )
    .await?;
    let Some(url) = link.url else {
        return Ok(back_to(&me, id, "invited"));
    };
    let user = state.store.user(me.caller.tenant_id(), id).await?;
    let page = LinkPage {
        frame: me.frame(Section::Users),
        user,
        url,
        expires: super::super::minute(&link.expires_at),
        replaced: link.replaced,
    };
    Ok(me.page_no_store(&page))
}
