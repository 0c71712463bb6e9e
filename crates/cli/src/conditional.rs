//! Conditional access from the command line: named locations and policies (documents read
//! from files and checked before they are sent), templates, emergency access accounts, and
//! the what-if tool.

use clap::Subcommand;
use serde_json::Value;

use portcullis_api::conditional::{
    AccessPolicy, AccessPolicySettings, FromTemplate, NamedLocation, Proofs, WhatIf,
};
use portcullis_api::model::Strength;

use crate::api::{Api, NO_QUERY};
use crate::args::{Document, instant, optional, typed};
use crate::names::{Kind, resolve};
use crate::settings::{SettingsCommand, settings};

/// Named locations and policies share these commands.
#[derive(Subcommand)]
pub enum DocumentCommand {
    /// List them.
    List,
    /// Print one (with `--output json`, ready to edit and `set`).
    Get {
        /// Its name or id.
        name: String,
    },
    /// Create one from a file (its `id` is chosen by the server).
    Create {
        #[command(flatten)]
        document: Document,
    },
    /// Replace one with the document in a file.
    Set {
        /// Its name or id.
        name: String,
        #[command(flatten)]
        document: Document,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete one.
    Delete {
        /// Its name or id.
        name: String,
        /// Only delete it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AccessPolicyCommand {
    #[command(flatten)]
    Document(DocumentCommand),
    /// List the templates for the common baselines.
    Templates,
    /// Create a report-only policy from a template.
    FromTemplate {
        /// The template's name, such as mfa-for-administrators.
        template: String,
        /// The named location the template needs (name or id).
        #[arg(long)]
        location: Option<String>,
    },
    /// Which policies would apply to a sign-in or token request, which not and why, and what
    /// they would decide.
    WhatIf(Box<WhatIfArgs>),
    /// The tenant's emergency access ("break-glass") accounts, as a document of user ids.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

#[derive(clap::Args)]
pub struct WhatIfArgs {
    /// The user signing in (name, e-mail or id).
    #[arg(
        long,
        conflicts_with = "service_principal",
        required_unless_present = "service_principal"
    )]
    user: Option<String>,
    /// The workload asking for a token (name or id).
    #[arg(long)]
    service_principal: Option<String>,
    /// `account` (the default), `admin_api`, or an OAuth client (service principal name or id).
    #[arg(long)]
    application: Option<String>,
    #[arg(long)]
    address: Option<String>,
    /// Two-letter country code, instead of looking the address up.
    #[arg(long)]
    country: Option<String>,
    /// android, ios, windows, macos, linux or other.
    #[arg(long)]
    platform: Option<String>,
    /// unregistered, registered or compliant.
    #[arg(long)]
    device: Option<String>,
    /// browser, native, workload or other.
    #[arg(long)]
    client_type: Option<String>,
    /// none, low, medium or high.
    #[arg(long)]
    sign_in_risk: Option<String>,
    /// none, low, medium or high.
    #[arg(long)]
    user_risk: Option<String>,
    /// When (RFC 3339); now by default.
    #[arg(long)]
    at: Option<String>,
    /// What the sign-in proved: password, mfa or phishing_resistant.
    #[arg(long)]
    strength: Option<String>,
}

async fn documents<T: serde::de::DeserializeOwned + serde::Serialize>(
    api: &Api,
    kind: Kind,
    path: &str,
    command: DocumentCommand,
) -> anyhow::Result<Value> {
    match command {
        DocumentCommand::List => api.get(path, NO_QUERY).await,
        DocumentCommand::Get { name } => {
            let id = resolve(api, kind, &name).await?;
            api.get(&format!("{path}/{id}"), NO_QUERY).await
        }
        DocumentCommand::Create { document } => {
            let body: T = document.read()?;
            api.post(path, &body).await
        }
        DocumentCommand::Set {
            name,
            document,
            if_match,
        } => {
            let body: T = document.read()?;
            let id = resolve(api, kind, &name).await?;
            api.put(&format!("{path}/{id}"), &body, if_match.as_deref())
                .await
        }
        DocumentCommand::Delete { name, if_match } => {
            let id = resolve(api, kind, &name).await?;
            api.delete(&format!("{path}/{id}"), if_match.as_deref())
                .await
        }
    }
}

pub async fn location(api: &Api, command: DocumentCommand) -> anyhow::Result<Value> {
    documents::<NamedLocation>(api, Kind::NamedLocation, "/v1/named-locations", command).await
}

pub async fn access_policy(api: &Api, command: AccessPolicyCommand) -> anyhow::Result<Value> {
    match command {
        AccessPolicyCommand::Document(command) => {
            documents::<AccessPolicy>(api, Kind::AccessPolicy, "/v1/access-policies", command).await
        }
        AccessPolicyCommand::Templates => api.get("/v1/access-policy-templates", NO_QUERY).await,
        AccessPolicyCommand::FromTemplate { template, location } => {
            let location = match location {
                Some(name) => Some(typed(
                    "location",
                    resolve(api, Kind::NamedLocation, &name).await?,
                )?),
                None => None,
            };
            api.post(
                &format!("/v1/access-policy-templates/{template}"),
                &FromTemplate { location },
            )
            .await
        }
        AccessPolicyCommand::WhatIf(args) => what_if(api, *args).await,
        AccessPolicyCommand::Settings { command } => {
            settings::<AccessPolicySettings>(api, "/v1/access-policy-settings", command).await
        }
    }
}

async fn what_if(api: &Api, args: WhatIfArgs) -> anyhow::Result<Value> {
    let user = match args.user {
        Some(name) => Some(typed("user", resolve(api, Kind::User, &name).await?)?),
        None => None,
    };
    let service_principal = match args.service_principal {
        Some(name) => Some(typed(
            "service-principal",
            resolve(api, Kind::ServicePrincipal, &name).await?,
        )?),
        None => None,
    };
    let application = match args.application {
        Some(app) if app == "account" || app == "admin_api" => Some(app),
        Some(client) => Some(resolve(api, Kind::ServicePrincipal, &client).await?),
        None => None,
    };
    let strength: Option<Strength> = optional("strength", args.strength)?;
    let body = WhatIf {
        user,
        service_principal,
        application,
        address: args
            .address
            .map(|a| a.parse())
            .transpose()
            .map_err(|_| anyhow::anyhow!("--address: not an IP address"))?,
        country: optional("country", args.country)?,
        platform: optional("platform", args.platform)?,
        device: optional("device", args.device)?,
        client_type: optional("client-type", args.client_type)?,
        sign_in_risk: optional("sign-in-risk", args.sign_in_risk)?,
        user_risk: optional("user-risk", args.user_risk)?,
        at: instant("at", args.at)?,
        proofs: strength.map(|strength| Proofs {
            strength: Some(strength),
            ..Proofs::default()
        }),
    };
    api.post("/v1/access-policies/what-if", &body).await
}
