//! Users, groups, service principals and their API keys.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use portcullis_core::administrators::ApiKeyUse;
use portcullis_core::identity::{
    ApiKey, Group, GroupMember, LifecycleState, PrincipalKind, PrincipalRef, ServicePrincipal,
    Tenant, User, UserKind, membership_would_cycle,
};
use portcullis_core::names::Name;
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::{
    ApiKeyId, BusinessUnitId, GroupId, ServicePrincipalId, TenantId, UserId, ValidationError,
};

use crate::db::{IDS_PER_STATEMENT, Row, assembled_query, placeholders, query};
use crate::tenants::tenant_from_row;
use crate::write::{Reader, Write, WriteContext, changed_fields};
use crate::{Store, StoreError};

/// Most API keys a service principal may have in use at once: enough to rotate with overlap,
/// few enough that a leaked credential cannot mint keys without bound.
pub const MAX_ACTIVE_KEYS: i64 = 10;

#[macro_export]
#[doc(hidden)]
macro_rules! user_columns {
    () => {
        "id, tenant_id, user_name, email, email_verified, display_name, kind, sponsor_id, expires_at, \
         business_unit_id, state, deleted_at, last_sign_in_at, created_at, updated_at, version, external_id"
    };
}

/// The columns `user_from_row` reads, for queries assembled at run time.
pub(crate) const USER_COLUMNS: &str = user_columns!();

macro_rules! group_columns {
    () => {
        "id, tenant_id, name, description, business_unit_id, created_at, updated_at, version"
    };
}

macro_rules! sp_columns {
    () => {
        "id, tenant_id, name, description, state, created_at, updated_at, version, external_id"
    };
}

macro_rules! key_columns {
    () => {
        "id, tenant_id, service_principal_id, prefix, name, created_at, expires_at, revoked_at, last_used_at"
    };
}

pub(crate) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        user_name: row.text("user_name")?,
        email: row.opt_text("email")?,
        email_verified: row.boolean("email_verified")?,
        display_name: row.opt_text("display_name")?,
        kind: row.named("kind", UserKind::parse)?,
        sponsor_id: row.opt_parse("sponsor_id")?,
        expires_at: row.opt_time("expires_at")?,
        business_unit_id: row.parse("business_unit_id")?,
        state: row.named("state", LifecycleState::parse)?,
        deleted_at: row.opt_time("deleted_at")?,
        last_sign_in_at: row.opt_time("last_sign_in_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
        external_id: row.opt_text("external_id")?,
    })
}

fn group_from_row(row: &Row) -> Result<Group, StoreError> {
    Ok(Group {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        business_unit_id: row.opt_parse("business_unit_id")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
    })
}

pub(crate) fn service_principal_from_row(row: &Row) -> Result<ServicePrincipal, StoreError> {
    Ok(ServicePrincipal {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        state: row.named("state", LifecycleState::parse)?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.int("version")?,
        external_id: row.opt_text("external_id")?,
    })
}

fn key_from_row(row: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        service_principal_id: row.parse("service_principal_id")?,
        prefix: row.text("prefix")?,
        name: row.opt_text("name")?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

/// A user to create; names already validated and normalized.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_name: Name,
    /// The id another system knows the user by (validated).
    pub external_id: Option<String>,
    pub email: Option<Name>,
    /// The administrator vouches that the address is the user's.
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub kind: UserKind,
    pub sponsor_id: Option<UserId>,
    pub expires_at: Option<OffsetDateTime>,
    pub business_unit_id: BusinessUnitId,
}

/// The complete new values of a user's editable fields.
#[derive(Debug, Clone)]
pub struct UserChanges {
    pub user_name: Name,
    pub external_id: Option<String>,
    pub email: Option<Name>,
    /// Set: the administrator says whether the address is the user's. Unset: it stays proven
    /// only if the address is unchanged.
    pub email_verified: Option<bool>,
    pub display_name: Option<String>,
    pub state: LifecycleState,
    pub sponsor_id: Option<UserId>,
    pub expires_at: Option<OffsetDateTime>,
    pub business_unit_id: BusinessUnitId,
}

/// The complete new values of a service principal's editable fields.
#[derive(Debug, Clone)]
pub struct ServicePrincipalChanges {
    pub name: Name,
    pub description: Option<String>,
    pub state: LifecycleState,
    pub external_id: Option<String>,
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub state: Option<LifecycleState>,
    pub kind: Option<UserKind>,
    pub business_unit_id: Option<BusinessUnitId>,
}

/// Where a search of users stands: the key (user name or e-mail) that matched last, and that
/// user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMatch {
    pub key: String,
    pub id: UserId,
}

/// An API key to store: its public prefix and the keyed hash of its secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub name: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// What authenticating with an API key needs: the key, its stored hash, its owner and tenant.
#[derive(Debug, Clone)]
pub struct ApiKeyCredential {
    pub key: ApiKey,
    pub secret_hash: Vec<u8>,
    pub owner: ServicePrincipal,
    pub tenant: Tenant,
    /// Whether the tenant accepts the keys of principals that hold privileged actions (its
    /// administrator policy's `api_keys`), read with the key so the common case costs nothing.
    pub tenant_api_keys: ApiKeyUse,
}

const USER_UNIQUES: &[(&str, &str, &str)] = &[
    (
        "user_name_key",
        "user_name",
        "a user with this user name already exists in the tenant",
    ),
    (
        "email_key",
        "email",
        "a user with this e-mail address already exists in the tenant",
    ),
    (
        "external_id",
        "external_id",
        "a user with this external id already exists in the tenant",
    ),
];
const GROUP_UNIQUES: &[(&str, &str, &str)] = &[(
    "name_key",
    "name",
    "a group with this name already exists in the tenant",
)];
const SP_UNIQUES: &[(&str, &str, &str)] = &[
    (
        "name_key",
        "name",
        "a service principal with this name already exists in the tenant",
    ),
    (
        "external_id",
        "external_id",
        "a service principal with this external id already exists in the tenant",
    ),
];

/// A LIKE pattern matching strings that start with `prefix`, for use with `ESCAPE '\'`.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) async fn require_business_unit(
    w: &mut Write,
    id: BusinessUnitId,
) -> Result<(), StoreError> {
    let found = w
        .fetch_optional(
            query("SELECT id FROM business_units WHERE tenant_id = $1 AND id = $2")
                .bind(w.ctx.tenant_id)
                .bind(id),
        )
        .await?;
    found.map(|_| ()).ok_or_else(|| {
        ValidationError::new("business_unit_id", "no such business unit in this tenant").into()
    })
}

/// Whether a principal exists in the writer's tenant (deleted users do not count).
pub(crate) async fn principal_exists(
    w: &mut Write,
    principal: PrincipalRef,
) -> Result<bool, StoreError> {
    Ok(principal_name(w, principal).await?.is_some())
}

/// The name of a principal that exists (not deleted) in the write's tenant: a user's user
/// name, a group's or service principal's name.
async fn principal_name(
    w: &mut Write,
    principal: PrincipalRef,
) -> Result<Option<String>, StoreError> {
    let sql = match principal.kind {
        PrincipalKind::User => {
            "SELECT user_name AS name FROM users WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'"
        }
        PrincipalKind::Group => "SELECT name FROM groups WHERE tenant_id = $1 AND id = $2",
        PrincipalKind::ServicePrincipal => {
            "SELECT name FROM service_principals WHERE tenant_id = $1 AND id = $2"
        }
    };
    w.fetch_optional(query(sql).bind(w.ctx.tenant_id).bind(principal.id))
        .await?
        .map(|row| row.text("name"))
        .transpose()
}

/// Removes a principal from every group and every role assignment.
/// The change-feed kind naming a principal whose direct groups changed (entity id:
/// `kind/id`), so nodes re-read that member's groups alone, not the group's members.
pub(crate) const MEMBERSHIP_CHANGE: &str = "membership";

async fn detach_principal(w: &mut Write, principal: PrincipalRef) -> Result<(), StoreError> {
    let tenant = w.ctx.tenant_id;
    let kind = principal.kind.as_str();
    for sql in [
        "DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = $2 AND member_id = $3",
        "DELETE FROM role_assignments WHERE tenant_id = $1 AND principal_kind = $2 AND principal_id = $3",
    ] {
        w.execute(query(sql).bind(tenant).bind(kind).bind(principal.id))
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_service_principal(
    w: &mut Write,
    tenant_id: TenantId,
    name: &Name,
    description: Option<String>,
    external_id: Option<String>,
) -> Result<ServicePrincipal, StoreError> {
    let row = w
        .fetch_one(
            query(concat!(
                "INSERT INTO service_principals (id, tenant_id, name, name_key, description, state, created_at, updated_at, version, external_id) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, 1, $7) RETURNING ",
                sp_columns!()
            ))
            .bind(ServicePrincipalId::generate())
            .bind(tenant_id)
            .bind(name.display.as_str())
            .bind(name.key.as_str())
            .bind(description)
            .bind(w.ctx.now)
            .bind(external_id),
        )
        .await
        .map_err(|e| e.on_unique(SP_UNIQUES))?;
    let sp = service_principal_from_row(&row)?;
    w.record_for(
        tenant_id,
        "service_principal.create",
        "service_principal",
        sp.id,
        "create",
        json!({"name": sp.name}),
    );
    Ok(sp)
}

pub(crate) async fn insert_api_key(
    w: &mut Write,
    tenant_id: TenantId,
    owner: ServicePrincipalId,
    key: NewApiKey,
) -> Result<ApiKey, StoreError> {
    let row = w
        .fetch_one(
            query(concat!(
                "INSERT INTO api_keys (id, tenant_id, service_principal_id, prefix, secret_hash, name, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                key_columns!()
            ))
            .bind(ApiKeyId::generate())
            .bind(tenant_id)
            .bind(owner)
            .bind(key.prefix)
            .bind(key.secret_hash)
            .bind(key.name)
            .bind(w.ctx.now)
            .bind(key.expires_at),
        )
        .await?;
    let key = key_from_row(&row)?;
    w.record_for(
        tenant_id,
        "api_key.create",
        "api_key",
        key.id,
        "create",
        json!({"service_principal_id": owner, "prefix": key.prefix, "expires_at": key.expires_at.map(|t| t.unix_timestamp())}),
    );
    Ok(key)
}

impl Store {
    // ---- users ----

    pub async fn create_user(&self, ctx: &WriteContext, new: NewUser) -> Result<User, StoreError> {
        let has_email = new.email.is_some();
        let mut w = self.write(ctx).await?;
        require_business_unit(&mut w, new.business_unit_id).await?;
        let row = w
            .fetch_one(
                query(concat!(
                    "INSERT INTO users (id, tenant_id, user_name, user_name_key, email, email_key, display_name, kind, \
                     sponsor_id, expires_at, business_unit_id, state, created_at, updated_at, version, external_id, \
                     email_verified) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', $12, $12, 1, $13, $14) RETURNING ",
                    user_columns!()
                ))
                .bind(UserId::generate())
                .bind(ctx.tenant_id)
                .bind(new.user_name.display)
                .bind(new.user_name.key)
                .bind(new.email.as_ref().map(|e| e.display.clone()))
                .bind(new.email.map(|e| e.key))
                .bind(new.display_name)
                .bind(new.kind.as_str())
                .bind(new.sponsor_id)
                .bind(new.expires_at)
                .bind(new.business_unit_id)
                .bind(ctx.now)
                .bind(new.external_id)
                .bind(new.email_verified && has_email),
            )
            .await
            .map_err(|e| e.on_unique(USER_UNIQUES))?;
        let user = user_from_row(&row)?;
        w.record(
            "user.create",
            "user",
            user.id,
            "create",
            json!({"user_name": user.user_name, "kind": user.kind}),
        );
        w.commit().await?;
        Ok(user)
    }

    /// A user of the tenant, including soft-deleted ones (their state says so).
    /// The names people know principals by (a user's user name, a group's or service
    /// principal's name), one statement per kind asked about however many are asked. Ids of
    /// another tenant, or of principals that no longer exist, are left out.
    pub async fn principal_names(
        &self,
        tenant_id: TenantId,
        principals: &[PrincipalRef],
    ) -> Result<std::collections::HashMap<PrincipalRef, String>, StoreError> {
        let mut names = std::collections::HashMap::with_capacity(principals.len());
        for (kind, from) in [
            (
                PrincipalKind::User,
                "SELECT id, user_name AS name FROM users",
            ),
            (PrincipalKind::Group, "SELECT id, name FROM groups"),
            (
                PrincipalKind::ServicePrincipal,
                "SELECT id, name FROM service_principals",
            ),
        ] {
            let ids: std::collections::BTreeSet<Uuid> = principals
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.id)
                .collect();
            let ids: Vec<Uuid> = ids.into_iter().collect();
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let mut statement = assembled_query(format!(
                    "{from} WHERE tenant_id = $1 AND id IN ({})",
                    placeholders(2, chunk.len())
                ))
                .bind(tenant_id);
                for id in chunk {
                    statement = statement.bind(*id);
                }
                for row in self.pools.fetch_all(statement).await? {
                    let id = PrincipalRef {
                        kind,
                        id: row.parse::<Uuid>("id")?,
                    };
                    names.insert(id, row.text("name")?);
                }
            }
        }
        Ok(names)
    }

    pub async fn user(&self, tenant_id: TenantId, id: UserId) -> Result<User, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant_id)
                .bind(id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// A page of the tenant's users in creation order, filtered by state, kind and unit (the
    /// prefix is `search_users`'). Each filter has an index that starts with the tenant, so a
    /// page reads about as many rows as it returns.
    pub async fn users(
        &self,
        tenant_id: TenantId,
        filter: &UserFilter,
        page: PageRequest<Uuid>,
    ) -> Result<Page<User>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE tenant_id = $1"
                ))
                .bind(tenant_id)
                .and("id >", page.after)
                .and("state =", filter.state.map(LifecycleState::as_str))
                .and("kind =", filter.kind.map(UserKind::as_str))
                .and("business_unit_id =", filter.business_unit_id)
                .then_bind(" ORDER BY id LIMIT ", page.fetch_limit()),
            )
            .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(users, |u| u.id))
    }

    /// Users whose user name or e-mail address starts with `prefix` (compared on their keys),
    /// filtered as `users` is, ordered by the key that matched and then by id, resumed after
    /// `after`; and where the next page starts, when there is one. Each key's index is read as
    /// one range from where the page starts, so a page costs time that grows with the page,
    /// not with the tenant or with how many users match.
    pub async fn search_users(
        &self,
        tenant_id: TenantId,
        prefix: &str,
        filter: &UserFilter,
        after: Option<&UserMatch>,
        limit: u32,
    ) -> Result<(Vec<User>, Option<UserMatch>), StoreError> {
        let low = portcullis_core::names::name_key(prefix);
        // Above every key that starts with `low`: no character sorts after U+10FFFF, in
        // UTF-8 bytes (SQLite) or the "C" collation (PostgreSQL).
        let high = format!("{low}\u{10FFFF}");
        let (start, after_id) = match after {
            Some(m) if m.key.as_str() >= low.as_str() => (m.key.clone(), m.id.to_string()),
            _ => (low.clone(), String::new()),
        };
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT * FROM (SELECT * FROM (SELECT user_name_key AS match_key, ",
                    user_columns!(),
                    " FROM users WHERE tenant_id = $1 AND user_name_key >= $2 AND user_name_key < $3 \
                     AND (user_name_key > $2 OR id > $4) \
                     AND ($5 IS NULL OR state = $5) AND ($6 IS NULL OR kind = $6) AND ($7 IS NULL OR business_unit_id = $7) \
                     ORDER BY user_name_key LIMIT $8) AS by_name \
                     UNION ALL SELECT * FROM (SELECT email_key AS match_key, ",
                    user_columns!(),
                    " FROM users WHERE tenant_id = $1 AND email_key >= $2 AND email_key < $3 \
                     AND (email_key > $2 OR id > $4) \
                     AND NOT (user_name_key >= $9 AND user_name_key < $3) \
                     AND ($5 IS NULL OR state = $5) AND ($6 IS NULL OR kind = $6) AND ($7 IS NULL OR business_unit_id = $7) \
                     ORDER BY email_key LIMIT $8) AS by_email) AS found \
                     ORDER BY match_key, id LIMIT $8"
                ))
                .bind(tenant_id)
                .bind(&start)
                .bind(&high)
                .bind(&after_id)
                .bind(filter.state.map(LifecycleState::as_str))
                .bind(filter.kind.map(UserKind::as_str))
                .bind(filter.business_unit_id)
                .bind(i64::from(limit) + 1)
                .bind(&low),
            )
            .await?;
        let mut found = rows
            .iter()
            .map(|row| Ok((row.text("match_key")?, user_from_row(row)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next = more
            .then(|| found.last())
            .flatten()
            .map(|(key, user)| UserMatch {
                key: key.clone(),
                id: user.id,
            });
        Ok((found.into_iter().map(|(_, user)| user).collect(), next))
    }

    /// The user whose user name, or else whose e-mail address, has this normalized key.
    pub async fn user_by_name_or_email(
        &self,
        tenant_id: TenantId,
        key: &str,
    ) -> Result<Option<User>, StoreError> {
        for column in ["user_name_key", "email_key"] {
            let row = self
                .pools
                .fetch_optional(
                    crate::db::assembled_query(format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND {column} = $2"
                    ))
                    .bind(tenant_id)
                    .bind(key),
                )
                .await?;
            if let Some(row) = row {
                return user_from_row(&row).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads a user inside a write for update, checking it exists and has the expected version.
    async fn user_for_update(
        w: &mut Write,
        id: UserId,
        expected_version: Option<i64>,
    ) -> Result<User, StoreError> {
        let row = w
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(w.ctx.tenant_id)
                .bind(id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        let user = user_from_row(&row)?;
        if expected_version.is_some_and(|v| v != user.version) {
            return Err(StoreError::VersionMismatch {
                current_version: user.version,
            });
        }
        Ok(user)
    }

    /// Applies `changes` if the user is still at `expected_version`.
    pub async fn update_user(
        &self,
        ctx: &WriteContext,
        id: UserId,
        expected_version: i64,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = Self::user_for_update(&mut w, id, Some(expected_version)).await?;
        if before.state == LifecycleState::Deleted {
            return Err(StoreError::conflict(
                "state",
                "the user is deleted; restore it before changing it",
            ));
        }
        if changes.business_unit_id != before.business_unit_id {
            require_business_unit(&mut w, changes.business_unit_id).await?;
        }
        let email_key_before = w
            .fetch_one(
                query("SELECT email_key FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?
            .opt_text("email_key")?;
        let email_verified = portcullis_core::identity::email_verified_after(
            (email_key_before.as_deref(), before.email_verified),
            changes.email.as_ref().map(|e| e.key.as_str()),
            changes.email_verified,
        );
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE users SET user_name = $3, user_name_key = $4, email = $5, email_key = $6, display_name = $7, \
                     state = $8, sponsor_id = $9, expires_at = $10, business_unit_id = $11, updated_at = $12, \
                     external_id = $14, email_verified = $15, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2 AND version = $13 RETURNING ",
                    user_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(changes.user_name.display)
                .bind(changes.user_name.key)
                .bind(changes.email.as_ref().map(|e| e.display.clone()))
                .bind(changes.email.map(|e| e.key))
                .bind(changes.display_name)
                .bind(changes.state.as_str())
                .bind(changes.sponsor_id)
                .bind(changes.expires_at)
                .bind(changes.business_unit_id)
                .bind(ctx.now)
                .bind(expected_version)
                .bind(changes.external_id)
                .bind(email_verified),
            )
            .await
            .map_err(|e| e.on_unique(USER_UNIQUES))?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let after = user_from_row(&row)?;
        let action = match (before.state, after.state) {
            (LifecycleState::Active, LifecycleState::Disabled) => "user.disable",
            (LifecycleState::Disabled, LifecycleState::Active) => "user.enable",
            _ => "user.update",
        };
        w.record(
            action,
            "user",
            id,
            "update",
            changed_fields(&before, &after),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Soft-deletes a user: it can no longer act, and can be restored within the retention window.
    pub async fn delete_user(
        &self,
        ctx: &WriteContext,
        id: UserId,
        expected_version: Option<i64>,
    ) -> Result<User, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = Self::user_for_update(&mut w, id, expected_version).await?;
        if before.state == LifecycleState::Deleted {
            return Err(StoreError::NotFound);
        }
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE users SET state_before_delete = state, state = 'deleted', deleted_at = $3, updated_at = $3, \
                     version = version + 1 WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted' \
                     AND version = COALESCE($4, version) RETURNING ",
                    user_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(ctx.now)
                .bind(expected_version),
            )
            .await?
            .ok_or(StoreError::VersionMismatch { current_version: before.version })?;
        let user = user_from_row(&row)?;
        w.record(
            "user.delete",
            "user",
            id,
            "delete",
            json!({"user_name": user.user_name}),
        );
        w.commit().await?;
        Ok(user)
    }

    /// Restores a soft-deleted user to the state it had, if deleted after `not_before`.
    pub async fn restore_user(
        &self,
        ctx: &WriteContext,
        id: UserId,
        not_before: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = Self::user_for_update(&mut w, id, None).await?;
        match before.deleted_at {
            None => return Err(StoreError::conflict("state", "the user is not deleted")),
            Some(at) if at < not_before => {
                return Err(StoreError::conflict(
                    "state",
                    "the retention window has passed; the user can no longer be restored",
                ));
            }
            Some(_) => {}
        }
        let row = w
            .fetch_one(
                query(concat!(
                    "UPDATE users SET state = COALESCE(state_before_delete, 'active'), state_before_delete = NULL, \
                     deleted_at = NULL, updated_at = $3, version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING ",
                    user_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(ctx.now),
            )
            .await?;
        let user = user_from_row(&row)?;
        w.record(
            "user.restore",
            "user",
            id,
            "update",
            json!({"state": user.state}),
        );
        w.commit().await?;
        Ok(user)
    }

    /// Permanently removes a soft-deleted user, its memberships and role assignments.
    pub async fn purge_user(&self, ctx: &WriteContext, id: UserId) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let user = Self::user_for_update(&mut w, id, None).await?;
        if user.state != LifecycleState::Deleted {
            return Err(StoreError::conflict(
                "state",
                "only a deleted user can be purged; delete it first",
            ));
        }
        detach_principal(&mut w, PrincipalRef::user(id)).await?;
        w.execute(
            query("UPDATE users SET sponsor_id = NULL WHERE tenant_id = $1 AND sponsor_id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
        )
        .await?;
        w.execute(
            query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
        )
        .await?;
        w.record(
            "user.purge",
            "user",
            id,
            "delete",
            json!({"user_name": user.user_name}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Users of any tenant deleted before `cutoff`, due to be purged.
    pub async fn users_due_for_purge(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE state = 'deleted' AND deleted_at < $1 ORDER BY deleted_at LIMIT $2"
                ))
                .bind(cutoff)
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Active users of any tenant whose expiry date has passed.
    pub async fn users_past_expiry(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
                ))
                .bind(now)
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Disables a user whose expiry date has passed (done by the lifecycle sweeper).
    pub async fn expire_user(&self, ctx: &WriteContext, id: UserId) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let changed = w
            .execute(
                query(
                    "UPDATE users SET state = 'disabled', updated_at = $3, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'active' AND expires_at <= $3",
                )
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(ctx.now),
            )
            .await?;
        if changed == 1 {
            w.record(
                "user.expire",
                "user",
                id,
                "update",
                json!({"state": {"from": "active", "to": "disabled"}}),
            );
            w.commit().await?;
        }
        Ok(())
    }

    // ---- groups ----

    /// Creates a group; with a business unit, a team of that unit.
    pub async fn create_group(
        &self,
        ctx: &WriteContext,
        name: Name,
        description: Option<String>,
        business_unit_id: Option<BusinessUnitId>,
    ) -> Result<Group, StoreError> {
        let mut w = self.write(ctx).await?;
        if let Some(unit) = business_unit_id {
            require_business_unit(&mut w, unit).await?;
        }
        let row = w
            .fetch_one(
                query(concat!(
                    "INSERT INTO groups (id, tenant_id, name, name_key, description, business_unit_id, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING ",
                    group_columns!()
                ))
                .bind(GroupId::generate())
                .bind(ctx.tenant_id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(business_unit_id)
                .bind(ctx.now),
            )
            .await
            .map_err(|e| e.on_unique(GROUP_UNIQUES))?;
        let group = group_from_row(&row)?;
        w.record(
            "group.create",
            "group",
            group.id,
            "create",
            json!({"name": group.name}),
        );
        w.commit().await?;
        Ok(group)
    }

    pub async fn group(&self, tenant_id: TenantId, id: GroupId) -> Result<Group, StoreError> {
        group_in(&self.pools, tenant_id, id).await
    }

    pub async fn groups(
        &self,
        tenant_id: TenantId,
        prefix: Option<&str>,
        page: PageRequest<Uuid>,
    ) -> Result<Page<Group>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    group_columns!(),
                    " FROM groups WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) \
                     AND ($3 IS NULL OR name_key LIKE $3 ESCAPE '\\') ORDER BY id LIMIT $4"
                ))
                .bind(tenant_id)
                .bind(page.after)
                .bind(prefix.map(|p| like_prefix(&portcullis_core::names::name_key(p))))
                .bind(page.fetch_limit()),
            )
            .await?;
        let groups = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(groups, |g| g.id))
    }

    pub async fn update_group(
        &self,
        ctx: &WriteContext,
        id: GroupId,
        expected_version: i64,
        name: Name,
        description: Option<String>,
        business_unit_id: Option<BusinessUnitId>,
    ) -> Result<Group, StoreError> {
        let mut w = self.write(ctx).await?;
        let before = group_in(&mut w, ctx.tenant_id, id).await?;
        if let Some(unit) = business_unit_id {
            require_business_unit(&mut w, unit).await?;
        }
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE groups SET name = $3, name_key = $4, description = $5, updated_at = $6, version = version + 1, \
                     business_unit_id = $8 WHERE tenant_id = $1 AND id = $2 AND version = $7 RETURNING ",
                    group_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(ctx.now)
                .bind(expected_version)
                .bind(business_unit_id),
            )
            .await
            .map_err(|e| e.on_unique(GROUP_UNIQUES))?;
        let Some(row) = row else {
            let current = group_in(&mut w, ctx.tenant_id, id).await?;
            return Err(StoreError::VersionMismatch {
                current_version: current.version,
            });
        };
        let after = group_from_row(&row)?;
        w.record(
            "group.update",
            "group",
            id,
            "update",
            changed_fields(&before, &after),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Deletes a group, its memberships (both ways) and its role assignments.
    pub async fn delete_group(
        &self,
        ctx: &WriteContext,
        id: GroupId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let group = group_in(&mut w, ctx.tenant_id, id).await?;
        detach_principal(&mut w, PrincipalRef::group(id)).await?;
        w.execute(
            query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
        )
        .await?;
        w.delete_versioned("groups", id, expected_version).await?;
        w.record(
            "group.delete",
            "group",
            id,
            "delete",
            json!({"name": group.name}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Adds a member; refuses a member that does not exist or a membership that would make a
    /// group contain itself.
    pub async fn add_group_member(
        &self,
        ctx: &WriteContext,
        group_id: GroupId,
        member: PrincipalRef,
    ) -> Result<GroupMember, StoreError> {
        let mut w = self.write(ctx).await?;
        group_in(&mut w, ctx.tenant_id, group_id).await?;
        let Some(name) = principal_name(&mut w, member).await? else {
            return Err(ValidationError::new(
                "id",
                format!("no such {} in this tenant", member.kind.as_str()),
            )
            .into());
        };
        if member.kind == PrincipalKind::Group {
            let edges = w
                .fetch_all(
                    query("SELECT group_id, member_id FROM group_members WHERE tenant_id = $1 AND member_kind = 'group'")
                        .bind(ctx.tenant_id),
                )
                .await?
                .iter()
                .map(|r| Ok((r.parse::<GroupId>("group_id")?, r.parse::<GroupId>("member_id")?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            if membership_would_cycle(&edges, group_id, GroupId::from_uuid(member.id)) {
                return Err(StoreError::conflict(
                    "id",
                    "this membership would make the group contain itself",
                ));
            }
        }
        let inserted = w
            .execute(
                query(
                    "INSERT INTO group_members (tenant_id, group_id, member_kind, member_id, added_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(ctx.tenant_id)
                .bind(group_id)
                .bind(member.kind.as_str())
                .bind(member.id)
                .bind(ctx.now),
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::conflict("id", "already a member of this group"));
        }
        w.record(
            "group.member.add",
            "group",
            group_id,
            "update",
            json!({"member": member}),
        );
        w.changed(MEMBERSHIP_CHANGE, member);
        w.commit().await?;
        Ok(GroupMember {
            group_id,
            member,
            name,
            added_at: portcullis_core::time_util::truncate_to_micros(ctx.now),
        })
    }

    pub async fn remove_group_member(
        &self,
        ctx: &WriteContext,
        group_id: GroupId,
        member: PrincipalRef,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let removed = w
            .execute(
                query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_kind = $3 AND member_id = $4")
                    .bind(ctx.tenant_id)
                    .bind(group_id)
                    .bind(member.kind.as_str())
                    .bind(member.id),
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        w.record(
            "group.member.remove",
            "group",
            group_id,
            "update",
            json!({"member": member}),
        );
        w.changed(MEMBERSHIP_CHANGE, member);
        w.commit().await?;
        Ok(())
    }

    /// Direct members of a group, ordered by member id (the cursor).
    pub async fn group_members(
        &self,
        tenant_id: TenantId,
        group_id: GroupId,
        page: PageRequest<Uuid>,
    ) -> Result<Page<GroupMember>, StoreError> {
        self.group(tenant_id, group_id).await?;
        let rows = self
            .pools
            .fetch_all(
                query(
                    "SELECT m.group_id, m.member_kind, m.member_id, m.added_at, COALESCE(\
                     (SELECT u.user_name FROM users u WHERE u.tenant_id = m.tenant_id AND u.id = m.member_id), \
                     (SELECT g.name FROM groups g WHERE g.tenant_id = m.tenant_id AND g.id = m.member_id), \
                     (SELECT s.name FROM service_principals s WHERE s.tenant_id = m.tenant_id AND s.id = m.member_id), '') AS member_name \
                     FROM group_members m \
                     WHERE m.tenant_id = $1 AND m.group_id = $2 AND ($3 IS NULL OR m.member_id > $3) \
                     ORDER BY m.member_id LIMIT $4",
                )
                .bind(tenant_id)
                .bind(group_id)
                .bind(page.after)
                .bind(page.fetch_limit()),
            )
            .await?;
        let members = rows
            .iter()
            .map(|r| {
                Ok(GroupMember {
                    group_id: r.parse("group_id")?,
                    member: PrincipalRef {
                        kind: r.named("member_kind", PrincipalKind::parse)?,
                        id: r.parse("member_id")?,
                    },
                    name: r.text("member_name")?,
                    added_at: r.time("added_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page.finish(members, |m| m.member.id))
    }

    /// The names of every group a principal belongs to, directly or through nested groups,
    /// sorted.
    pub async fn group_names_transitive(
        &self,
        tenant_id: TenantId,
        member: PrincipalRef,
    ) -> Result<Vec<String>, StoreError> {
        self.pools
            .fetch_all(
                query(
                    "WITH RECURSIVE member_of(group_id) AS ( \
                       SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_kind = $2 AND member_id = $3 \
                       UNION \
                       SELECT gm.group_id FROM group_members gm JOIN member_of m \
                         ON gm.member_kind = 'group' AND gm.member_id = m.group_id WHERE gm.tenant_id = $1 \
                     ) \
                     SELECT g.name FROM groups g JOIN member_of m ON g.id = m.group_id \
                     WHERE g.tenant_id = $1 ORDER BY g.name",
                )
                .bind(tenant_id)
                .bind(member.kind.as_str())
                .bind(member.id),
            )
            .await?
            .iter()
            .map(|r| r.text("name"))
            .collect()
    }

    /// The groups a principal belongs to directly.
    pub async fn memberships(
        &self,
        tenant_id: TenantId,
        member: PrincipalRef,
    ) -> Result<Vec<Group>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    group_columns!(),
                    " FROM groups WHERE tenant_id = $1 AND id IN \
                     (SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_kind = $2 AND member_id = $3) ORDER BY id"
                ))
                .bind(tenant_id)
                .bind(member.kind.as_str())
                .bind(member.id),
            )
            .await?;
        rows.iter().map(group_from_row).collect()
    }

    // ---- service principals ----

    pub async fn create_service_principal(
        &self,
        ctx: &WriteContext,
        name: Name,
        description: Option<String>,
        external_id: Option<String>,
    ) -> Result<ServicePrincipal, StoreError> {
        let mut w = self.write(ctx).await?;
        let sp = insert_service_principal(&mut w, ctx.tenant_id, &name, description, external_id)
            .await?;
        w.commit().await?;
        Ok(sp)
    }

    pub async fn service_principal(
        &self,
        tenant_id: TenantId,
        id: ServicePrincipalId,
    ) -> Result<ServicePrincipal, StoreError> {
        service_principal_in(&self.pools, tenant_id, id).await
    }

    /// A client's own access token's standing, in one query (every admin API request with such
    /// a token reads it): the client, and whether the token `jti` was revoked. `None` when the
    /// client is gone.
    pub async fn client_token_standing(
        &self,
        tenant_id: TenantId,
        id: ServicePrincipalId,
        jti: &str,
    ) -> Result<Option<(ServicePrincipal, bool)>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    sp_columns!(),
                    ", EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $3) AS revoked \
                     FROM service_principals WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant_id)
                .bind(id)
                .bind(jti),
            )
            .await?;
        row.map(|row| Ok((service_principal_from_row(&row)?, row.boolean("revoked")?)))
            .transpose()
    }

    pub async fn service_principals(
        &self,
        tenant_id: TenantId,
        page: PageRequest<Uuid>,
    ) -> Result<Page<ServicePrincipal>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    sp_columns!(),
                    " FROM service_principals WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
                ))
                .bind(tenant_id)
                .bind(page.after)
                .bind(page.fetch_limit()),
            )
            .await?;
        let sps = rows
            .iter()
            .map(service_principal_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(sps, |s| s.id))
    }

    pub async fn update_service_principal(
        &self,
        ctx: &WriteContext,
        id: ServicePrincipalId,
        expected_version: i64,
        changes: ServicePrincipalChanges,
    ) -> Result<ServicePrincipal, StoreError> {
        let ServicePrincipalChanges {
            name,
            description,
            state,
            external_id,
        } = changes;
        let mut w = self.write(ctx).await?;
        let before = service_principal_in(&mut w, ctx.tenant_id, id).await?;
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE service_principals SET name = $3, name_key = $4, description = $5, state = $6, updated_at = $7, \
                     external_id = $9, version = version + 1 WHERE tenant_id = $1 AND id = $2 AND version = $8 RETURNING ",
                    sp_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(id)
                .bind(name.display)
                .bind(name.key)
                .bind(description)
                .bind(state.as_str())
                .bind(ctx.now)
                .bind(expected_version)
                .bind(external_id),
            )
            .await
            .map_err(|e| e.on_unique(SP_UNIQUES))?;
        let Some(row) = row else {
            let current = service_principal_in(&mut w, ctx.tenant_id, id).await?;
            return Err(StoreError::VersionMismatch {
                current_version: current.version,
            });
        };
        let after = service_principal_from_row(&row)?;
        w.record(
            "service_principal.update",
            "service_principal",
            id,
            "update",
            changed_fields(&before, &after),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Deletes a service principal with its keys, memberships and role assignments.
    pub async fn delete_service_principal(
        &self,
        ctx: &WriteContext,
        id: ServicePrincipalId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let sp = service_principal_in(&mut w, ctx.tenant_id, id).await?;
        detach_principal(&mut w, PrincipalRef::service_principal(id)).await?;
        w.execute(
            query("DELETE FROM api_keys WHERE tenant_id = $1 AND service_principal_id = $2")
                .bind(ctx.tenant_id)
                .bind(id),
        )
        .await?;
        w.delete_versioned("service_principals", id, expected_version)
            .await?;
        w.record(
            "service_principal.delete",
            "service_principal",
            id,
            "delete",
            json!({"name": sp.name}),
        );
        w.commit().await?;
        Ok(())
    }

    // ---- API keys ----

    /// Stores a new key for a service principal, refusing more than [`MAX_ACTIVE_KEYS`] in use.
    pub async fn create_api_key(
        &self,
        ctx: &WriteContext,
        owner: ServicePrincipalId,
        key: NewApiKey,
    ) -> Result<ApiKey, StoreError> {
        let mut w = self.write(ctx).await?;
        let sp = service_principal_in(&mut w, ctx.tenant_id, owner).await?;
        let active = w
            .fetch_one(
                query(
                    "SELECT COUNT(*) AS n FROM api_keys WHERE tenant_id = $1 AND service_principal_id = $2 \
                     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
                )
                .bind(ctx.tenant_id)
                .bind(sp.id)
                .bind(ctx.now),
            )
            .await?
            .int("n")?;
        if active >= MAX_ACTIVE_KEYS {
            return Err(StoreError::conflict(
                "service_principal_id",
                format!(
                    "this service principal already has {MAX_ACTIVE_KEYS} keys in use; revoke one first"
                ),
            ));
        }
        let key = insert_api_key(&mut w, ctx.tenant_id, sp.id, key).await?;
        w.commit().await?;
        Ok(key)
    }

    pub async fn api_keys(
        &self,
        tenant_id: TenantId,
        owner: ServicePrincipalId,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.service_principal(tenant_id, owner).await?;
        let rows = self
            .pools
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE tenant_id = $1 AND service_principal_id = $2 ORDER BY id"
                ))
                .bind(tenant_id)
                .bind(owner),
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key at once. Revoking a revoked key changes nothing.
    pub async fn revoke_api_key(
        &self,
        ctx: &WriteContext,
        owner: ServicePrincipalId,
        id: ApiKeyId,
    ) -> Result<ApiKey, StoreError> {
        let mut w = self.write(ctx).await?;
        let row = w
            .fetch_optional(
                query(concat!(
                    "UPDATE api_keys SET revoked_at = $4 WHERE tenant_id = $1 AND service_principal_id = $2 AND id = $3 \
                     AND revoked_at IS NULL RETURNING ",
                    key_columns!()
                ))
                .bind(ctx.tenant_id)
                .bind(owner)
                .bind(id)
                .bind(ctx.now),
            )
            .await?;
        match row {
            Some(row) => {
                let key = key_from_row(&row)?;
                w.record(
                    "api_key.revoke",
                    "api_key",
                    id,
                    "update",
                    json!({"service_principal_id": owner, "prefix": key.prefix}),
                );
                w.commit().await?;
                Ok(key)
            }
            None => {
                let keys = self.api_keys(ctx.tenant_id, owner).await?;
                keys.into_iter()
                    .find(|k| k.id == id)
                    .ok_or(StoreError::NotFound)
            }
        }
    }

    /// Everything needed to authenticate a presented key with this prefix, if one exists.
    pub async fn api_key_credential(
        &self,
        prefix: &str,
    ) -> Result<Option<ApiKeyCredential>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT k.id AS k_id, k.tenant_id AS k_tenant_id, k.service_principal_id, k.prefix, k.secret_hash, \
                     k.name AS k_name, k.created_at AS k_created_at, k.expires_at, k.revoked_at, k.last_used_at, \
                     s.id, s.tenant_id, s.name, s.description, s.state, s.created_at, s.updated_at, s.version, s.external_id, \
                     t.id AS t_id, t.name AS t_name, t.display_name AS t_display_name, t.operator AS t_operator, \
                     t.state AS t_state, t.created_at AS t_created_at, t.updated_at AS t_updated_at, t.version AS t_version, \
                     COALESCE(ap.api_keys, 'allowed') AS tenant_api_keys \
                     FROM api_keys k JOIN service_principals s ON s.id = k.service_principal_id \
                     JOIN tenants t ON t.id = k.tenant_id \
                     LEFT JOIN administrator_policies ap ON ap.tenant_id = k.tenant_id WHERE k.prefix = $1",
                )
                .bind(prefix),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key = ApiKey {
            id: row.parse("k_id")?,
            tenant_id: row.parse("k_tenant_id")?,
            service_principal_id: row.parse("service_principal_id")?,
            prefix: row.text("prefix")?,
            name: row.opt_text("k_name")?,
            created_at: row.time("k_created_at")?,
            expires_at: row.opt_time("expires_at")?,
            revoked_at: row.opt_time("revoked_at")?,
            last_used_at: row.opt_time("last_used_at")?,
        };
        Ok(Some(ApiKeyCredential {
            key,
            secret_hash: row.bytes("secret_hash")?,
            owner: service_principal_from_row(&row)?,
            tenant: tenant_from_row(&row, "t_")?,
            tenant_api_keys: row.named("tenant_api_keys", ApiKeyUse::parse)?,
        }))
    }

    /// Notes that a key was used, at most once per `granularity`, so authentication does not
    /// turn every request into a write.
    pub async fn touch_api_key(
        &self,
        id: ApiKeyId,
        now: OffsetDateTime,
        granularity: time::Duration,
    ) -> Result<(), StoreError> {
        self.pools
            .execute(
                query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)")
                    .bind(id)
                    .bind(now)
                    .bind(now - granularity),
            )
            .await?;
        Ok(())
    }
}

async fn group_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    id: GroupId,
) -> Result<Group, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                group_columns!(),
                " FROM groups WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
        )
        .await?;
    group_from_row(&row)
}

async fn service_principal_in<'a>(
    from: impl Into<Reader<'a>>,
    tenant_id: TenantId,
    id: ServicePrincipalId,
) -> Result<ServicePrincipal, StoreError> {
    let row = from
        .into()
        .one(
            query(concat!(
                "SELECT ",
                sp_columns!(),
                " FROM service_principals WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
        )
        .await?;
    service_principal_from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
