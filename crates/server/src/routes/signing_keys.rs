//! The tenant's token signing keys: list them with where each stands in its rotation, and
//! rotate now — on schedule (the new key is published first and signs later) or in an
//! emergency (the new key signs at once and the old ones are withdrawn, so every token they
//! signed stops verifying).

use crate::routes::items;
use axum::Json;
use axum::extract::State;
use portcullis_api::Items;
use portcullis_api::signing_keys::{KeyStatus, Rotation, SigningKeySummary};
use time::OffsetDateTime;

use portcullis_core::authz::{Action, Scope};
use portcullis_core::jose::{
    ScheduledKey, SigningAlgorithm, current_key as scheduled_current, is_published,
};
use portcullis_store::StoredSigningKey;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

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
    responses((status = 200, body = Items<SigningKeySummary>), (status = 403, body = Problem)))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<SigningKeySummary>>> {
    caller
        .authorize(&state, Action::TenantRead, Scope::Tenant, None)
        .await?;
    let stored = state.store.signing_keys(caller.tenant_id()).await?;
    Ok(items(summaries(&stored, state.clock.now())))
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
