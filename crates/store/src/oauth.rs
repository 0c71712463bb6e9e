//! OAuth: per-tenant token signing keys (private halves sealed by the caller under the KEK) and
//! the OAuth settings of service principals acting as clients.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::oauth::ClientSettings;
use portcullis_core::{ServicePrincipalId, TenantId};

use crate::db::{IDS_PER_STATEMENT, assembled_query, placeholders, query};
use crate::{Store, StoreError, WriteContext};

/// A signing key as stored: the private half still sealed.
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: String,
    pub private_sealed: Vec<u8>,
    pub public_jwk: serde_json::Value,
    pub created_at: OffsetDateTime,
    /// When it starts signing; it is published from its creation.
    pub signs_from: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl Store {
    /// The tenant's signing keys, newest first.
    pub async fn signing_keys(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.pools
            .fetch_all(
                query(
                    "SELECT kid, alg, private_sealed, public_jwk, created_at, signs_from, revoked_at \
                     FROM signing_keys WHERE tenant_id = $1 ORDER BY signs_from DESC, kid",
                )
                .bind(tenant_id),
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StoredSigningKey {
                    kid: r.text("kid")?,
                    alg: r.text("alg")?,
                    private_sealed: r.bytes("private_sealed")?,
                    public_jwk: serde_json::from_str(&r.text("public_jwk")?)
                        .map_err(|e| StoreError::Corrupt(format!("public_jwk: {e}")))?,
                    created_at: r.time("created_at")?,
                    signs_from: r.time("signs_from")?,
                    revoked_at: r.opt_time("revoked_at")?,
                })
            })
            .collect()
    }

    /// Stores a new signing key, audited; it is published from now on.
    pub async fn add_signing_key(
        &self,
        ctx: &WriteContext,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO signing_keys (kid, tenant_id, alg, private_sealed, public_jwk, created_at, signs_from) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(key.kid.clone())
            .bind(ctx.tenant_id)
            .bind(key.alg.clone())
            .bind(key.private_sealed.clone())
            .bind(key.public_jwk.to_string())
            .bind(key.created_at)
            .bind(key.signs_from),
        )
        .await?;
        w.record(
            "signing_key.create",
            "tenant",
            ctx.tenant_id,
            "create",
            json!({"kid": key.kid, "alg": key.alg, "signs_from": key.signs_from.unix_timestamp()}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Revokes every unrevoked key of `alg` except `keep` (an emergency rotation): they are no
    /// longer used or published, so the tokens they signed stop verifying. Audited.
    pub async fn revoke_signing_keys(
        &self,
        ctx: &WriteContext,
        alg: &str,
        keep: &str,
    ) -> Result<u64, StoreError> {
        let mut w = self.write(ctx).await?;
        let revoked = w
            .execute(
                query(
                    "UPDATE signing_keys SET revoked_at = $1 WHERE tenant_id = $2 AND alg = $3 \
                     AND kid <> $4 AND revoked_at IS NULL",
                )
                .bind(ctx.now)
                .bind(ctx.tenant_id)
                .bind(alg)
                .bind(keep),
            )
            .await?;
        w.record(
            "signing_key.revoke",
            "tenant",
            ctx.tenant_id,
            "update",
            json!({"alg": alg, "revoked": revoked, "kept": keep}),
        );
        w.commit().await?;
        Ok(revoked)
    }

    /// The tenants that have signing keys (for the rotation sweep).
    pub async fn tenants_with_signing_keys(&self) -> Result<Vec<TenantId>, StoreError> {
        self.pools
            .fetch_all(query("SELECT DISTINCT tenant_id FROM signing_keys"))
            .await?
            .iter()
            .map(|r| r.parse("tenant_id"))
            .collect()
    }

    /// Records a client assertion's `jti` until `expires_at` (Unix seconds). False: it was
    /// used before — a replay. Expired ones are forgotten on the way.
    pub async fn use_assertion_jti(
        &self,
        tenant_id: TenantId,
        client: ServicePrincipalId,
        jti: &str,
        expires_at: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pools.begin().await?;
        tx.execute(
            query("DELETE FROM client_assertion_jtis WHERE tenant_id = $3 AND client_id = $1 AND expires_at <= $2")
                .bind(client)
                .bind(now.unix_timestamp())
                .bind(tenant_id),
        )
        .await?;
        let inserted = tx
            .execute(
                query(
                    "INSERT INTO client_assertion_jtis (client_id, jti, expires_at, tenant_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (client_id, jti) DO NOTHING",
                )
                .bind(client)
                .bind(jti)
                .bind(expires_at)
                .bind(tenant_id),
            )
            .await?;
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// A service principal's OAuth client settings, if it is a client.
    pub async fn oauth_client(
        &self,
        tenant_id: TenantId,
        id: ServicePrincipalId,
    ) -> Result<Option<ClientSettings>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT settings FROM oauth_clients WHERE tenant_id = $1 AND service_principal_id = $2",
                )
                .bind(tenant_id)
                .bind(id),
            )
            .await?;
        row.map(|r| {
            serde_json::from_str(&r.text("settings")?)
                .map_err(|e| StoreError::Corrupt(format!("oauth client settings: {e}")))
        })
        .transpose()
    }

    /// The OAuth client settings of those of `ids` that are clients, one statement per 500.
    pub async fn oauth_clients(
        &self,
        tenant_id: TenantId,
        ids: &[ServicePrincipalId],
    ) -> Result<std::collections::HashMap<ServicePrincipalId, ClientSettings>, StoreError> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut statement = assembled_query(format!(
                "SELECT service_principal_id, settings FROM oauth_clients \
                 WHERE tenant_id = $1 AND service_principal_id IN ({})",
                placeholders(2, chunk.len())
            ))
            .bind(tenant_id);
            for id in chunk {
                statement = statement.bind(*id);
            }
            for row in self.pools.fetch_all(statement).await? {
                let settings = serde_json::from_str(&row.text("settings")?)
                    .map_err(|e| StoreError::Corrupt(format!("oauth client settings: {e}")))?;
                found.insert(row.parse("service_principal_id")?, settings);
            }
        }
        Ok(found)
    }

    /// Makes a service principal an OAuth client, or changes its settings.
    pub async fn set_oauth_client(
        &self,
        ctx: &WriteContext,
        id: ServicePrincipalId,
        settings: &ClientSettings,
    ) -> Result<(), StoreError> {
        settings.validate()?;
        let mut w = self.write(ctx).await?;
        let exists = w
            .fetch_optional(
                query("SELECT id FROM service_principals WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        w.execute(
            query(
                "INSERT INTO oauth_clients (service_principal_id, tenant_id, settings, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (service_principal_id) DO UPDATE SET \
                 settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(ctx.tenant_id)
            .bind(json!(settings).to_string())
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "service_principal.oauth_client.update",
            "service_principal",
            id,
            "update",
            json!(settings),
        );
        w.commit().await?;
        Ok(())
    }
}
