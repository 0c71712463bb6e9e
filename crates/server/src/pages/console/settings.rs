//! The console's tenant settings: the organisation's name and branding, how people sign in
//! (second factors, passwords, lock-out) and the keys that sign its tokens. Every form calls
//! the admin API's handler for the same operation as the person (`tenant.read` to see them,
//! `tenant.update` to change them, with the step-up the policy for administrators asks for).

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use portcullis_api::signing_keys::{KeyStatus, Rotation, SigningKeySummary};
use portcullis_api::tenants::{BrandingView, UpdateTenant};
use portcullis_core::administrators::{AdministratorPolicy, ApiKeyUse, MfaActions};
use portcullis_core::branding::{Colour, Logo};
use portcullis_core::identity::Tenant;
use portcullis_core::jose::SigningAlgorithm;
use portcullis_core::session::{LockoutPolicy, MfaRequired, SignInSettings, Strength};
use portcullis_store::LogoChange;

use super::{Console, ConsoleError, Frame, Section, as_shown, given};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RequestOrigin};
use crate::pages::PageError;
use crate::routes::{branding, signing_keys, tenants};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage<'a> {
    frame: Frame<'a>,
    tenant: Tenant,
    branding: BrandingView,
    sign_in: SignInSettings,
    administrators: AdministratorPolicy,
    keys: Vec<SigningKeySummary>,
    notice: Option<&'static str>,
    /// What was refused, and in which section (its heading's id).
    error: Option<(&'static str, String)>,
}

impl SettingsPage<'_> {
    fn error_in(&self, section: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(at, _)| *at == section)
            .map(|(_, message)| message.as_str())
    }

    fn mfa_choices(&self) -> [(&'static str, &'static str, bool); 3] {
        let now = self.sign_in.mfa_required;
        [
            (MfaRequired::Nobody, "Nobody: a second factor is optional"),
            (
                MfaRequired::Administrators,
                "Administrators: anyone holding an administrative role",
            ),
            (MfaRequired::Everyone, "Everyone"),
        ]
        .map(|(choice, label)| (choice.as_str(), label, choice == now))
    }

    fn admin_mfa_choices(&self) -> [(&'static str, &'static str, bool); 3] {
        let now = self.administrators.mfa;
        [
            (
                MfaActions::Writes,
                "For every change (reading needs only a sign-in)",
            ),
            (MfaActions::All, "For everything, reading too"),
            (
                MfaActions::None,
                "Never: a password alone may change what the roles allow",
            ),
        ]
        .map(|(choice, label)| (choice.as_str(), label, choice == now))
    }

    fn phishing_resistant(&self) -> bool {
        self.administrators.mfa_strength == Strength::PhishingResistant
    }

    fn keys_for_privileged(&self) -> bool {
        self.administrators.api_keys == ApiKeyUse::Allowed
    }

    fn recent_actions(&self) -> String {
        self.administrators
            .recent_actions
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key_word(status: &KeyStatus) -> &'static str {
    match status {
        KeyStatus::Scheduled => "scheduled",
        KeyStatus::Current => "signing",
        KeyStatus::Retired => "retired",
        KeyStatus::Revoked => "withdrawn",
    }
}

/// The badge style: the key that signs looks active, the withdrawn one disabled.
fn key_badge(status: &KeyStatus) -> &'static str {
    match status {
        KeyStatus::Current | KeyStatus::Scheduled => "active",
        KeyStatus::Retired | KeyStatus::Revoked => "disabled",
    }
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "organisation" => "The organisation's name was saved.",
        "branding" => "The branding was saved; every page of the organisation wears it now.",
        "sign-in" => "The sign-in settings were saved; they apply from the next sign-in.",
        "administrators" => {
            "The rules for administrators were saved; they apply from the next request, on every node."
        }
        "rotated" => {
            "A new signing key was made. It is published first and signs once verifiers have fetched it."
        }
        "emergency" => {
            "A new signing key signs from now on; the old ones are withdrawn and every token they signed stops working."
        }
        _ => return None,
    })
}

#[derive(Deserialize)]
pub(super) struct SettingsQuery {
    done: Option<String>,
}

async fn settings_page(
    state: &AppState,
    me: &Console,
    notice: Option<&'static str>,
    error: Option<(&'static str, String)>,
) -> Result<Response, ConsoleError> {
    let tenant = tenants::get_tenant(
        State(state.clone()),
        me.caller.clone(),
        ApiPath(me.caller.tenant_id()),
    )
    .await?
    .body;
    let Json(branding) = branding::get_branding(State(state.clone()), me.caller.clone()).await?;
    let Json(sign_in) =
        tenants::get_sign_in_settings(State(state.clone()), me.caller.clone()).await?;
    let Json(administrators) =
        tenants::get_administrator_policy(State(state.clone()), me.caller.clone()).await?;
    let Json(keys) =
        signing_keys::list_signing_keys(State(state.clone()), me.caller.clone()).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = SettingsPage {
        frame: me.frame(Section::Settings),
        tenant,
        branding,
        sign_in,
        administrators,
        keys: keys.items,
        notice,
        error,
    };
    Ok((status, me.page(&page)).into_response())
}

fn back(me: &Console, done: &str, section: &str) -> Response {
    Redirect::to(&format!(
        "/t/{}/console/settings?done={done}#{section}",
        me.tenant()
    ))
    .into_response()
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<SettingsQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    settings_page(&state, &me, done_notice(query.done.as_deref()), None).await
}

#[derive(Deserialize)]
pub(super) struct OrganisationForm {
    csrf: String,
    version: i64,
    #[serde(default)]
    display_name: String,
}

pub(super) async fn organisation(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<OrganisationForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let body = UpdateTenant {
        display_name: Some(given(&form.display_name)),
        state: None,
    };
    let saved = tenants::update_tenant(
        State(state.clone()),
        me.caller.clone(),
        as_shown(form.version),
        ApiPath(me.caller.tenant_id()),
        ApiJson(body),
    )
    .await;
    match saved {
        Ok(_) => Ok(back(&me, "organisation", "organisation")),
        Err(refusal @ ApiError::Validation(_)) => {
            let error = ("organisation", super::form_error(&refusal));
            settings_page(&state, &me, None, Some(error)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The branding form's route with a body limit that fits a logo (larger than the usual one).
pub(super) fn with_room_for_a_logo(
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route.layer(axum::extract::DefaultBodyLimit::max(
        branding::BRANDING_BODY_BYTES,
    ))
}

/// The branding form's fields, read from its multipart body.
#[derive(Default)]
struct BrandingFields {
    csrf: String,
    colour: String,
    logo: Option<Vec<u8>>,
    remove_logo: bool,
}

async fn branding_fields(mut body: Multipart) -> Result<BrandingFields, PageError> {
    let unreadable = |_| {
        PageError::BadRequest(
            "The form could not be read (a logo may be at most 100 KiB). Go back and try again."
                .into(),
        )
    };
    let mut fields = BrandingFields::default();
    while let Some(field) = body.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "csrf" => fields.csrf = field.text().await.map_err(unreadable)?,
            "colour" => fields.colour = field.text().await.map_err(unreadable)?,
            "remove_logo" => fields.remove_logo = true,
            "logo" => {
                let bytes = field.bytes().await.map_err(unreadable)?;
                // A file input left empty still sends an empty part.
                if !bytes.is_empty() {
                    fields.logo = Some(bytes.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(fields)
}

pub(super) async fn save_branding(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Multipart,
) -> Result<Response, ConsoleError> {
    let fields = branding_fields(body).await?;
    let me = Console::post(&state, &tenant, &headers, origin, &fields.csrf).await?;
    let refused = |e: portcullis_core::ValidationError| {
        ("branding", super::form_error(&ApiError::Validation(e)))
    };
    let colour = match given(&fields.colour).map(|c| Colour::parse("colour", &c)) {
        Some(Err(e)) => return settings_page(&state, &me, None, Some(refused(e))).await,
        Some(Ok(colour)) => Some(colour),
        None => None,
    };
    let logo = match (fields.logo, fields.remove_logo) {
        (Some(bytes), _) => match Logo::from_upload("logo", bytes) {
            Ok(logo) => LogoChange::Replace(logo),
            Err(e) => return settings_page(&state, &me, None, Some(refused(e))).await,
        },
        (None, true) => LogoChange::Remove,
        (None, false) => LogoChange::Keep,
    };
    branding::set(&state, &me.caller, colour, logo).await?;
    Ok(back(&me, "branding", "branding"))
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    csrf: String,
    mfa_required: String,
    #[serde(default)]
    allow_totp: Option<String>,
    #[serde(default)]
    allow_passkeys: Option<String>,
    min_length: String,
    min_strength: String,
    free_failures: String,
    max_wait_seconds: String,
}

fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("The {field} must be a whole number."))
}

fn sign_in_settings(form: &SignInForm) -> Result<SignInSettings, String> {
    let mut settings = SignInSettings {
        mfa_required: MfaRequired::parse(&form.mfa_required)
            .ok_or("Choose who must use a second factor.")?,
        allow_totp: form.allow_totp.is_some(),
        allow_passkeys: form.allow_passkeys.is_some(),
        lockout: LockoutPolicy {
            free_failures: number("number of free failures", &form.free_failures)?,
            max_wait_seconds: number("longest wait", &form.max_wait_seconds)?,
        },
        ..SignInSettings::default()
    };
    settings.password_policy.min_length = number("shortest password", &form.min_length)?;
    settings.password_policy.min_strength = number("password strength", &form.min_strength)?;
    Ok(settings)
}

pub(super) async fn save_sign_in(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let settings = match sign_in_settings(&form) {
        Ok(settings) => settings,
        Err(error) => return settings_page(&state, &me, None, Some(("sign-in", error))).await,
    };
    match tenants::put_sign_in_settings(State(state.clone()), me.caller.clone(), ApiJson(settings))
        .await
    {
        Ok(_) => Ok(back(&me, "sign-in", "sign-in")),
        Err(refusal @ ApiError::Validation(_)) => {
            let error = ("sign-in", super::form_error(&refusal));
            settings_page(&state, &me, None, Some(error)).await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct AdministratorsForm {
    csrf: String,
    mfa: String,
    #[serde(default)]
    phishing_resistant: Option<String>,
    recent_minutes: String,
    #[serde(default)]
    keys_for_privileged: Option<String>,
}

pub(super) async fn save_administrators(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<AdministratorsForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let Json(current) =
        tenants::get_administrator_policy(State(state.clone()), me.caller.clone()).await?;
    let policy = match (
        MfaActions::parse(&form.mfa),
        number::<u32>("how recent", &form.recent_minutes),
    ) {
        (Some(mfa), Ok(recent_minutes)) => AdministratorPolicy {
            mfa,
            mfa_strength: if form.phishing_resistant.is_some() {
                Strength::PhishingResistant
            } else {
                Strength::Mfa
            },
            recent_minutes,
            api_keys: if form.keys_for_privileged.is_some() {
                ApiKeyUse::Allowed
            } else {
                ApiKeyUse::UnprivilegedOnly
            },
            ..current
        },
        (None, _) => {
            let error = (
                "administrators",
                "Choose when a second factor is needed.".to_owned(),
            );
            return settings_page(&state, &me, None, Some(error)).await;
        }
        (_, Err(error)) => {
            return settings_page(&state, &me, None, Some(("administrators", error))).await;
        }
    };
    match super::on_the_form(
        tenants::put_administrator_policy(State(state.clone()), me.caller.clone(), ApiJson(policy))
            .await,
    )? {
        Ok(_) => Ok(back(&me, "administrators", "administrators")),
        Err(error) => {
            let error = ("administrators", error);
            settings_page(&state, &me, None, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RotateForm {
    csrf: String,
    alg: String,
    #[serde(default)]
    emergency: Option<String>,
}

pub(super) async fn rotate_key(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<RotateForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let alg = SigningAlgorithm::parse(&form.alg).ok_or_else(|| {
        PageError::BadRequest("Choose ES256, RS256 or EdDSA. Go back and choose one.".into())
    })?;
    let rotation = Rotation {
        alg,
        emergency: form.emergency.is_some(),
        publish_seconds: None,
    };
    let Json(_) =
        signing_keys::rotate_signing_key(State(state), me.caller.clone(), ApiJson(rotation))
            .await?;
    let done = if form.emergency.is_some() {
        "emergency"
    } else {
        "rotated"
    };
    Ok(back(&me, done, "keys"))
}
