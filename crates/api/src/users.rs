use crate::double_option;
use portcullis_core::BusinessUnitId;
use portcullis_core::UserId;
use portcullis_core::audit::AuditRecord;
use portcullis_core::identity::LifecycleState;
use portcullis_core::identity::UserKind;
use serde::Deserialize;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa::ToSchema;

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique in the tenant, compared case-insensitively after Unicode normalization.
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// You vouch that the address is the user's (default false: it becomes proven when they
    /// use a link mailed to it). Sent as the `email_verified` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `member` (default) or `guest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<UserKind>,
    /// Required for a guest: an active member who vouches for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor_id: Option<UserId>,
    /// Required for a guest (at most 366 days away); optional for a member.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
    /// The tenant's root unit when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_unit_id: Option<BusinessUnitId>,
    /// The id another system knows the user by (SCIM `externalId`, an upstream identity
    /// provider's `sub`): unique in the tenant, compared exactly. Enforcement points may name
    /// the user by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Option<String>>,
    /// Whether you vouch that the address is the user's. Left out, a proven address stays
    /// proven only if it is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Option<String>>,
    /// `active` or `disabled`. Deleting is `DELETE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LifecycleState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor_id: Option<UserId>,
    #[serde(default, with = "crate::rfc3339_double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<OffsetDateTime>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_unit_id: Option<BusinessUnitId>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<Option<String>>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LifecycleState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<UserKind>,
    /// Users whose user name or e-mail starts with this (case-insensitive), ordered by the
    /// name or address that matched instead of by creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_unit_id: Option<BusinessUnitId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// No `Debug`: it holds a password.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password, checked against the tenant's password policy (by default at least 12
    /// characters and not easy to guess; no composition rules).
    #[schema(format = Password)]
    pub password: String,
    /// Make the user choose a new password at the next sign-in. Defaults to true: a password
    /// an administrator knows should not stay in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub must_change: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndedSessions {
    /// How many sessions were ended.
    pub ended: u64,
}

/// Where the user's account stands with the sign-in back-off, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountLockout {
    /// Whether sign-in with a password or code is refused for now (a passkey still works).
    pub locked: bool,
    /// Seconds until the next attempt is allowed, when locked.
    pub retry_after_seconds: Option<u64>,
    /// Failed attempts counted, on the node that answered; forgotten after a success, an
    /// unlock, or 15 minutes without a failure.
    pub failures: u32,
    /// How many failures are free before the waits begin (the tenant's setting).
    pub free_failures: u32,
    /// When the last counted failure happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_failure_at: Option<OffsetDateTime>,
    /// The user's latest failed sign-ins from the sign-in log, newest first: the reason, the
    /// method and where they came from.
    pub recent_failures: Vec<AuditRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// Why the account is unlocked (for example the ticket and how the caller was verified);
    /// kept in the audit trail. 1–500 characters.
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentLinkRequest {
    /// How long the link works: 1–720 hours (default 72).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_hours: Option<u32>,
    /// Mail the link to the user's address (an invitation) instead of returning it. Needs
    /// the server's SMTP settings and an address on the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<bool>,
}

/// A link with which the user chooses their own password, then adds a passkey or an
/// authenticator app. Shown once (only its keyed hash is kept), or mailed to the user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrolmentLink {
    /// The link, when it was not mailed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The address it was mailed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// How many unused links of the user's this one replaced (they no longer work).
    pub replaced: u64,
}

/// A link mailed to the user with which they prove their address is theirs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmailVerification {
    pub sent_to: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

pub use portcullis_core::totp::MfaStatus;
