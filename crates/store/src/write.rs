//! The one way to change data: open a `Write`, make the changes, describe them, commit. The
//! commit appends the audit records and change-feed rows under the tenant's head row, in the
//! same transaction as the change, so either all of it is durable or none of it is.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, AuditRecord, NewAuditEvent, Origin, Outcome, Target};

use crate::db::{Query, Row, Tx, assembled_query, query};
use crate::{Store, StoreError};

/// Who is making a change, from where, and when.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub tenant_id: TenantId,
    pub actor: Actor,
    pub origin: Origin,
    pub now: OffsetDateTime,
    /// Set for a change that can take the power to assign roles from someone: the write then
    /// refuses to commit if it would leave nobody in the tenant with it.
    pub keep_role_assigner: Option<crate::lockout::RoleAssignerGuard>,
}

impl WriteContext {
    /// An event of a successful change in the actor's tenant.
    pub fn event(&self, action: &str, target: Target, details: serde_json::Value) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id: self.tenant_id,
            at: self.now,
            actor: self.actor.clone(),
            action: action.to_owned(),
            target: Some(target),
            outcome: Outcome::Success,
            reason: None,
            origin: self.origin.clone(),
            details,
        }
    }
}

pub(crate) struct Change {
    tenant_id: TenantId,
    at: OffsetDateTime,
    entity_kind: &'static str,
    entity_id: String,
    op: &'static str,
}

/// A write transaction in progress.
pub(crate) struct Write {
    pub(crate) tx: Tx,
    pub(crate) ctx: WriteContext,
    events: Vec<NewAuditEvent>,
    changes: Vec<Change>,
    committed: std::sync::Arc<tokio::sync::Notify>,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    mail: std::sync::Arc<crate::mail::MailState>,
    /// A message was posted in this write: the sender is woken once it commits.
    pub(crate) posted: bool,
    /// The tenant's turn to write in this process, held until the write ends.
    _turn: crate::gate::Turn,
}

impl Store {
    /// Opens a write in `ctx`'s tenant. Writes to one tenant run one at a time on both stores,
    /// so every check a write makes before it acts (a cycle, a cap, a version, a uniqueness,
    /// a last-administrator rule) still holds when it commits, whatever else runs at once.
    /// SQLite has one writer connection and `BEGIN IMMEDIATE`; PostgreSQL takes the tenant's
    /// transaction-scoped advisory lock first. The lock is taken before anything else and is
    /// the only lock a write waits for with nothing held, so it cannot join a deadlock: the
    /// chain heads locked at commit are always taken after it, in tenant order.
    ///
    /// Before either, a write waits for its tenant's turn in this process (`gate`), holding no
    /// connection while it waits; a full queue refuses it as overloaded.
    pub(crate) async fn write(&self, ctx: &WriteContext) -> Result<Write, StoreError> {
        let turn = self
            .gates
            .turn(ctx.tenant_id, crate::gate::MAX_WRITE_WAIT)
            .await?;
        let tx = self
            .pools
            .begin_tenant_write(tenant_write_lock(ctx.tenant_id))
            .await?;
        Ok(Write {
            tx,
            ctx: ctx.clone(),
            events: Vec::new(),
            changes: Vec::new(),
            committed: self.committed.clone(),
            commits: self.commits.clone(),
            mail: self.mail.clone(),
            posted: false,
            _turn: turn,
        })
    }
}

/// The advisory-lock key of a tenant's writes, its id folded to 64 bits. Two tenants whose keys
/// collide only wait for each other's writes.
fn tenant_write_lock(tenant_id: TenantId) -> i64 {
    let uuid = tenant_id.as_uuid();
    let mut folded = [0u8; 8];
    for (i, b) in uuid.as_bytes().iter().enumerate() {
        folded[i % 8] ^= b;
    }
    i64::from_be_bytes(folded)
}

impl Write {
    pub(crate) fn mail_enabled(&self) -> bool {
        self.mail.enabled()
    }

    /// The events recorded so far.
    pub(crate) fn events(&self) -> &[NewAuditEvent] {
        &self.events
    }

    /// The change-feed rows this write will add to its own tenant, so far.
    pub(crate) fn pending_changes(&self) -> Vec<crate::access::FeedEntry> {
        self.changes
            .iter()
            .filter(|change| change.tenant_id == self.ctx.tenant_id)
            .map(|change| crate::access::FeedEntry {
                kind: change.entity_kind.to_owned(),
                id: change.entity_id.clone(),
                op: change.op.to_owned(),
            })
            .collect()
    }

    pub(crate) async fn execute(&mut self, q: Query) -> Result<u64, StoreError> {
        self.tx.execute(q).await
    }

    pub(crate) async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>, StoreError> {
        self.tx.fetch_all(q).await
    }

    pub(crate) async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>, StoreError> {
        self.tx.fetch_optional(q).await
    }

    pub(crate) async fn fetch_one(&mut self, q: Query) -> Result<Row, StoreError> {
        self.tx.fetch_one(q).await
    }

    /// Deletes row `id` of `table` in the writer's tenant if it is still at `expected_version`
    /// (at any version when `None`), checking the version in the statement that deletes: of
    /// writers racing to delete one row, exactly one finds it.
    pub(crate) async fn delete_versioned(
        &mut self,
        table: &'static str,
        id: impl Into<crate::db::Arg>,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let id = id.into();
        let deleted = self
            .execute(
                assembled_query(format!(
                    "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2 AND version = COALESCE($3, version)"
                ))
                .bind(self.ctx.tenant_id)
                .bind(id.clone())
                .bind(expected_version),
            )
            .await?;
        if deleted == 1 {
            return Ok(());
        }
        let current = self
            .fetch_optional(
                assembled_query(format!(
                    "SELECT version FROM {table} WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(self.ctx.tenant_id)
                .bind(id),
            )
            .await?;
        Err(match current {
            Some(row) => StoreError::VersionMismatch {
                current_version: row.int("version")?,
            },
            None => StoreError::NotFound,
        })
    }

    /// Records a change in the actor's tenant and the audit event describing it.
    pub(crate) fn record(
        &mut self,
        action: &str,
        entity_kind: &'static str,
        entity_id: impl ToString,
        op: &'static str,
        details: serde_json::Value,
    ) {
        self.record_for(
            self.ctx.tenant_id,
            action,
            entity_kind,
            entity_id,
            op,
            details,
        );
    }

    /// Records a change in the actor's tenant that its audit event (recorded by `record`)
    /// does not name: the change feed's own finer entry, such as the member whose groups a
    /// `group.member.add` changed.
    pub(crate) fn changed(&mut self, entity_kind: &'static str, entity_id: impl ToString) {
        self.changes.push(Change {
            tenant_id: self.ctx.tenant_id,
            at: self.ctx.now,
            entity_kind,
            entity_id: entity_id.to_string(),
            op: "update",
        });
    }

    /// Records a change in `tenant_id`, which may differ from the actor's (an operator creating
    /// a tenant writes the new tenant's first records).
    pub(crate) fn record_for(
        &mut self,
        tenant_id: TenantId,
        action: &str,
        entity_kind: &'static str,
        entity_id: impl ToString,
        op: &'static str,
        details: serde_json::Value,
    ) {
        let entity_id = entity_id.to_string();
        let mut event = self
            .ctx
            .event(action, Target::new(entity_kind, &entity_id), details);
        event.tenant_id = tenant_id;
        self.events.push(event);
        self.changes.push(Change {
            tenant_id,
            at: self.ctx.now,
            entity_kind,
            entity_id,
            op,
        });
    }

    /// Appends the audit records and change rows, then commits.
    pub(crate) async fn commit(mut self) -> Result<Vec<AuditRecord>, StoreError> {
        if let Some(guard) = self.ctx.keep_role_assigner.clone() {
            self.check_role_assigner(&guard).await?;
        }
        self.post_notices().await?;
        let events = std::mem::take(&mut self.events);
        let changes = std::mem::take(&mut self.changes);
        let changed = !changes.is_empty();
        let records = append(&mut self.tx, events, changes).await?;
        self.tx.commit().await?;
        if self.posted {
            self.mail.posted.notify_one();
        }
        if changed {
            self.commits
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            // One stored permit: the tail sees it even if it was busy when this committed.
            self.committed.notify_one();
        }
        Ok(records)
    }
}

/// Appends events and change rows to their tenants' chains inside `tx`. Tenants' head rows are
/// locked in id order so concurrent writers never deadlock on them.
pub(crate) async fn append(
    tx: &mut Tx,
    events: Vec<NewAuditEvent>,
    changes: Vec<Change>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut by_tenant: BTreeMap<TenantId, (Vec<NewAuditEvent>, Vec<Change>)> = BTreeMap::new();
    for event in events {
        by_tenant.entry(event.tenant_id).or_default().0.push(event);
    }
    for change in changes {
        by_tenant
            .entry(change.tenant_id)
            .or_default()
            .1
            .push(change);
    }
    let mut records = Vec::new();
    for (tenant_id, (events, changes)) in by_tenant {
        // The no-op UPDATE takes the row lock on PostgreSQL and returns the current head.
        let head = tx
            .fetch_optional(
                query(
                    "UPDATE tenant_heads SET audit_seq = audit_seq WHERE tenant_id = $1 \
                     RETURNING audit_seq, audit_hash, change_seq",
                )
                .bind(tenant_id),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("tenant {tenant_id} has no chain head")))?;
        let mut seq = head.int("audit_seq")?;
        let mut hash = head.text("audit_hash")?;
        let mut change_seq = head.int("change_seq")?;
        let chained: Vec<AuditRecord> = events
            .into_iter()
            .map(|event| {
                let record = event.chain(seq, &hash);
                seq = record.seq;
                hash.clone_from(&record.hash);
                record
            })
            .collect();
        insert_records(tx, &chained).await?;
        let first_change = change_seq + 1;
        change_seq += changes.len() as i64;
        insert_changes(tx, tenant_id, first_change, &changes).await?;
        let update_head = "UPDATE tenant_heads SET audit_seq = $2, audit_hash = $3, change_seq = $4 WHERE tenant_id = $1";
        let head = if !changes.is_empty() && tx.is_postgres() {
            // The notification is delivered at commit and wakes every node's change-feed tail
            // at once; sent from the head's own update, it costs no round trip of its own.
            assembled_query(format!(
                "{update_head} RETURNING pg_notify('portcullis_changes', $5)"
            ))
            .bind(tenant_id)
            .bind(seq)
            .bind(hash)
            .bind(change_seq)
            .bind(format!("{tenant_id} {change_seq}"))
        } else {
            query(update_head)
                .bind(tenant_id)
                .bind(seq)
                .bind(hash)
                .bind(change_seq)
        };
        tx.execute(head).await?;
        records.extend(chained);
    }
    Ok(records)
}

/// The fields that differ between two versions of an object, as `{field: {"from": …, "to": …}}`,
/// leaving out bookkeeping (`version`, `updated_at`). What an audit record of an update shows.
pub(crate) fn changed_fields(
    before: &impl serde::Serialize,
    after: &impl serde::Serialize,
) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return serde_json::Value::Null;
    };
    let changed = after
        .iter()
        .filter(|(field, value)| {
            !matches!(field.as_str(), "version" | "updated_at") && before.get(*field) != Some(value)
        })
        .map(|(field, value)| {
            let from = before
                .get(field)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            (
                field.clone(),
                serde_json::json!({"from": from, "to": value}),
            )
        })
        .collect();
    serde_json::Value::Object(changed)
}

/// Change rows per INSERT statement (six parameters each).
const CHANGES_PER_STATEMENT: usize = 40;

/// Inserts a tenant's change rows, numbered from `first_seq`, in as few statements as the
/// stores' parameter lists allow (a write's changes are usually one or two: one round trip).
async fn insert_changes(
    tx: &mut Tx,
    tenant_id: TenantId,
    first_seq: i64,
    changes: &[Change],
) -> Result<(), StoreError> {
    let mut seq = first_seq;
    for chunk in changes.chunks(CHANGES_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|row| format!("({})", crate::db::placeholders(1 + row * 6, 6)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = assembled_query(format!(
            "INSERT INTO changes (tenant_id, seq, at, entity_kind, entity_id, op) VALUES {values}"
        ));
        for change in chunk {
            q = q
                .bind(tenant_id)
                .bind(seq)
                .bind(change.at)
                .bind(change.entity_kind)
                .bind(change.entity_id.as_str())
                .bind(change.op);
            seq += 1;
        }
        tx.execute(q).await?;
    }
    Ok(())
}

const RECORD_COLUMNS: usize = 18;

/// Rows per INSERT statement. PostgreSQL gains from few large statements (fewer round trips);
/// SQLite runs in-process, and its driver looks parameters up by name in time linear in their
/// number, so large statements cost it quadratic time.
fn records_per_statement(tx: &Tx) -> usize {
    match tx {
        Tx::Sqlite(_) => 16,
        Tx::Postgres(_) => 400,
    }
}

async fn insert_records(tx: &mut Tx, records: &[AuditRecord]) -> Result<(), StoreError> {
    for chunk in records.chunks(records_per_statement(tx)) {
        let mut sql = String::from(
            "INSERT INTO audit_events (tenant_id, seq, at, actor_kind, actor_id, actor_display, actor_authentication, \
             action, target_kind, target_id, outcome, reason, source_ip, user_agent, request_id, details, prev_hash, hash) VALUES ",
        );
        for row in 0..chunk.len() {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..RECORD_COLUMNS {
                if col > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", row * RECORD_COLUMNS + col + 1));
            }
            sql.push(')');
        }
        let mut q = assembled_query(sql);
        for r in chunk {
            q = q
                .bind(r.tenant_id)
                .bind(r.seq)
                .bind(r.at)
                .bind(r.actor.kind.as_str())
                .bind(r.actor.id.clone())
                .bind(r.actor.display.clone())
                .bind(
                    r.actor
                        .authentication
                        .as_ref()
                        .map(|a| serde_json::json!(a).to_string()),
                )
                .bind(r.action.as_str())
                .bind(r.target.as_ref().map(|t| t.kind.clone()))
                .bind(r.target.as_ref().map(|t| t.id.clone()))
                .bind(r.outcome.as_str())
                .bind(r.reason.clone())
                .bind(r.origin.source_ip.clone())
                .bind(r.origin.user_agent.clone())
                .bind(r.origin.request_id.clone())
                .bind(r.details.to_string())
                .bind(r.prev_hash.as_str())
                .bind(r.hash.as_str());
        }
        tx.execute(q).await?;
    }
    Ok(())
}

/// Where a read goes: through the pool, or through an open write's own transaction. A write
/// reads through its transaction, never through the pool: on PostgreSQL it holds the tenant's
/// write lock, and waiting for a pooled connection while holding it stalls every other write
/// of the tenant (under load, all of them); the read also sees what the write has changed.
pub(crate) enum Reader<'a> {
    Pool(&'a crate::db::Pools),
    Write(&'a mut Write),
}

impl<'a> From<&'a crate::db::Pools> for Reader<'a> {
    fn from(pools: &'a crate::db::Pools) -> Self {
        Reader::Pool(pools)
    }
}

impl<'a> From<&'a mut Write> for Reader<'a> {
    fn from(write: &'a mut Write) -> Self {
        Reader::Write(write)
    }
}

impl Reader<'_> {
    /// The row `q` selects; `StoreError::NotFound` when there is none.
    pub(crate) async fn one(self, q: Query) -> Result<Row, StoreError> {
        match self {
            Reader::Pool(pools) => pools.fetch_optional(q).await,
            Reader::Write(write) => write.fetch_optional(q).await,
        }?
        .ok_or(StoreError::NotFound)
    }
}
