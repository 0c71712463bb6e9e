//! Single-use links: an invitation to choose a first password, a reset of a forgotten one, a
//! proof that an address is the user's. Only the keyed hash of the link's secret is stored.
//! Creating one replaces the user's unused links of the same journey, and may post it by mail
//! in the same transaction. Using one is checked again inside the transaction that acts on
//! it, so of two simultaneous uses exactly one succeeds.

use serde_json::{Value, json};
use time::OffsetDateTime;

use portcullis_core::identity::LifecycleState;
use portcullis_core::mail::{LINKS_PER_HOUR, LinkPurpose};
use portcullis_core::{TenantId, UserId};

use crate::db::{assembled_query, placeholders, query};
use crate::mail::Letter;
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
    /// A verification link for an address the account no longer has.
    AddressChanged,
}

/// A link to create for a user.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub user_id: UserId,
    pub purpose: LinkPurpose,
    pub token_hash: String,
    pub expires_at: OffsetDateTime,
    /// Mail it to the address on the user's account: the link sealed with the key-encryption
    /// key, and what else the message says. `None`: it is shown to whoever created it.
    pub mail: Option<MailedLink>,
}

#[derive(Debug, Clone)]
pub struct MailedLink {
    pub sealed_link: String,
    pub params: Value,
}

/// What creating a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    /// How many unused links of the same journey it replaced (they no longer work).
    pub replaced: u64,
    /// The address it was posted to.
    pub sent_to: Option<String>,
}

/// The audit action of creating a link for `purpose`.
fn created_action(purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::Enrol => "user.enrolment_link.create",
        LinkPurpose::Reset => "user.password_reset.request",
        LinkPurpose::Verify => "user.email_verification.send",
    }
}

impl Store {
    /// Creates a link for an active user, replacing their unused links of the same journey,
    /// and posts it to the address on their account when `new.mail` says so. At most
    /// `LINKS_PER_HOUR` reset (or verification) messages go to one account in an hour: beyond
    /// that the write is refused (a conflict on `limit`), checked inside the transaction so
    /// simultaneous requests cannot all pass.
    pub async fn create_link(
        &self,
        ctx: &WriteContext,
        new: NewLink,
    ) -> Result<CreatedLink, StoreError> {
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_optional(
                query(
                    "SELECT state, expires_at, email FROM users WHERE tenant_id = $1 AND id = $2",
                )
                .bind(ctx.tenant_id)
                .bind(new.user_id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        if !usable(&row, ctx.now)? {
            return Err(StoreError::conflict(
                "state",
                "the user is not active (disabled, deleted or past their expiry); enable, restore or extend it first",
            ));
        }
        let email = row.opt_text("email")?;
        let sent_to = match (&new.mail, email) {
            (None, _) => None,
            (Some(_), Some(email)) => Some(email),
            (Some(_), None) => {
                return Err(StoreError::conflict(
                    "email",
                    "the user has no e-mail address to send it to",
                ));
            }
        };
        if new.purpose.limited() && sent_to.is_some() {
            let recent = w
                .fetch_one(
                    query(
                        "SELECT COUNT(*) AS n FROM mail_outbox WHERE tenant_id = $1 AND user_id = $2 \
                         AND kind = $3 AND created_at > $4",
                    )
                    .bind(ctx.tenant_id)
                    .bind(new.user_id)
                    .bind(new.purpose.message().as_str())
                    .bind(ctx.now - time::Duration::hours(1)),
                )
                .await?
                .int("n")?;
            if recent >= LINKS_PER_HOUR {
                return Err(StoreError::conflict(
                    "limit",
                    format!(
                        "{LINKS_PER_HOUR} such messages were sent to this account in the last hour; try again later"
                    ),
                ));
            }
        }
        let replaces = new.purpose.replaces();
        let mut replace = assembled_query(format!(
            "DELETE FROM enrolment_links WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL \
             AND purpose IN ({})",
            placeholders(3, replaces.len())
        ))
        .bind(ctx.tenant_id)
        .bind(new.user_id);
        for purpose in replaces {
            replace = replace.bind(*purpose);
        }
        let replaced = w.execute(replace).await?;
        w.execute(
            query(
                "INSERT INTO enrolment_links (token_hash, tenant_id, user_id, created_at, expires_at, purpose, sent_to) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new.token_hash)
            .bind(ctx.tenant_id)
            .bind(new.user_id)
            .bind(ctx.now)
            .bind(new.expires_at)
            .bind(new.purpose.as_str())
            .bind(sent_to.clone()),
        )
        .await?;
        if let (Some(mail), Some(recipient)) = (new.mail, &sent_to) {
            w.post(Letter {
                user_id: new.user_id,
                recipient: recipient.clone(),
                kind: new.purpose.message(),
                params: mail.params,
                sealed_link: Some(mail.sealed_link),
            })
            .await?;
        }
        w.record(
            created_action(new.purpose),
            "user",
            new.user_id,
            "update",
            json!({
                "expires_at": new.expires_at.unix_timestamp(),
                "replaced": replaced,
                "mailed": sent_to.is_some(),
            }),
        );
        w.commit().await?;
        Ok(CreatedLink { replaced, sent_to })
    }

    /// The user a link of `purpose` is for, if it can be used now.
    pub async fn link_user(
        &self,
        tenant_id: TenantId,
        purpose: LinkPurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Result<UserId, UnusableLink>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT l.user_id, l.expires_at, l.used_at, u.state, u.expires_at AS user_expires_at \
                     FROM enrolment_links l JOIN users u ON u.id = l.user_id \
                     WHERE l.tenant_id = $1 AND l.token_hash = $2 AND l.purpose = $3",
                )
                .bind(tenant_id)
                .bind(token_hash)
                .bind(purpose.as_str()),
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
        if !usable_as(&row, "user_expires_at", now)? {
            return Ok(Err(UnusableLink::UserInactive));
        }
        Ok(Ok(row.parse("user_id")?))
    }

    /// Uses up the link in `w`: marks it used and returns its user and the address it was
    /// mailed to, if it can be used; else why not, with nothing changed.
    async fn take_link(
        &self,
        w: &mut crate::write::Write,
        purpose: LinkPurpose,
        token_hash: &str,
    ) -> Result<Result<(UserId, Option<String>), UnusableLink>, StoreError> {
        let (tenant_id, now) = (w.ctx.tenant_id, w.ctx.now);
        let taken = w
            .fetch_optional(
                query(
                    "UPDATE enrolment_links SET used_at = $3 WHERE tenant_id = $1 AND token_hash = $2 \
                     AND purpose = $4 AND used_at IS NULL AND expires_at > $3 RETURNING user_id, sent_to",
                )
                .bind(tenant_id)
                .bind(token_hash)
                .bind(now)
                .bind(purpose.as_str()),
            )
            .await?;
        let Some(taken) = taken else {
            return Ok(Err(self
                .link_user(tenant_id, purpose, token_hash, now)
                .await?
                .err()
                .unwrap_or(UnusableLink::Used)));
        };
        let user_id: UserId = taken.parse("user_id")?;
        let user = w
            .fetch_optional(
                query("SELECT state, expires_at FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        if !usable(&user, now)? {
            return Ok(Err(UnusableLink::UserInactive));
        }
        Ok(Ok((user_id, taken.opt_text("sent_to")?)))
    }

    /// Uses an invitation or reset link: marks it used, sets the user's password (`hash`) and
    /// ends their sessions, all or nothing. A link that came by mail to the address the
    /// account still has proves that address too.
    pub async fn redeem_password_link(
        &self,
        ctx: &WriteContext,
        purpose: LinkPurpose,
        token_hash: &str,
        hash: String,
    ) -> Result<Result<UserId, UnusableLink>, StoreError> {
        let mut w = self.write(ctx).await?;
        let (user_id, sent_to) = match self.take_link(&mut w, purpose, token_hash).await? {
            Ok(taken) => taken,
            Err(why) => return Ok(Err(why)),
        };
        let ended = crate::passwords::write_password(&mut w, user_id, hash, false).await?;
        let verified = prove_address(&mut w, user_id, sent_to.as_deref()).await?;
        let (action, details) = match purpose {
            LinkPurpose::Reset => (
                "user.password.reset",
                json!({"sessions_ended": ended, "email_verified": verified}),
            ),
            _ => (
                "user.enrolment_link.redeem",
                json!({"password_set": true, "sessions_ended": ended, "email_verified": verified}),
            ),
        };
        w.record(action, "user", user_id, "update", details);
        w.commit().await?;
        Ok(Ok(user_id))
    }

    /// Uses a verification link: the address it was mailed to is proven the user's, if the
    /// account still has it.
    pub async fn redeem_verification_link(
        &self,
        ctx: &WriteContext,
        token_hash: &str,
    ) -> Result<Result<UserId, UnusableLink>, StoreError> {
        let mut w = self.write(ctx).await?;
        let (user_id, sent_to) = match self
            .take_link(&mut w, LinkPurpose::Verify, token_hash)
            .await?
        {
            Ok(taken) => taken,
            Err(why) => return Ok(Err(why)),
        };
        if !prove_address(&mut w, user_id, sent_to.as_deref()).await? {
            return Ok(Err(UnusableLink::AddressChanged));
        }
        w.record(
            "user.email.verify",
            "user",
            user_id,
            "update",
            json!({"email": sent_to}),
        );
        w.commit().await?;
        Ok(Ok(user_id))
    }
}

/// Whether the user in `row` (its `state` and `expires_at`) may act at `now`.
fn usable(row: &crate::db::Row, now: OffsetDateTime) -> Result<bool, StoreError> {
    usable_as(row, "expires_at", now)
}

fn usable_as(
    row: &crate::db::Row,
    expires_column: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    Ok(row.text("state")? == LifecycleState::Active.as_str()
        && row.opt_time(expires_column)?.is_none_or(|at| at > now))
}

/// Marks the user's address proven if it is still `sent_to`. Returns whether it is.
async fn prove_address(
    w: &mut crate::write::Write,
    user_id: UserId,
    sent_to: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(sent_to) = sent_to else {
        return Ok(false);
    };
    let (tenant_id, now) = (w.ctx.tenant_id, w.ctx.now);
    let proven = w
        .execute(
            query(
                "UPDATE users SET email_verified = $4, updated_at = $5, version = version + 1 \
                 WHERE tenant_id = $1 AND id = $2 AND email = $3 AND email_verified = $6",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(sent_to)
            .bind(true)
            .bind(now)
            .bind(false),
        )
        .await?;
    if proven > 0 {
        return Ok(true);
    }
    let already = w
        .fetch_optional(
            query(
                "SELECT email_verified FROM users WHERE tenant_id = $1 AND id = $2 AND email = $3",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(sent_to),
        )
        .await?;
    match already {
        Some(row) => row.boolean("email_verified"),
        None => Ok(false),
    }
}
