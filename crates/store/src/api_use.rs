//! When each principal last used the admin API, per way of authenticating: a row per principal
//! and method, overwritten (the server writes it at most about once a minute per row), so that
//! stale credentials and dormant administrators can be found without an event per request.

use time::OffsetDateTime;

use portcullis_core::TenantId;
use portcullis_core::audit::ApiUse;
use portcullis_core::identity::{PrincipalKind, PrincipalRef};

use crate::db::query;
use crate::{Store, StoreError};

impl Store {
    pub async fn touch_admin_api_use(
        &self,
        tenant_id: TenantId,
        principal: PrincipalRef,
        method: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pools
            .execute(
                query(
                    "INSERT INTO admin_api_use (tenant_id, principal_kind, principal_id, method, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, principal_id, method) DO UPDATE \
                     SET last_used_at = excluded.last_used_at WHERE admin_api_use.last_used_at < excluded.last_used_at",
                )
                .bind(tenant_id)
                .bind(principal.kind.as_str())
                .bind(principal.id)
                .bind(method)
                .bind(now),
            )
            .await?;
        Ok(())
    }

    /// The tenant's admin API use, most recent first: of one principal, or of everyone.
    pub async fn admin_api_use(
        &self,
        tenant_id: TenantId,
        principal: Option<PrincipalRef>,
        limit: u32,
    ) -> Result<Vec<ApiUse>, StoreError> {
        let rows = match principal {
            Some(p) => {
                self.pools
                    .fetch_all(
                        query(
                            "SELECT principal_kind, principal_id, method, last_used_at FROM admin_api_use \
                             WHERE tenant_id = $1 AND principal_kind = $2 AND principal_id = $3 \
                             ORDER BY last_used_at DESC LIMIT $4",
                        )
                        .bind(tenant_id)
                        .bind(p.kind.as_str())
                        .bind(p.id)
                        .bind(i64::from(limit)),
                    )
                    .await?
            }
            None => {
                self.pools
                    .fetch_all(
                        query(
                            "SELECT principal_kind, principal_id, method, last_used_at FROM admin_api_use \
                             WHERE tenant_id = $1 ORDER BY last_used_at DESC LIMIT $2",
                        )
                        .bind(tenant_id)
                        .bind(i64::from(limit)),
                    )
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(ApiUse {
                    principal: PrincipalRef {
                        kind: row.named("principal_kind", PrincipalKind::parse)?,
                        id: row.parse("principal_id")?,
                    },
                    method: row.text("method")?,
                    last_used_at: row.time("last_used_at")?,
                })
            })
            .collect()
    }
}
