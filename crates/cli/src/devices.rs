//! Registered devices from the command line: register this person's device (its public key
//! from a file), list them, mark one compliant or not, remove one.

use clap::Subcommand;
use serde_json::Value;

use portcullis_api::devices::{DeviceCompliance, DeviceQuery, RegisterDevice};

use crate::api::{Api, NO_QUERY};
use crate::args::{Document, typed};
use crate::names::{Kind, resolve};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// The tenant's registered devices, or one user's.
    List {
        /// Only this user's (name, e-mail or id).
        #[arg(long)]
        user: Option<String>,
    },
    /// Show one device.
    Get { id: String },
    /// Register a device for yourself (signed in with `portcullis login`): the public half of
    /// the P-256 key pair the device keeps, as a JWK in a file.
    Register {
        /// What to call it.
        #[arg(long)]
        name: String,
        /// android, ios, windows, macos, linux or other.
        #[arg(long)]
        platform: String,
        #[command(flatten)]
        public_key: Document,
    },
    /// Mark a device compliant, or not (`--compliant false`), with why.
    Compliance {
        id: String,
        #[arg(long, action = clap::ArgAction::Set)]
        compliant: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove a device: its key proves nothing any more.
    Remove { id: String },
}

pub async fn run(api: &Api, command: DeviceCommand) -> anyhow::Result<Value> {
    match command {
        DeviceCommand::List { user } => {
            let user_id = match user {
                Some(name) => Some(typed("user", resolve(api, Kind::User, &name).await?)?),
                None => None,
            };
            api.get("/v1/devices", &DeviceQuery { user_id }).await
        }
        DeviceCommand::Get { id } => api.get(&format!("/v1/devices/{id}"), NO_QUERY).await,
        DeviceCommand::Register {
            name,
            platform,
            public_key,
        } => {
            let body = RegisterDevice {
                name,
                platform: typed("platform", platform)?,
                public_key: public_key.read()?,
            };
            api.post("/v1/me/devices", &body).await
        }
        DeviceCommand::Compliance {
            id,
            compliant,
            note,
        } => {
            let body = DeviceCompliance { compliant, note };
            api.put(&format!("/v1/devices/{id}/compliance"), &body, None)
                .await
        }
        DeviceCommand::Remove { id } => api.delete(&format!("/v1/devices/{id}"), None).await,
    }
}
