//! The authorization engine's data: resource types, custom roles, records, shares and deny
//! assignments; the whole of a tenant's authorization data read at one revision (`authz_source`);
//! and the change feed that tells a node when to read it again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use portcullis_core::authz::Scope;
use portcullis_core::engine::subjects::Identifier;
use portcullis_core::engine::tenant::{Delta, PrincipalNow, Source, TenantEngine};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::names::Name;
use portcullis_core::resources::{
    self, AccessSettings, CustomRole, DenyAssignment, RecordEntry, ResourceAction, ResourceType,
    RolePermission, Share,
};
use portcullis_core::*;

use crate::db::{Row, Tx, query};
use crate::principals::{principal_exists, require_business_unit};
use crate::write::{Reader, Write, WriteContext};
use crate::{Store, StoreError};
use uuid::Uuid;

/// The kinds of change that alter authorization data; other changes (keys, clients, sign-in
/// settings) move the revision without a rebuild.
const AUTHORIZATION_KINDS: &[&str] = &[
    "user",
    "group",
    "service_principal",
    "business_unit",
    "environment",
    "role_assignment",
    "resource_type",
    "custom_role",
    "record",
    "share",
    "deny_assignment",
    "access_settings",
    crate::principals::MEMBERSHIP_CHANGE,
    BULK_LOAD_CHANGE,
];

/// The kinds of change a node takes in only by building the engine again: they reshape what
/// the engine interns (units and their tree, environments, actions, roles).
const REBUILD_KINDS: &[&str] = &[
    "business_unit",
    "environment",
    "resource_type",
    "custom_role",
    BULK_LOAD_CHANGE,
];

/// The change a bulk load ends with (`Store::finish_bulk_load`).
pub(crate) const BULK_LOAD_CHANGE: &str = "authorization_data";

/// The most change rows a node reads back as a delta; a node further behind builds the
/// engine again instead (see docs/design/engine-deltas.md).
pub const MAX_DELTA_CHANGES: usize = 20_000;

/// Of the kinds only a rebuild takes in, those created holding nothing: a new unit,
/// environment or unassigned role changes no decision until a later change names it, and
/// that change (finding it unknown to the engine) asks for the rebuild.
const CREATED_EMPTY: &[&str] = &["business_unit", "environment", "custom_role"];

const ACCESS_SETTINGS: &str =
    "SELECT audit_allowed_one_in, subject_types FROM tenant_access_settings WHERE tenant_id = $1";

fn settings_from(row: Option<&Row>) -> Result<AccessSettings, StoreError> {
    let Some(row) = row else {
        return Ok(AccessSettings::default());
    };
    Ok(AccessSettings {
        audit_allowed_one_in: u32::try_from(row.int("audit_allowed_one_in")?)
            .map_err(|_| StoreError::Corrupt("audit_allowed_one_in".into()))?,
        subject_types: from_json(row, "subject_types")?,
    })
}

/// Runs `delete` unless `reference` finds a row still using the target (then `in_use`);
/// `NotFound` if nothing was deleted.
async fn delete_unreferenced(
    w: &mut Write,
    reference: crate::db::Query,
    delete: crate::db::Query,
    in_use: StoreError,
) -> Result<(), StoreError> {
    if w.fetch_optional(reference).await?.is_some() {
        return Err(in_use);
    }
    if w.execute(delete).await? == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A tenant's latest change-feed revision.
const CHANGE_HEAD: &str = "SELECT change_seq FROM tenant_heads WHERE tenant_id = $1";

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: DeserializeOwned>(row: &Row, col: &str) -> Result<T, StoreError> {
    serde_json::from_str(&row.text(col)?)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

fn principal(row: &Row, kind: &str, id: &str) -> Result<PrincipalRef, StoreError> {
    Ok(PrincipalRef {
        kind: row.named(kind, PrincipalKind::parse)?,
        id: row.parse(id)?,
    })
}

fn resource_type_from_row(row: &Row) -> Result<ResourceType, StoreError> {
    Ok(ResourceType {
        name: row.text("name")?,
        description: row.opt_text("description")?,
        actions: from_json(row, "actions")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
    })
}

fn custom_role_from_row(row: &Row) -> Result<CustomRole, StoreError> {
    Ok(CustomRole {
        id: row.parse("id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        permissions: from_json(row, "permissions")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
    })
}

fn record_from_row(row: &Row) -> Result<RecordEntry, StoreError> {
    Ok(RecordEntry {
        id: row.parse("id")?,
        resource_type: row.text("resource_type")?,
        external_id: row.text("external_id")?,
        owner: principal(row, "owner_kind", "owner_id")?,
        business_unit_id: row.parse("business_unit_id")?,
        environment_id: row.opt_parse("environment_id")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn share_from_row(row: &Row) -> Result<Share, StoreError> {
    Ok(Share {
        id: row.parse("id")?,
        record_id: row.parse("record_id")?,
        principal: principal(row, "principal_kind", "principal_id")?,
        actions: from_json(row, "actions")?,
        created_at: row.time("created_at")?,
    })
}

fn deny_from_row(row: &Row) -> Result<DenyAssignment, StoreError> {
    Ok(DenyAssignment {
        id: row.parse("id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        principals: from_json(row, "principals")?,
        excluded: from_json(row, "excluded")?,
        actions: from_json(row, "actions")?,
        scope: row.parse("scope")?,
        created_at: row.time("created_at")?,
    })
}

macro_rules! resource_type_columns {
    () => {
        "name, description, actions, created_at, updated_at, version"
    };
}
macro_rules! custom_role_columns {
    () => {
        "id, name, description, permissions, created_at, updated_at, version"
    };
}
macro_rules! record_columns {
    () => {
        "id, resource_type, external_id, owner_kind, owner_id, business_unit_id, environment_id, created_at, updated_at"
    };
}
macro_rules! share_columns {
    () => {
        "id, record_id, principal_kind, principal_id, actions, created_at"
    };
}
macro_rules! deny_columns {
    () => {
        "id, name, description, principals, excluded, actions, scope, created_at"
    };
}

async fn types_in(w: &mut Write) -> Result<Vec<ResourceType>, StoreError> {
    w.fetch_all(
        query(concat!(
            "SELECT ",
            resource_type_columns!(),
            " FROM resource_types WHERE tenant_id = $1"
        ))
        .bind(w.ctx.tenant_id),
    )
    .await?
    .iter()
    .map(resource_type_from_row)
    .collect()
}

async fn require_principal(w: &mut Write, field: &str, p: PrincipalRef) -> Result<(), StoreError> {
    if principal_exists(w, p).await? {
        Ok(())
    } else {
        Err(
            ValidationError::new(field, format!("no such {} in this tenant", p.kind.as_str()))
                .into(),
        )
    }
}

/// Checks that a scope names something of this tenant.
pub(crate) async fn require_scope(w: &mut Write, scope: Scope) -> Result<(), StoreError> {
    let (sql, id) = match scope {
        Scope::Tenant => return Ok(()),
        Scope::Environment(id) => (
            "SELECT id FROM environments WHERE tenant_id = $1 AND id = $2",
            id.to_string(),
        ),
        Scope::BusinessUnit(id) => (
            "SELECT id FROM business_units WHERE tenant_id = $1 AND id = $2",
            id.to_string(),
        ),
        Scope::Record(id) => (
            "SELECT id FROM records WHERE tenant_id = $1 AND id = $2",
            id.to_string(),
        ),
    };
    match w
        .fetch_optional(query(sql).bind(w.ctx.tenant_id).bind(id))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ValidationError::new("scope", "names nothing in this tenant").into()),
    }
}

/// A deny assignment to create.
#[derive(Debug, Clone)]
pub struct NewDenyAssignment {
    pub name: Name,
    pub description: Option<String>,
    pub principals: Vec<PrincipalRef>,
    pub excluded: Vec<PrincipalRef>,
    pub actions: Vec<String>,
    pub scope: Scope,
}

/// Removes the role and deny assignments at `scope`, whose target is being deleted.
pub(crate) async fn remove_scoped(w: &mut Write, scope: Scope) -> Result<(), StoreError> {
    let tenant = w.ctx.tenant_id;
    for sql in [
        "DELETE FROM role_assignments WHERE tenant_id = $1 AND scope = $2",
        "DELETE FROM deny_assignments WHERE tenant_id = $1 AND scope = $2",
    ] {
        w.execute(query(sql).bind(tenant).bind(scope.to_string()))
            .await?;
    }
    Ok(())
}

impl Store {
    // ---- resource types ----

    pub async fn create_resource_type(
        &self,
        ctx: &WriteContext,
        name: String,
        description: Option<String>,
        actions: Vec<ResourceAction>,
    ) -> Result<ResourceType, StoreError> {
        resources::validate_resource_type(&name, &actions)?;
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_one(
                query(
                    "INSERT INTO resource_types (tenant_id, name, description, actions, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $5, 1) RETURNING name, description, actions, created_at, updated_at, version",
                )
                .bind(ctx.tenant_id)
                .bind(&name)
                .bind(description)
                .bind(to_json(&actions)?)
                .bind(ctx.now),
            )
            .await
            .map_err(|e| e.on_unique(&[("resource_types", "name", "a resource type of this name exists")]))?;
        let created = resource_type_from_row(&row)?;
        w.record(
            "resource_type.create",
            "resource_type",
            &name,
            "create",
            json!({"actions": actions}),
        );
        w.commit().await?;
        Ok(created)
    }

    /// Replaces a resource type's description and actions, if it is still at `expected_version`.
    /// Roles, shares and denies that name a removed action stop granting or refusing it.
    pub async fn update_resource_type(
        &self,
        ctx: &WriteContext,
        name: &str,
        expected_version: i64,
        description: Option<String>,
        actions: Vec<ResourceAction>,
    ) -> Result<ResourceType, StoreError> {
        resources::validate_resource_type(name, &actions)?;
        let mut w = self.write(ctx).await?;
        let before = resource_type_in(&mut w, ctx.tenant_id, name).await?;
        let row = w
            .fetch_optional(
                query(
                    concat!("UPDATE resource_types SET description = $3, actions = $4, updated_at = $5, version = version + 1 \
                     WHERE tenant_id = $1 AND name = $2 AND version = $6 \
                     RETURNING ", resource_type_columns!()),
                )
                .bind(ctx.tenant_id)
                .bind(name)
                .bind(description)
                .bind(to_json(&actions)?)
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = resource_type_from_row(&row)?;
        w.record(
            "resource_type.update",
            "resource_type",
            name,
            "update",
            json!({"actions": {"from": before.actions, "to": after.actions}}),
        );
        w.commit().await?;
        Ok(after)
    }

    pub async fn resource_type(
        &self,
        tenant_id: TenantId,
        name: &str,
    ) -> Result<ResourceType, StoreError> {
        resource_type_in(&self.pools, tenant_id, name).await
    }

    pub async fn resource_types(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<ResourceType>, StoreError> {
        self.pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    resource_type_columns!(),
                    " FROM resource_types WHERE tenant_id = $1 ORDER BY name"
                ))
                .bind(tenant_id),
            )
            .await?
            .iter()
            .map(resource_type_from_row)
            .collect()
    }

    /// Deletes a resource type that no record uses any more.
    pub async fn delete_resource_type(
        &self,
        ctx: &WriteContext,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        delete_unreferenced(
            &mut w,
            query("SELECT id FROM records WHERE tenant_id = $1 AND resource_type = $2 LIMIT 1")
                .bind(ctx.tenant_id)
                .bind(name),
            query("DELETE FROM resource_types WHERE tenant_id = $1 AND name = $2")
                .bind(ctx.tenant_id)
                .bind(name),
            StoreError::conflict("name", "records of this type exist; delete them first"),
        )
        .await?;
        w.record(
            "resource_type.delete",
            "resource_type",
            name,
            "delete",
            json!({}),
        );
        w.commit().await?;
        Ok(())
    }

    // ---- custom roles ----

    pub async fn create_custom_role(
        &self,
        ctx: &WriteContext,
        name: Name,
        description: Option<String>,
        permissions: Vec<RolePermission>,
    ) -> Result<CustomRole, StoreError> {
        let mut w = self.write(ctx).await?;
        let permissions = resources::canonical_permissions(permissions, &types_in(&mut w).await?)?;
        let row = w
            .fetch_one(
                query(
                    concat!("INSERT INTO custom_roles (id, tenant_id, name, name_key, description, permissions, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING ", custom_role_columns!()),
                )
                .bind(RoleId::generate())
                .bind(ctx.tenant_id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(to_json(&permissions)?)
                .bind(ctx.now),
            )
            .await
            .map_err(|e| e.on_unique(&[("custom_roles", "name", "a role of this name exists")]))?;
        let role = custom_role_from_row(&row)?;
        w.record(
            "custom_role.create",
            "custom_role",
            role.id,
            "create",
            json!({"name": role.name, "permissions": role.permissions}),
        );
        w.commit().await?;
        Ok(role)
    }

    /// Replaces a custom role's name, description and permissions, if it is still at
    /// `expected_version`. Every assignment of the role changes with it.
    pub async fn update_custom_role(
        &self,
        ctx: &WriteContext,
        id: RoleId,
        expected_version: i64,
        name: Name,
        description: Option<String>,
        permissions: Vec<RolePermission>,
    ) -> Result<CustomRole, StoreError> {
        let mut w = self.write(ctx).await?;
        let permissions = resources::canonical_permissions(permissions, &types_in(&mut w).await?)?;
        // Read through the transaction, never the pool, while holding the write (see `group_in`).
        let before =
            custom_role_from_row(&w.fetch_one(custom_role_query(ctx.tenant_id, id)).await?)?;
        let row = w
            .fetch_optional(
                query(
                    concat!("UPDATE custom_roles SET name = $3, name_key = $4, description = $5, permissions = $6, updated_at = $7, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2 AND version = $8 \
                     RETURNING ", custom_role_columns!()),
                )
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(to_json(&permissions)?)
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await
            .map_err(|e| e.on_unique(&[("custom_roles", "name", "a role of this name exists")]))?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = custom_role_from_row(&row)?;
        w.record(
            "custom_role.update",
            "custom_role",
            id,
            "update",
            json!({"permissions": {"from": before.permissions, "to": after.permissions}}),
        );
        w.commit().await?;
        Ok(after)
    }

    pub async fn custom_role(
        &self,
        tenant_id: TenantId,
        id: RoleId,
    ) -> Result<CustomRole, StoreError> {
        let row = self
            .pools
            .fetch_optional(custom_role_query(tenant_id, id))
            .await?
            .ok_or(StoreError::NotFound)?;
        custom_role_from_row(&row)
    }

    pub async fn custom_roles(&self, tenant_id: TenantId) -> Result<Vec<CustomRole>, StoreError> {
        self.pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    custom_role_columns!(),
                    " FROM custom_roles WHERE tenant_id = $1 ORDER BY name_key"
                ))
                .bind(tenant_id),
            )
            .await?
            .iter()
            .map(custom_role_from_row)
            .collect()
    }

    /// Deletes a custom role that nobody holds any more.
    pub async fn delete_custom_role(
        &self,
        ctx: &WriteContext,
        id: RoleId,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        delete_unreferenced(
            &mut w,
            query("SELECT id FROM role_assignments WHERE tenant_id = $1 AND role = $2 LIMIT 1")
                .bind(ctx.tenant_id)
                .bind(id),
            query("DELETE FROM custom_roles WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
            StoreError::conflict("id", "the role is assigned; remove its assignments first"),
        )
        .await?;
        w.record("custom_role.delete", "custom_role", id, "delete", json!({}));
        w.commit().await?;
        Ok(())
    }

    // ---- records ----

    /// Registers a record, or moves an existing one (same type and external id) to a new owner,
    /// unit or environment. Its shares and record-scoped assignments stay with it.
    pub async fn put_record(
        &self,
        ctx: &WriteContext,
        resource_type: &str,
        external_id: &str,
        owner: PrincipalRef,
        business_unit_id: BusinessUnitId,
        environment_id: Option<EnvironmentId>,
    ) -> Result<RecordEntry, StoreError> {
        resources::validate_external_id(external_id)?;
        let mut w = self.write(ctx).await?;
        let known_type = w
            .fetch_optional(
                query("SELECT name FROM resource_types WHERE tenant_id = $1 AND name = $2")
                    .bind(ctx.tenant_id)
                    .bind(resource_type),
            )
            .await?;
        if known_type.is_none() {
            return Err(ValidationError::new(
                "resource_type",
                "no such resource type in this tenant",
            )
            .into());
        }
        require_principal(&mut w, "owner", owner).await?;
        if owner.kind == PrincipalKind::ServicePrincipal {
            return Err(ValidationError::new("owner", "must be a user or a group").into());
        }
        require_business_unit(&mut w, business_unit_id).await?;
        if let Some(environment) = environment_id {
            require_scope(&mut w, Scope::Environment(environment))
                .await
                .map_err(|_| {
                    ValidationError::new("environment_id", "no such environment in this tenant")
                })?;
        }
        let existing = w
            .fetch_optional(
                query("SELECT id FROM records WHERE tenant_id = $1 AND resource_type = $2 AND external_id = $3")
                    .bind(ctx.tenant_id)
                    .bind(resource_type)
                    .bind(external_id),
            )
            .await?;
        let (id, op) = match existing {
            Some(row) => (row.parse::<RecordId>("id")?, "update"),
            None => (RecordId::generate(), "create"),
        };
        let sql = if op == "create" {
            "INSERT INTO records (id, tenant_id, resource_type, external_id, owner_kind, owner_id, business_unit_id, environment_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        } else {
            "UPDATE records SET owner_kind = $5, owner_id = $6, business_unit_id = $7, environment_id = $8, updated_at = $9 \
             WHERE id = $1 AND tenant_id = $2 AND resource_type = $3 AND external_id = $4"
        };
        w.execute(
            query(sql)
                .bind(id)
                .bind(ctx.tenant_id)
                .bind(resource_type)
                .bind(external_id)
                .bind(owner.kind.as_str())
                .bind(owner.id)
                .bind(business_unit_id)
                .bind(environment_id)
                .bind(ctx.now),
        )
        .await?;
        w.record(
            &format!("record.{op}"),
            "record",
            id,
            op,
            json!({"resource_type": resource_type, "external_id": external_id, "owner": owner, "business_unit_id": business_unit_id, "environment_id": environment_id}),
        );
        let row = w
            .fetch_one(
                query(concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM records WHERE id = $1"
                ))
                .bind(id),
            )
            .await?;
        let record = record_from_row(&row)?;
        w.commit().await?;
        Ok(record)
    }

    pub async fn record(
        &self,
        tenant_id: TenantId,
        resource_type: &str,
        external_id: &str,
    ) -> Result<RecordEntry, StoreError> {
        record_in(&self.pools, tenant_id, resource_type, external_id).await
    }

    /// Records of one type whose external id starts with `prefix`, in external-id order
    /// (bytewise on both stores), resumed after the external id `after`; and whether more
    /// follow. One range of the `(tenant, type, external id)` index, so a page costs time that
    /// grows with the page, not with how many records the tenant holds.
    pub async fn records_of(
        &self,
        tenant_id: TenantId,
        resource_type: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RecordEntry>, bool), StoreError> {
        // Above every id that starts with `prefix`: no character sorts after U+10FFFF, in
        // UTF-8 bytes (SQLite) or the "C" collation (PostgreSQL).
        let high = format!("{prefix}\u{10FFFF}");
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM records WHERE tenant_id = $1 AND resource_type = $2 \
                     AND external_id >= $3 AND external_id < $4 AND external_id > $5 \
                     ORDER BY external_id LIMIT $6"
                ))
                .bind(tenant_id)
                .bind(resource_type)
                .bind(prefix)
                .bind(&high)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1),
            )
            .await?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        Ok((records, more))
    }

    /// Deletes a record, its shares (by cascade) and the role and deny assignments scoped to it.
    pub async fn delete_record(
        &self,
        ctx: &WriteContext,
        resource_type: &str,
        external_id: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let record = record_in(&mut w, ctx.tenant_id, resource_type, external_id).await?;
        remove_scoped(&mut w, Scope::Record(record.id)).await?;
        w.execute(
            query("DELETE FROM records WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id)
                .bind(record.id),
        )
        .await?;
        w.record(
            "record.delete",
            "record",
            record.id,
            "delete",
            json!({"resource_type": resource_type, "external_id": external_id}),
        );
        w.commit().await?;
        Ok(())
    }

    // ---- shares ----

    /// Shares actions of a record with a principal, replacing what was shared with it before.
    pub async fn put_share(
        &self,
        ctx: &WriteContext,
        resource_type: &str,
        external_id: &str,
        principal: PrincipalRef,
        actions: Vec<String>,
    ) -> Result<Share, StoreError> {
        let mut w = self.write(ctx).await?;
        let record = record_in(&mut w, ctx.tenant_id, resource_type, external_id).await?;
        let ty = resource_type_in(&mut w, ctx.tenant_id, resource_type).await?;
        resources::validate_share_actions(&actions, &ty)?;
        require_principal(&mut w, "principal", principal).await?;
        w.execute(
            query("DELETE FROM shares WHERE record_id = $1 AND principal_kind = $2 AND principal_id = $3")
                .bind(record.id)
                .bind(principal.kind.as_str())
                .bind(principal.id),
        )
        .await?;
        let row = w
            .fetch_one(
                query(
                    "INSERT INTO shares (id, tenant_id, record_id, principal_kind, principal_id, actions, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, record_id, principal_kind, principal_id, actions, created_at",
                )
                .bind(ShareId::generate())
                .bind(ctx.tenant_id)
                .bind(record.id)
                .bind(principal.kind.as_str())
                .bind(principal.id)
                .bind(to_json(&actions)?)
                .bind(ctx.now),
            )
            .await?;
        let share = share_from_row(&row)?;
        w.record(
            "share.create",
            "share",
            share.id,
            "create",
            json!({"record_id": record.id, "principal": principal, "actions": actions}),
        );
        w.commit().await?;
        Ok(share)
    }

    pub async fn shares_of(
        &self,
        tenant_id: TenantId,
        record_id: RecordId,
    ) -> Result<Vec<Share>, StoreError> {
        self.pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    share_columns!(),
                    " FROM shares WHERE tenant_id = $1 AND record_id = $2 ORDER BY id"
                ))
                .bind(tenant_id)
                .bind(record_id),
            )
            .await?
            .iter()
            .map(share_from_row)
            .collect()
    }

    pub async fn delete_share(&self, ctx: &WriteContext, id: ShareId) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let deleted = w
            .execute(
                query("DELETE FROM shares WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        w.record("share.delete", "share", id, "delete", json!({}));
        w.commit().await?;
        Ok(())
    }

    // ---- deny assignments ----

    pub async fn create_deny_assignment(
        &self,
        ctx: &WriteContext,
        deny: NewDenyAssignment,
    ) -> Result<DenyAssignment, StoreError> {
        let NewDenyAssignment {
            name,
            description,
            principals,
            excluded,
            actions,
            scope,
        } = deny;
        resources::validate_deny_principals(&principals, &excluded)?;
        let mut w = self.write(ctx).await?;
        let actions = resources::canonical_actions(actions, &types_in(&mut w).await?)?;
        for p in &principals {
            require_principal(&mut w, "principals", *p).await?;
        }
        for p in &excluded {
            require_principal(&mut w, "excluded", *p).await?;
        }
        require_scope(&mut w, scope).await?;
        let row = w
            .fetch_one(
                query(
                    concat!("INSERT INTO deny_assignments (id, tenant_id, name, name_key, description, principals, excluded, actions, scope, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     RETURNING ", deny_columns!()),
                )
                .bind(DenyAssignmentId::generate())
                .bind(ctx.tenant_id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(to_json(&principals)?)
                .bind(to_json(&excluded)?)
                .bind(to_json(&actions)?)
                .bind(scope.to_string())
                .bind(ctx.now),
            )
            .await
            .map_err(|e| e.on_unique(&[("deny_assignments", "name", "a deny assignment of this name exists")]))?;
        let deny = deny_from_row(&row)?;
        w.record(
            "deny_assignment.create",
            "deny_assignment",
            deny.id,
            "create",
            json!({"name": deny.name, "principals": principals, "excluded": excluded, "actions": actions, "scope": scope.to_string()}),
        );
        w.commit().await?;
        Ok(deny)
    }

    pub async fn deny_assignments(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<DenyAssignment>, StoreError> {
        self.pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    deny_columns!(),
                    " FROM deny_assignments WHERE tenant_id = $1 ORDER BY name_key"
                ))
                .bind(tenant_id),
            )
            .await?
            .iter()
            .map(deny_from_row)
            .collect()
    }

    pub async fn delete_deny_assignment(
        &self,
        ctx: &WriteContext,
        id: DenyAssignmentId,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let deleted = w
            .execute(
                query("DELETE FROM deny_assignments WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        w.record(
            "deny_assignment.delete",
            "deny_assignment",
            id,
            "delete",
            json!({}),
        );
        w.commit().await?;
        Ok(())
    }

    // ---- the engine's view ----

    /// Everything the tenant's decisions depend on, read in one consistent transaction, with
    /// the change-feed revision it reflects.
    pub async fn authz_source(&self, tenant_id: TenantId) -> Result<(Source, i64), StoreError> {
        let mut tx = self.pools.begin_read().await?;
        let read = read_source(&mut tx, tenant_id).await?;
        tx.commit().await?;
        Ok(read)
    }

    /// The tenant's latest change-feed revision.
    pub async fn change_head(&self, tenant_id: TenantId) -> Result<i64, StoreError> {
        self.pools
            .fetch_optional(query(CHANGE_HEAD).bind(tenant_id))
            .await?
            .ok_or(StoreError::NotFound)?
            .int("change_seq")
    }

    /// The tenant's access settings (the defaults when never set).
    pub async fn access_settings(&self, tenant_id: TenantId) -> Result<AccessSettings, StoreError> {
        settings_from(
            self.pools
                .fetch_optional(query(ACCESS_SETTINGS).bind(tenant_id))
                .await?
                .as_ref(),
        )
    }

    pub async fn set_access_settings(
        &self,
        ctx: &WriteContext,
        settings: AccessSettings,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO tenant_access_settings (tenant_id, audit_allowed_one_in, subject_types, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id) DO UPDATE SET audit_allowed_one_in = excluded.audit_allowed_one_in, \
                 subject_types = excluded.subject_types, updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant_id)
            .bind(i64::from(settings.audit_allowed_one_in))
            .bind(to_json(&settings.subject_types)?)
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "access_settings.update",
            "access_settings",
            ctx.tenant_id,
            "update",
            json!(settings),
        );
        w.commit().await?;
        Ok(())
    }

    /// Every tenant's latest change-feed revision.
    pub async fn change_heads(&self) -> Result<Vec<(TenantId, i64)>, StoreError> {
        self.pools
            .fetch_all(query("SELECT tenant_id, change_seq FROM tenant_heads"))
            .await?
            .iter()
            .map(|r| Ok((r.parse("tenant_id")?, r.int("change_seq")?)))
            .collect()
    }
}

/// The kinds of change that alter a tenant's conditional access.
const CONDITIONAL_ACCESS_KINDS: &[&str] =
    &["access_policy", "named_location", "access_policy_settings"];

/// Every principal of a kind, with what the engine needs of it (`principal_now`).
const PRINCIPALS: [(PrincipalKind, &str); 3] = [
    (
        PrincipalKind::User,
        "SELECT id, business_unit_id, user_name AS name, email, external_id, state FROM users WHERE tenant_id = $1",
    ),
    (
        PrincipalKind::Group,
        "SELECT id, business_unit_id, name, NULL AS email, NULL AS external_id, 'active' AS state FROM groups WHERE tenant_id = $1",
    ),
    (
        PrincipalKind::ServicePrincipal,
        "SELECT id, NULL AS business_unit_id, name, NULL AS email, external_id, state FROM service_principals WHERE tenant_id = $1",
    ),
];

/// A principal as the engine takes it: whether it may act, its unit, and the names, e-mail
/// address and external id enforcement points know it by.
fn principal_now(
    kind: PrincipalKind,
    row: &Row,
) -> Result<(PrincipalRef, PrincipalNow), StoreError> {
    let principal = PrincipalRef {
        kind,
        id: row.parse("id")?,
    };
    let name = match kind {
        PrincipalKind::User => Identifier::UserName,
        _ => Identifier::Name,
    };
    let mut identifiers = Vec::new();
    for (identifier, column) in [
        (name, "name"),
        (Identifier::Email, "email"),
        (Identifier::ExternalId, "external_id"),
    ] {
        if let Some(value) = row.opt_text(column)? {
            identifiers.push((identifier, value));
        }
    }
    Ok((
        principal,
        PrincipalNow {
            active: row.text("state")? == "active",
            business_unit: row.opt_parse("business_unit_id")?,
            identifiers,
        },
    ))
}

/// The rows of `select` (a statement whose only parameter is the tenant) whose `column` is
/// one of `ids`, a statement per `IDS_PER_STATEMENT`.
async fn rows_with(
    tx: &mut Tx,
    tenant_id: TenantId,
    select: &str,
    column: &str,
    ids: &[String],
) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(crate::db::IDS_PER_STATEMENT) {
        let mut statement = crate::db::assembled_query(format!(
            "{select} AND {column} IN ({})",
            crate::db::placeholders(2, chunk.len())
        ))
        .bind(tenant_id);
        for id in chunk {
            statement = statement.bind(id.as_str());
        }
        rows.extend(tx.fetch_all(statement).await?);
    }
    Ok(rows)
}

/// Each of `ids` (of `what`, as the change feed names them) with its row as `select` reads it
/// now, or `None` where it is gone.
async fn read_back<Id, T>(
    tx: &mut Tx,
    tenant_id: TenantId,
    select: &str,
    ids: BTreeSet<String>,
    what: &str,
    from_row: impl Fn(&Row) -> Result<(Id, T), StoreError>,
) -> Result<Vec<(Id, Option<T>)>, StoreError>
where
    Id: std::str::FromStr + std::hash::Hash + Eq,
{
    let ids: Vec<String> = ids.into_iter().collect();
    let mut found = HashMap::new();
    for row in rows_with(tx, tenant_id, select, "id", &ids).await? {
        let (id, value) = from_row(&row)?;
        found.insert(id, value);
    }
    ids.iter()
        .map(|id| {
            let id: Id = parsed(what, id)?;
            let now = found.remove(&id);
            Ok((id, now))
        })
        .collect()
}

/// Parses an id the change feed or a statement gave back.
fn parsed<T: std::str::FromStr>(what: &str, id: &str) -> Result<T, StoreError> {
    id.parse()
        .map_err(|_| StoreError::Corrupt(format!("change of {what} {id:?}")))
}

/// What the changes after a revision did to a tenant, read back in one transaction.
#[derive(Debug)]
pub struct ChangesSince {
    /// The revision the changes run to.
    pub revision: i64,
    pub authorization: AuthorizationChanges,
    pub conditional_access: bool,
}

/// What the changes did to authorization.
#[derive(Debug)]
pub enum AuthorizationChanges {
    /// Nothing decisions depend on.
    Unchanged,
    /// These things, each as it is now.
    Delta(Box<Delta>),
    /// Something only a build of the whole engine takes in, or more changes than a delta is
    /// worth.
    Rebuild,
}

/// What the change rows name, by kind.
#[derive(Default)]
struct Named {
    touched: bool,
    rebuild: bool,
    conditional_access: bool,
    principals: BTreeSet<(PrincipalKind, String)>,
    members: BTreeSet<(PrincipalKind, String)>,
    assignments: BTreeSet<String>,
    records: BTreeSet<String>,
    shares: BTreeSet<String>,
    denies: bool,
    settings: bool,
}

/// A change-feed row: what kind of thing changed, which one, and how.
pub(crate) struct FeedEntry {
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) op: String,
}

impl FeedEntry {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(FeedEntry {
            kind: row.text("entity_kind")?,
            id: row.text("entity_id")?,
            op: row.text("op")?,
        })
    }
}

/// The change-feed rows of a tenant after revision `after`, in order, at most one past
/// `MAX_DELTA_CHANGES` (enough to tell that a delta is not worth it).
async fn feed_after(
    tx: &mut Tx,
    tenant_id: TenantId,
    after: i64,
    up_to: i64,
) -> Result<Vec<FeedEntry>, StoreError> {
    tx.fetch_all(
        query(
            "SELECT entity_kind, entity_id, op FROM changes \
             WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(up_to)
        .bind(MAX_DELTA_CHANGES as i64 + 1),
    )
    .await?
    .iter()
    .map(FeedEntry::from_row)
    .collect()
}

impl Named {
    fn of(entries: &[FeedEntry]) -> Result<Self, StoreError> {
        let mut named = Named {
            rebuild: entries.len() > MAX_DELTA_CHANGES,
            ..Named::default()
        };
        for FeedEntry { kind, id, op } in entries {
            let id = id.clone();
            named.conditional_access |= CONDITIONAL_ACCESS_KINDS.contains(&kind.as_str());
            if !AUTHORIZATION_KINDS.contains(&kind.as_str()) {
                continue;
            }
            named.touched = true;
            match kind.as_str() {
                k if REBUILD_KINDS.contains(&k) => {
                    named.rebuild |= !(op == "create" && CREATED_EMPTY.contains(&k));
                }
                "role_assignment" => {
                    named.assignments.insert(id);
                }
                "record" => {
                    named.records.insert(id);
                }
                "share" => {
                    named.shares.insert(id);
                }
                "deny_assignment" => named.denies = true,
                "access_settings" => named.settings = true,
                k if k == crate::principals::MEMBERSHIP_CHANGE => {
                    let (kind, id) = id
                        .split_once('/')
                        .and_then(|(kind, id)| Some((PrincipalKind::parse(kind)?, id.to_owned())))
                        .ok_or_else(|| StoreError::Corrupt(format!("membership change {id:?}")))?;
                    named.members.insert((kind, id));
                }
                k => {
                    let kind = PrincipalKind::parse(k)
                        .ok_or_else(|| StoreError::Corrupt(format!("change of kind {k}")))?;
                    named.principals.insert((kind, id));
                }
            }
        }
        Ok(named)
    }

    /// Reads back, in `tx`, each thing named as it is now.
    async fn read(self, tx: &mut Tx, tenant_id: TenantId) -> Result<Delta, StoreError> {
        let mut delta = Delta::default();
        for (kind, select) in PRINCIPALS {
            let ids: Vec<String> = self
                .principals
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| id.clone())
                .collect();
            let mut found: HashMap<Uuid, PrincipalNow> = HashMap::new();
            for row in rows_with(tx, tenant_id, select, "id", &ids).await? {
                let (principal, now) = principal_now(kind, &row)?;
                found.insert(principal.id, now);
            }
            for id in &ids {
                let id: Uuid = parsed("principal", id)?;
                delta
                    .principals
                    .push((PrincipalRef { kind, id }, found.remove(&id)));
            }
            let members: Vec<String> = self
                .members
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| id.clone())
                .collect();
            let mut groups: BTreeMap<String, Vec<GroupId>> =
                members.iter().map(|id| (id.clone(), Vec::new())).collect();
            let select = format!(
                "SELECT member_id, group_id FROM group_members WHERE tenant_id = $1 AND member_kind = '{}'",
                kind.as_str()
            );
            for row in rows_with(tx, tenant_id, &select, "member_id", &members).await? {
                if let Some(list) = groups.get_mut(&row.text("member_id")?) {
                    list.push(row.parse("group_id")?);
                }
            }
            for (id, groups) in groups {
                let id = parsed("member", &id)?;
                delta.memberships.push((PrincipalRef { kind, id }, groups));
            }
        }
        let select = format!(
            "SELECT {} FROM role_assignments WHERE tenant_id = $1",
            crate::roles::ASSIGNMENT_COLUMNS
        );
        delta.assignments = read_back(
            tx,
            tenant_id,
            &select,
            self.assignments,
            "assignment",
            |row| crate::roles::assignment_from_row(row).map(|a| (a.id, a)),
        )
        .await?;
        let select = concat!(
            "SELECT ",
            record_columns!(),
            " FROM records WHERE tenant_id = $1"
        );
        delta.records = read_back(tx, tenant_id, select, self.records, "record", |row| {
            record_from_row(row).map(|r| (r.id, r))
        })
        .await?;
        let select = concat!(
            "SELECT ",
            share_columns!(),
            " FROM shares WHERE tenant_id = $1"
        );
        delta.shares = read_back(tx, tenant_id, select, self.shares, "share", |row| {
            share_from_row(row).map(|s| (s.id, s))
        })
        .await?;
        if self.denies {
            let select = concat!(
                "SELECT ",
                deny_columns!(),
                " FROM deny_assignments WHERE tenant_id = $1"
            );
            let mut all = Vec::new();
            for row in tx.fetch_all(query(select).bind(tenant_id)).await? {
                all.push(deny_from_row(&row)?);
            }
            delta.denies = Some(all);
        }
        if self.settings {
            delta.settings = Some(settings_from(
                tx.fetch_optional(query(ACCESS_SETTINGS).bind(tenant_id))
                    .await?
                    .as_ref(),
            )?);
        }
        Ok(delta)
    }
}

impl Store {
    /// What changed in the tenant after revision `after`, up to its head: authorization data
    /// read back as it is now (only what changed), or word that the engine must be built
    /// again; and whether conditional access changed. One read transaction, so the delta is
    /// exactly the revision it names.
    pub async fn changes_since(
        &self,
        tenant_id: TenantId,
        after: i64,
    ) -> Result<ChangesSince, StoreError> {
        let mut tx = self.pools.begin_read().await?;
        let revision = change_head_in(&mut tx, tenant_id).await?;
        let named = Named::of(&feed_after(&mut tx, tenant_id, after, revision).await?)?;
        // Past the limit, the rows read do not say whether conditional access changed.
        let conditional_access = named.conditional_access || named.rebuild;
        let authorization = if named.rebuild {
            AuthorizationChanges::Rebuild
        } else if !named.touched {
            AuthorizationChanges::Unchanged
        } else {
            AuthorizationChanges::Delta(Box::new(named.read(&mut tx, tenant_id).await?))
        };
        tx.commit().await?;
        Ok(ChangesSince {
            revision,
            authorization,
            conditional_access,
        })
    }
}

/// `engine`, which reflects revision `after`, moved forward to what the write transaction
/// `tx` sees at the tenant's head `head`, together with `pending`: the write's own changes,
/// not yet in the feed. `None` when those changes need the engine built again. Costs time
/// that grows with the changes, not with the tenant.
pub(crate) async fn engine_in(
    tx: &mut Tx,
    tenant_id: TenantId,
    (engine, after): (&TenantEngine, i64),
    head: i64,
    pending: Vec<FeedEntry>,
) -> Result<Option<TenantEngine>, StoreError> {
    let mut entries = feed_after(tx, tenant_id, after, head).await?;
    entries.extend(pending);
    let named = Named::of(&entries)?;
    if named.rebuild {
        return Ok(None);
    }
    let delta = named.read(tx, tenant_id).await?;
    Ok(engine.apply(&delta).ok())
}

/// The tenant's latest change-feed revision, read in `tx`.
pub(crate) async fn change_head_in(tx: &mut Tx, tenant_id: TenantId) -> Result<i64, StoreError> {
    tx.fetch_optional(query(CHANGE_HEAD).bind(tenant_id))
        .await?
        .ok_or(StoreError::NotFound)?
        .int("change_seq")
}

/// Everything the tenant's decisions depend on as `tx` sees it, with the change-feed revision
/// that reflects.
pub(crate) async fn read_source(
    tx: &mut Tx,
    tenant_id: TenantId,
) -> Result<(Source, i64), StoreError> {
    let t = || tenant_id;
    let revision = change_head_in(tx, tenant_id).await?;
    let operator = tx
        .fetch_optional(query("SELECT operator FROM tenants WHERE id = $1").bind(t()))
        .await?
        .ok_or(StoreError::NotFound)?
        .boolean("operator")?;
    let settings = settings_from(
        tx.fetch_optional(query(ACCESS_SETTINGS).bind(t()))
            .await?
            .as_ref(),
    )?;
    let mut source = Source {
        operator,
        settings,
        ..Source::default()
    };
    for row in tx
        .fetch_all(query("SELECT id, parent_id FROM business_units WHERE tenant_id = $1").bind(t()))
        .await?
    {
        source
            .business_units
            .push((row.parse("id")?, row.opt_parse("parent_id")?));
    }
    for row in tx
        .fetch_all(query("SELECT id FROM environments WHERE tenant_id = $1").bind(t()))
        .await?
    {
        source.environments.push(row.parse("id")?);
    }
    for (kind, select) in PRINCIPALS {
        for row in tx.fetch_all(query(select).bind(t())).await? {
            let (principal, now) = principal_now(kind, &row)?;
            if now.active {
                source.principals.push((principal, now.business_unit));
                source.identifiers.extend(
                    now.identifiers
                        .into_iter()
                        .map(|(identifier, value)| (principal, identifier, value)),
                );
            } else {
                source.inactive.push((principal, now.business_unit));
            }
        }
    }
    for row in tx
        .fetch_all(
            query(
                "SELECT member_kind, member_id, group_id FROM group_members WHERE tenant_id = $1",
            )
            .bind(t()),
        )
        .await?
    {
        source.memberships.push((
            principal(&row, "member_kind", "member_id")?,
            row.parse("group_id")?,
        ));
    }
    let select =
        |columns: &str, table: &str| format!("SELECT {columns} FROM {table} WHERE tenant_id = $1");
    for row in tx
        .fetch_all(
            crate::db::assembled_query(select(resource_type_columns!(), "resource_types"))
                .bind(t()),
        )
        .await?
    {
        source.resource_types.push(resource_type_from_row(&row)?);
    }
    for row in tx
        .fetch_all(
            crate::db::assembled_query(select(custom_role_columns!(), "custom_roles")).bind(t()),
        )
        .await?
    {
        source.custom_roles.push(custom_role_from_row(&row)?);
    }
    for row in tx
        .fetch_all(
            crate::db::assembled_query(select(
                crate::roles::ASSIGNMENT_COLUMNS,
                "role_assignments",
            ))
            .bind(t()),
        )
        .await?
    {
        source
            .assignments
            .push(crate::roles::assignment_from_row(&row)?);
    }
    for row in tx
        .fetch_all(crate::db::assembled_query(select(record_columns!(), "records")).bind(t()))
        .await?
    {
        source.records.push(record_from_row(&row)?);
    }
    for row in tx
        .fetch_all(crate::db::assembled_query(select(share_columns!(), "shares")).bind(t()))
        .await?
    {
        source.shares.push(share_from_row(&row)?);
    }
    for row in tx
        .fetch_all(
            crate::db::assembled_query(select(deny_columns!(), "deny_assignments")).bind(t()),
        )
        .await?
    {
        source.denies.push(deny_from_row(&row)?);
    }
    Ok((source, revision))
}

pub(crate) fn custom_role_query(tenant_id: TenantId, id: RoleId) -> crate::db::Query {
    query(concat!(
        "SELECT ",
        custom_role_columns!(),
        " FROM custom_roles WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
}

async fn resource_type_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    name: &str,
) -> Result<ResourceType, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                resource_type_columns!(),
                " FROM resource_types WHERE tenant_id = $1 AND name = $2"
            ))
            .bind(tenant_id)
            .bind(name),
        )
        .await?;
    resource_type_from_row(&row)
}

async fn record_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    resource_type: &str,
    external_id: &str,
) -> Result<RecordEntry, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                record_columns!(),
                " FROM records WHERE tenant_id = $1 AND resource_type = $2 AND external_id = $3"
            ))
            .bind(tenant_id)
            .bind(resource_type)
            .bind(external_id),
        )
        .await?;
    record_from_row(&row)
}
