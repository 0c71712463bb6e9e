//! The audit trail: searching it, and reading the raw chain for independent verification.

use axum::Json;
use axum::extract::State;
use portcullis_api::Items;
use portcullis_api::audit::{ApiUseQuery, AuditQuery, ChainPage, ChainQuery, SignInQuery};
use portcullis_core::audit::ApiUse;

use portcullis_core::ValidationError;
use portcullis_core::audit::AuditRecord;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::PrincipalRef;
use portcullis_core::page::{Page, PageRequest};
use portcullis_store::AuditFilter;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The tenant's audit events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    let filter = AuditFilter {
        from: q.from,
        to: q.to,
        actor_id: q.actor_id,
        target_id: q.target_id,
        action: q.action,
        outcome: q.outcome,
    };
    search(&state, &caller, &filter, q.cursor.as_deref(), q.limit).await
}

/// One page of the caller's tenant's events matching `filter`, for an `audit.read` holder.
async fn search(
    state: &AppState,
    caller: &Caller,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    caller
        .authorize(state, Action::AuditRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse_seq(cursor, limit)?;
    Ok(Json(
        state
            .store
            .audit_events(caller.tenant_id(), filter, page)
            .await?,
    ))
}

/// The raw chain in order, for `portcullis audit verify` and other independent verifiers.
#[utoipa::path(get, path = "/v1/audit/chain", tag = "audit", params(ChainQuery),
    responses((status = 200, body = ChainPage), (status = 403, body = Problem)))]
pub async fn chain(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ChainQuery>,
) -> ApiResult<Json<ChainPage>> {
    caller
        .authorize(&state, Action::AuditRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse_seq(
        None,
        Some(q.limit.unwrap_or(portcullis_core::page::MAX_LIMIT)),
    )?;
    let (head_seq, head_hash) = state.store.audit_head(caller.tenant_id()).await?;
    let records = state
        .store
        .audit_chain(caller.tenant_id(), q.after.unwrap_or(0).max(0), page.limit)
        .await?;
    Ok(Json(ChainPage {
        records,
        head_seq,
        head_hash,
    }))
}

/// The sign-in log: every sign-in attempt, successful or not, with its reason, method,
/// strength, source address and user agent, and workloads' token requests counted per client,
/// address and minute. Newest first.
#[utoipa::path(get, path = "/v1/sign-ins", tag = "audit", params(SignInQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn sign_ins(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SignInQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    if q.user_id.is_some() && q.service_principal_id.is_some() {
        let why = "name a user_id or a service_principal_id, not both";
        return Err(ValidationError::new("service_principal_id", why).into());
    }
    let filter = AuditFilter {
        from: q.from,
        to: q.to,
        actor_id: None,
        target_id: q.user_id.or(q.service_principal_id),
        action: Some("signin".into()),
        outcome: q.outcome,
    };
    search(&state, &caller, &filter, q.cursor.as_deref(), q.limit).await
}

/// When each principal last used the API (admin API and AuthZEN), per way of authenticating
/// (`api_key`, `access_token`, `session`), to the minute, most recent first: dormant
/// administrators and forgotten keys show up here without an audit event per request.
#[utoipa::path(get, path = "/v1/api-use", tag = "audit", params(ApiUseQuery),
    responses((status = 200, body = Items<ApiUse>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn api_use(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ApiUseQuery>,
) -> ApiResult<Json<Items<ApiUse>>> {
    caller
        .authorize(&state, Action::AuditRead, Scope::Tenant, None)
        .await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Validation(ValidationError::new(
            "limit",
            "must be between 1 and 1000",
        )));
    }
    let principal = match (q.principal_kind, q.principal_id) {
        (Some(kind), Some(id)) => Some(PrincipalRef { kind, id }),
        (None, None) => None,
        _ => {
            return Err(ApiError::Validation(ValidationError::new(
                "principal_id",
                "give principal_kind and principal_id together",
            )));
        }
    };
    let items = state
        .store
        .admin_api_use(caller.tenant_id(), principal, limit)
        .await?;
    Ok(crate::routes::items(items))
}
