//! The authorization engine's data plane: resource types, custom roles, records, shares and
//! deny assignments.

use crate::routes::items;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::Items;
use portcullis_api::resources::{
    CloneRoleBody, CustomRoleBody, NewDenyAssignment, NewResourceType, RecordBody, RecordQuery,
    ResourceTypeBody, ShareBody,
};

use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, RoleRef, Scope};
use portcullis_core::engine::model::Depth;
use portcullis_core::lockout::Removal;
use portcullis_core::names::{parse_description, parse_name};
use portcullis_core::page::{Page, PageRequest, bound};
use portcullis_core::resources::{
    AccessSettings, CustomRole, DenyAssignment, MAX_EXTERNAL_ID_CHARS, RecordEntry, ResourceType,
    RolePermission, Share,
};
use portcullis_core::{DenyAssignmentId, RoleId, ShareId, ValidationError};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::routes::concurrent;
use crate::state::AppState;

fn description(raw: Option<String>) -> ApiResult<Option<String>> {
    Ok(raw
        .map(|d| parse_description("description", &d))
        .transpose()?)
}

async fn allow(
    state: &AppState,
    caller: &Caller,
    action: Action,
    target: Option<Target>,
) -> ApiResult<()> {
    caller.authorize(state, action, Scope::Tenant, target).await
}

// ---- resource types ----

/// The tenant's resource types.
#[utoipa::path(get, path = "/v1/resource-types", tag = "authorization",
    responses((status = 200, body = Items<ResourceType>)))]
pub async fn list_resource_types(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<ResourceType>>> {
    allow(&state, &caller, Action::ResourceTypeRead, None).await?;
    Ok(items(state.store.resource_types(caller.tenant_id()).await?))
}

/// Registers a kind of record an application protects, with its actions.
#[utoipa::path(post, path = "/v1/resource-types", tag = "authorization", request_body = NewResourceType,
    responses((status = 201, body = ResourceType), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_resource_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewResourceType>,
) -> ApiResult<Tagged<ResourceType>> {
    allow(&state, &caller, Action::ResourceTypeWrite, None).await?;
    let created = state
        .store
        .create_resource_type(
            &caller.write_context(&state),
            body.name,
            description(body.description)?,
            body.actions,
        )
        .await?;
    Ok(Tagged::created(created.version, created))
}

#[utoipa::path(get, path = "/v1/resource-types/{name}", tag = "authorization", params(("name" = String, Path)),
    responses((status = 200, body = ResourceType), (status = 404, body = Problem)))]
pub async fn get_resource_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Tagged<ResourceType>> {
    allow(&state, &caller, Action::ResourceTypeRead, None).await?;
    let found = state.store.resource_type(caller.tenant_id(), &name).await?;
    Ok(Tagged::ok(found.version, found))
}

/// Replaces a resource type's description and actions. Roles, shares and deny assignments
/// naming a removed action stop granting or refusing it.
#[utoipa::path(put, path = "/v1/resource-types/{name}", tag = "authorization", params(("name" = String, Path)), request_body = ResourceTypeBody,
    responses((status = 200, body = ResourceType), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_resource_type(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ResourceTypeBody>,
) -> ApiResult<Tagged<ResourceType>> {
    allow(&state, &caller, Action::ResourceTypeWrite, None).await?;
    let current = state.store.resource_type(caller.tenant_id(), &name).await?;
    let version = precondition.check(current.version)?;
    let updated = state
        .store
        .update_resource_type(
            &caller.write_context(&state),
            &name,
            version,
            description(body.description)?,
            body.actions,
        )
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    Ok(Tagged::ok(updated.version, updated))
}

/// Deletes a resource type no record uses.
#[utoipa::path(delete, path = "/v1/resource-types/{name}", tag = "authorization", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_resource_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    allow(&state, &caller, Action::ResourceTypeWrite, None).await?;
    state
        .store
        .delete_resource_type(&caller.write_context(&state), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- custom roles ----

#[utoipa::path(get, path = "/v1/custom-roles", tag = "authorization",
    responses((status = 200, body = Items<CustomRole>)))]
pub async fn list_custom_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<CustomRole>>> {
    allow(&state, &caller, Action::RoleRead, None).await?;
    Ok(items(state.store.custom_roles(caller.tenant_id()).await?))
}

/// Creates a role of the tenant's own. To start from a built-in role, copy its permissions
/// from `GET /v1/roles`.
#[utoipa::path(post, path = "/v1/custom-roles", tag = "authorization", request_body = CustomRoleBody,
    responses((status = 201, body = CustomRole), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CustomRoleBody>,
) -> ApiResult<Tagged<CustomRole>> {
    allow(&state, &caller, Action::RoleWrite, None).await?;
    let role = state
        .store
        .create_custom_role(
            &caller.write_context(&state),
            parse_name("name", &body.name)?,
            description(body.description)?,
            body.permissions,
        )
        .await?;
    Ok(Tagged::created(role.version, role))
}

/// Creates a custom role holding the permissions of a built-in role (`user_administrator`) or
/// another custom role (its id), to be edited from there: built-in roles cannot be changed.
#[utoipa::path(post, path = "/v1/roles/{role}/clone", tag = "authorization",
    params(("role" = String, Path, description = "A built-in role's name or a custom role's id")),
    request_body = CloneRoleBody,
    responses((status = 201, body = CustomRole), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn clone_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(role): ApiPath<String>,
    ApiJson(body): ApiJson<CloneRoleBody>,
) -> ApiResult<Tagged<CustomRole>> {
    allow(&state, &caller, Action::RoleWrite, None).await?;
    let permissions = match role.parse::<RoleRef>().map_err(|_| ApiError::NotFound)? {
        RoleRef::Builtin(builtin) => builtin
            .permissions()
            .iter()
            .map(|action| RolePermission {
                action: action.as_str().to_owned(),
                depth: Depth::Tenant,
            })
            .collect(),
        RoleRef::Custom(id) => {
            state
                .store
                .custom_role(caller.tenant_id(), id)
                .await?
                .permissions
        }
    };
    let role = state
        .store
        .create_custom_role(
            &caller.write_context(&state),
            parse_name("name", &body.name)?,
            description(body.description)?,
            permissions,
        )
        .await?;
    Ok(Tagged::created(role.version, role))
}

#[utoipa::path(get, path = "/v1/custom-roles/{id}", tag = "authorization", params(("id" = RoleId, Path)),
    responses((status = 200, body = CustomRole), (status = 404, body = Problem)))]
pub async fn get_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RoleId>,
) -> ApiResult<Tagged<CustomRole>> {
    allow(&state, &caller, Action::RoleRead, None).await?;
    let role = state.store.custom_role(caller.tenant_id(), id).await?;
    Ok(Tagged::ok(role.version, role))
}

/// Replaces a custom role; everyone holding it gets the new permissions at once.
#[utoipa::path(put, path = "/v1/custom-roles/{id}", tag = "authorization", params(("id" = RoleId, Path)), request_body = CustomRoleBody,
    responses((status = 200, body = CustomRole), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<RoleId>,
    ApiJson(body): ApiJson<CustomRoleBody>,
) -> ApiResult<Tagged<CustomRole>> {
    allow(
        &state,
        &caller,
        Action::RoleWrite,
        Some(Target::new("custom_role", id)),
    )
    .await?;
    let current = state.store.custom_role(caller.tenant_id(), id).await?;
    let version = precondition.check(current.version)?;
    let ctx = caller
        .guarded_write_context(&state, Removal::Grants)
        .await?;
    let role = state
        .store
        .update_custom_role(
            &ctx,
            id,
            version,
            parse_name("name", &body.name)?,
            description(body.description)?,
            body.permissions,
        )
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    Ok(Tagged::ok(role.version, role))
}

/// Deletes a custom role nobody holds.
#[utoipa::path(delete, path = "/v1/custom-roles/{id}", tag = "authorization", params(("id" = RoleId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RoleId>,
) -> ApiResult<StatusCode> {
    allow(
        &state,
        &caller,
        Action::RoleWrite,
        Some(Target::new("custom_role", id)),
    )
    .await?;
    state
        .store
        .delete_custom_role(&caller.write_context(&state), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- records and shares ----

/// The records of a type, in external-id order: all of them page by page, or those whose id
/// starts with `prefix`.
#[utoipa::path(get, path = "/v1/records/{resource_type}", tag = "authorization",
    params(("resource_type" = String, Path), RecordQuery),
    responses((status = 200, body = Page<RecordEntry>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(resource_type): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecordQuery>,
) -> ApiResult<Json<Page<RecordEntry>>> {
    allow(&state, &caller, Action::RecordRead, None).await?;
    let prefix = q.prefix.unwrap_or_default();
    if prefix.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(ValidationError::new(
            "prefix",
            format!("must be at most {MAX_EXTERNAL_ID_CHARS} characters, as long as the longest external id"),
        )
        .into());
    }
    let limit = PageRequest::parse(None, q.limit)?.limit;
    // The type is looked up first so that a misspelt one is a 404, not an empty list.
    let tenant = caller.tenant_id();
    state.store.resource_type(tenant, &resource_type).await?;
    let listing = format!("records\n{resource_type}\n{prefix}");
    let after = q
        .cursor
        .as_deref()
        .map(|cursor| bound::position(listing.as_bytes(), cursor, "cursor"))
        .transpose()?;
    let (items, more) = state
        .store
        .records_of(tenant, &resource_type, &prefix, after.as_deref(), limit)
        .await?;
    let next_cursor = more
        .then(|| items.last())
        .flatten()
        .map(|last| bound::token(listing.as_bytes(), &last.external_id));
    Ok(Json(Page { items, next_cursor }))
}

/// A record as the engine sees it.
#[utoipa::path(get, path = "/v1/records/{resource_type}/{external_id}", tag = "authorization",
    params(("resource_type" = String, Path), ("external_id" = String, Path)),
    responses((status = 200, body = RecordEntry), (status = 404, body = Problem)))]
pub async fn get_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((resource_type, external_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<RecordEntry>> {
    allow(&state, &caller, Action::RecordRead, None).await?;
    Ok(Json(
        state
            .store
            .record(caller.tenant_id(), &resource_type, &external_id)
            .await?,
    ))
}

/// Registers a record, or moves it to another owner, unit or environment.
#[utoipa::path(put, path = "/v1/records/{resource_type}/{external_id}", tag = "authorization",
    params(("resource_type" = String, Path), ("external_id" = String, Path)), request_body = RecordBody,
    responses((status = 200, body = RecordEntry), (status = 422, body = Problem)))]
pub async fn put_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((resource_type, external_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RecordBody>,
) -> ApiResult<Json<RecordEntry>> {
    allow(&state, &caller, Action::RecordWrite, None).await?;
    let record = state
        .store
        .put_record(
            &caller.write_context(&state),
            &resource_type,
            &external_id,
            body.owner,
            body.business_unit_id,
            body.environment_id,
        )
        .await?;
    Ok(Json(record))
}

/// Deletes a record with its shares and the role assignments scoped to it.
#[utoipa::path(delete, path = "/v1/records/{resource_type}/{external_id}", tag = "authorization",
    params(("resource_type" = String, Path), ("external_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((resource_type, external_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    allow(&state, &caller, Action::RecordWrite, None).await?;
    state
        .store
        .delete_record(&caller.write_context(&state), &resource_type, &external_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/records/{resource_type}/{external_id}/shares", tag = "authorization",
    params(("resource_type" = String, Path), ("external_id" = String, Path)),
    responses((status = 200, body = Items<Share>), (status = 404, body = Problem)))]
pub async fn list_shares(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((resource_type, external_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Items<Share>>> {
    allow(&state, &caller, Action::RecordRead, None).await?;
    let record = state
        .store
        .record(caller.tenant_id(), &resource_type, &external_id)
        .await?;
    Ok(items(
        state.store.shares_of(caller.tenant_id(), record.id).await?,
    ))
}

/// Shares actions of a record with a principal, replacing what it was given before.
#[utoipa::path(post, path = "/v1/records/{resource_type}/{external_id}/shares", tag = "authorization",
    params(("resource_type" = String, Path), ("external_id" = String, Path)), request_body = ShareBody,
    responses((status = 201, body = Share), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((resource_type, external_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ShareBody>,
) -> ApiResult<(StatusCode, Json<Share>)> {
    allow(&state, &caller, Action::RecordWrite, None).await?;
    let share = state
        .store
        .put_share(
            &caller.write_context(&state),
            &resource_type,
            &external_id,
            body.principal,
            body.actions,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(share)))
}

#[utoipa::path(delete, path = "/v1/shares/{id}", tag = "authorization", params(("id" = ShareId, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ShareId>,
) -> ApiResult<StatusCode> {
    allow(&state, &caller, Action::RecordWrite, None).await?;
    state
        .store
        .delete_share(&caller.write_context(&state), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- deny assignments ----

#[utoipa::path(get, path = "/v1/deny-assignments", tag = "authorization",
    responses((status = 200, body = Items<DenyAssignment>)))]
pub async fn list_deny_assignments(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<DenyAssignment>>> {
    allow(&state, &caller, Action::RoleRead, None).await?;
    Ok(items(
        state.store.deny_assignments(caller.tenant_id()).await?,
    ))
}

/// Creates a guardrail: the principals may not do the actions at the scope, whatever they hold.
#[utoipa::path(post, path = "/v1/deny-assignments", tag = "authorization", request_body = NewDenyAssignment,
    responses((status = 201, body = DenyAssignment), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_deny_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewDenyAssignment>,
) -> ApiResult<(StatusCode, Json<DenyAssignment>)> {
    allow(&state, &caller, Action::DenyAssignmentWrite, None).await?;
    let ctx = caller
        .guarded_write_context(&state, Removal::Grants)
        .await?;
    let deny = state
        .store
        .create_deny_assignment(
            &ctx,
            portcullis_store::NewDenyAssignment {
                name: parse_name("name", &body.name)?,
                description: description(body.description)?,
                principals: body.principals,
                excluded: body.excluded,
                actions: body.actions,
                scope: body.scope.unwrap_or(Scope::Tenant),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(deny)))
}

#[utoipa::path(delete, path = "/v1/deny-assignments/{id}", tag = "authorization", params(("id" = DenyAssignmentId, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_deny_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<DenyAssignmentId>,
) -> ApiResult<StatusCode> {
    allow(
        &state,
        &caller,
        Action::DenyAssignmentWrite,
        Some(Target::new("deny_assignment", id)),
    )
    .await?;
    state
        .store
        .delete_deny_assignment(&caller.write_context(&state), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- access settings ----

/// The tenant's settings of the decisions its applications get: how many allowed decisions
/// are written to the audit trail.
#[utoipa::path(get, path = "/v1/access-settings", tag = "authorization",
    responses((status = 200, body = AccessSettings), (status = 403, body = Problem)))]
pub async fn get_access_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AccessSettings>> {
    allow(&state, &caller, Action::TenantRead, None).await?;
    Ok(Json(state.store.access_settings(caller.tenant_id()).await?))
}

/// Replaces the tenant's access settings; they apply from the next decision on every node.
#[utoipa::path(put, path = "/v1/access-settings", tag = "authorization", request_body = AccessSettings,
    responses((status = 200, body = AccessSettings), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_access_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(settings): ApiJson<AccessSettings>,
) -> ApiResult<Json<AccessSettings>> {
    allow(&state, &caller, Action::TenantUpdate, None).await?;
    settings.validate().map_err(ApiError::Validation)?;
    let ctx = caller.write_context(&state);
    state
        .store
        .set_access_settings(&ctx, settings.clone())
        .await?;
    Ok(Json(settings))
}
