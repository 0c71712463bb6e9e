//! Conditional access at the server's edges: the facts of a request (who, which application,
//! from where, with which client) gathered, the tenant's compiled policies evaluated on this
//! node's current snapshot, and the results shaped for the sign-in log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use portcullis_core::audit::Origin;
use portcullis_core::conditional::{
    Application, ClientType, Compiled, DeviceState, Evaluation, Outcome, Platform, Request,
    RiskLevel, Who,
};
use portcullis_core::identity::{PrincipalRef, User, UserKind};
use portcullis_core::{ServicePrincipalId, TenantId};

use crate::engine::{Current, EngineError, Freshness};
use crate::state::AppState;

/// A request's facts and the tenant's policies they are evaluated against.
pub struct Judged {
    pub current: Arc<Current>,
    pub request: Request,
}

impl Judged {
    pub fn policies(&self) -> &Compiled {
        &self.current.access
    }
}

fn address(origin: &Origin) -> Option<IpAddr> {
    origin.source_ip.as_deref().and_then(|a| a.parse().ok())
}

fn platform(origin: &Origin) -> Platform {
    origin
        .user_agent
        .as_deref()
        .map_or(Platform::Other, Platform::from_user_agent)
}

/// The facts of a person's request to `application`, on a snapshot at least as fresh as
/// `freshness` (the latest for an interactive sign-in: a policy saved a moment ago applies).
pub async fn for_user(
    state: &AppState,
    user: &User,
    application: Application,
    client_type: ClientType,
    origin: &Origin,
    freshness: Freshness,
) -> Result<Judged, EngineError> {
    let current = snapshot(state, user.tenant_id, freshness).await?;
    let now = state.clock.now();
    let principal = PrincipalRef::user(user.id);
    let instant = portcullis_core::engine::tenant::instant(now);
    let who = Who::User {
        id: user.id,
        groups: current.engine.groups_of(principal),
        administrator: current.engine.is_administrator(principal, instant),
        guest: user.kind == UserKind::Guest,
    };
    let request = request(who, application, client_type, origin, now);
    Ok(Judged { current, request })
}

/// The facts of a workload's token request.
pub async fn for_workload(
    state: &AppState,
    tenant: TenantId,
    client: ServicePrincipalId,
    origin: &Origin,
) -> Result<Judged, EngineError> {
    let current = snapshot(state, tenant, Freshness::Any).await?;
    let request = request(
        Who::ServicePrincipal(client),
        Application::Client(client),
        ClientType::Workload,
        origin,
        state.clock.now(),
    );
    Ok(Judged { current, request })
}

async fn snapshot(
    state: &AppState,
    tenant: TenantId,
    freshness: Freshness,
) -> Result<Arc<Current>, EngineError> {
    let wait = Duration::from_millis(state.config.authz_max_wait_ms);
    state
        .engines
        .fresh(&state.store, tenant, freshness, wait)
        .await
}

fn request(
    who: Who,
    application: Application,
    client_type: ClientType,
    origin: &Origin,
    at: time::OffsetDateTime,
) -> Request {
    Request {
        who,
        application,
        address: address(origin),
        country: None,
        geo_known: false,
        platform: platform(origin),
        device: DeviceState::Unregistered,
        client_type,
        sign_in_risk: RiskLevel::None,
        user_risk: RiskLevel::None,
        at,
    }
}

/// The sign-in log's account of a request: its context, and each policy that applied with its
/// result (the ones that did not apply are counted, not listed, so a tenant with hundreds of
/// policies keeps its log small).
pub fn log_details(judged: &Judged, evaluation: &Evaluation) -> serde_json::Value {
    let policies = judged.policies();
    let applied: Vec<_> = evaluation
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::NotApplied)
        .map(|r| {
            json!({
                "policy": r.policy,
                "name": policies.policy(r.policy).map(|p| p.name.as_str()),
                "state": r.state,
                "result": r.outcome,
                "unmet": r.unmet,
            })
        })
        .collect();
    let request = &judged.request;
    json!({
        "application": request.application,
        "client_type": request.client_type,
        "country": request.country,
        "platform": request.platform,
        "device": request.device,
        "sign_in_risk": request.sign_in_risk,
        "user_risk": request.user_risk,
        "conditional_access": {
            "applied": applied,
            "not_applied": evaluation.results.len() - applied_count(evaluation),
        },
    })
}

fn applied_count(evaluation: &Evaluation) -> usize {
    evaluation
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::NotApplied)
        .count()
}
