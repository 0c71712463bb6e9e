//! The console's resource types: the kinds of record the tenant's applications ask about, each
//! with its actions and their plane. Listed, registered from a form (an action a line, with
//! its plane) and removed, through the API's handlers (`resource_type.read` to see,
//! `resource_type.write` to change).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::resources::NewResourceType;
use portcullis_core::authz::Plane;
use portcullis_core::resources::{ResourceAction, ResourceType};

use super::{Console, ConsoleError, CsrfForm, Frame, Section, given};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RequestOrigin};
use crate::routes::resources as api;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct TypeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// An action a line: its name, then `data` (the default), `control` or `public`.
    #[serde(default)]
    actions: String,
}

#[derive(Template)]
#[template(path = "console/resource_types.html")]
struct TypesPage<'a> {
    frame: Frame<'a>,
    types: Vec<ResourceType>,
    form: TypeForm,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn plane_word(action: &ResourceAction) -> &'static str {
    match (action.plane, action.public) {
        (_, true) => "public",
        (Plane::Control, false) => "control",
        (Plane::Data, false) => "data",
    }
}

#[derive(Deserialize)]
pub(super) struct TypesQuery {
    done: Option<String>,
}

async fn types_page(
    state: &AppState,
    me: &Console,
    form: TypeForm,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<Response, ConsoleError> {
    let Json(types) = api::list_resource_types(State(state.clone()), me.caller.clone()).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = TypesPage {
        frame: me.frame(Section::Roles),
        types: types.items,
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
    Query(query): Query<TypesQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let notice = match query.done.as_deref() {
        Some("created") => {
            Some("The resource type is registered; roles and shares may name its actions.")
        }
        Some("removed") => Some("The resource type was removed."),
        _ => None,
    };
    types_page(&state, &me, TypeForm::default(), None, notice).await
}

/// The actions named one a line, or what is wrong with a line.
fn actions(text: &str) -> Result<Vec<ResourceAction>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            let (plane, public) = match words.next() {
                None | Some("data") => (Plane::Data, false),
                Some("control") => (Plane::Control, false),
                Some("public") => (Plane::Data, true),
                Some(other) => {
                    return Err(format!(
                        "The action “{name}” says “{other}”: write data, control or public after its name."
                    ));
                }
            };
            Ok(ResourceAction {
                name,
                plane,
                public,
            })
        })
        .collect()
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<TypeForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let actions = match actions(&form.actions) {
        Ok(actions) => actions,
        Err(error) => return types_page(&state, &me, form, Some(error), None).await,
    };
    let body = NewResourceType {
        name: form.name.trim().to_owned(),
        description: given(&form.description),
        actions,
    };
    let made =
        api::create_resource_type(State(state.clone()), me.caller.clone(), ApiJson(body)).await;
    match super::on_the_form(made)? {
        Ok(_) => Ok(Redirect::to(&format!(
            "/t/{}/console/resource-types?done=created",
            me.tenant()
        ))
        .into_response()),
        Err(error) => types_page(&state, &me, form, Some(error), None).await,
    }
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    match api::delete_resource_type(State(state.clone()), me.caller.clone(), ApiPath(name)).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/t/{}/console/resource-types?done=removed",
            me.tenant()
        ))
        .into_response()),
        Err(refusal @ ApiError::Conflict { .. }) => {
            let error = super::form_error(&refusal);
            types_page(&state, &me, TypeForm::default(), Some(error), None).await
        }
        Err(other) => Err(other.into()),
    }
}
