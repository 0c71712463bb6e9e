//! The console's groups: find, create, rename and delete them, and manage their members (users
//! and nested groups, named as people know them, not by id). Each page calls the admin API's
//! handler for the same operation (`crate::routes::groups`) with the person's caller.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::groups::{CreateGroup, GroupQuery, UpdateGroup};
use portcullis_api::tenants::ListParams;
use portcullis_core::GroupId;
use portcullis_core::identity::{Group, GroupMember, PrincipalKind};

use super::{
    Console, ConsoleError, CsrfForm, Frame, Section, VersionForm, as_shown, given, list_link,
};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::groups as api;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct ListPage<'a> {
    frame: Frame<'a>,
    q: &'a str,
    groups: Vec<Group>,
    next: Option<String>,
    first_page: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/groups");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let q = query.q.trim();
    let api_query = GroupQuery {
        prefix: given(q),
        cursor: query.after.clone(),
        limit: Some(PAGE_SIZE),
    };
    let Json(page) = api::list_groups(State(state), me.caller.clone(), ApiQuery(api_query)).await?;
    let page = ListPage {
        frame: me.frame(Section::Groups),
        q,
        groups: page.items,
        next: page
            .next_cursor
            .as_deref()
            .map(|c| list_link(&here, &[("q", q)], Some(c))),
        first_page: query
            .after
            .is_some()
            .then(|| list_link(&here, &[("q", q)], None)),
    };
    Ok(me.page(&page))
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct DetailPage<'a> {
    frame: Frame<'a>,
    group: Group,
    members: Vec<GroupMember>,
    more_members: bool,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct DetailQuery {
    done: Option<String>,
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "The group was created.",
        "saved" => "Your changes were saved.",
        "added" => "The member was added.",
        "removed" => "The member was removed.",
        _ => return None,
    })
}

/// Members shown on a group's page; the API pages through the rest.
const MEMBERS_SHOWN: u32 = 200;

pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DetailQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/groups/{id}");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let id = group_id(&id)?;
    let group = api::get_group(State(state.clone()), me.caller.clone(), ApiPath(id))
        .await?
        .body;
    let members = ListParams {
        cursor: None,
        limit: Some(MEMBERS_SHOWN),
    };
    let Json(members) = api::list_members(
        State(state),
        me.caller.clone(),
        ApiPath(id),
        ApiQuery(members),
    )
    .await?;
    let page = DetailPage {
        frame: me.frame(Section::Groups),
        group,
        more_members: members.next_cursor.is_some(),
        members: members.items,
        notice: done_notice(query.done.as_deref()),
    };
    Ok(me.page(&page))
}

fn group_id(text: &str) -> Result<GroupId, PageError> {
    text.parse::<GroupId>().map_err(|_| {
        PageError::NotFound("There is no such group. The groups page lists the tenant's groups.")
    })
}

fn back_to(me: &Console, id: GroupId, done: &str) -> Response {
    Redirect::to(&format!(
        "/t/{}/console/groups/{id}?done={done}",
        me.tenant()
    ))
    .into_response()
}

#[derive(Template)]
#[template(path = "console/group_new.html")]
struct NewPage<'a> {
    frame: Frame<'a>,
    form: GroupForm,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn new_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/groups/new");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let page = NewPage {
        frame: me.frame(Section::Groups),
        form: GroupForm::default(),
        error: None,
    };
    Ok(me.page(&page))
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<GroupForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let body = CreateGroup {
        name: form.name.trim().to_owned(),
        description: given(&form.description),
        business_unit_id: None,
    };
    match super::on_the_form(
        api::create_group(State(state), me.caller.clone(), ApiJson(body)).await,
    )? {
        Ok(created) => Ok(back_to(&me, created.body.id, "created")),
        Err(error) => {
            let page = NewPage {
                frame: me.frame(Section::Groups),
                form,
                error: Some(error),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, me.page(&page)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    csrf: String,
    version: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<EditForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = group_id(&id)?;
    let body = UpdateGroup {
        name: Some(form.name.trim().to_owned()),
        description: Some(given(&form.description)),
        business_unit_id: None,
    };
    api::update_group(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
        ApiJson(body),
    )
    .await?;
    Ok(back_to(&me, id, "saved"))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VersionForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = group_id(&id)?;
    api::delete_group(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/console/groups", me.tenant())).into_response())
}

#[derive(Deserialize)]
pub(super) struct AddMemberForm {
    csrf: String,
    kind: String,
    #[serde(default)]
    name: String,
}

/// Adds a member named as people know them (`access::find_principal`).
pub(super) async fn add_member(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<AddMemberForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = group_id(&id)?;
    if !matches!(form.kind.as_str(), "user" | "group") {
        return Err(PageError::BadRequest(
            "A member is a user or a group. Go back and choose one.".into(),
        )
        .into());
    }
    let name = form.name.trim();
    let member = super::access::find_principal(&state, &me, &form.kind, name).await?;
    let Some(member) = member else {
        return Err(PageError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "There is no {} named “{name}” in this organisation. Go back and check the name.",
                form.kind.replace('_', " ")
            ),
        )
        .into());
    };
    let (_, Json(_)) = api::add_member(
        State(state),
        me.caller.clone(),
        ApiPath(id),
        ApiJson(member),
    )
    .await?;
    Ok(back_to(&me, id, "added"))
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    Path((tenant, id, kind, member_id)): Path<(String, String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = group_id(&id)?;
    let gone = || PageError::NotFound("That member is not in the group any more.");
    let kind = PrincipalKind::parse(&kind).ok_or_else(gone)?;
    let member_id = member_id.parse::<uuid::Uuid>().map_err(|_| gone())?;
    api::remove_member(
        State(state),
        me.caller.clone(),
        ApiPath((id, kind, member_id)),
    )
    .await?;
    Ok(back_to(&me, id, "removed"))
}
