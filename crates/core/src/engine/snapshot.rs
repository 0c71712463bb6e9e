//! The indexed, immutable form of a `Model` that answers checks: the group closure, the
//! business-unit tree, assignments grouped by principal, role permissions and shares grouped
//! by record, each in flat sorted arrays. A check touches only the asking principal's own
//! identities, their assignments and the one record.

use super::closure::{ClosureError, GroupClosure};
use super::model::{Assignment, Check, Depth, Model, Permission, Record, Scope};
use super::tree::{TreeError, UnitTree};

/// Why a model cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Groups(#[from] ClosureError),
    #[error(transparent)]
    Units(#[from] TreeError),
    #[error("{0} refers to something that does not exist")]
    Dangling(&'static str),
}

/// Rows grouped by a dense key: `rows[offsets[k]..offsets[k + 1]]` belong to key `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grouped<T> {
    offsets: Vec<u32>,
    rows: Vec<T>,
}

impl<T: Clone> Grouped<T> {
    fn build(keys: usize, mut items: Vec<(u32, T)>) -> Result<Self, SnapshotError> {
        if items.iter().any(|(k, _)| *k as usize >= keys) {
            return Err(SnapshotError::Dangling("a grouped row"));
        }
        items.sort_by_key(|(k, _)| *k);
        let mut offsets = vec![0u32; keys + 1];
        for (k, _) in &items {
            offsets[*k as usize + 1] += 1;
        }
        for k in 0..keys {
            offsets[k + 1] += offsets[k];
        }
        Ok(Self {
            offsets,
            rows: items.into_iter().map(|(_, row)| row).collect(),
        })
    }

    fn of(&self, key: u32) -> &[T] {
        let k = key as usize;
        match (self.offsets.get(k), self.offsets.get(k + 1)) {
            (Some(start), Some(end)) => &self.rows[*start as usize..*end as usize],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DenyRule {
    principals: Vec<u32>,
    excluded: Vec<u32>,
    actions: Vec<u32>,
    scope: Scope,
}

/// A tenant's decisions, ready to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    groups: GroupClosure,
    units: UnitTree,
    home_unit: Vec<Option<u32>>,
    assignments: Grouped<Assignment>,
    permissions: Grouped<Permission>,
    records: Vec<Record>,
    /// Per record: (principal, action), sorted.
    shares: Grouped<(u32, u32)>,
    denies: Vec<DenyRule>,
}

fn sorted(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Snapshot {
    pub fn build(model: &Model) -> Result<Self, SnapshotError> {
        let nodes = model.memberships.len();
        let units = UnitTree::build(&model.unit_parents)?;
        if model.home_unit.len() != nodes
            || model
                .home_unit
                .iter()
                .flatten()
                .any(|u| *u as usize >= units.len())
        {
            return Err(SnapshotError::Dangling("a home business unit"));
        }
        if model
            .assignments
            .iter()
            .any(|a| a.role as usize >= model.roles.len())
        {
            return Err(SnapshotError::Dangling("an assignment's role"));
        }
        if model
            .records
            .iter()
            .any(|r| r.owner as usize >= nodes || r.business_unit as usize >= units.len())
        {
            return Err(SnapshotError::Dangling("a record's owner or business unit"));
        }
        let assignments = Grouped::build(
            nodes,
            model
                .assignments
                .iter()
                .map(|a| (a.principal, *a))
                .collect(),
        )?;
        let permissions = Grouped::build(
            model.roles.len(),
            model
                .roles
                .iter()
                .enumerate()
                .flat_map(|(role, perms)| perms.iter().map(move |p| (role as u32, *p)))
                .collect(),
        )?;
        let mut shares: Vec<(u32, (u32, u32))> = model
            .shares
            .iter()
            .flat_map(|s| s.actions.iter().map(move |a| (s.record, (s.principal, *a))))
            .collect();
        shares.sort_unstable();
        shares.dedup();
        Ok(Self {
            groups: GroupClosure::build(&model.memberships)?,
            units,
            home_unit: model.home_unit.clone(),
            assignments,
            permissions,
            records: model.records.clone(),
            shares: Grouped::build(model.records.len(), shares)?,
            denies: model
                .denies
                .iter()
                .map(|d| DenyRule {
                    principals: sorted(d.principals.clone()),
                    excluded: sorted(d.excluded.clone()),
                    actions: sorted(d.actions.clone()),
                    scope: d.scope,
                })
                .collect(),
        })
    }

    /// Whether `principal` is `identity` or a member of it (directly or through groups).
    fn is(&self, principal: u32, identity: u32) -> bool {
        principal == identity || self.groups.is_member(principal, identity)
    }

    fn covers(&self, scope: Scope, record_id: u32, record: &Record) -> bool {
        match scope {
            Scope::Tenant => true,
            Scope::Environment(e) => record.environment == Some(e),
            Scope::BusinessUnit(u) => self.units.is_within(record.business_unit, u),
            Scope::Record(id) => id == record_id,
        }
    }

    fn reaches(&self, principal: u32, depth: Depth, record: &Record) -> bool {
        let home = self.home_unit.get(principal as usize).copied().flatten();
        match depth {
            Depth::Tenant => true,
            Depth::BusinessUnitTree => {
                home.is_some_and(|h| self.units.is_within(record.business_unit, h))
            }
            Depth::BusinessUnit => home == Some(record.business_unit),
            Depth::Own => self.is(principal, record.owner),
        }
    }

    /// The decision for `check`; a principal or record outside the snapshot gets nothing.
    pub fn decide(&self, check: Check) -> bool {
        matches!(self.explain(check), Decision::Allowed(_))
    }

    /// The decision for `check`, with why: the share or assignment that allowed it, or the
    /// deny assignment that refused it, or that nothing granted it.
    pub fn explain(&self, check: Check) -> Decision {
        let Some(record) = self.records.get(check.record as usize) else {
            return Decision::Denied(Refusal::UnknownRecord);
        };
        let p = check.principal;
        let deny = self.denies.iter().position(|d| {
            d.actions.binary_search(&check.action).is_ok()
                && self.covers(d.scope, check.record, record)
                && d.principals.iter().any(|id| self.is(p, *id))
                && !d.excluded.iter().any(|id| self.is(p, *id))
        });
        if let Some(index) = deny {
            return Decision::Denied(Refusal::DenyAssignment(index));
        }
        if let Some((who, _)) = self
            .shares
            .of(check.record)
            .iter()
            .find(|(who, action)| *action == check.action && self.is(p, *who))
        {
            return Decision::Allowed(Grounds::Share { principal: *who });
        }
        std::iter::once(p)
            .chain(self.groups.groups_of(p).iter().copied())
            .flat_map(|identity| self.assignments.of(identity))
            .find(|a| {
                a.is_in_force(check.now)
                    && self.covers(a.scope, check.record, record)
                    && self.permissions.of(a.role).iter().any(|perm| {
                        perm.action == check.action && self.reaches(p, perm.depth, record)
                    })
            })
            .map_or(Decision::Denied(Refusal::NoGrant), |a| {
                Decision::Allowed(Grounds::Assignment(*a))
            })
    }
}

/// A decision and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Grounds),
    Denied(Refusal),
}

/// What allowed a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// The record was shared with this principal (the asker or one of its groups).
    Share { principal: u32 },
    /// This assignment, to the asker or one of its groups.
    Assignment(Assignment),
}

/// Why a decision refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The deny assignment at this position in the model.
    DenyAssignment(usize),
    /// No share and no assignment in force grants the action on the record.
    NoGrant,
    UnknownRecord,
}

#[cfg(test)]
mod tests {
    use super::super::model::{Deny, Share};
    use super::super::reference;
    use super::*;
    use proptest::prelude::*;

    const NODES: u32 = 24;
    const UNITS: u32 = 8;
    const ROLES: u32 = 5;
    const ACTIONS: u32 = 4;
    const RECORDS: u32 = 10;
    const ENVIRONMENTS: u32 = 3;

    fn scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            Just(Scope::Tenant),
            (0..ENVIRONMENTS).prop_map(Scope::Environment),
            (0..UNITS).prop_map(Scope::BusinessUnit),
            (0..RECORDS).prop_map(Scope::Record),
        ]
    }

    fn depth() -> impl Strategy<Value = Depth> {
        prop_oneof![
            Just(Depth::Own),
            Just(Depth::BusinessUnit),
            Just(Depth::BusinessUnitTree),
            Just(Depth::Tenant),
        ]
    }

    fn window() -> impl Strategy<Value = (Option<i64>, Option<i64>)> {
        (prop::option::of(0i64..10), prop::option::of(0i64..10))
    }

    /// A random tenant: nodes in acyclic groups (a node is only in higher-numbered nodes),
    /// units in a forest, roles, assignments, records, shares and denies.
    fn model() -> impl Strategy<Value = Model> {
        let memberships = (0..NODES)
            .map(|n| prop::collection::vec((n + 1)..=NODES, 0..3))
            .collect::<Vec<_>>()
            .prop_map(|all| {
                all.into_iter()
                    .map(|gs| gs.into_iter().filter(|g| *g < NODES).collect())
                    .collect::<Vec<Vec<u32>>>()
            });
        let unit_parents = (0..UNITS)
            .map(|u| {
                if u == 0 {
                    Just(None).boxed()
                } else {
                    prop::option::of(0..u).boxed()
                }
            })
            .collect::<Vec<_>>();
        let home_unit = prop::collection::vec(prop::option::of(0..UNITS), NODES as usize);
        let roles = prop::collection::vec(
            prop::collection::vec(
                (0..ACTIONS, depth()).prop_map(|(action, depth)| Permission { action, depth }),
                0..4,
            ),
            ROLES as usize,
        );
        let assignments = prop::collection::vec(
            (0..NODES, 0..ROLES, scope(), window()).prop_map(|(principal, role, scope, (s, e))| {
                Assignment {
                    principal,
                    role,
                    scope,
                    starts_at: s,
                    ends_at: e,
                }
            }),
            0..24,
        );
        let records = prop::collection::vec(
            (0..NODES, 0..UNITS, prop::option::of(0..ENVIRONMENTS)).prop_map(
                |(owner, business_unit, environment)| Record {
                    owner,
                    business_unit,
                    environment,
                },
            ),
            RECORDS as usize,
        );
        let shares = prop::collection::vec(
            (
                0..RECORDS,
                0..NODES,
                prop::collection::vec(0..ACTIONS, 1..3),
            )
                .prop_map(|(record, principal, actions)| Share {
                    record,
                    principal,
                    actions,
                }),
            0..6,
        );
        let denies = prop::collection::vec(
            (
                prop::collection::vec(0..NODES, 1..3),
                prop::collection::vec(0..NODES, 0..2),
                prop::collection::vec(0..ACTIONS, 1..3),
                scope(),
            )
                .prop_map(|(principals, excluded, actions, scope)| Deny {
                    principals,
                    excluded,
                    actions,
                    scope,
                }),
            0..3,
        );
        (
            memberships,
            unit_parents,
            home_unit,
            roles,
            assignments,
            records,
            shares,
            denies,
        )
            .prop_map(
                |(
                    memberships,
                    unit_parents,
                    home_unit,
                    roles,
                    assignments,
                    records,
                    shares,
                    denies,
                )| {
                    Model {
                        memberships,
                        home_unit,
                        unit_parents,
                        roles,
                        assignments,
                        records,
                        shares,
                        denies,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn the_engine_agrees_with_the_reference(model in model(), now in 0i64..10) {
            let snapshot = Snapshot::build(&model).unwrap();
            for principal in 0..NODES {
                for record in 0..RECORDS {
                    for action in 0..ACTIONS {
                        let check = Check { principal, action, record, now };
                        prop_assert_eq!(
                            snapshot.decide(check),
                            reference::decide(&model, check),
                            "{:?}", check
                        );
                    }
                }
            }
        }
    }

    /// A reason is real: the grounds alone (without shares, denies and other assignments)
    /// allow the check, and the deny alone refuses one that a tenant-wide grant would allow.
    fn reason_holds(model: &Model, check: Check, decision: Decision) -> bool {
        let mut alone = Model {
            shares: Vec::new(),
            denies: Vec::new(),
            assignments: Vec::new(),
            ..model.clone()
        };
        match decision {
            Decision::Allowed(Grounds::Share { principal }) => {
                alone.shares.push(Share {
                    record: check.record,
                    principal,
                    actions: vec![check.action],
                });
                model.shares.iter().any(|s| {
                    s.record == check.record
                        && s.principal == principal
                        && s.actions.contains(&check.action)
                }) && reference::decide(&alone, check)
            }
            Decision::Allowed(Grounds::Assignment(a)) => {
                alone.assignments.push(a);
                model.assignments.contains(&a) && reference::decide(&alone, check)
            }
            Decision::Denied(Refusal::DenyAssignment(index)) => {
                let role = alone.roles.len() as u32;
                alone.roles.push(vec![Permission {
                    action: check.action,
                    depth: Depth::Tenant,
                }]);
                alone.assignments.push(Assignment {
                    principal: check.principal,
                    role,
                    scope: Scope::Tenant,
                    starts_at: None,
                    ends_at: None,
                });
                alone.denies.push(model.denies[index].clone());
                !reference::decide(&alone, check)
            }
            Decision::Denied(_) => !reference::decide(model, check),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn every_reason_holds_on_its_own(model in model(), now in 0i64..10) {
            let snapshot = Snapshot::build(&model).unwrap();
            for principal in 0..NODES {
                for record in 0..RECORDS {
                    for action in 0..ACTIONS {
                        let check = Check { principal, action, record, now };
                        let decision = snapshot.explain(check);
                        prop_assert!(reason_holds(&model, check, decision), "{:?} {:?}", check, decision);
                    }
                }
            }
        }
    }

    #[test]
    fn a_deny_wins_and_its_exclusions_escape_it() {
        // Node 0 (a user) is in group 1; the group holds a role allowing action 0 everywhere.
        let mut model = Model {
            memberships: vec![vec![1], vec![], vec![]],
            home_unit: vec![Some(0), None, None],
            unit_parents: vec![None],
            roles: vec![vec![Permission {
                action: 0,
                depth: Depth::Tenant,
            }]],
            assignments: vec![Assignment {
                principal: 1,
                role: 0,
                scope: Scope::Tenant,
                starts_at: None,
                ends_at: None,
            }],
            records: vec![Record {
                owner: 2,
                business_unit: 0,
                environment: None,
            }],
            shares: vec![],
            denies: vec![],
        };
        let check = Check {
            principal: 0,
            action: 0,
            record: 0,
            now: 0,
        };
        assert!(Snapshot::build(&model).unwrap().decide(check));
        model.denies.push(Deny {
            principals: vec![1],
            excluded: vec![],
            actions: vec![0],
            scope: Scope::Tenant,
        });
        assert_eq!(
            Snapshot::build(&model).unwrap().explain(check),
            Decision::Denied(Refusal::DenyAssignment(0))
        );
        model.denies[0].excluded.push(0);
        assert!(Snapshot::build(&model).unwrap().decide(check));
        // Outside the snapshot: nothing.
        let snapshot = Snapshot::build(&model).unwrap();
        assert_eq!(
            snapshot.explain(check),
            Decision::Allowed(Grounds::Assignment(model.assignments[0]))
        );
        assert_eq!(
            snapshot.explain(Check { record: 9, ..check }),
            Decision::Denied(Refusal::UnknownRecord)
        );
        assert!(!snapshot.decide(Check { record: 9, ..check }));
        assert!(!snapshot.decide(Check {
            principal: 99,
            ..check
        }));
    }

    #[test]
    fn dangling_references_are_refused() {
        let model = Model {
            memberships: vec![vec![]],
            home_unit: vec![Some(3)],
            unit_parents: vec![None],
            ..Model::default()
        };
        assert!(matches!(
            Snapshot::build(&model),
            Err(SnapshotError::Dangling(_))
        ));
    }
}
