//! The admin commands: each turns its flags into one REST call and prints the JSON answer.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::Connection;
use crate::api::Api;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Show who you are: the person or service principal, its tenant, the roles it holds, and how
    /// it signed in (API key, or session, `amr` and `acr` of `portcullis login`).
    Whoami,
    /// Manage tenants (the operator tenant manages the others).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage environments (dev, prod, …).
    Environment {
        #[command(subcommand)]
        command: EnvironmentCommand,
    },
    /// Manage the business-unit tree.
    BusinessUnit {
        #[command(subcommand)]
        command: BusinessUnitCommand,
    },
    /// Manage users (members and guests).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage groups and their members.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Manage service principals (workload identities).
    ServicePrincipal {
        #[command(subcommand)]
        command: ServicePrincipalCommand,
    },
    /// Issue, list and revoke API keys of a service principal.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// List the built-in roles and their permissions.
    Roles,
    /// Assign and remove roles.
    RoleAssignment {
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
    /// List tenants (operator tenant only).
    List(Paging),
    /// Show one tenant.
    Get {
        /// Tenant id.
        id: String,
    },
    /// Create a tenant; prints its first administrator's API key (shown only once).
    Create {
        /// Unique name: lower-case letters, digits and '-'.
        name: String,
        /// Name shown to people.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Rename, disable or re-enable a tenant.
    Update {
        /// Tenant id.
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
    /// List the tenant's environments.
    List(Paging),
    /// Show one environment.
    Get {
        /// The environment: name or id.
        id: String,
    },
    /// Create an environment (dev, test, prod, …).
    Create {
        /// Unique name in the tenant: lower-case letters, digits and '-'.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Rename an environment or change its description.
    Update {
        /// The environment: name or id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        /// Only update if the environment is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete an environment and the role assignments scoped to it.
    Delete {
        /// The environment: name or id.
        id: String,
        /// Only delete if the environment is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum BusinessUnitCommand {
    /// List the tenant's business units.
    List(Paging),
    /// Show one business unit.
    Get {
        /// The business unit: name or id.
        id: String,
    },
    /// Create a business unit under a parent.
    Create {
        /// Unique name in the tenant.
        name: String,
        /// Parent unit, by name or id [default: the root unit].
        #[arg(long)]
        parent: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Rename or move a business unit (a move under its own subtree is refused).
    Update {
        /// The business unit: name or id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Move under this unit.
        #[arg(long)]
        parent: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        /// Only update if the unit is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete an empty business unit (no child units, no users).
    Delete {
        /// The business unit: name or id.
        id: String,
        /// Only delete if the unit is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// List users, filtered.
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
    /// Show one user.
    Get {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Create a member, or a guest with a sponsor and an expiry.
    Create {
        /// Unique (case-insensitively) user name in the tenant.
        user_name: String,
        /// E-mail address, unique in the tenant.
        #[arg(long)]
        email: Option<String>,
        /// Name shown to people.
        #[arg(long)]
        display_name: Option<String>,
        /// Create a guest (needs --sponsor and --expires-at).
        #[arg(long)]
        guest: bool,
        /// The sponsor (guests): user name, e-mail address or id.
        #[arg(long)]
        sponsor: Option<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<String>,
        /// Business unit, by name or id [default: the root unit].
        #[arg(long)]
        business_unit: Option<String>,
        /// The id another system knows it by (SCIM externalId, an upstream `sub`).
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Change a user's names, state, sponsor, expiry or business unit.
    Update {
        /// The user: user name, e-mail address or id.
        id: String,
        /// New user name.
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
        /// The sponsor (guests): user name, e-mail address or id.
        #[arg(long)]
        sponsor: Option<String>,
        /// RFC 3339 time; an empty value clears it.
        #[arg(long)]
        expires_at: Option<String>,
        /// Move to this business unit.
        #[arg(long)]
        business_unit: Option<String>,
        /// The id another system knows it by; an empty value clears it.
        #[arg(long)]
        external_id: Option<String>,
        /// Only update if the user is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Soft-delete: restorable within the retention window.
    Delete {
        /// The user: user name, e-mail address or id.
        id: String,
        /// Only delete if the user is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Bring back a deleted user, in the state it had, within the retention window.
    Restore {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Permanently remove a deleted user.
    Purge {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// The groups the user belongs to directly.
    Groups {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Reset the user's second factor (a lost phone): their authenticator app and recovery
    /// codes are removed and their sessions end.
    ResetMfa {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Whether sign-in back-off has locked the user's account, and their latest failed
    /// sign-ins (reason, method, address).
    Lockout {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Unlock an account the sign-in back-off has locked, so the user may try again at once.
    Unlock {
        /// The user: user name, e-mail address or id.
        id: String,
        /// Why (the ticket, how the person was verified); kept in the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Create an enrolment link: the user opens it, chooses their own password and adds a
    /// passkey. It works once, until it expires; a new link replaces an unused one. The link
    /// is printed on standard output.
    Invite {
        /// The user: user name, e-mail address or id.
        id: String,
        /// Hours the link works (1–720).
        #[arg(long, default_value_t = 72)]
        hours: u32,
    },
    /// Set or reset the user's password, read from standard input.
    ///
    /// Never from a flag, so it stays out of shell history and process lists.
    SetPassword {
        /// The user: user name, e-mail address or id.
        id: String,
        /// Let the user keep this password [default: the user must change it at next sign-in].
        #[arg(long)]
        no_must_change: bool,
    },
    /// Show whether the user has a password and must change it.
    Password {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Remove the user's password.
    RemovePassword {
        /// The user: user name, e-mail address or id.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List groups.
    List {
        /// Name prefix.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one group.
    Get {
        /// The group: name or id.
        id: String,
    },
    /// Create a group (with --business-unit, a team of that unit).
    Create {
        /// Unique (case-insensitively) name in the tenant.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Make it a team of this business unit (id): roles it holds at business-unit depths
        /// reach from this unit instead of from each member's.
        #[arg(long)]
        business_unit: Option<String>,
    },
    /// Rename a group, change its description, or make it a team of a unit.
    Update {
        /// The group: name or id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        /// The team's business unit (id); an empty value makes it a plain group again.
        #[arg(long)]
        business_unit: Option<String>,
        /// Only update if the group is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a group (its memberships and role assignments go with it).
    Delete {
        /// The group: name or id.
        id: String,
        /// Only delete if the group is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// List a group's direct members.
    Members {
        /// The group: name or id.
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Add a member: KIND is user, group or service_principal (a cycle is refused).
    AddMember {
        /// The group: name or id.
        id: String,
        /// user, group or service_principal.
        kind: String,
        /// The member: name (a user's e-mail address too) or id.
        member_id: String,
    },
    /// Remove a direct member.
    RemoveMember {
        /// The group: name or id.
        id: String,
        /// user, group or service_principal.
        kind: String,
        /// The member: name (a user's e-mail address too) or id.
        member_id: String,
    },
}

#[derive(Subcommand)]
pub enum ServicePrincipalCommand {
    /// List service principals.
    List(Paging),
    /// Show one service principal.
    Get {
        /// The service principal: name or id.
        id: String,
    },
    /// Create a service principal (then issue it a key with `api-key create`).
    Create {
        /// Unique (case-insensitively) name in the tenant.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// The id another system knows it by (SCIM externalId, an upstream `sub`).
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Rename, describe, disable or re-enable a service principal.
    Update {
        /// The service principal: name or id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// An empty value clears it.
        #[arg(long)]
        description: Option<String>,
        /// active or disabled.
        #[arg(long)]
        state: Option<String>,
        /// The id another system knows it by; an empty value clears it.
        #[arg(long)]
        external_id: Option<String>,
        /// Only update if the principal is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a service principal with its keys, memberships and role assignments.
    Delete {
        /// The service principal: name or id.
        id: String,
        /// Only delete if the principal is still at this ETag.
        #[arg(long)]
        if_match: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Keys of a service principal (never their secrets).
    List {
        /// The service principal: name or id.
        service_principal: String,
    },
    /// Issue a key; its secret is printed once.
    Create {
        /// The service principal: name or id.
        service_principal: String,
        /// A label, e.g. where the key is deployed.
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339 expiry time (at most 730 days away).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a key at once.
    Revoke {
        /// The service principal: name or id.
        service_principal: String,
        /// Key id (from `api-key list`).
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum RoleAssignmentCommand {
    /// List role assignments, filtered.
    List {
        /// user, group or service_principal.
        #[arg(long)]
        principal_kind: Option<String>,
        /// The principal: name (a user's e-mail address too) or id.
        #[arg(long)]
        principal_id: Option<String>,
        /// Role name (see `portcullis roles`).
        #[arg(long)]
        role: Option<String>,
        /// tenant, or environment/<name or id>.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one role assignment.
    Get {
        /// Role assignment id.
        id: String,
    },
    /// Assign ROLE to a principal: KIND is user, group or service_principal.
    Create {
        /// user, group or service_principal.
        kind: String,
        /// The principal: name (a user's e-mail address too) or id.
        principal_id: String,
        /// Role name (see `portcullis roles`).
        role: String,
        /// tenant (default), or environment/<name or id>.
        #[arg(long)]
        scope: Option<String>,
        /// RFC 3339 time from which the assignment applies.
        #[arg(long)]
        starts_at: Option<String>,
        /// RFC 3339 time at which the assignment stops applying.
        #[arg(long)]
        ends_at: Option<String>,
    },
    /// Remove a role assignment at once.
    Delete {
        /// Role assignment id.
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

/// What a command that removes something will do, in words, to confirm before and report after.
fn removal(command: &AdminCommand) -> Option<String> {
    use AdminCommand as A;
    Some(match command {
        A::Environment {
            command: EnvironmentCommand::Delete { id, .. },
        } => format!("delete environment {id}"),
        A::BusinessUnit {
            command: BusinessUnitCommand::Delete { id, .. },
        } => format!("delete business unit {id}"),
        A::User { command } => match command {
            UserCommand::Delete { id, .. } => {
                format!("delete user {id} (restorable with `user restore` until it is purged)")
            }
            UserCommand::Purge { id } => format!("purge user {id} for good"),
            UserCommand::RemovePassword { id } => format!("remove the password of user {id}"),
            UserCommand::ResetMfa { id } => {
                format!("reset the second factor of user {id} and end their sessions")
            }
            _ => return None,
        },
        A::Group { command } => match command {
            GroupCommand::Delete { id, .. } => format!("delete group {id}"),
            GroupCommand::RemoveMember {
                id,
                kind,
                member_id,
            } => format!("remove {kind} {member_id} from group {id}"),
            _ => return None,
        },
        A::ServicePrincipal {
            command: ServicePrincipalCommand::Delete { id, .. },
        } => format!("delete service principal {id} and revoke its API keys"),
        A::ApiKey {
            command:
                ApiKeyCommand::Revoke {
                    service_principal,
                    key_id,
                },
        } => format!("revoke API key {key_id} of service principal {service_principal}"),
        A::RoleAssignment {
            command: RoleAssignmentCommand::Delete { id },
        } => format!("remove role assignment {id}"),
        _ => return None,
    })
}

/// Asks a person at a terminal to confirm `what`; scripts (no terminal) and `--yes` go ahead.
fn confirmed(what: &str, yes: bool) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("About to {what}. Go ahead? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Every argument of `command` that names a user, group, service principal, environment or
/// business unit, replaced by its id (see `crate::names`).
async fn resolve_names(command: &mut AdminCommand, api: &Api) -> anyhow::Result<()> {
    use crate::names::{Kind, resolve, resolve_scope};
    let mut names: Vec<(&mut String, Kind)> = Vec::new();
    let mut optional: Vec<(&mut Option<String>, Kind)> = Vec::new();
    let mut scope: Option<&mut Option<String>> = None;
    match command {
        AdminCommand::Environment { command } => match command {
            EnvironmentCommand::Get { id }
            | EnvironmentCommand::Update { id, .. }
            | EnvironmentCommand::Delete { id, .. } => names.push((id, Kind::Environment)),
            EnvironmentCommand::List(_) | EnvironmentCommand::Create { .. } => {}
        },
        AdminCommand::BusinessUnit { command } => match command {
            BusinessUnitCommand::Get { id } | BusinessUnitCommand::Delete { id, .. } => {
                names.push((id, Kind::BusinessUnit));
            }
            BusinessUnitCommand::Create { parent, .. } => {
                optional.push((parent, Kind::BusinessUnit));
            }
            BusinessUnitCommand::Update { id, parent, .. } => {
                names.push((id, Kind::BusinessUnit));
                optional.push((parent, Kind::BusinessUnit));
            }
            BusinessUnitCommand::List(_) => {}
        },
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                sponsor,
                business_unit,
                ..
            } => {
                optional.push((sponsor, Kind::User));
                optional.push((business_unit, Kind::BusinessUnit));
            }
            UserCommand::Update {
                id,
                sponsor,
                business_unit,
                ..
            } => {
                names.push((id, Kind::User));
                optional.push((sponsor, Kind::User));
                optional.push((business_unit, Kind::BusinessUnit));
            }
            UserCommand::Get { id }
            | UserCommand::Delete { id, .. }
            | UserCommand::Restore { id }
            | UserCommand::Purge { id }
            | UserCommand::Groups { id }
            | UserCommand::ResetMfa { id }
            | UserCommand::Lockout { id }
            | UserCommand::Unlock { id, .. }
            | UserCommand::Invite { id, .. }
            | UserCommand::SetPassword { id, .. }
            | UserCommand::Password { id }
            | UserCommand::RemovePassword { id } => names.push((id, Kind::User)),
            UserCommand::List { .. } => {}
        },
        AdminCommand::Group { command } => match command {
            GroupCommand::Get { id }
            | GroupCommand::Delete { id, .. }
            | GroupCommand::Members { id, .. } => names.push((id, Kind::Group)),
            GroupCommand::Create { business_unit, .. } => {
                optional.push((business_unit, Kind::BusinessUnit));
            }
            GroupCommand::Update {
                id, business_unit, ..
            } => {
                names.push((id, Kind::Group));
                optional.push((business_unit, Kind::BusinessUnit));
            }
            GroupCommand::AddMember {
                id,
                kind,
                member_id,
            }
            | GroupCommand::RemoveMember {
                id,
                kind,
                member_id,
            } => {
                names.push((id, Kind::Group));
                if let Some(kind) = Kind::principal(kind) {
                    names.push((member_id, kind));
                }
            }
            GroupCommand::List { .. } => {}
        },
        AdminCommand::ServicePrincipal { command } => match command {
            ServicePrincipalCommand::Get { id }
            | ServicePrincipalCommand::Update { id, .. }
            | ServicePrincipalCommand::Delete { id, .. } => {
                names.push((id, Kind::ServicePrincipal));
            }
            ServicePrincipalCommand::List(_) | ServicePrincipalCommand::Create { .. } => {}
        },
        AdminCommand::ApiKey { command } => match command {
            ApiKeyCommand::List { service_principal }
            | ApiKeyCommand::Create {
                service_principal, ..
            }
            | ApiKeyCommand::Revoke {
                service_principal, ..
            } => names.push((service_principal, Kind::ServicePrincipal)),
        },
        AdminCommand::RoleAssignment { command } => match command {
            RoleAssignmentCommand::List {
                principal_kind,
                principal_id,
                scope: listed,
                ..
            } => {
                if let Some(kind) = principal_kind.as_deref().and_then(Kind::principal) {
                    optional.push((principal_id, kind));
                }
                scope = Some(listed);
            }
            RoleAssignmentCommand::Create {
                kind,
                principal_id,
                scope: given,
                ..
            } => {
                if let Some(kind) = Kind::principal(kind) {
                    names.push((principal_id, kind));
                }
                scope = Some(given);
            }
            RoleAssignmentCommand::Get { .. } | RoleAssignmentCommand::Delete { .. } => {}
        },
        AdminCommand::Whoami | AdminCommand::Roles | AdminCommand::Tenant { .. } => {}
    }
    for (name, kind) in names {
        *name = resolve(api, kind, name).await?;
    }
    for (name, kind) in optional {
        if let Some(value) = name.as_mut().filter(|v| !v.is_empty()) {
            *value = resolve(api, kind, value).await?;
        }
    }
    if let Some(Some(scope)) = scope {
        *scope = resolve_scope(api, scope).await?;
    }
    Ok(())
}

pub async fn run(
    mut command: AdminCommand,
    connection: &Connection,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    use Method as M;
    let none = &[];
    // Described as the person typed it, confirmed once every name is known to name something.
    let removing = removal(&command);
    let api = Api::new(connection)?;
    resolve_names(&mut command, &api).await?;
    if let Some(what) = &removing
        && !confirmed(what, yes)?
    {
        eprintln!("Nothing was changed.");
        return Ok(ExitCode::FAILURE);
    }
    let answer = match command {
        AdminCommand::Whoami => api.get("/v1/me", none).await?,
        AdminCommand::Roles => api.get("/v1/roles", none).await?,
        AdminCommand::Tenant { command } => match command {
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
        },
        AdminCommand::Environment { command } => match command {
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
        },
        AdminCommand::BusinessUnit { command } => match command {
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
        },
        AdminCommand::User { command } => match command {
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
                external_id,
            } => {
                let body = object(vec![
                    ("user_name", Some(json!(user_name))),
                    ("external_id", text(external_id)),
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
                external_id,
                if_match,
            } => {
                let body = object(vec![
                    ("user_name", text(user_name)),
                    ("external_id", clearable(external_id)),
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
            UserCommand::Groups { id } => api.get(&format!("/v1/users/{id}/groups"), none).await?,
            UserCommand::SetPassword { id, no_must_change } => {
                let password = read_password_from_stdin()?;
                let body = json!({"password": password, "must_change": !no_must_change});
                api.call(
                    M::PUT,
                    &format!("/v1/users/{id}/password"),
                    none,
                    Some(&body),
                    None,
                )
                .await?;
                eprintln!("password set");
                Value::Null
            }
            UserCommand::ResetMfa { id } => {
                api.call(M::DELETE, &format!("/v1/users/{id}/mfa"), none, None, None)
                    .await?;
                eprintln!(
                    "second factor reset: the user's sessions ended; they set up a new one at their next sign-in"
                );
                Value::Null
            }
            UserCommand::Invite { id, hours } => {
                let body = json!({ "expires_in_hours": hours });
                let link = api
                    .call(
                        M::POST,
                        &format!("/v1/users/{id}/enrolment-link"),
                        none,
                        Some(&body),
                        None,
                    )
                    .await?;
                println!("{}", link["url"].as_str().unwrap_or_default());
                eprintln!(
                    "Give this link to the user over a channel you trust: it sets their password, once, until {}.",
                    link["expires_at"].as_str().unwrap_or("it expires")
                );
                Value::Null
            }
            UserCommand::Lockout { id } => {
                api.get(&format!("/v1/users/{id}/lockout"), none).await?
            }
            UserCommand::Unlock { id, reason } => {
                let body = json!({ "reason": reason });
                api.call(
                    M::POST,
                    &format!("/v1/users/{id}/lockout/unlock"),
                    none,
                    Some(&body),
                    None,
                )
                .await?
            }
            UserCommand::Password { id } => {
                api.get(&format!("/v1/users/{id}/password"), none).await?
            }
            UserCommand::RemovePassword { id } => {
                api.call(
                    M::DELETE,
                    &format!("/v1/users/{id}/password"),
                    none,
                    None,
                    None,
                )
                .await?
            }
        },
        AdminCommand::Group { command } => match command {
            GroupCommand::List { prefix, paging } => {
                api.get("/v1/groups", &query(vec![("prefix", prefix)], &paging))
                    .await?
            }
            GroupCommand::Get { id } => api.get(&format!("/v1/groups/{id}"), none).await?,
            GroupCommand::Create {
                name,
                description,
                business_unit,
            } => {
                let body = object(vec![
                    ("name", Some(json!(name))),
                    ("description", text(description)),
                    ("business_unit_id", text(business_unit)),
                ]);
                api.call(M::POST, "/v1/groups", none, Some(&body), None)
                    .await?
            }
            GroupCommand::Update {
                id,
                name,
                description,
                business_unit,
                if_match,
            } => {
                let body = object(vec![
                    ("name", text(name)),
                    ("description", clearable(description)),
                    ("business_unit_id", clearable(business_unit)),
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
        },
        AdminCommand::ServicePrincipal { command } => match command {
            ServicePrincipalCommand::List(paging) => {
                api.get("/v1/service-principals", &paging.query()).await?
            }
            ServicePrincipalCommand::Get { id } => {
                api.get(&format!("/v1/service-principals/{id}"), none)
                    .await?
            }
            ServicePrincipalCommand::Create {
                name,
                description,
                external_id,
            } => {
                let body = object(vec![
                    ("name", Some(json!(name))),
                    ("description", text(description)),
                    ("external_id", text(external_id)),
                ]);
                api.call(M::POST, "/v1/service-principals", none, Some(&body), None)
                    .await?
            }
            ServicePrincipalCommand::Update {
                id,
                name,
                description,
                state,
                external_id,
                if_match,
            } => {
                let body = object(vec![
                    ("name", text(name)),
                    ("description", clearable(description)),
                    ("state", text(state)),
                    ("external_id", clearable(external_id)),
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
        },
        AdminCommand::ApiKey { command } => match command {
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
        },
        AdminCommand::RoleAssignment { command } => match command {
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
        },
    };
    if let Some(what) = removing {
        eprintln!("Done: {what}.");
    }
    crate::output::print(&answer)
}

/// The first line of standard input, without its line ending.
fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input (pipe it in, e.g. from a password manager)");
    }
    Ok(password)
}
