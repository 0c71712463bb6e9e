//! Conditional access over the admin API: named locations, policies, templates, the tenant's
//! emergency access accounts, and the what-if tool. Reading needs `tenant.read`; changing,
//! `tenant.update`, as for the other sign-in rules.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use portcullis_api::Items;
use portcullis_api::conditional::{FromTemplate, WhatIf, WhatIfAnswer};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::conditional::{
    AccessPolicy, AccessPolicySettings, Application, ApplicationRef, ClientType, DeviceState,
    NamedLocation, Proofs, RiskLevel, TEMPLATES, Template, Versioned, instantiate,
};
use portcullis_core::session::Strength;
use portcullis_core::{AccessPolicyId, NamedLocationId, ValidationError};

use crate::auth::Caller;
use crate::conditional;
use crate::engine::Freshness;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, Precondition, Tagged};
use crate::routes::{concurrent, items};
use crate::state::AppState;

async fn may_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    caller
        .authorize(state, Action::TenantRead, Scope::Tenant, None)
        .await
}

async fn may_change(state: &AppState, caller: &Caller) -> ApiResult<()> {
    caller
        .authorize(state, Action::TenantUpdate, Scope::Tenant, None)
        .await
}

/// Brings this node's compiled policies up to the write just made, so that when the API
/// answers the change is in force here (token requests read what the node holds without
/// asking the database); other nodes follow through the change feed within milliseconds.
async fn in_force(state: &AppState, caller: &Caller) -> ApiResult<()> {
    let wait = std::time::Duration::from_millis(state.config.authz_max_wait_ms);
    state
        .engines
        .fresh(&state.store, caller.tenant_id(), Freshness::Any, wait)
        .await?;
    Ok(())
}

fn tagged<T>(stored: Versioned<T>, status: StatusCode) -> Tagged<Versioned<T>> {
    Tagged {
        status,
        version: stored.version,
        body: stored,
    }
}

/// The tenant's named locations.
#[utoipa::path(get, path = "/v1/named-locations", tag = "conditional access",
    responses((status = 200, body = Items<Versioned<NamedLocation>>), (status = 403, body = Problem)))]
pub async fn list_named_locations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<Versioned<NamedLocation>>>> {
    may_read(&state, &caller).await?;
    Ok(items(
        state.store.named_locations(caller.tenant_id()).await?,
    ))
}

/// Names a set of networks (CIDR) and countries, for policies to include or exclude.
#[utoipa::path(post, path = "/v1/named-locations", tag = "conditional access", request_body = NamedLocation,
    responses((status = 201, body = Versioned<NamedLocation>), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_named_location(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut location): ApiJson<NamedLocation>,
) -> ApiResult<Tagged<Versioned<NamedLocation>>> {
    may_change(&state, &caller).await?;
    location.id = NamedLocationId::generate();
    let ctx = caller.write_context(&state);
    let saved = state
        .store
        .save_named_location(&ctx, location, None)
        .await?;
    in_force(&state, &caller).await?;
    Ok(tagged(saved, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/v1/named-locations/{id}", tag = "conditional access", params(("id" = NamedLocationId, Path)),
    responses((status = 200, body = Versioned<NamedLocation>), (status = 404, body = Problem)))]
pub async fn get_named_location(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<NamedLocationId>,
) -> ApiResult<Tagged<Versioned<NamedLocation>>> {
    may_read(&state, &caller).await?;
    let stored = state.store.named_location(caller.tenant_id(), id).await?;
    Ok(tagged(stored, StatusCode::OK))
}

/// Replaces a named location; every policy naming it sees the change at once.
#[utoipa::path(put, path = "/v1/named-locations/{id}", tag = "conditional access", params(("id" = NamedLocationId, Path)),
    request_body = NamedLocation,
    responses((status = 200, body = Versioned<NamedLocation>), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_named_location(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<NamedLocationId>,
    ApiJson(mut location): ApiJson<NamedLocation>,
) -> ApiResult<Tagged<Versioned<NamedLocation>>> {
    may_change(&state, &caller).await?;
    let current = state.store.named_location(caller.tenant_id(), id).await?;
    let version = precondition.check(current.version)?;
    location.id = id;
    let ctx = caller.write_context(&state);
    let saved = state
        .store
        .save_named_location(&ctx, location, Some(version))
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    in_force(&state, &caller).await?;
    Ok(tagged(saved, StatusCode::OK))
}

/// Deletes a named location no policy names.
#[utoipa::path(delete, path = "/v1/named-locations/{id}", tag = "conditional access", params(("id" = NamedLocationId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_named_location(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<NamedLocationId>,
) -> ApiResult<StatusCode> {
    may_change(&state, &caller).await?;
    let current = state.store.named_location(caller.tenant_id(), id).await?;
    let expected = precondition.expected(current.version)?;
    let ctx = caller.write_context(&state);
    state
        .store
        .delete_named_location(&ctx, id, expected)
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    in_force(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's conditional access policies.
#[utoipa::path(get, path = "/v1/access-policies", tag = "conditional access",
    responses((status = 200, body = Items<Versioned<AccessPolicy>>), (status = 403, body = Problem)))]
pub async fn list_access_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<Versioned<AccessPolicy>>>> {
    may_read(&state, &caller).await?;
    Ok(items(
        state.store.access_policies(caller.tenant_id()).await?,
    ))
}

/// Creates a policy. Start it `report_only` to see in the sign-in log what it would do.
#[utoipa::path(post, path = "/v1/access-policies", tag = "conditional access", request_body = AccessPolicy,
    responses((status = 201, body = Versioned<AccessPolicy>), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_access_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut policy): ApiJson<AccessPolicy>,
) -> ApiResult<Tagged<Versioned<AccessPolicy>>> {
    may_change(&state, &caller).await?;
    policy.id = AccessPolicyId::generate();
    let ctx = caller.write_context(&state);
    let saved = state.store.save_access_policy(&ctx, policy, None).await?;
    in_force(&state, &caller).await?;
    Ok(tagged(saved, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/v1/access-policies/{id}", tag = "conditional access", params(("id" = AccessPolicyId, Path)),
    responses((status = 200, body = Versioned<AccessPolicy>), (status = 404, body = Problem)))]
pub async fn get_access_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<AccessPolicyId>,
) -> ApiResult<Tagged<Versioned<AccessPolicy>>> {
    may_read(&state, &caller).await?;
    let stored = state.store.access_policy(caller.tenant_id(), id).await?;
    Ok(tagged(stored, StatusCode::OK))
}

/// Replaces a policy. It applies from the next sign-in or token request, on every node.
#[utoipa::path(put, path = "/v1/access-policies/{id}", tag = "conditional access", params(("id" = AccessPolicyId, Path)),
    request_body = AccessPolicy,
    responses((status = 200, body = Versioned<AccessPolicy>), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_access_policy(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<AccessPolicyId>,
    ApiJson(mut policy): ApiJson<AccessPolicy>,
) -> ApiResult<Tagged<Versioned<AccessPolicy>>> {
    may_change(&state, &caller).await?;
    let current = state.store.access_policy(caller.tenant_id(), id).await?;
    let version = precondition.check(current.version)?;
    policy.id = id;
    let ctx = caller.write_context(&state);
    let saved = state
        .store
        .save_access_policy(&ctx, policy, Some(version))
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    in_force(&state, &caller).await?;
    Ok(tagged(saved, StatusCode::OK))
}

#[utoipa::path(delete, path = "/v1/access-policies/{id}", tag = "conditional access", params(("id" = AccessPolicyId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_access_policy(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<AccessPolicyId>,
) -> ApiResult<StatusCode> {
    may_change(&state, &caller).await?;
    let current = state.store.access_policy(caller.tenant_id(), id).await?;
    let expected = precondition.expected(current.version)?;
    let ctx = caller.write_context(&state);
    state
        .store
        .delete_access_policy(&ctx, id, expected)
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    in_force(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The policies to start from for the common baselines.
#[utoipa::path(get, path = "/v1/access-policy-templates", tag = "conditional access",
    responses((status = 200, body = Items<Template>)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<Template>>> {
    may_read(&state, &caller).await?;
    Ok(items(TEMPLATES.to_vec()))
}

/// Creates a report-only policy from a template.
#[utoipa::path(post, path = "/v1/access-policy-templates/{name}", tag = "conditional access",
    params(("name" = String, Path, description = "A template's name, such as mfa-for-administrators")),
    request_body = FromTemplate,
    responses((status = 201, body = Versioned<AccessPolicy>), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_from_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<FromTemplate>,
) -> ApiResult<Tagged<Versioned<AccessPolicy>>> {
    may_change(&state, &caller).await?;
    if !TEMPLATES.iter().any(|t| t.name == name) {
        return Err(ApiError::NotFound);
    }
    let policy = instantiate(&name, body.location)?;
    let ctx = caller.write_context(&state);
    let saved = state.store.save_access_policy(&ctx, policy, None).await?;
    in_force(&state, &caller).await?;
    Ok(tagged(saved, StatusCode::CREATED))
}

/// The tenant's emergency access accounts.
#[utoipa::path(get, path = "/v1/access-policy-settings", tag = "conditional access",
    responses((status = 200, body = AccessPolicySettings)))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AccessPolicySettings>> {
    may_read(&state, &caller).await?;
    Ok(Json(
        state
            .store
            .access_policy_settings(caller.tenant_id())
            .await?,
    ))
}

/// Replaces the tenant's emergency access accounts. Refused when an enabled policy would then
/// block every administrator with no emergency account outside it.
#[utoipa::path(put, path = "/v1/access-policy-settings", tag = "conditional access", request_body = AccessPolicySettings,
    responses((status = 200, body = AccessPolicySettings), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(settings): ApiJson<AccessPolicySettings>,
) -> ApiResult<Json<AccessPolicySettings>> {
    may_change(&state, &caller).await?;
    let ctx = caller.write_context(&state);
    let saved = state
        .store
        .set_access_policy_settings(&ctx, settings)
        .await?;
    in_force(&state, &caller).await?;
    Ok(Json(saved))
}

fn application(text: Option<&str>) -> ApiResult<Application> {
    let Some(text) = text else {
        return Ok(Application::Account);
    };
    match serde_json::from_value::<ApplicationRef>(serde_json::Value::String(text.into())) {
        Ok(ApplicationRef::Only(application)) => Ok(application),
        Ok(ApplicationRef::All) | Err(_) => Err(ValidationError::new(
            "application",
            "must be \"account\", \"admin_api\" or an OAuth client's id",
        )
        .into()),
    }
}

/// Which policies would apply to a request, which would not and why (condition by condition),
/// and what they would decide. Nothing is recorded.
#[utoipa::path(post, path = "/v1/access-policies/what-if", tag = "conditional access", request_body = WhatIf,
    responses((status = 200, body = WhatIfAnswer), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn what_if(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<WhatIf>,
) -> ApiResult<Json<WhatIfAnswer>> {
    may_read(&state, &caller).await?;
    let tenant = caller.tenant_id();
    let origin = portcullis_core::audit::Origin {
        source_ip: body.address.map(|a| a.to_string()),
        ..Default::default()
    };
    let app = application(body.application.as_deref())?;
    let mut judged = match (body.user, body.service_principal) {
        (Some(user), None) => {
            let user = state.store.user(tenant, user).await?;
            let client_type = body.client_type.unwrap_or(ClientType::Browser);
            conditional::for_user(&state, &user, app, client_type, &origin, Freshness::Latest)
                .await?
        }
        (None, Some(client)) => {
            state.store.service_principal(tenant, client).await?;
            // A workload's own token unless another application is named.
            let app = match body.application {
                None => Application::Client(client),
                Some(_) => app,
            };
            conditional::for_workload(&state, tenant, client, app, &origin).await?
        }
        _ => {
            return Err(
                ValidationError::new("user", "name either a user or a service_principal").into(),
            );
        }
    };
    let request = &mut judged.request;
    if body.country.is_some() {
        request.country = body.country;
    }
    request.platform = body.platform.unwrap_or(request.platform);
    request.device = body.device.unwrap_or(DeviceState::Unregistered);
    request.client_type = body.client_type.unwrap_or(request.client_type);
    request.sign_in_risk = body.sign_in_risk.unwrap_or(RiskLevel::None);
    request.user_risk = body.user_risk.unwrap_or(request.user_risk);
    if let Some(at) = body.at {
        request.at = at;
    }
    let proofs = body.proofs.unwrap_or(Proofs {
        strength: body.user.map(|_| Strength::Password),
        ..Proofs::default()
    });
    let policies = judged.policies();
    Ok(Json(WhatIfAnswer {
        country: judged.request.country,
        policies: policies.explain(&judged.request),
        evaluation: policies.evaluate(&judged.request, &proofs),
    }))
}
