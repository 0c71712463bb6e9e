//! Sign-in: finding the user and password behind a user name, and server-side sessions. A
//! session is valid only while its user and tenant are active, so disabling or deleting a user
//! ends their sessions at once, on every node.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::identity::User;
use portcullis_core::password::PasswordPolicy;
use portcullis_core::session::{
    LockoutPolicy, MAX_METHODS, MethodUse, MfaRequired, Session, SessionTimeouts, SignInSettings,
    Strength,
};
use portcullis_core::{SessionId, TenantId, UserId};

use crate::db::{Row, query};
use crate::principals::user_from_row;
use crate::{Store, StoreError, WriteContext};

macro_rules! session_columns {
    () => {
        "s.id, s.tenant_id, s.user_id, s.strength, s.methods, s.must_change_password, s.must_enrol_mfa, s.source_ip, \
         s.user_agent, s.created_at, s.last_seen_at, s.idle_expires_at, s.absolute_expires_at, s.must_accept_terms"
    };
}

fn session_from_row(row: &Row) -> Result<Session, StoreError> {
    let methods = serde_json::from_str(&row.text("methods")?)
        .map_err(|e| StoreError::Corrupt(format!("session methods: {e}")))?;
    Ok(Session {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        user_id: row.parse("user_id")?,
        strength: row.named("strength", Strength::parse)?,
        methods,
        must_change_password: row.boolean("must_change_password")?,
        must_enrol_mfa: row.boolean("must_enrol_mfa")?,
        must_accept_terms: row.boolean("must_accept_terms")?,
        source_ip: row.opt_text("source_ip")?,
        user_agent: row.opt_text("user_agent")?,
        created_at: row.time("created_at")?,
        last_seen_at: row.time("last_seen_at")?,
        idle_expires_at: row.time("idle_expires_at")?,
        absolute_expires_at: row.time("absolute_expires_at")?,
    })
}

/// What a sign-in found for a user name: the user, and its password hash if it has one.
pub struct SignInSubject {
    pub user: User,
    pub password: Option<StoredPassword>,
}

pub struct StoredPassword {
    pub hash: String,
    pub must_change: bool,
}

/// A session to open after a successful authentication.
pub struct NewSession {
    pub user_id: UserId,
    pub token_hash: String,
    pub strength: Strength,
    pub methods: Vec<MethodUse>,
    pub must_change_password: bool,
    pub must_enrol_mfa: bool,
    pub must_accept_terms: bool,
    pub timeouts: SessionTimeouts,
    /// Where and how the sign-in was seen, remembered for judging the user's next ones.
    pub sighting: Option<portcullis_core::risk::Sighting>,
    /// What the sign-in log adds about the sign-in (its application, location, client and
    /// each conditional access policy's result): an object, merged into the event's details.
    pub context: serde_json::Value,
}

impl Store {
    /// The user with this user name (compared by its normalized key) and its password.
    pub async fn sign_in_subject(
        &self,
        tenant_id: TenantId,
        user_name_key: &str,
    ) -> Result<Option<SignInSubject>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    crate::user_columns!(),
                    ", (SELECT hash FROM user_passwords p WHERE p.user_id = users.id) AS password_hash, \
                     (SELECT must_change FROM user_passwords p WHERE p.user_id = users.id) AS password_must_change \
                     FROM users WHERE tenant_id = $1 AND user_name_key = $2"
                ))
                .bind(tenant_id)
                .bind(user_name_key),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let password = match row.opt_text("password_hash")? {
            Some(hash) => Some(StoredPassword {
                hash,
                must_change: row.boolean("password_must_change")?,
            }),
            None => None,
        };
        Ok(Some(SignInSubject {
            user: user_from_row(&row)?,
            password,
        }))
    }

    /// Opens a session, in one transaction with its audit event and the user's last sign-in.
    pub async fn open_session(
        &self,
        ctx: &WriteContext,
        new: NewSession,
    ) -> Result<Session, StoreError> {
        let mut w = self.write(ctx).await?;
        let now = ctx.now;
        let absolute = now + new.timeouts.absolute;
        let session = Session {
            id: SessionId::generate(),
            tenant_id: ctx.tenant_id,
            user_id: new.user_id,
            strength: new.strength,
            methods: new.methods,
            must_change_password: new.must_change_password,
            must_enrol_mfa: new.must_enrol_mfa,
            must_accept_terms: new.must_accept_terms,
            source_ip: ctx.origin.source_ip.clone(),
            user_agent: ctx.origin.user_agent.clone(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: new.timeouts.idle_deadline(now, absolute),
            absolute_expires_at: absolute,
        };
        w.execute(
            query(
                "INSERT INTO sessions (id, token_hash, tenant_id, user_id, strength, methods, must_change_password, \
                 source_ip, user_agent, created_at, last_seen_at, idle_expires_at, absolute_expires_at, must_enrol_mfa, \
                 must_accept_terms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(session.id)
            .bind(new.token_hash)
            .bind(session.tenant_id)
            .bind(session.user_id)
            .bind(session.strength.as_str())
            .bind(json!(session.methods).to_string())
            .bind(session.must_change_password)
            .bind(session.source_ip.clone())
            .bind(session.user_agent.clone())
            .bind(now)
            .bind(now)
            .bind(session.idle_expires_at)
            .bind(session.absolute_expires_at)
            .bind(session.must_enrol_mfa)
            .bind(session.must_accept_terms),
        )
        .await?;
        w.execute(
            query("UPDATE users SET last_sign_in_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id)
                .bind(new.user_id)
                .bind(now),
        )
        .await?;
        if let Some(seen) = &new.sighting {
            crate::risk::record_sighting(&mut w.tx, ctx.tenant_id, new.user_id, seen).await?;
        }
        let amr: Vec<&str> = session.methods.iter().map(|m| m.method.as_str()).collect();
        w.record(
            "signin",
            "user",
            new.user_id,
            "update",
            signin_details(
                json!({"session_id": session.id, "strength": session.strength, "amr": amr}),
                &new.context,
            ),
        );
        w.commit().await?;
        Ok(session)
    }

    /// Adds a fresh proof to a session (step-up): the method joins the session's list, the
    /// strength rises to what the methods prove together, and the token is replaced, so a token
    /// seen before the step-up is worth nothing after it.
    pub async fn step_up_session(
        &self,
        ctx: &WriteContext,
        session: &Session,
        new_token_hash: String,
        method: MethodUse,
    ) -> Result<Session, StoreError> {
        let mut stepped = session.clone();
        stepped.methods.push(method);
        let excess = stepped.methods.len().saturating_sub(MAX_METHODS);
        stepped.methods.drain(..excess);
        stepped.strength = Strength::proven_by(&stepped.methods, None)
            .map_or(session.strength, |proven| proven.max(session.strength));
        let mut w = self.write(ctx).await?;
        let updated = w
            .execute(
                query(
                    "UPDATE sessions SET token_hash = $3, strength = $4, methods = $5 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(ctx.tenant_id)
                .bind(session.id)
                .bind(new_token_hash)
                .bind(stepped.strength.as_str())
                .bind(json!(stepped.methods).to_string()),
            )
            .await?;
        if updated != 1 {
            return Err(StoreError::NotFound);
        }
        let amr: Vec<&str> = stepped.methods.iter().map(|m| m.method.as_str()).collect();
        w.record(
            "signin.step_up",
            "user",
            session.user_id,
            "update",
            json!({"session_id": session.id, "strength": stepped.strength, "amr": amr}),
        );
        w.commit().await?;
        Ok(stepped)
    }

    /// The live session with this token hash, if its user and tenant are still active.
    pub async fn session_by_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id \
                     WHERE s.token_hash = $1 AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2 \
                     AND u.state = 'active' AND (u.expires_at IS NULL OR u.expires_at > $2) AND t.state = 'active'"
                ))
                .bind(token_hash)
                .bind(now),
            )
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The tenant's session with this id, if it is live (its user and tenant need not be
    /// checked again: the caller has just found them active).
    pub async fn live_session(
        &self,
        tenant_id: TenantId,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions s WHERE s.tenant_id = $1 AND s.id = $2 \
                     AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3"
                ))
                .bind(tenant_id)
                .bind(id)
                .bind(now),
            )
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Records activity: pushes the idle deadline out (never past the absolute one).
    pub async fn touch_session(
        &self,
        session: &Session,
        now: OffsetDateTime,
        timeouts: SessionTimeouts,
    ) -> Result<(), StoreError> {
        let mut tx = self.pools.begin().await?;
        tx.execute(
            query("UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE id = $1")
                .bind(session.id)
                .bind(now)
                .bind(timeouts.idle_deadline(now, session.absolute_expires_at)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of_user(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions s WHERE s.tenant_id = $1 AND s.user_id = $2 \
                     AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3 ORDER BY s.created_at DESC"
                ))
                .bind(tenant_id)
                .bind(user_id)
                .bind(now),
            )
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Ends one of the user's sessions (`Some`) or all of them (`None`). Returns how many ended.
    pub async fn end_sessions(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        only: Option<SessionId>,
    ) -> Result<u64, StoreError> {
        let mut w = self.write(ctx).await?;
        let ended = w
            .execute(
                query(
                    "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND ($3 IS NULL OR id = $3)",
                )
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(only),
            )
            .await?;
        if only.is_some() && ended == 0 {
            return Err(StoreError::NotFound);
        }
        w.record(
            "session.end",
            "user",
            user_id,
            "update",
            json!({"session_id": only, "ended": ended}),
        );
        w.commit().await?;
        Ok(ended)
    }

    /// The user's own password change: replaces the hash, clears `must_change` on the password
    /// and on `session`, and ends the user's other sessions.
    pub async fn change_own_password(
        &self,
        ctx: &WriteContext,
        session: &Session,
        hash: String,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "UPDATE user_passwords SET hash = $3, must_change = $4, changed_at = $5 \
                 WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(ctx.tenant_id)
            .bind(session.user_id)
            .bind(hash)
            .bind(false)
            .bind(ctx.now),
        )
        .await?;
        let others = w
            .execute(
                query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND id <> $3")
                    .bind(ctx.tenant_id)
                    .bind(session.user_id)
                    .bind(session.id),
            )
            .await?;
        w.execute(
            query("UPDATE sessions SET must_change_password = $2 WHERE id = $1")
                .bind(session.id)
                .bind(false),
        )
        .await?;
        w.record(
            "user.password.change",
            "user",
            session.user_id,
            "update",
            json!({"other_sessions_ended": others}),
        );
        w.commit().await?;
        Ok(())
    }
}

impl Store {
    /// The tenant's sign-in rules (the defaults when never set).
    pub async fn sign_in_settings(
        &self,
        tenant_id: TenantId,
    ) -> Result<SignInSettings, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT mfa_required, allow_totp, allow_passkeys, password_min_length, password_min_strength, \
                     lockout_free_failures, lockout_max_seconds FROM tenant_sign_in_settings WHERE tenant_id = $1",
                )
                .bind(tenant_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(SignInSettings::default());
        };
        let number = |col: &str| -> Result<i64, StoreError> { row.int(col) };
        Ok(SignInSettings {
            mfa_required: row.named("mfa_required", MfaRequired::parse)?,
            allow_totp: row.boolean("allow_totp")?,
            allow_passkeys: row.boolean("allow_passkeys")?,
            password_policy: PasswordPolicy {
                min_length: u32::try_from(number("password_min_length")?)
                    .map_err(|_| StoreError::Corrupt("password_min_length".into()))?,
                min_strength: u8::try_from(number("password_min_strength")?)
                    .map_err(|_| StoreError::Corrupt("password_min_strength".into()))?,
            },
            lockout: LockoutPolicy {
                free_failures: u32::try_from(number("lockout_free_failures")?)
                    .map_err(|_| StoreError::Corrupt("lockout_free_failures".into()))?,
                max_wait_seconds: u32::try_from(number("lockout_max_seconds")?)
                    .map_err(|_| StoreError::Corrupt("lockout_max_seconds".into()))?,
            },
        })
    }

    pub async fn set_sign_in_settings(
        &self,
        ctx: &WriteContext,
        settings: SignInSettings,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO tenant_sign_in_settings (tenant_id, mfa_required, allow_totp, password_min_length, \
                 password_min_strength, updated_at, lockout_free_failures, lockout_max_seconds, allow_passkeys) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id) DO UPDATE SET \
                 mfa_required = excluded.mfa_required, allow_totp = excluded.allow_totp, \
                 allow_passkeys = excluded.allow_passkeys, \
                 password_min_length = excluded.password_min_length, \
                 password_min_strength = excluded.password_min_strength, updated_at = excluded.updated_at, \
                 lockout_free_failures = excluded.lockout_free_failures, lockout_max_seconds = excluded.lockout_max_seconds",
            )
            .bind(ctx.tenant_id)
            .bind(settings.mfa_required.as_str())
            .bind(settings.allow_totp)
            .bind(i64::from(settings.password_policy.min_length))
            .bind(i64::from(settings.password_policy.min_strength))
            .bind(ctx.now)
            .bind(i64::from(settings.lockout.free_failures))
            .bind(i64::from(settings.lockout.max_wait_seconds))
            .bind(settings.allow_passkeys),
        )
        .await?;
        w.record(
            "tenant.sign_in_settings.update",
            "tenant",
            ctx.tenant_id,
            "update",
            json!(settings),
        );
        w.commit().await?;
        Ok(())
    }
}

/// Ends every session of the user inside a change that weakens how they sign in (a new
/// password, a removed factor): whoever signed in with what was taken away is out. Returns
/// how many ended.
pub(crate) async fn end_all_sessions(
    w: &mut crate::write::Write,
    user_id: UserId,
) -> Result<u64, StoreError> {
    let tenant_id = w.ctx.tenant_id;
    w.execute(
        query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id),
    )
    .await
}

/// The sign-in event's details: `base`, and every field of `context` it does not set itself.
fn signin_details(mut base: serde_json::Value, context: &serde_json::Value) -> serde_json::Value {
    if let (Some(base), Some(context)) = (base.as_object_mut(), context.as_object()) {
        for (key, value) in context {
            base.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    base
}

impl Store {
    /// Whether the user accepted this version of the tenant's terms of use.
    pub async fn has_accepted_terms(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        version: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .pools
            .fetch_optional(
                query(
                    "SELECT accepted_at FROM terms_acceptances WHERE tenant_id = $1 AND user_id = $2 AND version = $3",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(version),
            )
            .await?
            .is_some())
    }

    /// Records the user's acceptance of `version` and releases their held sessions: a
    /// `Conflict` unless `version` is the tenant's current terms, read in the same write, so
    /// that terms replaced a moment earlier are never taken as accepted.
    pub async fn accept_terms(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        version: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let settings = crate::conditional::settings_in(&mut w).await?;
        if settings.terms_version() != Some(version) {
            return Err(StoreError::conflict(
                "version",
                "these are not the tenant's current terms of use",
            ));
        }
        w.execute(
            query(
                "INSERT INTO terms_acceptances (tenant_id, user_id, version, accepted_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(ctx.tenant_id)
            .bind(user_id)
            .bind(version)
            .bind(ctx.now),
        )
        .await?;
        w.execute(
            query("UPDATE sessions SET must_accept_terms = FALSE WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant_id)
                .bind(user_id),
        )
        .await?;
        w.record(
            "terms.accept",
            "user",
            user_id,
            "update",
            json!({"version": version}),
        );
        w.commit().await?;
        Ok(())
    }
}
