//! Upgrades of stored data that need the server's code, run once each after the schema
//! migrations and recorded in `data_upgrades`. Several processes may start at once: the
//! upgrades run in one write transaction under a lock, so the first does them and records it.

use portcullis_core::authz::Action;
use portcullis_core::resources::RolePermission;

use crate::access::{from_json, to_json};
use crate::db::{Tx, assembled_query, query};
use crate::{Store, StoreError};

/// Every name kept unique by a key: (table, displayed column, key column). Tenant and
/// environment names are slugs, their own keys, and need nothing.
const NAME_KEYS: [(&str, &str, &str); 7] = [
    ("business_units", "name", "name_key"),
    ("users", "user_name", "user_name_key"),
    ("users", "email", "email_key"),
    ("groups", "name", "name_key"),
    ("service_principals", "name", "name_key"),
    ("custom_roles", "name", "name_key"),
    ("deny_assignments", "name", "name_key"),
];

/// The advisory-lock key of data upgrades on PostgreSQL ("pcupgrad" in ASCII), apart from the
/// keys tenant writes use only by chance, which would merely make them wait.
const UPGRADE_LOCK: i64 = 0x7063_7570_6772_6164;

/// Name keys made before they included the confusable skeleton.
const SKELETON_KEYS: &str = "name_keys_confusable_skeleton";
/// Portcullis's own actions stored by their bare names (`user.read`) before they were kept
/// apart from applications' as `portcullis:user.read`.
const OWN_ACTION_NAMES: &str = "own_action_names_prefixed";

impl Store {
    pub(crate) async fn upgrade_data(&self) -> Result<(), StoreError> {
        let mut tx = self.pools.begin().await?;
        if tx.is_postgres() {
            // Two nodes starting at once upgrade one after the other; the second finds it done.
            // (SQLite's single writer and `BEGIN IMMEDIATE` already do that.)
            tx.execute(query("SELECT pg_advisory_xact_lock($1)").bind(UPGRADE_LOCK))
                .await?;
        }
        if !done(&mut tx, SKELETON_KEYS).await? {
            let kept = rekey_names(&mut tx).await?;
            for (table, column, value) in &kept {
                tracing::warn!(
                    table,
                    column,
                    name = %value,
                    "a name looks like another already in its tenant; it keeps its old key until renamed"
                );
            }
            record_done(&mut tx, SKELETON_KEYS).await?;
        }
        if !done(&mut tx, OWN_ACTION_NAMES).await? {
            prefix_own_actions(&mut tx).await?;
            record_done(&mut tx, OWN_ACTION_NAMES).await?;
        }
        tx.commit().await
    }
}

async fn done(tx: &mut Tx, upgrade: &str) -> Result<bool, StoreError> {
    Ok(tx
        .fetch_optional(query("SELECT name FROM data_upgrades WHERE name = $1").bind(upgrade))
        .await?
        .is_some())
}

async fn record_done(tx: &mut Tx, upgrade: &str) -> Result<(), StoreError> {
    tx.execute(
        query("INSERT INTO data_upgrades (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(upgrade)
            .bind(time::OffsetDateTime::now_utc()),
    )
    .await?;
    Ok(())
}

/// Gives Portcullis's own actions in custom roles and deny assignments their prefixed names.
/// Until then no tenant could register a type of such a name, so every bare own name stored
/// meant Portcullis's own action.
async fn prefix_own_actions(tx: &mut Tx) -> Result<(), StoreError> {
    let prefixed = |name: &str| match name.parse::<Action>() {
        Ok(own) => own.qualified(),
        Err(()) => name.to_owned(),
    };
    for row in tx
        .fetch_all(query("SELECT id, permissions FROM custom_roles"))
        .await?
    {
        let mut permissions: Vec<RolePermission> = from_json(&row, "permissions")?;
        for permission in &mut permissions {
            permission.action = prefixed(&permission.action);
        }
        tx.execute(
            query("UPDATE custom_roles SET permissions = $1 WHERE id = $2")
                .bind(to_json(&permissions)?)
                .bind(row.text("id")?),
        )
        .await?;
    }
    for row in tx
        .fetch_all(query("SELECT id, actions FROM deny_assignments"))
        .await?
    {
        let actions: Vec<String> = from_json(&row, "actions")?;
        let actions: Vec<String> = actions.iter().map(|a| prefixed(a)).collect();
        tx.execute(
            query("UPDATE deny_assignments SET actions = $1 WHERE id = $2")
                .bind(to_json(&actions)?)
                .bind(row.text("id")?),
        )
        .await?;
    }
    Ok(())
}

/// Recomputes every name key with today's `name_key`. A name whose new key another name of its
/// tenant already holds (two look-alikes made before look-alikes were refused) keeps its old
/// key; those are returned so they can be reported.
async fn rekey_names(tx: &mut Tx) -> Result<Vec<(&'static str, &'static str, String)>, StoreError> {
    let mut kept = Vec::new();
    for (table, column, key_column) in NAME_KEYS {
        let rows = tx
            .fetch_all(assembled_query(format!(
                "SELECT id, tenant_id, {column} AS display, {key_column} AS old_key FROM {table} \
                 WHERE {column} IS NOT NULL ORDER BY id"
            )))
            .await?;
        for row in rows {
            let display = row.text("display")?;
            let new_key = portcullis_core::names::name_key(&display);
            if new_key == row.text("old_key")? {
                continue;
            }
            let (id, tenant) = (row.text("id")?, row.text("tenant_id")?);
            let taken = tx
                .fetch_optional(
                    assembled_query(format!(
                        "SELECT id FROM {table} WHERE tenant_id = $1 AND {key_column} = $2 AND id <> $3"
                    ))
                    .bind(tenant.as_str())
                    .bind(new_key.as_str())
                    .bind(id.as_str()),
                )
                .await?
                .is_some();
            if taken {
                kept.push((table, column, display));
                continue;
            }
            tx.execute(
                assembled_query(format!(
                    "UPDATE {table} SET {key_column} = $1 WHERE id = $2"
                ))
                .bind(new_key)
                .bind(id),
            )
            .await?;
        }
    }
    Ok(kept)
}
