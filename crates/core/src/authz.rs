//! The authorization decision: may this principal perform this action at this scope?
//! Deny by default — an action is allowed only when one of the principal's role assignments
//! (direct or through a group) carries a role that contains it at a scope that covers the
//! request. A decision always says why, so an administrator can explain it.
//!
//! The caller gathers the principal's grants; this module never fetches anything.

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

impl Action {
    pub fn plane(self) -> Plane {
        Plane::Control
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

impl Scope {
    /// Whether an assignment at `self` covers a control-plane request at `requested`. Business
    /// units and records hold data, so assignments there never reach Portcullis's own settings.
    pub fn covers(self, requested: Scope) -> bool {
        match (self, requested) {
            (Scope::Tenant, _) => true,
            (Scope::Environment(a), Scope::Environment(b)) => a == b,
            _ => false,
        }
    }
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

    pub fn grants(self, action: Action) -> bool {
        self.permissions().contains(&action)
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
    pub role: BuiltinRole,
    pub scope: Scope,
    pub via_group: Option<GroupId>,
}

/// Everything the decision needs to know about who is asking.
#[derive(Debug, Clone)]
pub struct Subject {
    pub principal: PrincipalRef,
    pub tenant_id: TenantId,
    pub operator_tenant: bool,
    pub grants: Vec<Grant>,
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Allowed by this assignment.
    Granted {
        assignment_id: RoleAssignmentId,
        role: BuiltinRole,
        #[serde(serialize_with = "serialize_display")]
        scope: Scope,
        #[serde(skip_serializing_if = "Option::is_none")]
        via_group: Option<GroupId>,
    },
    /// A role that contains the action is held, but at a scope that does not cover the request.
    ScopeMismatch {
        role: BuiltinRole,
        #[serde(serialize_with = "serialize_display")]
        held_at: Scope,
    },
    /// The action manages tenants and only the operator tenant may do that.
    PlatformOnly,
    /// No role held contains the action.
    NoRole,
}

fn serialize_display<S: serde::Serializer>(v: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Granted {
                role,
                scope,
                via_group: None,
                ..
            } => {
                write!(f, "granted by role {} at {scope}", role.as_str())
            }
            Reason::Granted {
                role,
                scope,
                via_group: Some(g),
                ..
            } => {
                write!(
                    f,
                    "granted by role {} at {scope} through group {g}",
                    role.as_str()
                )
            }
            Reason::ScopeMismatch { role, held_at } => write!(
                f,
                "role {} is held only at {held_at}, which does not cover the request",
                role.as_str()
            ),
            Reason::PlatformOnly => f.write_str("only the operator tenant may manage tenants"),
            Reason::NoRole => f.write_str("no role held grants this action"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

/// Decides whether `subject` may perform `action` at `scope`. Deny by default.
pub fn authorize(subject: &Subject, action: Action, scope: Scope) -> Decision {
    if action.is_platform() && !subject.operator_tenant {
        return Decision {
            allowed: false,
            reason: Reason::PlatformOnly,
        };
    }
    // An action that cannot be held per environment is only granted tenant-wide.
    let effective_scope = if action.is_environment_scoped() {
        scope
    } else {
        Scope::Tenant
    };
    let mut mismatch = None;
    for grant in subject.grants.iter().filter(|g| g.role.grants(action)) {
        if grant.scope.covers(effective_scope) {
            return Decision {
                allowed: true,
                reason: Reason::Granted {
                    assignment_id: grant.assignment_id,
                    role: grant.role,
                    scope: grant.scope,
                    via_group: grant.via_group,
                },
            };
        }
        mismatch.get_or_insert(Reason::ScopeMismatch {
            role: grant.role,
            held_at: grant.scope,
        });
    }
    Decision {
        allowed: false,
        reason: mismatch.unwrap_or(Reason::NoRole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subject(grants: Vec<(BuiltinRole, Scope)>, operator: bool) -> Subject {
        Subject {
            principal: PrincipalRef::service_principal(ServicePrincipalId::generate()),
            tenant_id: TenantId::generate(),
            operator_tenant: operator,
            grants: grants
                .into_iter()
                .map(|(role, scope)| Grant {
                    assignment_id: RoleAssignmentId::generate(),
                    role,
                    scope,
                    via_group: None,
                })
                .collect(),
        }
    }

    #[test]
    fn deny_by_default() {
        let s = subject(vec![], false);
        for action in Action::ALL {
            let d = authorize(&s, *action, Scope::Tenant);
            assert!(!d.allowed, "{action}");
        }
    }

    #[test]
    fn platform_actions_need_the_operator_tenant() {
        let admin = subject(
            vec![(BuiltinRole::TenantAdministrator, Scope::Tenant)],
            false,
        );
        let d = authorize(&admin, Action::TenantCreate, Scope::Tenant);
        assert_eq!(d.reason, Reason::PlatformOnly);
        let operator = subject(
            vec![(BuiltinRole::TenantAdministrator, Scope::Tenant)],
            true,
        );
        assert!(authorize(&operator, Action::TenantCreate, Scope::Tenant).allowed);
        // Only the tenant administrator role carries platform actions.
        let reader = subject(vec![(BuiltinRole::SecurityReader, Scope::Tenant)], true);
        assert!(!authorize(&reader, Action::TenantCreate, Scope::Tenant).allowed);
    }

    #[test]
    fn environment_assignment_covers_only_its_environment() {
        let dev = EnvironmentId::generate();
        let prod = EnvironmentId::generate();
        let s = subject(
            vec![(BuiltinRole::TenantAdministrator, Scope::Environment(dev))],
            false,
        );
        assert!(authorize(&s, Action::EnvironmentUpdate, Scope::Environment(dev)).allowed);
        let d = authorize(&s, Action::EnvironmentUpdate, Scope::Environment(prod));
        assert!(matches!(d.reason, Reason::ScopeMismatch { .. }));
        // Tenant-wide actions are never granted by an environment assignment.
        assert!(!authorize(&s, Action::UserCreate, Scope::Environment(dev)).allowed);
        assert!(!authorize(&s, Action::UserCreate, Scope::Tenant).allowed);
    }

    #[test]
    fn roles_are_least_privilege() {
        let auditor = subject(vec![(BuiltinRole::Auditor, Scope::Tenant)], false);
        assert!(authorize(&auditor, Action::AuditRead, Scope::Tenant).allowed);
        assert!(!authorize(&auditor, Action::UserRead, Scope::Tenant).allowed);
        let users = subject(vec![(BuiltinRole::UserAdministrator, Scope::Tenant)], false);
        assert!(authorize(&users, Action::UserCreate, Scope::Tenant).allowed);
        assert!(!authorize(&users, Action::RoleAssign, Scope::Tenant).allowed);
        assert!(!authorize(&users, Action::CredentialManage, Scope::Tenant).allowed);
        let reader = subject(vec![(BuiltinRole::SecurityReader, Scope::Tenant)], false);
        for action in Action::ALL {
            let name = action.as_str();
            let writes = !(name.ends_with(".read") || name.ends_with(".list"));
            if writes {
                assert!(
                    !authorize(&reader, *action, Scope::Tenant).allowed,
                    "{name}"
                );
            }
        }
    }

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

    proptest! {
        /// The decision agrees with a direct reading of the rules, for any set of grants.
        #[test]
        fn agrees_with_reference(
            seed in proptest::collection::vec((0usize..5, 0usize..3), 0..6),
            action_index in 0usize..Action::ALL.len(),
            operator in any::<bool>(),
            requested_env in 0usize..3,
        ) {
            let envs: Vec<EnvironmentId> = (0..2).map(|_| EnvironmentId::generate()).collect();
            let scope_of = |i: usize| if i == 2 { Scope::Tenant } else { Scope::Environment(envs[i]) };
            let grants: Vec<(BuiltinRole, Scope)> =
                seed.iter().map(|(r, s)| (BuiltinRole::ALL[*r], scope_of(*s))).collect();
            let s = subject(grants.clone(), operator);
            let action = Action::ALL[action_index];
            let requested = scope_of(requested_env);
            let expected = (!action.is_platform() || operator)
                && grants.iter().any(|(role, held)| {
                    role.permissions().contains(&action)
                        && (*held == Scope::Tenant
                            || (action.is_environment_scoped() && *held == requested))
                });
            prop_assert_eq!(authorize(&s, action, requested).allowed, expected);
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
