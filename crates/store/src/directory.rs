//! Environments and the business-unit tree of a tenant.

use serde_json::json;
use uuid::Uuid;

use portcullis_core::authz::Scope;
use portcullis_core::identity::{BusinessUnit, Environment, reparent_would_cycle};
use portcullis_core::names::Name;
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::{BusinessUnitId, EnvironmentId, TenantId, ValidationError};

use crate::db::{Row, query};
use crate::write::{Reader, Write, WriteContext, changed_fields};
use crate::{Store, StoreError};

macro_rules! environment_columns {
    () => {
        "id, tenant_id, name, description, created_at, updated_at, version"
    };
}

macro_rules! unit_columns {
    () => {
        "id, tenant_id, parent_id, name, description, created_at, updated_at, version"
    };
}

fn environment_from_row(row: &Row) -> Result<Environment, StoreError> {
    Ok(Environment {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
    })
}

fn unit_from_row(row: &Row) -> Result<BusinessUnit, StoreError> {
    Ok(BusinessUnit {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        parent_id: row.opt_parse("parent_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
    })
}

const ENVIRONMENT_UNIQUES: &[(&str, &str, &str)] = &[(
    "name_key",
    "name",
    "an environment with this name already exists in the tenant",
)];
const UNIT_UNIQUES: &[(&str, &str, &str)] = &[(
    "name_key",
    "name",
    "a business unit with this name already exists in the tenant",
)];

pub(crate) async fn insert_business_unit(
    w: &mut Write,
    tenant_id: TenantId,
    parent_id: Option<BusinessUnitId>,
    name: &Name,
    description: Option<String>,
) -> Result<BusinessUnit, StoreError> {
    let row = w
        .fetch_one(
            query(concat!(
                "INSERT INTO business_units (id, tenant_id, parent_id, name, name_key, description, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING ",
                unit_columns!()
            ))
            .bind(BusinessUnitId::generate())
            .bind(tenant_id)
            .bind(parent_id)
            .bind(name.display.as_str())
            .bind(name.key.as_str())
            .bind(description)
            .bind(w.ctx.now),
        )
        .await
        .map_err(|e| e.on_unique(UNIT_UNIQUES))?;
    let unit = unit_from_row(&row)?;
    w.record_for(
        tenant_id,
        "business_unit.create",
        "business_unit",
        unit.id,
        "create",
        json!({"name": unit.name, "parent_id": parent_id}),
    );
    Ok(unit)
}

impl Store {
    // ---- environments ----

    pub async fn create_environment(
        &self,
        ctx: &WriteContext,
        name: Name,
        description: Option<String>,
    ) -> Result<Environment, StoreError> {
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_one(
                query(concat!(
                    "INSERT INTO environments (id, tenant_id, name, name_key, description, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, 1) RETURNING ",
                    environment_columns!()
                ))
                .bind(EnvironmentId::generate())
                .bind(ctx.tenant_id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(ctx.now),
            )
            .await
            .map_err(|e| e.on_unique(ENVIRONMENT_UNIQUES))?;
        let environment = environment_from_row(&row)?;
        w.record(
            "environment.create",
            "environment",
            environment.id,
            "create",
            json!({"name": environment.name}),
        );
        w.commit().await?;
        Ok(environment)
    }

    pub async fn environment(
        &self,
        tenant_id: TenantId,
        id: EnvironmentId,
    ) -> Result<Environment, StoreError> {
        environment_in(&self.pools, tenant_id, id).await
    }

    pub async fn environments(
        &self,
        tenant_id: TenantId,
        page: PageRequest<Uuid>,
    ) -> Result<Page<Environment>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    environment_columns!(),
                    " FROM environments WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
                ))
                .bind(tenant_id)
                .bind(page.after)
                .bind(page.fetch_limit()),
            )
            .await?;
        let environments = rows
            .iter()
            .map(environment_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(environments, |e| e.id))
    }

    pub async fn update_environment(
        &self,
        ctx: &WriteContext,
        id: EnvironmentId,
        expected_version: i64,
        name: Name,
        description: Option<String>,
    ) -> Result<Environment, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = environment_in(&mut w, ctx.tenant_id, id).await?;
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE environments SET name = $3, name_key = $4, description = $5, updated_at = $6, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2 AND version = $7 RETURNING ",
                    environment_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await
            .map_err(|e| e.on_unique(ENVIRONMENT_UNIQUES))?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = environment_from_row(&row)?;
        w.record(
            "environment.update",
            "environment",
            id,
            "update",
            changed_fields(&before, &after),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Deletes an environment and every role assignment scoped to it.
    pub async fn delete_environment(
        &self,
        ctx: &WriteContext,
        id: EnvironmentId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let environment = environment_in(&mut w, ctx.tenant_id, id).await?;
        let records = w
            .fetch_one(
                query("SELECT COUNT(*) AS n FROM records WHERE tenant_id = $1 AND environment_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?
            .int("n")?;
        if records > 0 {
            return Err(StoreError::conflict(
                "id",
                "records still live in the environment; move or delete them first",
            ));
        }
        crate::access::remove_scoped(&mut w, Scope::Environment(id)).await?;
        w.delete_versioned("environments", id, expected_version)
            .await?;
        w.record(
            "environment.delete",
            "environment",
            id,
            "delete",
            json!({"name": environment.name}),
        );
        w.commit().await?;
        Ok(())
    }

    // ---- business units ----

    pub async fn create_business_unit(
        &self,
        ctx: &WriteContext,
        parent_id: BusinessUnitId,
        name: Name,
        description: Option<String>,
    ) -> Result<BusinessUnit, StoreError> {
        let mut w = self.write(ctx).await?;
        business_unit_in(&mut w, ctx.tenant_id, parent_id)
            .await
            .map_err(|_| {
                ValidationError::new("parent_id", "no such business unit in this tenant")
            })?;
        let unit = insert_business_unit(&mut w, ctx.tenant_id, Some(parent_id), &name, description)
            .await?;
        w.commit().await?;
        Ok(unit)
    }

    pub async fn business_unit(
        &self,
        tenant_id: TenantId,
        id: BusinessUnitId,
    ) -> Result<BusinessUnit, StoreError> {
        business_unit_in(&self.pools, tenant_id, id).await
    }

    pub async fn root_business_unit(
        &self,
        tenant_id: TenantId,
    ) -> Result<BusinessUnit, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    unit_columns!(),
                    " FROM business_units WHERE tenant_id = $1 AND parent_id IS NULL"
                ))
                .bind(tenant_id),
            )
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("tenant {tenant_id} has no root business unit"))
            })?;
        unit_from_row(&row)
    }

    pub async fn business_units(
        &self,
        tenant_id: TenantId,
        page: PageRequest<Uuid>,
    ) -> Result<Page<BusinessUnit>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    unit_columns!(),
                    " FROM business_units WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
                ))
                .bind(tenant_id)
                .bind(page.after)
                .bind(page.fetch_limit()),
            )
            .await?;
        let units = rows
            .iter()
            .map(unit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(units, |u| u.id))
    }

    /// Renames or moves a business unit; refuses to move it below itself or to move the root.
    pub async fn update_business_unit(
        &self,
        ctx: &WriteContext,
        id: BusinessUnitId,
        expected_version: i64,
        name: Name,
        description: Option<String>,
        parent_id: Option<BusinessUnitId>,
    ) -> Result<BusinessUnit, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = business_unit_in(&mut w, ctx.tenant_id, id).await?;
        match (before.parent_id, parent_id) {
            (None, Some(_)) => {
                return Err(ValidationError::new(
                    "parent_id",
                    "the root business unit cannot be moved",
                )
                .into());
            }
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "parent_id",
                    "only the root business unit has no parent",
                )
                .into());
            }
            (Some(old), Some(new)) if old != new => {
                let parents = w
                    .fetch_all(
                        query("SELECT id, parent_id FROM business_units WHERE tenant_id = $1")
                            .bind(ctx.tenant_id),
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        Ok((
                            r.parse::<BusinessUnitId>("id")?,
                            r.opt_parse::<BusinessUnitId>("parent_id")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                if !parents.iter().any(|(unit, _)| *unit == new) {
                    return Err(ValidationError::new(
                        "parent_id",
                        "no such business unit in this tenant",
                    )
                    .into());
                }
                if reparent_would_cycle(&parents, id, new) {
                    return Err(StoreError::conflict(
                        "parent_id",
                        "a business unit cannot be moved below itself",
                    ));
                }
            }
            _ => {}
        }
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE business_units SET name = $3, name_key = $4, description = $5, parent_id = $6, updated_at = $7, \
                     version = version + 1 WHERE tenant_id = $1 AND id = $2 AND version = $8 RETURNING ",
                    unit_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(parent_id)
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await
            .map_err(|e| e.on_unique(UNIT_UNIQUES))?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = unit_from_row(&row)?;
        w.record(
            "business_unit.update",
            "business_unit",
            id,
            "update",
            changed_fields(&before, &after),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Deletes an empty business unit: not the root, no child units, no users.
    pub async fn delete_business_unit(
        &self,
        ctx: &WriteContext,
        id: BusinessUnitId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let unit = business_unit_in(&mut w, ctx.tenant_id, id).await?;
        if unit.parent_id.is_none() {
            return Err(StoreError::conflict(
                "id",
                "the root business unit cannot be deleted",
            ));
        }
        let in_use = w
            .fetch_one(
                query(
                    "SELECT (SELECT COUNT(*) FROM business_units WHERE tenant_id = $1 AND parent_id = $2) + \
                     (SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND business_unit_id = $2) + \
                     (SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND business_unit_id = $2) + \
                     (SELECT COUNT(*) FROM records WHERE tenant_id = $1 AND business_unit_id = $2) AS n",
                )
                .bind(ctx.tenant_id)
                .bind(id),
            )
            .await?
            .int("n")?;
        if in_use > 0 {
            return Err(StoreError::conflict(
                "id",
                "the business unit still has child units, users, teams or records; move them first",
            ));
        }
        crate::access::remove_scoped(&mut w, Scope::BusinessUnit(id)).await?;
        w.delete_versioned("business_units", id, expected_version)
            .await?;
        w.record(
            "business_unit.delete",
            "business_unit",
            id,
            "delete",
            json!({"name": unit.name}),
        );
        w.commit().await?;
        Ok(())
    }
}

async fn environment_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    id: EnvironmentId,
) -> Result<Environment, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                environment_columns!(),
                " FROM environments WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
        )
        .await?;
    environment_from_row(&row)
}

async fn business_unit_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    id: BusinessUnitId,
) -> Result<BusinessUnit, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                unit_columns!(),
                " FROM business_units WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
        )
        .await?;
    unit_from_row(&row)
}
