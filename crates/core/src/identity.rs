//! Identities and the containers they live in: tenants, environments, business units, users,
//! groups, service principals and their API keys. These are the values the store persists and
//! the API returns; the rules about them (who may be a guest's sponsor, when a key is usable)
//! live here as plain functions of those values and the current time.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::*;

/// Whether an object may be used. `deleted` objects are kept for the retention window so they
/// can be restored, then purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    Active,
    Disabled,
    Deleted,
}

impl LifecycleState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// An organization. The operator tenant holds the staff who run this Portcullis installation
/// and is the only one whose administrators may create and manage other tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub display_name: Option<String>,
    pub operator: bool,
    pub state: LifecycleState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Incremented on every change; the ETag of the object.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Environment {
    pub id: EnvironmentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// A node of the business-unit tree. The root (no parent) is created with the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusinessUnit {
    pub id: BusinessUnitId,
    pub tenant_id: TenantId,
    pub parent_id: Option<BusinessUnitId>,
    pub name: String,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    Member,
    /// An outside collaborator: has a sponsor (a member) and an expiry date.
    Guest,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Guest => "guest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "guest" => Some(Self::Guest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub user_name: String,
    pub email: Option<String>,
    /// Whether `email` is proven to be the user's: they used a link mailed to it, or an
    /// administrator said so. Changing the address makes it unproven again.
    #[serde(default)]
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub kind: UserKind,
    pub sponsor_id: Option<UserId>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub business_unit_id: BusinessUnitId,
    pub state: LifecycleState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// The id another system knows the user by (SCIM `externalId`, an upstream identity
    /// provider's `sub`), unique in the tenant; enforcement points may name the user by it.
    pub external_id: Option<String>,
}

/// Checks an external id as given (compared exactly, so not normalized): printable, 1 to 256
/// characters.
pub fn parse_external_id(raw: Option<String>) -> Result<Option<String>, crate::ValidationError> {
    if let Some(id) = &raw {
        crate::resources::validate_external_id(id)?;
    }
    Ok(raw)
}

/// Whether a user's address is proven theirs after an edit: an administrator may say so (or
/// not) outright; otherwise proof carries over only while the address stays the same one.
pub fn email_verified_after(
    before: (Option<&str>, bool),
    after: Option<&str>,
    stated: Option<bool>,
) -> bool {
    let Some(after) = after else {
        return false;
    };
    match stated {
        Some(stated) => stated,
        None => before.1 && before.0 == Some(after),
    }
}

impl User {
    /// What an attacker guessing this user's password knows about them: their names and
    /// e-mail address, which the password policy counts as known words.
    pub fn known_words(&self) -> Vec<&str> {
        [
            Some(self.user_name.as_str()),
            self.email.as_deref(),
            self.display_name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether this user may authenticate and act at `now`: active, and for guests not past
    /// their expiry date.
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.unusable_reason(now).is_none()
    }

    /// Why this user may not authenticate at `now`, for the audit trail; `None` when they may.
    pub fn unusable_reason(&self, now: OffsetDateTime) -> Option<&'static str> {
        match self.state {
            LifecycleState::Disabled => Some("user disabled"),
            LifecycleState::Deleted => Some("user deleted"),
            LifecycleState::Active if self.expires_at.is_some_and(|at| now >= at) => {
                Some("user expired")
            }
            LifecycleState::Active => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    pub id: GroupId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    /// Set, the group is a team of this unit: roles it holds at `business_unit` and
    /// `business_unit_tree` depth reach from this unit, not from each member's.
    pub business_unit_id: Option<BusinessUnitId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePrincipal {
    pub id: ServicePrincipalId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub state: LifecycleState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// The id another system knows the service principal by, unique in the tenant.
    pub external_id: Option<String>,
}

/// An API key as listed: everything but the secret, which is shown once at creation and then
/// exists only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub service_principal_id: ServicePrincipalId,
    /// The public part of the key (`pcs_…`), safe to show and to search logs for.
    pub prefix: String,
    pub name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// Why an API key cannot be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUnusable {
    Revoked,
    Expired,
}

impl ApiKey {
    pub fn check_usable(&self, now: OffsetDateTime) -> Result<(), KeyUnusable> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            return Err(KeyUnusable::Revoked);
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(KeyUnusable::Expired);
        }
        Ok(())
    }
}

/// The longest a guest may be invited for before a sponsor must renew the invitation.
pub const MAX_GUEST_LIFETIME: time::Duration = time::Duration::days(366);

/// Checks the guest rules: a guest has a sponsor who is an active member of the same tenant and
/// an expiry date in the future, at most [`MAX_GUEST_LIFETIME`] away; a member has no sponsor.
pub fn validate_sponsorship(
    kind: UserKind,
    sponsor: Option<&User>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), crate::ValidationError> {
    use crate::ValidationError as E;
    match kind {
        UserKind::Member if sponsor.is_some() => {
            Err(E::new("sponsor_id", "only guests have a sponsor"))
        }
        UserKind::Member => match expires_at {
            Some(at) if at <= now => Err(E::new("expires_at", "must be in the future")),
            _ => Ok(()),
        },
        UserKind::Guest => {
            let sponsor = sponsor.ok_or_else(|| E::new("sponsor_id", "a guest needs a sponsor"))?;
            if sponsor.kind != UserKind::Member || !sponsor.is_usable(now) {
                return Err(E::new("sponsor_id", "the sponsor must be an active member"));
            }
            let at =
                expires_at.ok_or_else(|| E::new("expires_at", "a guest needs an expiry date"))?;
            if at <= now {
                return Err(E::new("expires_at", "must be in the future"));
            }
            if at > now + MAX_GUEST_LIFETIME {
                return Err(E::new("expires_at", "must be at most 366 days away"));
            }
            Ok(())
        }
    }
}

/// The kinds of principal that can hold a role or belong to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Group,
    ServicePrincipal,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::ServicePrincipal => "service_principal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "group" => Some(Self::Group),
            "service_principal" => Some(Self::ServicePrincipal),
            _ => None,
        }
    }
}

/// A reference to a principal: `{"kind": "user", "id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: Uuid,
}

impl PrincipalRef {
    pub fn user(id: UserId) -> Self {
        Self {
            kind: PrincipalKind::User,
            id: id.as_uuid(),
        }
    }

    pub fn group(id: GroupId) -> Self {
        Self {
            kind: PrincipalKind::Group,
            id: id.as_uuid(),
        }
    }

    pub fn service_principal(id: ServicePrincipalId) -> Self {
        Self {
            kind: PrincipalKind::ServicePrincipal,
            id: id.as_uuid(),
        }
    }
}

impl std::fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id)
    }
}

/// A membership edge of the group graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupMember {
    pub group_id: GroupId,
    pub member: PrincipalRef,
    /// The member's name: a user's user name, a group's or service principal's name.
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// Whether making `child` a member of `parent` would close a cycle, given the existing
/// group-in-group edges `(parent, child)`. A group may not contain itself, directly or through
/// any chain of nested groups.
pub fn membership_would_cycle(
    edges: &[(GroupId, GroupId)],
    parent: GroupId,
    child: GroupId,
) -> bool {
    if parent == child {
        return true;
    }
    // A cycle appears iff `parent` is already reachable downward from `child`.
    let mut stack = vec![child];
    let mut seen = std::collections::HashSet::new();
    while let Some(group) = stack.pop() {
        if group == parent {
            return true;
        }
        if seen.insert(group) {
            stack.extend(edges.iter().filter(|(p, _)| *p == group).map(|(_, c)| *c));
        }
    }
    false
}

/// Whether moving business unit `unit` under `new_parent` would put it below itself, given
/// every unit's `(id, parent)`.
pub fn reparent_would_cycle(
    parents: &[(BusinessUnitId, Option<BusinessUnitId>)],
    unit: BusinessUnitId,
    new_parent: BusinessUnitId,
) -> bool {
    let parent_of: std::collections::HashMap<_, _> = parents.iter().copied().collect();
    let mut cursor = Some(new_parent);
    let mut steps = 0;
    while let Some(current) = cursor {
        if current == unit || steps > parents.len() {
            return true;
        }
        cursor = parent_of.get(&current).copied().flatten();
        steps += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    fn groups(n: usize) -> Vec<GroupId> {
        (0..n).map(|_| GroupId::generate()).collect()
    }

    #[test]
    fn self_membership_and_cycles_are_detected() {
        let g = groups(3);
        let edges = vec![(g[0], g[1]), (g[1], g[2])];
        assert!(membership_would_cycle(&edges, g[0], g[0]));
        assert!(membership_would_cycle(&edges, g[2], g[0]));
        assert!(!membership_would_cycle(&edges, g[0], g[2]));
    }

    #[test]
    fn business_unit_cannot_move_below_itself() {
        let [root, a, b] = [(); 3].map(|_| BusinessUnitId::generate());
        let parents = vec![(root, None), (a, Some(root)), (b, Some(a))];
        assert!(reparent_would_cycle(&parents, a, b));
        assert!(reparent_would_cycle(&parents, a, a));
        assert!(!reparent_would_cycle(&parents, b, root));
    }

    #[test]
    fn guest_expiry_and_state_decide_usability() {
        let now = OffsetDateTime::now_utc();
        let mut user = User {
            id: UserId::generate(),
            tenant_id: TenantId::generate(),
            user_name: "g".into(),
            email: None,
            email_verified: false,
            display_name: None,
            kind: UserKind::Guest,
            sponsor_id: None,
            expires_at: Some(now + Duration::hours(1)),
            business_unit_id: BusinessUnitId::generate(),
            state: LifecycleState::Active,
            deleted_at: None,
            last_sign_in_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
            external_id: None,
        };
        assert!(user.is_usable(now));
        assert!(!user.is_usable(now + Duration::hours(2)));
        user.expires_at = None;
        user.state = LifecycleState::Disabled;
        assert!(!user.is_usable(now));
    }

    #[test]
    fn an_address_stays_proven_only_while_it_is_the_same_one() {
        let proven = (Some("a@example.com"), true);
        assert!(email_verified_after(proven, Some("a@example.com"), None));
        assert!(!email_verified_after(proven, Some("b@example.com"), None));
        assert!(!email_verified_after(proven, None, Some(true)));
        assert!(email_verified_after(
            (None, false),
            Some("b@example.com"),
            Some(true)
        ));
        assert!(!email_verified_after(
            proven,
            Some("a@example.com"),
            Some(false)
        ));
        assert!(!email_verified_after(
            (Some("a@example.com"), false),
            Some("a@example.com"),
            None
        ));
    }

    #[test]
    fn guests_need_an_active_member_sponsor_and_an_expiry() {
        let now = OffsetDateTime::now_utc();
        let sponsor = User {
            id: UserId::generate(),
            tenant_id: TenantId::generate(),
            user_name: "s".into(),
            email: None,
            email_verified: false,
            display_name: None,
            kind: UserKind::Member,
            sponsor_id: None,
            expires_at: None,
            business_unit_id: BusinessUnitId::generate(),
            state: LifecycleState::Active,
            deleted_at: None,
            last_sign_in_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
            external_id: None,
        };
        let soon = Some(now + Duration::days(30));
        assert!(validate_sponsorship(UserKind::Guest, Some(&sponsor), soon, now).is_ok());
        let field = |r: Result<(), crate::ValidationError>| r.unwrap_err().field;
        assert_eq!(
            field(validate_sponsorship(UserKind::Guest, None, soon, now)),
            "sponsor_id"
        );
        assert_eq!(
            field(validate_sponsorship(
                UserKind::Guest,
                Some(&sponsor),
                None,
                now
            )),
            "expires_at"
        );
        assert_eq!(
            field(validate_sponsorship(
                UserKind::Guest,
                Some(&sponsor),
                Some(now + Duration::days(400)),
                now
            )),
            "expires_at"
        );
        assert_eq!(
            field(validate_sponsorship(
                UserKind::Member,
                Some(&sponsor),
                None,
                now
            )),
            "sponsor_id"
        );
        let mut disabled = sponsor.clone();
        disabled.state = LifecycleState::Disabled;
        assert_eq!(
            field(validate_sponsorship(
                UserKind::Guest,
                Some(&disabled),
                soon,
                now
            )),
            "sponsor_id"
        );
        let mut guest_sponsor = sponsor.clone();
        guest_sponsor.kind = UserKind::Guest;
        assert_eq!(
            field(validate_sponsorship(
                UserKind::Guest,
                Some(&guest_sponsor),
                soon,
                now
            )),
            "sponsor_id"
        );
        assert!(validate_sponsorship(UserKind::Member, None, None, now).is_ok());
    }

    #[test]
    fn key_expiry_and_revocation() {
        let now = OffsetDateTime::now_utc();
        let mut key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: TenantId::generate(),
            service_principal_id: ServicePrincipalId::generate(),
            prefix: "pcs_x".into(),
            name: None,
            created_at: now,
            expires_at: Some(now + Duration::seconds(10)),
            revoked_at: None,
            last_used_at: None,
        };
        assert_eq!(key.check_usable(now), Ok(()));
        assert_eq!(
            key.check_usable(now + Duration::seconds(10)),
            Err(KeyUnusable::Expired)
        );
        key.revoked_at = Some(now);
        assert_eq!(key.check_usable(now), Err(KeyUnusable::Revoked));
    }

    proptest! {
        /// Adding only edges the check allows never produces a graph with a cycle.
        #[test]
        fn accepted_edges_keep_the_graph_acyclic(picks in proptest::collection::vec((0usize..8, 0usize..8), 0..40)) {
            let g = groups(8);
            let mut edges: Vec<(GroupId, GroupId)> = Vec::new();
            for (p, c) in picks {
                if !membership_would_cycle(&edges, g[p], g[c]) {
                    edges.push((g[p], g[c]));
                }
            }
            // Reference: a graph is acyclic iff repeatedly removing nodes without incoming
            // edges removes them all.
            let mut remaining: Vec<GroupId> = g.clone();
            let mut live = edges.clone();
            loop {
                let before = remaining.len();
                remaining.retain(|n| live.iter().any(|(_, c)| c == n));
                live.retain(|(p, _)| remaining.contains(p));
                if remaining.len() == before { break; }
            }
            prop_assert!(remaining.is_empty());
        }
    }
}
