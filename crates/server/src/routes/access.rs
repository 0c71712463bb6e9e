//! The OpenID AuthZEN Authorization API 1.0, per tenant under `/t/{tenant}`: single and
//! batched evaluations, the subject, resource and action searches, and the metadata document.
//! Callers are service principals of the tenant holding `access.evaluate`. Every decision
//! carries the snapshot revision it was made at and its reason; a request may demand a minimum
//! revision (`context.min_revision`: a number, or `"latest"` for everything committed so far).

use portcullis_api::access::{
    DecisionBody, DecisionContext, EvaluationBody, EvaluationError, EvaluationsBody,
    EvaluationsResponse, ResourceBody, SearchBody, SearchResponse, SubjectBody,
};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use portcullis_core::audit::{NewAuditEvent, Outcome, Target};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::engine::subjects::Identifier;
use portcullis_core::engine::tenant::{
    Reason, RecordProperties, Resource, Subject, TenantEngine, Verdict, instant,
};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::page::bound;

use crate::auth::{Caller, PepCaller};
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

fn required<'a, T>(value: Option<&'a T>, field: &str) -> ApiResult<&'a T> {
    value.ok_or_else(|| ApiError::bad_request(field, format!("`{field}` is required")))
}

/// The record a request is about: its type and id, and its properties if it is described
/// inline.
fn resource_of<'a>(engine: &TenantEngine, body: &'a ResourceBody) -> ApiResult<Resource<'a>> {
    let external_id = body
        .id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("resource.id", "`resource.id` is required"))?;
    Ok(Resource {
        resource_type: &body.kind,
        external_id,
        properties: properties(engine, body)?,
    })
}

fn principal_kinds<'a>(engine: &'a TenantEngine, raw: &str) -> ApiResult<&'a [PrincipalKind]> {
    engine
        .subject_kinds(raw)
        .ok_or_else(|| unknown_subject_type("subject.type"))
}

fn unknown_subject_type(field: &str) -> ApiError {
    ApiError::bad_request(
        field,
        "must be `user`, `group`, `service_principal`, `anonymous`, or one of the tenant's subject types (access settings `subject_types`)",
    )
}

/// The subject `body` names, found by any of its identifiers; `field` is where it was sent.
fn subject(engine: &TenantEngine, body: &SubjectBody, field: &str) -> ApiResult<Subject> {
    if body.kind == "anonymous" {
        return Ok(Subject::Anonymous);
    }
    let id = body.id.as_deref().ok_or_else(|| {
        ApiError::bad_request(format!("{field}.id"), format!("`{field}.id` is required"))
    })?;
    let only = match body.properties.as_ref().and_then(|p| p.get("identifier")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(Identifier::parse).ok_or_else(|| {
            ApiError::bad_request(
                format!("{field}.properties.identifier"),
                "must be `id`, `external_id`, `user_name`, `email` or `name`",
            )
        })?),
    };
    engine
        .find_subject(&body.kind, id, only)
        .ok_or_else(|| unknown_subject_type(&format!("{field}.type")))
}

/// An inline record's properties. Enforcement points name them in their own style, so both
/// `owner_id` and `ownerID` (and the like) are read.
fn properties(engine: &TenantEngine, body: &ResourceBody) -> ApiResult<Option<RecordProperties>> {
    let Some(props) = &body.properties else {
        return Ok(None);
    };
    let field = |names: &[&'static str]| {
        names.iter().find_map(|name| {
            props
                .get(*name)
                .filter(|v| !v.is_null())
                .map(|v| (*name, v))
        })
    };
    let id_of = |names: &[&'static str]| -> ApiResult<Option<Uuid>> {
        field(names)
            .map(|(name, v)| {
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
    let owner = match field(&["owner", "ownerID", "owner_id", "ownerId"]) {
        None => None,
        // A bare identifier names a user, as a token's `sub` or e-mail does.
        Some((_, Value::String(id))) => {
            Some(engine.find_subject("user", id, None).ok_or_else(|| {
                ApiError::Internal("the `user` subject type is always known".into())
            })?)
        }
        Some((name, v)) => {
            let owner_field = format!("resource.properties.{name}");
            let body: SubjectBody = serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::bad_request(
                    owner_field.clone(),
                    "must be a user's identifier, or {\"type\": \"user\", \"id\": …}",
                )
            })?;
            Some(subject(engine, &body, &owner_field)?)
        }
    };
    Ok(Some(RecordProperties {
        owner: match owner {
            Some(Subject::Principal(p)) => Some(p),
            _ => None,
        },
        business_unit_id: id_of(&["business_unit_id", "businessUnitID", "businessUnitId"])?
            .map(portcullis_core::BusinessUnitId::from_uuid),
        environment_id: id_of(&["environment_id", "environmentID", "environmentId"])?
            .map(portcullis_core::EnvironmentId::from_uuid),
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
    allowed: bool,
    /// Why it was decided so, or, for one item of a batch, why it could not be asked (a
    /// denial).
    outcome: Result<Reason, EvaluationError>,
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
    let resource = resource_of(engine, resource_body)?;
    let who = subject(engine, subject_body, "subject")?;
    let verdict = engine.check(who, &action.name, &resource, now);
    let described = (!verdict.allowed || sampled(&verdict, engine)).then(|| {
        json!({
            "subject": {"type": subject_body.kind, "id": subject_body.id},
            "resource": {"type": resource.resource_type, "id": resource.external_id},
            "action": action.name,
            "reason": verdict.reason,
        })
    });
    Ok(Decided {
        allowed: verdict.allowed,
        outcome: Ok(verdict.reason),
        described,
    })
}

/// One item of a batch that could not be asked: a denial carrying the error, so that one bad
/// item does not cost the enforcement point the whole batch. Faults of the server still fail
/// the request.
fn refused_item(error: ApiError) -> ApiResult<Decided> {
    let (field, message) = match error {
        ApiError::BadRequest { field, detail } => (field, detail),
        ApiError::Validation(e) => (Some(e.field), e.message),
        other => return Err(other),
    };
    let described = json!({"error": message, "field": field});
    Ok(Decided {
        allowed: false,
        outcome: Err(EvaluationError {
            status: 400,
            field,
            message,
        }),
        described: Some(described),
    })
}

impl Decided {
    fn reason_text(&self) -> String {
        match &self.outcome {
            Ok(reason) => reason.to_string(),
            Err(error) => format!(
                "denied: the evaluation could not be asked: {}",
                error.message
            ),
        }
    }
}

fn answer(decided: &Decided, revision: i64) -> DecisionBody {
    DecisionBody {
        decision: decided.allowed,
        context: DecisionContext {
            revision,
            reason: decided.outcome.as_ref().ok().cloned(),
            reason_text: decided.reason_text(),
            error: decided.outcome.as_ref().err().cloned(),
        },
    }
}

/// Counts decisions, and writes the denials, and the allowed decisions sampled by the
/// tenant's settings, to the audit trail in the background (at most one event of each per
/// request), without holding up the answer.
fn account(state: &AppState, caller: &Caller, decided: &[Decided]) {
    let denials = decided.iter().filter(|d| !d.allowed).count();
    metrics::counter!("portcullis_access_decisions_total", "decision" => "allow")
        .increment((decided.len() - denials) as u64);
    metrics::counter!("portcullis_access_decisions_total", "decision" => "deny")
        .increment(denials as u64);
    let described = |allowed: bool| -> Vec<&Value> {
        decided
            .iter()
            .filter(|d| d.allowed == allowed)
            .filter_map(|d| d.described.as_ref())
            .collect()
    };
    let (denied, sampled) = (described(false), described(true));
    if !denied.is_empty() {
        let reason = decided
            .iter()
            .find(|d| !d.allowed)
            .map(Decided::reason_text);
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
    PepCaller(caller): PepCaller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<EvaluationBody>,
) -> ApiResult<Json<DecisionBody>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let now = instant(state.clock.now());
    let decided = decide(&current.engine, &body, &body, now)?;
    let response = answer(&decided, current.revision);
    account(&state, &caller, std::slice::from_ref(&decided));
    Ok(Json(response))
}

/// Many decisions in one request (at most 1000).
#[utoipa::path(post, path = "/t/{tenant}/access/v1/evaluations", tag = "authorization",
    params(("tenant" = String, Path)), request_body = EvaluationsBody,
    responses((status = 200, body = EvaluationsResponse), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn evaluations(
    State(state): State<AppState>,
    PepCaller(caller): PepCaller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<EvaluationsBody>,
) -> ApiResult<Response> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
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
    let now = instant(state.clock.now());
    let defaults = EvaluationBody {
        subject: body.subject,
        resource: body.resource,
        action: body.action,
        context: body.context,
    };
    let items = body.evaluations.unwrap_or_default();
    if items.is_empty() {
        // Without a list, or with an empty one, it is a single evaluation (AuthZEN 1.0 §7.1).
        let decided = decide(&current.engine, &defaults, &defaults, now)?;
        let response = answer(&decided, current.revision);
        account(&state, &caller, std::slice::from_ref(&decided));
        return Ok(Json(response).into_response());
    }
    if items.len() > MAX_EVALUATIONS {
        return Err(ApiError::bad_request(
            "evaluations",
            format!("at most {MAX_EVALUATIONS} evaluations per request; split the batch"),
        ));
    }
    let mut decided = Vec::with_capacity(items.len());
    for item in &items {
        let d = decide(&current.engine, item, &defaults, now).or_else(refused_item)?;
        let stop = stop_at == Some(d.allowed);
        decided.push(d);
        if stop {
            break;
        }
    }
    let evaluations: Vec<DecisionBody> = decided
        .iter()
        .map(|d| answer(d, current.revision))
        .collect();
    account(&state, &caller, &decided);
    Ok(Json(EvaluationsResponse { evaluations }).into_response())
}

/// A search's page: where it resumes (from a token this query was given) and how many
/// results it may hold. A limit of 0 returns no results, only whether there are any.
struct SearchPage {
    after: Option<String>,
    limit: usize,
    /// What the search asked, which its page tokens are bound to.
    query: Vec<u8>,
}

fn page_of(endpoint: &str, body: &SearchBody) -> ApiResult<SearchPage> {
    let page = body.page.as_ref();
    let limit = page.and_then(|p| p.limit).unwrap_or(DEFAULT_PAGE);
    if limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "page.limit",
            format!("must be 0 to {MAX_PAGE}"),
        ));
    }
    let query = serde_json::to_vec(&json!([endpoint, body.subject, body.resource, body.action]))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let after = page
        .and_then(|p| p.token.as_deref())
        .filter(|t| !t.is_empty())
        .map(|t| bound::position(&query, t, "page.token"))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.field, e.message))?
        // The empty position is the start: what a limit of 0 on a first page hands back.
        .filter(|position| !position.is_empty());
    Ok(SearchPage {
        after,
        limit,
        query,
    })
}

impl SearchPage {
    /// The token of the page after this one: after its last result, or where it started when
    /// it held none (a limit of 0); none when nothing more follows.
    fn next(&self, more: bool, last: Option<String>) -> Option<String> {
        more.then(|| last.or_else(|| self.after.clone()).unwrap_or_default())
            .map(|position| bound::token(&self.query, &position))
    }
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
    PepCaller(caller): PepCaller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let engine = &current.engine;
    let page = page_of("subject", &body)?;
    let kinds = principal_kinds(engine, &required(body.subject.as_ref(), "subject")?.kind)?;
    let resource_body = required(body.resource.as_ref(), "resource")?;
    let action = required(body.action.as_ref(), "action")?;
    let after = page.after.as_deref().map(principal_position).transpose()?;
    let resource = resource_of(engine, resource_body)?;
    let now = instant(state.clock.now());
    let (found, more) = engine
        .subjects(kinds, &action.name, &resource, now, after, page.limit)
        .map_err(refused)?;
    let next = page.next(
        more,
        found
            .last()
            .map(|p| format!("{} {}", p.kind.as_str(), p.id)),
    );
    let results = found
        .iter()
        .map(|p| json!({"type": p.kind.as_str(), "id": p.id}))
        .collect();
    Ok(search_response(results, next, current.revision))
}

/// The principal a subject search's page resumes after (`user 0190…`).
fn principal_position(position: &str) -> ApiResult<PrincipalRef> {
    position
        .split_once(' ')
        .and_then(|(kind, id)| {
            Some(PrincipalRef {
                kind: PrincipalKind::parse(kind)?,
                id: Uuid::parse_str(id).ok()?,
            })
        })
        .ok_or_else(|| ApiError::bad_request("page.token", "is not a token this server gave"))
}

/// Which records of `resource.type` the subject may do the action on, in id order.
#[utoipa::path(post, path = "/t/{tenant}/access/v1/search/resource", tag = "authorization",
    params(("tenant" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn search_resource(
    State(state): State<AppState>,
    PepCaller(caller): PepCaller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let engine = &current.engine;
    let page = page_of("resource", &body)?;
    let who = subject(
        engine,
        required(body.subject.as_ref(), "subject")?,
        "subject",
    )?;
    let resource_type = &required(body.resource.as_ref(), "resource")?.kind;
    let action = required(body.action.as_ref(), "action")?;
    let now = instant(state.clock.now());
    let (found, more) = engine
        .resources(
            who,
            &action.name,
            resource_type,
            now,
            page.after.as_deref(),
            page.limit,
        )
        .map_err(refused)?;
    let next = page.next(more, found.last().cloned());
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
    PepCaller(caller): PepCaller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResponse>> {
    let current = engine_for(&state, &caller, &tenant, body.context.as_ref()).await?;
    let engine = &current.engine;
    let who = subject(
        engine,
        required(body.subject.as_ref(), "subject")?,
        "subject",
    )?;
    let resource_body = required(body.resource.as_ref(), "resource")?;
    let resource = resource_of(engine, resource_body)?;
    let now = instant(state.clock.now());
    let found = current
        .engine
        .actions(who, &resource, now)
        .map_err(refused)?;
    let results = found.iter().map(|name| json!({"name": name})).collect();
    Ok(search_response(results, None, current.revision))
}

/// The identifier of a tenant's policy decision point: where its AuthZEN API lives, and the
/// audience of access tokens issued for it.
pub(crate) fn decision_point(state: &AppState, tenant: &str) -> String {
    format!("{}/t/{tenant}", state.config.public_url)
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
    let base = decision_point(&state, &tenant.name);
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
