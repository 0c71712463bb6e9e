//! The tenant's rules for the people who administer it: how strongly and how recently they
//! must have signed in, per action.

use std::collections::BTreeSet;

use serde_json::json;

use portcullis_core::TenantId;
use portcullis_core::administrators::{AdministratorPolicy, MfaActions};
use portcullis_core::authz::Action;
use portcullis_core::session::Strength;

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
                    "SELECT mfa, mfa_strength, recent_actions, recent_minutes FROM administrator_policies \
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
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET \
                 mfa = excluded.mfa, mfa_strength = excluded.mfa_strength, \
                 recent_actions = excluded.recent_actions, recent_minutes = excluded.recent_minutes, \
                 updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant_id)
            .bind(policy.mfa.as_str())
            .bind(policy.mfa_strength.as_str())
            .bind(recent_actions)
            .bind(i64::from(policy.recent_minutes))
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
