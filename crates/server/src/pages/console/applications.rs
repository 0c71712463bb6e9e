//! The console's applications: service principals and their settings as OAuth clients. Create
//! one for what it is (a workload, a web application, a browser or native app, a device), edit
//! its redirect URIs, grants, scopes and token lifetimes, rotate its secrets (issue the next,
//! switch over, revoke the old) and disable or delete it. Every page calls the admin API's
//! handler for the same operation (`routes::service_principals`) as the person, so a client of
//! the admin API still needs `role.assign`, as on the API.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::service_principals::{
    CreateApiKey, CreateServicePrincipal, UpdateServicePrincipal,
};
use portcullis_api::tenants::ListParams;
use portcullis_core::identity::{ApiKey, ServicePrincipal};
use portcullis_core::jose::SigningAlgorithm;
use portcullis_core::oauth::{ApplicationKind, ClientSettings, ClientType, GrantType};
use portcullis_core::{ApiKeyId, ServicePrincipalId};

use super::{
    Console, ConsoleError, CsrfForm, Frame, Section, StateForm, VersionForm, as_shown, given,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::service_principals as api;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

fn application_id(text: &str) -> Result<ServicePrincipalId, PageError> {
    text.parse().map_err(|_| {
        PageError::NotFound(
            "There is no such application. The applications page lists the tenant's applications.",
        )
    })
}

fn back_to(me: &Console, id: ServicePrincipalId, done: &str) -> Response {
    Redirect::to(&format!(
        "/t/{}/console/applications/{id}?done={done}",
        me.tenant()
    ))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// The list

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
}

struct Row {
    application: ServicePrincipal,
    /// The OAuth grants in words, or `None` for keys only.
    grants: Option<String>,
}

#[derive(Template)]
#[template(path = "console/applications.html")]
struct ListPage<'a> {
    frame: Frame<'a>,
    rows: Vec<Row>,
    next: Option<String>,
    first_page: Option<String>,
}

fn grant_words(settings: &ClientSettings) -> String {
    settings
        .grant_types
        .iter()
        .map(|g| grant_name(*g).replace('_', " "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn grant_name(grant: GrantType) -> &'static str {
    match grant {
        GrantType::ClientCredentials => "client_credentials",
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::DeviceCode => "device_code",
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<ListQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let params = ListParams {
        cursor: query.after.clone(),
        limit: Some(PAGE_SIZE),
    };
    let Json(page) =
        api::list_service_principals(State(state.clone()), me.caller.clone(), ApiQuery(params))
            .await?;
    // One read for the page's client settings; listing them was `service_principal.read`.
    let ids: Vec<_> = page.items.iter().map(|a| a.id).collect();
    let settings = state
        .store
        .oauth_clients(me.caller.tenant_id(), &ids)
        .await?;
    let rows = page
        .items
        .into_iter()
        .map(|application| Row {
            grants: settings.get(&application.id).map(grant_words),
            application,
        })
        .collect();
    let here = format!("/t/{}/console/applications", me.tenant());
    let page = ListPage {
        frame: me.frame(Section::Applications),
        rows,
        next: page
            .next_cursor
            .as_deref()
            .map(|c| super::list_link(&here, &[], Some(c))),
        first_page: query
            .after
            .is_some()
            .then(|| super::list_link(&here, &[], None)),
    };
    Ok(me.page(&page))
}

// ---------------------------------------------------------------------------------------------
// A new one

#[derive(Debug, Default, Deserialize)]
pub(super) struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    resource: String,
}

#[derive(Template)]
#[template(path = "console/application_new.html")]
struct NewPage<'a> {
    frame: Frame<'a>,
    form: NewForm,
    error: Option<String>,
}

pub(super) async fn new_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let page = NewPage {
        frame: me.frame(Section::Applications),
        form: NewForm {
            kind: "web".into(),
            ..NewForm::default()
        },
        error: None,
    };
    Ok(me.page(&page))
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<NewForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let refused = |me: &Console, form: NewForm, error: String| {
        let page = NewPage {
            frame: me.frame(Section::Applications),
            form,
            error: Some(error),
        };
        (StatusCode::UNPROCESSABLE_ENTITY, me.page(&page)).into_response()
    };
    let Some(kind) = ApplicationKind::parse(&form.kind) else {
        return Ok(refused(&me, form, "Choose what the application is.".into()));
    };
    // Settings the API would refuse are refused here, before the principal is made, so a
    // mistyped redirect URI leaves no half-made application behind.
    let settings = match kind.starting_settings(given(&form.redirect_uri), given(&form.resource)) {
        Ok(settings) => settings,
        Err(refusal) => {
            let error = super::form_error(&ApiError::Validation(refusal));
            return Ok(refused(&me, form, error));
        }
    };
    let body = CreateServicePrincipal {
        name: form.name.trim().to_owned(),
        description: given(&form.description),
        external_id: None,
    };
    let created =
        match api::create_service_principal(State(state.clone()), me.caller.clone(), ApiJson(body))
            .await
        {
            Ok(created) => created.body,
            Err(refusal @ (ApiError::Validation(_) | ApiError::Conflict { .. })) => {
                let error = super::form_error(&refusal);
                return Ok(refused(&me, form, error));
            }
            Err(other) => return Err(other.into()),
        };
    if let Some(settings) = settings {
        let saved = api::put_oauth_client(
            State(state.clone()),
            me.caller.clone(),
            ApiPath(created.id),
            ApiJson(settings),
        )
        .await;
        if let Err(refusal) = saved {
            // The principal exists; its page says what is left to mend.
            let error = format!(
                "The application was created, but its client settings were refused: {}",
                super::form_error(&refusal)
            );
            return detail_page(&state, &me, created.id, Some(error), None).await;
        }
    }
    Ok(back_to(&me, created.id, "created"))
}

// ---------------------------------------------------------------------------------------------
// One application

#[derive(Deserialize)]
pub(super) struct DetailQuery {
    done: Option<String>,
}

/// The client settings as the form shows them.
struct ClientForm {
    confidential: bool,
    grants: Vec<(&'static str, &'static str, bool)>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    scopes: String,
    resources: String,
    access_token_seconds: u32,
    refresh_token_seconds: u32,
    refresh_chain_seconds: u32,
    require_consent: bool,
    require_par: bool,
    groups_claim: bool,
    roles_claim: bool,
    signing_alg: &'static str,
    backchannel_logout_uri: String,
    jwks: usize,
}

impl ClientForm {
    fn of(settings: &ClientSettings) -> Self {
        let grants = [
            (
                GrantType::AuthorizationCode,
                "Sign users in (authorization code with PKCE)",
            ),
            (
                GrantType::RefreshToken,
                "Keep them signed in (refresh tokens)",
            ),
            (
                GrantType::ClientCredentials,
                "Tokens for itself (client credentials)",
            ),
            (
                GrantType::DeviceCode,
                "Devices without a browser (device code)",
            ),
        ];
        ClientForm {
            confidential: settings.client_type == ClientType::Confidential,
            grants: grants
                .iter()
                .map(|(g, label)| (grant_name(*g), *label, settings.grant_types.contains(g)))
                .collect(),
            redirect_uris: settings.redirect_uris.join("\n"),
            post_logout_redirect_uris: settings.post_logout_redirect_uris.join("\n"),
            scopes: settings.scopes.join(" "),
            resources: settings.resources.join("\n"),
            access_token_seconds: settings.access_token_seconds,
            refresh_token_seconds: settings.refresh_token_seconds,
            refresh_chain_seconds: settings.refresh_chain_seconds,
            require_consent: settings.require_consent,
            require_par: settings.require_pushed_authorization_requests,
            groups_claim: settings.groups_claim,
            roles_claim: settings.roles_claim,
            signing_alg: match settings.signing_alg {
                SigningAlgorithm::ES256 => "ES256",
                SigningAlgorithm::RS256 => "RS256",
                SigningAlgorithm::EdDSA => "EdDSA",
            },
            backchannel_logout_uri: settings.backchannel_logout_uri.clone().unwrap_or_default(),
            jwks: settings.jwks.len(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/application.html")]
struct DetailPage<'a> {
    frame: Frame<'a>,
    application: ServicePrincipal,
    keys: Vec<ApiKey>,
    client: Option<ClientForm>,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => {
            "The application was created. Give it a secret below if it authenticates with one."
        }
        "saved" => "Your changes were saved.",
        "client" => "The client settings were saved; they apply to the next request.",
        "disabled" => "The application is disabled: its secrets and keys stop working at once.",
        "enabled" => "The application is active again.",
        "revoked" => "The secret was revoked and stops working at once, on every node.",
        _ => return None,
    })
}

async fn detail_page(
    state: &AppState,
    me: &Console,
    id: ServicePrincipalId,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<Response, ConsoleError> {
    let application =
        api::get_service_principal(State(state.clone()), me.caller.clone(), ApiPath(id))
            .await?
            .body;
    let Json(keys) =
        api::list_api_keys(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let client =
        match api::get_oauth_client(State(state.clone()), me.caller.clone(), ApiPath(id)).await {
            Ok(Json(settings)) => Some(ClientForm::of(&settings)),
            Err(ApiError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = DetailPage {
        frame: me.frame(Section::Applications),
        application,
        keys: keys.items,
        client,
        error,
        notice,
    };
    Ok((status, me.page(&page)).into_response())
}

pub(super) async fn detail(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DetailQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let id = application_id(&id)?;
    detail_page(&state, &me, id, None, done_notice(query.done.as_deref())).await
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    csrf: String,
    version: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<EditForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = application_id(&id)?;
    let body = UpdateServicePrincipal {
        name: Some(form.name.trim().to_owned()),
        description: Some(given(&form.description)),
        ..UpdateServicePrincipal::default()
    };
    let saved = api::update_service_principal(
        State(state.clone()),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
        ApiJson(body),
    )
    .await;
    match saved {
        Ok(_) => Ok(back_to(&me, id, "saved")),
        Err(refusal @ ApiError::Validation(_)) => {
            detail_page(&state, &me, id, Some(super::form_error(&refusal)), None).await
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn set_state(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<StateForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = application_id(&id)?;
    let (wanted, done) =
        form.wanted("An application is active or disabled. Go back and choose one.")?;
    let body = UpdateServicePrincipal {
        state: Some(wanted),
        ..UpdateServicePrincipal::default()
    };
    api::update_service_principal(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
        ApiJson(body),
    )
    .await?;
    Ok(back_to(&me, id, done))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VersionForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = application_id(&id)?;
    api::delete_service_principal(
        State(state),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(id),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/console/applications", me.tenant())).into_response())
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[derive(Deserialize)]
pub(super) struct SecretForm {
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days until it expires.
    days: i64,
}

#[derive(Template)]
#[template(path = "console/application_secret.html")]
struct SecretPage<'a> {
    frame: Frame<'a>,
    application: ServicePrincipal,
    prefix: String,
    secret: String,
    expires: String,
}

/// The lifetimes a secret may be given here; the API allows up to 730 days.
const SECRET_DAYS: [i64; 4] = [30, 90, 365, 730];

/// Issues a new secret (an API key, which is also the client secret) and shows it once, never
/// cached. The old ones keep working until revoked, so clients can be switched over first.
pub(super) async fn new_secret(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<SecretForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = application_id(&id)?;
    if !SECRET_DAYS.contains(&form.days) {
        return Err(PageError::BadRequest(
            "A secret lasts 30, 90, 365 or 730 days. Go back and choose one.".into(),
        )
        .into());
    }
    let body = CreateApiKey {
        name: given(&form.name),
        expires_at: Some(state.clock.now() + time::Duration::days(form.days)),
    };
    let issued = match api::create_api_key(
        State(state.clone()),
        me.caller.clone(),
        ApiPath(id),
        ApiJson(body),
    )
    .await
    {
        Ok((_, Json(issued))) => issued,
        Err(refusal @ ApiError::Validation(_)) => {
            return detail_page(&state, &me, id, Some(super::form_error(&refusal)), None).await;
        }
        Err(other) => return Err(other.into()),
    };
    let application = state
        .store
        .service_principal(me.caller.tenant_id(), id)
        .await?;
    let page = SecretPage {
        frame: me.frame(Section::Applications),
        application,
        prefix: issued.api_key.prefix,
        secret: issued.secret,
        expires: issued
            .api_key
            .expires_at
            .map_or_else(|| "never".into(), |at| super::super::minute(&at)),
    };
    Ok(me.page_no_store(&page))
}

pub(super) async fn revoke_secret(
    State(state): State<AppState>,
    Path((tenant, id, key)): Path<(String, String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id = application_id(&id)?;
    let key = key.parse::<ApiKeyId>().map_err(|_| {
        PageError::NotFound("There is no such secret. It may have been revoked already.")
    })?;
    let Json(_) = api::revoke_api_key(State(state), me.caller.clone(), ApiPath((id, key))).await?;
    Ok(back_to(&me, id, "revoked"))
}

// ---------------------------------------------------------------------------------------------
// Client settings

#[derive(Debug, Default, Deserialize)]
pub(super) struct ClientFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client_type: String,
    /// Checked grants, one field each (`grant_authorization_code`, …).
    #[serde(default)]
    grant_authorization_code: Option<String>,
    #[serde(default)]
    grant_refresh_token: Option<String>,
    #[serde(default)]
    grant_client_credentials: Option<String>,
    #[serde(default)]
    grant_device_code: Option<String>,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    resources: String,
    #[serde(default)]
    access_token_seconds: String,
    #[serde(default)]
    refresh_token_seconds: String,
    #[serde(default)]
    refresh_chain_seconds: String,
    #[serde(default)]
    require_consent: Option<String>,
    #[serde(default)]
    require_par: Option<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    roles_claim: Option<String>,
    #[serde(default)]
    signing_alg: String,
    #[serde(default)]
    backchannel_logout_uri: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn seconds(field: &str, text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("The {field} must be a whole number of seconds."))
}

/// The form's fields over the current settings: what the form does not show (the client's
/// public keys) is kept.
fn settings_from(fields: &ClientFields, current: ClientSettings) -> Result<ClientSettings, String> {
    let grants = [
        (
            &fields.grant_authorization_code,
            GrantType::AuthorizationCode,
        ),
        (&fields.grant_refresh_token, GrantType::RefreshToken),
        (
            &fields.grant_client_credentials,
            GrantType::ClientCredentials,
        ),
        (&fields.grant_device_code, GrantType::DeviceCode),
    ]
    .into_iter()
    .filter(|(checked, _)| checked.is_some())
    .map(|(_, grant)| grant)
    .collect();
    Ok(ClientSettings {
        client_type: match fields.client_type.as_str() {
            "public" => ClientType::Public,
            _ => ClientType::Confidential,
        },
        grant_types: grants,
        redirect_uris: lines(&fields.redirect_uris),
        post_logout_redirect_uris: lines(&fields.post_logout_redirect_uris),
        scopes: fields.scopes.split_whitespace().map(String::from).collect(),
        resources: lines(&fields.resources),
        access_token_seconds: seconds("access token lifetime", &fields.access_token_seconds)?,
        refresh_token_seconds: seconds("refresh token lifetime", &fields.refresh_token_seconds)?,
        refresh_chain_seconds: seconds("longest refresh chain", &fields.refresh_chain_seconds)?,
        require_consent: fields.require_consent.is_some(),
        require_pushed_authorization_requests: fields.require_par.is_some(),
        groups_claim: fields.groups_claim.is_some(),
        roles_claim: fields.roles_claim.is_some(),
        signing_alg: match fields.signing_alg.as_str() {
            "RS256" => SigningAlgorithm::RS256,
            "EdDSA" => SigningAlgorithm::EdDSA,
            _ => SigningAlgorithm::ES256,
        },
        backchannel_logout_uri: given(&fields.backchannel_logout_uri),
        ..current
    })
}

pub(super) async fn save_client(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(fields): Form<ClientFields>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &fields.csrf).await?;
    let id = application_id(&id)?;
    let current =
        match api::get_oauth_client(State(state.clone()), me.caller.clone(), ApiPath(id)).await {
            Ok(Json(settings)) => settings,
            Err(ApiError::NotFound) => ClientSettings::default(),
            Err(other) => return Err(other.into()),
        };
    let settings = match settings_from(&fields, current) {
        Ok(settings) => settings,
        Err(error) => return detail_page(&state, &me, id, Some(error), None).await,
    };
    match api::put_oauth_client(
        State(state.clone()),
        me.caller.clone(),
        ApiPath(id),
        ApiJson(settings),
    )
    .await
    {
        Ok(_) => Ok(back_to(&me, id, "client")),
        Err(refusal @ ApiError::Validation(_)) => {
            detail_page(&state, &me, id, Some(super::form_error(&refusal)), None).await
        }
        Err(other) => Err(other.into()),
    }
}
