//! The console's conditional access: the policies with their state, a policy's document in an
//! editor with the what-if tool beside it, templates to start from, and the named locations.
//! Every page calls the admin API's handler for the same operation (`routes::conditional`) as
//! the person, so the API's checks (a policy that would lock every administrator out is
//! refused) hold here too.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use portcullis_api::conditional::{
    AccessPolicy, Decision, FromTemplate, NamedLocation, Outcome, Versioned, WhatIf,
};
use portcullis_core::AccessPolicyId;
use portcullis_core::conditional::TEMPLATES;

use super::{Console, ConsoleError, Frame, Section, VersionForm, as_shown};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, RequestOrigin};
use crate::pages::PageError;
use crate::routes::conditional as api;
use crate::state::AppState;
use portcullis_core::authz::{Action, Scope};

/// The largest policy document the editor accepts; real ones are a few hundred bytes.
const MAX_DOCUMENT: usize = 64 * 1024;

/// A value of one of the API's enumerations from its name in a form (`high`, `windows`).
fn named<T: DeserializeOwned>(text: &str) -> Option<T> {
    let text = text.trim();
    (!text.is_empty())
        .then(|| serde_json::from_value(serde_json::Value::String(text.to_owned())).ok())
        .flatten()
}

/// The name an enumeration's value serializes to.
fn name_of(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

/// A policy's document as the editor shows it: the API's form, fields in the order the API
/// documents them (the id is shown and ignored: the server keeps its own).
fn document(policy: &AccessPolicy) -> String {
    serde_json::to_string_pretty(policy).unwrap_or_default()
}

/// What a new policy starts as: report-only, so it is seen in the sign-in log before it is
/// enforced.
const STARTER: &str = r#"{
  "name": "",
  "state": "report_only",
  "include": { "all_users": true },
  "applications": { "include": ["all"] },
  "conditions": {},
  "grant": { "kind": "require", "controls": ["mfa"] }
}"#;

/// A grant in words.
fn grant_words(policy: &AccessPolicy) -> String {
    let grant = serde_json::to_value(&policy.grant).unwrap_or_default();
    match grant["kind"].as_str() {
        Some("block") => "block".to_owned(),
        Some(kind) => {
            let controls: Vec<&str> = grant["controls"]
                .as_array()
                .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if controls.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind} {}", controls.join(", ").replace('_', " "))
            }
        }
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// What-if

/// The what-if form, as the page's query: who, to what, from where, with what.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WhatIfQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    application: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    client_type: String,
    #[serde(default)]
    sign_in_risk: String,
    #[serde(default)]
    user_risk: String,
    done: Option<String>,
}

struct PolicyVerdict {
    name: String,
    state: String,
    applies: bool,
    outcome: &'static str,
    /// Each condition: its name, whether it lets the policy apply, why.
    checks: Vec<(String, bool, String)>,
}

/// A policy's result in words: "interrupted" means it asks the sign-in for more.
fn outcome_words(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "satisfied",
        Outcome::Failure => "refuses it",
        Outcome::NotApplied => "not applied",
        Outcome::Interrupted => "asks for more",
    }
}

struct WhatIfResult {
    decision: String,
    country: Option<String>,
    policies: Vec<PolicyVerdict>,
}

/// Asks the what-if tool when the form was filled in: `None` when it was not, the answer or
/// the message to show otherwise.
async fn what_if(
    state: &AppState,
    me: &Console,
    query: &WhatIfQuery,
) -> Result<Option<Result<WhatIfResult, String>>, ConsoleError> {
    let name = query.user.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let Some(user) = super::access::find_principal(state, me, "user", name).await? else {
        return Ok(Some(Err(format!(
            "There is no user named “{name}” in this organisation."
        ))));
    };
    let address = match query.address.trim() {
        "" => None,
        text => match text.parse() {
            Ok(address) => Some(address),
            Err(_) => {
                return Ok(Some(Err(format!(
                    "“{text}” is not an IP address, such as 203.0.113.9."
                ))));
            }
        },
    };
    let body = WhatIf {
        user: Some(portcullis_core::UserId::from_uuid(user.id)),
        application: super::given(&query.application),
        address,
        platform: named(&query.platform),
        device: named(&query.device),
        client_type: named(&query.client_type),
        sign_in_risk: named(&query.sign_in_risk),
        user_risk: named(&query.user_risk),
        ..WhatIf::default()
    };
    let answer = match api::what_if(State(state.clone()), me.caller.clone(), ApiJson(body)).await {
        Ok(Json(answer)) => answer,
        Err(refusal @ ApiError::Validation(_)) => {
            return Ok(Some(Err(super::form_error(&refusal))));
        }
        Err(other) => return Err(other.into()),
    };
    let name_of_policy = |id: AccessPolicyId| {
        answer
            .policies
            .iter()
            .find(|p| p.policy == id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    let decision = match &answer.evaluation.decision {
        Decision::Allow => "Allowed".to_owned(),
        Decision::Block { policy } => format!("Blocked by “{}”", name_of_policy(*policy)),
        Decision::Require { requirements } => {
            let demands: Vec<String> = requirements
                .iter()
                .map(|r| {
                    let controls = serde_json::to_value(&r.controls)
                        .ok()
                        .and_then(|v| {
                            v.as_array().map(|c| {
                                c.iter()
                                    .filter_map(|x| x.as_str().map(|s| s.replace('_', " ")))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .unwrap_or_default();
                    format!(
                        "{} ({}, by “{}”)",
                        controls.join(" or "),
                        name_of(&r.operator),
                        name_of_policy(r.policy)
                    )
                })
                .collect();
            format!("Allowed once the person proves: {}", demands.join("; "))
        }
    };
    let policies = answer
        .policies
        .iter()
        .map(|p| PolicyVerdict {
            name: p.name.clone(),
            state: name_of(&p.state),
            applies: p.applies,
            outcome: outcome_words(
                answer
                    .evaluation
                    .results
                    .iter()
                    .find(|r| r.policy == p.policy)
                    .map_or(Outcome::NotApplied, |r| r.outcome),
            ),
            checks: p
                .checks
                .iter()
                .map(|c| (name_of(&c.condition), c.applies, c.why.clone()))
                .collect(),
        })
        .collect();
    Ok(Some(Ok(WhatIfResult {
        decision,
        country: answer.country.map(|c| name_of(&c)),
        policies,
    })))
}

// ---------------------------------------------------------------------------------------------
// Policies

struct PolicyRow {
    id: AccessPolicyId,
    name: String,
    state: String,
    grant: String,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct ListPage<'a> {
    frame: Frame<'a>,
    policies: Vec<PolicyRow>,
    templates: &'static [portcullis_core::conditional::Template],
    locations: Vec<Versioned<NamedLocation>>,
    query: &'a WhatIfQuery,
    what_if: Option<Result<WhatIfResult, String>>,
    here: String,
    notice: Option<&'static str>,
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => {
            "The policy was saved. Report-only policies are recorded in the sign-in log and not enforced."
        }
        "saved" => "Your changes were saved. They apply from the next sign-in, on every node.",
        "deleted" => "The policy was deleted.",
        _ => return None,
    })
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<WhatIfQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let Json(policies) = api::list_access_policies(State(state.clone()), me.caller.clone()).await?;
    let Json(locations) =
        api::list_named_locations(State(state.clone()), me.caller.clone()).await?;
    let what_if = what_if(&state, &me, &query).await?;
    let status = status_of(&what_if);
    let page = ListPage {
        frame: me.frame(Section::Conditional),
        policies: policies
            .items
            .into_iter()
            .map(|p| PolicyRow {
                id: p.value.id,
                state: name_of(&p.value.state),
                grant: grant_words(&p.value),
                name: p.value.name,
            })
            .collect(),
        templates: &TEMPLATES,
        locations: locations.items,
        query: &query,
        what_if,
        here: format!("/t/{}/console/conditional-access", me.tenant()),
        notice: done_notice(query.done.as_deref()),
    };
    Ok((status, me.page(&page)).into_response())
}

fn status_of(what_if: &Option<Result<WhatIfResult, String>>) -> StatusCode {
    if matches!(what_if, Some(Err(_))) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct EditorPage<'a> {
    frame: Frame<'a>,
    /// `None` for a new policy.
    policy: Option<(AccessPolicyId, i64, String)>,
    document: String,
    error: Option<String>,
    locations: Vec<Versioned<NamedLocation>>,
    query: &'a WhatIfQuery,
    what_if: Option<Result<WhatIfResult, String>>,
    here: String,
    notice: Option<&'static str>,
    /// What the policy did over the last days; `None` for a new one.
    results: Option<PolicyResults>,
}

/// Days of results a policy's page shows.
const RESULT_DAYS: i64 = 7;

/// One day of a policy's results, from the sign-in log.
struct DayResults {
    day: String,
    /// Sign-ins it applied to, and how each ended for it.
    applied: usize,
    met: usize,
    not_met: usize,
    asked_for_more: usize,
}

struct PolicyResults {
    days: Vec<DayResults>,
    applied: usize,
    /// More sign-ins happened than were counted.
    sampled: bool,
}

/// What policy `id` did to the sign-ins of the last [`RESULT_DAYS`] days, day by day: for a
/// report-only policy, what it would have done. Read from the sign-in log's record of each
/// policy that applied, through the API as the person (`audit.read`).
async fn policy_results(
    state: &AppState,
    me: &Console,
    id: AccessPolicyId,
) -> Result<PolicyResults, ConsoleError> {
    let now = state.clock.now();
    let from = (now - time::Duration::days(RESULT_DAYS - 1)).replace_time(time::Time::MIDNIGHT);
    let (records, sampled) = super::logs::up_to(super::logs::MAX_CHARTED, |cursor| {
        let query = portcullis_api::audit::SignInQuery {
            from: Some(from),
            cursor,
            limit: Some(portcullis_core::page::MAX_LIMIT),
            ..portcullis_api::audit::SignInQuery::default()
        };
        crate::routes::audit::sign_ins(State(state.clone()), me.caller.clone(), ApiQuery(query))
    })
    .await?;
    let mut days: Vec<DayResults> = (0..RESULT_DAYS)
        .map(|back| DayResults {
            day: (now - time::Duration::days(back)).date().to_string(),
            applied: 0,
            met: 0,
            not_met: 0,
            asked_for_more: 0,
        })
        .collect();
    let wanted = id.to_string();
    let mut applied = 0;
    for record in &records {
        let day = record.at.date().to_string();
        let Some(row) = days.iter_mut().find(|d| d.day == day) else {
            continue;
        };
        let results = record.details["conditional_access"]["applied"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["policy"].as_str() == Some(wanted.as_str()));
        for result in results {
            applied += 1;
            row.applied += 1;
            match result["result"].as_str() {
                Some("success") => row.met += 1,
                Some("failure") => row.not_met += 1,
                _ => row.asked_for_more += 1,
            }
        }
    }
    Ok(PolicyResults {
        days,
        applied,
        sampled,
    })
}

fn policy_id(text: &str) -> Result<AccessPolicyId, PageError> {
    text.parse().map_err(|_| {
        PageError::NotFound(
            "There is no such policy. The conditional access page lists the tenant's policies.",
        )
    })
}

pub(super) async fn new_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    editor(
        &state,
        &me,
        None,
        STARTER.to_owned(),
        None,
        &WhatIfQuery::default(),
    )
    .await
}

async fn editor(
    state: &AppState,
    me: &Console,
    policy: Option<(AccessPolicyId, i64, String)>,
    document: String,
    error: Option<String>,
    query: &WhatIfQuery,
) -> Result<Response, ConsoleError> {
    let Json(locations) =
        api::list_named_locations(State(state.clone()), me.caller.clone()).await?;
    let what_if = what_if(state, me, query).await?;
    let here = match &policy {
        Some((id, ..)) => format!("/t/{}/console/conditional-access/{id}", me.tenant()),
        None => format!("/t/{}/console/conditional-access/new", me.tenant()),
    };
    // The results need the audit trail; without `audit.read` the page shows the policy alone.
    let reads_the_log = me
        .caller
        .decide(state, Action::AuditRead, Scope::Tenant)
        .await?
        .allowed;
    let results = match &policy {
        Some((id, ..)) if reads_the_log => Some(policy_results(state, me, *id).await?),
        _ => None,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status_of(&what_if)
    };
    let page = EditorPage {
        frame: me.frame(Section::Conditional),
        policy,
        document,
        error,
        locations: locations.items,
        query,
        what_if,
        here,
        notice: done_notice(query.done.as_deref()),
        results,
    };
    Ok((status, me.page(&page)).into_response())
}

pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<WhatIfQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let id = policy_id(&id)?;
    let stored = api::get_access_policy(State(state.clone()), me.caller.clone(), ApiPath(id))
        .await?
        .body;
    let shown = (id, stored.version, stored.value.name.clone());
    editor(
        &state,
        &me,
        Some(shown),
        document(&stored.value),
        None,
        &query,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DocumentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    document: String,
    /// Create from this template instead of a document.
    #[serde(default)]
    template: String,
    #[serde(default)]
    location: String,
}

/// The document as a policy, or what is wrong with it in words that point at the place.
fn parse_document(text: &str) -> Result<AccessPolicy, String> {
    if text.len() > MAX_DOCUMENT {
        return Err(format!(
            "The policy is longer than {} KiB; a policy is a few hundred bytes.",
            MAX_DOCUMENT / 1024
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        format!(
            "The policy is not valid at line {}, column {}: {e}.",
            e.line(),
            e.column()
        )
    })
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<DocumentForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let created = if form.template.is_empty() {
        let policy = match parse_document(&form.document) {
            Ok(policy) => policy,
            Err(error) => {
                return editor(
                    &state,
                    &me,
                    None,
                    form.document,
                    Some(error),
                    &WhatIfQuery::default(),
                )
                .await;
            }
        };
        api::create_access_policy(State(state.clone()), me.caller.clone(), ApiJson(policy)).await
    } else {
        let body = FromTemplate {
            location: super::given(&form.location).and_then(|l| l.parse().ok()),
        };
        api::create_from_template(
            State(state.clone()),
            me.caller.clone(),
            ApiPath(form.template.clone()),
            ApiJson(body),
        )
        .await
    };
    match created {
        Ok(saved) => Ok(Redirect::to(&format!(
            "/t/{}/console/conditional-access/{}?done=created",
            me.tenant(),
            saved.body.value.id
        ))
        .into_response()),
        Err(refusal @ (ApiError::Validation(_) | ApiError::Conflict { .. }))
            if form.template.is_empty() =>
        {
            let error = Some(super::form_error(&refusal));
            editor(
                &state,
                &me,
                None,
                form.document,
                error,
                &WhatIfQuery::default(),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<DocumentForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = policy_id(&id)?;
    let version = form.version.unwrap_or_default();
    let refused = async |error: String| {
        let stored = api::get_access_policy(State(state.clone()), me.caller.clone(), ApiPath(id))
            .await?
            .body;
        let shown = Some((id, version, stored.value.name));
        editor(
            &state,
            &me,
            shown,
            form.document.clone(),
            Some(error),
            &WhatIfQuery::default(),
        )
        .await
    };
    let policy = match parse_document(&form.document) {
        Ok(policy) => policy,
        Err(error) => return refused(error).await,
    };
    let saved = api::put_access_policy(
        State(state.clone()),
        me.caller.clone(),
        as_shown(version),
        ApiPath(id),
        ApiJson(policy),
    )
    .await;
    match saved {
        Ok(_) => Ok(Redirect::to(&format!(
            "/t/{}/console/conditional-access/{id}?done=saved",
            me.tenant()
        ))
        .into_response()),
        Err(refusal @ (ApiError::Validation(_) | ApiError::Conflict { .. })) => {
            refused(super::form_error(&refusal)).await
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VersionForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = policy_id(&id)?;
    let precondition: Precondition = as_shown(form.version);
    api::delete_access_policy(State(state), me.caller.clone(), precondition, ApiPath(id)).await?;
    Ok(Redirect::to(&format!(
        "/t/{}/console/conditional-access?done=deleted",
        me.tenant()
    ))
    .into_response())
}
