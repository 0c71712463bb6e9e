//! The request and response types of the Portcullis admin REST API.
//!
//! The server deserializes requests into these types and documents them in its OpenAPI
//! document; the `portcullis` command line builds its requests from the same types, so the
//! two cannot drift apart. Responses that are domain objects (a user, a group, an audit
//! record) are the `portcullis-core` types, re-exported here under [`model`].
//!
//! Request bodies skip absent optional fields when serialized, so that a client sends only
//! what it means to change. In PATCH bodies a field of type `Option<Option<T>>` tells
//! "leave as is" (`None`, not sent) from "clear" (`Some(None)`, sent as `null`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod access;
pub mod audit;
pub mod conditional;
pub mod devices;
pub mod directory;
pub mod groups;
pub mod ops;
pub mod resources;
pub mod risk;
pub mod roles;
pub mod service_principals;
pub mod signing_keys;
pub mod tenants;
pub mod users;

/// Every list that is not paged: `{"items": [...]}` (a paged list is a [`model::Page`], which
/// adds `next_cursor`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// The domain objects the API answers with.
pub mod model {
    pub use portcullis_core::administrators::AdministratorPolicy;
    pub use portcullis_core::audit::{ApiUse, AuditRecord, Outcome};
    pub use portcullis_core::authz::{BuiltinRole, RoleRef, Scope};
    pub use portcullis_core::identity::{
        ApiKey, Group, LifecycleState, PrincipalKind, PrincipalRef, ServicePrincipal, Tenant, User,
        UserKind,
    };
    pub use portcullis_core::oauth::{ClientSettings, ClientType, GrantType};
    pub use portcullis_core::page::Page;
    pub use portcullis_core::resources::{
        AccessSettings, DenyAssignment, ResourceAction, RolePermission,
    };
    pub use portcullis_core::session::{SignInSettings, Strength};
    pub use portcullis_core::{
        BusinessUnitId, EnvironmentId, GroupId, PasskeyId, RoleAssignmentId, ServicePrincipalId,
        UserId,
    };
}

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`), for
/// PATCH bodies where null clears a value.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// [`double_option`] for RFC 3339 timestamps.
pub mod rfc3339_double_option {
    use serde::{Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        value: &Option<Option<OffsetDateTime>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::option::serialize(&value.flatten(), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
        time::serde::rfc3339::option::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::users::UpdateUser;

    #[test]
    fn a_patch_sends_only_what_it_changes_and_null_to_clear() {
        let patch = UpdateUser {
            user_name: None,
            email: Some(None),
            email_verified: None,
            display_name: Some(Some("Ada".into())),
            state: None,
            sponsor_id: None,
            expires_at: Some(None),
            business_unit_id: None,
            external_id: None,
        };
        let sent = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"email": null, "display_name": "Ada", "expires_at": null})
        );
        let read: UpdateUser = serde_json::from_value(sent).unwrap();
        assert_eq!(read.email, Some(None));
        assert_eq!(read.expires_at, Some(None));
        assert_eq!(read.user_name, None);
    }
}
