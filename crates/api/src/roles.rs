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

/// A record or one of Portcullis's own objects, as the access explorer names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplorerResource {
    /// A resource type the tenant registered (`document`), or one of Portcullis's own by its
    /// bare name (`user`, `group`, `environment`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The record's external id; for Portcullis's own objects, any id (they are decided on the
    /// tenant's configuration), an environment's id for `environment`.
    pub id: String,
}

/// May this principal do this on this resource, and why?
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessQuestion {
    pub principal: PrincipalRef,
    /// An action of the resource's type: `read`, or `document.read`.
    pub action: String,
    pub resource: ExplorerResource,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessAnswer {
    pub allowed: bool,
    /// What allowed or refused it: `kind` and the ids it names (as AuthZEN decisions carry).
    #[schema(value_type = Object)]
    pub reason: portcullis_core::engine::tenant::Reason,
    /// The reason in words.
    pub reason_text: String,
    /// When the assignment or share that decided it is held by a group: the groups through
    /// which the principal is in it, from one it is directly in to the holder. Empty when the
    /// principal holds it itself.
    pub through: Vec<PrincipalRef>,
    /// The change-feed revision the answer was made at.
    pub revision: i64,
}

/// Who may do this on this resource?
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhoCanQuestion {
    pub action: String,
    pub resource: ExplorerResource,
    /// Only principals of these kinds (all kinds when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<PrincipalKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoCanAnswer {
    /// In (kind, id) order.
    pub principals: Vec<PrincipalRef>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub revision: i64,
}
