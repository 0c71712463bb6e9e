//! Tenant settings, signing keys and OAuth client registrations: documents read with `get`,
//! edited, and written back whole with `set --file`.

use clap::Subcommand;
use portcullis_api::model::{AccessSettings, AdministratorPolicy, ClientSettings, SignInSettings};
use portcullis_api::signing_keys::Rotation;
use serde_json::Value;

use crate::api::{Api, NO_QUERY};
use crate::args::{Document, typed};
use crate::names::{Kind, resolve};

/// Reading and replacing one of the tenant's settings documents.
#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Print the document (with `--output json`, ready to edit and `set`).
    Get,
    /// Replace the document with the one in a file. Fields are checked before anything is sent.
    Set {
        #[command(flatten)]
        document: Document,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SigningKeyCommand {
    /// List the tenant's token-signing keys: current, published ahead, retired and revoked.
    List,
    /// Start signing with a new key. The old one stays published until the tokens it signed
    /// have expired; `--emergency` withdraws it at once (every token it signed stops working).
    Rotate {
        /// ES256 (default), EdDSA or RS256.
        #[arg(long)]
        alg: Option<String>,
        /// The old key was compromised: withdraw it now.
        #[arg(long)]
        emergency: bool,
        /// Publish the new key this long before it signs, so that verifiers fetch it first.
        #[arg(long)]
        publish_seconds: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum OAuthClientCommand {
    /// Print a service principal's OAuth client registration.
    Get {
        /// The service principal: name or id.
        service_principal: String,
    },
    /// Register the service principal as an OAuth client, or replace its registration, from a
    /// file (grant types, redirect URIs, scopes, resources, key material, token lifetimes).
    Set {
        /// The service principal: name or id.
        service_principal: String,
        #[command(flatten)]
        document: Document,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

/// Gets or replaces the settings document at `path`, read as `T` before it is sent.
pub async fn settings<T: serde::de::DeserializeOwned + serde::Serialize>(
    api: &Api,
    path: &str,
    command: SettingsCommand,
) -> anyhow::Result<Value> {
    match command {
        SettingsCommand::Get => api.get(path, NO_QUERY).await,
        SettingsCommand::Set { document, if_match } => {
            let body: T = document.read()?;
            api.put(path, &body, if_match.as_deref()).await
        }
    }
}

pub async fn sign_in(api: &Api, command: SettingsCommand) -> anyhow::Result<Value> {
    settings::<SignInSettings>(api, "/v1/sign-in-settings", command).await
}

pub async fn administrator_policy(api: &Api, command: SettingsCommand) -> anyhow::Result<Value> {
    settings::<AdministratorPolicy>(api, "/v1/administrator-policy", command).await
}

pub async fn access(api: &Api, command: SettingsCommand) -> anyhow::Result<Value> {
    settings::<AccessSettings>(api, "/v1/access-settings", command).await
}

pub async fn signing_key(api: &Api, command: SigningKeyCommand) -> anyhow::Result<Value> {
    match command {
        SigningKeyCommand::List => api.get("/v1/signing-keys", NO_QUERY).await,
        SigningKeyCommand::Rotate {
            alg,
            emergency,
            publish_seconds,
        } => {
            let rotation = Rotation {
                alg: alg
                    .map(|a| typed("alg", a))
                    .transpose()?
                    .unwrap_or_default(),
                emergency,
                publish_seconds,
            };
            api.post("/v1/signing-keys/rotate", &rotation).await
        }
    }
}

pub async fn oauth_client(api: &Api, command: OAuthClientCommand) -> anyhow::Result<Value> {
    match command {
        OAuthClientCommand::Get { service_principal } => {
            let id = resolve(api, Kind::ServicePrincipal, &service_principal).await?;
            api.get(
                &format!("/v1/service-principals/{id}/oauth-client"),
                NO_QUERY,
            )
            .await
        }
        OAuthClientCommand::Set {
            service_principal,
            document,
            if_match,
        } => {
            let body: ClientSettings = document.read()?;
            let id = resolve(api, Kind::ServicePrincipal, &service_principal).await?;
            api.put(
                &format!("/v1/service-principals/{id}/oauth-client"),
                &body,
                if_match.as_deref(),
            )
            .await
        }
    }
}
