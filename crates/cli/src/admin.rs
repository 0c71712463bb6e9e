//! The admin commands: each turns its flags into one REST call and prints the JSON answer.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::Connection;
use crate::api::Api;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Show who the API key belongs to, its tenant and the roles it holds.
    Whoami {
        #[command(flatten)]
        connection: Connection,
    },
    /// Manage tenants (the operator tenant manages the others).
    Tenant {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage environments (dev, prod, …).
    Environment {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: EnvironmentCommand,
    },
    /// Manage the business-unit tree.
    BusinessUnit {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: BusinessUnitCommand,
    },
    /// Manage users (members and guests).
    User {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage groups and their members.
    Group {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Manage service principals (workload identities).
    ServicePrincipal {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ServicePrincipalCommand,
    },
    /// Issue, list and revoke API keys of a service principal.
    ApiKey {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// List the built-in roles and their permissions.
    Roles {
        #[command(flatten)]
        connection: Connection,
    },
    /// Assign and remove roles.
    RoleAssignment {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: RoleAssignmentCommand,
    },
}

/// Paging flags of list commands.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Paging {
    /// Items per page (1-500).
    #[arg(long)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl Paging {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            q.push(("cursor", cursor.clone()));
        }
        q
    }
}

#[derive(Subcommand)]
pub enum TenantCommand {
    List(Paging),
    Get {
        id: String,
    },
    /// Create a tenant; prints its first administrator's API key (shown only once).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    Update {
        id: String,
        /// An empty value clears it.
        #[arg(long)]
        display_name: Option<String>,
        /// active or disabled.
        #[arg(long)]
        state: Option<String>,
        /// Only update if the tenant is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum EnvironmentCommand {
    List(Paging),
    Get {
        id: String,
    },
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        if_match: Option<String>,
    },
    Delete {
        id: String,
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum BusinessUnitCommand {
    List(Paging),
    Get {
        id: String,
    },
    Create {
        name: String,
        /// Parent unit id [default: the root unit].
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Move under this unit.
        #[arg(long)]
        parent: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        if_match: Option<String>,
    },
    Delete {
        id: String,
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    List {
        /// active, disabled or deleted.
        #[arg(long)]
        state: Option<String>,
        /// member or guest.
        #[arg(long)]
        kind: Option<String>,
        /// User name or e-mail prefix.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    Get {
        id: String,
    },
    Create {
        user_name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Create a guest (needs --sponsor and --expires-at).
        #[arg(long)]
        guest: bool,
        /// Sponsor's user id (guests).
        #[arg(long)]
        sponsor: Option<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        business_unit: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        user_name: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        email: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        display_name: Option<String>,
        /// active or disabled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        sponsor: Option<String>,
        /// RFC 3339 time; an empty value clears it.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        business_unit: Option<String>,
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Soft-delete: restorable within the retention window.
    Delete {
        id: String,
        #[arg(long)]
        if_match: Option<String>,
    },
    Restore {
        id: String,
    },
    /// Permanently remove a deleted user.
    Purge {
        id: String,
    },
    /// The groups the user belongs to directly.
    Groups {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    List {
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    Get {
        id: String,
    },
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        if_match: Option<String>,
    },
    Delete {
        id: String,
        #[arg(long)]
        if_match: Option<String>,
    },
    Members {
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Add a member: KIND is user, group or service_principal.
    AddMember {
        id: String,
        kind: String,
        member_id: String,
    },
    RemoveMember {
        id: String,
        kind: String,
        member_id: String,
    },
}

#[derive(Subcommand)]
pub enum ServicePrincipalCommand {
    List(Paging),
    Get {
        id: String,
    },
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// active or disabled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        if_match: Option<String>,
    },
    Delete {
        id: String,
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Keys of a service principal (never their secrets).
    List { service_principal: String },
    /// Issue a key; its secret is printed once.
    Create {
        service_principal: String,
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339 expiry time (at most 730 days away).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a key at once.
    Revoke {
        service_principal: String,
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum RoleAssignmentCommand {
    List {
        #[arg(long)]
        principal_kind: Option<String>,
        #[arg(long)]
        principal_id: Option<String>,
        #[arg(long)]
        role: Option<String>,
        /// tenant or environment/<id>.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    Get {
        id: String,
    },
    /// Assign ROLE to a principal: KIND is user, group or service_principal.
    Create {
        kind: String,
        principal_id: String,
        role: String,
        /// tenant (default) or environment/<id>.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        starts_at: Option<String>,
        #[arg(long)]
        ends_at: Option<String>,
    },
    Delete {
        id: String,
    },
}

/// A JSON object of the given fields, leaving out absent ones.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn text(value: Option<String>) -> Option<Value> {
    value.map(Value::String)
}

/// For a PATCH: an empty value means "clear" (null).
fn clearable(value: Option<String>) -> Option<Value> {
    value.map(|v| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(v)
        }
    })
}

fn query(
    pairs: Vec<(&'static str, Option<String>)>,
    paging: &Paging,
) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&str, String)> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    q.extend(paging.query());
    q
}

pub fn print(value: &Value) -> anyhow::Result<ExitCode> {
    if !value.is_null() {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    use Method as M;
    let none = &[];
    let answer = match command {
        AdminCommand::Whoami { connection } => Api::new(&connection)?.get("/v1/me", none).await?,
        AdminCommand::Roles { connection } => Api::new(&connection)?.get("/v1/roles", none).await?,
        AdminCommand::Tenant {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                TenantCommand::List(paging) => api.get("/v1/tenants", &paging.query()).await?,
                TenantCommand::Get { id } => api.get(&format!("/v1/tenants/{id}"), none).await?,
                TenantCommand::Create { name, display_name } => {
                    let body = object(vec![
                        ("name", Some(json!(name))),
                        ("display_name", text(display_name)),
                    ]);
                    api.call(M::POST, "/v1/tenants", none, Some(&body), None)
                        .await?
                }
                TenantCommand::Update {
                    id,
                    display_name,
                    state,
                    if_match,
                } => {
                    let body = object(vec![
                        ("display_name", clearable(display_name)),
                        ("state", text(state)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/tenants/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
            }
        }
        AdminCommand::Environment {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                EnvironmentCommand::List(paging) => {
                    api.get("/v1/environments", &paging.query()).await?
                }
                EnvironmentCommand::Get { id } => {
                    api.get(&format!("/v1/environments/{id}"), none).await?
                }
                EnvironmentCommand::Create { name, description } => {
                    let body = object(vec![
                        ("name", Some(json!(name))),
                        ("description", text(description)),
                    ]);
                    api.call(M::POST, "/v1/environments", none, Some(&body), None)
                        .await?
                }
                EnvironmentCommand::Update {
                    id,
                    name,
                    description,
                    if_match,
                } => {
                    let body = object(vec![
                        ("name", text(name)),
                        ("description", clearable(description)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/environments/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
                EnvironmentCommand::Delete { id, if_match } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/environments/{id}"),
                        none,
                        None,
                        if_match.as_deref(),
                    )
                    .await?
                }
            }
        }
        AdminCommand::BusinessUnit {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                BusinessUnitCommand::List(paging) => {
                    api.get("/v1/business-units", &paging.query()).await?
                }
                BusinessUnitCommand::Get { id } => {
                    api.get(&format!("/v1/business-units/{id}"), none).await?
                }
                BusinessUnitCommand::Create {
                    name,
                    parent,
                    description,
                } => {
                    let body = object(vec![
                        ("name", Some(json!(name))),
                        ("parent_id", text(parent)),
                        ("description", text(description)),
                    ]);
                    api.call(M::POST, "/v1/business-units", none, Some(&body), None)
                        .await?
                }
                BusinessUnitCommand::Update {
                    id,
                    name,
                    parent,
                    description,
                    if_match,
                } => {
                    let body = object(vec![
                        ("name", text(name)),
                        ("parent_id", text(parent)),
                        ("description", clearable(description)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/business-units/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
                BusinessUnitCommand::Delete { id, if_match } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/business-units/{id}"),
                        none,
                        None,
                        if_match.as_deref(),
                    )
                    .await?
                }
            }
        }
        AdminCommand::User {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                UserCommand::List {
                    state,
                    kind,
                    prefix,
                    paging,
                } => {
                    api.get(
                        "/v1/users",
                        &query(
                            vec![("state", state), ("kind", kind), ("prefix", prefix)],
                            &paging,
                        ),
                    )
                    .await?
                }
                UserCommand::Get { id } => api.get(&format!("/v1/users/{id}"), none).await?,
                UserCommand::Create {
                    user_name,
                    email,
                    display_name,
                    guest,
                    sponsor,
                    expires_at,
                    business_unit,
                } => {
                    let body = object(vec![
                        ("user_name", Some(json!(user_name))),
                        ("email", text(email)),
                        ("display_name", text(display_name)),
                        ("kind", Some(json!(if guest { "guest" } else { "member" }))),
                        ("sponsor_id", text(sponsor)),
                        ("expires_at", text(expires_at)),
                        ("business_unit_id", text(business_unit)),
                    ]);
                    api.call(M::POST, "/v1/users", none, Some(&body), None)
                        .await?
                }
                UserCommand::Update {
                    id,
                    user_name,
                    email,
                    display_name,
                    state,
                    sponsor,
                    expires_at,
                    business_unit,
                    if_match,
                } => {
                    let body = object(vec![
                        ("user_name", text(user_name)),
                        ("email", clearable(email)),
                        ("display_name", clearable(display_name)),
                        ("state", text(state)),
                        ("sponsor_id", text(sponsor)),
                        ("expires_at", clearable(expires_at)),
                        ("business_unit_id", text(business_unit)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/users/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
                UserCommand::Delete { id, if_match } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/users/{id}"),
                        none,
                        None,
                        if_match.as_deref(),
                    )
                    .await?
                }
                UserCommand::Restore { id } => {
                    api.call(
                        M::POST,
                        &format!("/v1/users/{id}/restore"),
                        none,
                        None,
                        None,
                    )
                    .await?
                }
                UserCommand::Purge { id } => {
                    api.call(M::POST, &format!("/v1/users/{id}/purge"), none, None, None)
                        .await?
                }
                UserCommand::Groups { id } => {
                    api.get(&format!("/v1/users/{id}/groups"), none).await?
                }
            }
        }
        AdminCommand::Group {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                GroupCommand::List { prefix, paging } => {
                    api.get("/v1/groups", &query(vec![("prefix", prefix)], &paging))
                        .await?
                }
                GroupCommand::Get { id } => api.get(&format!("/v1/groups/{id}"), none).await?,
                GroupCommand::Create { name, description } => {
                    let body = object(vec![
                        ("name", Some(json!(name))),
                        ("description", text(description)),
                    ]);
                    api.call(M::POST, "/v1/groups", none, Some(&body), None)
                        .await?
                }
                GroupCommand::Update {
                    id,
                    name,
                    description,
                    if_match,
                } => {
                    let body = object(vec![
                        ("name", text(name)),
                        ("description", clearable(description)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/groups/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
                GroupCommand::Delete { id, if_match } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/groups/{id}"),
                        none,
                        None,
                        if_match.as_deref(),
                    )
                    .await?
                }
                GroupCommand::Members { id, paging } => {
                    api.get(&format!("/v1/groups/{id}/members"), &paging.query())
                        .await?
                }
                GroupCommand::AddMember {
                    id,
                    kind,
                    member_id,
                } => {
                    let body = json!({"kind": kind, "id": member_id});
                    api.call(
                        M::POST,
                        &format!("/v1/groups/{id}/members"),
                        none,
                        Some(&body),
                        None,
                    )
                    .await?
                }
                GroupCommand::RemoveMember {
                    id,
                    kind,
                    member_id,
                } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/groups/{id}/members/{kind}/{member_id}"),
                        none,
                        None,
                        None,
                    )
                    .await?
                }
            }
        }
        AdminCommand::ServicePrincipal {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                ServicePrincipalCommand::List(paging) => {
                    api.get("/v1/service-principals", &paging.query()).await?
                }
                ServicePrincipalCommand::Get { id } => {
                    api.get(&format!("/v1/service-principals/{id}"), none)
                        .await?
                }
                ServicePrincipalCommand::Create { name, description } => {
                    let body = object(vec![
                        ("name", Some(json!(name))),
                        ("description", text(description)),
                    ]);
                    api.call(M::POST, "/v1/service-principals", none, Some(&body), None)
                        .await?
                }
                ServicePrincipalCommand::Update {
                    id,
                    name,
                    description,
                    state,
                    if_match,
                } => {
                    let body = object(vec![
                        ("name", text(name)),
                        ("description", clearable(description)),
                        ("state", text(state)),
                    ]);
                    api.call(
                        M::PATCH,
                        &format!("/v1/service-principals/{id}"),
                        none,
                        Some(&body),
                        if_match.as_deref(),
                    )
                    .await?
                }
                ServicePrincipalCommand::Delete { id, if_match } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/service-principals/{id}"),
                        none,
                        None,
                        if_match.as_deref(),
                    )
                    .await?
                }
            }
        }
        AdminCommand::ApiKey {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                ApiKeyCommand::List { service_principal } => {
                    api.get(
                        &format!("/v1/service-principals/{service_principal}/api-keys"),
                        none,
                    )
                    .await?
                }
                ApiKeyCommand::Create {
                    service_principal,
                    name,
                    expires_at,
                } => {
                    let body = object(vec![("name", text(name)), ("expires_at", text(expires_at))]);
                    api.call(
                        M::POST,
                        &format!("/v1/service-principals/{service_principal}/api-keys"),
                        none,
                        Some(&body),
                        None,
                    )
                    .await?
                }
                ApiKeyCommand::Revoke {
                    service_principal,
                    key_id,
                } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/service-principals/{service_principal}/api-keys/{key_id}"),
                        none,
                        None,
                        None,
                    )
                    .await?
                }
            }
        }
        AdminCommand::RoleAssignment {
            connection,
            command,
        } => {
            let api = Api::new(&connection)?;
            match command {
                RoleAssignmentCommand::List {
                    principal_kind,
                    principal_id,
                    role,
                    scope,
                    paging,
                } => {
                    let q = query(
                        vec![
                            ("principal_kind", principal_kind),
                            ("principal_id", principal_id),
                            ("role", role),
                            ("scope", scope),
                        ],
                        &paging,
                    );
                    api.get("/v1/role-assignments", &q).await?
                }
                RoleAssignmentCommand::Get { id } => {
                    api.get(&format!("/v1/role-assignments/{id}"), none).await?
                }
                RoleAssignmentCommand::Create {
                    kind,
                    principal_id,
                    role,
                    scope,
                    starts_at,
                    ends_at,
                } => {
                    let body = object(vec![
                        ("principal", Some(json!({"kind": kind, "id": principal_id}))),
                        ("role", Some(json!(role))),
                        ("scope", text(scope)),
                        ("starts_at", text(starts_at)),
                        ("ends_at", text(ends_at)),
                    ]);
                    api.call(M::POST, "/v1/role-assignments", none, Some(&body), None)
                        .await?
                }
                RoleAssignmentCommand::Delete { id } => {
                    api.call(
                        M::DELETE,
                        &format!("/v1/role-assignments/{id}"),
                        none,
                        None,
                        None,
                    )
                    .await?
                }
            }
        }
    };
    print(&answer)
}
