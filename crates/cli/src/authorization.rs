//! The authorization model beyond built-in roles: resource types and their actions, custom
//! roles, records (the resources an application registers), shares of one record, and deny
//! assignments.

use clap::Subcommand;
use portcullis_api::resources::{
    CloneRoleBody, CustomRoleBody, NewDenyAssignment, NewResourceType, RecordBody, RecordQuery,
    ResourceTypeBody, ShareBody,
};
use serde_json::Value;

use crate::admin::Paging;
use crate::api::{Api, NO_QUERY};
use crate::args::{Document, optional, typed};
use crate::names::{Kind, principal, resolve, resolve_scope};

#[derive(Subcommand)]
pub enum ResourceTypeCommand {
    /// List the tenant's resource types with their actions.
    List,
    /// Show one resource type.
    Get {
        /// The type's name, e.g. `document`.
        name: String,
    },
    /// Define a resource type from a file: `{"name", "description", "actions": [{"name",
    /// "plane": "data" | "control", "public"}]}`.
    Create {
        #[command(flatten)]
        document: Document,
    },
    /// Replace a resource type's description and actions from a file: `{"description",
    /// "actions"}`. Removing an action that a role or share uses is refused.
    Set {
        /// The type's name.
        name: String,
        #[command(flatten)]
        document: Document,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a resource type that no record, role or share uses.
    Delete {
        /// The type's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum CustomRoleCommand {
    /// List the tenant's custom roles.
    List,
    /// Show one custom role.
    Get {
        /// The role's id.
        id: String,
    },
    /// Define a custom role from a file: `{"name", "description", "permissions": [{"action",
    /// "depth": "own" | "business_unit" | "business_unit_tree" | "tenant"}]}`.
    Create {
        #[command(flatten)]
        document: Document,
    },
    /// Start a custom role from a copy of another role's permissions (built-in or custom).
    Clone {
        /// The role to copy: a built-in role's name or a custom role's id.
        role: String,
        /// The new role's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Replace a custom role's name, description and permissions from a file.
    Set {
        /// The role's id.
        id: String,
        #[command(flatten)]
        document: Document,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a custom role that no assignment uses.
    Delete {
        /// The role's id.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum RecordCommand {
    /// List the records of a type in external-id order, a page at a time.
    List {
        /// The resource type, e.g. `document`.
        resource_type: String,
        /// Only records whose id starts with this (case matters).
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a record: its owner, business unit and environment.
    Get {
        /// Its resource type, e.g. `document`.
        resource_type: String,
        /// The application's id for it.
        external_id: String,
    },
    /// Register a record, or move it to a new owner, unit or environment.
    Set {
        /// Its resource type, e.g. `document`.
        resource_type: String,
        /// The application's id for it.
        external_id: String,
        /// Who owns it: `user:<name>`, `group:<name>` or `service_principal:<name>`.
        #[arg(long)]
        owner: String,
        /// The business unit it belongs to (name or id).
        #[arg(long)]
        business_unit: String,
        /// The environment it lives in (name or id).
        #[arg(long)]
        environment: Option<String>,
        /// Only replace it if it is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Forget a record and its shares.
    Delete {
        /// Its resource type.
        resource_type: String,
        /// The application's id for it.
        external_id: String,
    },
}

#[derive(Subcommand)]
pub enum ShareCommand {
    /// List the shares of a record.
    List {
        /// The record's resource type.
        resource_type: String,
        /// The record's id.
        external_id: String,
    },
    /// Share one record with a principal for some of its type's actions.
    Create {
        /// The record's resource type.
        resource_type: String,
        /// The record's id.
        external_id: String,
        /// With whom: `user:<name>`, `group:<name>` or `service_principal:<name>`.
        #[arg(long)]
        principal: String,
        /// An action of the type (`read`); repeat for more.
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
    },
    /// Remove a share.
    Delete {
        /// The share's id.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum DenyAssignmentCommand {
    /// List the tenant's deny assignments.
    List,
    /// Deny actions to principals whatever their roles grant. Refused if it would leave nobody
    /// able to assign roles.
    Create {
        /// A name people recognise.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Who is denied: `user:<name>`, `group:<name>`, `service_principal:<name>`; repeat.
        #[arg(long = "principal", required = true)]
        principals: Vec<String>,
        /// Who is exempt although a group above names them; repeat.
        #[arg(long = "exclude")]
        excluded: Vec<String>,
        /// A denied action (`document.delete`, `role_assignments.write`); repeat.
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
        /// Where: `tenant` (default), `environment/<name or id>` or `business_unit/<id>`.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Remove a deny assignment.
    Delete {
        /// The deny assignment's id.
        id: String,
    },
}

pub async fn resource_type(api: &Api, command: ResourceTypeCommand) -> anyhow::Result<Value> {
    match command {
        ResourceTypeCommand::List => api.get("/v1/resource-types", NO_QUERY).await,
        ResourceTypeCommand::Get { name } => {
            api.get(&format!("/v1/resource-types/{name}"), NO_QUERY)
                .await
        }
        ResourceTypeCommand::Create { document } => {
            let body: NewResourceType = document.read()?;
            api.post("/v1/resource-types", &body).await
        }
        ResourceTypeCommand::Set {
            name,
            document,
            if_match,
        } => {
            let body: ResourceTypeBody = document.read()?;
            api.put(
                &format!("/v1/resource-types/{name}"),
                &body,
                if_match.as_deref(),
            )
            .await
        }
        ResourceTypeCommand::Delete { name } => {
            api.delete(&format!("/v1/resource-types/{name}"), None)
                .await
        }
    }
}

pub async fn custom_role(api: &Api, command: CustomRoleCommand) -> anyhow::Result<Value> {
    match command {
        CustomRoleCommand::List => api.get("/v1/custom-roles", NO_QUERY).await,
        CustomRoleCommand::Get { id } => api.get(&format!("/v1/custom-roles/{id}"), NO_QUERY).await,
        CustomRoleCommand::Create { document } => {
            let body: CustomRoleBody = document.read()?;
            api.post("/v1/custom-roles", &body).await
        }
        CustomRoleCommand::Clone {
            role,
            name,
            description,
        } => {
            api.post(
                &format!("/v1/roles/{role}/clone"),
                &CloneRoleBody { name, description },
            )
            .await
        }
        CustomRoleCommand::Set {
            id,
            document,
            if_match,
        } => {
            let body: CustomRoleBody = document.read()?;
            api.put(
                &format!("/v1/custom-roles/{id}"),
                &body,
                if_match.as_deref(),
            )
            .await
        }
        CustomRoleCommand::Delete { id } => {
            api.delete(&format!("/v1/custom-roles/{id}"), None).await
        }
    }
}

/// A path from its segments, each percent-encoded: an application's record id may hold `/`,
/// `?` or spaces.
fn encoded_path(segments: &[&str]) -> String {
    let mut url = reqwest::Url::parse("http://portcullis.invalid/").expect("a constant URL parses");
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().extend(segments);
    }
    url.path().to_owned()
}

pub async fn record(api: &Api, command: RecordCommand) -> anyhow::Result<Value> {
    match command {
        RecordCommand::List {
            resource_type,
            prefix,
            paging,
        } => {
            let page = paging.query();
            let query = RecordQuery {
                prefix,
                cursor: page.cursor,
                limit: page.limit,
            };
            api.get(&encoded_path(&["v1", "records", &resource_type]), &query)
                .await
        }
        RecordCommand::Get {
            resource_type,
            external_id,
        } => {
            api.get(
                &encoded_path(&["v1", "records", &resource_type, &external_id]),
                NO_QUERY,
            )
            .await
        }
        RecordCommand::Set {
            resource_type,
            external_id,
            owner,
            business_unit,
            environment,
            if_match,
        } => {
            let environment = match environment {
                Some(name) => Some(resolve(api, Kind::Environment, &name).await?),
                None => None,
            };
            let body = RecordBody {
                owner: principal(api, "owner", &owner).await?,
                business_unit_id: typed(
                    "business-unit",
                    resolve(api, Kind::BusinessUnit, &business_unit).await?,
                )?,
                environment_id: optional("environment", environment)?,
            };
            api.put(
                &encoded_path(&["v1", "records", &resource_type, &external_id]),
                &body,
                if_match.as_deref(),
            )
            .await
        }
        RecordCommand::Delete {
            resource_type,
            external_id,
        } => {
            api.delete(
                &encoded_path(&["v1", "records", &resource_type, &external_id]),
                None,
            )
            .await
        }
    }
}

pub async fn share(api: &Api, command: ShareCommand) -> anyhow::Result<Value> {
    match command {
        ShareCommand::List {
            resource_type,
            external_id,
        } => {
            api.get(
                &encoded_path(&["v1", "records", &resource_type, &external_id, "shares"]),
                NO_QUERY,
            )
            .await
        }
        ShareCommand::Create {
            resource_type,
            external_id,
            principal: with,
            actions,
        } => {
            let body = ShareBody {
                principal: principal(api, "principal", &with).await?,
                actions,
            };
            api.post(
                &encoded_path(&["v1", "records", &resource_type, &external_id, "shares"]),
                &body,
            )
            .await
        }
        ShareCommand::Delete { id } => api.delete(&format!("/v1/shares/{id}"), None).await,
    }
}

pub async fn deny_assignment(api: &Api, command: DenyAssignmentCommand) -> anyhow::Result<Value> {
    match command {
        DenyAssignmentCommand::List => api.get("/v1/deny-assignments", NO_QUERY).await,
        DenyAssignmentCommand::Create {
            name,
            description,
            principals,
            excluded,
            actions,
            scope,
        } => {
            let mut denied = Vec::with_capacity(principals.len());
            for raw in &principals {
                denied.push(principal(api, "principal", raw).await?);
            }
            let mut exempt = Vec::with_capacity(excluded.len());
            for raw in &excluded {
                exempt.push(principal(api, "exclude", raw).await?);
            }
            let scope = match scope {
                Some(scope) => Some(resolve_scope(api, &scope).await?),
                None => None,
            };
            let body = NewDenyAssignment {
                name,
                description,
                principals: denied,
                excluded: exempt,
                actions,
                scope: optional("scope", scope)?,
            };
            api.post("/v1/deny-assignments", &body).await
        }
        DenyAssignmentCommand::Delete { id } => {
            api.delete(&format!("/v1/deny-assignments/{id}"), None)
                .await
        }
    }
}
