//! Registered devices over the admin API. A person registers their own devices (with their
//! token or browser session); listing needs `user.read`; marking a device compliant or
//! removing another person's needs `user.update` on its owner, which is what an MDM service
//! principal is given.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use portcullis_api::Items;
use portcullis_api::devices::{DeviceCompliance, DeviceQuery, RegisterDevice};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::device_key::{RegisteredDevice, registered_key};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::names::parse_description;
use portcullis_core::{RegisteredDeviceId, UserId, ValidationError};
use portcullis_store::NewDevice;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::items;
use crate::state::AppState;

/// Registers a device for the calling person: the public half of a P-256 key pair the device
/// keeps. Its sign-ins then prove themselves with it; an administrator or an MDM marks it
/// compliant.
#[utoipa::path(post, path = "/v1/me/devices", tag = "devices", request_body = RegisterDevice,
    responses((status = 201, body = RegisteredDevice), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterDevice>,
) -> ApiResult<(StatusCode, Json<RegisteredDevice>)> {
    if caller.principal.kind != PrincipalKind::User {
        return Err(ApiError::Forbidden(
            "refused: only a person registers a device, for themselves".into(),
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ValidationError::new("name", "must be 1 to 100 characters").into());
    }
    let name = parse_description("name", name)?;
    let (jwk, thumbprint) = registered_key(&body.public_key)?;
    let public_key = serde_json::to_string(&jwk).map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewDevice {
        user_id: UserId::from_uuid(caller.principal.id),
        name,
        platform: body.platform,
        public_key,
        key_thumbprint: thumbprint,
    };
    let device = state
        .store
        .register_device(&caller.write_context(&state), new)
        .await?;
    Ok((StatusCode::CREATED, Json(device)))
}

/// The tenant's registered devices, or one user's.
#[utoipa::path(get, path = "/v1/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = Items<RegisteredDevice>), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<Items<RegisteredDevice>>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, None)
        .await?;
    Ok(items(
        state
            .store
            .registered_devices(caller.tenant_id(), q.user_id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices", params(("id" = RegisteredDeviceId, Path)),
    responses((status = 200, body = RegisteredDevice), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RegisteredDeviceId>,
) -> ApiResult<Json<RegisteredDevice>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, None)
        .await?;
    Ok(Json(
        state
            .store
            .registered_device(caller.tenant_id(), id)
            .await?,
    ))
}

/// Marks a device compliant or not (an administrator, or an MDM service principal).
#[utoipa::path(put, path = "/v1/devices/{id}/compliance", tag = "devices", params(("id" = RegisteredDeviceId, Path)),
    request_body = DeviceCompliance,
    responses((status = 200, body = RegisteredDevice), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn set_compliance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RegisteredDeviceId>,
    ApiJson(body): ApiJson<DeviceCompliance>,
) -> ApiResult<Json<RegisteredDevice>> {
    let device = state
        .store
        .registered_device(caller.tenant_id(), id)
        .await?;
    caller
        .authorize_change_to(
            &state,
            Action::UserUpdate,
            PrincipalRef::user(device.user_id),
        )
        .await?;
    let note = body
        .note
        .map(|n| parse_description("note", &n))
        .transpose()?;
    Ok(Json(
        state
            .store
            .set_device_compliance(&caller.write_context(&state), id, body.compliant, note)
            .await?,
    ))
}

/// Removes a device: the person's own, or anyone's with `user.update` on its owner.
#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "devices", params(("id" = RegisteredDeviceId, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<RegisteredDeviceId>,
) -> ApiResult<StatusCode> {
    let device = state
        .store
        .registered_device(caller.tenant_id(), id)
        .await?;
    let owner = PrincipalRef::user(device.user_id);
    if caller.principal != owner {
        caller
            .authorize_change_to(&state, Action::UserUpdate, owner)
            .await?;
    }
    state
        .store
        .remove_device(&caller.write_context(&state), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
