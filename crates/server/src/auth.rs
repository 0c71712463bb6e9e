//! Who is calling, and may they do this? Every admin request carries `Authorization: Bearer
//! <API key>`; the key is looked up by its public prefix and its secret checked against the
//! stored keyed hash in constant time. Failures are throttled per source address and per key,
//! answered with one undistinguishing 401, and recorded in the audit trail with the real reason.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde_json::json;
use time::Duration;

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::engine::tenant::{Verdict, instant};
use portcullis_core::identity::{KeyUnusable, LifecycleState, PrincipalRef, Tenant};
use portcullis_core::secrets::PresentedApiKey;
use portcullis_store::{ApiKeyCredential, WriteContext};

use crate::cache::TtlCache;
use crate::engine::{Current, Freshness};
use crate::error::ApiError;
use crate::extract::origin_of;
use crate::state::AppState;

/// How often a key's last-used time is written at most.
const LAST_USED_GRANULARITY: Duration = Duration::minutes(1);

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: PrincipalRef,
    pub tenant: Tenant,
    pub actor: Actor,
    pub origin: Origin,
    /// The tenant's authorization snapshot this request's decisions are made with, taken at
    /// the first decision so that every check of one request sees the same revision.
    engine: tokio::sync::OnceCell<Arc<Current>>,
}

const INVALID: ApiError = ApiError::Unauthenticated {
    detail: "Send a valid API key as `Authorization: Bearer pcs_…`. The key given is missing, malformed, unknown, \
             expired or revoked, or its owner is disabled.",
};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let origin = origin_of(parts);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
        let credential = match authenticate_key(state, header.is_some(), token, &origin, None).await
        {
            Ok(credential) => credential,
            Err(KeyRefusal::Throttled(retry_after_seconds)) => {
                return Err(ApiError::TooManyRequests {
                    retry_after_seconds,
                });
            }
            Err(KeyRefusal::Invalid) => return Err(INVALID),
            Err(KeyRefusal::Failed(error)) => return Err(error),
        };
        Ok(Caller {
            principal: PrincipalRef::service_principal(credential.owner.id),
            engine: tokio::sync::OnceCell::new(),
            actor: Actor {
                kind: "service_principal".into(),
                id: Some(credential.owner.id.to_string()),
                display: Some(format!(
                    "{} ({})",
                    credential.owner.name, credential.key.prefix
                )),
            },
            tenant: credential.tenant,
            origin,
        })
    }
}

/// Why an API key (or a client secret, which is one) was not accepted.
pub(crate) enum KeyRefusal {
    /// Too many failures from this address; retry after this many seconds.
    Throttled(u64),
    /// Missing, malformed, unknown, wrong, expired or revoked, or its owner is disabled: the
    /// caller learns no more than that, the audit trail records which.
    Invalid,
    Failed(ApiError),
}

impl From<portcullis_store::StoreError> for KeyRefusal {
    fn from(e: portcullis_store::StoreError) -> Self {
        KeyRefusal::Failed(e.into())
    }
}

/// Checks a presented API key: looked up by its public prefix, its secret compared with the
/// stored keyed hash in constant time, its expiry, revocation and owner checked. Failures are
/// throttled per source address and audited with their real reason.
pub(crate) async fn authenticate_key(
    state: &AppState,
    offered: bool,
    secret: Option<&str>,
    origin: &Origin,
    cache: Option<&TtlCache<String, ApiKeyCredential>>,
) -> Result<ApiKeyCredential, KeyRefusal> {
    let address_key = format!("ip:{}", origin.source_ip.as_deref().unwrap_or("unknown"));
    let started = Instant::now();
    if let Some(retry_after_seconds) = state.failures.blocked_for(&address_key, started) {
        metrics::counter!("portcullis_auth_throttled_total").increment(1);
        return Err(KeyRefusal::Throttled(retry_after_seconds));
    }
    let Some(presented) = secret.map(str::trim).and_then(PresentedApiKey::parse) else {
        let reason = if offered {
            "malformed credential"
        } else {
            "no credential"
        };
        return Err(fail(state, &address_key, None, reason, origin.clone()).await);
    };
    let cached = cache.and_then(|c| c.get(&presented.prefix, started));
    let from_store = cached.is_none();
    let found = match cached {
        Some(credential) => Some(credential),
        None => state.store.api_key_credential(&presented.prefix).await?,
    };
    let Some(credential) = found else {
        return Err(fail(state, &address_key, None, "unknown API key", origin.clone()).await);
    };
    let key_target = Some((credential.tenant.id, &presented.prefix));
    if !state
        .hasher
        .verify(presented.secret_bytes(), &credential.secret_hash)
    {
        let reason = "wrong API key secret";
        return Err(fail(state, &address_key, key_target, reason, origin.clone()).await);
    }
    let now = state.clock.now();
    let refusal = match credential.key.check_usable(now) {
        Err(KeyUnusable::Revoked) => Some("API key revoked"),
        Err(KeyUnusable::Expired) => Some("API key expired"),
        Ok(()) if credential.owner.state != LifecycleState::Active => {
            Some("service principal disabled")
        }
        Ok(()) if credential.tenant.state != LifecycleState::Active => Some("tenant disabled"),
        Ok(()) => None,
    };
    if let Some(reason) = refusal {
        return Err(fail(state, &address_key, key_target, reason, origin.clone()).await);
    }
    let mut credential = credential;
    if credential
        .key
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_GRANULARITY)
    {
        state
            .store
            .touch_api_key(credential.key.id, now, LAST_USED_GRANULARITY)
            .await?;
        credential.key.last_used_at = Some(now);
        if let Some(cache) = cache.filter(|_| !from_store) {
            // The remembered record still shows the old last-used time: read it afresh.
            cache.forget(&presented.prefix);
        }
    }
    // Only what was just read from the store is remembered, stamped with when it was read: a
    // busy client must not keep an old record alive past the cache's lifetime.
    if let Some(cache) = cache.filter(|_| from_store) {
        cache.insert(presented.prefix.clone(), credential.clone(), started);
    }
    Ok(credential)
}

/// Counts a failed authentication against the source address, records it in the audit trail
/// (of the key's tenant when the key exists, else of the operator tenant) and returns the 401.
/// Failures are deliberately not counted per key: key prefixes are public, so such a count
/// would let anyone lock a known key out, and guessing a 256-bit secret is hopeless anyway.
async fn fail(
    state: &AppState,
    address_key: &str,
    key: Option<(TenantId, &String)>,
    reason: &str,
    origin: Origin,
) -> KeyRefusal {
    let now = Instant::now();
    state.failures.record_failure(address_key, now);
    metrics::counter!("portcullis_auth_failures_total").increment(1);
    let event = NewAuditEvent {
        tenant_id: key.map_or(state.operator_tenant, |(tenant, _)| tenant),
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "authn.api_key".into(),
        target: key.map(|(_, prefix)| Target::new("api_key", prefix)),
        outcome: Outcome::Failure,
        reason: Some(reason.into()),
        origin,
        details: json!({}),
    };
    if let Err(error) = state.audit.append(event).await {
        tracing::error!(%error, "could not record a failed authentication");
        return KeyRefusal::Failed(ApiError::Unavailable(
            "The audit trail cannot be written; refusing to continue.".into(),
        ));
    }
    KeyRefusal::Invalid
}

impl Caller {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// The context in which this caller's writes are made and audited.
    pub fn write_context(&self, state: &AppState) -> WriteContext {
        WriteContext {
            tenant_id: self.tenant.id,
            actor: self.actor.clone(),
            origin: self.origin.clone(),
            now: state.clock.now(),
        }
    }

    /// The tenant's authorization snapshot for this request: at least as fresh as
    /// `freshness` demands if this is the request's first decision, else the one its earlier
    /// decisions used.
    pub async fn engine(
        &self,
        state: &AppState,
        freshness: Freshness,
    ) -> Result<Arc<Current>, crate::engine::EngineError> {
        let wait = StdDuration::from_millis(state.config.authz_max_wait_ms);
        self.engine
            .get_or_try_init(|| {
                state
                    .engines
                    .fresh(&state.store, self.tenant.id, freshness, wait)
            })
            .await
            .cloned()
    }

    /// The engine's answer to whether the caller may do `action` at `scope`. Unless the request
    /// already holds a snapshot, it takes one that reflects every change committed before it,
    /// on any node: a role removed is refused at once everywhere.
    pub async fn decide(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
    ) -> Result<Verdict, ApiError> {
        let current = self.engine(state, Freshness::Latest).await?;
        let now = instant(state.clock.now());
        Ok(current
            .engine
            .check_control(self.principal, action, scope, now))
    }

    /// Allows the request or refuses it with 403, recording the refusal in the audit trail.
    pub async fn authorize(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
        target: Option<Target>,
    ) -> Result<(), ApiError> {
        let decision = self.decide(state, action, scope).await?;
        if decision.allowed {
            metrics::counter!("portcullis_authz_decisions_total", "outcome" => "allow")
                .increment(1);
            return Ok(());
        }
        metrics::counter!("portcullis_authz_decisions_total", "outcome" => "deny").increment(1);
        let reason = decision.reason.to_string();
        let event = NewAuditEvent {
            tenant_id: self.tenant.id,
            at: state.clock.now(),
            actor: self.actor.clone(),
            action: action.as_str().into(),
            target,
            outcome: Outcome::Denied,
            reason: Some(reason.clone()),
            origin: self.origin.clone(),
            details: json!({"scope": scope.to_string(), "decision": decision.reason}),
        };
        state.audit.append(event).await?;
        Err(ApiError::Forbidden(reason))
    }

    /// Changing a principal that holds any role (directly or through its groups) is itself a
    /// privileged act: otherwise a user administrator could add themselves to an administrators'
    /// group, or edit an administrator. Requires `role.assign` on top of the ordinary permission.
    /// Assignments that start later count too: joining a group whose role begins tomorrow is
    /// the same escalation, only delayed.
    pub async fn authorize_principal_change(
        &self,
        state: &AppState,
        principal: PrincipalRef,
    ) -> Result<(), ApiError> {
        let grants = state
            .store
            .grants_now_or_later(self.tenant.id, principal, state.clock.now())
            .await?;
        if grants.is_empty() {
            return Ok(());
        }
        let target = Target::new(principal.kind.as_str(), principal.id);
        self.authorize(state, Action::RoleAssign, Scope::Tenant, Some(target))
            .await
    }
}
