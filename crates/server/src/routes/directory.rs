//! Environments and business units.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::directory::{
    CreateBusinessUnit, CreateEnvironment, UpdateBusinessUnit, UpdateEnvironment,
};

use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::{BusinessUnit, Environment, PrincipalKind, PrincipalRef};
use portcullis_core::names::{parse_description, parse_name, parse_slug};
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::{BusinessUnitId, EnvironmentId};

use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::routes::concurrent;
use crate::state::AppState;
use portcullis_api::tenants::ListParams;

fn description(raw: Option<String>) -> ApiResult<Option<String>> {
    Ok(raw
        .map(|d| parse_description("description", &d))
        .transpose()?)
}

/// A PATCH of an optional text field: absent keeps it, null clears it.
fn patched_description(
    patch: Option<Option<String>>,
    current: Option<String>,
) -> ApiResult<Option<String>> {
    match patch {
        None => Ok(current),
        Some(value) => description(value),
    }
}

/// The environments the caller may read.
#[utoipa::path(get, path = "/v1/environments", tag = "directory", params(ListParams),
    responses((status = 200, body = Page<Environment>)))]
pub async fn list_environments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Environment>>> {
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit)?;
    let mut listing = state.store.environments(caller.tenant_id(), page).await?;
    // Environment-scoped readers see only their environments; a caller who can read none is refused.
    let mut readable = Vec::with_capacity(listing.items.len());
    for environment in &listing.items {
        let scope = Scope::Environment(environment.id);
        readable.push(
            caller
                .decide(&state, Action::EnvironmentRead, scope)
                .await?
                .allowed,
        );
    }
    if !readable.iter().any(|r| *r) {
        caller
            .authorize(&state, Action::EnvironmentRead, Scope::Tenant, None)
            .await?;
    }
    let mut readable = readable.into_iter();
    listing.items.retain(|_| readable.next().unwrap_or(false));
    Ok(Json(listing))
}

#[utoipa::path(post, path = "/v1/environments", tag = "directory", request_body = CreateEnvironment,
    responses((status = 201, body = Environment), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_environment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEnvironment>,
) -> ApiResult<Tagged<Environment>> {
    caller
        .authorize(&state, Action::EnvironmentCreate, Scope::Tenant, None)
        .await?;
    let name = parse_slug("name", &body.name)?;
    let environment = state
        .store
        .create_environment(
            &caller.write_context(&state),
            name,
            description(body.description)?,
        )
        .await?;
    Ok(Tagged::created(environment.version, environment))
}

#[utoipa::path(get, path = "/v1/environments/{id}", tag = "directory", params(("id" = EnvironmentId, Path)),
    responses((status = 200, body = Environment), (status = 404, body = Problem)))]
pub async fn get_environment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<EnvironmentId>,
) -> ApiResult<Tagged<Environment>> {
    caller
        .authorize(
            &state,
            Action::EnvironmentRead,
            Scope::Environment(id),
            Some(Target::new("environment", id)),
        )
        .await?;
    let environment = state.store.environment(caller.tenant_id(), id).await?;
    Ok(Tagged::ok(environment.version, environment))
}

#[utoipa::path(patch, path = "/v1/environments/{id}", tag = "directory", params(("id" = EnvironmentId, Path)), request_body = UpdateEnvironment,
    responses((status = 200, body = Environment), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn update_environment(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<EnvironmentId>,
    ApiJson(body): ApiJson<UpdateEnvironment>,
) -> ApiResult<Tagged<Environment>> {
    caller
        .authorize(
            &state,
            Action::EnvironmentUpdate,
            Scope::Environment(id),
            Some(Target::new("environment", id)),
        )
        .await?;
    let current = state.store.environment(caller.tenant_id(), id).await?;
    let name = match body.name {
        Some(raw) => parse_slug("name", &raw)?,
        None => parse_slug("name", &current.name)?,
    };
    let description = patched_description(body.description, current.description)?;
    let version = precondition.check(current.version)?;
    let environment = state
        .store
        .update_environment(
            &caller.write_context(&state),
            id,
            version,
            name,
            description,
        )
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    Ok(Tagged::ok(environment.version, environment))
}

/// Deletes an environment and the role assignments scoped to it.
#[utoipa::path(delete, path = "/v1/environments/{id}", tag = "directory", params(("id" = EnvironmentId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_environment(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<EnvironmentId>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Action::EnvironmentDelete,
            Scope::Environment(id),
            Some(Target::new("environment", id)),
        )
        .await?;
    let current = state.store.environment(caller.tenant_id(), id).await?;
    state
        .store
        .delete_environment(
            &caller.write_context(&state),
            id,
            precondition.expected(current.version)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/business-units", tag = "directory", params(ListParams),
    responses((status = 200, body = Page<BusinessUnit>)))]
pub async fn list_business_units(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<BusinessUnit>>> {
    caller
        .authorize(&state, Action::BusinessUnitRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit)?;
    Ok(Json(
        state.store.business_units(caller.tenant_id(), page).await?,
    ))
}

#[utoipa::path(post, path = "/v1/business-units", tag = "directory", request_body = CreateBusinessUnit,
    responses((status = 201, body = BusinessUnit), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_business_unit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBusinessUnit>,
) -> ApiResult<Tagged<BusinessUnit>> {
    caller
        .authorize(&state, Action::BusinessUnitWrite, Scope::Tenant, None)
        .await?;
    let name = parse_name("name", &body.name)?;
    let parent = match body.parent_id {
        Some(id) => id,
        None => state.store.root_business_unit(caller.tenant_id()).await?.id,
    };
    let unit = state
        .store
        .create_business_unit(
            &caller.write_context(&state),
            parent,
            name,
            description(body.description)?,
        )
        .await?;
    Ok(Tagged::created(unit.version, unit))
}

#[utoipa::path(get, path = "/v1/business-units/{id}", tag = "directory", params(("id" = BusinessUnitId, Path)),
    responses((status = 200, body = BusinessUnit), (status = 404, body = Problem)))]
pub async fn get_business_unit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<BusinessUnitId>,
) -> ApiResult<Tagged<BusinessUnit>> {
    caller
        .authorize(
            &state,
            Action::BusinessUnitRead,
            Scope::Tenant,
            Some(Target::new("business_unit", id)),
        )
        .await?;
    let unit = state.store.business_unit(caller.tenant_id(), id).await?;
    Ok(Tagged::ok(unit.version, unit))
}

#[utoipa::path(patch, path = "/v1/business-units/{id}", tag = "directory", params(("id" = BusinessUnitId, Path)), request_body = UpdateBusinessUnit,
    responses((status = 200, body = BusinessUnit), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn update_business_unit(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<BusinessUnitId>,
    ApiJson(body): ApiJson<UpdateBusinessUnit>,
) -> ApiResult<Tagged<BusinessUnit>> {
    caller
        .authorize(
            &state,
            Action::BusinessUnitWrite,
            Scope::Tenant,
            Some(Target::new("business_unit", id)),
        )
        .await?;
    let current = state.store.business_unit(caller.tenant_id(), id).await?;
    let name = parse_name("name", body.name.as_deref().unwrap_or(&current.name))?;
    let description = patched_description(body.description, current.description)?;
    let parent = body.parent_id.or(current.parent_id);
    let version = precondition.check(current.version)?;
    let unit = state
        .store
        .update_business_unit(
            &caller.write_context(&state),
            id,
            version,
            name,
            description,
            parent,
        )
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    Ok(Tagged::ok(unit.version, unit))
}

/// Deletes an empty business unit.
#[utoipa::path(delete, path = "/v1/business-units/{id}", tag = "directory", params(("id" = BusinessUnitId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_business_unit(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<BusinessUnitId>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Action::BusinessUnitWrite,
            Scope::Tenant,
            Some(Target::new("business_unit", id)),
        )
        .await?;
    let current = state.store.business_unit(caller.tenant_id(), id).await?;
    state
        .store
        .delete_business_unit(
            &caller.write_context(&state),
            id,
            precondition.expected(current.version)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The names of principals a page shows (an assignment's holder, a record's owner), read in
/// one go instead of one `GET` each. Each kind is named only if the caller may read that kind
/// (`user.read`, `group.read`, `service_principal.read`); the rest are left out, for the page
/// to show by id. Not an endpoint: the listings that name principals answer with their ids.
pub(crate) async fn principal_names(
    state: &AppState,
    caller: &Caller,
    principals: &[PrincipalRef],
) -> ApiResult<HashMap<PrincipalRef, String>> {
    let mut readable = Vec::with_capacity(principals.len());
    for (kind, action) in [
        (PrincipalKind::User, Action::UserRead),
        (PrincipalKind::Group, Action::GroupRead),
        (
            PrincipalKind::ServicePrincipal,
            Action::ServicePrincipalRead,
        ),
    ] {
        if principals.iter().any(|p| p.kind == kind)
            && caller.decide(state, action, Scope::Tenant).await?.allowed
        {
            readable.extend(principals.iter().filter(|p| p.kind == kind).copied());
        }
    }
    Ok(state
        .store
        .principal_names(caller.tenant_id(), &readable)
        .await?)
}
