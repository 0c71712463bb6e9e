//! The tenant's token signing keys: list them with where each stands in its rotation, and
//! rotate now — on schedule (the new key is published first and signs later) or in an
//! emergency (the new key signs at once and the old ones are withdrawn, so every token they
//! signed stops verifying).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use portcullis_core::authz::{Action, Scope};
use portcullis_core::jose::{
    ScheduledKey, SigningAlgorithm, current_key as scheduled_current, is_published,
};
use portcullis_store::StoredSigningKey;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
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

fn summaries(stored: &[StoredSigningKey], now: OffsetDateTime) -> Vec<SigningKeySummary> {
    let schedule: Vec<ScheduledKey> = stored
        .iter()
        .filter_map(|k| {
            Some(ScheduledKey {
                kid: k.kid.clone(),
                alg: SigningAlgorithm::parse(&k.alg)?,
                signs_from: k.signs_from,
                revoked: k.revoked_at.is_some(),
            })
        })
        .collect();
    schedule
        .iter()
        .zip(stored)
        .map(|(key, row)| {
            let status = if key.revoked {
                KeyStatus::Revoked
            } else if key.signs_from > now {
                KeyStatus::Scheduled
            } else if scheduled_current(&schedule, key.alg, now).is_some_and(|c| c.kid == key.kid) {
                KeyStatus::Current
            } else {
                KeyStatus::Retired
            };
            SigningKeySummary {
                kid: key.kid.clone(),
                alg: key.alg,
                status,
                published: is_published(&schedule, key, now),
                created_at: row.created_at,
                signs_from: key.signs_from,
                revoked_at: row.revoked_at,
            }
        })
        .collect()
}

/// The tenant's signing keys, newest first.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "tenants",
    responses((status = 200, body = Vec<SigningKeySummary>), (status = 403, body = Problem)))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SigningKeySummary>>> {
    caller
        .authorize(&state, Action::TenantRead, Scope::Tenant, None)
        .await?;
    let stored = state.store.signing_keys(caller.tenant_id()).await?;
    Ok(Json(summaries(&stored, state.clock.now())))
}

#[derive(Debug, Deserialize, ToSchema)]
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
    pub publish_seconds: Option<u32>,
}

/// Rotates the tenant's key of one algorithm and returns the new key.
#[utoipa::path(post, path = "/v1/signing-keys/rotate", tag = "tenants", request_body = Rotation,
    responses((status = 200, body = SigningKeySummary), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(rotation): ApiJson<Rotation>,
) -> ApiResult<Json<SigningKeySummary>> {
    caller
        .authorize(&state, Action::TenantUpdate, Scope::Tenant, None)
        .await?;
    let lead = match (rotation.emergency, rotation.publish_seconds) {
        (true, Some(_)) => {
            return Err(ApiError::Validation(portcullis_core::ValidationError::new(
                "publish_seconds",
                "an emergency rotation signs at once: leave publish_seconds out",
            )));
        }
        (true, None) => 0,
        (false, Some(seconds)) if seconds > 604_800 => {
            return Err(ApiError::Validation(portcullis_core::ValidationError::new(
                "publish_seconds",
                "at most 604800 (7 days)",
            )));
        }
        (false, seconds) => seconds.unwrap_or(state.config.signing_key_publish_seconds),
    };
    let now = state.clock.now();
    let tenant = caller.tenant_id();
    let origin = caller.write_context(&state).origin;
    let key = crate::oauth::add_key(
        &state,
        tenant,
        rotation.alg,
        now + time::Duration::seconds(i64::from(lead)),
        origin,
    )
    .await?;
    if rotation.emergency {
        state
            .store
            .revoke_signing_keys(
                &caller.write_context(&state),
                rotation.alg.as_str(),
                &key.kid,
            )
            .await?;
        crate::oauth::keys_changed(&state, tenant);
    }
    let stored = state.store.signing_keys(tenant).await?;
    summaries(&stored, state.clock.now())
        .into_iter()
        .find(|k| k.kid == key.kid)
        .map(Json)
        .ok_or_else(|| ApiError::Internal("the new key is not stored".into()))
}
