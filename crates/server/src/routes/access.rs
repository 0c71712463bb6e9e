//! The OpenID AuthZEN Authorization API 1.0, per tenant under `/t/{tenant}`: single and
//! batched evaluations, the subject, resource and action searches, and the metadata document.
//! Callers are service principals of the tenant holding `access.evaluate`. Every decision
//! carries the snapshot revision it was made at and its reason; a request may demand a minimum
//! revision (`context.min_revision`: a number, or `"latest"` for everything committed so far).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use portcullis_core::audit::{NewAuditEvent, Outcome, Target};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::engine::tenant::{
    Reason, RecordProperties, Resource, Subject, TenantEngine, Verdict, instant,
};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};

use crate::auth::Caller;
use crate::engine::{Current, Freshness};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::oauth::active_tenant;
use crate::state::AppState;

/// The most evaluations one batch may hold.
pub const MAX_EVALUATIONS: usize = 1000;
/// The most results one search page may hold.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
/// Denials audited concurrently at most; beyond this they are counted, not written.
const AUDIT_BACKLOG: usize = 4096;
/// The body limit of a batch: room for `MAX_EVALUATIONS` evaluations of about 1 KiB each,
/// whatever the server's general limit.
pub const EVALUATIONS_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SubjectBody {
    /// `user`, `group`, `service_principal`, or `anonymous` (no id).
    #[serde(rename = "type")]
    pub kind: String,
    /// The principal's id. Other members (`properties`) are accepted and not used: who the
    /// subject is and what it holds come from Portcullis itself.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ResourceBody {
    /// A registered resource type: `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The application's id of the record.
    pub id: Option<String>,
    /// For a record not registered with Portcullis: `owner` (`{"type": "user", "id": …}`),
    /// `business_unit_id` (required) and `environment_id`. Ignored for registered records.
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ActionBody {
    /// An action of the resource's type: `read` (or `document.read`).
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EvaluationBody {
    pub subject: Option<SubjectBody>,
    pub resource: Option<ResourceBody>,
    pub action: Option<ActionBody>,
    /// `min_revision`: a revision number, or `"latest"`.
    pub context: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EvaluationsBody {
    pub subject: Option<SubjectBody>,
    pub resource: Option<ResourceBody>,
    pub action: Option<ActionBody>,
    pub context: Option<Value>,
    /// Each entry's subject, resource and action default to the top-level ones.
    pub evaluations: Option<Vec<EvaluationBody>>,
    pub options: Option<EvaluationsOptions>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionBody {
    pub decision: bool,
    pub context: DecisionContext,
}

/// Serialized as it is (not through a JSON tree): a full batch is a thousand of these.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionContext {
    /// The change-feed revision the decision was made at.
    pub revision: i64,
    /// What allowed or refused it: `kind` and the ids it names.
    #[schema(value_type = Object)]
    pub reason: Reason,
    /// The reason in words.
    pub reason_text: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<DecisionBody>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PageBody {
    pub token: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SearchBody {
    pub subject: Option<SubjectBody>,
    pub resource: Option<ResourceBody>,
    pub action: Option<ActionBody>,
    pub context: Option<Value>,
    pub page: Option<PageBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Subjects and resources as `{"type", "id"}`; actions as `{"name"}`.
    pub results: Vec<Value>,
    /// `next_token`: pass it as `page.token` for the next page; empty on the last.
    pub page: Value,
    pub context: Value,
}

fn required<'a, T>(value: Option<&'a T>, field: &str) -> ApiResult<&'a T> {
    value.ok_or_else(|| ApiError::bad_request(field, format!("`{field}` is required")))
}

/// The record a request is about: its type and id, and its properties if it is described
/// inline.
fn resource_of(body: &ResourceBody) -> ApiResult<Resource<'_>> {
    let external_id = body
        .id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("resource.id", "`resource.id` is required"))?;
    Ok(Resource {
        resource_type: &body.kind,
        external_id,
        properties: properties(body)?,
    })
}

fn principal_kind(raw: &str) -> ApiResult<PrincipalKind> {
    PrincipalKind::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "subject.type",
            "must be `user`, `group`, `service_principal` or `anonymous`",
        )
    })
}

fn subject(body: &SubjectBody) -> ApiResult<Subject> {
    if body.kind == "anonymous" {
        return Ok(Subject::Anonymous);
    }
    let kind = principal_kind(&body.kind)?;
    let id = body
        .id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("subject.id", "`subject.id` is required"))?;
    let id = Uuid::parse_str(id)
        .map_err(|_| ApiError::bad_request("subject.id", "must be the principal's id (a UUID)"))?;
    Ok(Subject::Principal(PrincipalRef { kind, id }))
}

fn properties(body: &ResourceBody) -> ApiResult<Option<RecordProperties>> {
    let Some(props) = &body.properties else {
        return Ok(None);
    };
    let field = |name: &str| props.get(name).filter(|v| !v.is_null());
    let id_of = |name: &str| -> ApiResult<Option<Uuid>> {
        field(name)
            .map(|v| {
                v.as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!("resource.properties.{name}"),
                            "must be an id (a UUID)",
                        )
                    })
            })
            .transpose()
    };
    let owner = match field("owner") {
        None => None,
        Some(v) => {
            let body: SubjectBody = serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::bad_request(
                    "resource.properties.owner",
                    "must be {\"type\": \"user\", \"id\": …}",
                )
            })?;
            match subject(&body)? {
                Subject::Principal(p) => Some(p),
                Subject::Anonymous => None,
            }
        }
    };
    Ok(Some(RecordProperties {
        owner,
        business_unit_id: id_of("business_unit_id")?
            .map(portcullis_core::BusinessUnitId::from_uuid),
        environment_id: id_of("environment_id")?.map(portcullis_core::EnvironmentId::from_uuid),
    }))
}

fn freshness(context: Option<&Value>) -> ApiResult<Freshness> {
    match context.and_then(|c| c.get("min_revision")) {
        None | Some(Value::Null) => Ok(Freshness::Any),
        Some(Value::String(s)) if s == "latest" => Ok(Freshness::Latest),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Freshness::AtLeast)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "context.min_revision",
                    "must be a revision number or \"latest\"",
                )
            }),
    }
}

/// The caller may ask this tenant's engine: the path names its own tenant, and it holds
/// `access.evaluate` (decided on the snapshot it is about to ask, as fresh as it demands).
async fn engine_for(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    context: Option<&Value>,
) -> ApiResult<Arc<Current>> {
    if caller.tenant.name != tenant {
        return Err(ApiError::NotFound);
    }
    let current = caller.engine(state, freshness(context)?).await?;
    caller
        .authorize(state, Action::AccessEvaluate, Scope::Tenant, None)
        .await?;
    Ok(current)
}

/// One decision, and for a denial what was asked (for the audit trail).
struct Decided {
    verdict: Verdict,
    /// What was asked and why it was answered so: for every denial, and for the allowed
    /// decisions sampled into the audit trail.
    described: Option<Value>,
}

/// Allowed decisions seen by this node, counted to sample one in N of them.
static ALLOWED_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn sampled(verdict: &Verdict, engine: &TenantEngine) -> bool {
    let one_in = u64::from(engine.settings().audit_allowed_one_in);
    verdict.allowed
        && one_in > 0
        && ALLOWED_SEEN
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(one_in)
}

fn decide(
    engine: &TenantEngine,
    item: &EvaluationBody,
    defaults: &EvaluationBody,
    now: i64,
) -> ApiResult<Decided> {
    let subject_body = required(
        item.subject.as_ref().or(defaults.subject.as_ref()),
        "subject",
    )?;
    let resource_body = required(
        item.resource.as_ref().or(defaults.resource.as_ref()),
        "resource",
    )?;
    let action = required(item.action.as_ref().or(defaults.action.as_ref()), "action")?;
    let resource = resource_of(resource_body)?;
    let verdict = engine.check(subject(subject_body)?, &action.name, &resource, now);
    let described = (!verdict.allowed || sampled(&verdict, engine)).then(|| {
        json!({
            "subject": {"type": subject_body.kind, "id": subject_body.id},
            "resource": {"type": resource.resource_type, "id": resource.external_id},
            "action": action.name,
            "reason": verdict.reason,
        })
    });
    Ok(Decided { verdict, described })
}

fn answer(verdict: &Verdict, revision: i64) -> DecisionBody {
    DecisionBody {
        decision: verdict.allowed,
        context: DecisionContext {
            revision,
            reason: verdict.reason.clone(),
            reason_text: verdict.reason.to_string(),
        },
    }
}

/// Counts decisions, and writes the denials, and the allowed decisions sampled by the
/// tenant's settings, to the audit trail in the background (at most one event of each per
/// request), without holding up the answer.
fn account(state: &AppState, caller: &Caller, decided: &[Decided]) {
    let denials = decided.iter().filter(|d| !d.verdict.allowed).count();
    metrics::counter!("portcullis_access_decisions_total", "decision" => "allow")
        .increment((decided.len() - denials) as u64);
    metrics::counter!("portcullis_access_decisions_total", "decision" => "deny")
        .increment(denials as u64);
    let described = |allowed: bool| -> Vec<&Value> {
        decided
            .iter()
            .filter(|d| d.verdict.allowed == allowed)
            .filter_map(|d| d.described.as_ref())
            .collect()
    };
    let (denied, sampled) = (described(false), described(true));
    if !denied.is_empty() {
        let reason = decided
            .iter()
            .find(|d| !d.verdict.allowed)
            .map(|d| d.verdict.reason.to_string());
        let details = json!({
            "denials": denials,
            "evaluations": decided.len(),
            "denied": &denied[..denials.min(100)],
        });
        let unaudited = "portcullis_access_denials_unaudited_total";
        record(
            state,
            caller,
            Outcome::Denied,
            reason,
            &denied,
            details,
            unaudited,
        );
    }
    if !sampled.is_empty() {
        let details = json!({
            "sampled": sampled.len(),
            "evaluations": decided.len(),
            "allowed": &sampled[..sampled.len().min(100)],
        });
        let unaudited = "portcullis_access_samples_unaudited_total";
        record(
            state,
            caller,
            Outcome::Success,
            None,
            &sampled,
            details,
            unaudited,
        );
    }
}

/// Writes one `access.evaluate` event about `described` decisions in the background; if too
/// many such writes are pending, counts them in `unaudited` instead.
fn record(
    state: &AppState,
    caller: &Caller,
    outcome: Outcome,
    reason: Option<String>,
    described: &[&Value],
    details: Value,
    unaudited: &'static str,
) {
    static BACKLOG: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AUDIT_BACKLOG);
    let Ok(permit) = BACKLOG.try_acquire() else {
        metrics::counter!(unaudited).increment(described.len() as u64);
        return;
    };
    let first = described[0];
    let event = NewAuditEvent {
        tenant_id: caller.tenant_id(),
        at: state.clock.now(),
        actor: caller.actor.clone(),
        action: "access.evaluate".into(),
        target: first["resource"]["type"]
            .as_str()
            .zip(first["resource"]["id"].as_str())
            .map(|(kind, id)| Target::new(kind, id)),
        outcome,
        reason,
        origin: caller.origin.clone(),
        details,
    };
    let audit = state.audit.clone();
    tokio::spawn(async move {
        if let Err(e) = audit.append(event).await {
            tracing::error!(error = %e, "cannot audit access decisions");
        }
        drop(permit);
    });
}

/// May the subject do the action on the resource?
#[utoipa::path(post, path = "/t/{tenant}/access/v1/evaluation", tag = "authorization",
    params(("tenant" = String, Path)), request_body = EvaluationBody,
    responses((status = 200, body = DecisionBody), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<EvaluationBody>,
) -> ApiResult<Json<DecisionBody>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let now = instant(state.clock.now());
    let decided = decide(&current.engine, &body, &body, now)?;
    let response = answer(&decided.verdict, current.revision);
    account(&state, &caller, std::slice::from_ref(&decided));
    Ok(Json(response))
}

/// Many decisions in one request (at most 1000).
#[utoipa::path(post, path = "/t/{tenant}/access/v1/evaluations", tag = "authorization",
    params(("tenant" = String, Path)), request_body = EvaluationsBody,
    responses((status = 200, body = EvaluationsResponse), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn evaluations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<EvaluationsBody>,
) -> ApiResult<Response> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let now = instant(state.clock.now());
    let defaults = EvaluationBody {
        subject: body.subject,
        resource: body.resource,
        action: body.action,
        context: body.context,
    };
    let Some(items) = body.evaluations else {
        // Without a list it is a single evaluation (AuthZEN 1.0 §7.1).
        let decided = decide(&current.engine, &defaults, &defaults, now)?;
        let response = answer(&decided.verdict, current.revision);
        account(&state, &caller, std::slice::from_ref(&decided));
        return Ok(Json(response).into_response());
    };
    if items.len() > MAX_EVALUATIONS {
        return Err(ApiError::bad_request(
            "evaluations",
            format!("at most {MAX_EVALUATIONS} evaluations per request; split the batch"),
        ));
    }
    let stop_at = match body.options.and_then(|o| o.evaluations_semantic).as_deref() {
        None | Some("execute_all") => None,
        Some("deny_on_first_deny") => Some(false),
        Some("permit_on_first_permit") => Some(true),
        Some(_) => {
            return Err(ApiError::bad_request(
                "options.evaluations_semantic",
                "must be `execute_all`, `deny_on_first_deny` or `permit_on_first_permit`",
            ));
        }
    };
    let mut decided = Vec::with_capacity(items.len());
    for item in &items {
        let d = decide(&current.engine, item, &defaults, now)?;
        let stop = stop_at == Some(d.verdict.allowed);
        decided.push(d);
        if stop {
            break;
        }
    }
    let evaluations: Vec<DecisionBody> = decided
        .iter()
        .map(|d| answer(&d.verdict, current.revision))
        .collect();
    account(&state, &caller, &decided);
    Ok(Json(EvaluationsResponse { evaluations }).into_response())
}

fn page_of(body: &SearchBody) -> ApiResult<(Option<String>, usize)> {
    let page = body.page.as_ref();
    let limit = page.and_then(|p| p.limit).unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "page.limit",
            format!("must be 1 to {MAX_PAGE}"),
        ));
    }
    Ok((
        page.and_then(|p| p.token.clone()).filter(|t| !t.is_empty()),
        limit,
    ))
}

fn search_response(
    results: Vec<Value>,
    next: Option<String>,
    revision: i64,
) -> Json<SearchResponse> {
    Json(SearchResponse {
        results,
        page: json!({"next_token": next.unwrap_or_default()}),
        context: json!({"revision": revision}),
    })
}

fn refused(reason: portcullis_core::engine::tenant::Reason) -> ApiError {
    ApiError::bad_request("resource", reason.to_string())
}

/// Who may do the action on the resource: subjects of `subject.type`, in id order.
#[utoipa::path(post, path = "/t/{tenant}/access/v1/search/subject", tag = "authorization",
    params(("tenant" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search_subject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let (token, limit) = page_of(&body)?;
    let kind = principal_kind(&required(body.subject.as_ref(), "subject")?.kind)?;
    let resource_body = required(body.resource.as_ref(), "resource")?;
    let action = required(body.action.as_ref(), "action")?;
    let after = token
        .map(|t| {
            Uuid::parse_str(&t)
                .map_err(|_| ApiError::bad_request("page.token", "is not a token this server gave"))
        })
        .transpose()?;
    let resource = resource_of(resource_body)?;
    let now = instant(state.clock.now());
    let (found, more) = current
        .engine
        .subjects(kind, &action.name, &resource, now, after, limit)
        .map_err(refused)?;
    let next = more
        .then(|| found.last().map(|p| p.id.to_string()))
        .flatten();
    let results = found
        .iter()
        .map(|p| json!({"type": p.kind.as_str(), "id": p.id}))
        .collect();
    Ok(search_response(results, next, current.revision))
}

/// Which records of `resource.type` the subject may do the action on, in id order.
#[utoipa::path(post, path = "/t/{tenant}/access/v1/search/resource", tag = "authorization",
    params(("tenant" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search_resource(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let (token, limit) = page_of(&body)?;
    let who = subject(required(body.subject.as_ref(), "subject")?)?;
    let resource_type = &required(body.resource.as_ref(), "resource")?.kind;
    let action = required(body.action.as_ref(), "action")?;
    let now = instant(state.clock.now());
    let (found, more) = current
        .engine
        .resources(
            who,
            &action.name,
            resource_type,
            now,
            token.as_deref(),
            limit,
        )
        .map_err(refused)?;
    let next = more.then(|| found.last().cloned()).flatten();
    let results = found
        .iter()
        .map(|id| json!({"type": resource_type, "id": id}))
        .collect();
    Ok(search_response(results, next, current.revision))
}

/// Which actions the subject may do on the resource.
#[utoipa::path(post, path = "/t/{tenant}/access/v1/search/action", tag = "authorization",
    params(("tenant" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search_action(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let who = subject(required(body.subject.as_ref(), "subject")?)?;
    let resource_body = required(body.resource.as_ref(), "resource")?;
    let resource = resource_of(resource_body)?;
    let now = instant(state.clock.now());
    let found = current
        .engine
        .actions(who, &resource, now)
        .map_err(refused)?;
    let results = found.iter().map(|name| json!({"name": name})).collect();
    Ok(search_response(results, None, current.revision))
}

/// The tenant's AuthZEN metadata (no authentication), where AuthZEN 1.0 puts it: the
/// well-known string between the host and the policy decision point's path (RFC 8615, as RFC
/// 8414 does for OAuth), so `policy_decision_point` is the identifier it was derived from.
#[utoipa::path(get, path = "/.well-known/authzen-configuration/t/{tenant}", tag = "authorization",
    params(("tenant" = String, Path)), security(()),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn configuration(
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let tenant = active_tenant(&state, &tenant).await?;
    let base = format!("{}/t/{}", state.config.public_url, tenant.name);
    Ok(Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    })))
}

/// The same metadata under the tenant's own path, where earlier versions served it.
#[utoipa::path(get, path = "/t/{tenant}/.well-known/authzen-configuration", tag = "authorization",
    params(("tenant" = String, Path)), security(()),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn configuration_under_tenant(
    state: State<AppState>,
    tenant: ApiPath<String>,
) -> ApiResult<Json<Value>> {
    configuration(state, tenant).await
}
