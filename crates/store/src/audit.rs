//! Reading the audit trail, and appending events that accompany no change (denied requests,
//! failed authentications). Those go through the `AuditSink`, which commits concurrent events
//! together in one transaction (group commit) and acknowledges each only after that commit.

use std::collections::{HashMap, VecDeque};

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, AuditRecord, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::page::{Page, PageRequest};

use crate::db::{Row, query};
use crate::{Store, StoreError};

/// What to select from a tenant's audit trail. Absent fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
}

/// A full SELECT of audit records followed by `$tail`, built at compile time.
macro_rules! select_records {
    ($tail:expr) => {
        concat!(
            "SELECT tenant_id, seq, at, actor_kind, actor_id, actor_display, action, target_kind, \
             target_id, outcome, reason, source_ip, user_agent, request_id, details, prev_hash, hash FROM audit_events",
            $tail
        )
    };
}

fn record_from_row(row: &Row) -> Result<AuditRecord, StoreError> {
    let target = match (row.opt_text("target_kind")?, row.opt_text("target_id")?) {
        (Some(kind), Some(id)) => Some(Target { kind, id }),
        _ => None,
    };
    let details = serde_json::from_str(&row.text("details")?)
        .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?;
    Ok(AuditRecord {
        tenant_id: row.parse("tenant_id")?,
        seq: row.int("seq")?,
        at: row.time("at")?,
        actor: Actor {
            kind: row.text("actor_kind")?,
            id: row.opt_text("actor_id")?,
            display: row.opt_text("actor_display")?,
        },
        action: row.text("action")?,
        target,
        outcome: row.named("outcome", Outcome::parse)?,
        reason: row.opt_text("reason")?,
        origin: Origin {
            source_ip: row.opt_text("source_ip")?,
            user_agent: row.opt_text("user_agent")?,
            request_id: row.opt_text("request_id")?,
        },
        details,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

impl Store {
    /// A tenant's events, newest first, filtered. The cursor is a sequence number.
    pub async fn audit_events(
        &self,
        tenant_id: TenantId,
        filter: &AuditFilter,
        page: PageRequest<i64>,
    ) -> Result<Page<AuditRecord>, StoreError> {
        const SQL: &str = select_records!(
            " WHERE tenant_id = $1 AND ($2 IS NULL OR seq < $2) AND ($3 IS NULL OR at >= $3) \
             AND ($4 IS NULL OR at < $4) AND ($5 IS NULL OR actor_id = $5) AND ($6 IS NULL OR target_id = $6) \
             AND ($7 IS NULL OR action = $7) AND ($8 IS NULL OR outcome = $8) ORDER BY seq DESC LIMIT $9"
        );
        let rows = self
            .pools
            .fetch_all(
                query(SQL)
                    .bind(tenant_id)
                    .bind(page.after)
                    .bind(filter.from)
                    .bind(filter.to)
                    .bind(filter.actor_id.clone())
                    .bind(filter.target_id.clone())
                    .bind(filter.action.clone())
                    .bind(filter.outcome.map(Outcome::as_str))
                    .bind(page.fetch_limit()),
            )
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(records, |r| r.seq))
    }

    /// A tenant's chain in order, from the record after `after_seq`: what a verifier reads.
    pub async fn audit_chain(
        &self,
        tenant_id: TenantId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        const SQL: &str =
            select_records!(" WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        let rows = self
            .pools
            .fetch_all(
                query(SQL)
                    .bind(tenant_id)
                    .bind(after_seq)
                    .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The sequence number and hash of a tenant's newest record.
    pub async fn audit_head(&self, tenant_id: TenantId) -> Result<(i64, String), StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT audit_seq, audit_hash FROM tenant_heads WHERE tenant_id = $1")
                    .bind(tenant_id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((row.int("audit_seq")?, row.text("audit_hash")?))
    }

    /// Appends events in one transaction, without any accompanying change.
    pub async fn append_audit(
        &self,
        events: Vec<NewAuditEvent>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut tx = self.pools.begin().await?;
        let records = crate::write::append(&mut tx, events, Vec::new()).await?;
        tx.commit().await?;
        Ok(records)
    }

    /// Starts the group-commit writer for events without a change. `max_batch` bounds how many
    /// events share one transaction.
    pub fn audit_sink(&self, max_batch: usize) -> AuditSink {
        let (sender, receiver) = mpsc::channel(max_batch * 4);
        tokio::spawn(run_sink(self.clone(), receiver, max_batch.max(1)));
        AuditSink { sender }
    }
}

type Pending = (NewAuditEvent, oneshot::Sender<Result<AuditRecord, String>>);

/// Appends events with group commit. Cloneable; every clone feeds the same writer.
#[derive(Clone)]
pub struct AuditSink {
    sender: mpsc::Sender<Pending>,
}

impl AuditSink {
    /// Appends one event and returns its record once the transaction holding it has committed.
    pub async fn append(&self, event: NewAuditEvent) -> Result<AuditRecord, StoreError> {
        let (ack, done) = oneshot::channel();
        self.sender
            .send((event, ack))
            .await
            .map_err(|_| StoreError::AuditWriterStopped)?;
        match done.await {
            Ok(Ok(record)) => Ok(record),
            Ok(Err(message)) => Err(StoreError::Corrupt(message)),
            Err(_) => Err(StoreError::AuditWriterStopped),
        }
    }
}

async fn run_sink(store: Store, mut receiver: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        let mut waiting: HashMap<TenantId, VecDeque<oneshot::Sender<_>>> = HashMap::new();
        let events: Vec<NewAuditEvent> = batch
            .drain(..)
            .map(|(event, ack)| {
                waiting.entry(event.tenant_id).or_default().push_back(ack);
                event
            })
            .collect();
        match store.append_audit(events).await {
            Ok(records) => {
                // Records come back grouped by tenant, each tenant's in submission order.
                for record in records {
                    if let Some(ack) = waiting
                        .get_mut(&record.tenant_id)
                        .and_then(VecDeque::pop_front)
                    {
                        let _ = ack.send(Ok(record));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "audit append failed");
                for ack in waiting.into_values().flatten() {
                    let _ = ack.send(Err(error.to_string()));
                }
            }
        }
    }
}
