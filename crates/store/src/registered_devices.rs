//! Registered devices: registration (capped per user, checked inside the tenant's write), the
//! lookup by key thumbprint a sign-in proof needs, compliance marks and removal, each audited.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::conditional::Platform;
use portcullis_core::device_key::{MAX_DEVICES_PER_USER, RegisteredDevice};
use portcullis_core::{RegisteredDeviceId, TenantId, UserId};

use crate::db::{Row, query};
use crate::{Store, StoreError, WriteContext};

/// A device to register.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub user_id: UserId,
    pub name: String,
    pub platform: Platform,
    /// The public JWK, as JSON.
    pub public_key: String,
    pub key_thumbprint: String,
}

const COLUMNS: &str = "id, user_id, name, platform, key_thumbprint, compliant, compliance_note, \
     registered_at, last_seen_at";

fn device(row: &Row) -> Result<RegisteredDevice, StoreError> {
    Ok(RegisteredDevice {
        id: row.parse("id")?,
        user_id: row.parse("user_id")?,
        name: row.text("name")?,
        platform: row.named("platform", Platform::parse)?,
        compliant: row.boolean("compliant")?,
        compliance_note: row.opt_text("compliance_note")?,
        key_thumbprint: row.text("key_thumbprint")?,
        registered_at: row.time("registered_at")?,
        last_seen_at: row.opt_time("last_seen_at")?,
    })
}

impl Store {
    /// Registers a device for its user: refused when the key is registered already (for anyone
    /// in the tenant) or the user has [`MAX_DEVICES_PER_USER`]. Both are checked in the
    /// tenant's write, so simultaneous registrations cannot pass the cap together.
    pub async fn register_device(
        &self,
        ctx: &WriteContext,
        new: NewDevice,
    ) -> Result<RegisteredDevice, StoreError> {
        let mut w = self.write(ctx).await?;
        let user = w
            .fetch_optional(
                query("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(new.user_id),
            )
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound);
        }
        let held = w
            .fetch_one(
                query("SELECT COUNT(*) AS n FROM registered_devices WHERE tenant_id = $1 AND user_id = $2")
                    .bind(ctx.tenant_id)
                    .bind(new.user_id),
            )
            .await?
            .int("n")?;
        if held >= MAX_DEVICES_PER_USER as i64 {
            return Err(StoreError::Conflict {
                field: None,
                message: format!(
                    "the user has {MAX_DEVICES_PER_USER} devices, the most one may register: remove one first"
                ),
            });
        }
        let taken = w
            .fetch_optional(
                query("SELECT id FROM registered_devices WHERE tenant_id = $1 AND key_thumbprint = $2")
                    .bind(ctx.tenant_id)
                    .bind(new.key_thumbprint.clone()),
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict {
                field: Some("public_key".into()),
                message: "this key is registered already: each device registers its own key".into(),
            });
        }
        let id = RegisteredDeviceId::generate();
        w.execute(
            query(
                "INSERT INTO registered_devices (id, tenant_id, user_id, name, platform, public_key, \
                 key_thumbprint, compliant, compliance_note, registered_at, last_seen_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, NULL, $8, NULL, $8)",
            )
            .bind(id)
            .bind(ctx.tenant_id)
            .bind(new.user_id)
            .bind(new.name.clone())
            .bind(new.platform.as_str())
            .bind(new.public_key)
            .bind(new.key_thumbprint.clone())
            .bind(ctx.now),
        )
        .await?;
        w.record(
            "device.register",
            "device",
            id,
            "create",
            json!({"user_id": new.user_id, "name": new.name, "platform": new.platform, "key_thumbprint": new.key_thumbprint}),
        );
        w.commit().await?;
        self.registered_device(ctx.tenant_id, id).await
    }

    pub async fn registered_device(
        &self,
        tenant_id: TenantId,
        id: RegisteredDeviceId,
    ) -> Result<RegisteredDevice, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM registered_devices WHERE tenant_id = $1 AND id = $2");
        let row = self
            .pools
            .fetch_optional(crate::db::assembled_query(sql).bind(tenant_id).bind(id))
            .await?
            .ok_or(StoreError::NotFound)?;
        device(&row)
    }

    /// The tenant's devices, or one user's, oldest first.
    pub async fn registered_devices(
        &self,
        tenant_id: TenantId,
        user_id: Option<UserId>,
    ) -> Result<Vec<RegisteredDevice>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registered_devices WHERE tenant_id = $1 \
             AND ($2 IS NULL OR user_id = $2) ORDER BY id LIMIT 5000"
        );
        let rows = self
            .pools
            .fetch_all(
                crate::db::assembled_query(sql)
                    .bind(tenant_id)
                    .bind(user_id),
            )
            .await?;
        rows.iter().map(device).collect()
    }

    /// The device whose key has this thumbprint.
    pub async fn device_by_key(
        &self,
        tenant_id: TenantId,
        thumbprint: &str,
    ) -> Result<Option<RegisteredDevice>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registered_devices WHERE tenant_id = $1 AND key_thumbprint = $2"
        );
        let row = self
            .pools
            .fetch_optional(
                crate::db::assembled_query(sql)
                    .bind(tenant_id)
                    .bind(thumbprint),
            )
            .await?;
        row.as_ref().map(device).transpose()
    }

    /// Notes a proven sign-in from the device (not audited: the sign-in is).
    pub async fn device_seen(
        &self,
        tenant_id: TenantId,
        id: RegisteredDeviceId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pools
            .execute(
                query("UPDATE registered_devices SET last_seen_at = $1 WHERE tenant_id = $2 AND id = $3")
                    .bind(now)
                    .bind(tenant_id)
                    .bind(id),
            )
            .await?;
        Ok(())
    }

    /// Marks a device compliant or not, with why.
    pub async fn set_device_compliance(
        &self,
        ctx: &WriteContext,
        id: RegisteredDeviceId,
        compliant: bool,
        note: Option<String>,
    ) -> Result<RegisteredDevice, StoreError> {
        let mut w = self.write(ctx).await?;
        let changed = w
            .execute(
                query(
                    "UPDATE registered_devices SET compliant = $1, compliance_note = $2, updated_at = $3 \
                     WHERE tenant_id = $4 AND id = $5",
                )
                .bind(compliant)
                .bind(note.clone())
                .bind(ctx.now)
                .bind(ctx.tenant_id)
                .bind(id),
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        w.record(
            "device.compliance",
            "device",
            id,
            "update",
            json!({"compliant": compliant, "note": note}),
        );
        w.commit().await?;
        self.registered_device(ctx.tenant_id, id).await
    }

    /// Removes a device: its key proves nothing any more.
    pub async fn remove_device(
        &self,
        ctx: &WriteContext,
        id: RegisteredDeviceId,
    ) -> Result<(), StoreError> {
        let mut w = self.write(ctx).await?;
        let removed = w
            .execute(
                query("DELETE FROM registered_devices WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(id),
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        w.record("device.remove", "device", id, "delete", json!({}));
        w.commit().await?;
        Ok(())
    }
}
