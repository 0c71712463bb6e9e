//! Tenants, and who the caller is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::tenants::{
    CreateTenant, CreatedTenant, GrantView, IssuedApiKey, ListParams, UpdateTenant, WhoAmI,
};
use secrecy::ExposeSecret;

use portcullis_core::TenantId;
use portcullis_core::administrators::{AdministratorPolicy, ApiKeyUse};
use portcullis_core::audit::Target;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::{ApiKey, LifecycleState, Tenant};
use portcullis_core::names::{parse_description, parse_slug};
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::secrets::GeneratedApiKey;
use portcullis_core::session::SignInSettings;
use portcullis_store::NewApiKey;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::state::AppState;

/// Generates a key and the record to store for it.
pub fn generate_key(
    state: &AppState,
    name: Option<String>,
    expires_at: Option<OffsetDateTime>,
) -> ApiResult<(GeneratedApiKey, NewApiKey)> {
    let generated = GeneratedApiKey::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
    let record = NewApiKey {
        prefix: generated.prefix.clone(),
        secret_hash: state.hasher.hash(generated.secret_bytes()),
        name,
        expires_at,
    };
    Ok((generated, record))
}

pub fn issued(api_key: ApiKey, generated: &GeneratedApiKey) -> IssuedApiKey {
    IssuedApiKey {
        api_key,
        secret: generated.full.expose_secret().to_owned(),
    }
}

/// The authenticated caller, its tenant and the roles it holds.
#[utoipa::path(get, path = "/v1/me", tag = "tenants", responses((status = 200, body = WhoAmI), (status = 401, body = Problem)))]
pub async fn whoami(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<WhoAmI>> {
    let grants = state
        .store
        .grants(caller.tenant_id(), caller.principal, state.clock.now())
        .await?
        .iter()
        .map(|g| GrantView {
            assignment_id: g.assignment_id,
            role: g.role,
            scope: g.scope,
            via_group: g.via_group,
        })
        .collect();
    Ok(Json(WhoAmI {
        principal: caller.principal,
        display: caller.actor.display,
        authentication: caller.actor.authentication,
        tenant: caller.tenant,
        grants,
    }))
}

/// All tenants (operator tenant only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses((status = 200, body = Page<Tenant>), (status = 403, body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Tenant>>> {
    caller
        .authorize(&state, Action::TenantList, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse(params.cursor.as_deref(), params.limit)?;
    Ok(Json(state.store.tenants(page).await?))
}

/// Creates a tenant with a first administrator (operator tenant only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = CreatedTenant), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<CreatedTenant>)> {
    caller
        .authorize(&state, Action::TenantCreate, Scope::Tenant, None)
        .await?;
    let name = parse_slug("name", &body.name)?;
    let display_name = body
        .display_name
        .map(|d| parse_description("display_name", &d))
        .transpose()?;
    let (generated, key) = generate_key(&state, Some("bootstrap".into()), None)?;
    let created = state
        .store
        .create_tenant(&caller.write_context(&state), &name, display_name, key)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant: created.tenant,
            administrator: created.administrator,
            administrator_key: issued(created.administrator_key, &generated),
        }),
    ))
}

/// Reads a tenant: one's own, or any tenant for the operator.
async fn visible_tenant(state: &AppState, caller: &Caller, id: TenantId) -> ApiResult<Tenant> {
    let target = Some(Target::new("tenant", id));
    if id == caller.tenant_id() {
        caller
            .authorize(state, Action::TenantRead, Scope::Tenant, target)
            .await?;
    } else if caller.tenant.operator {
        caller
            .authorize(state, Action::TenantList, Scope::Tenant, target)
            .await?;
    } else {
        // Another tenant's existence is not revealed.
        return Err(ApiError::NotFound);
    }
    Ok(state.store.tenant(id).await?)
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path)),
    responses((status = 200, body = Tenant, headers(("etag" = String))), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<TenantId>,
) -> ApiResult<Tagged<Tenant>> {
    let tenant = visible_tenant(&state, &caller, id).await?;
    Ok(Tagged::ok(tenant.version, tenant))
}

/// Changes a tenant's display name, or (operator) disables or re-enables it.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path)), request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 412, body = Problem), (status = 404, body = Problem)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<TenantId>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> ApiResult<Tagged<Tenant>> {
    let current = visible_tenant(&state, &caller, id).await?;
    let target = Some(Target::new("tenant", id));
    let new_state = body.state.unwrap_or(current.state);
    if new_state != current.state {
        caller
            .authorize(&state, Action::TenantManage, Scope::Tenant, target.clone())
            .await?;
        if id == caller.tenant_id() || current.operator {
            return Err(ApiError::Conflict {
                field: Some("state".into()),
                detail: "the operator tenant cannot be disabled".into(),
            });
        }
        if new_state == LifecycleState::Deleted {
            return Err(ApiError::bad_request("state", "must be active or disabled"));
        }
    }
    let action = if id == caller.tenant_id() {
        Action::TenantUpdate
    } else {
        Action::TenantManage
    };
    caller
        .authorize(&state, action, Scope::Tenant, target)
        .await?;
    let display_name = match body.display_name {
        None => current.display_name.clone(),
        Some(value) => value
            .map(|d| parse_description("display_name", &d))
            .transpose()?,
    };
    let version = precondition.check(current.version)?;
    let tenant = state
        .store
        .update_tenant(
            &caller.write_context(&state),
            id,
            version,
            display_name,
            new_state,
        )
        .await
        .map_err(|e| crate::routes::concurrent(e, &precondition))?;
    Ok(Tagged::ok(tenant.version, tenant))
}

/// The tenant's sign-in rules: who must use a second factor, which methods are allowed, and
/// the password policy.
#[utoipa::path(get, path = "/v1/sign-in-settings", tag = "tenants",
    responses((status = 200, body = SignInSettings), (status = 403, body = Problem)))]
pub async fn get_sign_in_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SignInSettings>> {
    caller
        .authorize(&state, Action::TenantRead, Scope::Tenant, None)
        .await?;
    Ok(Json(
        state.store.sign_in_settings(caller.tenant_id()).await?,
    ))
}

/// Replaces the tenant's sign-in rules. They apply from the next sign-in.
#[utoipa::path(put, path = "/v1/sign-in-settings", tag = "tenants", request_body = SignInSettings,
    responses((status = 200, body = SignInSettings), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_sign_in_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(settings): ApiJson<SignInSettings>,
) -> ApiResult<Json<SignInSettings>> {
    caller
        .authorize(&state, Action::TenantUpdate, Scope::Tenant, None)
        .await?;
    settings.validate().map_err(ApiError::Validation)?;
    let ctx = caller.write_context(&state);
    state.store.set_sign_in_settings(&ctx, settings).await?;
    Ok(Json(settings))
}

/// The tenant's rules for people who administer it through the admin API: which actions need
/// a multi-factor sign-in, and which a recent one. Keys and workloads' tokens are not held to
/// them.
#[utoipa::path(get, path = "/v1/administrator-policy", tag = "tenants",
    responses((status = 200, body = AdministratorPolicy), (status = 403, body = Problem)))]
pub async fn get_administrator_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AdministratorPolicy>> {
    caller
        .authorize(&state, Action::TenantRead, Scope::Tenant, None)
        .await?;
    Ok(Json(
        state.store.administrator_policy(caller.tenant_id()).await?,
    ))
}

/// Replaces the tenant's rules for administrators. They apply from the next request, on
/// every node.
#[utoipa::path(put, path = "/v1/administrator-policy", tag = "tenants", request_body = AdministratorPolicy,
    responses((status = 200, body = AdministratorPolicy), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn put_administrator_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(policy): ApiJson<AdministratorPolicy>,
) -> ApiResult<Json<AdministratorPolicy>> {
    caller
        .authorize(&state, Action::TenantUpdate, Scope::Tenant, None)
        .await?;
    policy.validate().map_err(ApiError::Validation)?;
    if policy.api_keys == ApiKeyUse::UnprivilegedOnly && caller.uses_api_key() {
        return Err(ApiError::Conflict {
            field: Some("api_keys".into()),
            detail: "\"unprivileged_only\" would refuse the very key that sets it. Sign in as a \
                     person (`portcullis login`) or use a workload's access token, then set it"
                .into(),
        });
    }
    let ctx = caller.write_context(&state);
    state.store.set_administrator_policy(&ctx, &policy).await?;
    Ok(Json(policy))
}
