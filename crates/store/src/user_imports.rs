//! Bulk imports of users: their progress and report, readable from any node.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::import::{ImportFailure, ImportState, UserImport};
use portcullis_core::{TenantId, UserImportId};

use crate::db::{Row, query};
use crate::write::WriteContext;
use crate::{Store, StoreError};

/// An import not heard from for this long is taken to have stopped with its server.
const STALE_AFTER: time::Duration = time::Duration::minutes(5);

fn import_from_row(row: &Row, now: OffsetDateTime) -> Result<UserImport, StoreError> {
    let count = |col: &str| -> Result<u64, StoreError> {
        u64::try_from(row.int(col)?).map_err(|_| StoreError::Corrupt(format!("column {col}")))
    };
    let finished_at = row.opt_time("finished_at")?;
    let updated_at = row.time("updated_at")?;
    let state = match finished_at {
        Some(_) => ImportState::Finished,
        None if now - updated_at > STALE_AFTER => ImportState::Interrupted,
        None => ImportState::Running,
    };
    let failures: Vec<ImportFailure> = serde_json::from_str(&row.text("failures")?)
        .map_err(|e| StoreError::Corrupt(format!("column failures: {e}")))?;
    Ok(UserImport {
        id: row.parse("id")?,
        state,
        file_name: row.opt_text("file_name")?,
        started_by: row.text("started_by")?,
        total: count("total")?,
        processed: count("processed")?,
        created: count("created")?,
        failed: count("failed")?,
        failures,
        created_at: row.time("created_at")?,
        updated_at,
        finished_at,
    })
}

/// Counts of an import so far.
#[derive(Debug, Clone, Default)]
pub struct ImportProgress {
    pub processed: u64,
    pub created: u64,
    pub failed: u64,
    pub failures: Vec<ImportFailure>,
}

impl Store {
    /// Records the start of an import of `total` lines (audited as `user.import`).
    pub async fn start_user_import(
        &self,
        ctx: &WriteContext,
        file_name: Option<&str>,
        total: u64,
    ) -> Result<UserImport, StoreError> {
        let id = UserImportId::generate();
        let started_by = ctx.actor.id.clone().unwrap_or_default();
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO user_imports (id, tenant_id, started_by, file_name, total, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(id)
            .bind(ctx.tenant_id)
            .bind(started_by.as_str())
            .bind(file_name)
            .bind(i64::try_from(total).unwrap_or(i64::MAX))
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "user.import",
            "user_import",
            id,
            "create",
            json!({ "file_name": file_name, "total": total }),
        );
        w.commit().await?;
        self.user_import(ctx.tenant_id, id, ctx.now).await
    }

    /// Saves how far an import has got; `finished` at the end (audited with its counts).
    pub async fn record_user_import_progress(
        &self,
        ctx: &WriteContext,
        id: UserImportId,
        progress: &ImportProgress,
        finished: bool,
    ) -> Result<(), StoreError> {
        let failures = serde_json::to_string(&progress.failures)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let update = query(
            "UPDATE user_imports SET processed = $3, created = $4, failed = $5, failures = $6, \
             updated_at = $7, finished_at = $8 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(ctx.tenant_id)
        .bind(id)
        .bind(i64::try_from(progress.processed).unwrap_or(i64::MAX))
        .bind(i64::try_from(progress.created).unwrap_or(i64::MAX))
        .bind(i64::try_from(progress.failed).unwrap_or(i64::MAX))
        .bind(failures)
        .bind(ctx.now)
        .bind(finished.then_some(ctx.now));
        if !finished {
            self.pools.execute(update).await?;
            return Ok(());
        }
        let mut w = self.write(ctx).await?;
        w.execute(update).await?;
        w.record(
            "user.import.finish",
            "user_import",
            id,
            "update",
            json!({
                "processed": progress.processed,
                "created": progress.created,
                "failed": progress.failed,
            }),
        );
        w.commit().await?;
        Ok(())
    }

    /// One import of the tenant.
    pub async fn user_import(
        &self,
        tenant_id: TenantId,
        id: UserImportId,
        now: OffsetDateTime,
    ) -> Result<UserImport, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT * FROM user_imports WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        import_from_row(&row, now)
    }
}
