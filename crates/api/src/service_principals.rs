use crate::double_option;
use portcullis_core::identity::LifecycleState;
use serde::Deserialize;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServicePrincipal {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The id another system knows it by: unique in the tenant, compared exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServicePrincipal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// `active` or `disabled`; a disabled principal's keys stop working at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LifecycleState>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<Option<String>>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label to tell keys apart, e.g. "ci-2026-11".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the key stops working; at most 730 days away. Absent: never (not recommended).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
}
