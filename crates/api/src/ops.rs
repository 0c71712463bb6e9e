use serde::Deserialize;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// Tenants whose stored group memberships form a cycle: the principals on or under it are
    /// refused everything until an administrator removes one of the memberships named in the
    /// tenant's `authz.membership_cycle` audit event. Absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants_with_membership_cycles: Option<usize>,
}
