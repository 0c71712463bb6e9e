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
pub enum BrandingCommand {
    /// Print the colour and the logo's type and address.
    Get,
    /// Change the colour or the logo; what is not named stays as it is.
    Set {
        /// The colour of buttons and links, `#rrggbb`, dark enough for white text on it.
        #[arg(long, conflicts_with = "default_colour")]
        colour: Option<String>,
        /// Go back to the default colour.
        #[arg(long)]
        default_colour: bool,
        /// A PNG, JPEG or WebP file of at most 100 KiB.
        #[arg(long, value_name = "FILE", conflicts_with = "no_logo")]
        logo: Option<std::path::PathBuf>,
        /// Remove the logo.
        #[arg(long)]
        no_logo: bool,
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

pub async fn branding(api: &Api, command: BrandingCommand) -> anyhow::Result<Value> {
    use anyhow::Context as _;
    use base64::Engine as _;
    match command {
        BrandingCommand::Get => api.get("/v1/branding", NO_QUERY).await,
        BrandingCommand::Set {
            colour,
            default_colour,
            logo,
            no_logo,
        } => {
            let current = api.get("/v1/branding", NO_QUERY).await?;
            let colour = match (colour, default_colour) {
                (Some(colour), _) => Some(colour),
                (None, true) => None,
                (None, false) => current["colour"].as_str().map(String::from),
            };
            let logo = match (logo, no_logo) {
                (Some(file), _) => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("cannot read the logo {}", file.display()))?;
                    // The server checks the bytes; the declared type only has to agree.
                    let media_type = match bytes.get(..4) {
                        Some([0x89, b'P', b'N', b'G']) => "image/png",
                        Some([0xff, 0xd8, 0xff, _]) => "image/jpeg",
                        _ => "image/webp",
                    };
                    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    Some(Some(format!("data:{media_type};base64,{data}")))
                }
                (None, true) => Some(None),
                (None, false) => None,
            };
            let body = portcullis_api::tenants::SetBranding { colour, logo };
            api.put("/v1/branding", &body, None).await
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
