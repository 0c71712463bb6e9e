//! The outbox: messages to users, written in the same transaction as the change they tell of
//! and delivered afterwards by the server's sender, which claims due rows for a while so two
//! nodes never send one message at once. Rows stay, without their link, as the record of
//! what was sent, until the sweeper forgets them.

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use portcullis_core::mail::{MailKind, Notice, notice_for};
use portcullis_core::{TenantId, UserId};

use crate::db::{Row, query};
use crate::write::Write;
use crate::{Store, StoreError};

/// A message to post: to a user at an address, of a kind, with what it needs to say. A link
/// it carries is sealed by the caller with the key-encryption key; nothing else is secret.
#[derive(Debug, Clone)]
pub struct Letter {
    pub user_id: UserId,
    pub recipient: String,
    pub kind: MailKind,
    pub params: Value,
    pub sealed_link: Option<String>,
}

/// A message claimed for delivery.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub recipient: String,
    pub kind: MailKind,
    pub params: Value,
    pub sealed_link: Option<String>,
    /// Deliveries tried before, this one included.
    pub attempts: i64,
    pub created_at: OffsetDateTime,
}

/// A message as the record of what was sent to a user.
#[derive(Debug, Clone)]
pub struct SentMail {
    pub kind: MailKind,
    pub recipient: String,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub attempts: i64,
    /// Still to be tried.
    pub pending: bool,
    pub last_error: Option<String>,
}

fn queued_from_row(row: &Row) -> Result<QueuedMail, StoreError> {
    Ok(QueuedMail {
        id: row.text("id")?,
        tenant_id: row.parse("tenant_id")?,
        user_id: row.parse("user_id")?,
        recipient: row.text("recipient")?,
        kind: row.named("kind", MailKind::parse)?,
        params: serde_json::from_str(&row.text("params")?)
            .map_err(|e| StoreError::Corrupt(format!("mail params: {e}")))?,
        sealed_link: row.opt_text("sealed_link")?,
        attempts: row.int("attempts")?,
        created_at: row.time("created_at")?,
    })
}

impl Write {
    /// Posts `letter` in this write's tenant: it is sent only if the write commits.
    pub(crate) async fn post(&mut self, letter: Letter) -> Result<(), StoreError> {
        self.execute(
            query(
                "INSERT INTO mail_outbox (id, tenant_id, user_id, recipient, kind, params, sealed_link, \
                 created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(self.ctx.tenant_id)
            .bind(letter.user_id)
            .bind(letter.recipient)
            .bind(letter.kind.as_str())
            .bind(letter.params.to_string())
            .bind(letter.sealed_link)
            .bind(self.ctx.now),
        )
        .await?;
        self.posted = true;
        Ok(())
    }

    /// Posts the notices the recorded changes earn (see `notice_for`) to the address on each
    /// user's account, if they have one, when the server delivers mail.
    pub(crate) async fn post_notices(&mut self) -> Result<(), StoreError> {
        if !self.mail_enabled() {
            return Ok(());
        }
        let notices: Vec<(TenantId, Notice)> = self
            .events()
            .iter()
            .filter_map(|event| notice_for(event).map(|notice| (event.tenant_id, notice)))
            .collect();
        for (tenant_id, notice) in notices {
            let params = serde_json::to_value(&notice)
                .map_err(|e| StoreError::Corrupt(format!("notice: {e}")))?;
            let posted = self
                .execute(
                    query(
                        "INSERT INTO mail_outbox (id, tenant_id, user_id, recipient, kind, params, created_at, \
                         next_attempt_at) SELECT $1, tenant_id, id, email, $4, $5, $6, $6 FROM users \
                         WHERE tenant_id = $2 AND id = $3 AND email IS NOT NULL",
                    )
                    .bind(Uuid::now_v7().to_string())
                    .bind(tenant_id)
                    .bind(notice.user_id.clone())
                    .bind(notice.kind.as_str())
                    .bind(params.to_string())
                    .bind(self.ctx.now),
                )
                .await?;
            self.posted |= posted > 0;
        }
        Ok(())
    }
}

impl Store {
    /// Turns on posting of notices (the server does when SMTP is configured): without a way to
    /// deliver them they would only pile up.
    pub fn enable_mail(&self) {
        self.mail
            .enabled
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn mail_enabled(&self) -> bool {
        self.mail.enabled()
    }

    /// Completes once this process has posted a message since the last call (one waiter: the
    /// sender).
    pub async fn mail_posted(&self) {
        self.mail.posted.notified().await;
    }

    /// Claims up to `limit` messages due at `now`, oldest first, for `lease`: another node's
    /// sender skips them until then, and takes them over if this one died meanwhile.
    pub async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut tx = self.pools.begin().await?;
        // The outer condition is checked again on each row PostgreSQL locks, so of two nodes
        // claiming at once only one gets a row.
        let rows = tx
            .fetch_all(
                query(
                    "UPDATE mail_outbox SET next_attempt_at = $2, attempts = attempts + 1 \
                     WHERE next_attempt_at <= $1 AND id IN (SELECT id FROM mail_outbox \
                     WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3) \
                     RETURNING id, tenant_id, user_id, recipient, kind, params, sealed_link, attempts, created_at",
                )
                .bind(now)
                .bind(now + lease)
                .bind(i64::from(limit)),
            )
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(queued_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    /// Marks a message delivered and wipes the link it carried.
    pub async fn mail_delivered(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.pools
            .execute(
                query(
                    "UPDATE mail_outbox SET sent_at = $2, next_attempt_at = NULL, sealed_link = NULL, \
                     last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(now),
            )
            .await?;
        Ok(())
    }

    /// Records why a delivery failed, and when to try again (`None`: never; the link is wiped).
    pub async fn mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let q = match retry_at {
            Some(at) => query(
                "UPDATE mail_outbox SET last_error = $2, next_attempt_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(at),
            None => query(
                "UPDATE mail_outbox SET last_error = $2, next_attempt_at = NULL, sealed_link = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(error),
        };
        self.pools.execute(q).await?;
        Ok(())
    }

    /// Forgets messages posted before `before`, delivered or not. Returns how many.
    pub async fn forget_mail(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.pools
            .execute(query("DELETE FROM mail_outbox WHERE created_at < $1").bind(before))
            .await
    }

    /// The messages most recently posted to a user, newest first.
    pub async fn mail_to(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        limit: u32,
    ) -> Result<Vec<SentMail>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(
                    "SELECT kind, recipient, created_at, sent_at, attempts, next_attempt_at, last_error \
                     FROM mail_outbox WHERE tenant_id = $1 AND user_id = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SentMail {
                    kind: row.named("kind", MailKind::parse)?,
                    recipient: row.text("recipient")?,
                    created_at: row.time("created_at")?,
                    sent_at: row.opt_time("sent_at")?,
                    attempts: row.int("attempts")?,
                    pending: row.opt_int("next_attempt_at")?.is_some(),
                    last_error: row.opt_text("last_error")?,
                })
            })
            .collect()
    }
}

/// Whether mail is delivered, and who to wake when a message is posted; shared by the
/// store's clones.
#[derive(Default)]
pub(crate) struct MailState {
    enabled: std::sync::atomic::AtomicBool,
    pub(crate) posted: tokio::sync::Notify,
}

impl MailState {
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Acquire)
    }
}
