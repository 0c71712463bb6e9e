//! Registered devices: a person registers their own; administrators and MDM services list
//! them and mark them compliant.

use portcullis_core::UserId;
use portcullis_core::conditional::Platform;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A device to register for the caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    /// What to call it (1–100 characters).
    pub name: String,
    #[schema(inline)]
    pub platform: Platform,
    /// The public half of the device's P-256 key pair, as a JWK (`kty` `EC`, `crv` `P-256`).
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// Whether a device is compliant, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCompliance {
    pub compliant: bool,
    /// Why, as the administrator or the MDM says (up to 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only this user's devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
}
