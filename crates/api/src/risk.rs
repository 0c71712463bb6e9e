//! Identity protection: detections, risky users, an administrator's verdict on one, and the
//! deployment's leaked-password list.

use portcullis_core::UserId;
use portcullis_core::conditional::RiskLevel;
use portcullis_core::risk::{DetectionKind, RiskState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetectionQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub kind: Option<DetectionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub level: Option<RiskLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub state: Option<RiskState>,
    /// Detections at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<OffsetDateTime>,
    /// From the previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RiskyUserQuery {
    /// Users at this level or above (default: low, so every user at risk).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub level: Option<RiskLevel>,
    /// At most this many, riskiest first (1–500, default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// An administrator's verdict on a user's risk.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskVerdict {
    /// Why, for the audit trail (up to 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A user's risk after a verdict.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserRisk {
    pub user_id: UserId,
    pub level: RiskLevel,
}

/// Hashes to add to the leaked-password list: the SHA-1 of each password as 40 hexadecimal
/// digits, optionally followed by `:count` (the Pwned Passwords form). At most 1,000 a request.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakedPasswords {
    pub hashes: Vec<String>,
}

/// The leaked-password list's size, and how many of a batch were new to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeakedPasswordList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    pub total: u64,
}
