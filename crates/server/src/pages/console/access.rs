//! The console's access pages: who holds which role where (assign, schedule and remove), the
//! roles and what each allows, and the access explorer, which draws why a principal may or
//! may not do something and lists who may. Every page calls the admin API's handler for the
//! same operation (`routes::roles`, `routes::resources`, `routes::explorer`) as the person.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use time::OffsetDateTime;

use portcullis_api::groups::GroupQuery;
use portcullis_api::roles::{
    AccessAnswer, AccessQuestion, AssignmentQuery, CreateRoleAssignment, ExplorerResource,
    WhoCanQuestion,
};
use portcullis_api::users::UserQuery;
use portcullis_core::RoleAssignmentId;
use portcullis_core::authz::{Action, BuiltinRole, Plane, RoleAssignment, RoleRef, Scope};
use portcullis_core::engine::model::Depth;
use portcullis_core::engine::tenant::Reason;
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::names::name_key;
use portcullis_core::resources::CustomRole;

use super::{Console, ConsoleError, CsrfForm, Frame, Section, given, list_link};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::{explorer, resources, roles};
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

/// A role as the console offers and shows it: its reference and the name people know.
struct RoleChoice {
    value: String,
    label: String,
    builtin: bool,
}

/// Built-in roles first, then the tenant's own, by name.
async fn role_choices(state: &AppState, me: &Console) -> Result<Vec<RoleChoice>, ConsoleError> {
    let Json(custom) =
        resources::list_custom_roles(State(state.clone()), me.caller.clone()).await?;
    let mut choices: Vec<RoleChoice> = BuiltinRole::ALL
        .iter()
        .map(|role| RoleChoice {
            value: role.as_str().to_owned(),
            label: role.title().to_owned(),
            builtin: true,
        })
        .collect();
    let mut custom = custom.items;
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    choices.extend(custom.into_iter().map(|role| RoleChoice {
        value: role.id.to_string(),
        label: role.name,
        builtin: false,
    }));
    Ok(choices)
}

fn role_label(choices: &[RoleChoice], role: &RoleRef) -> String {
    let value = role.to_string();
    choices
        .iter()
        .find(|c| c.value == value)
        .map_or(value, |c| c.label.clone())
}

/// A principal's name for people (user name, group or service principal name), or its id when
/// the person may not read it or it is gone.
pub(super) async fn principal_name(
    state: &AppState,
    me: &Console,
    principal: PrincipalRef,
) -> String {
    match Names::of(state, me, &[principal]).await {
        Ok(names) => names.name(principal),
        Err(_) => principal.id.to_string(),
    }
}

/// The names of the principals a page shows, read at once; one the person may not read, or
/// that is gone, is shown by its id.
pub(super) struct Names(std::collections::HashMap<PrincipalRef, String>);

impl Names {
    pub(super) async fn of(
        state: &AppState,
        me: &Console,
        principals: &[PrincipalRef],
    ) -> Result<Self, ApiError> {
        Ok(Self(
            crate::routes::directory::principal_names(state, &me.caller, principals).await?,
        ))
    }

    pub(super) fn name(&self, principal: PrincipalRef) -> String {
        self.0
            .get(&principal)
            .cloned()
            .unwrap_or_else(|| principal.id.to_string())
    }
}

/// The principal of `kind` people know as `name`: a user by user name or e-mail address, a
/// group or service principal by name; or an id of that kind. Looked up with the API's own
/// listings, as the person.
pub(super) async fn find_principal(
    state: &AppState,
    me: &Console,
    kind: &str,
    name: &str,
) -> Result<Option<PrincipalRef>, ConsoleError> {
    let Some(kind) = PrincipalKind::parse(kind) else {
        return Err(PageError::BadRequest(
            "A principal is a user, a group or a service principal. Go back and choose one.".into(),
        )
        .into());
    };
    let name = name.trim();
    if let Ok(id) = name.parse::<uuid::Uuid>() {
        return Ok(Some(PrincipalRef { kind, id }));
    }
    let wanted = name_key(name);
    let found = match kind {
        PrincipalKind::User => {
            let query = UserQuery {
                prefix: Some(name.to_owned()),
                limit: Some(2),
                ..UserQuery::default()
            };
            let Json(found) = crate::routes::users::list_users(
                State(state.clone()),
                me.caller.clone(),
                ApiQuery(query),
            )
            .await?;
            found
                .items
                .into_iter()
                .find(|u| {
                    name_key(&u.user_name) == wanted
                        || u.email.as_deref().is_some_and(|e| name_key(e) == wanted)
                })
                .map(|u| PrincipalRef::user(u.id))
        }
        PrincipalKind::Group => {
            let query = GroupQuery {
                prefix: Some(name.to_owned()),
                cursor: None,
                limit: Some(portcullis_core::page::MAX_LIMIT),
            };
            let Json(found) = crate::routes::groups::list_groups(
                State(state.clone()),
                me.caller.clone(),
                ApiQuery(query),
            )
            .await?;
            found
                .items
                .into_iter()
                .find(|g| name_key(&g.name) == wanted)
                .map(|g| PrincipalRef::group(g.id))
        }
        PrincipalKind::ServicePrincipal => {
            // Tenants have few service principals and the API lists them without a search.
            let mut cursor = None;
            loop {
                let params = portcullis_api::tenants::ListParams {
                    cursor,
                    limit: Some(portcullis_core::page::MAX_LIMIT),
                };
                let Json(page) = crate::routes::service_principals::list_service_principals(
                    State(state.clone()),
                    me.caller.clone(),
                    ApiQuery(params),
                )
                .await?;
                if let Some(sp) = page.items.iter().find(|s| name_key(&s.name) == wanted) {
                    break Some(PrincipalRef::service_principal(sp.id));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break None,
                }
            }
        }
    };
    Ok(found)
}

pub(super) fn no_such_principal(kind: &str, name: &str) -> String {
    let kind = kind.replace('_', " ");
    format!("There is no {kind} named “{name}” in this organisation. Check the name.")
}

// ---------------------------------------------------------------------------------------------
// Role assignments

#[derive(Debug, Default, Deserialize)]
pub(super) struct AssignmentsQuery {
    #[serde(default)]
    role: String,
    after: Option<String>,
    done: Option<String>,
}

/// One row of the assignments table, with names looked up.
struct AssignmentRow {
    assignment: RoleAssignment,
    principal: String,
    role: String,
    scope: String,
    /// `in force`, `scheduled` or `ended`.
    status: &'static str,
}

#[derive(Template)]
#[template(path = "console/access.html")]
struct AssignmentsPage<'a> {
    frame: Frame<'a>,
    roles: Vec<RoleChoice>,
    role: &'a str,
    rows: Vec<AssignmentRow>,
    next: Option<String>,
    first_page: Option<String>,
    notice: Option<&'static str>,
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "assigned" => "The role was assigned. It takes effect on every node within moments.",
        "removed" => "The assignment was removed; what it granted has stopped.",
        _ => return None,
    })
}

fn status_of(assignment: &RoleAssignment, now: OffsetDateTime) -> &'static str {
    if assignment.is_in_effect(now) {
        "in force"
    } else if assignment.starts_at.is_some_and(|at| now < at) {
        "scheduled"
    } else {
        "ended"
    }
}

pub(super) async fn assignments(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<AssignmentsQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let choices = role_choices(&state, &me).await?;
    let role = query.role.trim();
    let role_filter = if role.is_empty() {
        None
    } else {
        Some(role.parse::<RoleRef>().map_err(|_| {
            PageError::BadRequest(
                "That is not one of the roles offered. Choose one from the list.".into(),
            )
        })?)
    };
    let api_query = AssignmentQuery {
        principal_kind: None,
        principal_id: None,
        role: role_filter,
        scope: None,
        cursor: query.after.clone(),
        limit: Some(PAGE_SIZE),
    };
    let Json(page) =
        roles::list_role_assignments(State(state.clone()), me.caller.clone(), ApiQuery(api_query))
            .await?;
    let now = state.clock.now();
    let holders: Vec<PrincipalRef> = page.items.iter().map(|a| a.principal).collect();
    let names = Names::of(&state, &me, &holders).await?;
    let mut rows = Vec::with_capacity(page.items.len());
    for assignment in page.items {
        rows.push(AssignmentRow {
            principal: names.name(assignment.principal),
            role: role_label(&choices, &assignment.role),
            scope: crate::pages::scope_words(&assignment.scope),
            status: status_of(&assignment, now),
            assignment,
        });
    }
    let here = format!("/t/{}/console/access", me.tenant());
    let page = AssignmentsPage {
        frame: me.frame(Section::Access),
        roles: choices,
        role,
        rows,
        next: page
            .next_cursor
            .as_deref()
            .map(|c| list_link(&here, &[("role", role)], Some(c))),
        first_page: query
            .after
            .is_some()
            .then(|| list_link(&here, &[("role", role)], None)),
        notice: done_notice(query.done.as_deref()),
    };
    Ok(me.page(&page))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AssignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default = "user_kind")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
}

fn user_kind() -> String {
    "user".into()
}

#[derive(Template)]
#[template(path = "console/assign.html")]
struct AssignPage<'a> {
    frame: Frame<'a>,
    roles: Vec<RoleChoice>,
    form: AssignForm,
    error: Option<String>,
}

/// The form to assign a role; a link may fill in the principal (`?kind=user&name=alice`).
pub(super) async fn assign_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(form): Query<AssignForm>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let page = AssignPage {
        frame: me.frame(Section::Access),
        roles: role_choices(&state, &me).await?,
        form: AssignForm {
            scope: if form.scope.is_empty() {
                "tenant".into()
            } else {
                form.scope
            },
            ..form
        },
        error: None,
    };
    Ok(me.page(&page))
}

/// A time from a `datetime-local` field, which the form says is UTC.
fn utc_field(field: &str, text: &str) -> Result<Option<OffsetDateTime>, String> {
    let Some(text) = given(text) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(&text, &format)
        .map(|at| Some(at.assume_utc()))
        .map_err(|_| format!("The {field} must be a date and time such as 2027-01-31T09:00."))
}

pub(super) async fn assign(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<AssignForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let refused = async |me: &Console, form: AssignForm, error: String| {
        let page = AssignPage {
            frame: me.frame(Section::Access),
            roles: role_choices(&state, me).await?,
            form,
            error: Some(error),
        };
        Ok::<_, ConsoleError>((StatusCode::UNPROCESSABLE_ENTITY, me.page(&page)).into_response())
    };
    let Some(principal) = find_principal(&state, &me, &form.kind, &form.name).await? else {
        let error = no_such_principal(&form.kind, form.name.trim());
        return refused(&me, form, error).await;
    };
    let Ok(role) = form.role.parse::<RoleRef>() else {
        return refused(&me, form, "Choose one of the roles offered.".into()).await;
    };
    let scope = match form.scope.trim().parse::<Scope>() {
        Ok(scope) => scope,
        Err(e) => {
            let error = format!("The scope {}.", e.message);
            return refused(&me, form, error).await;
        }
    };
    let window = utc_field("start", &form.starts_at)
        .and_then(|starts| Ok((starts, utc_field("end", &form.ends_at)?)));
    let (starts_at, ends_at) = match window {
        Ok(window) => window,
        Err(error) => return refused(&me, form, error).await,
    };
    let body = CreateRoleAssignment {
        principal,
        role,
        scope: Some(scope),
        starts_at,
        ends_at,
    };
    match super::on_the_form(
        roles::create_role_assignment(State(state.clone()), me.caller.clone(), ApiJson(body)).await,
    )? {
        Ok(_) => Ok(
            Redirect::to(&format!("/t/{}/console/access?done=assigned", me.tenant()))
                .into_response(),
        ),
        Err(error) => refused(&me, form, error).await,
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
    let id = id.parse::<RoleAssignmentId>().map_err(|_| {
        PageError::NotFound("There is no such assignment. It may have been removed already.")
    })?;
    roles::delete_role_assignment(State(state), me.caller.clone(), ApiPath(id)).await?;
    Ok(Redirect::to(&format!("/t/{}/console/access?done=removed", me.tenant())).into_response())
}

/// An assignment has no page of its own: it is a row of the list.
pub(super) async fn to_list(Path((tenant, _)): Path<(String, String)>) -> Redirect {
    Redirect::to(&format!("/t/{tenant}/console/access"))
}

// ---------------------------------------------------------------------------------------------
// Roles

/// A role and what it allows, grouped by resource type and plane.
struct RoleCard {
    /// The editor of a custom role.
    href: Option<String>,
    label: String,
    about: String,
    builtin: bool,
    groups: Vec<PermissionGroup>,
}

/// Action names within a type, with how far each reaches (data plane only).
type Reaches = Vec<(String, Option<&'static str>)>;

struct PermissionGroup {
    resource_type: String,
    plane: &'static str,
    actions: Reaches,
}

#[derive(Template)]
#[template(path = "console/roles.html")]
struct RolesPage<'a> {
    frame: Frame<'a>,
    roles: Vec<RoleCard>,
}

fn depth_words(depth: Depth) -> &'static str {
    match depth {
        Depth::Own => "what they own",
        Depth::BusinessUnit => "their business unit",
        Depth::BusinessUnitTree => "their unit and those below",
        Depth::Tenant => "everywhere in scope",
    }
}

/// Groups actions (`document.read`, `portcullis:user.create`) by type and plane, in order.
fn grouped<'a>(
    actions: impl IntoIterator<Item = (&'a str, Option<Depth>)>,
) -> Vec<PermissionGroup> {
    let mut by_type: BTreeMap<(String, &'static str), Reaches> = BTreeMap::new();
    for (name, depth) in actions {
        let own = Action::from_qualified(name).or_else(|| name.parse::<Action>().ok());
        let (resource_type, action, plane) = match own {
            Some(own) => {
                let (ty, action) = own
                    .as_str()
                    .split_once('.')
                    .unwrap_or(("portcullis", own.as_str()));
                let plane = match own.plane() {
                    Plane::Control => "control plane",
                    Plane::Data => "data plane",
                };
                (format!("portcullis:{ty}"), action.to_owned(), plane)
            }
            None => {
                let (ty, action) = name.split_once('.').unwrap_or((name, ""));
                (ty.to_owned(), action.to_owned(), "data plane")
            }
        };
        let reach = if own.is_some() {
            None
        } else {
            depth.map(depth_words)
        };
        by_type
            .entry((resource_type, plane))
            .or_default()
            .push((action, reach));
    }
    by_type
        .into_iter()
        .map(|((resource_type, plane), mut actions)| {
            actions.sort();
            PermissionGroup {
                resource_type,
                plane,
                actions,
            }
        })
        .collect()
}

pub(super) async fn roles_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let Json(builtin) = roles::list_roles(State(state.clone()), me.caller.clone()).await?;
    let Json(custom) =
        resources::list_custom_roles(State(state.clone()), me.caller.clone()).await?;
    let mut cards: Vec<RoleCard> = builtin
        .items
        .into_iter()
        .map(|role| RoleCard {
            label: role.name.title().to_owned(),
            about: role.description.to_owned(),
            builtin: true,
            href: None,
            groups: grouped(role.permissions.iter().map(|a| (*a, None))),
        })
        .collect();
    let mut custom: Vec<CustomRole> = custom.items;
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    cards.extend(custom.iter().map(|role| {
        RoleCard {
            label: role.name.clone(),
            about: role.description.clone().unwrap_or_default(),
            builtin: false,
            href: Some(format!("/t/{}/console/roles/{}", me.tenant(), role.id)),
            groups: grouped(
                role.permissions
                    .iter()
                    .map(|p| (p.action.as_str(), Some(p.depth))),
            ),
        }
    }));
    let page = RolesPage {
        frame: me.frame(Section::Roles),
        roles: cards,
    };
    Ok(me.page(&page))
}

// ---------------------------------------------------------------------------------------------
// Access explorer

#[derive(Debug, Default, Deserialize)]
pub(super) struct ExplorerQuery {
    #[serde(default = "user_kind")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    /// `check` (why) or `who` (who can).
    #[serde(default)]
    ask: String,
    after: Option<String>,
}

/// One node of the drawn path.
struct Step {
    /// What the node is: Principal, Group, Assignment, Role, Permission, Scope, Share, …
    what: &'static str,
    label: String,
    detail: Option<String>,
    /// The node where a refusal broke the path.
    broken: bool,
}

struct Explained {
    allowed: bool,
    reason_text: String,
    steps: Vec<Step>,
    revision: i64,
}

struct WhoCan {
    names: Vec<(String, String)>,
    next: Option<String>,
    revision: i64,
}

#[derive(Template)]
#[template(path = "console/explorer.html")]
struct ExplorerPage<'a> {
    frame: Frame<'a>,
    query: &'a ExplorerQuery,
    explained: Option<Explained>,
    who_can: Option<WhoCan>,
    error: Option<String>,
}

pub(super) async fn explorer_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<ExplorerQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let resource = ExplorerResource {
        kind: query.resource_type.trim().to_owned(),
        id: query.resource_id.trim().to_owned(),
    };
    let asked = !query.action.trim().is_empty() && !resource.kind.is_empty();
    let (mut explained, mut who_can, mut error) = (None, None, None);
    match query.ask.as_str() {
        "check" if asked => match explain(&state, &me, &query, resource).await {
            Ok(Ok(found)) => explained = Some(found),
            Ok(Err(message)) => error = Some(message),
            Err(refusal) => error = Some(explorer_error(refusal)?),
        },
        "who" if asked => match who_can_page(&state, &me, &query, resource).await {
            Ok(found) => who_can = Some(found),
            Err(refusal) => error = Some(explorer_error(refusal)?),
        },
        "check" | "who" => {
            error = Some("Give the action and the resource type (and the record's id).".into());
        }
        _ => {}
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ExplorerPage {
        frame: me.frame(Section::Explorer),
        query: &query,
        explained,
        who_can,
        error,
    };
    Ok((status, me.page(&page)).into_response())
}

/// A question the API refused as malformed is said on the page; anything else (no right to
/// ask, step-up) is the API's refusal.
fn explorer_error(refusal: ApiError) -> Result<String, ApiError> {
    match refusal {
        refusal @ ApiError::Validation(_) => Ok(super::form_error(&refusal)),
        other => Err(other),
    }
}

async fn explain(
    state: &AppState,
    me: &Console,
    query: &ExplorerQuery,
    resource: ExplorerResource,
) -> Result<Result<Explained, String>, ApiError> {
    let found = find_principal(state, me, &query.kind, &query.name).await;
    let principal = match found {
        Ok(Some(principal)) => principal,
        Ok(None) => return Ok(Err(no_such_principal(&query.kind, query.name.trim()))),
        Err(_) => return Ok(Err("Choose a user, a group or a service principal.".into())),
    };
    let question = AccessQuestion {
        principal,
        action: query.action.trim().to_owned(),
        resource: resource.clone(),
    };
    let Json(answer) =
        explorer::check(State(state.clone()), me.caller.clone(), ApiJson(question)).await?;
    let steps = path_of(
        state,
        me,
        principal,
        &answer,
        &resource,
        query.action.trim(),
    )
    .await;
    Ok(Ok(Explained {
        allowed: answer.allowed,
        reason_text: answer.reason_text,
        steps,
        revision: answer.revision,
    }))
}

/// The answer drawn as a path: principal → groups → assignment → role → permission → scope
/// for a grant (or the nearest miss, broken where it failed), principal → groups → share for a
/// share, principal → deny assignment for a refusal by one.
async fn path_of(
    state: &AppState,
    me: &Console,
    principal: PrincipalRef,
    answer: &AccessAnswer,
    resource: &ExplorerResource,
    action: &str,
) -> Vec<Step> {
    let step = |what, label: String, detail: Option<String>, broken| Step {
        what,
        label,
        detail,
        broken,
    };
    let mut steps = vec![step(
        kind_word(principal.kind),
        principal_name(state, me, principal).await,
        None,
        matches!(
            answer.reason,
            Reason::UnknownSubject | Reason::MembershipCycle
        ),
    )];
    for group in &answer.through {
        steps.push(step(
            "Group",
            principal_name(state, me, *group).await,
            Some("member".into()),
            false,
        ));
    }
    let choices = role_choices(state, me).await.unwrap_or_default();
    let assignment = match &answer.reason {
        Reason::Assignment {
            assignment_id,
            role,
            scope,
            ..
        } => Some((assignment_id, role, Some(scope), None)),
        Reason::ScopeMismatch {
            assignment_id,
            role,
            scope,
        } => Some((assignment_id, role, Some(scope), Some("scope"))),
        Reason::DepthTooShallow {
            assignment_id,
            role,
        } => Some((assignment_id, role, None, Some("depth"))),
        Reason::OutsideWindow {
            assignment_id,
            role,
        } => Some((assignment_id, role, None, Some("window"))),
        _ => None,
    };
    if let Some((id, role, scope, broke)) = assignment {
        steps.push(step(
            "Assignment",
            id.to_string(),
            (broke == Some("window")).then(|| "not in force now".into()),
            broke == Some("window"),
        ));
        steps.push(step("Role", role_label(&choices, role), None, false));
        steps.push(step(
            "Permission",
            action_name(resource, action),
            (broke == Some("depth")).then(|| "does not reach this record".into()),
            broke == Some("depth"),
        ));
        if let Some(scope) = scope {
            steps.push(step(
                "Scope",
                crate::pages::scope_words(scope),
                (broke == Some("scope")).then(|| "does not cover the record".into()),
                broke == Some("scope"),
            ));
        }
    }
    match &answer.reason {
        Reason::Share { share_id, .. } => {
            steps.push(step("Share", share_id.to_string(), None, false));
        }
        Reason::DenyAssignment { name, .. } => {
            steps.push(step(
                "Deny assignment",
                name.clone(),
                Some("refuses it".into()),
                true,
            ));
        }
        Reason::NoRole => steps.push(step("Role", "none with this action".into(), None, true)),
        Reason::Public => steps.push(step(
            "Public action",
            action_name(resource, action),
            None,
            false,
        )),
        _ => {}
    }
    steps.push(step(
        "Resource",
        format!("{} {}", resource.kind, resource.id),
        None,
        false,
    ));
    steps
}

fn kind_word(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Group => "Group",
        PrincipalKind::ServicePrincipal => "Service principal",
    }
}

/// `read` on a `document` is `document.read`; an action given in full stays as given.
fn action_name(resource: &ExplorerResource, action: &str) -> String {
    if action.contains('.') {
        action.to_owned()
    } else {
        format!("{}.{action}", resource.kind)
    }
}

async fn who_can_page(
    state: &AppState,
    me: &Console,
    query: &ExplorerQuery,
    resource: ExplorerResource,
) -> Result<WhoCan, ApiError> {
    let question = WhoCanQuestion {
        action: query.action.trim().to_owned(),
        resource,
        kinds: None,
        cursor: query.after.clone(),
        limit: Some(PAGE_SIZE),
    };
    let Json(answer) =
        explorer::who_can(State(state.clone()), me.caller.clone(), ApiJson(question)).await?;
    let known = Names::of(state, me, &answer.principals).await?;
    let names: Vec<(String, String)> = answer
        .principals
        .iter()
        .map(|principal| (kind_word(principal.kind).to_owned(), known.name(*principal)))
        .collect();
    let here = format!("/t/{}/console/access/explorer", me.tenant());
    let params = [
        ("ask", "who"),
        ("action", query.action.trim()),
        ("resource_type", query.resource_type.trim()),
        ("resource_id", query.resource_id.trim()),
    ];
    Ok(WhoCan {
        names,
        next: answer
            .next_cursor
            .as_deref()
            .map(|c| list_link(&here, &params, Some(c))),
        revision: answer.revision,
    })
}
