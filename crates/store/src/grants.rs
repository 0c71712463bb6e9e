//! What users let OAuth clients do: authorization requests waiting for a sign-in, grants (the
//! one-time code and every token issued from it), rotating refresh tokens, revoked access
//! tokens, and remembered consent. Codes, handles and refresh tokens are found by their keyed
//! hash, so a copy of these tables redeems nothing.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::audit::Target;
use portcullis_core::oauth::ConsentSummary;
use portcullis_core::{GrantId, ServicePrincipalId, SessionId, TenantId, UserId};

use portcullis_core::audit::NewAuditEvent;

use crate::db::{Query, Row, assembled_query, query};
use crate::{Store, StoreError, WriteContext};

/// A request kept while its user signs in or approves it.
pub struct PendingRequest {
    pub client_id: ServicePrincipalId,
    /// JSON of the checked request.
    pub request: String,
    pub pushed: bool,
    pub created_at: OffsetDateTime,
}

/// A kept request as found by its handle, whether or not it can still be answered: an
/// expired or answered request is told apart from a handle that was never issued.
pub struct KeptRequest {
    pub pending: PendingRequest,
    pub expires_at: OffsetDateTime,
    /// When a code was issued for it or the user declined it; it is answered once.
    pub answered_at: Option<OffsetDateTime>,
}

/// A grant to record when a code is issued.
pub struct NewGrant {
    pub id: GrantId,
    pub client_id: ServicePrincipalId,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub scopes: Vec<String>,
    pub audience: String,
    pub auth_time: OffsetDateTime,
    pub acr: String,
    pub amr: Vec<String>,
    pub nonce: Option<String>,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub code_hash: String,
    pub code_expires_at: OffsetDateTime,
    /// When the last refresh token of this grant must be dead, whatever happens.
    pub expires_at: OffsetDateTime,
    /// The longest an access token from this grant may live, when a policy said so.
    pub token_seconds: Option<u32>,
}

/// A grant as stored.
#[derive(Debug, Clone)]
pub struct StoredGrant {
    pub id: GrantId,
    pub tenant_id: TenantId,
    pub client_id: ServicePrincipalId,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub scopes: Vec<String>,
    pub audience: String,
    pub auth_time: OffsetDateTime,
    pub acr: String,
    pub amr: Vec<String>,
    pub nonce: Option<String>,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub code_expires_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// The longest an access token from this grant may live, when a policy said so.
    pub token_seconds: Option<u32>,
}

impl StoredGrant {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Not revoked and not past its last day.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

const GRANT_COLUMNS: &str = "g.id, g.tenant_id, g.client_id, g.user_id, g.session_id, g.scopes, \
     g.audience, g.auth_time, g.acr, g.amr, g.nonce, g.redirect_uri, g.code_challenge, \
     g.code_expires_at, g.expires_at, g.revoked_at, g.token_seconds";

fn grant_from_row(row: &Row) -> Result<StoredGrant, StoreError> {
    Ok(StoredGrant {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        client_id: row.parse("client_id")?,
        user_id: row.parse("user_id")?,
        session_id: row.parse("session_id")?,
        scopes: scope_list(&row.text("scopes")?),
        audience: row.text("audience")?,
        auth_time: row.time("auth_time")?,
        acr: row.text("acr")?,
        amr: serde_json::from_str(&row.text("amr")?)
            .map_err(|e| StoreError::Corrupt(format!("grant amr: {e}")))?,
        nonce: row.opt_text("nonce")?,
        redirect_uri: row.text("redirect_uri")?,
        code_challenge: row.text("code_challenge")?,
        code_expires_at: row.time("code_expires_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        token_seconds: row
            .opt_int("token_seconds")?
            .and_then(|s| u32::try_from(s).ok()),
    })
}

/// The statement recording a grant, and its `oauth.authorize` event.
pub(crate) fn grant_insert(ctx: &WriteContext, grant: &NewGrant) -> (Query, NewAuditEvent) {
    let insert = query(
        "INSERT INTO oauth_grants (id, tenant_id, client_id, user_id, session_id, scopes, audience, \
         auth_time, acr, amr, nonce, redirect_uri, code_challenge, code_hash, code_expires_at, \
         created_at, expires_at, token_seconds) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(grant.id)
    .bind(ctx.tenant_id)
    .bind(grant.client_id)
    .bind(grant.user_id)
    .bind(grant.session_id)
    .bind(grant.scopes.join(" "))
    .bind(grant.audience.clone())
    .bind(grant.auth_time)
    .bind(grant.acr.clone())
    .bind(json!(grant.amr).to_string())
    .bind(grant.nonce.clone())
    .bind(grant.redirect_uri.clone())
    .bind(grant.code_challenge.clone())
    .bind(grant.code_hash.clone())
    .bind(grant.code_expires_at)
    .bind(ctx.now)
    .bind(grant.expires_at)
    .bind(grant.token_seconds.map(i64::from));
    let event = ctx.event(
        "oauth.authorize",
        Target::new("oauth_grant", grant.id),
        json!({"client_id": grant.client_id, "user_id": grant.user_id, "scopes": grant.scopes, "audience": grant.audience}),
    );
    (insert, event)
}

/// Scopes as stored: one space-separated string.
fn scope_list(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What redeeming a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// The code was unused: it is used now.
    Redeemed,
    /// The code was used before; nothing was issued.
    Reused,
}

/// A refresh token and the grant it belongs to.
pub struct RefreshTokenRecord {
    pub grant: StoredGrant,
    pub expires_at: OffsetDateTime,
    pub used: bool,
}

impl Store {
    /// Keeps an authorization request for its user to sign in or approve it.
    pub async fn save_authorization_request(
        &self,
        tenant_id: TenantId,
        handle_hash: &str,
        pending: &PendingRequest,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pools
            .execute(
                query(
                    "INSERT INTO authorization_requests (handle_hash, tenant_id, client_id, request, pushed, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(handle_hash)
                .bind(tenant_id)
                .bind(pending.client_id)
                .bind(pending.request.clone())
                .bind(pending.pushed)
                .bind(pending.created_at)
                .bind(expires_at),
            )
            .await?;
        Ok(())
    }

    /// A kept request of this tenant, expired and answered ones included (until the sweep
    /// forgets them); the caller decides what each means. One indexed lookup by the keyed
    /// hash either way.
    pub async fn authorization_request(
        &self,
        tenant_id: TenantId,
        handle_hash: &str,
    ) -> Result<Option<KeptRequest>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT client_id, request, pushed, created_at, expires_at, answered_at \
                     FROM authorization_requests WHERE handle_hash = $1 AND tenant_id = $2",
                )
                .bind(handle_hash)
                .bind(tenant_id),
            )
            .await?;
        row.map(|r| {
            Ok(KeptRequest {
                pending: PendingRequest {
                    client_id: r.parse("client_id")?,
                    request: r.text("request")?,
                    pushed: r.boolean("pushed")?,
                    created_at: r.time("created_at")?,
                },
                expires_at: r.time("expires_at")?,
                answered_at: r.opt_time("answered_at")?,
            })
        })
        .transpose()
    }

    /// Marks a kept request answered, so it is never answered again. The row stays until the
    /// sweep, for a second use of its handle to be told "already answered". Returns whether
    /// this was its first answer.
    pub async fn answer_authorization_request(
        &self,
        handle_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let marked = self
            .pools
            .execute(
                query(
                    "UPDATE authorization_requests SET answered_at = $2 \
                     WHERE handle_hash = $1 AND answered_at IS NULL",
                )
                .bind(handle_hash)
                .bind(now),
            )
            .await?;
        Ok(marked == 1)
    }

    /// Records a user's authorization of a client, with its one-time code; audited in the
    /// same transaction (shared with other concurrent writes).
    pub async fn create_grant(
        &self,
        ctx: &WriteContext,
        grant: &NewGrant,
    ) -> Result<(), StoreError> {
        let (insert, event) = grant_insert(ctx, grant);
        self.group_write(vec![insert], vec![event]).await?;
        Ok(())
    }

    /// The grant behind a code of this client, used or not.
    pub async fn grant_by_code(
        &self,
        tenant_id: TenantId,
        client_id: ServicePrincipalId,
        code_hash: &str,
    ) -> Result<Option<(StoredGrant, bool)>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS}, g.code_used_at FROM oauth_grants g \
             WHERE g.code_hash = $1 AND g.tenant_id = $2 AND g.client_id = $3"
        );
        let row = self
            .pools
            .fetch_optional(
                assembled_query(sql)
                    .bind(code_hash)
                    .bind(tenant_id)
                    .bind(client_id),
            )
            .await?;
        row.map(|r| Ok((grant_from_row(&r)?, r.opt_int("code_used_at")?.is_some())))
            .transpose()
    }

    /// Redeems a grant's code, once, issuing its first refresh token (if any) in the same
    /// transaction. `Redemption::Reused`: the code was used before, and nothing was issued;
    /// the caller revokes the grant (RFC 6749 §4.1.2).
    pub async fn redeem_code(
        &self,
        grant: &StoredGrant,
        refresh: Option<(&str, OffsetDateTime)>,
        now: OffsetDateTime,
    ) -> Result<Redemption, StoreError> {
        let mut statements = vec![
            query(
                "UPDATE oauth_grants SET code_used_at = $1 WHERE id = $2 AND code_used_at IS NULL",
            )
            .bind(now)
            .bind(grant.id),
        ];
        if let Some((token_hash, expires_at)) = refresh {
            statements.push(
                query(
                    "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, tenant_id) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(grant.id)
                .bind(now)
                .bind(expires_at)
                .bind(grant.tenant_id),
            );
        }
        Ok(if self.group_write_all(statements, Vec::new()).await? {
            Redemption::Redeemed
        } else {
            Redemption::Reused
        })
    }

    /// A grant of this tenant.
    pub async fn grant(
        &self,
        tenant_id: TenantId,
        id: GrantId,
    ) -> Result<Option<StoredGrant>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.id = $1 AND g.tenant_id = $2"
        );
        let row = self
            .pools
            .fetch_optional(assembled_query(sql).bind(id).bind(tenant_id))
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// Revokes a grant and so every refresh token of it; access tokens from it then introspect
    /// as inactive. Revoking twice keeps the first reason.
    pub async fn revoke_grant(
        &self,
        tenant_id: TenantId,
        id: GrantId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let revoked = self
            .pools
            .execute(
                query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = $2 \
                     WHERE id = $3 AND tenant_id = $4 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(id)
                .bind(tenant_id),
            )
            .await?;
        Ok(revoked == 1)
    }

    /// The refresh token with this hash, and its grant, in this tenant.
    pub async fn refresh_token(
        &self,
        tenant_id: TenantId,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS}, r.expires_at AS token_expires_at, r.used_at FROM refresh_tokens r \
             JOIN oauth_grants g ON g.id = r.grant_id AND g.tenant_id = r.tenant_id \
             WHERE r.token_hash = $1 AND r.tenant_id = $2"
        );
        let row = self
            .pools
            .fetch_optional(assembled_query(sql).bind(token_hash).bind(tenant_id))
            .await?;
        row.map(|r| {
            Ok(RefreshTokenRecord {
                grant: grant_from_row(&r)?,
                expires_at: r.time("token_expires_at")?,
                used: r.opt_int("used_at")?.is_some(),
            })
        })
        .transpose()
    }

    /// Replaces a refresh token with the next one, in one transaction. False: the old one was
    /// used meanwhile (a race with a copy of it), and nothing was issued.
    pub async fn rotate_refresh_token(
        &self,
        tenant_id: TenantId,
        grant_id: GrantId,
        old_hash: &str,
        new_hash: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let used = query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE tenant_id = $4 AND token_hash = $2 AND grant_id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .bind(grant_id)
        .bind(tenant_id);
        let next = query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, tenant_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_hash)
        .bind(grant_id)
        .bind(now)
        .bind(expires_at)
        .bind(tenant_id);
        self.group_write_all(vec![used, next], Vec::new()).await
    }

    /// Marks an access token revoked until it would have expired.
    pub async fn revoke_access_token(
        &self,
        tenant_id: TenantId,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pools
            .execute(
                query(
                    "INSERT INTO revoked_access_tokens (jti, tenant_id, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(tenant_id)
                .bind(expires_at),
            )
            .await?;
        Ok(())
    }

    pub async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self
            .pools
            .fetch_optional(query("SELECT jti FROM revoked_access_tokens WHERE jti = $1").bind(jti))
            .await?
            .is_some())
    }

    /// A grant's user and whether its sign-in session is still open, in one query (the
    /// refresh path runs it for every token).
    pub async fn grant_user(
        &self,
        grant: &StoredGrant,
        now: OffsetDateTime,
    ) -> Result<Option<(portcullis_core::identity::User, bool)>, StoreError> {
        let sql = format!(
            "SELECT {}, EXISTS (SELECT 1 FROM sessions s WHERE s.id = $3 AND s.idle_expires_at > $4 \
             AND s.absolute_expires_at > $4) AS session_live FROM users WHERE id = $1 AND tenant_id = $2",
            crate::principals::USER_COLUMNS
        );
        let row = self
            .pools
            .fetch_optional(
                assembled_query(sql)
                    .bind(grant.user_id)
                    .bind(grant.tenant_id)
                    .bind(grant.session_id)
                    .bind(now),
            )
            .await?;
        row.map(|r| {
            Ok((
                crate::principals::user_from_row(&r)?,
                r.boolean("session_live")?,
            ))
        })
        .transpose()
    }

    /// The scopes a user approved for a client, and when they last approved, if ever.
    pub async fn consent(
        &self,
        user_id: UserId,
        client_id: ServicePrincipalId,
    ) -> Result<Option<(Vec<String>, OffsetDateTime)>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT scopes, granted_at FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
                )
                .bind(user_id)
                .bind(client_id),
            )
            .await?;
        row.map(|r| {
            let scopes = scope_list(&r.text("scopes")?);
            Ok((scopes, r.time("granted_at")?))
        })
        .transpose()
    }

    /// Remembers that the user approved `scopes` for a client (adding to what they approved
    /// before); audited.
    pub async fn record_consent(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        client_id: ServicePrincipalId,
        scopes: &[String],
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let before = w
            .fetch_optional(
                query("SELECT scopes FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id),
            )
            .await?;
        let mut all: Vec<String> = match before {
            Some(row) => scope_list(&row.text("scopes")?),
            None => Vec::new(),
        };
        for scope in scopes {
            if !all.contains(scope) {
                all.push(scope.clone());
            }
        }
        w.execute(
            query(
                "INSERT INTO oauth_consents (user_id, client_id, tenant_id, scopes, granted_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(ctx.tenant_id)
            .bind(all.join(" "))
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "oauth.consent.grant",
            "user",
            user_id,
            "update",
            json!({"client_id": client_id, "scopes": scopes}),
        );
        w.commit().await?;
        Ok(())
    }

    /// The applications a user approved, newest approval first.
    pub async fn consents(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Vec<ConsentSummary>, StoreError> {
        self.pools
            .fetch_all(
                query(
                    "SELECT c.client_id, sp.name, c.scopes, c.granted_at FROM oauth_consents c \
                     JOIN service_principals sp ON sp.id = c.client_id \
                     WHERE c.tenant_id = $1 AND c.user_id = $2 ORDER BY c.granted_at DESC",
                )
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?
            .iter()
            .map(|r| {
                Ok(ConsentSummary {
                    client_id: r.parse("client_id")?,
                    application: r.text("name")?,
                    scopes: scope_list(&r.text("scopes")?),
                    granted_at: r.time("granted_at")?,
                })
            })
            .collect()
    }

    /// Withdraws a user's approval of an application: it is asked again next time, and every
    /// grant the user gave it is revoked, so its refresh tokens stop working. Audited.
    pub async fn withdraw_consent(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        client_id: ServicePrincipalId,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let removed = w
            .execute(
                query(
                    "DELETE FROM oauth_consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3",
                )
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(client_id),
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        let revoked = w
            .execute(
                query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = 'consent withdrawn' \
                     WHERE tenant_id = $2 AND user_id = $3 AND client_id = $4 AND revoked_at IS NULL",
                )
                .bind(ctx.now)
                .bind(ctx.tenant_id)
                .bind(user_id)
                .bind(client_id),
            )
            .await?;
        w.record(
            "oauth.consent.withdraw",
            "user",
            user_id,
            "update",
            json!({"client_id": client_id, "grants_revoked": revoked}),
        );
        w.commit().await?;
        Ok(())
    }

    /// When a user's session ends (`Some`), or all of them (`None`): revokes the grants tied to
    /// it, except those with `offline_access`, which outlive sessions by design. Returns every
    /// live grant of the session(s), revoked or kept, for their clients to be told.
    pub async fn end_session_grants(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
        session: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredGrant>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.tenant_id = $1 AND g.user_id = $2 \
             AND ($3 IS NULL OR g.session_id = $3) AND g.revoked_at IS NULL AND g.expires_at > $4"
        );
        let grants = self
            .pools
            .fetch_all(
                assembled_query(sql)
                    .bind(tenant_id)
                    .bind(user_id)
                    .bind(session)
                    .bind(now),
            )
            .await?
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for grant in &grants {
            if !grant.has_scope("offline_access") {
                self.revoke_grant(tenant_id, grant.id, "session ended", now)
                    .await?;
            }
        }
        Ok(grants)
    }

    /// Forgets kept requests that expired before `requests_expired_before`, used codes' grants
    /// past their end, and revoked access tokens past their expiry. Returns how many rows went.
    pub async fn sweep_oauth(
        &self,
        now: OffsetDateTime,
        requests_expired_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut swept = self
            .pools
            .execute(
                query("DELETE FROM authorization_requests WHERE expires_at <= $1")
                    .bind(requests_expired_before),
            )
            .await?;
        for sql in [
            "DELETE FROM revoked_access_tokens WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM oauth_grants WHERE expires_at <= $1",
            "DELETE FROM device_authorizations WHERE expires_at <= $1",
            "DELETE FROM enrolment_links WHERE expires_at <= $1",
        ] {
            swept += self.pools.execute(query(sql).bind(now)).await?;
        }
        Ok(swept)
    }
}
