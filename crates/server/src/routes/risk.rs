//! Identity protection over the admin API: detections and risky users (`user.read`), an
//! administrator's verdict on a user (`user.credential.reset` on that user: confirming a
//! compromise ends their sessions), and the deployment's leaked-password list (the operator's
//! administrators only: it serves every tenant).

use axum::Json;
use axum::extract::State;

use portcullis_api::Items;
use portcullis_api::risk::{
    DetectionQuery, LeakedPasswordList, LeakedPasswords, RiskVerdict, RiskyUserQuery, UserRisk,
};
use portcullis_core::UserId;
use portcullis_core::ValidationError;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::conditional::RiskLevel;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::page::{MAX_LIMIT, Page, PageRequest};
use portcullis_core::risk::{RiskDetection, RiskState, RiskyUser, parse_leaked_line};
use portcullis_store::DetectionFilter;

use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::items;
use crate::state::AppState;

/// The most hashes one request may add: 1,000 lines of up to 50 bytes fit the default 64 KiB
/// request body. A whole corpus goes in batches (`portcullis risk leaked-passwords load`).
pub const LEAKED_BATCH: usize = 1_000;

async fn may_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    caller
        .authorize(state, Action::UserRead, Scope::Tenant, None)
        .await
}

/// Detections, newest first: risky sign-ins and the reasons users are at risk.
#[utoipa::path(get, path = "/v1/risk/detections", tag = "identity protection", params(DetectionQuery),
    responses((status = 200, body = Page<RiskDetection>), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_detections(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DetectionQuery>,
) -> ApiResult<Json<Page<RiskDetection>>> {
    may_read(&state, &caller).await?;
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = DetectionFilter {
        user_id: q.user_id,
        kind: q.kind,
        level: q.level,
        state: q.state,
        since: q.since,
    };
    Ok(Json(
        state
            .store
            .risk_detections(caller.tenant_id(), &filter, page)
            .await?,
    ))
}

/// Users at risk, riskiest first.
#[utoipa::path(get, path = "/v1/risk/users", tag = "identity protection", params(RiskyUserQuery),
    responses((status = 200, body = Items<RiskyUser>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_risky_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RiskyUserQuery>,
) -> ApiResult<Json<Items<RiskyUser>>> {
    may_read(&state, &caller).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(
            ValidationError::new("limit", format!("must be between 1 and {MAX_LIMIT}")).into(),
        );
    }
    let level = q.level.unwrap_or(RiskLevel::Low);
    Ok(items(
        state
            .store
            .risky_users(caller.tenant_id(), level, limit)
            .await?,
    ))
}

async fn judge(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    verdict: RiskState,
    body: RiskVerdict,
) -> ApiResult<Json<UserRisk>> {
    caller
        .authorize_change_to(state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let note = body
        .note
        .map(|n| portcullis_core::names::parse_description("note", &n))
        .transpose()?;
    let level = state
        .store
        .judge_user_risk(&caller.write_context(state), id, verdict, note.as_deref())
        .await?;
    Ok(Json(UserRisk { user_id: id, level }))
}

/// Confirms a user compromised: they are at high risk (policies on user risk apply) and every
/// session and refresh token of theirs ends now.
#[utoipa::path(post, path = "/v1/risk/users/{id}/confirm-compromised", tag = "identity protection",
    params(("id" = UserId, Path)), request_body = RiskVerdict,
    responses((status = 200, body = UserRisk), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn confirm_compromised(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<RiskVerdict>,
) -> ApiResult<Json<UserRisk>> {
    judge(&state, &caller, id, RiskState::ConfirmedCompromised, body).await
}

/// Dismisses a user's open detections: judged harmless, the user is no longer at risk.
#[utoipa::path(post, path = "/v1/risk/users/{id}/dismiss", tag = "identity protection",
    params(("id" = UserId, Path)), request_body = RiskVerdict,
    responses((status = 200, body = UserRisk), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn dismiss(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<RiskVerdict>,
) -> ApiResult<Json<UserRisk>> {
    judge(&state, &caller, id, RiskState::Dismissed, body).await
}

async fn operator_only(state: &AppState, caller: &Caller) -> ApiResult<()> {
    caller
        .authorize(state, Action::TenantManage, Scope::Tenant, None)
        .await
}

/// How many hashes the leaked-password list holds (operator only).
#[utoipa::path(get, path = "/v1/leaked-passwords", tag = "identity protection",
    responses((status = 200, body = LeakedPasswordList), (status = 403, body = Problem)))]
pub async fn leaked_password_count(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<LeakedPasswordList>> {
    operator_only(&state, &caller).await?;
    Ok(Json(LeakedPasswordList {
        added: None,
        total: state.store.leaked_password_count().await?,
    }))
}

/// Adds SHA-1 password hashes to the deployment's leaked-password list (operator only). Every
/// line is checked before any is added: one bad line refuses the batch, naming it.
#[utoipa::path(post, path = "/v1/leaked-passwords", tag = "identity protection", request_body = LeakedPasswords,
    responses((status = 200, body = LeakedPasswordList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn add_leaked_passwords(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LeakedPasswords>,
) -> ApiResult<Json<LeakedPasswordList>> {
    operator_only(&state, &caller).await?;
    if body.hashes.len() > LEAKED_BATCH {
        return Err(ValidationError::new(
            "hashes",
            format!("at most {LEAKED_BATCH} a request; send a longer list in batches"),
        )
        .into());
    }
    let mut hashes = Vec::with_capacity(body.hashes.len());
    for (index, line) in body.hashes.iter().enumerate() {
        match parse_leaked_line(line) {
            Ok(Some(hash)) => hashes.push(hash),
            Ok(None) => {}
            Err(why) => {
                return Err(ValidationError::new(format!("hashes[{index}]"), why).into());
            }
        }
    }
    let added = state.store.add_leaked_passwords(&hashes).await?;
    Ok(Json(LeakedPasswordList {
        added: Some(added),
        total: state.store.leaked_password_count().await?,
    }))
}
