//! The console's records and shares: the tenant's records of each resource type, found by the
//! start of their id a page at a time; a record's owner, unit and environment, changed from a
//! form; its shares with people and groups, given and taken back; and the record deleted. All
//! through the API's handlers (`record.read` to see, `record.write` to change), so the engine
//! hears of every change through the same change feed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::resources::{RecordBody, RecordQuery, ShareBody};
use portcullis_api::tenants::ListParams;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::page::MAX_LIMIT;
use portcullis_core::resources::{RecordEntry, ResourceType};
use portcullis_core::{BusinessUnitId, EnvironmentId, ShareId};

use super::access::{Names, find_principal, no_such_principal};
use super::{Console, ConsoleError, CsrfForm, Frame, Section, list_link};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::directory;
use crate::routes::resources as api;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

/// A record id as one path segment: it may hold `/`, `?`, `#` or spaces.
fn segment(text: &str) -> String {
    crate::pages::urlencode(text).replace('/', "%2F")
}

/// The console address of a record.
fn record_link(tenant: &str, resource_type: &str, external_id: &str) -> String {
    format!(
        "/t/{tenant}/console/records/{resource_type}/{}",
        segment(external_id)
    )
}

/// Names of the units and environments a record may be placed in, for the forms' choices and
/// the tables' words.
struct Places {
    units: Vec<(BusinessUnitId, String)>,
    environments: Vec<(EnvironmentId, String)>,
}

impl Places {
    async fn load(state: &AppState, me: &Console) -> Result<Self, ConsoleError> {
        let all = || ListParams {
            cursor: None,
            limit: Some(MAX_LIMIT),
        };
        let Json(units) = directory::list_business_units(
            State(state.clone()),
            me.caller.clone(),
            ApiQuery(all()),
        )
        .await?;
        let Json(environments) =
            directory::list_environments(State(state.clone()), me.caller.clone(), ApiQuery(all()))
                .await?;
        Ok(Self {
            units: units.items.into_iter().map(|u| (u.id, u.name)).collect(),
            environments: environments
                .items
                .into_iter()
                .map(|e| (e.id, e.name))
                .collect(),
        })
    }

    fn unit(&self, id: BusinessUnitId) -> String {
        self.units
            .iter()
            .find(|(unit, _)| *unit == id)
            .map_or_else(|| id.to_string(), |(_, name)| name.clone())
    }

    fn environment(&self, id: Option<EnvironmentId>) -> String {
        match id {
            None => "—".to_owned(),
            Some(id) => self
                .environments
                .iter()
                .find(|(environment, _)| *environment == id)
                .map_or_else(|| id.to_string(), |(_, name)| name.clone()),
        }
    }
}

fn principal_link(tenant: &str, principal: PrincipalRef) -> Option<String> {
    let section = match principal.kind.as_str() {
        "user" => "users",
        "group" => "groups",
        _ => return None,
    };
    Some(format!("/t/{tenant}/console/{section}/{}", principal.id))
}

/// A record as a table row or a page shows it: names, not ids.
struct Shown {
    external_id: String,
    link: String,
    owner: String,
    owner_kind: &'static str,
    owner_link: Option<String>,
    unit: String,
    environment: String,
    updated: String,
}

impl Shown {
    fn of(me: &Console, names: &Names, places: &Places, record: &RecordEntry) -> Self {
        Self {
            external_id: record.external_id.clone(),
            link: record_link(me.tenant(), &record.resource_type, &record.external_id),
            owner: names.name(record.owner),
            owner_kind: if record.owner.kind.as_str() == "group" {
                "group"
            } else {
                "user"
            },
            owner_link: principal_link(me.tenant(), record.owner),
            unit: places.unit(record.business_unit_id),
            environment: places.environment(record.environment_id),
            updated: crate::pages::minute(&record.updated_at),
        }
    }
}

/// Where a record sits and who owns it: the register form on the list and the move form on
/// a record's page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RecordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    external_id: String,
    /// `user` or `group`.
    #[serde(default)]
    owner_kind: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    business_unit: String,
    /// Empty for none.
    #[serde(default)]
    environment: String,
    /// Set by the form on a record's page, so a refusal is shown there.
    #[serde(default)]
    from_record: bool,
}

#[derive(Template)]
#[template(path = "console/records.html")]
struct ListPage<'a> {
    frame: Frame<'a>,
    types: Vec<String>,
    chosen: Option<String>,
    q: &'a str,
    rows: Vec<Shown>,
    next: Option<String>,
    first_page: Option<String>,
    places: Places,
    form: RecordForm,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

/// What the list page shows besides the records: the search, and the register form.
struct Listing<'a> {
    resource_type: Option<String>,
    q: &'a str,
    after: Option<String>,
    form: RecordForm,
    error: Option<String>,
}

async fn list_page(
    state: &AppState,
    me: &Console,
    listing: Listing<'_>,
) -> Result<Response, ConsoleError> {
    let Json(types) = api::list_resource_types(State(state.clone()), me.caller.clone()).await?;
    let types: Vec<String> = types.items.into_iter().map(|t| t.name).collect();
    let chosen = listing.resource_type.or_else(|| types.first().cloned());
    let places = Places::load(state, me).await?;
    let (mut rows, mut next) = (Vec::new(), None);
    if let Some(resource_type) = &chosen {
        let query = RecordQuery {
            prefix: super::given(listing.q),
            cursor: listing.after.clone(),
            limit: Some(PAGE_SIZE),
        };
        let Json(page) = api::list_records(
            State(state.clone()),
            me.caller.clone(),
            ApiPath(resource_type.clone()),
            ApiQuery(query),
        )
        .await?;
        let owners: Vec<PrincipalRef> = page.items.iter().map(|r| r.owner).collect();
        let names = Names::of(state, me, &owners).await?;
        rows = page
            .items
            .iter()
            .map(|record| Shown::of(me, &names, &places, record))
            .collect();
        let here = format!("/t/{}/console/records/{resource_type}", me.tenant());
        next = page
            .next_cursor
            .as_deref()
            .map(|c| list_link(&here, &[("q", listing.q)], Some(c)));
    }
    let first_page = listing.after.is_some().then(|| {
        let here = format!(
            "/t/{}/console/records/{}",
            me.tenant(),
            chosen.as_deref().unwrap_or_default()
        );
        list_link(&here, &[("q", listing.q)], None)
    });
    let status = if listing.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ListPage {
        frame: me.frame(Section::Roles),
        types,
        chosen,
        q: listing.q,
        rows,
        next,
        first_page,
        places,
        form: listing.form,
        error: listing.error,
    };
    Ok((status, me.page(&page)).into_response())
}

fn new_record_form() -> RecordForm {
    RecordForm {
        owner_kind: "user".into(),
        ..RecordForm::default()
    }
}

/// Where the list is: `/console/records` (the first type) or `/console/records/{type}`.
#[derive(Deserialize)]
pub(super) struct ListPath {
    tenant: String,
    resource_type: Option<String>,
}

/// A type's records, searched by the start of their id.
pub(super) async fn list(
    State(state): State<AppState>,
    Path(at): Path<ListPath>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<ListQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &at.tenant, &headers, origin, &uri).await?;
    let listing = Listing {
        resource_type: at.resource_type,
        q: query.q.trim(),
        after: query.after.clone(),
        form: new_record_form(),
        error: None,
    };
    list_page(&state, &me, listing).await
}

struct ShareRow {
    id: ShareId,
    principal: String,
    kind: String,
    link: Option<String>,
    actions: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/record.html")]
struct RecordPage<'a> {
    frame: Frame<'a>,
    resource_type: ResourceType,
    record: Shown,
    /// The record's address under the console, for the forms on its page.
    base: String,
    /// Each of the type's actions, with the access explorer asking who may do it to the record.
    who_can: Vec<(String, String)>,
    created: String,
    shares: Vec<ShareRow>,
    places: Places,
    form: RecordForm,
    share: ShareForm,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct DetailQuery {
    done: Option<String>,
}

/// A share being given: to whom, and which of the type's actions.
#[derive(Default)]
struct ShareForm {
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl ShareForm {
    fn from_fields(fields: &[(String, String)]) -> (String, Self) {
        let one = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let form = Self {
            kind: one("kind"),
            name: one("name"),
            actions: fields
                .iter()
                .filter(|(k, _)| k == "action")
                .map(|(_, v)| v.clone())
                .collect(),
        };
        (one("csrf"), form)
    }

    fn ticked(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }
}

async fn record_page(
    state: &AppState,
    me: &Console,
    (resource_type, external_id): (String, String),
    edits: (Option<RecordForm>, ShareForm),
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<Response, ConsoleError> {
    let record = match api::get_record(
        State(state.clone()),
        me.caller.clone(),
        ApiPath((resource_type.clone(), external_id.clone())),
    )
    .await
    {
        Ok(Json(record)) => record,
        Err(ApiError::NotFound) => {
            return Err(PageError::NotFound(
                "There is no such record. The records page lists each type's records.",
            )
            .into());
        }
        Err(other) => return Err(other.into()),
    };
    let ty = api::get_resource_type(
        State(state.clone()),
        me.caller.clone(),
        ApiPath(resource_type.clone()),
    )
    .await?
    .body;
    let Json(shares) = api::list_shares(
        State(state.clone()),
        me.caller.clone(),
        ApiPath((resource_type.clone(), external_id.clone())),
    )
    .await?;
    let places = Places::load(state, me).await?;
    let named: Vec<PrincipalRef> = shares
        .items
        .iter()
        .map(|s| s.principal)
        .chain([record.owner])
        .collect();
    let names = Names::of(state, me, &named).await?;
    let rows = shares
        .items
        .into_iter()
        .map(|share| ShareRow {
            id: share.id,
            principal: names.name(share.principal),
            kind: share.principal.kind.as_str().replace('_', " "),
            link: principal_link(me.tenant(), share.principal),
            actions: share.actions,
        })
        .collect();
    let shown = Shown::of(me, &names, &places, &record);
    let (form, share) = edits;
    let form = form.unwrap_or_else(|| RecordForm {
        external_id: record.external_id.clone(),
        owner_kind: shown.owner_kind.to_owned(),
        owner: shown.owner.clone(),
        business_unit: record.business_unit_id.to_string(),
        environment: record
            .environment_id
            .map(|e| e.to_string())
            .unwrap_or_default(),
        ..RecordForm::default()
    });
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = RecordPage {
        frame: me.frame(Section::Roles),
        base: shown.link.clone(),
        who_can: ty
            .actions
            .iter()
            .map(|action| {
                let asked = format!("{}.{}", ty.name, action.name);
                let link = list_link(
                    &format!("/t/{}/console/access/explorer", me.tenant()),
                    &[
                        ("ask", "who"),
                        ("action", &asked),
                        ("resource_type", &ty.name),
                        ("resource_id", &record.external_id),
                    ],
                    None,
                );
                (action.name.clone(), link)
            })
            .collect(),
        resource_type: ty,
        record: shown,
        created: crate::pages::minute(&record.created_at),
        shares: rows,
        places,
        form,
        share,
        error,
        notice,
    };
    Ok((status, me.page(&page)).into_response())
}

fn share_defaults() -> ShareForm {
    ShareForm {
        kind: "user".into(),
        ..ShareForm::default()
    }
}

/// `/console/records/{type}/{id}`: one record, its shares, and the forms to change them.
pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, resource_type, external_id)): Path<(String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DetailQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let notice = match query.done.as_deref() {
        Some("saved") => Some("The record was saved; decisions follow it now, on every node."),
        Some("shared") => Some("The record was shared."),
        Some("unshared") => Some("The share was taken back."),
        _ => None,
    };
    record_page(
        &state,
        &me,
        (resource_type, external_id),
        (None, share_defaults()),
        None,
        notice,
    )
    .await
}

fn back_to_record(me: &Console, resource_type: &str, external_id: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "{}?done={done}",
        record_link(me.tenant(), resource_type, external_id)
    ))
    .into_response()
}

/// The owner, unit and environment the form names, or what is wrong with them.
async fn placement(
    state: &AppState,
    me: &Console,
    form: &RecordForm,
) -> Result<Result<RecordBody, String>, ConsoleError> {
    if !matches!(form.owner_kind.as_str(), "user" | "group") {
        return Ok(Err(
            "The owner is a user or a group (a team): choose one.".to_owned()
        ));
    }
    let name = form.owner.trim();
    let Some(owner) = find_principal(state, me, &form.owner_kind, name).await? else {
        return Ok(Err(no_such_principal(&form.owner_kind, name)));
    };
    let Ok(business_unit_id) = form.business_unit.parse::<BusinessUnitId>() else {
        return Ok(Err(
            "Choose the business unit the record belongs to.".to_owned()
        ));
    };
    let environment_id = match form.environment.trim() {
        "" => None,
        id => match id.parse::<EnvironmentId>() {
            Ok(id) => Some(id),
            Err(_) => return Ok(Err("Choose an environment, or none.".to_owned())),
        },
    };
    Ok(Ok(RecordBody {
        owner,
        business_unit_id,
        environment_id,
    }))
}

/// `POST /console/records/{type}`: registers a record, or moves one to another owner, unit or
/// environment (the API's `PUT`, which does both).
pub(super) async fn save(
    State(state): State<AppState>,
    Path((tenant, resource_type)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RecordForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let external_id = form.external_id.trim().to_owned();
    let refusal = match placement(&state, &me, &form).await? {
        Err(error) => error,
        Ok(body) => {
            let saved = api::put_record(
                State(state.clone()),
                me.caller.clone(),
                ApiPath((resource_type.clone(), external_id.clone())),
                ApiJson(body),
            )
            .await;
            match super::on_the_form(saved)? {
                Ok(_) => return Ok(back_to_record(&me, &resource_type, &external_id, "saved")),
                Err(error) => error,
            }
        }
    };
    if form.from_record {
        let edits = (Some(form), share_defaults());
        return record_page(
            &state,
            &me,
            (resource_type, external_id),
            edits,
            Some(refusal),
            None,
        )
        .await;
    }
    let listing = Listing {
        resource_type: Some(resource_type),
        q: "",
        after: None,
        form,
        error: Some(refusal),
    };
    list_page(&state, &me, listing).await
}

/// `POST /console/records/{type}/{id}/delete`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, resource_type, external_id)): Path<(String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    match api::delete_record(
        State(state),
        me.caller.clone(),
        ApiPath((resource_type.clone(), external_id)),
    )
    .await
    {
        Ok(_) | Err(ApiError::NotFound) => Ok(Redirect::to(&format!(
            "/t/{}/console/records/{resource_type}",
            me.tenant()
        ))
        .into_response()),
        Err(other) => Err(other.into()),
    }
}

/// `POST /console/records/{type}/{id}/shares`: shares the ticked actions with a user, a group
/// or a service principal, replacing what it was given before.
pub(super) async fn share(
    State(state): State<AppState>,
    Path((tenant, resource_type, external_id)): Path<(String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let (csrf, form) = ShareForm::from_fields(&fields);
    let me = Console::post(&state, &tenant, &headers, origin, &csrf).await?;
    let refusal = if !matches!(form.kind.as_str(), "user" | "group" | "service_principal") {
        "Share with a user, a group or a service principal: choose one.".to_owned()
    } else {
        let name = form.name.trim();
        match find_principal(&state, &me, &form.kind, name).await? {
            None => no_such_principal(&form.kind, name),
            Some(principal) => {
                let body = ShareBody {
                    principal,
                    actions: form.actions.clone(),
                };
                let shared = api::create_share(
                    State(state.clone()),
                    me.caller.clone(),
                    ApiPath((resource_type.clone(), external_id.clone())),
                    ApiJson(body),
                )
                .await;
                match super::on_the_form(shared)? {
                    Ok(_) => {
                        return Ok(back_to_record(&me, &resource_type, &external_id, "shared"));
                    }
                    Err(error) => error,
                }
            }
        }
    };
    record_page(
        &state,
        &me,
        (resource_type, external_id),
        (None, form),
        Some(refusal),
        None,
    )
    .await
}

/// `POST /console/records/{type}/{id}/shares/{share}/remove`.
pub(super) async fn unshare(
    State(state): State<AppState>,
    Path((tenant, resource_type, external_id, share)): Path<(String, String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let share: ShareId = share
        .parse()
        .map_err(|_| PageError::NotFound("That share was taken back already."))?;
    match api::delete_share(State(state), me.caller.clone(), ApiPath(share)).await {
        Ok(_) | Err(ApiError::NotFound) => Ok(back_to_record(
            &me,
            &resource_type,
            &external_id,
            "unshared",
        )),
        Err(other) => Err(other.into()),
    }
}
