//! Second factors: a user's authenticator-app (TOTP) secret, sealed under the KEK, and one-time
//! recovery codes, stored as keyed hashes. Accepting a code and using a recovery code are single
//! conditional updates, so two nodes can never both accept the same one.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::{TenantId, UserId};

use crate::db::query;
use crate::{Store, StoreError, WriteContext};

/// A user's TOTP secret as stored: still sealed.
pub struct StoredTotp {
    pub secret_sealed: Vec<u8>,
    pub confirmed: bool,
    pub last_used_step: Option<i64>,
}

impl Store {
    pub async fn totp(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Option<StoredTotp>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT secret_sealed, confirmed_at, last_used_step FROM user_totp \
                     WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?;
        row.map(|r| {
            Ok(StoredTotp {
                secret_sealed: r.bytes("secret_sealed")?,
                confirmed: r.opt_int("confirmed_at")?.is_some(),
                last_used_step: r.opt_int("last_used_step")?,
            })
        })
        .transpose()
    }

    /// Stores a new, unconfirmed secret, replacing an earlier unconfirmed one. A confirmed
    /// authenticator must be removed first.
    pub async fn begin_totp(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        secret_sealed: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pools.begin().await?;
        tx.execute(
            query("DELETE FROM user_totp WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL")
                .bind(tenant_id)
                .bind(user_id),
        )
        .await?;
        let inserted = tx
            .execute(
                query(
                    "INSERT INTO user_totp (user_id, tenant_id, secret_sealed, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id)
                .bind(tenant_id)
                .bind(secret_sealed)
                .bind(now),
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::conflict(
                "totp",
                "an authenticator app is already set up; remove it first",
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Confirms the pending secret with the step of the first code, and replaces the user's
    /// recovery codes.
    pub async fn confirm_totp(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        step: i64,
        recovery_code_hashes: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let confirmed = w
            .execute(
                query(
                    "UPDATE user_totp SET confirmed_at = $3, last_used_step = $4 \
                     WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL",
                )
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(ctx.now)
                .bind(step),
            )
            .await?;
        if confirmed != 1 {
            return Err(StoreError::conflict(
                "totp",
                "there is no authenticator waiting to be confirmed; start again",
            ));
        }
        replace_recovery_codes(&mut w, user_id, recovery_code_hashes).await?;
        // Sessions held back until a second factor existed are free now.
        w.execute(
            query("UPDATE sessions SET must_enrol_mfa = $3 WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(false),
        )
        .await?;
        w.record(
            "user.mfa.enrol",
            "user",
            user_id,
            "update",
            json!({"method": "totp"}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Accepts a code's step if it is newer than the last accepted one. False: replayed.
    pub async fn use_totp_step(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        step: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pools.begin().await?;
        let used = tx
            .execute(
                query(
                    "UPDATE user_totp SET last_used_step = $3 WHERE tenant_id = $1 AND user_id = $2 \
                     AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $3)",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(step),
            )
            .await?;
        tx.commit().await?;
        Ok(used == 1)
    }

    /// Marks a recovery code used. False: no such unused code.
    pub async fn use_recovery_code(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pools.begin().await?;
        let used = tx
            .execute(
                query(
                    "UPDATE user_recovery_codes SET used_at = $4 WHERE tenant_id = $1 AND user_id = $2 \
                     AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(code_hash)
                .bind(now),
            )
            .await?;
        tx.commit().await?;
        Ok(used == 1)
    }

    pub async fn recovery_codes_left(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<i64, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT COUNT(*) AS n FROM user_recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?;
        row.map_or(Ok(0), |r| r.int("n"))
    }

    /// Which second factors the user has.
    pub async fn mfa_status(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<portcullis_core::totp::MfaStatus, StoreError> {
        let app = self.totp(tenant_id, user_id).await?;
        Ok(portcullis_core::totp::MfaStatus {
            authenticator_app: app.is_some_and(|app| app.confirmed),
            recovery_codes_left: self.recovery_codes_left(tenant_id, user_id).await?,
            passkeys: self.passkeys(tenant_id, user_id).await?.len(),
        })
    }

    /// Removes the user's authenticator and recovery codes.
    pub async fn remove_mfa(&self, ctx: &WriteContext, user_id: UserId) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let removed = w
            .execute(
                query("DELETE FROM user_totp WHERE tenant_id = $1 AND user_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        replace_recovery_codes(&mut w, user_id, Vec::new()).await?;
        w.record(
            "user.mfa.remove",
            "user",
            user_id,
            "update",
            json!({"method": "totp"}),
        );
        w.commit().await?;
        Ok(())
    }
}

impl Store {
    /// The user's new set of recovery codes in place of the old ones, which stop working.
    /// Only with an authenticator set up: recovery codes stand in for it.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        hashes: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let enrolled = w
            .fetch_optional(
                query(
                    "SELECT 1 AS one FROM user_totp WHERE tenant_id = $1 AND user_id = $2 \
                     AND confirmed_at IS NOT NULL",
                )
                .bind(ctx.tenant_id)
                .bind(user_id),
            )
            .await?;
        if enrolled.is_none() {
            return Err(StoreError::conflict(
                "recovery_codes",
                "recovery codes come with an authenticator app; set one up first",
            ));
        }
        let count = hashes.len();
        replace_recovery_codes(&mut w, user_id, hashes).await?;
        w.record(
            "user.recovery_codes.regenerate",
            "user",
            user_id,
            "update",
            json!({"count": count}),
        );
        w.commit().await?;
        Ok(())
    }

    /// A help desk's reset of the user's second factor: the authenticator and the recovery
    /// codes go, and so does every session of the user (a lost or stolen device may hold one),
    /// in one transaction. `NotFound` when the user had neither an authenticator nor recovery
    /// codes.
    pub async fn reset_mfa(&self, ctx: &WriteContext, user_id: UserId) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let authenticators = w
            .execute(
                query("DELETE FROM user_totp WHERE tenant_id = $1 AND user_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?;
        let codes = w
            .execute(
                query("DELETE FROM user_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?;
        if authenticators == 0 && codes == 0 {
            return Err(StoreError::NotFound);
        }
        let sessions = crate::sessions::end_all_sessions(&mut w, user_id).await?;
        w.record(
            "user.mfa.reset",
            "user",
            user_id,
            "update",
            json!({"authenticator": authenticators > 0, "recovery_codes": codes,
                   "sessions_ended": sessions}),
        );
        w.commit().await?;
        Ok(())
    }
}

async fn replace_recovery_codes(
    w: &mut crate::write::Write,
    user_id: UserId,
    hashes: Vec<String>,
) -> Result<(), StoreError> {
    let tenant_id = w.ctx.tenant_id;
    w.execute(
        query("DELETE FROM user_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id),
    )
    .await?;
    for hash in hashes {
        w.execute(
            query("INSERT INTO user_recovery_codes (user_id, tenant_id, code_hash) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(tenant_id)
                .bind(hash),
        )
        .await?;
    }
    Ok(())
}
