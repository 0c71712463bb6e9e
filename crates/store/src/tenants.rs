//! Tenants, and the first start of an empty database (bootstrap).

use serde_json::json;
use uuid::Uuid;

use portcullis_core::TenantId;
use portcullis_core::audit::GENESIS_HASH;
use portcullis_core::authz::{BuiltinRole, RoleRef, Scope};
use portcullis_core::identity::{
    ApiKey, BusinessUnit, LifecycleState, PrincipalRef, ServicePrincipal, Tenant,
};
use portcullis_core::names::Name;
use portcullis_core::page::{Page, PageRequest};

use crate::db::{Row, query};
use crate::directory::insert_business_unit;
use crate::principals::{NewApiKey, insert_api_key, insert_service_principal};
use crate::roles::insert_assignment;
use crate::write::{Reader, Write, WriteContext, changed_fields};
use crate::{Store, StoreError};

macro_rules! tenant_columns {
    () => {
        "id, name, display_name, operator, state, created_at, updated_at, version"
    };
}

/// Reads a tenant from a row whose tenant columns carry `prefix` (empty when selected alone).
pub(crate) fn tenant_from_row(row: &Row, prefix: &str) -> Result<Tenant, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Tenant {
        id: row.parse(&col("id"))?,
        name: row.text(&col("name"))?,
        display_name: row.opt_text(&col("display_name"))?,
        operator: row.boolean(&col("operator"))?,
        state: row.named(&col("state"), LifecycleState::parse)?,
        created_at: row.time(&col("created_at"))?,
        updated_at: row.time(&col("updated_at"))?,
        version: row.int(&col("version"))?,
    })
}

const TENANT_UNIQUES: &[(&str, &str, &str)] = &[
    (
        "tenants_name_key",
        "name",
        "a tenant with this name already exists",
    ),
    ("operator", "operator", "the operator tenant already exists"),
];

/// A new tenant and the credential of its first administrator.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub root_business_unit: BusinessUnit,
    pub administrator: ServicePrincipal,
    pub administrator_key: ApiKey,
}

/// Creates a tenant with its chain head, root business unit and a first administrator (a
/// service principal holding tenant administrator, with one API key).
async fn insert_tenant(
    w: &mut Write,
    name: &Name,
    display_name: Option<String>,
    operator: bool,
    admin_key: NewApiKey,
) -> Result<CreatedTenant, StoreError> {
    let tenant_id = TenantId::generate();
    let now = w.ctx.now;
    let row = w
        .fetch_one(
            query(concat!(
                "INSERT INTO tenants (id, name, name_key, display_name, operator, state, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, 1) RETURNING ",
                tenant_columns!()
            ))
            .bind(tenant_id)
            .bind(name.display.as_str())
            .bind(name.key.as_str())
            .bind(display_name)
            .bind(operator)
            .bind(now),
        )
        .await
        .map_err(|e| e.on_unique(TENANT_UNIQUES))?;
    let tenant = tenant_from_row(&row, "")?;
    w.execute(
        query("INSERT INTO tenant_heads (tenant_id, audit_seq, audit_hash, change_seq) VALUES ($1, 0, $2, 0)")
            .bind(tenant_id)
            .bind(GENESIS_HASH),
    )
    .await?;
    w.record_for(
        tenant_id,
        "tenant.create",
        "tenant",
        tenant_id,
        "create",
        json!({"name": tenant.name, "operator": operator}),
    );
    let root = insert_business_unit(
        w,
        tenant_id,
        None,
        &Name {
            display: tenant.name.clone(),
            key: tenant.name.clone(),
        },
        None,
    )
    .await?;
    let admin_name = Name {
        display: "bootstrap-admin".into(),
        key: "bootstrap-admin".into(),
    };
    let administrator = insert_service_principal(
        w,
        tenant_id,
        &admin_name,
        Some("First administrator of the tenant. Create your own administrators, then delete this one.".into()),
        None,
    )
    .await?;
    insert_assignment(
        w,
        tenant_id,
        PrincipalRef::service_principal(administrator.id),
        RoleRef::Builtin(BuiltinRole::TenantAdministrator),
        Scope::Tenant,
        None,
        None,
    )
    .await?;
    let administrator_key = insert_api_key(w, tenant_id, administrator.id, admin_key).await?;
    Ok(CreatedTenant {
        tenant,
        root_business_unit: root,
        administrator,
        administrator_key,
    })
}

impl Store {
    /// On an empty database, creates the operator tenant and its first administrator and
    /// returns them; on a database that has one, returns `None`. When several nodes start on
    /// one empty database at once, exactly one creates it.
    pub async fn bootstrap(
        &self,
        ctx_for: impl FnOnce(TenantId) -> WriteContext,
        name: &Name,
        admin_key: NewApiKey,
    ) -> Result<Option<CreatedTenant>, StoreError> {
        if self.operator_tenant().await?.is_some() {
            return Ok(None);
        }
        // The context's tenant is only a placeholder: every record is written with the new
        // tenant's id by `insert_tenant`.
        let ctx = ctx_for(TenantId::from_uuid(Uuid::nil()));
        let mut w = self.write(&ctx).await?;
        match insert_tenant(&mut w, name, Some("Operator".into()), true, admin_key).await {
            Ok(created) => {
                w.commit().await?;
                Ok(Some(created))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a tenant (an operator's action, recorded in both the operator's chain and the
    /// new tenant's).
    pub async fn create_tenant(
        &self,
        ctx: &WriteContext,
        name: &Name,
        display_name: Option<String>,
        admin_key: NewApiKey,
    ) -> Result<CreatedTenant, StoreError> {
        let mut w = self.write(ctx).await?;
        let created = insert_tenant(&mut w, name, display_name, false, admin_key).await?;
        w.record(
            "tenant.create",
            "tenant",
            created.tenant.id,
            "create",
            json!({"name": created.tenant.name}),
        );
        w.commit().await?;
        Ok(created)
    }

    /// Gives a locked-out tenant a new administrator: a service principal holding tenant
    /// administrator tenant-wide, with one key, recorded in the tenant's audit trail as a
    /// recovery. Only `portcullis recover`, run with the server's own database, calls this.
    pub async fn recover_tenant(
        &self,
        ctx: &WriteContext,
        name: &Name,
        key: NewApiKey,
    ) -> Result<(ServicePrincipal, ApiKey), StoreError> {
        let mut w = self.write(ctx).await?;
        let administrator = insert_service_principal(
            &mut w,
            ctx.tenant_id,
            name,
            Some(
                "Made by `portcullis recover`. Restore your administrators, then delete this one."
                    .into(),
            ),
            None,
        )
        .await?;
        insert_assignment(
            &mut w,
            ctx.tenant_id,
            PrincipalRef::service_principal(administrator.id),
            RoleRef::Builtin(BuiltinRole::TenantAdministrator),
            Scope::Tenant,
            None,
            None,
        )
        .await?;
        let key = insert_api_key(&mut w, ctx.tenant_id, administrator.id, key).await?;
        // The recovery credential is an API key: a tenant that refuses privileged principals'
        // keys would refuse it too, so recovery accepts them again (and says so).
        let keys_allowed_again = w
            .execute(
                query(
                    "UPDATE administrator_policies SET api_keys = 'allowed', updated_at = $2 \
                     WHERE tenant_id = $1 AND api_keys <> 'allowed'",
                )
                .bind(ctx.tenant_id)
                .bind(ctx.now),
            )
            .await?
            > 0;
        w.record(
            "tenant.recover",
            "service_principal",
            administrator.id,
            "create",
            json!({"service_principal": administrator.name, "api_key": key.prefix,
                   "role": "tenant_administrator",
                   "expires_at": key.expires_at.map(|at| at.unix_timestamp()),
                   "privileged_api_keys_allowed_again": keys_allowed_again}),
        );
        w.commit().await?;
        Ok((administrator, key))
    }

    pub async fn operator_tenant(&self) -> Result<Option<Tenant>, StoreError> {
        let row = self
            .pools
            .fetch_optional(query(concat!(
                "SELECT ",
                tenant_columns!(),
                " FROM tenants WHERE operator"
            )))
            .await?;
        row.map(|r| tenant_from_row(&r, "")).transpose()
    }

    /// The tenant with this name (names are slugs, so they compare exactly).
    pub async fn tenant_by_name(&self, name: &str) -> Result<Tenant, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    tenant_columns!(),
                    " FROM tenants WHERE name = $1"
                ))
                .bind(name),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        tenant_from_row(&row, "")
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        tenant_in(&self.pools, id).await
    }

    pub async fn tenants(&self, page: PageRequest<Uuid>) -> Result<Page<Tenant>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    tenant_columns!(),
                    " FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                ))
                .bind(page.after)
                .bind(page.fetch_limit()),
            )
            .await?;
        let tenants = rows
            .iter()
            .map(|r| tenant_from_row(r, ""))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(tenants, |t| t.id))
    }

    /// Changes a tenant's display name and state. The change is recorded in the actor's chain
    /// and, when the actor is an operator, in the tenant's own chain too.
    pub async fn update_tenant(
        &self,
        ctx: &WriteContext,
        id: TenantId,
        expected_version: i64,
        display_name: Option<String>,
        state: LifecycleState,
    ) -> Result<Tenant, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = tenant_in(&mut w, id).await?;
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE tenants SET display_name = $2, state = $3, updated_at = $4, version = version + 1 \
                     WHERE id = $1 AND version = $5 RETURNING ",
                    tenant_columns!()
                ))
                .bind(id)
                .bind(display_name)
                .bind(state.as_str())
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = tenant_from_row(&row, "")?;
        let details = changed_fields(&before, &after);
        if id != ctx.tenant_id {
            w.record_for(id, "tenant.update", "tenant", id, "update", details.clone());
        }
        w.record("tenant.update", "tenant", id, "update", details);
        w.commit().await?;
        Ok(after)
    }
}

async fn tenant_in<'a>(from: impl Into<Reader<'a>>, id: TenantId) -> Result<Tenant, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                tenant_columns!(),
                " FROM tenants WHERE id = $1"
            ))
            .bind(id),
        )
        .await?;
    tenant_from_row(&row, "")
}
