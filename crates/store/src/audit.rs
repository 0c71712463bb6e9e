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
            "SELECT tenant_id, seq, at, actor_kind, actor_id, actor_display, actor_authentication, action, target_kind, \
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
            authentication: row
                .opt_text("actor_authentication")?
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("audit actor authentication: {e}")))?,
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
        let rows = self
            .pools
            .fetch_all(
                query(select_records!(" WHERE tenant_id = $1"))
                    .bind(tenant_id)
                    .and("seq <", page.after)
                    .and("at >=", filter.from)
                    .and("at <", filter.to)
                    .and("actor_id =", filter.actor_id.clone())
                    .and("target_id =", filter.target_id.clone())
                    .and("action =", filter.action.clone())
                    .and("outcome =", filter.outcome.map(Outcome::as_str))
                    .then_bind(" ORDER BY seq DESC LIMIT ", page.fetch_limit()),
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
    /// undoes the call's earlier statements and stops it, and its events are not written. True
    /// when all of them changed rows. ("Mark the code used, then issue its refresh token"
    /// issues nothing if the code was used.)
    pub(crate) async fn group_write_all(
        &self,
        statements: Vec<Query>,
        events: Vec<NewAuditEvent>,
    ) -> Result<bool, StoreError> {
        let count = statements.len();
        let job = Job {
            statements,
            events,
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
        let (jobs, acks): (Vec<Job>, Vec<oneshot::Sender<JobOutcome>>) = batch.drain(..).unzip();
        // Most batches succeed whole: run them without savepoints (each costs statements).
        // If anything would need undoing, run the batch again with one savepoint per job.
        let mut outcome = run_batch(&store, &jobs, false).await;
        if matches!(outcome, Ok(BatchRun::Retry)) {
            outcome = run_batch(&store, &jobs, true).await;
        }
        match outcome {
            Ok(BatchRun::Done(answers)) => {
                for (ack, answer) in acks.into_iter().zip(answers) {
                    let _ = ack.send(answer);
                }
            }
            Ok(BatchRun::Retry) => {
                for ack in acks {
                    let _ = ack.send(Err(StoreError::Corrupt(
                        "a group commit could not isolate its writes".into(),
                    )));
                }
            }
            Err(error) => {
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

enum BatchRun {
    /// Committed; each job's answer.
    Done(Vec<JobOutcome>),
    /// Rolled back: a job needs undoing on its own, which takes savepoints.
    Retry,
}

/// Runs a batch in one transaction, then appends the events of the jobs that succeeded. With
/// `isolated`, each job runs inside a savepoint, so a failing job is undone alone; without,
/// anything that would need undoing rolls the whole batch back (`Retry`).
async fn run_batch(store: &Store, jobs: &[Job], isolated: bool) -> Result<BatchRun, StoreError> {
    let mut tx = store.pools.begin().await?;
    let mut answers: Vec<JobOutcome> = Vec::with_capacity(jobs.len());
    let mut events: Vec<NewAuditEvent> = Vec::new();
    let mut owners: HashMap<TenantId, VecDeque<usize>> = HashMap::new();
    for (index, job) in jobs.iter().enumerate() {
        let affected = if job.statements.is_empty() {
            Ok(Vec::new())
        } else if isolated {
            run_in_savepoint(&mut tx, job.statements.clone(), job.each_must_change).await
        } else {
            match run_plain(&mut tx, &job.statements, job.each_must_change).await {
                Some(affected) => Ok(affected),
                // Dropping the transaction rolls it back.
                None => return Ok(BatchRun::Retry),
            }
        };
        match affected {
            Ok(affected) => {
                // A job stops at the first statement that changed nothing (reported as 0).
                let stopped = job.each_must_change
                    && (affected.len() < job.statements.len() || affected.contains(&0));
                if !stopped {
                    for event in &job.events {
                        owners.entry(event.tenant_id).or_default().push_back(index);
                        events.push(event.clone());
                    }
                }
                answers.push(Ok((affected, Vec::new())));
            }
            Err(e) => answers.push(Err(e)),
        }
    }
    let records = crate::write::append(&mut tx, events, Vec::new()).await?;
    tx.commit().await?;
    // Records come back grouped by tenant, each tenant's in submission order.
    for record in records {
        if let Some(index) = owners
            .get_mut(&record.tenant_id)
            .and_then(VecDeque::pop_front)
            && let Some(Ok((_, records))) = answers.get_mut(index)
        {
            records.push(record);
        }
    }
    Ok(BatchRun::Done(answers))
}

/// A job without a savepoint: fine while nothing needs undoing. A first statement that
/// changes nothing stops a job cleanly; a later one, or an error, needs the savepoint (`None`).
async fn run_plain(tx: &mut Tx, statements: &[Query], each_must_change: bool) -> Option<Vec<u64>> {
    let mut affected = Vec::with_capacity(statements.len());
    for (position, statement) in statements.iter().enumerate() {
        match tx.execute(statement.clone()).await {
            Ok(0) if each_must_change && position == 0 => {
                affected.push(0);
                return Some(affected);
            }
            Ok(0) if each_must_change => return None,
            Ok(n) => affected.push(n),
            Err(_) => return None,
        }
    }
    Some(affected)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes that share a group commit succeed or fail each on its own: a failing one is
    /// undone alone, and a guard that changes nothing stops only its own write.
    #[tokio::test]
    async fn a_failing_write_in_a_group_commit_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let bad = query(
            "INSERT INTO revoked_access_tokens (jti, tenant_id, expires_at) VALUES ('x', 'no such tenant', 0)",
        );
        let harmless = query("DELETE FROM revoked_access_tokens WHERE expires_at < 0");
        let guarded = vec![
            query("UPDATE refresh_tokens SET used_at = 1 WHERE token_hash = 'none'"),
            query("DELETE FROM revoked_access_tokens"),
        ];
        let (failed, fine, stopped) = tokio::join!(
            store.group_write(vec![harmless.clone(), bad], Vec::new()),
            store.group_write(vec![harmless], Vec::new()),
            store.group_write_all(guarded, Vec::new()),
        );
        assert!(failed.is_err(), "the foreign key is enforced");
        assert_eq!(fine.unwrap(), vec![0]);
        assert!(!stopped.unwrap());
        // The writer is still healthy afterwards.
        assert!(
            store
                .group_write(vec![query("DELETE FROM revoked_access_tokens")], Vec::new())
                .await
                .is_ok()
        );
    }
}
