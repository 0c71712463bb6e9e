//! Reading the audit trail, and appending events that accompany no change (denied requests,
//! failed authentications). Those, and the small writes of the token endpoints, go through the
//! `AuditSink`, which commits concurrent writes together in one transaction (group commit: one
//! fsync for many) and acknowledges each only after that commit.

use std::collections::{HashMap, VecDeque};

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use portcullis_core::TenantId;
use portcullis_core::audit::{Actor, AuditRecord, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::page::{Page, PageRequest};

use crate::db::{Query, Row, Tx, query};
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

    /// The group-commit writer for events without a change and for small writes on hot paths
    /// (tokens), shared by every clone of this store and started on first use.
    pub fn audit_sink(&self) -> AuditSink {
        self.group
            .get_or_init(|| {
                let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
                tokio::spawn(run_sink(self.clone(), receiver));
                AuditSink { sender }
            })
            .clone()
    }

    /// Runs `statements` in order and appends `events`, in a transaction shared with other
    /// concurrent writes (one commit, one fsync, for all of them); returns each statement's
    /// affected rows once that transaction has committed. The statements of one call are
    /// all-or-nothing: a failing one undoes the others of the same call, and its events.
    pub(crate) async fn group_write(
        &self,
        statements: Vec<Query>,
        events: Vec<NewAuditEvent>,
    ) -> Result<Vec<u64>, StoreError> {
        let job = Job {
            statements,
            events,
            each_must_change: false,
        };
        self.audit_sink()
            .submit(job)
            .await
            .map(|(affected, _)| affected)
    }

    /// Like `group_write`, but each statement must change a row: the first that changes none
    /// undoes the call's earlier statements and stops it. True when all of them changed rows.
    /// ("Mark the code used, then issue its refresh token" issues nothing if the code was used.)
    pub(crate) async fn group_write_all(&self, statements: Vec<Query>) -> Result<bool, StoreError> {
        let count = statements.len();
        let job = Job {
            statements,
            events: Vec::new(),
            each_must_change: true,
        };
        let (affected, _) = self.audit_sink().submit(job).await?;
        Ok(affected.len() == count && affected.iter().all(|n| *n > 0))
    }
}

/// How many writes share one transaction at most.
const MAX_BATCH: usize = 1024;

/// One caller's part of a group commit.
struct Job {
    statements: Vec<Query>,
    events: Vec<NewAuditEvent>,
    each_must_change: bool,
}

type JobOutcome = Result<(Vec<u64>, Vec<AuditRecord>), StoreError>;
type Pending = (Job, oneshot::Sender<JobOutcome>);

/// Appends events, and runs small writes, with group commit. Cloneable; every clone feeds the
/// same writer.
#[derive(Clone)]
pub struct AuditSink {
    sender: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

impl AuditSink {
    /// Appends one event and returns its record once the transaction holding it has committed.
    pub async fn append(&self, event: NewAuditEvent) -> Result<AuditRecord, StoreError> {
        let job = Job {
            statements: Vec::new(),
            events: vec![event],
            each_must_change: false,
        };
        let (_, mut records) = self.submit(job).await?;
        records
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the audit writer returned no record".into()))
    }

    async fn submit(&self, job: Job) -> JobOutcome {
        let (ack, done) = oneshot::channel();
        self.sender
            .send((job, ack))
            .await
            .map_err(|_| StoreError::AuditWriterStopped)?;
        done.await.map_err(|_| StoreError::AuditWriterStopped)?
    }
}

async fn run_sink(store: Store, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<Pending> = std::mem::take(&mut batch);
        let mut answers: Vec<Option<JobOutcome>> = Vec::with_capacity(jobs.len());
        let outcome = commit_batch(&store, jobs, &mut answers).await;
        match outcome {
            Ok(acks) => {
                for (ack, answer) in acks.into_iter().zip(answers) {
                    if let Some(answer) = answer {
                        let _ = ack.send(answer);
                    }
                }
            }
            Err((acks, error)) => {
                tracing::error!(%error, "group commit failed");
                for ack in acks {
                    let _ = ack.send(Err(StoreError::Corrupt(format!(
                        "the shared transaction failed: {error}"
                    ))));
                }
            }
        }
    }
}

type Acks = Vec<oneshot::Sender<JobOutcome>>;

/// Runs a batch in one transaction. Each job's statements run inside a savepoint, so one
/// failing job is undone alone; the events of the jobs that succeeded are appended after.
async fn commit_batch(
    store: &Store,
    jobs: Vec<Pending>,
    answers: &mut Vec<Option<JobOutcome>>,
) -> Result<Acks, (Acks, StoreError)> {
    let (jobs, acks): (Vec<Job>, Acks) = jobs.into_iter().unzip();
    let mut tx = match store.pools.begin().await {
        Ok(tx) => tx,
        Err(e) => return Err((acks, e)),
    };
    let mut events: Vec<NewAuditEvent> = Vec::new();
    let mut owners: HashMap<TenantId, VecDeque<usize>> = HashMap::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let affected = if job.statements.is_empty() {
            Ok(Vec::new())
        } else {
            run_in_savepoint(&mut tx, job.statements, job.each_must_change).await
        };
        match affected {
            Ok(affected) => {
                for event in job.events {
                    owners.entry(event.tenant_id).or_default().push_back(index);
                    events.push(event);
                }
                answers.push(Some(Ok((affected, Vec::new()))));
            }
            Err(e) => answers.push(Some(Err(e))),
        }
    }
    let records = match crate::write::append(&mut tx, events, Vec::new()).await {
        Ok(records) => records,
        Err(e) => return Err((acks, e)),
    };
    if let Err(e) = tx.commit().await {
        return Err((acks, e));
    }
    // Records come back grouped by tenant, each tenant's in submission order.
    for record in records {
        if let Some(index) = owners
            .get_mut(&record.tenant_id)
            .and_then(VecDeque::pop_front)
            && let Some(Some(Ok((_, records)))) = answers.get_mut(index)
        {
            records.push(record);
        }
    }
    Ok(acks)
}

async fn run_in_savepoint(
    tx: &mut Tx,
    statements: Vec<Query>,
    each_must_change: bool,
) -> Result<Vec<u64>, StoreError> {
    tx.execute(query("SAVEPOINT group_job")).await?;
    let mut affected = Vec::with_capacity(statements.len());
    for statement in statements {
        let outcome = tx.execute(statement).await;
        let undo = match &outcome {
            Ok(n) => each_must_change && *n == 0,
            Err(_) => true,
        };
        if undo {
            tx.execute(query("ROLLBACK TO SAVEPOINT group_job")).await?;
            tx.execute(query("RELEASE SAVEPOINT group_job")).await?;
            return outcome.map(|n| {
                affected.push(n);
                affected
            });
        }
        affected.push(outcome?);
    }
    tx.execute(query("RELEASE SAVEPOINT group_job")).await?;
    Ok(affected)
}
