use portcullis_core::jose::SigningAlgorithm;
use serde::Deserialize;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Where a key stands.
#[derive(Debug, Clone, Serialize, Deserialize, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Published, not signing yet.
    Scheduled,
    /// Signs new tokens of its algorithm.
    Current,
    /// Replaced; published while tokens it signed may still be in use.
    Retired,
    /// Withdrawn by an emergency rotation.
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeySummary {
    pub kid: String,
    #[schema(value_type = String)]
    pub alg: SigningAlgorithm,
    pub status: KeyStatus,
    /// Whether the JWKS lists it now.
    pub published: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub signs_from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The algorithm whose key to rotate (default ES256).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub alg: SigningAlgorithm,
    /// Sign with the new key at once and withdraw every other key of the algorithm: tokens
    /// they signed stop verifying. For a key that may have leaked.
    #[serde(default)]
    pub emergency: bool,
    /// For a scheduled rotation: seconds the new key is published before it signs (default
    /// `signing_key_publish_seconds`), 0 to 604800.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_seconds: Option<u32>,
}
