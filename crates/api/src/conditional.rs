//! Conditional access: named locations, policies, templates, settings and the what-if tool.
//! Locations and policies are sent and answered as the `portcullis-core` documents
//! ([`NamedLocation`], [`AccessPolicy`]); their `id` is set by the server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use portcullis_core::conditional::{
    AccessPolicy, AccessPolicySettings, Check, ClientType, Condition, Country, Decision,
    DeviceState, Evaluation, Explanation, NamedLocation, Outcome, Platform, PolicyResult, Proofs,
    Requirement, RiskLevel, Template, Versioned,
};
use portcullis_core::{NamedLocationId, ServicePrincipalId, UserId};

/// Creates a policy from a template (report-only, to be reviewed and enabled).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    /// The named location the template needs (`allowed-countries-only`: the allowed countries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<NamedLocationId>,
}

/// A request to imagine: who, to what, from where, with what.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIf {
    /// The user signing in (or `service_principal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The workload asking for a token (or `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<ServicePrincipalId>,
    /// `account` (the default), `admin_api` or an OAuth client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "203.0.113.9")]
    pub address: Option<std::net::IpAddr>,
    /// The country, when not to be looked up from `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceState>,
    /// `browser` by default for a user, `workload` for a service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_type: Option<ClientType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_risk: Option<RiskLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_risk: Option<RiskLevel>,
    /// When (RFC 3339); now by default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<time::OffsetDateTime>,
    /// What the sign-in has proved; a password by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proofs: Option<Proofs>,
}

/// Which policies apply to the imagined request and why, and what they decide.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhatIfAnswer {
    /// The country the request was placed in, if known.
    pub country: Option<Country>,
    /// Every policy, condition by condition.
    pub policies: Vec<Explanation>,
    /// What the enabled policies decide, and each evaluated policy's result.
    pub evaluation: Evaluation,
}
