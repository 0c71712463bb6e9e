//! Users' passwords, stored only as Argon2id hashes. Setting or removing one is a change like
//! any other: audited (never with the password or its hash) and on the change feed.

use serde_json::json;

use portcullis_core::identity::LifecycleState;
use portcullis_core::password::PasswordStatus;
use portcullis_core::{TenantId, UserId};

use crate::db::query;
use crate::write::Write;
use crate::{Store, StoreError, StoredPassword, WriteContext};

impl Store {
    /// Sets (or replaces) a user's password hash. A deleted user cannot get one.
    pub async fn set_password(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        hash: String,
        must_change: bool,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        live_user(&mut w, user_id).await?;
        let ended = write_password(&mut w, user_id, hash, must_change).await?;
        w.record(
            "user.password.set",
            "user",
            user_id,
            "update",
            json!({"must_change": must_change, "sessions_ended": ended}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Replaces a password hash made with weaker parameters by `hash` of the same password,
    /// just verified at sign-in. Nothing else about the password changes.
    pub async fn upgrade_password_hash(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        hash: String,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query("UPDATE user_passwords SET hash = $3 WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(hash),
        )
        .await?;
        w.record("user.password.rehash", "user", user_id, "update", json!({}));
        w.commit().await?;
        Ok(())
    }

    /// Removes a user's password, so it can no longer be used to sign in.
    pub async fn remove_password(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        live_user(&mut w, user_id).await?;
        let removed = w
            .execute(
                query("DELETE FROM user_passwords WHERE tenant_id = $1 AND user_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        w.record("user.password.remove", "user", user_id, "update", json!({}));
        w.commit().await?;
        Ok(())
    }

    /// The user's stored password, for checking one typed by a signed-in user.
    pub async fn password(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Option<StoredPassword>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT hash, must_change FROM user_passwords WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant_id)
                    .bind(user_id),
            )
            .await?;
        row.map(|r| {
            Ok(StoredPassword {
                hash: r.text("hash")?,
                must_change: r.boolean("must_change")?,
            })
        })
        .transpose()
    }

    pub async fn password_status(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<PasswordStatus, StoreError> {
        // The user must exist in this tenant, whether or not it has a password.
        self.user(tenant_id, user_id).await?;
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT must_change, changed_at FROM user_passwords WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?;
        Ok(match row {
            Some(row) => PasswordStatus {
                has_password: true,
                must_change: row.boolean("must_change")?,
                changed_at: Some(row.time("changed_at")?),
            },
            None => PasswordStatus {
                has_password: false,
                must_change: false,
                changed_at: None,
            },
        })
    }
}

/// Checks, inside the write, that the user exists in the tenant and is not deleted.
/// Stores the user's password hash and ends their sessions (whoever signed in with the old
/// password is out); returns how many sessions ended.
pub(crate) async fn write_password(
    w: &mut Write,
    user_id: UserId,
    hash: String,
    must_change: bool,
) -> Result<u64, StoreError> {
    let tenant_id = w.ctx.tenant_id;
    let now = w.ctx.now;
    w.execute(
        query(
            "INSERT INTO user_passwords (user_id, tenant_id, hash, must_change, changed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
             hash = excluded.hash, must_change = excluded.must_change, changed_at = excluded.changed_at",
        )
        .bind(user_id)
        .bind(tenant_id)
        .bind(hash)
        .bind(must_change)
        .bind(now),
    )
    .await?;
    crate::sessions::end_all_sessions(w, user_id).await
}

async fn live_user(w: &mut Write, user_id: UserId) -> Result<(), StoreError> {
    let tenant_id = w.ctx.tenant_id;
    let row = w
        .fetch_optional(
            query("SELECT state FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(user_id),
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    if row.text("state")? == LifecycleState::Deleted.as_str() {
        return Err(StoreError::conflict(
            "state",
            "the user is deleted; restore it first",
        ));
    }
    Ok(())
}
