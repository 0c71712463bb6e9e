//! Enrolment links: instead of being told a first password, a user gets a single-use,
//! expiring link with which they choose their own. Only the keyed hash of the link's secret
//! is stored. Redeeming it marks it used, sets the password and ends the user's sessions in
//! one transaction, so of two simultaneous redemptions exactly one succeeds.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::identity::LifecycleState;
use portcullis_core::{TenantId, UserId};

use crate::db::query;
use crate::{Store, StoreError, WriteContext};

/// Why a link cannot be used: the page says which, as none of them reveals anything to whoever
/// holds the link that its holder did not already know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnusableLink {
    /// No such link (mistyped, or replaced by a newer one).
    Unknown,
    Expired,
    Used,
    /// Its user is disabled, deleted or past their expiry.
    UserInactive,
}

impl Store {
    /// Creates the user's enrolment link, replacing any unused one. The user must be active.
    /// Returns how many unused links it replaced.
    pub async fn create_enrolment_link(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_optional(
                query("SELECT state FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        if row.text("state")? != LifecycleState::Active.as_str() {
            return Err(StoreError::conflict(
                "state",
                "the user is not active; enable or restore it first",
            ));
        }
        let replaced = w
            .execute(
                query(
                    "DELETE FROM enrolment_links WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
                )
                .bind(ctx.tenant_id)
                .bind(user_id),
            )
            .await?;
        w.execute(
            query(
                "INSERT INTO enrolment_links (token_hash, tenant_id, user_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(ctx.tenant_id)
            .bind(user_id)
            .bind(ctx.now)
            .bind(expires_at),
        )
        .await?;
        w.record(
            "user.enrolment_link.create",
            "user",
            user_id,
            "update",
            json!({"expires_at": expires_at.unix_timestamp(), "replaced": replaced}),
        );
        w.commit().await?;
        Ok(replaced)
    }

    /// The user a link is for, if it can be used now.
    pub async fn enrolment_link_user(
        &self,
        tenant_id: TenantId,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Result<UserId, UnusableLink>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT l.user_id, l.expires_at, l.used_at, u.state, u.expires_at AS user_expires_at \
                     FROM enrolment_links l JOIN users u ON u.id = l.user_id \
                     WHERE l.tenant_id = $1 AND l.token_hash = $2",
                )
                .bind(tenant_id)
                .bind(token_hash),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Err(UnusableLink::Unknown));
        };
        if row.opt_time("used_at")?.is_some() {
            return Ok(Err(UnusableLink::Used));
        }
        if row.time("expires_at")? <= now {
            return Ok(Err(UnusableLink::Expired));
        }
        let active = row.text("state")? == LifecycleState::Active.as_str()
            && row.opt_time("user_expires_at")?.is_none_or(|at| at > now);
        if !active {
            return Ok(Err(UnusableLink::UserInactive));
        }
        Ok(Ok(row.parse("user_id")?))
    }

    /// Uses the link: marks it used, sets the user's password (`hash`) and ends their sessions,
    /// all or nothing. Checked again inside the transaction, so a link is used once however
    /// many redemptions race.
    pub async fn redeem_enrolment_link(
        &self,
        ctx: &WriteContext,
        token_hash: &str,
        hash: String,
    ) -> Result<Result<UserId, UnusableLink>, StoreError> {
        let mut w = self.write(ctx).await?;
        let taken = w
            .fetch_optional(
                query(
                    "UPDATE enrolment_links SET used_at = $3 WHERE tenant_id = $1 AND token_hash = $2 \
                     AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
                )
                .bind(ctx.tenant_id)
                .bind(token_hash)
                .bind(ctx.now),
            )
            .await?;
        let Some(taken) = taken else {
            drop(w);
            return Ok(Err(self
                .enrolment_link_user(ctx.tenant_id, token_hash, ctx.now)
                .await?
                .err()
                .unwrap_or(UnusableLink::Used)));
        };
        let user_id: UserId = taken.parse("user_id")?;
        let user = w
            .fetch_optional(
                query("SELECT state, expires_at FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        let active = user.text("state")? == LifecycleState::Active.as_str()
            && user.opt_time("expires_at")?.is_none_or(|at| at > ctx.now);
        if !active {
            return Ok(Err(UnusableLink::UserInactive));
        }
        let ended = crate::passwords::write_password(&mut w, user_id, hash, false).await?;
        w.record(
            "user.enrolment_link.redeem",
            "user",
            user_id,
            "update",
            json!({"password_set": true, "sessions_ended": ended}),
        );
        w.commit().await?;
        Ok(Ok(user_id))
    }
}
