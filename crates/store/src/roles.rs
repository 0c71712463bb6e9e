//! Role assignments, and the grants a principal holds directly or through its groups.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use portcullis_core::authz::{Grant, RoleAssignment, RoleRef, Scope};
use portcullis_core::identity::{PrincipalKind, PrincipalRef};
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::{RoleAssignmentId, TenantId, ValidationError};

use crate::db::{Row, query};
use crate::principals::principal_exists;
use crate::write::{Write, WriteContext};
use crate::{Store, StoreError};

macro_rules! assignment_columns {
    () => {
        "id, tenant_id, principal_kind, principal_id, role, scope, starts_at, ends_at, created_at"
    };
}
pub(crate) const ASSIGNMENT_COLUMNS: &str = assignment_columns!();

pub(crate) fn assignment_from_row(row: &Row) -> Result<RoleAssignment, StoreError> {
    Ok(RoleAssignment {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        principal: PrincipalRef {
            kind: row.named("principal_kind", PrincipalKind::parse)?,
            id: row.parse("principal_id")?,
        },
        role: row.parse("role")?,
        scope: row.parse("scope")?,
        starts_at: row.opt_time("starts_at")?,
        ends_at: row.opt_time("ends_at")?,
        created_at: row.time("created_at")?,
    })
}

/// Which assignments to list. Absent fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AssignmentFilter {
    pub principal: Option<PrincipalRef>,
    pub role: Option<RoleRef>,
    pub scope: Option<Scope>,
}

pub(crate) async fn insert_assignment(
    w: &mut Write,
    tenant_id: TenantId,
    principal: PrincipalRef,
    role: RoleRef,
    scope: Scope,
    starts_at: Option<OffsetDateTime>,
    ends_at: Option<OffsetDateTime>,
) -> Result<RoleAssignment, StoreError> {
    let row = w
        .fetch_one(
            query(concat!(
                "INSERT INTO role_assignments (id, tenant_id, principal_kind, principal_id, role, scope, starts_at, ends_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
                assignment_columns!()
            ))
            .bind(RoleAssignmentId::generate())
            .bind(tenant_id)
            .bind(principal.kind.as_str())
            .bind(principal.id)
            .bind(role.to_string())
            .bind(scope.to_string())
            .bind(starts_at)
            .bind(ends_at)
            .bind(w.ctx.now),
        )
        .await
        .map_err(|e| {
            e.on_unique(&[("role_assignments_unique", "role", "this principal already holds this role at this scope")])
        })?;
    let assignment = assignment_from_row(&row)?;
    w.record_for(
        tenant_id,
        "role_assignment.create",
        "role_assignment",
        assignment.id,
        "create",
        json!({"principal": principal, "role": role, "scope": scope.to_string()}),
    );
    Ok(assignment)
}

impl Store {
    /// Assigns a role. The principal and (for an environment scope) the environment must exist.
    pub async fn create_role_assignment(
        &self,
        ctx: &WriteContext,
        principal: PrincipalRef,
        role: RoleRef,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        ends_at: Option<OffsetDateTime>,
    ) -> Result<RoleAssignment, StoreError> {
        let mut w = self.write(ctx).await?;
        if let RoleRef::Custom(id) = role {
            w.fetch_optional(crate::access::custom_role_query(ctx.tenant_id, id))
                .await?
                .ok_or_else(|| ValidationError::new("role", "no such role in this tenant"))?;
        }
        if !principal_exists(&mut w, principal).await? {
            return Err(ValidationError::new(
                "principal",
                format!("no such {} in this tenant", principal.kind.as_str()),
            )
            .into());
        }
        crate::access::require_scope(&mut w, scope).await?;
        let assignment = insert_assignment(
            &mut w,
            ctx.tenant_id,
            principal,
            role,
            scope,
            starts_at,
            ends_at,
        )
        .await?;
        w.commit().await?;
        Ok(assignment)
    }

    pub async fn role_assignment(
        &self,
        tenant_id: TenantId,
        id: RoleAssignmentId,
    ) -> Result<RoleAssignment, StoreError> {
        let row = self
            .pools
            .fetch_optional(assignment_query(tenant_id, id))
            .await?
            .ok_or(StoreError::NotFound)?;
        assignment_from_row(&row)
    }

    pub async fn role_assignments(
        &self,
        tenant_id: TenantId,
        filter: &AssignmentFilter,
        page: PageRequest<Uuid>,
    ) -> Result<Page<RoleAssignment>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    assignment_columns!(),
                    " FROM role_assignments WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) \
                     AND ($3 IS NULL OR principal_kind = $3) AND ($4 IS NULL OR principal_id = $4) \
                     AND ($5 IS NULL OR role = $5) AND ($6 IS NULL OR scope = $6) ORDER BY id LIMIT $7"
                ))
                .bind(tenant_id)
                .bind(page.after)
                .bind(filter.principal.map(|p| p.kind.as_str()))
                .bind(filter.principal.map(|p| p.id))
                .bind(filter.role.map(|r| r.to_string()))
                .bind(filter.scope.map(|s| s.to_string()))
                .bind(page.fetch_limit()),
            )
            .await?;
        let assignments = rows
            .iter()
            .map(assignment_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(assignments, |a| a.id))
    }

    pub async fn delete_role_assignment(
        &self,
        ctx: &WriteContext,
        id: RoleAssignmentId,
    ) -> Result<RoleAssignment, StoreError> {
        let mut w = self.write(ctx).await?;
        // Read through the transaction, never the pool, while holding the write (see `group_in`).
        let assignment =
            assignment_from_row(&w.fetch_one(assignment_query(ctx.tenant_id, id)).await?)?;
        w.execute(
            query("DELETE FROM role_assignments WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
        )
        .await?;
        w.record(
            "role_assignment.delete",
            "role_assignment",
            id,
            "delete",
            json!({"principal": assignment.principal, "role": assignment.role, "scope": assignment.scope.to_string()}),
        );
        w.commit().await?;
        Ok(assignment)
    }

    /// The roles a principal holds at `now`: its own assignments and those of every group it
    /// belongs to, directly or through nested groups.
    pub async fn grants(
        &self,
        tenant_id: TenantId,
        principal: PrincipalRef,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>, StoreError> {
        self.grants_in(tenant_id, principal, now, GrantWindow::At)
            .await
    }

    /// The roles a principal holds at `now` or will hold later, through assignments that have
    /// not started yet. Whoever may change such a principal may also reach those roles.
    pub async fn grants_now_or_later(
        &self,
        tenant_id: TenantId,
        principal: PrincipalRef,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>, StoreError> {
        self.grants_in(tenant_id, principal, now, GrantWindow::AtOrAfter)
            .await
    }

    async fn grants_in(
        &self,
        tenant_id: TenantId,
        principal: PrincipalRef,
        now: OffsetDateTime,
        window: GrantWindow,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(
                    "WITH RECURSIVE member_of(group_id) AS ( \
                       SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_kind = $2 AND member_id = $3 \
                       UNION \
                       SELECT gm.group_id FROM group_members gm JOIN member_of m \
                         ON gm.member_kind = 'group' AND gm.member_id = m.group_id WHERE gm.tenant_id = $1 \
                     ) \
                     SELECT id, role, scope, NULL AS via_group FROM role_assignments \
                       WHERE tenant_id = $1 AND principal_kind = $2 AND principal_id = $3 \
                       AND ($5 OR starts_at IS NULL OR starts_at <= $4) AND (ends_at IS NULL OR ends_at > $4) \
                     UNION ALL \
                     SELECT ra.id, ra.role, ra.scope, ra.principal_id AS via_group FROM role_assignments ra \
                       WHERE ra.tenant_id = $1 AND ra.principal_kind = 'group' \
                       AND ra.principal_id IN (SELECT group_id FROM member_of) \
                       AND ($5 OR ra.starts_at IS NULL OR ra.starts_at <= $4) AND (ra.ends_at IS NULL OR ra.ends_at > $4)",
                )
                .bind(tenant_id)
                .bind(principal.kind.as_str())
                .bind(principal.id)
                .bind(now)
                .bind(window == GrantWindow::AtOrAfter),
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Grant {
                    assignment_id: r.parse("id")?,
                    role: r.parse("role")?,
                    scope: r.parse("scope")?,
                    via_group: r.opt_parse("via_group")?,
                })
            })
            .collect()
    }
}

/// Which assignments count: those in effect at an instant, or also those starting later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantWindow {
    At,
    AtOrAfter,
}

fn assignment_query(tenant_id: TenantId, id: RoleAssignmentId) -> crate::db::Query {
    query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM role_assignments WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
}
