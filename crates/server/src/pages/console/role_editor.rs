//! The console's custom role editor: a tenant's own role as a name, a description and the
//! actions it allows, picked from lists grouped by resource type and plane (Portcullis's own
//! types and the tenant's), each of the tenant's types with how far it reaches. Saved through
//! the API's handlers (`routes::resources`), so `role.write` and every check of the API hold.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};

use portcullis_api::resources::CustomRoleBody;
use portcullis_core::RoleId;
use portcullis_core::authz::{Action, Plane};
use portcullis_core::engine::model::Depth;
use portcullis_core::resources::{CustomRole, ResourceType, RolePermission};

use super::{Console, ConsoleError, Frame, Section, as_shown, given};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RequestOrigin};
use crate::pages::PageError;
use crate::routes::resources as api;
use crate::state::AppState;

/// The reaches a tenant's action may have, as the form offers them.
const DEPTHS: [(Depth, &str, &str); 4] = [
    (Depth::Own, "own", "records they own"),
    (Depth::BusinessUnit, "business_unit", "their business unit"),
    (
        Depth::BusinessUnitTree,
        "business_unit_tree",
        "their business unit and those below",
    ),
    (Depth::Tenant, "tenant", "everywhere in scope"),
];

fn depth_name(depth: Depth) -> &'static str {
    DEPTHS
        .iter()
        .find(|(d, ..)| *d == depth)
        .map_or("tenant", |(_, name, _)| name)
}

/// An action as a checkbox: the value sent, its label, and whether it is ticked.
type Choice = (String, String, bool);

/// One fieldset of the editor: the actions of one resource type and plane.
struct ActionGroup {
    legend: String,
    /// For the tenant's own types: the depth field's name and its current value.
    depth: Option<(String, &'static str)>,
    actions: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "console/role.html")]
struct EditorPage<'a> {
    frame: Frame<'a>,
    /// `None` for a new role.
    role: Option<(RoleId, i64)>,
    name: String,
    description: String,
    groups: Vec<ActionGroup>,
    depths: &'static [(Depth, &'static str, &'static str)],
    error: Option<String>,
}

/// The editor's groups with `chosen` ticked: Portcullis's own actions by type and plane, then
/// each of the tenant's types.
fn groups(types: &[ResourceType], chosen: &[RolePermission]) -> Vec<ActionGroup> {
    let ticked: BTreeSet<&str> = chosen.iter().map(|p| p.action.as_str()).collect();
    let mut own: BTreeMap<(String, &str), Vec<Choice>> = BTreeMap::new();
    for action in Action::ALL {
        let (ty, name) = action
            .as_str()
            .split_once('.')
            .unwrap_or(("portcullis", action.as_str()));
        let plane = match action.plane() {
            Plane::Control => "control plane",
            Plane::Data => "data plane",
        };
        let value = action.qualified();
        let checked = ticked.contains(value.as_str()) || ticked.contains(action.as_str());
        own.entry((format!("portcullis:{ty}"), plane))
            .or_default()
            .push((value, name.to_owned(), checked));
    }
    let mut groups: Vec<ActionGroup> = own
        .into_iter()
        .map(|((ty, plane), actions)| ActionGroup {
            legend: format!("{ty} · {plane}"),
            depth: None,
            actions,
        })
        .collect();
    for ty in types {
        let depth = chosen
            .iter()
            .find(|p| p.action.split_once('.').is_some_and(|(t, _)| t == ty.name))
            .map_or(Depth::Tenant, |p| p.depth);
        groups.push(ActionGroup {
            legend: ty.name.clone(),
            depth: Some((format!("depth:{}", ty.name), depth_name(depth))),
            actions: ty
                .actions
                .iter()
                .map(|a| {
                    let value = ty.qualified(&a.name);
                    let checked = ticked.contains(value.as_str());
                    (value, a.name.clone(), checked)
                })
                .collect(),
        });
    }
    groups
}

/// The form's fields: `name`, `description`, `csrf`, `version`, every ticked `action`, and a
/// `depth:{type}` for each of the tenant's types.
struct RoleForm {
    fields: Vec<(String, String)>,
}

impl RoleForm {
    fn one(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn permissions(&self) -> Vec<RolePermission> {
        let mut permissions = Vec::new();
        for (_, action) in self.fields.iter().filter(|(k, _)| k == "action") {
            let depth = match action.split_once('.') {
                Some((ty, _)) if !action.starts_with("portcullis:") => {
                    let wanted = self.one(&format!("depth:{ty}"));
                    DEPTHS
                        .iter()
                        .find(|(_, name, _)| *name == wanted)
                        .map_or(Depth::Tenant, |(d, ..)| *d)
                }
                _ => Depth::Tenant,
            };
            permissions.push(RolePermission {
                action: action.clone(),
                depth,
            });
        }
        permissions
    }

    fn body(&self) -> CustomRoleBody {
        CustomRoleBody {
            name: self.one("name").trim().to_owned(),
            description: given(&self.one("description")),
            permissions: self.permissions(),
        }
    }
}

async fn types(state: &AppState, me: &Console) -> Result<Vec<ResourceType>, ConsoleError> {
    let Json(types) = api::list_resource_types(State(state.clone()), me.caller.clone()).await?;
    Ok(types.items)
}

async fn editor(
    state: &AppState,
    me: &Console,
    role: Option<(RoleId, i64)>,
    body: CustomRoleBody,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let types = types(state, me).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = EditorPage {
        frame: me.frame(Section::Roles),
        role,
        name: body.name,
        description: body.description.unwrap_or_default(),
        groups: groups(&types, &body.permissions),
        depths: &DEPTHS,
        error,
    };
    Ok((status, me.page(&page)).into_response())
}

fn role_id(text: &str) -> Result<RoleId, PageError> {
    text.parse()
        .map_err(|_| PageError::NotFound("There is no such role. The roles page lists them."))
}

pub(super) async fn new_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let empty = CustomRoleBody {
        name: String::new(),
        description: None,
        permissions: Vec::new(),
    };
    editor(&state, &me, None, empty, None).await
}

pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let id = role_id(&id)?;
    let role: CustomRole =
        api::get_custom_role(State(state.clone()), me.caller.clone(), ApiPath(id))
            .await?
            .body;
    let body = CustomRoleBody {
        name: role.name,
        description: role.description,
        permissions: role.permissions,
    };
    editor(&state, &me, Some((id, role.version)), body, None).await
}

fn roles_page(me: &Console) -> Response {
    Redirect::to(&format!("/t/{}/console/roles", me.tenant())).into_response()
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let form = RoleForm { fields };
    let me = Console::post(&state, &tenant, &headers, origin, &form.one("csrf")).await?;
    let body = form.body();
    match super::on_the_form(
        api::create_custom_role(
            State(state.clone()),
            me.caller.clone(),
            ApiJson(body.clone()),
        )
        .await,
    )? {
        Ok(_) => Ok(roles_page(&me)),
        Err(error) => editor(&state, &me, None, body, Some(error)).await,
    }
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let form = RoleForm { fields };
    let me = Console::post(&state, &tenant, &headers, origin, &form.one("csrf")).await?;
    let id = role_id(&id)?;
    let version: i64 = form.one("version").parse().map_err(|_| {
        PageError::BadRequest("The form lost the role's version. Reload the page.".into())
    })?;
    let body = form.body();
    match api::put_custom_role(
        State(state.clone()),
        me.caller.clone(),
        as_shown(version),
        ApiPath(id),
        ApiJson(body.clone()),
    )
    .await
    {
        Ok(_) => Ok(roles_page(&me)),
        Err(refusal @ ApiError::Validation(_)) => {
            editor(
                &state,
                &me,
                Some((id, version)),
                body,
                Some(super::form_error(&refusal)),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<super::CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = role_id(&id)?;
    api::delete_custom_role(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(roles_page(&me))
}
