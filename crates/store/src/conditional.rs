//! Conditional access objects: named locations, policies and the tenant's settings. Every
//! change runs in the tenant's write, which is where the rules that span objects are checked
//! (a policy names only locations that exist, a location in use cannot go, no change may
//! leave every administrator blocked with no emergency account outside the block).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use portcullis_core::conditional::{AccessPolicy, AccessPolicySettings, NamedLocation, Versioned};
use portcullis_core::names::parse_name;
use portcullis_core::{AccessPolicyId, NamedLocationId, TenantId, ValidationError};

use crate::access::{from_json, to_json};
use crate::db::{Row, assembled_query, query};
use crate::write::Write;
use crate::{Store, StoreError, WriteContext};

/// Everything a node compiles a tenant's conditional access from.
#[derive(Debug, Clone, Default)]
pub struct ConditionalAccess {
    pub policies: Vec<AccessPolicy>,
    pub locations: Vec<NamedLocation>,
    pub settings: AccessPolicySettings,
}

/// A kind of object kept as a whole JSON document in its own table.
trait Document: Serialize + DeserializeOwned + Clone {
    const TABLE: &'static str;
    /// The change-feed kind and the audit actions' prefix.
    const KIND: &'static str;
    const NAME_TAKEN: &'static str;
    fn id(&self) -> String;
    fn name(&self) -> &str;
    fn state(&self) -> Option<&'static str>;
}

impl Document for NamedLocation {
    const TABLE: &'static str = "named_locations";
    const KIND: &'static str = "named_location";
    const NAME_TAKEN: &'static str = "a named location of this name exists";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn state(&self) -> Option<&'static str> {
        None
    }
}

impl Document for AccessPolicy {
    const TABLE: &'static str = "access_policies";
    const KIND: &'static str = "access_policy";
    const NAME_TAKEN: &'static str = "a policy of this name exists";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn state(&self) -> Option<&'static str> {
        Some(self.state.as_str())
    }
}

fn stored<T: Document>(row: &Row) -> Result<Versioned<T>, StoreError> {
    Ok(Versioned {
        value: from_json(row, "document")?,
        version: row.int("version")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

impl Store {
    async fn documents<T: Document>(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<Versioned<T>>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                assembled_query(format!(
                    "SELECT document, version, created_at, updated_at FROM {} WHERE tenant_id = $1 ORDER BY name_key",
                    T::TABLE
                ))
                .bind(tenant_id),
            )
            .await?;
        rows.iter().map(stored).collect()
    }

    async fn document<T: Document>(
        &self,
        tenant_id: TenantId,
        id: String,
    ) -> Result<Versioned<T>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                assembled_query(format!(
                    "SELECT document, version, created_at, updated_at FROM {} WHERE tenant_id = $1 AND id = $2",
                    T::TABLE
                ))
                .bind(tenant_id)
                .bind(id),
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        stored(&row)
    }

    pub async fn named_locations(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<Versioned<NamedLocation>>, StoreError> {
        self.documents(tenant_id).await
    }

    pub async fn named_location(
        &self,
        tenant_id: TenantId,
        id: NamedLocationId,
    ) -> Result<Versioned<NamedLocation>, StoreError> {
        self.document(tenant_id, id.to_string()).await
    }

    pub async fn access_policies(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<Versioned<AccessPolicy>>, StoreError> {
        self.documents(tenant_id).await
    }

    pub async fn access_policy(
        &self,
        tenant_id: TenantId,
        id: AccessPolicyId,
    ) -> Result<Versioned<AccessPolicy>, StoreError> {
        self.document(tenant_id, id.to_string()).await
    }

    /// Saves a named location: a new one when `expected_version` is `None`, else the
    /// location at that version.
    pub async fn save_named_location(
        &self,
        ctx: &WriteContext,
        location: NamedLocation,
        expected_version: Option<i64>,
    ) -> Result<Versioned<NamedLocation>, StoreError> {
        location.validate()?;
        let mut w = self.write(ctx).await?;
        let saved = save(&mut w, &location, expected_version).await?;
        w.commit().await?;
        Ok(saved)
    }

    /// Deletes a named location no policy refers to.
    pub async fn delete_named_location(
        &self,
        ctx: &WriteContext,
        id: NamedLocationId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let users: Vec<String> = policies_in(&mut w)
            .await?
            .into_iter()
            .filter(|p| p.locations().any(|l| l == id))
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::conflict(
                "id",
                format!(
                    "policies refer to this location ({}): take it out of them first",
                    users.join(", ")
                ),
            ));
        }
        w.delete_versioned("named_locations", id.to_string(), expected_version)
            .await?;
        w.record(
            &format!("{}.delete", NamedLocation::KIND),
            NamedLocation::KIND,
            id,
            "delete",
            json!({}),
        );
        w.commit().await?;
        Ok(())
    }

    /// Saves a policy: a new one when `expected_version` is `None`, else the policy at that
    /// version. Refused when it names a location that does not exist, or would block every
    /// administrator with no emergency access account outside it.
    pub async fn save_access_policy(
        &self,
        ctx: &WriteContext,
        policy: AccessPolicy,
        expected_version: Option<i64>,
    ) -> Result<Versioned<AccessPolicy>, StoreError> {
        policy.validate()?;
        let mut w = self.write(ctx).await?;
        let known: Vec<NamedLocationId> =
            locations_in(&mut w).await?.iter().map(|l| l.id).collect();
        if let Some(missing) = policy.locations().find(|l| !known.contains(l)) {
            return Err(ValidationError::new(
                "conditions.locations",
                format!("there is no named location {missing} in this tenant"),
            )
            .into());
        }
        let settings = settings_in(&mut w).await?;
        if let Some(why) = policy.locks_out(&settings.emergency_accounts) {
            return Err(StoreError::conflict("state", why));
        }
        if policy.asks_for_terms() && settings.terms_of_use.is_none() {
            return Err(ValidationError::new(
                "grant.controls",
                "terms_of_use needs the tenant's terms: set terms_of_use in the access policy settings first",
            )
            .into());
        }
        let saved = save(&mut w, &policy, expected_version).await?;
        w.commit().await?;
        Ok(saved)
    }

    pub async fn delete_access_policy(
        &self,
        ctx: &WriteContext,
        id: AccessPolicyId,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        w.delete_versioned("access_policies", id.to_string(), expected_version)
            .await?;
        w.record(
            &format!("{}.delete", AccessPolicy::KIND),
            AccessPolicy::KIND,
            id,
            "delete",
            json!({}),
        );
        w.commit().await?;
        Ok(())
    }

    pub async fn access_policy_settings(
        &self,
        tenant_id: TenantId,
    ) -> Result<AccessPolicySettings, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT document FROM access_policy_settings WHERE tenant_id = $1")
                    .bind(tenant_id),
            )
            .await?;
        row.map_or(Ok(AccessPolicySettings::default()), |row| {
            from_json(&row, "document")
        })
    }

    /// Sets the tenant's emergency access accounts: users of the tenant, and not so few that
    /// an enabled policy would then block every administrator.
    pub async fn set_access_policy_settings(
        &self,
        ctx: &WriteContext,
        settings: AccessPolicySettings,
    ) -> Result<AccessPolicySettings, StoreError> {
        settings.validate()?;
        let mut w = self.write(ctx).await?;
        for user in &settings.emergency_accounts {
            let exists = w
                .fetch_optional(
                    query("SELECT 1 AS one FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL")
                        .bind(ctx.tenant_id)
                        .bind(*user),
                )
                .await?;
            if exists.is_none() {
                return Err(ValidationError::new(
                    "emergency_accounts",
                    format!("there is no user {user} in this tenant"),
                )
                .into());
            }
        }
        for policy in policies_in(&mut w).await? {
            if policy.asks_for_terms() && settings.terms_of_use.is_none() {
                return Err(StoreError::conflict(
                    "terms_of_use",
                    format!(
                        "the policy {:?} asks for the terms of use: change it before removing them",
                        policy.name
                    ),
                ));
            }
            if let Some(why) = policy.locks_out(&settings.emergency_accounts) {
                return Err(StoreError::conflict(
                    "emergency_accounts",
                    format!(
                        "the policy {:?} would then lock everyone out: {why}",
                        policy.name
                    ),
                ));
            }
        }
        w.execute(
            query(
                "INSERT INTO access_policy_settings (tenant_id, document, version, updated_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET document = excluded.document, \
                 version = access_policy_settings.version + 1, updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant_id)
            .bind(to_json(&settings)?)
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "access_policy_settings.update",
            "access_policy_settings",
            ctx.tenant_id,
            "update",
            json!(settings),
        );
        w.commit().await?;
        Ok(settings)
    }

    /// Everything a node needs to evaluate the tenant's conditional access.
    pub async fn conditional_access(
        &self,
        tenant_id: TenantId,
    ) -> Result<ConditionalAccess, StoreError> {
        Ok(ConditionalAccess {
            policies: self
                .access_policies(tenant_id)
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
            locations: self
                .named_locations(tenant_id)
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
            settings: self.access_policy_settings(tenant_id).await?,
        })
    }
}

async fn documents_in<T: Document>(w: &mut Write) -> Result<Vec<T>, StoreError> {
    let tenant = w.ctx.tenant_id;
    w.fetch_all(
        assembled_query(format!(
            "SELECT document FROM {} WHERE tenant_id = $1",
            T::TABLE
        ))
        .bind(tenant),
    )
    .await?
    .iter()
    .map(|row| from_json(row, "document"))
    .collect()
}

async fn policies_in(w: &mut Write) -> Result<Vec<AccessPolicy>, StoreError> {
    documents_in(w).await
}

async fn locations_in(w: &mut Write) -> Result<Vec<NamedLocation>, StoreError> {
    documents_in(w).await
}

pub(crate) async fn settings_in(w: &mut Write) -> Result<AccessPolicySettings, StoreError> {
    let tenant = w.ctx.tenant_id;
    let row = w
        .fetch_optional(
            query("SELECT document FROM access_policy_settings WHERE tenant_id = $1").bind(tenant),
        )
        .await?;
    row.map_or(Ok(AccessPolicySettings::default()), |row| {
        from_json(&row, "document")
    })
}

/// Inserts `value`, or updates it from `expected_version`, and records the change.
async fn save<T: Document>(
    w: &mut Write,
    value: &T,
    expected_version: Option<i64>,
) -> Result<Versioned<T>, StoreError> {
    let name = parse_name("name", value.name())?;
    let document = to_json(value)?;
    let (tenant, now) = (w.ctx.tenant_id, w.ctx.now);
    let taken = |e: StoreError| e.on_unique(&[(T::TABLE, "name", T::NAME_TAKEN)]);
    let with_state = |q: crate::db::Query| match value.state() {
        Some(state) => q.bind(state),
        None => q,
    };
    let row = match expected_version {
        None => {
            let (column, placeholder) = if value.state().is_some() {
                ("state, ", "$7, ")
            } else {
                ("", "")
            };
            let insert = assembled_query(format!(
                "INSERT INTO {} (id, tenant_id, name, name_key, {column}document, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, {placeholder}$5, 1, $6, $6) RETURNING document, version, created_at, updated_at",
                T::TABLE,
            ))
            .bind(value.id())
            .bind(tenant)
            .bind(name.display)
            .bind(name.key)
            .bind(document)
            .bind(now);
            w.fetch_optional(with_state(insert)).await.map_err(taken)?
        }
        Some(version) => {
            let set_state = if value.state().is_some() {
                ", state = $8"
            } else {
                ""
            };
            let update = assembled_query(format!(
                "UPDATE {} SET name = $3, name_key = $4, document = $5, updated_at = $6, version = version + 1{set_state} \
                 WHERE tenant_id = $2 AND id = $1 AND version = $7 RETURNING document, version, created_at, updated_at",
                T::TABLE,
            ))
            .bind(value.id())
            .bind(tenant)
            .bind(name.display)
            .bind(name.key)
            .bind(document)
            .bind(now)
            .bind(version);
            w.fetch_optional(with_state(update)).await.map_err(taken)?
        }
    };
    let Some(row) = row else {
        let current = w
            .fetch_optional(
                assembled_query(format!(
                    "SELECT version FROM {} WHERE tenant_id = $1 AND id = $2",
                    T::TABLE
                ))
                .bind(tenant)
                .bind(value.id()),
            )
            .await?;
        return Err(match current {
            Some(row) => StoreError::VersionMismatch {
                current_version: row.int("version")?,
            },
            None => StoreError::NotFound,
        });
    };
    let saved = stored(&row)?;
    let (action, op) = if expected_version.is_none() {
        ("create", "create")
    } else {
        ("update", "update")
    };
    w.record(
        &format!("{}.{action}", T::KIND),
        T::KIND,
        value.id(),
        op,
        json!(value),
    );
    Ok(saved)
}
