use portcullis_core::authz::BuiltinRole;
use portcullis_core::authz::RoleRef;
use portcullis_core::authz::Scope;
use portcullis_core::identity::PrincipalKind;
use portcullis_core::identity::PrincipalRef;
use serde::Deserialize;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleDefinition {
    pub name: BuiltinRole,
    pub description: &'static str,
    /// The actions the role allows, e.g. `user.create`.
    pub permissions: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssignmentQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_kind: Option<PrincipalKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<Uuid>,
    /// A built-in role's name or a custom role's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleRef>,
    /// `tenant`, `environment/<id>`, `business_unit/<id>` or `record/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleAssignment {
    pub principal: PrincipalRef,
    /// A built-in role's name or a custom role's id.
    pub role: RoleRef,
    /// `tenant` (default), `environment/<id>`, `business_unit/<id>` (the unit and those below
    /// it) or `record/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The assignment grants nothing before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<OffsetDateTime>,
    /// The assignment grants nothing from this time on.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<OffsetDateTime>,
}
