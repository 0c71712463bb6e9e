//! Conditional access at the server's edges: the facts of a request (who, which application,
//! from where, with which client) gathered, the tenant's compiled policies evaluated on this
//! node's current snapshot, and the results shaped for the sign-in log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome as AuditOutcome, Target};
use portcullis_core::conditional::{
    Application, ClientType, Compiled, Control, Decision, DeviceState, Evaluation, Operator,
    Outcome, Platform, Proofs, Request, RiskLevel, SessionControls, Who,
};
use portcullis_core::identity::{PrincipalRef, User, UserKind};
use portcullis_core::risk::{self, Detection, Sighting};
use portcullis_core::session::Strength;
use portcullis_core::{ServicePrincipalId, TenantId};

use crate::engine::{Current, EngineError, Freshness};
use crate::geo::Place;
use crate::state::AppState;

/// A request's facts and the tenant's policies they are evaluated against.
pub struct Judged {
    pub tenant: TenantId,
    /// What is known of the address: country, network, coordinates, anonymity.
    pub place: Place,
    /// What identity protection found in this sign-in (empty off the sign-in pages).
    pub detections: Vec<Detection>,
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
    // Without policies nothing is asked of who the user is: the token path stays as fast.
    let any = !current.access.is_empty();
    let who = Who::User {
        id: user.id,
        groups: if any {
            current.engine.groups_of(principal)
        } else {
            Vec::new()
        },
        administrator: any && current.engine.is_administrator(principal, instant),
        guest: user.kind == UserKind::Guest,
    };
    let (mut request, place) = request(state, who, application, client_type, origin, now);
    // An interactive sign-in always knows its user's risk (the sign-in log shows it); a token
    // request reads it only when a policy asks.
    if freshness == Freshness::Latest || current.access.uses_user_risk() {
        request.user_risk = state.store.user_risk(user.tenant_id, user.id).await?;
    }
    Ok(Judged {
        tenant: user.tenant_id,
        place,
        detections: Vec::new(),
        current,
        request,
    })
}

/// Whether `user` accepted the tenant's current terms of use (never, when it has none).
pub async fn terms_accepted(
    state: &AppState,
    judged: &Judged,
    user: portcullis_core::UserId,
) -> Result<bool, portcullis_store::StoreError> {
    match judged.policies().terms_version() {
        Some(version) => {
            state
                .store
                .has_accepted_terms(judged.tenant, user, version)
                .await
        }
        None => Ok(false),
    }
}

/// Judges a sign-in against the user's earlier ones: the detections go into `judged` and make
/// its sign-in risk. Returns what the sign-in looked like, to be remembered once it succeeds.
pub async fn assess_sign_in(
    state: &AppState,
    judged: &mut Judged,
    user: &User,
) -> Result<Sighting, portcullis_store::StoreError> {
    let seen = Sighting {
        at: judged.request.at,
        country: judged.place.country,
        asn: judged.place.asn,
        coordinates: judged.place.coordinates,
        platform: judged.request.platform,
    };
    let history = state.store.sightings(user.tenant_id, user.id).await?;
    judged.detections = risk::assess(&seen, &history, judged.place.anonymous);
    judged.request.sign_in_risk = risk::sign_in_level(&judged.detections);
    Ok(seen)
}

/// The facts of a workload's request to `application`: its own token, or the admin API with
/// its API key.
pub async fn for_workload(
    state: &AppState,
    tenant: TenantId,
    client: ServicePrincipalId,
    application: Application,
    origin: &Origin,
) -> Result<Judged, EngineError> {
    let current = snapshot(state, tenant, Freshness::Held).await?;
    let (request, place) = request(
        state,
        Who::ServicePrincipal(client),
        application,
        ClientType::Workload,
        origin,
        state.clock.now(),
    );
    Ok(Judged {
        tenant,
        place,
        detections: Vec::new(),
        current,
        request,
    })
}

/// The tenant's snapshot (its engine and compiled policies) at `freshness`.
pub async fn snapshot(
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
    state: &AppState,
    who: Who,
    application: Application,
    client_type: ClientType,
    origin: &Origin,
    at: time::OffsetDateTime,
) -> (Request, Place) {
    let address = address(origin);
    let geo = &state.config.geo;
    let place = address.map(|a| geo.locate(a)).unwrap_or_default();
    let request = Request {
        who,
        application,
        address,
        country: place.country,
        geo_known: geo.knows_countries(),
        platform: platform(origin),
        device: DeviceState::Unregistered,
        client_type,
        sign_in_risk: RiskLevel::None,
        user_risk: RiskLevel::None,
        at,
    };
    (request, place)
}

/// A workload's successful token requests are counted per client and address, and written to
/// the sign-in log once a sweep (a minute by default) with their count: the token path stays
/// an in-memory count, and the log still shows every client, from where and how often.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadSignIn {
    pub tenant: TenantId,
    pub client: ServicePrincipalId,
    pub address: Option<String>,
}

/// Counts a workload's token request from `address` for the sign-in log.
pub fn note_workload_sign_in(
    state: &AppState,
    tenant: TenantId,
    client: ServicePrincipalId,
    address: Option<String>,
) {
    metrics::counter!("portcullis_workload_sign_ins_total").increment(1);
    let key = WorkloadSignIn {
        tenant,
        client,
        address,
    };
    if !state.workload_sign_ins.count(key, state.clock.now()) {
        metrics::counter!("portcullis_workload_sign_ins_unrecorded_total").increment(1);
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
        "asn": judged.place.asn,
        "platform": request.platform,
        "device": request.device,
        "sign_in_risk": request.sign_in_risk,
        "user_risk": request.user_risk,
        "risk_detections": judged.detections.iter().map(|d| d.kind).collect::<Vec<_>>(),
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

/// What the enabled policies say to a request that cannot stop for a sign-in page's steps
/// (a token request, an authorization to an application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A stronger sign-in would satisfy every demand.
    StepUp(Strength),
    /// Blocked, or a demand no step-up can meet: what to tell the client.
    Refuse(String),
}

/// The verdict on `judged` given what was proved, and the evaluation behind it.
pub fn verdict(judged: &Judged, proofs: &Proofs) -> (Verdict, Evaluation) {
    let policies = judged.policies();
    if policies.is_empty() {
        return (
            Verdict::Allow,
            Evaluation {
                decision: Decision::Allow,
                session: Default::default(),
                results: Vec::new(),
            },
        );
    }
    let evaluation = policies.evaluate(&judged.request, proofs);
    let name = |id| {
        policies
            .policy(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    let verdict = match &evaluation.decision {
        Decision::Allow => Verdict::Allow,
        Decision::Block { policy } => Verdict::Refuse(format!(
            "blocked by the conditional access policy \"{}\"",
            name(*policy)
        )),
        Decision::Require { requirements } => {
            let mut needed = Strength::Password;
            let mut refusal = None;
            for requirement in requirements {
                let strength = |c: &Control| match c {
                    Control::Mfa => Some(Strength::Mfa),
                    Control::PhishingResistant => Some(Strength::PhishingResistant),
                    // Met at the sign-in pages only: a token request cannot stop for them.
                    Control::CompliantDevice | Control::PasswordChange | Control::TermsOfUse => {
                        None
                    }
                };
                let reachable: Vec<Option<Strength>> =
                    requirement.controls.iter().map(strength).collect();
                let step = match requirement.operator {
                    Operator::All if reachable.iter().all(Option::is_some) => {
                        reachable.iter().flatten().max().copied()
                    }
                    Operator::Any => reachable.iter().flatten().min().copied(),
                    Operator::All => None,
                };
                match step {
                    Some(strength) => needed = needed.max(strength),
                    None => {
                        refusal.get_or_insert_with(|| {
                            format!(
                                "the conditional access policy \"{}\" requires {} here",
                                name(requirement.policy),
                                requirement
                                    .controls
                                    .iter()
                                    .map(|c| c.as_str())
                                    .collect::<Vec<_>>()
                                    .join(" and ")
                            )
                        });
                    }
                }
            }
            match refusal {
                Some(why) => Verdict::Refuse(why),
                None => Verdict::StepUp(needed),
            }
        }
    };
    (verdict, evaluation)
}

/// Records a request conditional access refused in the sign-in log.
pub async fn record_refusal(
    state: &AppState,
    judged: &Judged,
    evaluation: &Evaluation,
    why: &str,
    kind: &str,
    origin: &Origin,
) -> Result<(), portcullis_store::StoreError> {
    let (actor, target) = match &judged.request.who {
        Who::User { id, .. } => (Actor::anonymous(), Target::new("user", id)),
        Who::ServicePrincipal(id) => (
            Actor::service_principal(*id),
            Target::new("service_principal", id),
        ),
    };
    let mut details = log_details(judged, evaluation);
    details["kind"] = json!(kind);
    metrics::counter!("portcullis_conditional_access_refusals_total", "kind" => kind.to_owned())
        .increment(1);
    let event = NewAuditEvent {
        tenant_id: judged.tenant,
        at: state.clock.now(),
        actor,
        action: "signin".into(),
        target: Some(target),
        outcome: AuditOutcome::Failure,
        reason: Some(why.to_owned()),
        origin: origin.clone(),
        details,
    };
    state.audit.append(event).await.map(|_| ())
}

/// Conditional access on a token request: the session controls to issue under, or why it is
/// refused (already recorded). No step-up is possible here: a demand for more than the
/// sign-in behind a token proved is a refusal, and the client must send the person to sign in
/// again.
pub async fn token_refusal(
    state: &AppState,
    judged: &Judged,
    proofs: &Proofs,
    kind: &str,
    origin: &Origin,
) -> Result<Result<SessionControls, String>, portcullis_store::StoreError> {
    let (verdict, evaluation) = verdict(judged, proofs);
    let why = match verdict {
        Verdict::Allow => return Ok(Ok(evaluation.session)),
        Verdict::Refuse(why) => why,
        Verdict::StepUp(strength) => format!(
            "conditional access requires a {} sign-in here; sign in again",
            strength.as_str().replace('_', "-")
        ),
    };
    record_refusal(state, judged, &evaluation.refused(), &why, kind, origin).await?;
    Ok(Err(why))
}
