//! What a tenant registers for its own applications' data plane: resource types and their
//! actions, custom roles over those actions, records, shares, and deny assignments. These are
//! the stored, named forms; `engine::tenant` interns them into the snapshot that decides.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;
use crate::authz::{Action, OWN_TYPE_PREFIX, Plane, Scope};
use crate::engine::model::Depth;
use crate::identity::PrincipalRef;
use crate::ids::*;

pub const MAX_ACTIONS_PER_TYPE: usize = 64;
pub const MAX_PERMISSIONS_PER_ROLE: usize = 256;
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;
pub const MAX_PRINCIPALS_PER_DENY: usize = 256;

/// An action of a registered resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceAction {
    /// Lower-case letters, digits and `_`, starting with a letter; `read`, `approve`, …
    pub name: String,
    /// `data` (the application's records) or `control` (its configuration).
    pub plane: Plane,
    /// Allowed to anyone, signed in or not. Deny assignments still apply to principals.
    #[serde(default)]
    pub public: bool,
}

/// A kind of record an application protects (`document`, `invoice`, …) and what can be done
/// to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceType {
    pub name: String,
    pub description: Option<String>,
    pub actions: Vec<ResourceAction>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl ResourceType {
    /// The action's full name, as roles, shares and checks use it: `document.read`.
    pub fn qualified(&self, action: &str) -> String {
        format!("{}.{action}", self.name)
    }
}

/// Lower-case letters, digits and `_`, starting with a letter, at most 63 characters.
fn parse_identifier(field: &str, raw: &str) -> Result<(), ValidationError> {
    let valid = !raw.is_empty()
        && raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be 1 to 63 lower-case letters, digits or `_`, starting with a letter",
        ))
    }
}

/// Checks a resource type's name and actions. Any identifier is free, `user` and `group`
/// included: Portcullis's own types live apart, under `portcullis:`.
pub fn validate_resource_type(
    name: &str,
    actions: &[ResourceAction],
) -> Result<(), ValidationError> {
    parse_identifier("name", name)?;
    if actions.is_empty() || actions.len() > MAX_ACTIONS_PER_TYPE {
        return Err(ValidationError::new(
            "actions",
            format!("must list 1 to {MAX_ACTIONS_PER_TYPE} actions"),
        ));
    }
    let mut seen = BTreeSet::new();
    for action in actions {
        parse_identifier("actions[].name", &action.name)?;
        if !seen.insert(action.name.as_str()) {
            return Err(ValidationError::new(
                "actions",
                format!("action `{}` is listed twice", action.name),
            ));
        }
    }
    Ok(())
}

/// One permission of a custom role: an action (`document.read`, or one of Portcullis's own
/// such as `user.read`) and how far it reaches from the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolePermission {
    pub action: String,
    /// `own`, `business_unit`, `business_unit_tree` or `tenant` (the default). Portcullis's own
    /// actions are always tenant deep.
    #[serde(default = "tenant_depth")]
    pub depth: Depth,
}

fn tenant_depth() -> Depth {
    Depth::Tenant
}

/// A tenant's own role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomRole {
    pub id: RoleId,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<RolePermission>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// The stored, unambiguous name of an action that a role or a deny assignment lists: an action
/// of one of the tenant's resource types as written (`document.read`); one of Portcullis's own
/// with its prefix (`portcullis:user.read`). Portcullis's own may be written without the prefix
/// while the tenant has registered no type of that name; once stored it keeps its prefix, so
/// registering such a type later cannot change what an existing role grants or a deny
/// assignment refuses.
pub fn canonical_action(raw: &str, types: &[ResourceType]) -> Result<String, ValidationError> {
    if Action::from_qualified(raw).is_some() || action_exists(types, raw) {
        return Ok(raw.to_owned());
    }
    let registered = raw
        .split_once('.')
        .is_some_and(|(ty, _)| types.iter().any(|t| t.name == ty));
    match raw.parse::<Action>() {
        Ok(own) if !registered => Ok(own.qualified()),
        _ => Err(unknown_action(raw)),
    }
}

/// Checks a role's permissions against the actions that exist (Portcullis's own, and those of
/// the tenant's resource types) and gives them their stored names. Portcullis's own actions
/// must be tenant deep.
pub fn canonical_permissions(
    permissions: Vec<RolePermission>,
    types: &[ResourceType],
) -> Result<Vec<RolePermission>, ValidationError> {
    if permissions.len() > MAX_PERMISSIONS_PER_ROLE {
        return Err(ValidationError::new(
            "permissions",
            format!("must list at most {MAX_PERMISSIONS_PER_ROLE} permissions"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut canonical = Vec::with_capacity(permissions.len());
    for permission in permissions {
        let action = canonical_action(&permission.action, types)?;
        if Action::from_qualified(&action).is_some() && permission.depth != Depth::Tenant {
            return Err(ValidationError::new(
                "permissions",
                format!(
                    "`{}` is one of Portcullis's own actions, which are always `tenant` deep",
                    permission.action
                ),
            ));
        }
        if !seen.insert(action.clone()) {
            return Err(ValidationError::new(
                "permissions",
                format!("`{}` is listed twice", permission.action),
            ));
        }
        canonical.push(RolePermission {
            action,
            depth: permission.depth,
        });
    }
    Ok(canonical)
}

fn unknown_action(action: &str) -> ValidationError {
    ValidationError::new(
        "actions",
        format!(
            "`{action}` is not an action: use `<resource type>.<action>` of a registered resource type, or one of Portcullis's own (`{OWN_TYPE_PREFIX}user.read`)"
        ),
    )
}

fn action_exists(types: &[ResourceType], qualified: &str) -> bool {
    qualified.split_once('.').is_some_and(|(ty, action)| {
        types
            .iter()
            .any(|t| t.name == ty && t.actions.iter().any(|a| a.name == action))
    })
}

/// Checks a list of full action names (a deny assignment's) and gives them their stored names.
pub fn canonical_actions(
    actions: Vec<String>,
    types: &[ResourceType],
) -> Result<Vec<String>, ValidationError> {
    if actions.is_empty() || actions.len() > MAX_PERMISSIONS_PER_ROLE {
        return Err(ValidationError::new(
            "actions",
            format!("must list 1 to {MAX_PERMISSIONS_PER_ROLE} actions"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut canonical = Vec::with_capacity(actions.len());
    for action in &actions {
        let action = canonical_action(action, types)?;
        if seen.insert(action.clone()) {
            canonical.push(action);
        }
    }
    Ok(canonical)
}

/// A record the engine decides about: who owns it, where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordEntry {
    pub id: RecordId,
    pub resource_type: String,
    /// The application's own id for the record, unique per resource type.
    pub external_id: String,
    /// A user or a group (a team) that owns it.
    pub owner: PrincipalRef,
    pub business_unit_id: BusinessUnitId,
    pub environment_id: Option<EnvironmentId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Checks an application's record id: printable, 1 to 256 characters.
pub fn validate_external_id(raw: &str) -> Result<(), ValidationError> {
    if raw.is_empty()
        || raw.chars().count() > MAX_EXTERNAL_ID_CHARS
        || raw.chars().any(char::is_control)
    {
        return Err(ValidationError::new(
            "external_id",
            format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters without control characters"),
        ));
    }
    Ok(())
}

/// Chosen actions of one record, given to one principal (a group's members all get them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Share {
    pub id: ShareId,
    pub record_id: RecordId,
    pub principal: PrincipalRef,
    /// Action names of the record's type (`read`, not `document.read`).
    pub actions: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Checks a share's actions against the record's type.
pub fn validate_share_actions(
    actions: &[String],
    ty: &ResourceType,
) -> Result<(), ValidationError> {
    if actions.is_empty() || actions.len() > MAX_ACTIONS_PER_TYPE {
        return Err(ValidationError::new(
            "actions",
            format!("must list 1 to {MAX_ACTIONS_PER_TYPE} actions"),
        ));
    }
    match actions
        .iter()
        .find(|a| !ty.actions.iter().any(|known| &known.name == *a))
    {
        Some(bad) => Err(ValidationError::new(
            "actions",
            format!("`{bad}` is not an action of resource type `{}`", ty.name),
        )),
        None => Ok(()),
    }
}

/// A guardrail: the principals (and their groups' members) may not do the actions at the
/// scope, whatever they were granted, unless they are among the excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DenyAssignment {
    pub id: DenyAssignmentId,
    pub name: String,
    pub description: Option<String>,
    pub principals: Vec<PrincipalRef>,
    pub excluded: Vec<PrincipalRef>,
    /// Full action names: `document.delete`, `environment.delete`, …
    pub actions: Vec<String>,
    pub scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Checks a deny assignment's principal lists.
pub fn validate_deny_principals(
    principals: &[PrincipalRef],
    excluded: &[PrincipalRef],
) -> Result<(), ValidationError> {
    if principals.is_empty() || principals.len() > MAX_PRINCIPALS_PER_DENY {
        return Err(ValidationError::new(
            "principals",
            format!("must list 1 to {MAX_PRINCIPALS_PER_DENY} principals"),
        ));
    }
    if excluded.len() > MAX_PRINCIPALS_PER_DENY {
        return Err(ValidationError::new(
            "excluded",
            format!("must list at most {MAX_PRINCIPALS_PER_DENY} principals"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(name: &str) -> ResourceAction {
        ResourceAction {
            name: name.into(),
            plane: Plane::Data,
            public: false,
        }
    }

    fn document() -> ResourceType {
        ResourceType {
            name: "document".into(),
            description: None,
            actions: vec![action("read"), action("delete")],
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            version: 1,
        }
    }

    #[test]
    fn resource_types_need_identifiers_and_distinct_actions() {
        assert!(validate_resource_type("document", &[action("read")]).is_ok());
        // Portcullis's own types live under `portcullis:`: their bare names are free.
        for name in ["user", "group", "audit", "record"] {
            assert!(
                validate_resource_type(name, &[action("read")]).is_ok(),
                "{name}"
            );
        }
        for bad in [
            "",
            "Document",
            "9doc",
            "doc-ument",
            "doc.x",
            "portcullis:user",
            &"d".repeat(64),
        ] {
            assert!(
                validate_resource_type(bad, &[action("read")]).is_err(),
                "{bad}"
            );
        }
        assert!(validate_resource_type("document", &[]).is_err());
        assert!(validate_resource_type("document", &[action("read"), action("read")]).is_err());
        assert!(validate_resource_type("document", &[action("Read")]).is_err());
    }

    fn perm(action: &str, depth: Depth) -> RolePermission {
        RolePermission {
            action: action.into(),
            depth,
        }
    }

    #[test]
    fn permissions_name_existing_actions_and_are_stored_unambiguously() {
        let types = [document()];
        let stored = canonical_permissions(
            vec![
                perm("document.read", Depth::Own),
                perm("user.read", Depth::Tenant),
                perm("portcullis:group.read", Depth::Tenant),
            ],
            &types,
        )
        .unwrap();
        let names: Vec<&str> = stored.iter().map(|p| p.action.as_str()).collect();
        assert_eq!(
            names,
            [
                "document.read",
                "portcullis:user.read",
                "portcullis:group.read"
            ]
        );
        for bad in [
            vec![perm("document.write", Depth::Own)],
            vec![perm("invoice.read", Depth::Own)],
            vec![perm("user.read", Depth::Own)],
            vec![perm("portcullis:user.read", Depth::Own)],
            vec![perm("portcullis:document.read", Depth::Tenant)],
            vec![
                perm("document.read", Depth::Own),
                perm("document.read", Depth::Tenant),
            ],
            // The same action, written both ways.
            vec![
                perm("user.read", Depth::Tenant),
                perm("portcullis:user.read", Depth::Tenant),
            ],
        ] {
            assert!(
                canonical_permissions(bad.clone(), &types).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            canonical_actions(
                vec![
                    "document.delete".into(),
                    "environment.delete".into(),
                    "portcullis:environment.delete".into()
                ],
                &types
            )
            .unwrap(),
            ["document.delete", "portcullis:environment.delete"]
        );
        assert!(canonical_actions(vec!["document".into()], &types).is_err());
        assert!(canonical_actions(vec![], &types).is_err());
        assert!(validate_share_actions(&["read".into()], &types[0]).is_ok());
        assert!(validate_share_actions(&["document.read".into()], &types[0]).is_err());
    }

    #[test]
    fn a_registered_type_takes_its_bare_name_from_portcullis() {
        let mut user = document();
        user.name = "user".into();
        let types = [user];
        // `user.read` is now the application's action; Portcullis's own keeps its prefix.
        assert_eq!(canonical_action("user.read", &types).unwrap(), "user.read");
        assert_eq!(
            canonical_action("portcullis:user.read", &types).unwrap(),
            "portcullis:user.read"
        );
        // An own action the application's type lacks is not quietly taken as Portcullis's.
        assert!(canonical_action("user.create", &types).is_err());
        assert!(canonical_action("portcullis:user.create", &types).is_ok());
    }

    #[test]
    fn external_ids_are_printable_and_bounded() {
        assert!(validate_external_id("INV-2026/0001 (draft)").is_ok());
        assert!(validate_external_id("").is_err());
        assert!(validate_external_id("a\nb").is_err());
        assert!(validate_external_id(&"x".repeat(257)).is_err());
    }
}

/// The most a tenant may thin out its audit of allowed decisions: one in a million.
pub const MAX_AUDIT_ALLOWED_ONE_IN: u32 = 1_000_000;

/// The most subject types a tenant may name.
pub const MAX_SUBJECT_TYPES: usize = 32;

/// A tenant's settings of the decisions the engine gives its applications.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessSettings {
    /// Write one in this many allowed decisions to the audit trail: `0` none (the default),
    /// `1` every one, `100` one in a hundred. Denied decisions are always written.
    pub audit_allowed_one_in: u32,
    /// The enforcement points' own names for kinds of subject, each standing for principal
    /// kinds: `{"identity": ["user", "service_principal"], "account": ["user"]}`. An
    /// identifier that several of the kinds answer to is refused as ambiguous.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub subject_types: crate::engine::subjects::SubjectTypes,
}

impl AccessSettings {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.subject_types.len() > MAX_SUBJECT_TYPES {
            return Err(ValidationError::new(
                "subject_types",
                format!("name at most {MAX_SUBJECT_TYPES} subject types"),
            ));
        }
        for (name, kinds) in &self.subject_types {
            let field = format!("subject_types.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c));
            if !valid_name {
                return Err(ValidationError::new(
                    "subject_types",
                    "names must be 1 to 63 letters, digits, `_`, `-`, `:` or `.`",
                ));
            }
            if name == "anonymous" || crate::identity::PrincipalKind::parse(name).is_some() {
                return Err(ValidationError::new(
                    field,
                    format!("`{name}` is already a subject type of its own"),
                ));
            }
            let mut distinct = kinds.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if kinds.is_empty() || distinct.len() != kinds.len() {
                return Err(ValidationError::new(
                    field,
                    "list each of `user`, `group` and `service_principal` at most once, and at least one",
                ));
            }
        }
        if self.audit_allowed_one_in > MAX_AUDIT_ALLOWED_ONE_IN {
            return Err(ValidationError::new(
                "audit_allowed_one_in",
                format!(
                    "must be 0 (none), 1 (all) or at most {MAX_AUDIT_ALLOWED_ONE_IN} (one in that many)"
                ),
            ));
        }
        Ok(())
    }
}
