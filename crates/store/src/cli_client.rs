//! Each tenant's built-in OAuth client for the `portcullis` command line: a public client with
//! the loopback authorization-code flow (RFC 8252), the device grant and refresh tokens, whose
//! tokens are for the admin API. It is made on first use and kept pointing at the admin API's
//! current resource identifier (the public URL may change); the tenant remembers which service principal it is, so a principal someone else
//! named `portcullis-cli` is never taken for it.

use serde_json::json;

use portcullis_core::ServicePrincipalId;
use portcullis_core::names::parse_name;
use portcullis_core::oauth::{ClientSettings, ClientType, GrantType};

use crate::db::query;
use crate::principals::insert_service_principal;
use crate::{Store, StoreError, WriteContext};

/// The settings of the command line's client for an admin API at `resource`.
fn cli_client_settings(resource: &str) -> ClientSettings {
    ClientSettings {
        client_type: ClientType::Public,
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::DeviceCode,
            GrantType::RefreshToken,
        ],
        // The browser on this machine hands the code back to the command line listening on a
        // port of its own (RFC 8252 §7.3: any port on a loopback IP literal).
        redirect_uris: vec![
            "http://127.0.0.1/callback".to_owned(),
            "http://[::1]/callback".to_owned(),
        ],
        scopes: Vec::new(),
        resources: vec![resource.to_owned()],
        access_token_seconds: 300,
        refresh_token_seconds: 12 * 3600,
        // An administrator signs in again at least daily, whatever the session allows.
        refresh_chain_seconds: 86_400,
        require_consent: false,
        require_pushed_authorization_requests: false,
        signing_alg: portcullis_core::jose::SigningAlgorithm::ES256,
        groups_claim: false,
        roles_claim: false,
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        jwks: Vec::new(),
    }
}

impl Store {
    /// The tenant's command-line client, made (or repointed at `resource`) if needed, in one
    /// write transaction under the tenant's write lock, so concurrent first uses make one.
    pub async fn cli_client(
        &self,
        ctx: &WriteContext,
        resource: &str,
    ) -> Result<ServicePrincipalId, StoreError> {
        let wanted = cli_client_settings(resource);
        let mut w = self.write(ctx).await?;
        let known = w
            .fetch_optional(
                query(
                    "SELECT c.service_principal_id, c.settings FROM tenants t \
                     JOIN oauth_clients c ON c.service_principal_id = t.cli_client_id \
                     WHERE t.id = $1",
                )
                .bind(ctx.tenant_id),
            )
            .await?;
        if let Some(row) = known {
            let id: ServicePrincipalId = row.parse("service_principal_id")?;
            let settings: ClientSettings = serde_json::from_str(&row.text("settings")?)
                .map_err(|e| StoreError::Corrupt(format!("cli client settings: {e}")))?;
            let current = (
                &settings.resources,
                &settings.grant_types,
                &settings.redirect_uris,
            );
            if current
                == (
                    &wanted.resources,
                    &wanted.grant_types,
                    &wanted.redirect_uris,
                )
            {
                return Ok(id);
            }
            // Repointed at the admin API's resource, and given what this version signs in with;
            // the lifetimes an administrator chose stay.
            let repointed = ClientSettings {
                resources: wanted.resources,
                grant_types: wanted.grant_types,
                redirect_uris: wanted.redirect_uris,
                ..settings
            };
            w.execute(
                query("UPDATE oauth_clients SET settings = $1, updated_at = $2 WHERE service_principal_id = $3")
                    .bind(json!(repointed).to_string())
                    .bind(ctx.now)
                    .bind(id),
            )
            .await?;
            w.record(
                "service_principal.oauth_client.update",
                "service_principal",
                id,
                "update",
                json!(repointed),
            );
            w.commit().await?;
            return Ok(id);
        }
        // A name nobody in the tenant uses yet: `portcullis-cli`, else with a number.
        let mut chosen = None;
        for n in 1..=20 {
            let raw = if n == 1 {
                "portcullis-cli".to_owned()
            } else {
                format!("portcullis-cli-{n}")
            };
            let name = parse_name("name", &raw)?;
            let taken = w
                .fetch_optional(
                    query(
                        "SELECT id FROM service_principals WHERE tenant_id = $1 AND name_key = $2",
                    )
                    .bind(ctx.tenant_id)
                    .bind(name.key.as_str()),
                )
                .await?;
            if taken.is_none() {
                chosen = Some(name);
                break;
            }
        }
        let Some(name) = chosen else {
            return Err(StoreError::Conflict {
                field: Some("name".into()),
                message: "no free name for the command line's client (portcullis-cli … portcullis-cli-20 are taken)".into(),
            });
        };
        let description = Some(
            "The portcullis command line (built in): people sign in with `portcullis login`."
                .to_owned(),
        );
        let sp = insert_service_principal(&mut w, ctx.tenant_id, &name, description, None).await?;
        w.execute(
            query(
                "INSERT INTO oauth_clients (service_principal_id, tenant_id, settings, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(sp.id)
            .bind(ctx.tenant_id)
            .bind(json!(wanted).to_string())
            .bind(ctx.now),
        )
        .await?;
        w.execute(
            query("UPDATE tenants SET cli_client_id = $1 WHERE id = $2")
                .bind(sp.id)
                .bind(ctx.tenant_id),
        )
        .await?;
        w.record(
            "service_principal.oauth_client.update",
            "service_principal",
            sp.id,
            "update",
            json!(wanted),
        );
        w.commit().await?;
        Ok(sp.id)
    }
}
