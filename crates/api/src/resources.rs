use portcullis_core::BusinessUnitId;
use portcullis_core::EnvironmentId;
use portcullis_core::authz::Scope;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::resources::ResourceAction;
use portcullis_core::resources::RolePermission;
use serde::Deserialize;
use serde::Serialize;
use utoipa::IntoParams;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResourceType {
    /// Lower-case letters, digits and `_`, starting with a letter. It may share a name with one of
    /// Portcullis's own types (`user`): their actions stay apart (`portcullis:user.read`).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub actions: Vec<ResourceAction>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceTypeBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub actions: Vec<ResourceAction>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomRoleBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Actions (`document.read`, or Portcullis's own such as `user.read`) with their depth.
    pub permissions: Vec<RolePermission>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRoleBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// A user or a group (a team).
    pub owner: PrincipalRef,
    pub business_unit_id: BusinessUnitId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<EnvironmentId>,
}

/// Which records of a type to list, in external-id order.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Records whose external id starts with this, compared exactly (case matters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    pub principal: PrincipalRef,
    /// Actions of the record's type: `read`, not `document.read`.
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDenyAssignment {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who is refused (a group refuses its members).
    pub principals: Vec<PrincipalRef>,
    /// Who is exempt even if among the principals (break-glass accounts).
    #[serde(default)]
    pub excluded: Vec<PrincipalRef>,
    /// Full action names: `document.delete`, `environment.delete`.
    pub actions: Vec<String>,
    /// `tenant` (default), `environment/<id>`, `business_unit/<id>` or `record/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}
