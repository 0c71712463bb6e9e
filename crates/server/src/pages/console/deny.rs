//! The console's deny assignments: guardrails that refuse actions to principals at a scope
//! whatever roles they hold, with break-glass exceptions. Listed with names, made from a form
//! that names people and groups as people know them, and removed; all through the API's
//! handlers (`role.read` to see, `deny_assignment.write` to change).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::resources::NewDenyAssignment;
use portcullis_core::DenyAssignmentId;
use portcullis_core::authz::Scope;
use portcullis_core::identity::PrincipalRef;

use super::access::{Names, find_principal, no_such_principal};
use super::{Console, ConsoleError, CsrfForm, Frame, Section, given};
use crate::extract::{ApiJson, ApiPath, RequestOrigin};
use crate::pages::PageError;
use crate::routes::resources as api;
use crate::state::AppState;

struct Row {
    id: DenyAssignmentId,
    name: String,
    description: Option<String>,
    refused: Vec<String>,
    excepted: Vec<String>,
    actions: Vec<String>,
    scope: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DenyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// One principal a line: `user ada`, `group Contractors`, `service_principal ci`.
    #[serde(default)]
    principals: String,
    #[serde(default)]
    excluded: String,
    /// Separated by spaces or commas.
    #[serde(default)]
    actions: String,
    #[serde(default)]
    scope: String,
}

#[derive(Template)]
#[template(path = "console/deny.html")]
struct DenyPage<'a> {
    frame: Frame<'a>,
    rows: Vec<Row>,
    form: DenyForm,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct DenyQuery {
    done: Option<String>,
}

/// `user ada`, `group Contractors`: each principal's kind and name.
fn named(names: &Names, principals: &[PrincipalRef]) -> Vec<String> {
    principals
        .iter()
        .map(|p| format!("{} {}", p.kind.as_str().replace('_', " "), names.name(*p)))
        .collect()
}

async fn deny_page(
    state: &AppState,
    me: &Console,
    form: DenyForm,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<Response, ConsoleError> {
    let Json(found) = api::list_deny_assignments(State(state.clone()), me.caller.clone()).await?;
    let everyone: Vec<PrincipalRef> = found
        .items
        .iter()
        .flat_map(|d| d.principals.iter().chain(&d.excluded).copied())
        .collect();
    let names = Names::of(state, me, &everyone).await?;
    let rows = found
        .items
        .into_iter()
        .map(|deny| Row {
            id: deny.id,
            refused: named(&names, &deny.principals),
            excepted: named(&names, &deny.excluded),
            name: deny.name,
            description: deny.description,
            actions: deny.actions,
            scope: crate::pages::scope_words(&deny.scope),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = DenyPage {
        frame: me.frame(Section::Access),
        rows,
        form,
        error,
        notice,
    };
    Ok((status, me.page(&page)).into_response())
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DenyQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let notice = match query.done.as_deref() {
        Some("created") => Some("The deny assignment applies now, on every node."),
        Some("removed") => Some("The deny assignment was removed."),
        _ => None,
    };
    let form = DenyForm {
        scope: "tenant".into(),
        ..DenyForm::default()
    };
    deny_page(&state, &me, form, None, notice).await
}

/// The principals named one a line (`user ada`), or what is wrong with a line.
async fn principals(
    state: &AppState,
    me: &Console,
    field: &str,
    text: &str,
) -> Result<Result<Vec<PrincipalRef>, String>, ConsoleError> {
    let mut found = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((kind, name)) = line.split_once(char::is_whitespace) else {
            return Ok(Err(format!(
                "In {field}, “{line}” needs a kind and a name, such as “user ada” or “group Contractors”."
            )));
        };
        if !matches!(kind, "user" | "group" | "service_principal") {
            return Ok(Err(format!(
                "In {field}, “{kind}” is not a kind: write user, group or service_principal."
            )));
        }
        match find_principal(state, me, kind, name).await? {
            Some(principal) => found.push(principal),
            None => return Ok(Err(no_such_principal(kind, name.trim()))),
        }
    }
    Ok(Ok(found))
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<DenyForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let refused = principals(&state, &me, "who is refused", &form.principals).await?;
    let excepted = principals(&state, &me, "the exceptions", &form.excluded).await?;
    let scope = form.scope.trim().parse::<Scope>();
    let (principals, excluded, scope) = match (refused, excepted, scope) {
        (Ok(p), Ok(e), Ok(s)) => (p, e, s),
        (Err(error), ..) | (_, Err(error), _) => {
            return deny_page(&state, &me, form, Some(error), None).await;
        }
        (.., Err(e)) => {
            let error = format!("The scope {}.", e.message);
            return deny_page(&state, &me, form, Some(error), None).await;
        }
    };
    let body = NewDenyAssignment {
        name: form.name.trim().to_owned(),
        description: given(&form.description),
        principals,
        excluded,
        actions: form
            .actions
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect(),
        scope: Some(scope),
    };
    let made =
        api::create_deny_assignment(State(state.clone()), me.caller.clone(), ApiJson(body)).await;
    match super::on_the_form(made)? {
        Ok(_) => Ok(Redirect::to(&format!(
            "/t/{}/console/access/deny?done=created",
            me.tenant()
        ))
        .into_response()),
        Err(error) => deny_page(&state, &me, form, Some(error), None).await,
    }
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id: DenyAssignmentId = id
        .parse()
        .map_err(|_| PageError::NotFound("There is no such deny assignment."))?;
    api::delete_deny_assignment(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(Redirect::to(&format!(
        "/t/{}/console/access/deny?done=removed",
        me.tenant()
    ))
    .into_response())
}
