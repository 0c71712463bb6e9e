//! Service principals (workload identities) and their API keys. A key's secret is shown once,
//! in the response that creates it; afterwards only its prefix and metadata exist.

use crate::routes::items;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::Items;
use portcullis_api::service_principals::{
    CreateApiKey, CreateServicePrincipal, UpdateServicePrincipal,
};

use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::{
    ApiKey, LifecycleState, PrincipalRef, ServicePrincipal, parse_external_id,
};
use portcullis_core::lockout::Removal;
use portcullis_core::names::{parse_description, parse_name};
use portcullis_core::oauth::ClientSettings;
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::{ApiKeyId, ServicePrincipalId, ValidationError};

use portcullis_store::ServicePrincipalChanges;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::routes::concurrent;
use crate::routes::tenants::{generate_key, issued};
use crate::state::AppState;
use portcullis_api::tenants::{IssuedApiKey, ListParams};

/// The longest lifetime a key may be given.
const MAX_KEY_LIFETIME: time::Duration = time::Duration::days(730);

fn sp_target(id: ServicePrincipalId) -> Option<Target> {
    Some(Target::new("service_principal", id))
}

/// Authorizes an action on a service principal, plus `role.assign` if it holds roles.
async fn authorize_sp_change(
    state: &AppState,
    caller: &Caller,
    action: Action,
    id: ServicePrincipalId,
) -> ApiResult<ServicePrincipal> {
    caller
        .authorize_change_to(state, action, PrincipalRef::service_principal(id))
        .await?;
    Ok(state
        .store
        .service_principal(caller.tenant_id(), id)
        .await?)
}

#[utoipa::path(get, path = "/v1/service-principals", tag = "service principals", params(ListParams),
    responses((status = 200, body = Page<ServicePrincipal>)))]
pub async fn list_service_principals(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<ServicePrincipal>>> {
    caller
        .authorize(&state, Action::ServicePrincipalRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit)?;
    Ok(Json(
        state
            .store
            .service_principals(caller.tenant_id(), page)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/service-principals", tag = "service principals", request_body = CreateServicePrincipal,
    responses((status = 201, body = ServicePrincipal), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_service_principal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateServicePrincipal>,
) -> ApiResult<Tagged<ServicePrincipal>> {
    caller
        .authorize(&state, Action::ServicePrincipalWrite, Scope::Tenant, None)
        .await?;
    let name = parse_name("name", &body.name)?;
    let description = body
        .description
        .map(|d| parse_description("description", &d))
        .transpose()?;
    let sp = state
        .store
        .create_service_principal(
            &caller.write_context(&state),
            name,
            description,
            parse_external_id(body.external_id)?,
        )
        .await?;
    Ok(Tagged::created(sp.version, sp))
}

#[utoipa::path(get, path = "/v1/service-principals/{id}", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    responses((status = 200, body = ServicePrincipal), (status = 404, body = Problem)))]
pub async fn get_service_principal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ServicePrincipalId>,
) -> ApiResult<Tagged<ServicePrincipal>> {
    caller
        .authorize(
            &state,
            Action::ServicePrincipalRead,
            Scope::Tenant,
            sp_target(id),
        )
        .await?;
    let sp = state
        .store
        .service_principal(caller.tenant_id(), id)
        .await?;
    Ok(Tagged::ok(sp.version, sp))
}

#[utoipa::path(patch, path = "/v1/service-principals/{id}", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    request_body = UpdateServicePrincipal,
    responses((status = 200, body = ServicePrincipal), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn update_service_principal(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<ServicePrincipalId>,
    ApiJson(body): ApiJson<UpdateServicePrincipal>,
) -> ApiResult<Tagged<ServicePrincipal>> {
    let current = authorize_sp_change(&state, &caller, Action::ServicePrincipalWrite, id).await?;
    let name = parse_name("name", body.name.as_deref().unwrap_or(&current.name))?;
    let description = match body.description {
        None => current.description.clone(),
        Some(value) => value
            .map(|d| parse_description("description", &d))
            .transpose()?,
    };
    let new_state = body.state.unwrap_or(current.state);
    if new_state == LifecycleState::Deleted {
        return Err(ApiError::bad_request(
            "state",
            "to delete a service principal, send DELETE",
        ));
    }
    let external_id = match body.external_id {
        None => current.external_id.clone(),
        Some(value) => parse_external_id(value)?,
    };
    let version = precondition.check(current.version)?;
    let changes = ServicePrincipalChanges {
        name,
        description,
        state: new_state,
        external_id,
    };
    let ctx = if changes.state == LifecycleState::Active {
        caller.write_context(&state)
    } else {
        caller
            .guarded_write_context(
                &state,
                Removal::Principal(PrincipalRef::service_principal(id)),
            )
            .await?
    };
    let sp = state
        .store
        .update_service_principal(&ctx, id, version, changes)
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    forget_client(&state, id);
    Ok(Tagged::ok(sp.version, sp))
}

/// This node stops using what it remembered of the client at once (others within a second).
fn forget_client(state: &AppState, id: ServicePrincipalId) {
    state
        .token_caches
        .credentials
        .forget_where(|c| c.owner.id == id);
    state.token_caches.clients.forget(&id);
}

/// Deletes a service principal with its keys, memberships and role assignments.
#[utoipa::path(delete, path = "/v1/service-principals/{id}", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_service_principal(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<ServicePrincipalId>,
) -> ApiResult<StatusCode> {
    let current = authorize_sp_change(&state, &caller, Action::ServicePrincipalWrite, id).await?;
    let ctx = caller
        .guarded_write_context(
            &state,
            Removal::Principal(PrincipalRef::service_principal(id)),
        )
        .await?;
    state
        .store
        .delete_service_principal(&ctx, id, precondition.expected(current.version)?)
        .await?;
    forget_client(&state, id);
    Ok(StatusCode::NO_CONTENT)
}

/// The principal's keys, including revoked and expired ones (never their secrets).
#[utoipa::path(get, path = "/v1/service-principals/{id}/api-keys", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    responses((status = 200, body = Items<ApiKey>), (status = 404, body = Problem)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ServicePrincipalId>,
) -> ApiResult<Json<Items<ApiKey>>> {
    caller
        .authorize(
            &state,
            Action::ServicePrincipalRead,
            Scope::Tenant,
            sp_target(id),
        )
        .await?;
    Ok(items(state.store.api_keys(caller.tenant_id(), id).await?))
}

/// Issues a new key. Several keys can be in use at once, so a key is rotated by issuing the
/// next, switching clients over, then revoking the old one.
#[utoipa::path(post, path = "/v1/service-principals/{id}/api-keys", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    request_body = CreateApiKey,
    responses((status = 201, body = IssuedApiKey), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ServicePrincipalId>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<IssuedApiKey>)> {
    authorize_sp_change(&state, &caller, Action::CredentialManage, id).await?;
    let now = state.clock.now();
    if let Some(at) = body.expires_at {
        if at <= now {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        if at > now + MAX_KEY_LIFETIME {
            return Err(ValidationError::new("expires_at", "must be at most 730 days away").into());
        }
    }
    let name = body
        .name
        .map(|n| parse_name("name", &n).map(|n| n.display))
        .transpose()?;
    let (generated, record) = generate_key(&state, name, body.expires_at)?;
    let key = state
        .store
        .create_api_key(&caller.write_context(&state), id, record)
        .await?;
    Ok((StatusCode::CREATED, Json(issued(key, &generated))))
}

/// Revokes a key; it stops working at once, on every node.
#[utoipa::path(delete, path = "/v1/service-principals/{id}/api-keys/{key_id}", tag = "service principals",
    params(("id" = ServicePrincipalId, Path), ("key_id" = ApiKeyId, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, key_id)): ApiPath<(ServicePrincipalId, ApiKeyId)>,
) -> ApiResult<Json<ApiKey>> {
    authorize_sp_change(&state, &caller, Action::CredentialManage, id).await?;
    let revoked = state
        .store
        .revoke_api_key(&caller.write_context(&state), id, key_id)
        .await?;
    // Other nodes stop accepting it as a client secret within the cache's second; this one now.
    state.token_caches.credentials.forget(&revoked.prefix);
    Ok(Json(revoked))
}

/// The principal's settings as an OAuth client; 404 when it is not one.
#[utoipa::path(get, path = "/v1/service-principals/{id}/oauth-client", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    responses((status = 200, body = ClientSettings), (status = 404, body = Problem)))]
pub async fn get_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ServicePrincipalId>,
) -> ApiResult<Json<ClientSettings>> {
    caller
        .authorize(
            &state,
            Action::ServicePrincipalRead,
            Scope::Tenant,
            sp_target(id),
        )
        .await?;
    state
        .store
        .oauth_client(caller.tenant_id(), id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Makes the principal an OAuth client, or changes its settings. Its API keys are its client
/// secrets; its id is its `client_id`.
#[utoipa::path(put, path = "/v1/service-principals/{id}/oauth-client", tag = "service principals", params(("id" = ServicePrincipalId, Path)),
    request_body = ClientSettings,
    responses((status = 200, body = ClientSettings), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ServicePrincipalId>,
    ApiJson(settings): ApiJson<ClientSettings>,
) -> ApiResult<Json<ClientSettings>> {
    authorize_sp_change(&state, &caller, Action::ServicePrincipalWrite, id).await?;
    // A client that may get tokens for the admin API acts as every administrator who signs in
    // through it: making one, or changing one (its redirect URIs, say), is as privileged as
    // assigning roles.
    let admin_api = crate::auth::admin_api_resource(&state);
    let was_admin_client = state
        .store
        .oauth_client(caller.tenant_id(), id)
        .await?
        .is_some_and(|before| before.resources.contains(&admin_api));
    if was_admin_client || settings.resources.contains(&admin_api) {
        caller
            .authorize(&state, Action::RoleAssign, Scope::Tenant, sp_target(id))
            .await?;
    }
    state
        .store
        .set_oauth_client(&caller.write_context(&state), id, &settings)
        .await?;
    forget_client(&state, id);
    Ok(Json(settings))
}
