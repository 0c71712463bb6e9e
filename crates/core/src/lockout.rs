//! Guards against a tenant locking itself out: a change that would leave no active user or
//! service principal able to assign roles tenant-wide (and so to make anyone an administrator
//! again) is refused. The store answers inside the change's own write transaction, after the
//! change's statements ran and before it commits, on the tenant as it then stands, with the
//! same engine that decides every request; writes to one tenant are serialized, so no other
//! change can slip in between.

use crate::authz::{Action, Scope};
use crate::engine::tenant::TenantEngine;
use crate::identity::{PrincipalKind, PrincipalRef};
use crate::ids::GroupId;

/// A change that can take the power to assign roles away from someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A user or service principal deleted, disabled or given an expiry (which counts as gone
    /// already: the tenant must not be locked out later either).
    Principal(PrincipalRef),
    /// A member leaving a group.
    Membership {
        member: PrincipalRef,
        group: GroupId,
    },
    /// Anything else: a group deleted, a role assignment removed, a custom role's permissions
    /// changed or the role deleted, a deny assignment made or changed.
    Grants,
}

impl Removal {
    /// The principal that counts as gone when the tenant is read back after the change.
    pub fn leaving(self) -> Option<PrincipalRef> {
        match self {
            Removal::Principal(p) => Some(p),
            _ => None,
        }
    }
}

/// Whether the tenant keeps someone able to assign roles after `change`, if the engine as it
/// was just before the change (`before`) can tell: a user or service principal leaving, or
/// leaving a group, takes nobody else's power with it, so the answer is whether someone else
/// has it, or whether the one leaving had it at all. `None`: read the tenant after the change
/// and ask `TenantEngine::has_role_assigner` with `change.leaving()`.
pub fn keeps_a_role_assigner(before: &TenantEngine, change: Removal, now: i64) -> Option<bool> {
    let can_assign = |p: PrincipalRef| {
        before
            .check_control(p, Action::RoleAssign, Scope::Tenant, now)
            .allowed
    };
    match change {
        Removal::Principal(leaving) if leaving.kind != PrincipalKind::Group => {
            Some(before.has_role_assigner(Some(leaving), now))
        }
        Removal::Membership { member, .. } if member.kind != PrincipalKind::Group => {
            if !can_assign(member) || before.has_role_assigner(Some(member), now) {
                Some(true)
            } else {
                // The last one, who may keep the power some other way.
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::authz::{BuiltinRole, RoleAssignment, RoleRef};
    use crate::engine::model::Depth;
    use crate::engine::tenant::{Source, instant};
    use crate::ids::{
        DenyAssignmentId, RoleAssignmentId, RoleId, ServicePrincipalId, TenantId, UserId,
    };
    use crate::resources::{CustomRole, DenyAssignment, RolePermission};

    #[derive(Clone)]
    struct Tenant {
        source: Source,
        alice: PrincipalRef,
        bob: PrincipalRef,
        robot: PrincipalRef,
        admins: GroupId,
        now: i64,
    }

    fn assignment(principal: PrincipalRef, role: RoleRef, at: OffsetDateTime) -> RoleAssignment {
        RoleAssignment {
            id: RoleAssignmentId::generate(),
            tenant_id: TenantId::generate(),
            principal,
            role,
            scope: crate::authz::Scope::Tenant,
            starts_at: None,
            ends_at: None,
            created_at: at,
        }
    }

    /// Alice may assign roles through the `admins` group (a custom role), and so may a robot,
    /// directly (a built-in role); Bob holds nothing.
    fn tenant() -> Tenant {
        let at = OffsetDateTime::now_utc();
        let alice = PrincipalRef::user(UserId::generate());
        let bob = PrincipalRef::user(UserId::generate());
        let robot = PrincipalRef::service_principal(ServicePrincipalId::generate());
        let admins = GroupId::generate();
        let admin_role = RoleId::generate();
        let source = Source {
            principals: vec![
                (alice, None),
                (bob, None),
                (robot, None),
                (PrincipalRef::group(admins), None),
            ],
            memberships: vec![(alice, admins)],
            custom_roles: vec![CustomRole {
                id: admin_role,
                name: "Admins".into(),
                description: None,
                permissions: vec![RolePermission {
                    action: "portcullis:role.assign".into(),
                    depth: Depth::Tenant,
                }],
                created_at: at,
                updated_at: at,
                version: 1,
            }],
            assignments: vec![
                assignment(PrincipalRef::group(admins), RoleRef::Custom(admin_role), at),
                assignment(
                    robot,
                    RoleRef::Builtin(BuiltinRole::PrivilegedRoleAdministrator),
                    at,
                ),
            ],
            ..Source::default()
        };
        Tenant {
            source,
            alice,
            bob,
            robot,
            admins,
            now: instant(at),
        }
    }

    fn without(mut source: Source, gone: PrincipalRef) -> Source {
        source.principals.retain(|(p, _)| *p != gone);
        source.memberships.retain(|(m, _)| *m != gone);
        source.assignments.retain(|a| a.principal != gone);
        source
    }

    /// What the store decides: the quick answer from the engine before the change when there
    /// is one, else the tenant after the change; both, and they must agree.
    fn keeps(t: &Tenant, change: Removal, after: Source) -> bool {
        let before = TenantEngine::build(t.source.clone()).unwrap();
        let read_back = TenantEngine::build(after)
            .unwrap()
            .has_role_assigner(change.leaving(), t.now);
        if let Some(quick) = keeps_a_role_assigner(&before, change, t.now) {
            assert_eq!(quick, read_back, "{change:?}");
        }
        read_back
    }

    #[test]
    fn one_of_two_role_assigners_may_go_but_not_the_last() {
        let t = tenant();
        let leave = |t: &Tenant, p| keeps(t, Removal::Principal(p), without(t.source.clone(), p));
        assert!(leave(&t, t.alice));
        assert!(leave(&t, t.robot));
        assert!(leave(&t, t.bob));

        // The robot gone, Alice is the last, through her group.
        let mut last = t.clone();
        last.source = without(last.source, t.robot);
        assert!(!leave(&last, t.alice));
        assert!(leave(&last, t.bob));
        // An expiry counts as leaving, though she is still in the data.
        assert!(!keeps(
            &last,
            Removal::Principal(t.alice),
            last.source.clone()
        ));
        let membership = Removal::Membership {
            member: t.alice,
            group: t.admins,
        };
        let mut left = last.source.clone();
        left.memberships.clear();
        assert!(!keeps(&last, membership, left));
        // Unless she holds the power some other way too.
        let mut direct = last.clone();
        direct.source.assignments.push(assignment(
            t.alice,
            RoleRef::Builtin(BuiltinRole::TenantAdministrator),
            OffsetDateTime::now_utc(),
        ));
        let mut left = direct.source.clone();
        left.memberships.clear();
        assert!(keeps(&direct, membership, left));
        // A role weakened is answered by reading the tenant back.
        let mut weakened = last.source.clone();
        weakened.custom_roles[0].permissions[0].action = "portcullis:user.read".into();
        assert!(!keeps(&last, Removal::Grants, weakened));
    }

    #[test]
    fn a_deny_assignment_may_not_take_role_assignment_from_everyone() {
        let t = tenant();
        let deny = |principals: Vec<PrincipalRef>, excluded: Vec<PrincipalRef>| {
            let mut after = t.source.clone();
            after.denies.push(DenyAssignment {
                id: DenyAssignmentId::generate(),
                name: "freeze".into(),
                description: None,
                principals,
                excluded,
                actions: vec!["portcullis:role.assign".into()],
                scope: crate::authz::Scope::Tenant,
                created_at: OffsetDateTime::now_utc(),
            });
            keeps(&t, Removal::Grants, after)
        };
        assert!(!deny(vec![t.alice, t.robot], vec![]));
        // A break-glass exception keeps one.
        assert!(deny(vec![t.alice, t.robot], vec![t.robot]));
        assert!(deny(vec![t.alice], vec![]));
    }
}
