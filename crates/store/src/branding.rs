//! A tenant's branding: its colour and logo.

use serde_json::json;

use portcullis_core::TenantId;
use portcullis_core::branding::{Branding, Colour, Logo, LogoType};

use crate::db::query;
use crate::write::WriteContext;
use crate::{Store, StoreError};

/// What a change does to the logo.
#[derive(Debug, Clone)]
pub enum LogoChange {
    Keep,
    Remove,
    Replace(Logo),
}

impl Store {
    /// The tenant's branding; none set reads as the defaults.
    pub async fn branding(&self, tenant_id: TenantId) -> Result<Branding, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT colour, logo_type, logo_digest FROM tenant_branding WHERE tenant_id = $1")
                    .bind(tenant_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Branding::default());
        };
        let colour = row
            .opt_text("colour")?
            .map(|text| {
                Colour::parse("colour", &text)
                    .map_err(|_| StoreError::Corrupt(format!("column colour: {text:?}")))
            })
            .transpose()?;
        let logo = match (row.opt_text("logo_type")?, row.opt_text("logo_digest")?) {
            (Some(kind), Some(digest)) => Some((
                LogoType::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("column logo_type: {kind:?}")))?,
                digest,
            )),
            _ => None,
        };
        Ok(Branding { colour, logo })
    }

    /// The tenant's logo image and the digest it was stored with, if it has one.
    pub async fn branding_logo(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<(Logo, String)>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT logo_type, logo, logo_digest FROM tenant_branding \
                     WHERE tenant_id = $1 AND logo IS NOT NULL",
                )
                .bind(tenant_id),
            )
            .await?;
        row.map(|row| {
            let kind = row.text("logo_type")?;
            let logo = Logo {
                media_type: LogoType::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("column logo_type: {kind:?}")))?,
                bytes: row.bytes("logo")?,
            };
            Ok((logo, row.text("logo_digest")?))
        })
        .transpose()
    }

    /// Sets the colour (none: the default) and changes the logo, in one audited change.
    pub async fn set_branding(
        &self,
        ctx: &WriteContext,
        colour: Option<Colour>,
        logo: LogoChange,
    ) -> Result<Branding, StoreError> {
        let mut w = self.write(ctx).await?;
        w.execute(
            query(
                "INSERT INTO tenant_branding (tenant_id, colour, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET colour = excluded.colour, updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant_id)
            .bind(colour.map(|c| c.to_string()))
            .bind(ctx.now),
        )
        .await?;
        let logo_fact = match &logo {
            LogoChange::Keep => json!("unchanged"),
            LogoChange::Remove => {
                w.execute(
                    query(
                        "UPDATE tenant_branding SET logo = NULL, logo_type = NULL, logo_digest = NULL \
                         WHERE tenant_id = $1",
                    )
                    .bind(ctx.tenant_id),
                )
                .await?;
                json!(null)
            }
            LogoChange::Replace(image) => {
                let digest = image.digest();
                w.execute(
                    query(
                        "UPDATE tenant_branding SET logo = $2, logo_type = $3, logo_digest = $4 \
                         WHERE tenant_id = $1",
                    )
                    .bind(ctx.tenant_id)
                    .bind(image.bytes.clone())
                    .bind(image.media_type.as_str())
                    .bind(digest.as_str()),
                )
                .await?;
                json!({ "type": image.media_type.as_str(), "bytes": image.bytes.len(), "digest": digest })
            }
        };
        w.record(
            "tenant.branding.update",
            "tenant",
            ctx.tenant_id,
            "update",
            json!({ "colour": colour.map(|c| c.to_string()), "logo": logo_fact }),
        );
        w.commit().await?;
        self.branding(ctx.tenant_id).await
    }
}
