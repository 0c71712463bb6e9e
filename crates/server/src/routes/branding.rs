//! The tenant's branding: the colour of its buttons and links and its logo, shown on its
//! sign-in pages, account pages, console and messages.

use axum::Json;
use axum::extract::State;
use portcullis_api::tenants::{BrandingView, LogoView, SetBranding};

use portcullis_core::authz::{Action, Scope};
use portcullis_core::branding::{Branding, Colour, Logo, MAX_LOGO_BYTES};
use portcullis_store::LogoChange;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// The largest body `PUT /v1/branding` takes: a logo of [`MAX_LOGO_BYTES`] as base64, with
/// room for the rest.
pub const BRANDING_BODY_BYTES: usize = MAX_LOGO_BYTES * 4 / 3 + 16 * 1024;

pub(crate) fn view(tenant: &str, branding: &Branding) -> BrandingView {
    BrandingView {
        colour: branding.colour.map(|c| c.to_string()),
        logo: branding.logo.as_ref().map(|(kind, digest)| LogoView {
            media_type: kind.as_str().into(),
            digest: digest.clone(),
            url: format!("/t/{tenant}/branding/logo?v={digest}"),
        }),
    }
}

/// The tenant's branding.
#[utoipa::path(get, path = "/v1/branding", tag = "tenants",
    responses((status = 200, body = BrandingView), (status = 403, body = Problem)))]
pub async fn get_branding(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<BrandingView>> {
    caller
        .authorize(&state, Action::TenantRead, Scope::Tenant, None)
        .await?;
    let tenant = state.store.tenant(caller.tenant_id()).await?;
    let branding = state.store.branding(caller.tenant_id()).await?;
    Ok(Json(view(&tenant.name, &branding)))
}

/// Sets the colour and the logo. A colour too light for white text, or a logo that is not a
/// PNG, JPEG or WebP of at most 100 KiB by its content, is refused and nothing changes.
#[utoipa::path(put, path = "/v1/branding", tag = "tenants", request_body = SetBranding,
    responses((status = 200, body = BrandingView), (status = 403, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem)))]
pub async fn put_branding(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SetBranding>,
) -> ApiResult<Json<BrandingView>> {
    caller
        .authorize(&state, Action::TenantUpdate, Scope::Tenant, None)
        .await?;
    let colour = body
        .colour
        .as_deref()
        .map(|text| Colour::parse("colour", text.trim()))
        .transpose()
        .map_err(ApiError::Validation)?;
    let logo = match body.logo {
        None => LogoChange::Keep,
        Some(None) => LogoChange::Remove,
        Some(Some(url)) => {
            LogoChange::Replace(Logo::from_data_url("logo", &url).map_err(ApiError::Validation)?)
        }
    };
    set(&state, &caller, colour, logo).await.map(Json)
}

/// Saves branding already checked, for the API and the console's upload form alike.
pub(crate) async fn set(
    state: &AppState,
    caller: &Caller,
    colour: Option<Colour>,
    logo: LogoChange,
) -> ApiResult<BrandingView> {
    caller
        .authorize(state, Action::TenantUpdate, Scope::Tenant, None)
        .await?;
    let tenant = state.store.tenant(caller.tenant_id()).await?;
    let branding = state
        .store
        .set_branding(&caller.write_context(state), colour, logo)
        .await?;
    Ok(view(&tenant.name, &branding))
}
