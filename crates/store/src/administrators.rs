//! The tenant's rules for the people who administer it (how strongly and how recently they
//! must have signed in, per action), and retiring the first administrator's key once a person
//! has taken over.

use std::collections::BTreeSet;

use serde_json::json;

use portcullis_core::administrators::{AdministratorPolicy, ApiKeyUse, MfaActions};
use portcullis_core::authz::Action;
use portcullis_core::session::Strength;
use portcullis_core::{ApiKeyId, TenantId, UserId};

use crate::db::query;
use crate::{Store, StoreError, WriteContext};

impl Store {
    /// The tenant's policy for administrators (the defaults when never set).
    pub async fn administrator_policy(
        &self,
        tenant_id: TenantId,
    ) -> Result<AdministratorPolicy, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT mfa, mfa_strength, recent_actions, recent_minutes, api_keys FROM administrator_policies \
                     WHERE tenant_id = $1",
                )
                .bind(tenant_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(AdministratorPolicy::default());
        };
        let recent_actions = row
            .text("recent_actions")?
            .split_whitespace()
            .map(|name| {
                name.parse::<Action>().map_err(|()| {
                    StoreError::Corrupt(format!("administrator policy: unknown action {name:?}"))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(AdministratorPolicy {
            mfa: row.named("mfa", MfaActions::parse)?,
            mfa_strength: row.named("mfa_strength", Strength::parse)?,
            recent_actions,
            recent_minutes: u32::try_from(row.int("recent_minutes")?)
                .map_err(|_| StoreError::Corrupt("recent_minutes".into()))?,
            api_keys: row.named("api_keys", ApiKeyUse::parse)?,
        })
    }

    pub async fn set_administrator_policy(
        &self,
        ctx: &WriteContext,
        policy: &AdministratorPolicy,
    ) -> Result<(), StoreError> {
        let recent_actions = policy
            .recent_actions
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO administrator_policies (tenant_id, mfa, mfa_strength, recent_actions, recent_minutes, \
                 api_keys, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET \
                 mfa = excluded.mfa, mfa_strength = excluded.mfa_strength, \
                 recent_actions = excluded.recent_actions, recent_minutes = excluded.recent_minutes, \
                 api_keys = excluded.api_keys, updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant_id)
            .bind(policy.mfa.as_str())
            .bind(policy.mfa_strength.as_str())
            .bind(recent_actions)
            .bind(i64::from(policy.recent_minutes))
            .bind(policy.api_keys.as_str())
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "tenant.administrator_policy.update",
            "tenant",
            ctx.tenant_id,
            "update",
            json!(policy),
        );
        w.commit().await?;
        Ok(())
    }
}

/// A tenant's first administrator's key that never expires (the bootstrap credential, or the
/// one `tenant create` printed).
#[derive(Debug, Clone)]
pub struct UnexpiringFirstKey {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub prefix: String,
}

impl Store {
    /// The first administrators' keys (of service principals still named `bootstrap-admin`)
    /// that are in use and have no expiry.
    pub async fn unexpiring_first_keys(&self) -> Result<Vec<UnexpiringFirstKey>, StoreError> {
        let rows = self
            .pools
            .fetch_all(query(
                "SELECT k.id, k.tenant_id, k.prefix FROM api_keys k \
                 JOIN service_principals sp ON sp.id = k.service_principal_id \
                 WHERE sp.name_key = 'bootstrap-admin' AND k.expires_at IS NULL AND k.revoked_at IS NULL",
            ))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UnexpiringFirstKey {
                    tenant_id: row.parse("tenant_id")?,
                    key_id: row.parse("id")?,
                    prefix: row.text("prefix")?,
                })
            })
            .collect()
    }

    /// The tenant's active users who have a second factor: a confirmed authenticator or a
    /// passkey.
    pub async fn users_with_mfa(&self, tenant_id: TenantId) -> Result<Vec<UserId>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(
                    "SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.state = 'active' AND (\
                     EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM user_passkeys p WHERE p.user_id = u.id))",
                )
                .bind(tenant_id),
            )
            .await?;
        rows.iter().map(|row| row.parse("id")).collect()
    }

    /// Gives a first administrator's key an expiry, once: `false` when it already has one or
    /// was revoked meanwhile (another node got there first).
    pub async fn expire_first_key(
        &self,
        ctx: &WriteContext,
        key: &UnexpiringFirstKey,
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut w = self.write(ctx).await?;
        let changed = w
            .execute(
                query(
                    "UPDATE api_keys SET expires_at = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND expires_at IS NULL AND revoked_at IS NULL",
                )
                .bind(ctx.tenant_id)
                .bind(key.key_id)
                .bind(expires_at),
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        w.record(
            "api_key.first_key_expiry",
            "api_key",
            &key.prefix,
            "update",
            json!({"expires_at": expires_at.unix_timestamp(),
                   "reason": "a human administrator with a second factor exists"}),
        );
        w.commit().await?;
        Ok(true)
    }
}
