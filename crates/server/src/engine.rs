//! Each node's authorization snapshots, one per tenant, kept current from the change feed.
//!
//! A tenant's engine is built from the store on first use. The tail (`run`) wakes when this
//! process commits, when PostgreSQL notifies that another node did, or at the poll interval;
//! it reads every tenant's head revision and, for each loaded tenant that moved, reads back
//! what the new rows changed and applies it to the engine as a delta, which rewrites only
//! what the changes touch (docs/design/engine-deltas.md). Only changes that reshape the
//! engine (units, environments, resource types, roles), a membership cycle, or a node too
//! far behind make it build the engine whole. Readers take the current engine with one
//! atomic load and never wait for either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::conditional::Compiled;
use portcullis_core::engine::tenant::{Delta, Stale, TenantEngine};
use portcullis_core::identity::PrincipalRef;
use portcullis_store::{AuthorizationChanges, Store, StoreError};

use crate::state::AppState;

/// A tenant's engine, its compiled conditional access policies, and the change-feed revision
/// both are current at.
#[derive(Debug)]
pub struct Current {
    pub engine: Arc<TenantEngine>,
    pub access: Arc<Compiled>,
    pub revision: i64,
}

#[derive(Debug)]
struct Slot {
    current: ArcSwap<Current>,
    /// Held while rebuilding, so concurrent refreshes of one tenant build once.
    rebuilding: tokio::sync::Mutex<()>,
    /// This process's commit count when the slot last caught up: a higher count means a
    /// local write the slot may not reflect yet.
    seen_commits: AtomicU64,
    /// When the tenant was last asked about, on the node's count of questions: the least
    /// recent go first when the snapshots outgrow the memory budget.
    last_used: AtomicU64,
    /// The current engine's size (`TenantEngine::heap_bytes`).
    bytes: AtomicUsize,
}

impl Slot {
    fn new(current: Current, seen_commits: u64) -> Self {
        let bytes = current.engine.heap_bytes();
        Self {
            current: ArcSwap::from_pointee(current),
            rebuilding: tokio::sync::Mutex::new(()),
            seen_commits: seen_commits.into(),
            last_used: AtomicU64::new(0),
            bytes: bytes.into(),
        }
    }

    fn store(&self, tenant: TenantId, next: Current) {
        self.bytes
            .store(next.engine.heap_bytes(), Ordering::Relaxed);
        held_revision(tenant, next.revision);
        self.current.store(Arc::new(next));
    }
}

/// Publishes the revision a node's snapshot of the tenant is at: next to the tenant's head (the
/// node that wrote last holds it), how far behind another node is.
fn held_revision(tenant: TenantId, revision: i64) {
    metrics::gauge!("portcullis_authz_snapshot_revision", "tenant" => tenant.to_string())
        .set(revision as f64);
}

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the tenant's authorization data cannot be indexed: {0}")]
    Build(#[from] portcullis_core::engine::snapshot::SnapshotError),
    /// The task building or moving the snapshot forward failed (it panicked).
    #[error("the snapshot task failed: {0}")]
    Task(String),
    /// The demanded revision is ahead of what the database holds after waiting.
    #[error("revision {wanted} has not been reached (the database is at {reached})")]
    NotReached { wanted: i64, reached: i64 },
}

/// What the caller demands of a decision's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Whatever this node holds now, even if this node has committed a change since: the
    /// change-feed tail, woken by every local commit, catches up within milliseconds. For
    /// paths that must not pay a database read per request (token issuance).
    Held,
    /// Whatever this node holds now, and no older than this node's own writes.
    Any,
    /// At least this revision (from an earlier decision or write).
    AtLeast(i64),
    /// Everything committed before the request arrived, on any node.
    Latest,
}

#[derive(Debug)]
pub struct Engines {
    slots: Mutex<HashMap<TenantId, Arc<Slot>>>,
    /// Bytes of snapshots the node keeps before it drops the least recently used tenants.
    budget: usize,
    /// Questions asked so far: the clock `Slot::last_used` reads.
    questions: AtomicU64,
    /// Woken after each refresh, for requests waiting on a revision.
    refreshed: tokio::sync::Notify,
    /// The principals a membership cycle takes out, per tenant, as last reported, and the
    /// revision that was built at: a cycle is reported once per node, and again only when
    /// whom it takes out changes. A build that finishes after a newer one reports nothing.
    cycles: Mutex<HashMap<TenantId, (i64, Vec<PrincipalRef>)>>,
}

impl Engines {
    /// No tenant loaded yet: each is built on its first decision, and the least recently used
    /// are dropped while the snapshots held exceed `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            slots: Mutex::default(),
            budget,
            questions: AtomicU64::new(0),
            refreshed: tokio::sync::Notify::new(),
            cycles: Mutex::default(),
        }
    }

    /// Drops the tenants least recently asked about until the snapshots held fit the budget.
    /// The most recently asked about, and `keep` (the tenant being asked about), stay
    /// whatever their size. A request in flight on a dropped tenant finishes on the snapshot
    /// it holds, and the next one builds it again.
    fn fit_budget(&self, keep: Option<TenantId>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_age: Vec<(u64, TenantId, usize)> = slots
            .iter()
            .map(|(tenant, slot)| {
                (
                    slot.last_used.load(Ordering::Relaxed),
                    *tenant,
                    slot.bytes.load(Ordering::Relaxed),
                )
            })
            .collect();
        let mut held: usize = by_age.iter().map(|(_, _, bytes)| bytes).sum();
        by_age.sort_unstable();
        // The most recently asked about stays.
        by_age.pop();
        for (_, tenant, bytes) in by_age {
            if held <= self.budget {
                break;
            }
            if Some(tenant) == keep {
                continue;
            }
            slots.remove(&tenant);
            held -= bytes;
            metrics::counter!("portcullis_authz_tenants_dropped_total").increment(1);
            tracing::info!(%tenant, bytes, budget = self.budget, "dropped a cold tenant's authorization snapshot to stay within the memory budget; its next decision builds it again");
        }
        metrics::gauge!("portcullis_authz_snapshot_bytes").set(held as f64);
        metrics::gauge!("portcullis_authz_tenants_loaded").set(slots.len() as f64);
    }

    /// How many loaded tenants hold a membership cycle (their affected principals are refused
    /// everything; the rest of the tenant works).
    pub fn tenants_with_cycles(&self) -> usize {
        self.cycles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(_, quarantined)| !quarantined.is_empty())
            .count()
    }

    /// The tenant's engine built from the store, with any membership cycle in it reported:
    /// logged, counted and audited when it first appears on this node, and logged when gone.
    async fn build(
        &self,
        store: &Store,
        tenant: TenantId,
        access: Option<Arc<Compiled>>,
    ) -> Result<Current, EngineError> {
        let current = build(store, tenant, access).await?;
        let cycles = current.engine.membership_cycles();
        let quarantined = current.engine.quarantined_principals();
        let affected = quarantined.len();
        let first_seen = {
            let mut reported = self.cycles.lock().unwrap_or_else(|p| p.into_inner());
            let (revision, before) = reported
                .entry(tenant)
                .or_insert_with(|| (i64::MIN, Vec::new()));
            if current.revision < *revision {
                return Ok(current);
            }
            let changed = *before != quarantined;
            if changed && quarantined.is_empty() {
                tracing::info!(%tenant, "the tenant's membership cycles are gone");
            }
            *revision = current.revision;
            before.clone_from(&quarantined);
            changed && !quarantined.is_empty()
        };
        metrics::gauge!("portcullis_authz_quarantined_principals", "tenant" => tenant.to_string())
            .set(affected as f64);
        if first_seen {
            let edges: Vec<_> = cycles
                .iter()
                .map(|(member, group)| serde_json::json!({"member": member, "group": group}))
                .collect();
            tracing::error!(
                %tenant, affected, cycles = %serde_json::Value::Array(edges.clone()),
                "the tenant's group memberships form a cycle: its principals on or under it are refused everything until one of these memberships is removed"
            );
            let event = NewAuditEvent {
                tenant_id: tenant,
                at: time::OffsetDateTime::now_utc(),
                actor: Actor::system(),
                action: "authz.membership_cycle".into(),
                target: cycles
                    .first()
                    .map(|(_, group)| Target::new(group.kind.as_str(), group.id)),
                outcome: Outcome::Failure,
                reason: Some(format!(
                    "group memberships form a cycle; {affected} principals are refused everything until one of the listed memberships is removed"
                )),
                origin: Origin::default(),
                details: serde_json::json!({"closing_memberships": edges, "affected_principals": affected}),
            };
            if let Err(error) = store.audit_sink().append(event).await {
                tracing::error!(%error, "could not audit a membership cycle");
            }
        }
        Ok(current)
    }

    fn loaded(&self) -> Vec<(TenantId, Arc<Slot>)> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, s)| (*t, s.clone()))
            .collect()
    }

    /// The tenant's slot, built first if this is the tenant's first decision on this node.
    async fn slot(&self, store: &Store, tenant: TenantId) -> Result<Arc<Slot>, EngineError> {
        let existing = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned();
        let asked = self.questions.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = existing {
            slot.last_used.store(asked, Ordering::Relaxed);
            return Ok(slot);
        }
        let seen = store.local_commits();
        let built = self.build(store, tenant, None).await?;
        held_revision(tenant, built.revision);
        let fresh = Arc::new(Slot::new(built, seen));
        fresh.last_used.store(asked, Ordering::Relaxed);
        // Another request may have built it meanwhile; either copy is current enough.
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant)
            .or_insert(fresh)
            .clone();
        self.fit_budget(Some(tenant));
        Ok(slot)
    }

    /// The tenant's engine, at least as fresh as demanded, and never older than this node's
    /// own writes (read-your-writes). Waits (at most `wait`) for the database to reach a
    /// demanded revision that is ahead of it.
    pub async fn fresh(
        &self,
        store: &Store,
        tenant: TenantId,
        freshness: Freshness,
        wait: Duration,
    ) -> Result<Arc<Current>, EngineError> {
        let slot = self.slot(store, tenant).await?;
        let current = slot.current.load_full();
        let unseen_local_write = slot.seen_commits.load(Ordering::Acquire) < store.local_commits();
        // The revision to reach; `None`: the database's head when first read.
        let mut wanted = match freshness {
            Freshness::Held => return Ok(current),
            Freshness::Any if !unseen_local_write => return Ok(current),
            Freshness::AtLeast(at) if !unseen_local_write && current.revision >= at => {
                return Ok(current);
            }
            Freshness::AtLeast(at) => Some(at),
            Freshness::Any | Freshness::Latest => None,
        };
        let deadline = Instant::now() + wait;
        loop {
            // Counted before the head is read: a local commit after this is caught next time.
            let seen = store.local_commits();
            let head = store.change_head(tenant).await?;
            let wanted = *wanted.get_or_insert(head);
            self.refresh_to(store, tenant, &slot, head, seen).await?;
            let current = slot.current.load_full();
            if current.revision >= wanted {
                return Ok(current);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EngineError::NotReached {
                    wanted,
                    reached: current.revision,
                });
            }
            let _ = tokio::time::timeout(
                left.min(Duration::from_millis(50)),
                self.refreshed.notified(),
            )
            .await;
        }
    }

    /// Brings a tenant's slot up to `head`, having seen `seen` local commits (counted before
    /// `head` was read): rebuilt if an authorization change is among the new rows, otherwise
    /// only its revision moves.
    async fn refresh_to(
        &self,
        store: &Store,
        tenant: TenantId,
        slot: &Slot,
        head: i64,
        seen: u64,
    ) -> Result<(), EngineError> {
        if slot.current.load().revision >= head {
            slot.seen_commits.fetch_max(seen, Ordering::AcqRel);
            return Ok(());
        }
        let _rebuilding = slot.rebuilding.lock().await;
        let current = slot.current.load_full();
        if current.revision < head {
            let since = store.changes_since(tenant, current.revision).await?;
            // Each part is remade only when a change touched it: a sign-in (which updates
            // its user) must not recompile hundreds of policies.
            let access = if since.conditional_access {
                Arc::new(compile_access(store, tenant).await?)
            } else {
                current.access.clone()
            };
            let moved = |engine| Current {
                engine,
                access: access.clone(),
                revision: since.revision,
            };
            let next = match since.authorization {
                AuthorizationChanges::Unchanged => moved(current.engine.clone()),
                AuthorizationChanges::Delta(delta) => {
                    match apply(current.engine.clone(), *delta).await? {
                        Ok(engine) => moved(Arc::new(engine)),
                        Err(stale) => {
                            tracing::debug!(%tenant, reason = %stale, "the changes need the snapshot built again");
                            metrics::counter!("portcullis_authz_snapshot_rebuilds_total", "tenant" => tenant.to_string(), "why" => "stale").increment(1);
                            self.build(store, tenant, Some(access.clone())).await?
                        }
                    }
                }
                AuthorizationChanges::Rebuild => {
                    metrics::counter!("portcullis_authz_snapshot_rebuilds_total", "tenant" => tenant.to_string(), "why" => "reshaped").increment(1);
                    self.build(store, tenant, Some(access.clone())).await?
                }
            };
            slot.store(tenant, next);
            self.refreshed.notify_waiters();
        }
        slot.seen_commits.fetch_max(seen, Ordering::AcqRel);
        Ok(())
    }

    /// Brings every loaded tenant up to the database's heads. One tenant that cannot be
    /// refreshed does not hold the others back; the first such error is returned.
    async fn refresh_all(&self, store: &Store) -> Result<(), EngineError> {
        let loaded = self.loaded();
        if loaded.is_empty() {
            return Ok(());
        }
        let seen = store.local_commits();
        let heads: HashMap<TenantId, i64> = store.change_heads().await?.into_iter().collect();
        let mut first_error = None;
        for (tenant, slot) in loaded {
            let Some(head) = heads.get(&tenant) else {
                continue;
            };
            if let Err(error) = self.refresh_to(store, tenant, &slot, *head, seen).await {
                tracing::warn!(%tenant, %error, "cannot refresh the tenant's authorization snapshot");
                first_error.get_or_insert(error);
            }
        }
        // Changes grow snapshots too.
        self.fit_budget(None);
        first_error.map_or(Ok(()), Err)
    }
}

/// The tenant's conditional access policies compiled from the store.
async fn compile_access(store: &Store, tenant: TenantId) -> Result<Compiled, EngineError> {
    let access = store.conditional_access(tenant).await?;
    Ok(Compiled::build(
        access.policies,
        &access.locations,
        &access.settings,
    ))
}

/// The engine after `delta`, made off the async workers (a large delta is milliseconds of
/// work), and timed; `Err(Stale)` when only a build takes the changes in.
async fn apply(
    engine: Arc<TenantEngine>,
    delta: Delta,
) -> Result<Result<TenantEngine, Stale>, EngineError> {
    let started = Instant::now();
    let applied = tokio::task::spawn_blocking(move || engine.apply(&delta))
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?;
    metrics::histogram!("portcullis_authz_snapshot_apply_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(applied)
}

/// The tenant's engine built from the store, timed, and its conditional access (`access`, or
/// compiled from the store). The policies are read after the revision: a change between the
/// two reads is then compiled in and read again at the next revision, never missed.
async fn build(
    store: &Store,
    tenant: TenantId,
    access: Option<Arc<Compiled>>,
) -> Result<Current, EngineError> {
    let started = Instant::now();
    let (source, revision) = store.authz_source(tenant).await?;
    let read = started.elapsed();
    let access = match access {
        Some(kept) => kept,
        None => Arc::new(compile_access(store, tenant).await?),
    };
    let indexing = Instant::now();
    let engine = tokio::task::spawn_blocking(move || TenantEngine::build(source))
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
    metrics::histogram!("portcullis_authz_snapshot_build_seconds")
        .record(started.elapsed().as_secs_f64());
    // Builds are rare (first use, reshaping changes): worth a line each, with where the time
    // went.
    tracing::info!(
        %tenant,
        revision,
        read_ms = read.as_millis() as u64,
        index_ms = indexing.elapsed().as_millis() as u64,
        mib = engine.heap_bytes() >> 20,
        "authorization snapshot built"
    );
    Ok(Current {
        engine: Arc::new(engine),
        access,
        revision,
    })
}

/// Tails the change feed until the task is dropped.
pub async fn run(state: AppState) {
    let poll = Duration::from_millis(state.config.authz_poll_interval_ms);
    let mut listener = None;
    loop {
        if listener.is_none() {
            match state.store.listen_for_changes().await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' changes; polling")
                }
            }
        }
        let woken_by_peer = async {
            match listener.as_mut() {
                Some(l) => l.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            heard = woken_by_peer => {
                if let Err(e) = heard {
                    tracing::warn!(error = %e, "lost the change-feed listener; reconnecting");
                    listener = None;
                }
            }
            () = state.store.committed() => {}
            () = tokio::time::sleep(poll) => {}
        }
        if let Err(e) = state.engines.refresh_all(&state.store).await {
            tracing::warn!(error = %e, "cannot refresh authorization snapshots");
            tokio::time::sleep(poll).await;
        }
    }
}

/// Whether `principal` is one of the tenant's administrators now (may do any of Portcullis's
/// own actions), on a snapshot that reflects every change committed before the question.
pub(crate) async fn is_administrator(
    state: &AppState,
    tenant: TenantId,
    principal: PrincipalRef,
) -> Result<bool, EngineError> {
    let wait = Duration::from_millis(state.config.authz_max_wait_ms);
    let current = state
        .engines
        .fresh(&state.store, tenant, Freshness::Latest, wait)
        .await?;
    let now = portcullis_core::engine::tenant::instant(state.clock.now());
    Ok(current.engine.is_administrator(principal, now))
}
