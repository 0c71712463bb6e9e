//! The lifecycle sweeper: disables users past their expiry date (guests, contractors), purges
//! users deleted longer ago than the retention window, schedules the next token signing key
//! when a key's time is up, forgets OAuth requests, grants and revoked tokens past their end,
//! forgets outbox messages older than a month, and writes this node's count of throttled
//! authentication attempts to the audit trail. Runs
//! on every node; each change is a conditional update, so two nodes sweeping at once do each
//! thing once.

use std::time::Duration;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_store::{Store, StoreError, WriteContext};

use crate::state::AppState;

const BATCH: u32 = 500;
/// How long the outbox remembers a message (delivered or not): long enough to answer "did
/// they get the invitation?".
const MAIL_KEPT: time::Duration = time::Duration::days(30);

fn system_context(state: &AppState, tenant_id: portcullis_core::TenantId) -> WriteContext {
    WriteContext {
        tenant_id,
        actor: Actor::system(),
        origin: Origin::default(),
        now: state.clock.now(),
        keep_role_assigner: None,
    }
}

/// Writes one `authn.throttled` event per (tenant, account, address, method) for the attempts
/// refused since the last call, with their count and first and last time: the audit trail
/// learns of every refusal without a row per refused request.
pub async fn record_throttled(state: &AppState) -> Result<(), StoreError> {
    for (key, counted) in state.throttled.take() {
        let event = NewAuditEvent {
            tenant_id: key.tenant,
            at: state.clock.now(),
            actor: Actor::anonymous(),
            action: "authn.throttled".into(),
            target: key.account.as_ref().map(|account| {
                let kind = match key.method {
                    "api_key" | "client_secret" => "api_key",
                    "client_assertion" => "service_principal",
                    _ => "user_name",
                };
                Target::new(kind, account)
            }),
            outcome: Outcome::Failure,
            reason: Some(format!(
                "{} attempts refused while throttled",
                counted.count
            )),
            origin: Origin {
                source_ip: key.address.clone(),
                ..Origin::default()
            },
            details: serde_json::json!({
                "method": key.method,
                "count": counted.count,
                "first_at": rfc3339(counted.first),
                "last_at": rfc3339(counted.last),
            }),
        };
        state.audit.append(event).await?;
    }
    Ok(())
}

/// Writes one `signin` event of kind `workload` per (tenant, client, address) for the token
/// requests workloads made since the last call, with their count, first and last time, and
/// where the address is.
pub async fn record_workload_sign_ins(state: &AppState) -> Result<(), StoreError> {
    for (key, counted) in state.workload_sign_ins.take() {
        let place = key
            .address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .map(|a| state.config.geo.locate(a))
            .unwrap_or_default();
        let event = NewAuditEvent {
            tenant_id: key.tenant,
            at: state.clock.now(),
            actor: Actor::service_principal(key.client),
            action: "signin".into(),
            target: Some(Target::new("service_principal", key.client)),
            outcome: Outcome::Success,
            reason: None,
            origin: Origin {
                source_ip: key.address.clone(),
                ..Origin::default()
            },
            details: serde_json::json!({
                "kind": "workload",
                "application": {"kind": "client", "id": key.client},
                "client_type": "workload",
                "country": place.country,
                "asn": place.asn,
                "count": counted.count,
                "first_at": rfc3339(counted.first),
                "last_at": rfc3339(counted.last),
            }),
        };
        state.audit.append(event).await?;
    }
    Ok(())
}

fn rfc3339(at: time::OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// One pass: how many users were expired and purged.
pub async fn sweep(state: &AppState) -> Result<(usize, usize), StoreError> {
    let store: &Store = &state.store;
    record_throttled(state).await?;
    record_workload_sign_ins(state).await?;
    let now = state.clock.now();
    let expired = store.users_past_expiry(now, BATCH).await?;
    for user in &expired {
        store
            .expire_user(&system_context(state, user.tenant_id), user.id)
            .await?;
    }
    let cutoff = now - time::Duration::days(i64::from(state.config.deleted_retention_days));
    let due = store.users_due_for_purge(cutoff, BATCH).await?;
    for user in &due {
        match store
            .purge_user(&system_context(state, user.tenant_id), user.id)
            .await
        {
            // Another node purged it first, or it was restored in between.
            Ok(()) | Err(StoreError::NotFound | StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    crate::oauth::rotate_due_keys(state).await?;
    expire_first_keys(state).await?;
    let remembered =
        time::Duration::seconds(portcullis_core::authorize::REMEMBER_EXPIRED_REQUEST_SECONDS);
    store.backoff_sweep(now).await?;
    store.forget_mail(now - MAIL_KEPT).await?;
    let forgotten = store.sweep_oauth(now, now - remembered).await?;
    if forgotten > 0 {
        tracing::debug!(
            forgotten,
            "expired OAuth requests, grants and revocations forgotten"
        );
    }
    Ok((expired.len(), due.len()))
}

/// A tenant's first administrator's key never expires until a person has taken over: a user
/// who may assign roles tenant-wide and has a second factor. From then on it works for
/// `bootstrap_key_days` more, time to move the automation that still uses it.
async fn expire_first_keys(state: &AppState) -> Result<(), StoreError> {
    let store = &state.store;
    for key in store.unexpiring_first_keys().await? {
        let people = store.users_with_mfa(key.tenant_id).await?;
        if people.is_empty() {
            continue;
        }
        let wait = Duration::from_millis(state.config.authz_max_wait_ms);
        let current = match state
            .engines
            .fresh(store, key.tenant_id, crate::engine::Freshness::Latest, wait)
            .await
        {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "cannot decide whether a first key may expire");
                continue;
            }
        };
        let now = state.clock.now();
        let instant = portcullis_core::engine::tenant::instant(now);
        let taken_over = people.iter().any(|user| {
            current
                .engine
                .check_control(
                    portcullis_core::identity::PrincipalRef::user(*user),
                    portcullis_core::authz::Action::RoleAssign,
                    portcullis_core::authz::Scope::Tenant,
                    instant,
                )
                .allowed
        });
        if !taken_over {
            continue;
        }
        let expires_at = now + time::Duration::days(i64::from(state.config.bootstrap_key_days));
        if store
            .expire_first_key(&system_context(state, key.tenant_id), &key, expires_at)
            .await?
        {
            tracing::info!(prefix = %key.prefix, %expires_at, "the first administrator's key now expires");
        }
    }
    Ok(())
}

pub async fn run(state: AppState) {
    let mut ticker =
        tokio::time::interval(Duration::from_secs(state.config.sweep_interval_seconds));
    loop {
        ticker.tick().await;
        match sweep(&state).await {
            Ok((0, 0)) => {}
            Ok((expired, purged)) => tracing::info!(expired, purged, "lifecycle sweep"),
            Err(error) => tracing::warn!(%error, "lifecycle sweep failed; will retry"),
        }
    }
}
