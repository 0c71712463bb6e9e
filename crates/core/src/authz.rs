//! Portcullis's own vocabulary of authorization: its control-plane actions, the scopes an
//! assignment is made at, the built-in roles and their permissions, and role assignments. The
//! decisions themselves are the engine's (`engine::tenant::TenantEngine::check_control`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::PrincipalRef;
use crate::ids::*;

/// Whether an action moves data or changes configuration. Everything Portcullis itself exposes
/// today is control plane; the data plane arrives with resource types registered by tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    Data,
    Control,
}

macro_rules! actions {
    ($($variant:ident => $slug:literal, $platform:literal, $env:literal;)*) => {
        /// A control-plane action on Portcullis itself.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $($variant),* }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $slug),* }
            }

            /// Platform actions manage tenants themselves and are only ever granted to the
            /// operator tenant's administrators.
            pub fn is_platform(self) -> bool {
                match self { $(Action::$variant => $platform),* }
            }

            /// Whether the action can be granted at environment scope (otherwise only a
            /// tenant-wide assignment grants it).
            pub fn is_environment_scoped(self) -> bool {
                match self { $(Action::$variant => $env),* }
            }
        }

        impl FromStr for Action {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($slug => Ok(Action::$variant),)* _ => Err(()) }
            }
        }
    };
}

actions! {
    TenantCreate => "tenant.create", true, false;
    TenantList => "tenant.list", true, false;
    TenantManage => "tenant.manage", true, false;
    TenantRead => "tenant.read", false, false;
    TenantUpdate => "tenant.update", false, false;
    EnvironmentCreate => "environment.create", false, false;
    EnvironmentRead => "environment.read", false, true;
    EnvironmentUpdate => "environment.update", false, true;
    EnvironmentDelete => "environment.delete", false, true;
    BusinessUnitRead => "business_unit.read", false, false;
    BusinessUnitWrite => "business_unit.write", false, false;
    UserRead => "user.read", false, false;
    UserCreate => "user.create", false, false;
    UserUpdate => "user.update", false, false;
    UserDelete => "user.delete", false, false;
    UserCredentialReset => "user.credential.reset", false, false;
    GroupRead => "group.read", false, false;
    GroupWrite => "group.write", false, false;
    ServicePrincipalRead => "service_principal.read", false, false;
    ServicePrincipalWrite => "service_principal.write", false, false;
    CredentialManage => "service_principal.credential.manage", false, false;
    RoleRead => "role.read", false, true;
    RoleAssign => "role.assign", false, true;
    RoleWrite => "role.write", false, false;
    DenyAssignmentWrite => "deny_assignment.write", false, false;
    ResourceTypeRead => "resource_type.read", false, false;
    ResourceTypeWrite => "resource_type.write", false, false;
    RecordRead => "record.read", false, false;
    RecordWrite => "record.write", false, false;
    AccessEvaluate => "access.evaluate", false, false;
    AuditRead => "audit.read", false, false;
}

/// What Portcullis's own resource types are called in the engine, in roles and in deny
/// assignments: `portcullis:user`, never plain `user`, so that every identifier stays free for
/// the types a tenant registers for its applications (which cannot contain `:`).
pub const OWN_TYPE_PREFIX: &str = "portcullis:";

impl Action {
    pub fn plane(self) -> Plane {
        Plane::Control
    }

    /// Whether the action changes something (anything but reading, listing and asking the
    /// engine for decisions).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Self::TenantList
                | Self::TenantRead
                | Self::EnvironmentRead
                | Self::BusinessUnitRead
                | Self::UserRead
                | Self::GroupRead
                | Self::ServicePrincipalRead
                | Self::RoleRead
                | Self::ResourceTypeRead
                | Self::RecordRead
                | Self::AccessEvaluate
                | Self::AuditRead
        )
    }

    /// The action's name apart from any application's: `portcullis:user.read`.
    pub fn qualified(self) -> String {
        format!("{OWN_TYPE_PREFIX}{}", self.as_str())
    }

    /// The action a qualified name (`portcullis:user.read`) stands for.
    pub fn from_qualified(name: &str) -> Option<Action> {
        name.strip_prefix(OWN_TYPE_PREFIX)?.parse().ok()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(|()| {
            serde::de::Error::custom(format!(
                "{raw:?} is not one of Portcullis's actions (GET /v1/roles lists them)"
            ))
        })
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Action {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Action::ALL.iter().map(|a| a.as_str())))
            .examples([serde_json::json!("role.assign")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Action {}

/// Where an assignment applies, and where a request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Tenant,
    Environment(EnvironmentId),
    /// A business unit and every unit below it.
    BusinessUnit(BusinessUnitId),
    /// One registered record.
    Record(RecordId),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("tenant"),
            Scope::Environment(id) => write!(f, "environment/{id}"),
            Scope::BusinessUnit(id) => write!(f, "business_unit/{id}"),
            Scope::Record(id) => write!(f, "record/{id}"),
        }
    }
}

impl FromStr for Scope {
    type Err = crate::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            crate::ValidationError::new(
                "scope",
                "must be \"tenant\", \"environment/<id>\", \"business_unit/<id>\" or \"record/<id>\"",
            )
        };
        match s.split_once('/') {
            None if s == "tenant" => Ok(Scope::Tenant),
            Some(("environment", id)) => id.parse().map(Scope::Environment).map_err(|_| invalid()),
            Some(("business_unit", id)) => {
                id.parse().map(Scope::BusinessUnit).map_err(|_| invalid())
            }
            Some(("record", id)) => id.parse().map(Scope::Record).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: crate::ValidationError| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`tenant`, `environment/<environment id>`, `business_unit/<unit id>` (the unit and \
                 every unit below it) or `record/<record id>`",
            ))
            .examples([serde_json::json!(
                "environment/0190f1c2-7a1b-7c3d-8e4f-0123456789ab"
            )])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Scope {}

/// The built-in roles. They cannot be edited; a tenant clones one into a custom role to change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    /// Everything inside the tenant; in the operator tenant, also manages tenants.
    TenantAdministrator,
    /// Grants and removes role assignments; reads principals to do so.
    PrivilegedRoleAdministrator,
    /// Manages users and groups, but not principals that hold roles.
    UserAdministrator,
    /// Reads configuration, principals and the audit trail; changes nothing.
    SecurityReader,
    /// Reads the audit trail.
    Auditor,
    /// Manages service principals, their credentials and the tenant's security settings.
    SecurityAdministrator,
    /// Manages the environments it is assigned at, and assigns roles there.
    EnvironmentAdmin,
    /// Creates environments.
    EnvironmentMaker,
    /// Reads the tenant's own settings and directory structure.
    BasicUser,
    /// Asks the authorization engine for decisions: what an application's policy enforcement
    /// point holds.
    AccessEvaluator,
}

impl BuiltinRole {
    pub const ALL: &'static [BuiltinRole] = &[
        Self::TenantAdministrator,
        Self::PrivilegedRoleAdministrator,
        Self::UserAdministrator,
        Self::SecurityReader,
        Self::Auditor,
        Self::SecurityAdministrator,
        Self::EnvironmentAdmin,
        Self::EnvironmentMaker,
        Self::BasicUser,
        Self::AccessEvaluator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantAdministrator => "tenant_administrator",
            Self::PrivilegedRoleAdministrator => "privileged_role_administrator",
            Self::UserAdministrator => "user_administrator",
            Self::SecurityReader => "security_reader",
            Self::Auditor => "auditor",
            Self::SecurityAdministrator => "security_administrator",
            Self::EnvironmentAdmin => "environment_admin",
            Self::EnvironmentMaker => "environment_maker",
            Self::BasicUser => "basic_user",
            Self::AccessEvaluator => "access_evaluator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// The role's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Self::TenantAdministrator => "Tenant administrator",
            Self::PrivilegedRoleAdministrator => "Privileged role administrator",
            Self::UserAdministrator => "User administrator",
            Self::SecurityReader => "Security reader",
            Self::Auditor => "Auditor",
            Self::SecurityAdministrator => "Security administrator",
            Self::EnvironmentAdmin => "Environment admin",
            Self::EnvironmentMaker => "Environment maker",
            Self::BasicUser => "Basic user",
            Self::AccessEvaluator => "Access evaluator",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::TenantAdministrator => {
                "Full control of the tenant; in the operator tenant, also creates and manages tenants."
            }
            Self::PrivilegedRoleAdministrator => {
                "Assigns and removes roles, including on groups that hold roles."
            }
            Self::UserAdministrator => "Creates and manages users and groups that hold no roles.",
            Self::SecurityReader => {
                "Reads configuration, principals and the audit trail; changes nothing."
            }
            Self::Auditor => "Reads the audit trail.",
            Self::SecurityAdministrator => {
                "Manages service principals, their credentials and the tenant's security settings; reads the rest."
            }
            Self::EnvironmentAdmin => {
                "Manages the environments it is assigned at, and assigns roles in them."
            }
            Self::EnvironmentMaker => "Creates environments.",
            Self::BasicUser => "Reads the tenant's settings and directory structure.",
            Self::AccessEvaluator => {
                "Asks the authorization engine for decisions and searches (an application's enforcement point)."
            }
        }
    }

    pub fn permissions(self) -> &'static [Action] {
        use Action::*;
        match self {
            Self::TenantAdministrator => Action::ALL,
            Self::PrivilegedRoleAdministrator => &[
                TenantRead,
                EnvironmentRead,
                BusinessUnitRead,
                UserRead,
                GroupRead,
                ServicePrincipalRead,
                RoleRead,
                RoleAssign,
                RoleWrite,
                DenyAssignmentWrite,
                ResourceTypeRead,
            ],
            Self::UserAdministrator => &[
                TenantRead,
                EnvironmentRead,
                BusinessUnitRead,
                UserRead,
                UserCreate,
                UserUpdate,
                UserDelete,
                UserCredentialReset,
                GroupRead,
                GroupWrite,
                RoleRead,
            ],
            Self::SecurityReader => &[
                TenantRead,
                EnvironmentRead,
                BusinessUnitRead,
                UserRead,
                GroupRead,
                ServicePrincipalRead,
                RoleRead,
                ResourceTypeRead,
                RecordRead,
                AuditRead,
            ],
            Self::Auditor => &[TenantRead, AuditRead],
            Self::SecurityAdministrator => &[
                TenantRead,
                TenantUpdate,
                EnvironmentRead,
                BusinessUnitRead,
                UserRead,
                GroupRead,
                ServicePrincipalRead,
                ServicePrincipalWrite,
                CredentialManage,
                RoleRead,
                ResourceTypeRead,
                RecordRead,
                AuditRead,
            ],
            Self::EnvironmentAdmin => &[
                TenantRead,
                EnvironmentRead,
                EnvironmentUpdate,
                EnvironmentDelete,
                RoleRead,
                RoleAssign,
            ],
            Self::EnvironmentMaker => &[TenantRead, EnvironmentCreate, EnvironmentRead],
            Self::BasicUser => &[TenantRead, BusinessUnitRead],
            Self::AccessEvaluator => &[TenantRead, AccessEvaluate],
        }
    }
}

/// A role as an assignment names it: a built-in role by its name, or a tenant's own role by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleRef {
    Builtin(BuiltinRole),
    Custom(RoleId),
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleRef::Builtin(role) => f.write_str(role.as_str()),
            RoleRef::Custom(id) => id.fmt(f),
        }
    }
}

impl FromStr for RoleRef {
    type Err = crate::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuiltinRole::parse(s)
            .map(RoleRef::Builtin)
            .or_else(|| s.parse().ok().map(RoleRef::Custom))
            .ok_or_else(|| {
                crate::ValidationError::new(
                    "role",
                    "must be a built-in role's name (see GET /v1/roles) or a custom role's id",
                )
            })
    }
}

impl Serialize for RoleRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RoleRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: crate::ValidationError| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RoleRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A built-in role's name (`tenant_administrator`, …) or a custom role's id",
            ))
            .examples([serde_json::json!("user_administrator")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RoleRef {}

/// One role a principal holds, and how: the assignment, and the group it came through if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub assignment_id: RoleAssignmentId,
    pub role: RoleRef,
    pub scope: Scope,
    pub via_group: Option<GroupId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings_round_trip() {
        let env = EnvironmentId::generate();
        for scope in [
            Scope::Tenant,
            Scope::Environment(env),
            Scope::BusinessUnit(BusinessUnitId::generate()),
            Scope::Record(RecordId::generate()),
        ] {
            assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        }
        for bad in [
            "",
            "tenants",
            "environment/",
            "environment/x",
            "business_unit/1",
            "record/",
            "records/0190f1c2-7a1b-7c3d-8e4f-0123456789ab",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }
}

/// A role granted to a principal at a scope, optionally only within a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleAssignment {
    pub id: RoleAssignmentId,
    pub tenant_id: TenantId,
    pub principal: PrincipalRef,
    pub role: RoleRef,
    pub scope: Scope,
    /// Grants nothing before this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<time::OffsetDateTime>,
    /// Grants nothing from this time on.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

impl RoleAssignment {
    pub fn is_in_effect(&self, now: time::OffsetDateTime) -> bool {
        self.starts_at.is_none_or(|at| at <= now) && self.ends_at.is_none_or(|at| now < at)
    }
}

/// Checks a requested time window: it must end after it starts, and end in the future.
pub fn validate_window(
    starts_at: Option<time::OffsetDateTime>,
    ends_at: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> Result<(), crate::ValidationError> {
    if let Some(end) = ends_at {
        if end <= now {
            return Err(crate::ValidationError::new(
                "ends_at",
                "must be in the future",
            ));
        }
        if starts_at.is_some_and(|start| start >= end) {
            return Err(crate::ValidationError::new(
                "ends_at",
                "must be after starts_at",
            ));
        }
    }
    Ok(())
}
