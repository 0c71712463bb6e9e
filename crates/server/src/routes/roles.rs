//! Built-in roles and role assignments.

use crate::routes::items;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::Items;
use portcullis_api::roles::{AssignmentQuery, CreateRoleAssignment, RoleDefinition};

use portcullis_core::RoleAssignmentId;
use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, BuiltinRole, RoleAssignment, Scope, validate_window};
use portcullis_core::identity::PrincipalRef;
use portcullis_core::lockout::Removal;
use portcullis_core::page::{Page, PageRequest};
use portcullis_store::AssignmentFilter;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The built-in roles and what each allows.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", responses((status = 200, body = Items<RoleDefinition>)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<RoleDefinition>>> {
    caller
        .authorize(&state, Action::RoleRead, Scope::Tenant, None)
        .await?;
    Ok(items(
        BuiltinRole::ALL
            .iter()
            .map(|role| RoleDefinition {
                name: *role,
                description: role.description(),
                permissions: role.permissions().iter().map(|a| a.as_str()).collect(),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/role-assignments", tag = "roles", params(AssignmentQuery),
    responses((status = 200, body = Page<RoleAssignment>), (status = 400, body = Problem)))]
pub async fn list_role_assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AssignmentQuery>,
) -> ApiResult<Json<Page<RoleAssignment>>> {
    caller
        .authorize(
            &state,
            Action::RoleRead,
            q.scope.unwrap_or(Scope::Tenant),
            None,
        )
        .await?;
    let principal = match (q.principal_kind, q.principal_id) {
        (Some(kind), Some(id)) => Some(PrincipalRef { kind, id }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "principal_id",
                "give principal_kind and principal_id together",
            ));
        }
    };
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = AssignmentFilter {
        principal,
        role: q.role,
        scope: q.scope,
    };
    Ok(Json(
        state
            .store
            .role_assignments(caller.tenant_id(), &filter, page)
            .await?,
    ))
}

/// Assigns a role to a user, group or service principal at a scope.
#[utoipa::path(post, path = "/v1/role-assignments", tag = "roles", request_body = CreateRoleAssignment,
    responses((status = 201, body = RoleAssignment), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_role_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRoleAssignment>,
) -> ApiResult<(StatusCode, Json<RoleAssignment>)> {
    let scope = body.scope.unwrap_or(Scope::Tenant);
    let target = Some(Target::new(body.principal.kind.as_str(), body.principal.id));
    caller
        .authorize(&state, Action::RoleAssign, scope, target)
        .await?;
    validate_window(body.starts_at, body.ends_at, state.clock.now())?;
    let assignment = state
        .store
        .create_role_assignment(
            &caller.write_context(&state),
            body.principal,
            body.role,
            scope,
            body.starts_at,
            body.ends_at,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(assignment)))
}

#[utoipa::path(get, path = "/v1/role-assignments/{id}", tag = "roles", params(("id" = RoleAssignmentId, Path)),
    responses((status = 200, body = RoleAssignment), (status = 404, body = Problem)))]
pub async fn get_role_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RoleAssignmentId>,
) -> ApiResult<Json<RoleAssignment>> {
    let assignment = state.store.role_assignment(caller.tenant_id(), id).await;
    let scope = assignment.as_ref().map_or(Scope::Tenant, |a| a.scope);
    caller
        .authorize(
            &state,
            Action::RoleRead,
            scope,
            Some(Target::new("role_assignment", id)),
        )
        .await?;
    Ok(Json(assignment?))
}

/// Removes a role assignment; what it granted stops at once.
#[utoipa::path(delete, path = "/v1/role-assignments/{id}", tag = "roles", params(("id" = RoleAssignmentId, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_role_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RoleAssignmentId>,
) -> ApiResult<StatusCode> {
    let assignment = state.store.role_assignment(caller.tenant_id(), id).await;
    let scope = assignment.as_ref().map_or(Scope::Tenant, |a| a.scope);
    caller
        .authorize(
            &state,
            Action::RoleAssign,
            scope,
            Some(Target::new("role_assignment", id)),
        )
        .await?;
    assignment?;
    // Only a tenant-wide assignment can be what lets someone assign roles tenant-wide.
    let ctx = if scope == Scope::Tenant {
        caller
            .guarded_write_context(&state, Removal::Grants)
            .await?
    } else {
        caller.write_context(&state)
    };
    state.store.delete_role_assignment(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
