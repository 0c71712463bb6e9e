//! Typed identifiers. Each kind of object has its own id type, so a tenant id can never be passed
//! where a user id is expected. All ids are UUIDv7: unique without coordination between nodes and
//! ordered by creation time, which is what cursor pagination sorts by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// An organization: the outermost scope of every object.
    TenantId
);
id_type!(
    /// A named space inside a tenant (`dev`, `prod`, ...).
    EnvironmentId
);
id_type!(
    /// A node of a tenant's business-unit tree.
    BusinessUnitId
);
id_type!(
    /// A human identity.
    UserId
);
id_type!(
    /// A security group.
    GroupId
);
id_type!(
    /// A workload identity.
    ServicePrincipalId
);
id_type!(
    /// One API key of a service principal.
    ApiKeyId
);
id_type!(
    /// One role assignment.
    RoleAssignmentId
);
id_type!(
    /// A sign-in session.
    SessionId
);
id_type!(
    /// A passkey registered to a user.
    PasskeyId
);
id_type!(
    /// A user's authorization of an OAuth client: the code, and every token that came from it.
    GrantId
);
id_type!(
    /// A device's request to have a user approve its sign-in (RFC 8628).
    DeviceAuthorizationId
);
id_type!(
    /// A tenant's own role: a named set of permissions.
    RoleId
);
id_type!(
    /// A record registered with the authorization engine.
    RecordId
);
id_type!(
    /// Chosen actions on one record, given to one principal.
    ShareId
);
id_type!(
    /// A guardrail that refuses actions whatever was granted.
    DenyAssignmentId
);
id_type!(
    /// A named set of networks and countries that conditional access policies refer to.
    NamedLocationId
);
id_type!(
    /// A conditional access policy.
    AccessPolicyId
);
id_type!(
    /// A finding of identity protection: a risky sign-in or a reason a user is at risk.
    RiskDetectionId
);
id_type!(
    /// A device registered for a user, known by the key it keeps.
    RegisteredDeviceId
);
id_type!(
    /// A bulk import of users from a CSV file, and its report.
    UserImportId
);
