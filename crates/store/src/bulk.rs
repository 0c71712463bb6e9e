//! Loading a large tenant straight into its tables, for benchmarks of tenants the size
//! `bench/engine` generates (100k users, a million assignments and records): multi-row
//! statements in large transactions, no audit event or change row per row. The load ends
//! with one change (`finish_bulk_load`) that makes every node build the tenant's snapshot
//! whole, and one audit event saying how much was loaded. Never reachable from the API.

use portcullis_core::authz::RoleAssignment;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::names::Name;
use portcullis_core::resources::{CustomRole, RecordEntry, ResourceType, Share};
use portcullis_core::*;
use serde_json::json;

use crate::access::to_json;
use crate::db::{Arg, Tx, assembled_query, placeholders, query};
use crate::write::WriteContext;
use crate::{Store, StoreError};

/// A user as the loader writes it: active, a member, in a business unit.
#[derive(Debug, Clone)]
pub struct BulkUser {
    pub id: UserId,
    pub user_name: Name,
    pub email: Option<Name>,
    pub business_unit_id: BusinessUnitId,
}

/// Rows of one table, all of one tenant.
#[derive(Debug, Clone)]
pub enum BulkRows {
    BusinessUnits(Vec<(BusinessUnitId, Option<BusinessUnitId>, Name)>),
    Users(Vec<BulkUser>),
    /// Groups, each with its business unit (a team) or none.
    Groups(Vec<(GroupId, Name, Option<BusinessUnitId>)>),
    Memberships(Vec<(GroupId, PrincipalRef)>),
    ResourceTypes(Vec<ResourceType>),
    CustomRoles(Vec<CustomRole>),
    Assignments(Vec<RoleAssignment>),
    Records(Vec<RecordEntry>),
    Shares(Vec<Share>),
}

impl BulkRows {
    pub fn len(&self) -> usize {
        match self {
            Self::BusinessUnits(r) => r.len(),
            Self::Users(r) => r.len(),
            Self::Groups(r) => r.len(),
            Self::Memberships(r) => r.len(),
            Self::ResourceTypes(r) => r.len(),
            Self::CustomRoles(r) => r.len(),
            Self::Assignments(r) => r.len(),
            Self::Records(r) => r.len(),
            Self::Shares(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table's name, for progress.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BusinessUnits(_) => "business units",
            Self::Users(_) => "users",
            Self::Groups(_) => "groups",
            Self::Memberships(_) => "memberships",
            Self::ResourceTypes(_) => "resource types",
            Self::CustomRoles(_) => "custom roles",
            Self::Assignments(_) => "role assignments",
            Self::Records(_) => "records",
            Self::Shares(_) => "shares",
        }
    }

    /// The table, its columns, and each row's values in column order.
    fn rows(self, tenant: TenantId, now: time::OffsetDateTime) -> Result<Table, StoreError> {
        Ok(match self {
            Self::BusinessUnits(rows) => Table::new(
                "business_units",
                "id, tenant_id, parent_id, name, name_key, created_at, updated_at, version",
                rows.into_iter()
                    .map(|(id, parent, name)| {
                        vec![
                            id.into(),
                            tenant.into(),
                            parent.into(),
                            name.display.into(),
                            name.key.into(),
                            now.into(),
                            now.into(),
                            1i64.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::Users(rows) => Table::new(
                "users",
                "id, tenant_id, user_name, user_name_key, email, email_key, kind, business_unit_id, state, \
                 created_at, updated_at, version",
                rows.into_iter()
                    .map(|u| {
                        vec![
                            u.id.into(),
                            tenant.into(),
                            u.user_name.display.into(),
                            u.user_name.key.into(),
                            u.email.as_ref().map(|e| e.display.clone()).into(),
                            u.email.map(|e| e.key).into(),
                            "member".into(),
                            u.business_unit_id.into(),
                            "active".into(),
                            now.into(),
                            now.into(),
                            1i64.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::Groups(rows) => Table::new(
                "groups",
                "id, tenant_id, name, name_key, business_unit_id, created_at, updated_at, version",
                rows.into_iter()
                    .map(|(id, name, unit)| {
                        vec![
                            id.into(),
                            tenant.into(),
                            name.display.into(),
                            name.key.into(),
                            unit.into(),
                            now.into(),
                            now.into(),
                            1i64.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::Memberships(rows) => Table::new(
                "group_members",
                "tenant_id, group_id, member_kind, member_id, added_at",
                rows.into_iter()
                    .map(|(group, member)| {
                        vec![
                            tenant.into(),
                            group.into(),
                            member.kind.as_str().into(),
                            member.id.to_string().into(),
                            now.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::ResourceTypes(rows) => Table::new(
                "resource_types",
                "tenant_id, name, description, actions, created_at, updated_at, version",
                rows.into_iter()
                    .map(|t| {
                        Ok(vec![
                            tenant.into(),
                            t.name.into(),
                            t.description.into(),
                            to_json(&t.actions)?.into(),
                            now.into(),
                            now.into(),
                            1i64.into(),
                        ])
                    })
                    .collect::<Result<_, StoreError>>()?,
            ),
            Self::CustomRoles(rows) => Table::new(
                "custom_roles",
                "id, tenant_id, name, name_key, description, permissions, created_at, updated_at, version",
                rows.into_iter()
                    .map(|r| {
                        let name = portcullis_core::names::parse_name("name", &r.name)?;
                        Ok(vec![
                            r.id.into(),
                            tenant.into(),
                            name.display.into(),
                            name.key.into(),
                            r.description.into(),
                            to_json(&r.permissions)?.into(),
                            now.into(),
                            now.into(),
                            1i64.into(),
                        ])
                    })
                    .collect::<Result<_, StoreError>>()?,
            ),
            Self::Assignments(rows) => Table::new(
                "role_assignments",
                "id, tenant_id, principal_kind, principal_id, role, scope, starts_at, ends_at, created_at",
                rows.into_iter()
                    .map(|a| {
                        vec![
                            a.id.into(),
                            tenant.into(),
                            a.principal.kind.as_str().into(),
                            a.principal.id.to_string().into(),
                            a.role.to_string().into(),
                            a.scope.to_string().into(),
                            a.starts_at.into(),
                            a.ends_at.into(),
                            now.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::Records(rows) => Table::new(
                "records",
                "id, tenant_id, resource_type, external_id, owner_kind, owner_id, business_unit_id, \
                 environment_id, created_at, updated_at",
                rows.into_iter()
                    .map(|r| {
                        vec![
                            r.id.into(),
                            tenant.into(),
                            r.resource_type.into(),
                            r.external_id.into(),
                            r.owner.kind.as_str().into(),
                            r.owner.id.to_string().into(),
                            r.business_unit_id.into(),
                            r.environment_id.into(),
                            now.into(),
                            now.into(),
                        ]
                    })
                    .collect(),
            ),
            Self::Shares(rows) => Table::new(
                "shares",
                "id, tenant_id, record_id, principal_kind, principal_id, actions, created_at",
                rows.into_iter()
                    .map(|s| {
                        Ok(vec![
                            s.id.into(),
                            tenant.into(),
                            s.record_id.into(),
                            s.principal.kind.as_str().into(),
                            s.principal.id.to_string().into(),
                            to_json(&s.actions)?.into(),
                            now.into(),
                        ])
                    })
                    .collect::<Result<_, StoreError>>()?,
            ),
        })
    }
}

/// Parameters per multi-row statement: well under both stores' limits, and small: binding
/// grows with the square of a statement's parameters on SQLite (each numbered parameter's name
/// is looked up in a list of all of them), which made 2,000 spend most of a load binding.
const PARAMETERS_PER_STATEMENT: usize = 256;

struct Table {
    name: &'static str,
    columns: &'static str,
    rows: Vec<Vec<Arg>>,
}

impl Table {
    fn new(name: &'static str, columns: &'static str, rows: Vec<Vec<Arg>>) -> Self {
        Self {
            name,
            columns,
            rows,
        }
    }

    /// Inserts the rows in statements of as many rows as stay under both stores' limit on a
    /// statement's parameters.
    async fn insert(self, tx: &mut Tx) -> Result<(), StoreError> {
        let width = self.columns.split(',').count();
        let per_statement = (PARAMETERS_PER_STATEMENT / width).max(1);
        let mut rows = self.rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_statement).collect();
            let values = (0..chunk.len())
                .map(|i| format!("({})", placeholders(1 + i * width, width)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut statement = assembled_query(format!(
                "INSERT INTO {} ({}) VALUES {values}",
                self.name, self.columns
            ));
            for value in chunk.into_iter().flatten() {
                statement = statement.bind(value);
            }
            tx.execute(statement).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Writes `rows` into the tenant of `ctx` in one transaction, without a change row or an
    /// audit event per row. Rows must be consistent (the database still checks its keys); the
    /// engine sees none of them until `finish_bulk_load`.
    pub async fn bulk_insert(&self, ctx: &WriteContext, rows: BulkRows) -> Result<(), StoreError> {
        let table = rows.rows(ctx.tenant_id, ctx.now)?;
        let mut tx = self.pools.begin().await?;
        table.insert(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a bulk load: one change that makes every node build the tenant's snapshot whole,
    /// and one audit event saying what was loaded; then, on PostgreSQL, fresh statistics for
    /// the planner.
    pub async fn finish_bulk_load(
        &self,
        ctx: &WriteContext,
        loaded: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.record(
            "tenant.bulk_load",
            crate::access::BULK_LOAD_CHANGE,
            ctx.tenant_id,
            "update",
            json!({ "loaded": loaded }),
        );
        w.commit().await?;
        // PostgreSQL plans from statistics that autovacuum gathers only later: right after a
        // load it knows nothing of the new rows and picks plans for empty tables.
        if self.backend == crate::Backend::Postgres {
            self.pools.execute(query("ANALYZE")).await?;
        }
        Ok(())
    }
}
