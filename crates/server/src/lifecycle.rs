//! The lifecycle sweeper: disables users past their expiry date (guests, contractors), purges
//! users deleted longer ago than the retention window, schedules the next token signing key
//! when a key's time is up, and forgets OAuth requests, grants and revoked tokens past their
//! end. Runs on every node; each change is a conditional update, so
//! two nodes sweeping at once do each thing once.

use std::time::Duration;

use portcullis_core::audit::{Actor, Origin};
use portcullis_store::{Store, StoreError, WriteContext};

use crate::state::AppState;

const BATCH: u32 = 500;

fn system_context(state: &AppState, tenant_id: portcullis_core::TenantId) -> WriteContext {
    WriteContext {
        tenant_id,
        actor: Actor::system(),
        origin: Origin::default(),
        now: state.clock.now(),
    }
}

/// One pass: how many users were expired and purged.
pub async fn sweep(state: &AppState) -> Result<(usize, usize), StoreError> {
    let store: &Store = &state.store;
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
    let forgotten = store.sweep_oauth(now).await?;
    if forgotten > 0 {
        tracing::debug!(
            forgotten,
            "expired OAuth requests, grants and revocations forgotten"
        );
    }
    Ok((expired.len(), due.len()))
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
