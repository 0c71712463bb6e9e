use crate::double_option;
use portcullis_core::authz::RoleRef;
use portcullis_core::authz::Scope;
use portcullis_core::identity::ApiKey;
use portcullis_core::identity::LifecycleState;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::identity::ServicePrincipal;
use portcullis_core::identity::Tenant;
use serde::Deserialize;
use serde::Serialize;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// A freshly issued API key: the only time its secret is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedApiKey {
    pub api_key: ApiKey,
    /// The whole key, to be sent as `Authorization: Bearer <secret>`. Store it now: it cannot
    /// be shown again.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub assignment_id: portcullis_core::RoleAssignmentId,
    pub role: RoleRef,
    pub scope: Scope,
    pub via_group: Option<portcullis_core::GroupId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub principal: PrincipalRef,
    pub display: Option<String>,
    /// How the caller authenticated this request: an API key, or an access token (for a
    /// person: their session, the client they came through, `amr` and `acr`).
    pub authentication: Option<portcullis_core::audit::ActorAuthentication>,
    pub tenant: Tenant,
    /// The roles in effect now, with the assignment each comes from.
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Cursor from the previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Items per page, 1–500 (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lower-case letters, digits and '-', starting with a letter; unique.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    /// The tenant's first administrator: hand its key to the tenant's owners, who should
    /// create their own administrators and then delete this one.
    pub administrator: ServicePrincipal,
    pub administrator_key: IssuedApiKey,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Option<String>>,
    /// `active` or `disabled`; only the operator changes a tenant's state, and never its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LifecycleState>,
}

/// The tenant's branding as shown on its sign-in pages, console and messages.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrandingView {
    /// The colour of buttons and links, `#rrggbb`; absent: the default blue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<LogoView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogoView {
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub media_type: String,
    /// Names this version of the image.
    pub digest: String,
    /// Where browsers fetch it (public: it is shown on the sign-in page).
    pub url: String,
}

/// A change to the branding.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBranding {
    /// `#rrggbb`, dark enough for white text on it (contrast ≥ 4.5:1); null or absent: the
    /// default.
    #[serde(default)]
    pub colour: Option<String>,
    /// A `data:image/png;base64,…` URL (PNG, JPEG or WebP, at most 100 KiB; SVG is refused);
    /// null removes the logo; absent keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<Option<String>>,
}
