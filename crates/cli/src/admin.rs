//! The admin commands: each turns its flags into one REST call and prints the JSON answer.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use portcullis_api::directory::{
    CreateBusinessUnit, CreateEnvironment, UpdateBusinessUnit, UpdateEnvironment,
};
use portcullis_api::groups::{CreateGroup, GroupQuery, UpdateGroup};
use portcullis_api::model::{PasskeyId, PrincipalRef, UserKind};
use portcullis_api::roles::{AssignmentQuery, CreateRoleAssignment};
use portcullis_api::service_principals::{
    CreateApiKey, CreateServicePrincipal, UpdateServicePrincipal,
};
use portcullis_api::tenants::{CreateTenant, ListParams, UpdateTenant};
use portcullis_api::users::{
    CreateUser, EnrolmentLink, EnrolmentLinkRequest, SetPassword, UnlockRequest, UpdateUser,
    UserQuery,
};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::Connection;
use crate::api::{Api, NO_QUERY};
use crate::args::{clearable, clearable_instant, instant, optional, typed};
use crate::authorization::{
    self, CustomRoleCommand, DenyAssignmentCommand, RecordCommand, ResourceTypeCommand,
    ShareCommand,
};
use crate::conditional;
use crate::settings::{
    self, BrandingCommand, OAuthClientCommand, SettingsCommand, SigningKeyCommand,
};

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
    /// Define resource types: the kinds of record an application registers, and their actions.
    ResourceType {
        #[command(subcommand)]
        command: ResourceTypeCommand,
    },
    /// Define custom roles from the actions of Portcullis and of your resource types.
    CustomRole {
        #[command(subcommand)]
        command: CustomRoleCommand,
    },
    /// Register records (an application's resources) with their owner and business unit.
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Share one record with a principal.
    Share {
        #[command(subcommand)]
        command: ShareCommand,
    },
    /// Deny actions to principals whatever their roles grant.
    DenyAssignment {
        #[command(subcommand)]
        command: DenyAssignmentCommand,
    },
    /// The tenant's sign-in settings: password policy, second factors, lock-out, sessions.
    SignInSettings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// The policy for human administrators: which actions need MFA or a recent sign-in, and
    /// whether privileged principals may use API keys.
    AdministratorPolicy {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// The authorization engine's tenant settings (conditions, limits).
    AccessSettings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// The tenant's colour and logo on its sign-in pages, console and messages.
    Branding {
        #[command(subcommand)]
        command: BrandingCommand,
    },
    /// The keys that sign the tenant's tokens, and their rotation.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// A service principal's OAuth client registration.
    #[command(name = "oauth-client")]
    OAuthClient {
        #[command(subcommand)]
        command: OAuthClientCommand,
    },
    /// Named sets of networks and countries, for conditional access policies.
    Location {
        #[command(subcommand)]
        command: conditional::DocumentCommand,
    },
    /// Conditional access policies, their templates, emergency access accounts and what-if.
    AccessPolicy {
        #[command(subcommand)]
        command: conditional::AccessPolicyCommand,
    },
    /// Registered devices: register yours, list them, mark them compliant, remove them.
    Device {
        #[command(subcommand)]
        command: crate::devices::DeviceCommand,
    },
    /// Identity protection: detections, risky users, verdicts, the leaked-password list.
    Risk {
        #[command(subcommand)]
        command: crate::risk::RiskCommand,
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
    pub fn query(&self) -> ListParams {
        ListParams {
            cursor: self.cursor.clone(),
            limit: self.limit,
        }
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
    /// Create users from a CSV file: a header line naming the columns (user_name, and any of
    /// email, display_name, external_id, email_verified), then a user per line. Shows the
    /// progress, then each line that failed and why.
    Import {
        /// The CSV file (at most 50,000 lines and 8 MiB).
        file: std::path::PathBuf,
    },
    /// Create a member, or a guest with a sponsor and an expiry.
    Create {
        /// Unique (case-insensitively) user name in the tenant.
        user_name: String,
        /// E-mail address, unique in the tenant.
        #[arg(long)]
        email: Option<String>,
        /// You vouch that the address is the user's (otherwise it is proven when they use a
        /// link mailed to it).
        #[arg(long)]
        email_verified: bool,
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
        /// true: you vouch that the address is the user's; false: it is not proven.
        #[arg(long)]
        email_verified: Option<bool>,
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
    /// Which second factors the user has: an authenticator app, recovery codes left, passkeys.
    Mfa {
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
    /// is printed on standard output, or with --send mailed to the user's address.
    Invite {
        /// The user: user name, e-mail address or id.
        id: String,
        /// Hours the link works (1–720).
        #[arg(long, default_value_t = 72)]
        hours: u32,
        /// Mail it to the user's address instead of printing it (needs the server's SMTP
        /// settings).
        #[arg(long)]
        send: bool,
    },
    /// Mail the user a link to confirm that the address on their account is theirs.
    VerifyEmail {
        /// The user: user name, e-mail address or id.
        id: String,
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
    /// List the user's sign-in sessions: when and how they signed in (`amr`, `acr`), from
    /// where, and until when.
    Sessions {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// End all of the user's sessions and revoke the refresh tokens issued in them.
    EndSessions {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// List the user's passkeys.
    Passkeys {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Remove one of the user's passkeys (a lost or stolen authenticator).
    RemovePasskey {
        /// The user: user name, e-mail address or id.
        id: String,
        /// The passkey's id (`user passkeys` lists them).
        passkey_id: String,
    },
    /// List the applications the user has consented to, with the scopes.
    Consents {
        /// The user: user name, e-mail address or id.
        id: String,
    },
    /// Withdraw the user's consent to an application and revoke what it was issued.
    WithdrawConsent {
        /// The user: user name, e-mail address or id.
        id: String,
        /// The application: its service principal's name or id.
        client: String,
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
            UserCommand::EndSessions { id } => format!("end every session of user {id}"),
            UserCommand::RemovePasskey { id, passkey_id } => {
                format!("remove passkey {passkey_id} of user {id}")
            }
            UserCommand::WithdrawConsent { id, client } => {
                format!("withdraw the consent of user {id} to {client} and revoke its tokens")
            }
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
        A::ResourceType {
            command: ResourceTypeCommand::Delete { name },
        } => format!("delete resource type {name}"),
        A::CustomRole {
            command: CustomRoleCommand::Delete { id },
        } => format!("delete custom role {id}"),
        A::Record {
            command:
                RecordCommand::Delete {
                    resource_type,
                    external_id,
                },
        } => format!("delete record {resource_type}:{external_id} and its shares"),
        A::Share {
            command: ShareCommand::Delete { id },
        } => format!("remove share {id}"),
        A::DenyAssignment {
            command: DenyAssignmentCommand::Delete { id },
        } => format!("remove deny assignment {id}"),
        A::SigningKey {
            command: SigningKeyCommand::Rotate {
                emergency: true, ..
            },
        } => {
            "withdraw the current signing key at once (every token it signed stops working)".into()
        }
        A::Location {
            command: conditional::DocumentCommand::Delete { name, .. },
        } => format!("delete named location {name}"),
        A::AccessPolicy {
            command:
                conditional::AccessPolicyCommand::Document(conditional::DocumentCommand::Delete {
                    name,
                    ..
                }),
        } => format!("delete access policy {name}"),
        A::Device {
            command: crate::devices::DeviceCommand::Remove { id },
        } => format!("remove device {id}"),
        A::Risk {
            command: crate::risk::RiskCommand::ConfirmCompromised { user, .. },
        } => format!("confirm {user} compromised (every session of theirs ends)"),
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
            UserCommand::Restore { id } | UserCommand::Purge { id } => {
                names.push((id, Kind::DeletedUser));
            }
            UserCommand::Get { id }
            | UserCommand::Delete { id, .. }
            | UserCommand::Groups { id }
            | UserCommand::ResetMfa { id }
            | UserCommand::Mfa { id }
            | UserCommand::Lockout { id }
            | UserCommand::Unlock { id, .. }
            | UserCommand::Invite { id, .. }
            | UserCommand::VerifyEmail { id }
            | UserCommand::SetPassword { id, .. }
            | UserCommand::Password { id }
            | UserCommand::RemovePassword { id }
            | UserCommand::Sessions { id }
            | UserCommand::EndSessions { id }
            | UserCommand::Passkeys { id }
            | UserCommand::RemovePasskey { id, .. }
            | UserCommand::Consents { id } => names.push((id, Kind::User)),
            UserCommand::WithdrawConsent { id, client } => {
                names.push((id, Kind::User));
                names.push((client, Kind::ServicePrincipal));
            }
            UserCommand::List { .. } | UserCommand::Import { .. } => {}
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
        // These resolve their own names: their arguments name principals as `kind:name`.
        AdminCommand::Whoami
        | AdminCommand::Roles
        | AdminCommand::Tenant { .. }
        | AdminCommand::ResourceType { .. }
        | AdminCommand::CustomRole { .. }
        | AdminCommand::Record { .. }
        | AdminCommand::Share { .. }
        | AdminCommand::DenyAssignment { .. }
        | AdminCommand::SignInSettings { .. }
        | AdminCommand::AdministratorPolicy { .. }
        | AdminCommand::AccessSettings { .. }
        | AdminCommand::SigningKey { .. }
        | AdminCommand::Branding { .. }
        | AdminCommand::OAuthClient { .. }
        | AdminCommand::Location { .. }
        | AdminCommand::AccessPolicy { .. }
        | AdminCommand::Device { .. }
        | AdminCommand::Risk { .. } => {}
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
        AdminCommand::Whoami => api.get("/v1/me", NO_QUERY).await?,
        AdminCommand::Roles => api.get("/v1/roles", NO_QUERY).await?,
        AdminCommand::Tenant { command } => match command {
            TenantCommand::List(paging) => api.get("/v1/tenants", &paging.query()).await?,
            TenantCommand::Get { id } => api.get(&format!("/v1/tenants/{id}"), NO_QUERY).await?,
            TenantCommand::Create { name, display_name } => {
                api.post("/v1/tenants", &CreateTenant { name, display_name })
                    .await?
            }
            TenantCommand::Update {
                id,
                display_name,
                state,
                if_match,
            } => {
                let body = UpdateTenant {
                    display_name: clearable("display-name", display_name)?,
                    state: optional("state", state)?,
                };
                api.patch(&format!("/v1/tenants/{id}"), &body, if_match.as_deref())
                    .await?
            }
        },
        AdminCommand::Environment { command } => match command {
            EnvironmentCommand::List(paging) => {
                api.get("/v1/environments", &paging.query()).await?
            }
            EnvironmentCommand::Get { id } => {
                api.get(&format!("/v1/environments/{id}"), NO_QUERY).await?
            }
            EnvironmentCommand::Create { name, description } => {
                api.post("/v1/environments", &CreateEnvironment { name, description })
                    .await?
            }
            EnvironmentCommand::Update {
                id,
                name,
                description,
                if_match,
            } => {
                let body = UpdateEnvironment {
                    name,
                    description: clearable("description", description)?,
                };
                api.patch(
                    &format!("/v1/environments/{id}"),
                    &body,
                    if_match.as_deref(),
                )
                .await?
            }
            EnvironmentCommand::Delete { id, if_match } => {
                api.delete(&format!("/v1/environments/{id}"), if_match.as_deref())
                    .await?
            }
        },
        AdminCommand::BusinessUnit { command } => match command {
            BusinessUnitCommand::List(paging) => {
                api.get("/v1/business-units", &paging.query()).await?
            }
            BusinessUnitCommand::Get { id } => {
                api.get(&format!("/v1/business-units/{id}"), NO_QUERY)
                    .await?
            }
            BusinessUnitCommand::Create {
                name,
                parent,
                description,
            } => {
                let body = CreateBusinessUnit {
                    name,
                    parent_id: optional("parent", parent)?,
                    description,
                };
                api.post("/v1/business-units", &body).await?
            }
            BusinessUnitCommand::Update {
                id,
                name,
                parent,
                description,
                if_match,
            } => {
                let body = UpdateBusinessUnit {
                    name,
                    parent_id: optional("parent", parent)?,
                    description: clearable("description", description)?,
                };
                api.patch(
                    &format!("/v1/business-units/{id}"),
                    &body,
                    if_match.as_deref(),
                )
                .await?
            }
            BusinessUnitCommand::Delete { id, if_match } => {
                api.delete(&format!("/v1/business-units/{id}"), if_match.as_deref())
                    .await?
            }
        },
        AdminCommand::User { command } => run_user(command, &api).await?,
        AdminCommand::Group { command } => match command {
            GroupCommand::List { prefix, paging } => {
                let query = GroupQuery {
                    prefix,
                    cursor: paging.cursor,
                    limit: paging.limit,
                };
                api.get("/v1/groups", &query).await?
            }
            GroupCommand::Get { id } => api.get(&format!("/v1/groups/{id}"), NO_QUERY).await?,
            GroupCommand::Create {
                name,
                description,
                business_unit,
            } => {
                let body = CreateGroup {
                    name,
                    description,
                    business_unit_id: optional("business-unit", business_unit)?,
                };
                api.post("/v1/groups", &body).await?
            }
            GroupCommand::Update {
                id,
                name,
                description,
                business_unit,
                if_match,
            } => {
                let body = UpdateGroup {
                    name,
                    description: clearable("description", description)?,
                    business_unit_id: clearable("business-unit", business_unit)?,
                };
                api.patch(&format!("/v1/groups/{id}"), &body, if_match.as_deref())
                    .await?
            }
            GroupCommand::Delete { id, if_match } => {
                api.delete(&format!("/v1/groups/{id}"), if_match.as_deref())
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
                let member = PrincipalRef {
                    kind: typed("kind", kind)?,
                    id: typed("member", member_id)?,
                };
                api.post(&format!("/v1/groups/{id}/members"), &member)
                    .await?
            }
            GroupCommand::RemoveMember {
                id,
                kind,
                member_id,
            } => {
                api.delete(&format!("/v1/groups/{id}/members/{kind}/{member_id}"), None)
                    .await?
            }
        },
        AdminCommand::ServicePrincipal { command } => match command {
            ServicePrincipalCommand::List(paging) => {
                api.get("/v1/service-principals", &paging.query()).await?
            }
            ServicePrincipalCommand::Get { id } => {
                api.get(&format!("/v1/service-principals/{id}"), NO_QUERY)
                    .await?
            }
            ServicePrincipalCommand::Create {
                name,
                description,
                external_id,
            } => {
                let body = CreateServicePrincipal {
                    name,
                    description,
                    external_id,
                };
                api.post("/v1/service-principals", &body).await?
            }
            ServicePrincipalCommand::Update {
                id,
                name,
                description,
                state,
                external_id,
                if_match,
            } => {
                let body = UpdateServicePrincipal {
                    name,
                    description: clearable("description", description)?,
                    state: optional("state", state)?,
                    external_id: clearable("external-id", external_id)?,
                };
                api.patch(
                    &format!("/v1/service-principals/{id}"),
                    &body,
                    if_match.as_deref(),
                )
                .await?
            }
            ServicePrincipalCommand::Delete { id, if_match } => {
                api.delete(&format!("/v1/service-principals/{id}"), if_match.as_deref())
                    .await?
            }
        },
        AdminCommand::ApiKey { command } => match command {
            ApiKeyCommand::List { service_principal } => {
                api.get(
                    &format!("/v1/service-principals/{service_principal}/api-keys"),
                    NO_QUERY,
                )
                .await?
            }
            ApiKeyCommand::Create {
                service_principal,
                name,
                expires_at,
            } => {
                let body = CreateApiKey {
                    name,
                    expires_at: instant("expires-at", expires_at)?,
                };
                api.post(
                    &format!("/v1/service-principals/{service_principal}/api-keys"),
                    &body,
                )
                .await?
            }
            ApiKeyCommand::Revoke {
                service_principal,
                key_id,
            } => {
                api.delete(
                    &format!("/v1/service-principals/{service_principal}/api-keys/{key_id}"),
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
                let query = AssignmentQuery {
                    principal_kind: optional("principal-kind", principal_kind)?,
                    principal_id: optional("principal-id", principal_id)?,
                    role: optional("role", role)?,
                    scope: optional("scope", scope)?,
                    cursor: paging.cursor,
                    limit: paging.limit,
                };
                api.get("/v1/role-assignments", &query).await?
            }
            RoleAssignmentCommand::Get { id } => {
                api.get(&format!("/v1/role-assignments/{id}"), NO_QUERY)
                    .await?
            }
            RoleAssignmentCommand::Create {
                kind,
                principal_id,
                role,
                scope,
                starts_at,
                ends_at,
            } => {
                let body = CreateRoleAssignment {
                    principal: PrincipalRef {
                        kind: typed("kind", kind)?,
                        id: typed("principal", principal_id)?,
                    },
                    role: typed("role", role)?,
                    scope: optional("scope", scope)?,
                    starts_at: instant("starts-at", starts_at)?,
                    ends_at: instant("ends-at", ends_at)?,
                };
                api.post("/v1/role-assignments", &body).await?
            }
            RoleAssignmentCommand::Delete { id } => {
                api.delete(&format!("/v1/role-assignments/{id}"), None)
                    .await?
            }
        },
        AdminCommand::ResourceType { command } => {
            authorization::resource_type(&api, command).await?
        }
        AdminCommand::CustomRole { command } => authorization::custom_role(&api, command).await?,
        AdminCommand::Record { command } => authorization::record(&api, command).await?,
        AdminCommand::Share { command } => authorization::share(&api, command).await?,
        AdminCommand::DenyAssignment { command } => {
            authorization::deny_assignment(&api, command).await?
        }
        AdminCommand::SignInSettings { command } => settings::sign_in(&api, command).await?,
        AdminCommand::AdministratorPolicy { command } => {
            settings::administrator_policy(&api, command).await?
        }
        AdminCommand::AccessSettings { command } => settings::access(&api, command).await?,
        AdminCommand::SigningKey { command } => settings::signing_key(&api, command).await?,
        AdminCommand::Branding { command } => settings::branding(&api, command).await?,
        AdminCommand::OAuthClient { command } => settings::oauth_client(&api, command).await?,
        AdminCommand::Location { command } => conditional::location(&api, command).await?,
        AdminCommand::AccessPolicy { command } => conditional::access_policy(&api, command).await?,
        AdminCommand::Device { command } => crate::devices::run(&api, command).await?,
        AdminCommand::Risk { command } => crate::risk::run(&api, command).await?,
    };
    if let Some(what) = removing {
        eprintln!("Done: {what}.");
    }
    crate::output::print(&answer)
}

async fn run_user(command: UserCommand, api: &Api) -> anyhow::Result<Value> {
    Ok(match command {
        UserCommand::List {
            state,
            kind,
            prefix,
            paging,
        } => {
            let query = UserQuery {
                state: optional("state", state)?,
                kind: optional("kind", kind)?,
                prefix,
                business_unit_id: None,
                cursor: paging.cursor,
                limit: paging.limit,
            };
            api.get("/v1/users", &query).await?
        }
        UserCommand::Get { id } => api.get(&format!("/v1/users/{id}"), NO_QUERY).await?,
        UserCommand::Create {
            user_name,
            email,
            email_verified,
            display_name,
            guest,
            sponsor,
            expires_at,
            business_unit,
            external_id,
        } => {
            let body = CreateUser {
                user_name,
                email,
                email_verified: email_verified.then_some(true),
                display_name,
                kind: Some(if guest {
                    UserKind::Guest
                } else {
                    UserKind::Member
                }),
                sponsor_id: optional("sponsor", sponsor)?,
                expires_at: instant("expires-at", expires_at)?,
                business_unit_id: optional("business-unit", business_unit)?,
                external_id,
            };
            api.post("/v1/users", &body).await?
        }
        UserCommand::Update {
            id,
            user_name,
            email,
            email_verified,
            display_name,
            state,
            sponsor,
            expires_at,
            business_unit,
            external_id,
            if_match,
        } => {
            let body = UpdateUser {
                user_name,
                email: clearable("email", email)?,
                email_verified,
                display_name: clearable("display-name", display_name)?,
                state: optional("state", state)?,
                sponsor_id: optional("sponsor", sponsor)?,
                expires_at: clearable_instant("expires-at", expires_at)?,
                business_unit_id: optional("business-unit", business_unit)?,
                external_id: clearable("external-id", external_id)?,
            };
            api.patch(&format!("/v1/users/{id}"), &body, if_match.as_deref())
                .await?
        }
        UserCommand::Delete { id, if_match } => {
            api.delete(&format!("/v1/users/{id}"), if_match.as_deref())
                .await?
        }
        UserCommand::Restore { id } => api.act(&format!("/v1/users/{id}/restore")).await?,
        UserCommand::Purge { id } => api.act(&format!("/v1/users/{id}/purge")).await?,
        UserCommand::Groups { id } => api.get(&format!("/v1/users/{id}/groups"), NO_QUERY).await?,
        UserCommand::SetPassword { id, no_must_change } => {
            let body = SetPassword {
                password: read_password_from_stdin()?,
                must_change: Some(!no_must_change),
            };
            api.put(&format!("/v1/users/{id}/password"), &body, None)
                .await?;
            eprintln!("password set");
            Value::Null
        }
        UserCommand::ResetMfa { id } => {
            api.delete(&format!("/v1/users/{id}/mfa"), None).await?;
            eprintln!(
                "second factor reset: the user's sessions ended; they set up a new one at their next sign-in"
            );
            Value::Null
        }
        UserCommand::Invite { id, hours, send } => {
            let body = EnrolmentLinkRequest {
                expires_in_hours: Some(hours),
                send: Some(send),
            };
            let link: EnrolmentLink = serde_json::from_value(
                api.post(&format!("/v1/users/{id}/enrolment-link"), &body)
                    .await?,
            )
            .context(
                "the server's enrolment link is not what this version of portcullis expects",
            )?;
            let until = link
                .expires_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| "it expires".into());
            match (link.url, link.sent_to) {
                (Some(url), _) => {
                    println!("{url}");
                    eprintln!(
                        "Give this link to the user over a channel you trust: it sets their password, once, until {until}."
                    );
                }
                (None, sent_to) => eprintln!(
                    "The invitation is on its way to {}: its link works once, until {until}.",
                    sent_to.as_deref().unwrap_or("the user's address")
                ),
            }
            Value::Null
        }
        UserCommand::VerifyEmail { id } => {
            api.act(&format!("/v1/users/{id}/email-verification"))
                .await?
        }
        UserCommand::Lockout { id } => {
            api.get(&format!("/v1/users/{id}/lockout"), NO_QUERY)
                .await?
        }
        UserCommand::Unlock { id, reason } => {
            api.post(
                &format!("/v1/users/{id}/lockout/unlock"),
                &UnlockRequest { reason },
            )
            .await?
        }
        UserCommand::Password { id } => {
            api.get(&format!("/v1/users/{id}/password"), NO_QUERY)
                .await?
        }
        UserCommand::Mfa { id } => api.get(&format!("/v1/users/{id}/mfa"), NO_QUERY).await?,
        UserCommand::Import { file } => crate::imports::import_users(api, &file).await?,
        UserCommand::RemovePassword { id } => {
            api.delete(&format!("/v1/users/{id}/password"), None)
                .await?
        }
        UserCommand::Sessions { id } => {
            api.get(&format!("/v1/users/{id}/sessions"), NO_QUERY)
                .await?
        }
        UserCommand::EndSessions { id } => {
            api.delete(&format!("/v1/users/{id}/sessions"), None)
                .await?
        }
        UserCommand::Passkeys { id } => {
            api.get(&format!("/v1/users/{id}/passkeys"), NO_QUERY)
                .await?
        }
        UserCommand::RemovePasskey { id, passkey_id } => {
            let passkey_id: PasskeyId = typed("passkey", passkey_id)?;
            api.delete(&format!("/v1/users/{id}/passkeys/{passkey_id}"), None)
                .await?
        }
        UserCommand::Consents { id } => {
            api.get(&format!("/v1/users/{id}/consents"), NO_QUERY)
                .await?
        }
        UserCommand::WithdrawConsent { id, client } => {
            api.delete(&format!("/v1/users/{id}/consents/{client}"), None)
                .await?
        }
    })
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
