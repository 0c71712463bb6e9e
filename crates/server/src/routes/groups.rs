//! Security groups and their members. Changing a group that holds roles needs `role.assign`:
//! membership of such a group *is* a role assignment.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::groups::{CreateGroup, GroupQuery, UpdateGroup};
use uuid::Uuid;

use portcullis_core::GroupId;
use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::{Group, GroupMember, PrincipalKind, PrincipalRef};
use portcullis_core::lockout::Removal;
use portcullis_core::names::{parse_description, parse_name};
use portcullis_core::page::{Page, PageRequest};

use crate::auth::Caller;
use crate::engine::Freshness;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::routes::concurrent;
use crate::state::AppState;
use portcullis_api::tenants::ListParams;

fn group_target(id: GroupId) -> Option<Target> {
    Some(Target::new("group", id))
}

/// Authorizes a change to a group: `group.write`, plus `role.assign` if the group holds roles.
async fn authorize_group_change(state: &AppState, caller: &Caller, id: GroupId) -> ApiResult<()> {
    caller
        .authorize_change_to(state, Action::GroupWrite, PrincipalRef::group(id))
        .await?;
    state.store.group(caller.tenant_id(), id).await?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/groups", tag = "groups", params(GroupQuery), responses((status = 200, body = Page<Group>)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> ApiResult<Json<Page<Group>>> {
    caller
        .authorize(&state, Action::GroupRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(
        state
            .store
            .groups(caller.tenant_id(), q.prefix.as_deref(), page)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/groups", tag = "groups", request_body = CreateGroup,
    responses((status = 201, body = Group), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<Tagged<Group>> {
    caller
        .authorize(&state, Action::GroupWrite, Scope::Tenant, None)
        .await?;
    let name = parse_name("name", &body.name)?;
    let description = body
        .description
        .map(|d| parse_description("description", &d))
        .transpose()?;
    let group = state
        .store
        .create_group(
            &caller.write_context(&state),
            name,
            description,
            body.business_unit_id,
        )
        .await?;
    Ok(Tagged::created(group.version, group))
}

#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", params(("id" = GroupId, Path)),
    responses((status = 200, body = Group), (status = 404, body = Problem)))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<GroupId>,
) -> ApiResult<Tagged<Group>> {
    caller
        .authorize(&state, Action::GroupRead, Scope::Tenant, group_target(id))
        .await?;
    let group = state.store.group(caller.tenant_id(), id).await?;
    Ok(Tagged::ok(group.version, group))
}

#[utoipa::path(patch, path = "/v1/groups/{id}", tag = "groups", params(("id" = GroupId, Path)), request_body = UpdateGroup,
    responses((status = 200, body = Group), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<GroupId>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> ApiResult<Tagged<Group>> {
    authorize_group_change(&state, &caller, id).await?;
    let current = state.store.group(caller.tenant_id(), id).await?;
    let name = parse_name("name", body.name.as_deref().unwrap_or(&current.name))?;
    let description = match body.description {
        None => current.description.clone(),
        Some(value) => value
            .map(|d| parse_description("description", &d))
            .transpose()?,
    };
    let business_unit_id = body.business_unit_id.unwrap_or(current.business_unit_id);
    let version = precondition.check(current.version)?;
    let group = state
        .store
        .update_group(
            &caller.write_context(&state),
            id,
            version,
            name,
            description,
            business_unit_id,
        )
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    Ok(Tagged::ok(group.version, group))
}

/// Deletes a group, its memberships and its role assignments.
#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups", params(("id" = GroupId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<GroupId>,
) -> ApiResult<StatusCode> {
    authorize_group_change(&state, &caller, id).await?;
    let current = state.store.group(caller.tenant_id(), id).await?;
    let ctx = caller
        .guarded_write_context(&state, Removal::Grants)
        .await?;
    state
        .store
        .delete_group(&ctx, id, precondition.expected(current.version)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "groups", params(("id" = GroupId, Path), ListParams),
    responses((status = 200, body = Page<GroupMember>), (status = 404, body = Problem)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<GroupId>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<GroupMember>>> {
    caller
        .authorize(&state, Action::GroupRead, Scope::Tenant, group_target(id))
        .await?;
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit)?;
    Ok(Json(
        state
            .store
            .group_members(caller.tenant_id(), id, page)
            .await?,
    ))
}

/// Adds a user, group or service principal. A group may not end up containing itself.
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "groups", params(("id" = GroupId, Path)), request_body = PrincipalRef,
    responses((status = 201, body = GroupMember), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<GroupId>,
    ApiJson(member): ApiJson<PrincipalRef>,
) -> ApiResult<(StatusCode, Json<GroupMember>)> {
    authorize_group_change(&state, &caller, id).await?;
    // Joining a group a deny assignment names can take the power to assign roles away too.
    let denied_group = caller
        .engine(&state, Freshness::Latest)
        .await?
        .engine
        .under_deny_assignment(PrincipalRef::group(id));
    let ctx = if denied_group {
        caller
            .guarded_write_context(&state, Removal::Grants)
            .await?
    } else {
        caller.write_context(&state)
    };
    let added = state.store.add_group_member(&ctx, id, member).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

#[utoipa::path(delete, path = "/v1/groups/{id}/members/{kind}/{member_id}", tag = "groups",
    params(("id" = GroupId, Path), ("kind" = PrincipalKind, Path), ("member_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, kind, member_id)): ApiPath<(GroupId, PrincipalKind, Uuid)>,
) -> ApiResult<StatusCode> {
    authorize_group_change(&state, &caller, id).await?;
    let member = PrincipalRef {
        kind,
        id: member_id,
    };
    let ctx = caller
        .guarded_write_context(&state, Removal::Membership { member, group: id })
        .await?;
    state.store.remove_group_member(&ctx, id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}
