//! Passkeys and the WebAuthn ceremonies that register and use them. A ceremony's state is taken
//! (deleted and returned in one statement) when the browser answers, so no answer — replayed,
//! or raced on two nodes — is accepted twice.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::passkey::PasskeySummary;
use portcullis_core::{PasskeyId, TenantId, UserId};

use crate::db::{Row, query};
use crate::{Store, StoreError, WriteContext};

/// Enough for every device a person owns; a cap keeps a stolen session from adding thousands.
pub const MAX_PASSKEYS_PER_USER: i64 = 20;

/// What a WebAuthn ceremony is for; a ceremony started for one never finishes the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    Register,
    SignIn,
}

impl CeremonyPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
        }
    }
}

/// A ceremony to keep between its start and the browser's answer.
pub struct NewCeremony {
    pub tenant_id: TenantId,
    /// Registration: who is registering. Sign-in: nobody yet.
    pub user_id: Option<UserId>,
    pub purpose: CeremonyPurpose,
    /// The browser's handle on it: random, unguessable.
    pub handle: String,
    pub state: String,
    pub expires_at: OffsetDateTime,
}

/// A passkey as needed to verify a sign-in with it.
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential: String,
}

fn summary(row: &Row) -> Result<PasskeySummary, StoreError> {
    Ok(PasskeySummary {
        id: row.parse("id")?,
        user_id: row.parse("user_id")?,
        name: row.text("name")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

impl Store {
    /// Keeps a ceremony's state until it expires. Expired ceremonies of every tenant are
    /// cleared on the way.
    pub async fn begin_ceremony(
        &self,
        ceremony: NewCeremony,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pools.begin().await?;
        tx.execute(query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1").bind(now))
            .await?;
        tx.execute(
            query(
                "INSERT INTO webauthn_ceremonies (id, tenant_id, user_id, purpose, state, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(ceremony.handle)
            .bind(ceremony.tenant_id)
            .bind(ceremony.user_id)
            .bind(ceremony.purpose.as_str())
            .bind(ceremony.state)
            .bind(ceremony.expires_at),
        )
        .await?;
        tx.commit().await
    }

    /// Takes a live ceremony: its user and state, or `None` when it is unknown, expired, of
    /// another tenant or purpose, or already taken.
    pub async fn take_ceremony(
        &self,
        tenant_id: TenantId,
        purpose: CeremonyPurpose,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Option<UserId>, String)>, StoreError> {
        let mut tx = self.pools.begin().await?;
        let row = tx
            .fetch_optional(
                query(
                    "DELETE FROM webauthn_ceremonies WHERE id = $1 AND tenant_id = $2 AND purpose = $3 \
                     RETURNING user_id, state, expires_at",
                )
                .bind(id)
                .bind(tenant_id)
                .bind(purpose.as_str()),
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.time("expires_at")? <= now {
            return Ok(None);
        }
        Ok(Some((row.opt_parse("user_id")?, row.text("state")?)))
    }

    pub async fn passkeys(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Vec<PasskeySummary>, StoreError> {
        self.pools
            .fetch_all(
                query(
                    "SELECT id, user_id, name, created_at, last_used_at FROM user_passkeys \
                     WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?
            .iter()
            .map(summary)
            .collect()
    }

    /// The credential ids of a user's passkeys: the authenticator is told not to make another.
    pub async fn passkey_credential_ids(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Vec<String>, StoreError> {
        self.pools
            .fetch_all(
                query(
                    "SELECT credential_id FROM user_passkeys WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?
            .iter()
            .map(|r| r.text("credential_id"))
            .collect()
    }

    /// The passkey a sign-in answer names, if it belongs to this tenant.
    pub async fn passkey_by_credential(
        &self,
        tenant_id: TenantId,
        credential_id: &str,
    ) -> Result<Option<StoredPasskey>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT id, user_id, credential FROM user_passkeys \
                     WHERE tenant_id = $1 AND credential_id = $2",
                )
                .bind(tenant_id)
                .bind(credential_id),
            )
            .await?;
        row.map(|r| {
            Ok(StoredPasskey {
                id: r.parse("id")?,
                user_id: r.parse("user_id")?,
                credential: r.text("credential")?,
            })
        })
        .transpose()
    }

    /// Registers a passkey. Sessions held back until the user had a second factor are free.
    pub async fn add_passkey(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        name: &str,
        credential_id: &str,
        credential: String,
    ) -> Result<PasskeySummary, StoreError> {
        let mut w = self.write(ctx).await?;
        let held = w
            .fetch_one(
                query(
                    "SELECT COUNT(*) AS n FROM user_passkeys WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(ctx.tenant_id)
                .bind(user_id),
            )
            .await?
            .int("n")?;
        if held >= MAX_PASSKEYS_PER_USER {
            return Err(StoreError::conflict(
                "passkey",
                format!(
                    "you already have {MAX_PASSKEYS_PER_USER} passkeys; remove one you no longer use first"
                ),
            ));
        }
        let passkey = PasskeySummary {
            id: PasskeyId::generate(),
            user_id,
            name: name.to_owned(),
            created_at: ctx.now,
            last_used_at: None,
        };
        w.execute(
            query(
                "INSERT INTO user_passkeys (id, tenant_id, user_id, credential_id, name, credential, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(passkey.id)
            .bind(ctx.tenant_id)
            .bind(user_id)
            .bind(credential_id)
            .bind(name)
            .bind(credential)
            .bind(ctx.now),
        )
        .await
        .map_err(|e| {
            e.on_unique(&[(
                "credential_id",
                "passkey",
                "this passkey is already registered",
            )])
        })?;
        w.execute(
            query("UPDATE sessions SET must_enrol_mfa = $3 WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(false),
        )
        .await?;
        w.record(
            "user.passkey.add",
            "user",
            user_id,
            "update",
            json!({"passkey_id": passkey.id, "name": name}),
        );
        w.commit().await?;
        Ok(passkey)
    }

    /// Notes a sign-in with a passkey, storing its moved counter when there is one.
    pub async fn passkey_used(
        &self,
        tenant_id: TenantId,
        id: PasskeyId,
        credential: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pools.begin().await?;
        tx.execute(
            query(
                "UPDATE user_passkeys SET last_used_at = $3, credential = COALESCE($4, credential) \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(now)
            .bind(credential),
        )
        .await?;
        tx.commit().await
    }

    /// Removes one of `user_id`'s passkeys; another user's passkey is not found.
    pub async fn remove_passkey(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        id: PasskeyId,
        sessions: SessionsAfterRemoval,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_optional(
                query(
                    "DELETE FROM user_passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3 \
                     RETURNING name",
                )
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(id),
            )
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let ended = match sessions {
            SessionsAfterRemoval::Keep => 0,
            SessionsAfterRemoval::End => crate::sessions::end_all_sessions(&mut w, user_id).await?,
        };
        w.record(
            "user.passkey.remove",
            "user",
            user_id,
            "update",
            json!({"passkey_id": id, "name": row.text("name")?, "sessions_ended": ended}),
        );
        w.commit().await?;
        Ok(())
    }
}

/// What becomes of the user's sessions when one of their passkeys is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsAfterRemoval {
    /// The user tidied their own list: they are the one signed in.
    Keep,
    /// The help desk removed it (a lost or stolen device): a session opened with it may be in
    /// the wrong hands.
    End,
}
