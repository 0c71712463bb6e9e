//! Moving a tenant's engine forward by what changed in the store since its revision, instead
//! of building it again: the store reads back each changed thing as it is now (`Delta`), and
//! `TenantEngine::apply` interns it and hands the snapshot the changes (`Change`). What only
//! a rebuild may change (units, environments, resource types, roles), or a membership cycle,
//! makes it answer `Stale`; the caller then builds the engine whole, off the readers' path.
//! See docs/design/engine-deltas.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{NOBODY, TenantEngine};
use crate::authz::{RoleAssignment, Scope};
use crate::engine::model::{Change, Record};
use crate::engine::snapshot::SnapshotError;
use crate::engine::subjects::Identifier;
use crate::identity::{PrincipalKind, PrincipalRef};
use crate::ids::*;
use crate::resources::{AccessSettings, DenyAssignment, RecordEntry, Share};

/// What changed in a tenant after an engine's revision, each changed thing read back as it
/// is now (`None`: gone).
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Principals whose row changed.
    pub principals: Vec<(PrincipalRef, Option<PrincipalNow>)>,
    /// Principals whose direct groups may have changed, with every group each is directly in
    /// now.
    pub memberships: Vec<(PrincipalRef, Vec<GroupId>)>,
    pub assignments: Vec<(RoleAssignmentId, Option<RoleAssignment>)>,
    pub records: Vec<(RecordId, Option<RecordEntry>)>,
    pub shares: Vec<(ShareId, Option<Share>)>,
    /// Every deny assignment, when one changed (a tenant has few).
    pub denies: Option<Vec<DenyAssignment>>,
    pub settings: Option<AccessSettings>,
}

/// A principal as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalNow {
    /// Whether it may act (groups always may).
    pub active: bool,
    pub business_unit: Option<BusinessUnitId>,
    /// What enforcement points may name it by.
    pub identifiers: Vec<(Identifier, String)>,
}

/// Why an engine cannot be moved forward by a delta, and must be built again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// A membership cycle is held or would close: a build quarantines and reports it.
    #[error("group memberships form a cycle")]
    Cycle,
    #[error("the changes name {0} that this revision of the engine does not hold")]
    Unknown(&'static str),
    #[error(transparent)]
    Snapshot(SnapshotError),
}

/// The direct groups and home unit each touched node will have.
type NodeStates = BTreeMap<u32, (Vec<u32>, Option<u32>)>;

fn node_state<'a>(
    engine: &TenantEngine,
    states: &'a mut NodeStates,
    node: u32,
) -> &'a mut (Vec<u32>, Option<u32>) {
    states.entry(node).or_insert_with(|| {
        (
            engine.snapshot.direct_groups_of(node).to_vec(),
            engine.snapshot.home_unit(node),
        )
    })
}

impl TenantEngine {
    /// The engine after `delta`: what building it from the store at the delta's revision
    /// gives, made by rewriting only what the delta touches. `self` is left as it was, for
    /// whoever still reads it.
    pub fn apply(&self, delta: &Delta) -> Result<TenantEngine, Stale> {
        if !self.quarantine.closing_edges.is_empty() {
            return Err(Stale::Cycle);
        }
        let mut next = self.clone();
        let mut states = NodeStates::new();
        for (principal, now) in &delta.principals {
            match now {
                Some(now) => {
                    let node = next.node_or_new(*principal, &mut states);
                    let unit = match now.business_unit {
                        Some(unit) => Some(
                            *next
                                .shape
                                .units
                                .get(&unit)
                                .ok_or(Stale::Unknown("a business unit"))?,
                        ),
                        None => None,
                    };
                    node_state(&next, &mut states, node).1 = unit;
                    let active = now.active || principal.kind == PrincipalKind::Group;
                    next.active.set(node, active, false);
                    let identifiers: &[(Identifier, String)] =
                        if active { &now.identifiers } else { &[] };
                    next.subjects.replace(*principal, identifiers);
                }
                None => {
                    let Some(node) = next.nodes.get(principal).copied() else {
                        continue;
                    };
                    next.active.set(node, false, false);
                    next.subjects.replace(*principal, &[]);
                    // A group that is gone takes its memberships with it (the store deletes
                    // them with the group, feeding no change of their own).
                    for member in next.snapshot.members_of(node).to_vec() {
                        node_state(&next, &mut states, member)
                            .0
                            .retain(|g| *g != node);
                    }
                    node_state(&next, &mut states, node).0.clear();
                }
            }
        }
        for (member, groups) in &delta.memberships {
            let Some(node) = next.nodes.get(member).copied() else {
                if groups.is_empty() {
                    continue;
                }
                return Err(Stale::Unknown("a member"));
            };
            let groups = groups
                .iter()
                .map(|g| next.nodes.get(&PrincipalRef::group(*g)).copied())
                .collect::<Option<Vec<u32>>>()
                .ok_or(Stale::Unknown("a group"))?;
            node_state(&next, &mut states, node).0 = groups;
        }
        let mut changes: Vec<Change> = states
            .into_iter()
            .map(|(node, (groups, home_unit))| Change::Node {
                node,
                groups,
                home_unit,
            })
            .collect();
        for (id, entry) in &delta.records {
            next.put_record(*id, entry.as_ref(), &mut changes)?;
        }
        for (id, assignment) in &delta.assignments {
            if let Some(a) = assignment {
                if !next.shape.roles.contains_key(&a.role) {
                    return Err(Stale::Unknown("a role"));
                }
                next.knows_scope(a.scope)?;
            }
            let existing = next.assignment_slots.get(id).copied();
            match (
                existing,
                assignment.as_ref().and_then(|a| next.intern_assignment(a)),
            ) {
                (_, Some((model, named))) => {
                    let slot = existing.unwrap_or(next.assignments.len() as u32);
                    next.assignments.set(slot, Some(named), None);
                    next.assignment_slots.insert(*id, slot);
                    changes.push(Change::Assignment {
                        slot,
                        assignment: Some(model),
                    });
                }
                (Some(slot), None) => {
                    next.assignments.set(slot, None, None);
                    next.assignment_slots.remove(id);
                    changes.push(Change::Assignment {
                        slot,
                        assignment: None,
                    });
                }
                (None, None) => {}
            }
        }
        for (id, share) in &delta.shares {
            let existing = next.share_slots.get(id).copied();
            match (existing, share.as_ref().and_then(|s| next.intern_share(s))) {
                (_, Some(model)) => {
                    let slot = existing.unwrap_or(next.shares.len() as u32);
                    next.shares.set(slot, Some(*id), None);
                    next.share_slots.insert(*id, slot);
                    changes.push(Change::Share {
                        slot,
                        share: Some(model),
                    });
                }
                (Some(slot), None) => {
                    next.shares.set(slot, None, None);
                    next.share_slots.remove(id);
                    changes.push(Change::Share { slot, share: None });
                }
                (None, None) => {}
            }
        }
        if let Some(denies) = &delta.denies {
            for deny in denies {
                next.knows_scope(deny.scope)?;
            }
            let model = next.set_denies(denies);
            changes.push(Change::Denies(model));
        }
        if let Some(settings) = &delta.settings {
            next.settings = Arc::new(settings.clone());
        }
        next.snapshot = self.snapshot.apply(&changes).map_err(|e| match e {
            SnapshotError::Groups(_) => Stale::Cycle,
            other => Stale::Snapshot(other),
        })?;
        Ok(next)
    }

    /// The node of `principal`, given the next one (in nothing, inactive) if it has none.
    fn node_or_new(&mut self, principal: PrincipalRef, states: &mut NodeStates) -> u32 {
        if let Some(node) = self.nodes.get(&principal) {
            return *node;
        }
        let node = self.node_refs.len() as u32;
        let nobody = self.node_ref(NOBODY);
        self.node_refs.set(node, principal, nobody);
        self.nodes.insert(principal, node);
        self.active.set(node, false, false);
        states.insert(node, (Vec::new(), None));
        node
    }

    /// Registers, moves or removes the record `id` under its names, and says so to the
    /// snapshot.
    fn put_record(
        &mut self,
        id: RecordId,
        entry: Option<&RecordEntry>,
        changes: &mut Vec<Change>,
    ) -> Result<(), Stale> {
        let existing = self.record_slots.get(&id).copied();
        if let Some(slot) = existing
            && let Some((ty, external)) = self.record_names.get(slot).cloned().flatten()
        {
            let records = Arc::make_mut(&mut self.records);
            if let Some(of_type) = records.get_mut(&*ty) {
                of_type.remove(&*external);
            }
        }
        let Some(r) = entry else {
            if let Some(slot) = existing {
                self.record_names.set(slot, None, None);
                self.record_slots.remove(&id);
                changes.push(Change::Record { slot, record: None });
            }
            return Ok(());
        };
        let business_unit = *self
            .shape
            .units
            .get(&r.business_unit_id)
            .ok_or(Stale::Unknown("a business unit"))?;
        let slot = existing.unwrap_or(self.record_names.len() as u32);
        let ty: Arc<str> = Arc::from(r.resource_type.as_str());
        let external: Arc<str> = Arc::from(r.external_id.as_str());
        Arc::make_mut(&mut self.records)
            .entry(r.resource_type.clone())
            .or_default()
            .insert(external.clone(), slot);
        self.record_names.set(slot, Some((ty, external)), None);
        self.record_slots.insert(id, slot);
        changes.push(Change::Record {
            slot,
            record: Some(Record {
                owner: self.nodes.get(&r.owner).copied().unwrap_or(NOBODY),
                business_unit,
                environment: match r.environment_id {
                    Some(e) => Some(
                        *self
                            .shape
                            .environments
                            .get(&e)
                            .ok_or(Stale::Unknown("an environment"))?,
                    ),
                    None => None,
                },
            }),
        });
        Ok(())
    }

    /// Refuses a scope in a unit or environment this revision's shape does not hold: one
    /// created since, which only a rebuild takes in. (A record scope names a record the
    /// delta itself may have registered; one that is gone leaves the assignment holding
    /// nothing, as a build does.)
    fn knows_scope(&self, scope: Scope) -> Result<(), Stale> {
        match scope {
            Scope::BusinessUnit(u) if !self.shape.units.contains_key(&u) => {
                Err(Stale::Unknown("a business unit"))
            }
            Scope::Environment(e) if !self.shape.environments.contains_key(&e) => {
                Err(Stale::Unknown("an environment"))
            }
            _ => Ok(()),
        }
    }
}
