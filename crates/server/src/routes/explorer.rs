//! The access explorer: why a principal may or may not do something, and who may. The same
//! engine and snapshot that decide the tenant's checks answer, so what it shows is what an
//! enforcement point is told. Seeing another principal's access is reading role assignments,
//! so both questions need `role.read` tenant-wide.

use axum::Json;
use axum::extract::State;

use portcullis_api::roles::{
    AccessAnswer, AccessQuestion, ExplorerResource, WhoCanAnswer, WhoCanQuestion,
};
use portcullis_core::ValidationError;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::engine::tenant::{Reason, Resource, Subject, instant};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::page::PageRequest;

use crate::auth::Caller;
use crate::engine::Freshness;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

const ALL_KINDS: &[PrincipalKind] = &[
    PrincipalKind::User,
    PrincipalKind::Group,
    PrincipalKind::ServicePrincipal,
];

fn resource_of(body: &ExplorerResource) -> Resource<'_> {
    Resource {
        resource_type: &body.kind,
        external_id: &body.id,
        properties: None,
    }
}

/// A question the engine could not ask, as the field to mend.
fn unanswerable(reason: &Reason) -> Option<ApiError> {
    match reason {
        Reason::UnknownAction => Some(ApiError::Validation(ValidationError::new(
            "action",
            "is not an action of that resource type (or the type is not registered)",
        ))),
        Reason::UnknownResource => Some(ApiError::Validation(ValidationError::new(
            "resource.id",
            "names no record of that type registered with Portcullis",
        ))),
        _ => None,
    }
}

/// May the principal do the action on the resource, and why: the assignment, share or deny
/// assignment that decided it, the groups through which the principal holds it, or the
/// nearest miss. A principal that is not active is told `unknown_subject`.
#[utoipa::path(post, path = "/v1/access-explorer/check", tag = "authorization", request_body = AccessQuestion,
    responses((status = 200, body = AccessAnswer), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(question): ApiJson<AccessQuestion>,
) -> ApiResult<Json<AccessAnswer>> {
    caller
        .authorize(&state, Action::RoleRead, Scope::Tenant, None)
        .await?;
    let current = caller.engine(&state, Freshness::Latest).await?;
    let engine = &current.engine;
    let now = instant(state.clock.now());
    let verdict = engine.check(
        Subject::Principal(question.principal),
        &question.action,
        &resource_of(&question.resource),
        now,
    );
    if let Some(refusal) = unanswerable(&verdict.reason) {
        return Err(refusal);
    }
    let holder = match &verdict.reason {
        Reason::Assignment { principal, .. } | Reason::Share { principal, .. } => Some(*principal),
        _ => None,
    };
    Ok(Json(AccessAnswer {
        allowed: verdict.allowed,
        reason_text: verdict.reason.to_string(),
        through: holder
            .map(|holder| engine.membership_path(question.principal, holder))
            .unwrap_or_default(),
        reason: verdict.reason,
        revision: current.revision,
    }))
}

/// The principals that may do the action on the resource, a page at a time.
#[utoipa::path(post, path = "/v1/access-explorer/who-can", tag = "authorization", request_body = WhoCanQuestion,
    responses((status = 200, body = WhoCanAnswer), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn who_can(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(question): ApiJson<WhoCanQuestion>,
) -> ApiResult<Json<WhoCanAnswer>> {
    caller
        .authorize(&state, Action::RoleRead, Scope::Tenant, None)
        .await?;
    let page = PageRequest::parse_principal(question.cursor.as_deref(), question.limit)?;
    let kinds = question.kinds.as_deref().unwrap_or(ALL_KINDS);
    let current = caller.engine(&state, Freshness::Latest).await?;
    let (principals, more) = current
        .engine
        .subjects(
            kinds,
            &question.action,
            &resource_of(&question.resource),
            instant(state.clock.now()),
            page.after,
            page.limit as usize,
        )
        .map_err(|reason| {
            unanswerable(&reason)
                .unwrap_or_else(|| ApiError::bad_request("action", reason.to_string()))
        })?;
    let next_cursor = more
        .then(|| principals.last().map(PrincipalRef::to_string))
        .flatten();
    Ok(Json(WhoCanAnswer {
        principals,
        next_cursor,
        revision: current.revision,
    }))
}
