//! Each tenant's token signing keys on this node: opened once, re-read every few seconds (other
//! nodes may rotate), generated on first need, rotated on schedule by the sweeper, and rotated
//! at once in an emergency. A new key is published for `signing_key_publish_seconds` before it
//! signs; a retired key stays published for a day, as long as the tokens it signed can live.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, Origin};
use portcullis_core::identity::Tenant;
use portcullis_core::jose::{
    ScheduledKey, SigningAlgorithm, SigningKey, current_key as scheduled_current, due_for_rotation,
    generate, is_published,
};
use portcullis_store::{StoreError, StoredSigningKey, WriteContext};

use crate::error::ApiError;
use crate::state::AppState;

/// How long a node trusts its copy of a tenant's keys before reading them again: the most a
/// rotation made on another node takes to reach this one.
const KEYS_FRESH: Duration = Duration::from_secs(5);

/// The keys of every tenant this node has signed or verified for.
#[derive(Debug, Default)]
pub struct SigningKeys {
    tenants: RwLock<HashMap<TenantId, Arc<TenantKeys>>>,
    /// One load-or-generate at a time: a burst of first requests (anyone may fetch the JWKS)
    /// must not each generate a key.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct TenantKeys {
    /// When read from the store; `None` once a change on this node made it stale.
    loaded: Option<Instant>,
    schedule: Vec<ScheduledKey>,
    opened: HashMap<String, Arc<SigningKey>>,
    public: HashMap<String, Value>,
}

impl SigningKeys {
    /// This node's copy, fresh or not.
    fn cached(&self, tenant: TenantId) -> Option<Arc<TenantKeys>> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned()
    }

    /// Marks this node's copy stale after a change made here: the next use reads the store
    /// again (keeping the keys already opened, which never change under their kid).
    pub(crate) fn forget(&self, tenant: TenantId) {
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        if let Some(keys) = tenants.get(&tenant) {
            let mut stale = (**keys).clone();
            stale.loaded = None;
            tenants.insert(tenant, Arc::new(stale));
        }
    }
}

fn schedule_of(stored: &StoredSigningKey) -> Option<ScheduledKey> {
    Some(ScheduledKey {
        kid: stored.kid.clone(),
        alg: SigningAlgorithm::parse(&stored.alg)?,
        signs_from: stored.signs_from,
        revoked: stored.revoked_at.is_some(),
    })
}

/// The tenant's keys: this node's copy while fresh, else read and opened again.
async fn tenant_keys(state: &AppState, tenant: TenantId) -> Result<Arc<TenantKeys>, ApiError> {
    let previous = state.signing_keys.cached(tenant);
    if let Some(keys) = &previous
        && keys.loaded.is_some_and(|at| at.elapsed() < KEYS_FRESH)
    {
        return Ok(keys.clone());
    }
    let stored = state.store.signing_keys(tenant).await?;
    let schedule = stored
        .iter()
        .map(|key| {
            schedule_of(key).ok_or_else(|| {
                ApiError::Internal(format!(
                    "signing key {} has the unknown algorithm {:?}",
                    key.kid, key.alg
                ))
            })
        })
        .collect::<Result<Vec<ScheduledKey>, ApiError>>()?;
    let now = state.clock.now();
    let mut opened = HashMap::new();
    let mut public = HashMap::new();
    for (key, scheduled) in stored.iter().zip(&schedule) {
        if !is_published(&schedule, scheduled, now) {
            continue;
        }
        // A key is opened (KEK, then PKCS#8 parse) once per node, not at every re-read.
        let known = previous
            .as_ref()
            .and_then(|p| p.opened.get(&key.kid))
            .cloned();
        let signing = match known {
            Some(signing) => signing,
            None => {
                let private = state
                    .kek
                    .open(&format!("signing-key:{}", key.kid), &key.private_sealed)
                    .map_err(|e| ApiError::Internal(format!("cannot open signing key: {e}")))?;
                Arc::new(
                    SigningKey::open(scheduled.alg, key.kid.clone(), private.expose_secret())
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                )
            }
        };
        opened.insert(key.kid.clone(), signing);
        public.insert(key.kid.clone(), key.public_jwk.clone());
    }
    let keys = Arc::new(TenantKeys {
        loaded: Some(Instant::now()),
        schedule,
        opened,
        public,
    });
    state
        .signing_keys
        .tenants
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(tenant, keys.clone());
    Ok(keys)
}

fn pick(keys: &TenantKeys, alg: SigningAlgorithm, now: OffsetDateTime) -> Option<Arc<SigningKey>> {
    scheduled_current(&keys.schedule, alg, now).and_then(|k| keys.opened.get(&k.kid).cloned())
}

/// The key that signs `alg` for the tenant now; the tenant's first key of `alg` is generated
/// here (sealed under the KEK, audited).
pub(crate) async fn current_key(
    state: &AppState,
    tenant: &Tenant,
    alg: SigningAlgorithm,
    origin: Origin,
) -> Result<Arc<SigningKey>, ApiError> {
    if let Some(key) = pick(
        &*tenant_keys(state, tenant.id).await?,
        alg,
        state.clock.now(),
    ) {
        return Ok(key);
    }
    let _loading = state.signing_keys.loading.lock().await;
    keys_changed(state, tenant.id);
    if let Some(key) = pick(
        &*tenant_keys(state, tenant.id).await?,
        alg,
        state.clock.now(),
    ) {
        return Ok(key);
    }
    add_key(state, tenant.id, alg, state.clock.now(), origin).await?;
    pick(
        &*tenant_keys(state, tenant.id).await?,
        alg,
        state.clock.now(),
    )
    .ok_or_else(|| ApiError::Internal("a new signing key is not in use".into()))
}

/// The public keys in the tenant's JWKS now: scheduled, current, and recently retired ones.
pub(crate) async fn published_keys(
    state: &AppState,
    tenant: TenantId,
) -> Result<Vec<Value>, ApiError> {
    let keys = tenant_keys(state, tenant).await?;
    let mut published: Vec<(&ScheduledKey, &Value)> = keys
        .schedule
        .iter()
        .filter_map(|k| keys.public.get(&k.kid).map(|jwk| (k, jwk)))
        .collect();
    published.sort_by_key(|(k, _)| std::cmp::Reverse(k.signs_from));
    Ok(published.into_iter().map(|(_, jwk)| jwk.clone()).collect())
}

/// Generates, seals and stores a key of `alg` that signs from `signs_from`; audited.
pub(crate) async fn add_key(
    state: &AppState,
    tenant: TenantId,
    alg: SigningAlgorithm,
    signs_from: OffsetDateTime,
    origin: Origin,
) -> Result<StoredSigningKey, ApiError> {
    // RSA key generation takes a while: off the async workers.
    let generated = tokio::task::spawn_blocking(move || generate(alg))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = state
        .kek
        .seal(
            &format!("signing-key:{}", generated.kid),
            &generated.private_pkcs8,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let key = StoredSigningKey {
        kid: generated.kid,
        alg: alg.as_str().into(),
        private_sealed: sealed,
        public_jwk: generated.public_jwk,
        created_at: now,
        signs_from,
        revoked_at: None,
    };
    let ctx = WriteContext {
        tenant_id: tenant,
        actor: Actor {
            kind: "system".into(),
            id: None,
            display: Some("key management".into()),

            authentication: None,
        },
        origin,
        now,
        keep_role_assigner: None,
    };
    state.store.add_signing_key(&ctx, &key).await?;
    keys_changed(state, tenant);
    Ok(key)
}

/// The sweeper's part: every tenant's keys whose time is up get a successor, published now
/// and signing after `signing_key_publish_seconds`. Returns how many keys were added.
pub async fn rotate_due_keys(state: &AppState) -> Result<usize, StoreError> {
    if state.config.signing_key_rotation_days == 0 {
        return Ok(0);
    }
    let every = time::Duration::days(i64::from(state.config.signing_key_rotation_days));
    let lead = time::Duration::seconds(i64::from(state.config.signing_key_publish_seconds));
    let mut added = 0;
    for tenant in state.store.tenants_with_signing_keys().await? {
        let stored = state.store.signing_keys(tenant).await?;
        let schedule: Vec<ScheduledKey> = stored.iter().filter_map(schedule_of).collect();
        let now = state.clock.now();
        for alg in SigningAlgorithm::ALL {
            if due_for_rotation(&schedule, alg, now, every) {
                match add_key(state, tenant, alg, now + lead, Origin::default()).await {
                    Ok(key) => {
                        added += 1;
                        tracing::info!(%tenant, kid = %key.kid, alg = alg.as_str(), "signing key rotation scheduled");
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, %tenant, "signing key rotation failed; will retry")
                    }
                }
            }
        }
    }
    Ok(added)
}

/// After a change to a tenant's keys made on this node: its key cache is read afresh, and no
/// token is taken on the strength of a signature checked before (a withdrawn key's tokens stop
/// here at once). Key changes are rare, so every remembered signature is dropped.
pub(crate) fn keys_changed(state: &AppState, tenant: TenantId) {
    state.signing_keys.forget(tenant);
    state.token_caches.verified.forget_where(|_| true);
}
