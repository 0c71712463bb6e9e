//! One tenant's engine: its stored authorization data (`Source`) interned into dense ids and
//! indexed as a `Snapshot`, with the tables that turn names into ids for a check and ids back
//! into names for a reason. Built whole from the store and immutable; whoever holds it knows
//! which change-feed revision it reflects.

mod delta;

pub use delta::{Delta, PrincipalNow, Stale};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::blocks::Slots;
use super::closure::{Quarantine, quarantine_cycles};
use super::model::{
    Assignment, Deny, Depth, Model, Permission, Record, Scope as EngineScope, Share as EngineShare,
};
use super::snapshot::{Decision, Grounds, Refusal, Snapshot, SnapshotError, Target};
use super::subjects::{Found, Identifier, SubjectIndex, subject_kinds};
use crate::authz::{Action, BuiltinRole, OWN_TYPE_PREFIX, RoleAssignment, RoleRef, Scope};
use crate::identity::{PrincipalKind, PrincipalRef};
use crate::ids::*;
use crate::resources::{
    AccessSettings, CustomRole, DenyAssignment, RecordEntry, ResourceType, Share,
};

/// Everything a tenant's decisions depend on, as the store holds it. Only principals that may
/// act are listed (active users and service principals, and every group); anything that names
/// another is left out of the snapshot, so a disabled user holds nothing.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Whether this is the operator tenant, the only one whose principals may manage tenants.
    pub operator: bool,
    pub settings: AccessSettings,
    pub business_units: Vec<(BusinessUnitId, Option<BusinessUnitId>)>,
    pub environments: Vec<EnvironmentId>,
    /// Each principal and its business unit (users have one; groups and services may not).
    pub principals: Vec<(PrincipalRef, Option<BusinessUnitId>)>,
    /// Principals that may not act now (disabled, or deleted and restorable), with their
    /// business units: they keep their place, so what names them survives until they are
    /// active again. Their identifiers are not listed.
    pub inactive: Vec<(PrincipalRef, Option<BusinessUnitId>)>,
    /// The names, e-mail addresses and external ids enforcement points know principals by.
    pub identifiers: Vec<(PrincipalRef, Identifier, String)>,
    /// (member, group) edges.
    pub memberships: Vec<(PrincipalRef, GroupId)>,
    pub resource_types: Vec<ResourceType>,
    pub custom_roles: Vec<CustomRole>,
    pub assignments: Vec<RoleAssignment>,
    pub records: Vec<RecordEntry>,
    pub shares: Vec<Share>,
    pub denies: Vec<DenyAssignment>,
}

/// Who asks: a principal, or nobody signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Principal(PrincipalRef),
    Anonymous,
    /// Named by an identifier no active principal has: decided as an unknown principal.
    Unknown,
    /// Named by an identifier several principals answer to: refused, never guessed.
    Ambiguous,
}

/// A record described by the caller, for records not registered with Portcullis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordProperties {
    pub owner: Option<PrincipalRef>,
    pub business_unit_id: Option<BusinessUnitId>,
    pub environment_id: Option<EnvironmentId>,
}

/// What a check is about. A registered record is used as registered; otherwise the
/// properties describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub resource_type: &'a str,
    pub external_id: &'a str,
    pub properties: Option<RecordProperties>,
}

/// Why a decision came out the way it did, in the tenant's own names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The record was shared with `principal` (the subject or one of its groups).
    Share {
        share_id: ShareId,
        principal: PrincipalRef,
    },
    /// Allowed by this assignment, held by `principal` (the subject or one of its groups).
    Assignment {
        assignment_id: RoleAssignmentId,
        role: RoleRef,
        scope: Scope,
        principal: PrincipalRef,
    },
    /// The tenant made this action public.
    Public,
    /// This deny assignment refuses it.
    DenyAssignment {
        deny_assignment_id: DenyAssignmentId,
        name: String,
    },
    /// No role the subject holds has the action.
    NoRole,
    /// The role has the action, but the assignment's scope does not cover the record.
    ScopeMismatch {
        assignment_id: RoleAssignmentId,
        role: RoleRef,
        scope: Scope,
    },
    /// The assignment covers the record, but the role reaches only so far from the subject.
    DepthTooShallow {
        assignment_id: RoleAssignmentId,
        role: RoleRef,
    },
    /// The assignment would allow it, but has not started or has ended.
    OutsideWindow {
        assignment_id: RoleAssignmentId,
        role: RoleRef,
    },
    /// The action manages tenants, which only the operator tenant's principals may do.
    PlatformOnly,
    /// The subject is on or under a cycle of group memberships, so which groups it is in
    /// cannot be known: it is refused everything until the cycle is removed.
    MembershipCycle,
    UnknownSubject,
    /// The subject's identifier names more than one principal.
    AmbiguousSubject,
    UnknownResource,
    UnknownAction,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Share { share_id, principal } => {
                write!(f, "allowed: the record is shared with {principal} (share {share_id})")
            }
            Reason::Assignment {
                assignment_id,
                role,
                scope,
                principal,
            } => write!(
                f,
                "allowed: {principal} holds role {role} at {scope} (assignment {assignment_id})"
            ),
            Reason::Public => f.write_str("allowed: the action is public"),
            Reason::DenyAssignment {
                deny_assignment_id,
                name,
            } => write!(f, "denied by deny assignment {name:?} ({deny_assignment_id})"),
            Reason::NoRole => f.write_str("denied: no role held has this action"),
            Reason::ScopeMismatch {
                assignment_id,
                role,
                scope,
            } => write!(
                f,
                "denied: role {role} is held at {scope}, which does not cover the record (assignment {assignment_id})"
            ),
            Reason::DepthTooShallow {
                assignment_id,
                role,
            } => write!(
                f,
                "denied: role {role} does not reach this record from the subject's ownership or business unit (assignment {assignment_id})"
            ),
            Reason::OutsideWindow {
                assignment_id,
                role,
            } => write!(
                f,
                "denied: role {role} would allow it, but the assignment is not in force now (assignment {assignment_id})"
            ),
            Reason::PlatformOnly => {
                f.write_str("denied: only the operator tenant's principals may manage tenants")
            }
            Reason::MembershipCycle => f.write_str(
                "denied: the subject is in a cycle of group memberships; remove one of the memberships named in the authz.membership_cycle audit event",
            ),
            Reason::UnknownSubject => f.write_str("denied: the subject is unknown or not active"),
            Reason::AmbiguousSubject => f.write_str(
                "denied: more than one principal answers to the subject's id; name the kind of identifier in subject.properties.identifier",
            ),
            Reason::UnknownResource => f.write_str(
                "denied: the record is not registered and its properties name neither a business unit nor an owner who has one",
            ),
            Reason::UnknownAction => f.write_str("denied: the resource type has no such action"),
        }
    }
}

/// A decision with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: Reason,
}

/// A tenant's decisions at one revision. Cheap to clone: every part is shared (`Arc`, blocks,
/// persistent maps), so `apply` makes the next revision by rewriting only what a change
/// touches while readers keep the one they hold.
#[derive(Debug, Clone)]
pub struct TenantEngine {
    snapshot: Snapshot,
    /// Node → principal. Node 0 stands for owners that are no longer there.
    node_refs: Slots<PrincipalRef>,
    /// Every principal the engine holds, active or not, → its node, in (kind, id) order:
    /// searches page in this order.
    nodes: imbl::OrdMap<PrincipalRef, u32>,
    /// Whether each node may act (an active user or service principal, or a group). The
    /// others keep their nodes, so what names them survives until they come back.
    active: Slots<bool>,
    /// Principals by the identifiers enforcement points send.
    subjects: SubjectIndex,
    /// What only a rebuild changes: units, environments, actions and roles.
    shape: Arc<Shape>,
    settings: Arc<AccessSettings>,
    /// Resource type → external id → record slot: a record is found without allocating, and
    /// a type's records are one ordered run.
    records: Arc<HashMap<String, imbl::OrdMap<Arc<str>, u32>>>,
    /// Record slot → (type, external id), and record id → slot; for changes by id.
    record_names: Slots<Option<(Arc<str>, Arc<str>)>>,
    record_slots: imbl::HashMap<RecordId, u32>,
    /// Per assignment slot: its id and scope as stored, and holder and role as interned.
    assignments: Slots<Option<NamedAssignment>>,
    assignment_slots: imbl::HashMap<RoleAssignmentId, u32>,
    shares: Slots<Option<ShareId>>,
    share_slots: imbl::HashMap<ShareId, u32>,
    denies: Arc<Vec<(DenyAssignmentId, String)>>,
    /// The nodes a deny assignment names, as denied or as excepted, sorted.
    deny_named: Arc<Vec<u32>>,
    /// Principals on or under a membership cycle, refused everything.
    quarantine: Arc<Quarantine>,
}

/// What only a rebuild changes (see docs/design/engine-deltas.md).
#[derive(Debug)]
struct Shape {
    units: HashMap<BusinessUnitId, u32>,
    environments: HashMap<EnvironmentId, u32>,
    /// Resource type → action name → action id (Portcullis's own under `portcullis:user`, …).
    actions: HashMap<String, HashMap<String, u32>>,
    public_actions: Vec<bool>,
    /// Action id → the Portcullis action it is, for Portcullis's own.
    own_actions: Vec<Option<Action>>,
    /// The unit that stands for Portcullis's own configuration, outside every real unit: no
    /// assignment at a unit or a record reaches the control plane.
    control_unit: u32,
    operator: bool,
    role_refs: Vec<RoleRef>,
    roles: HashMap<RoleRef, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NamedAssignment {
    id: RoleAssignmentId,
    scope: Scope,
    principal: u32,
    role: u32,
}

/// Candidates a search gathers before it walks everything in order instead: a quarter of
/// what it would walk, within bounds. Past that the answer is a large part of the tenant, and
/// walking in order finds a page after a few checks per answer.
pub fn search_budget(everything: usize) -> usize {
    (everything / 4).clamp(1 << 10, 1 << 16)
}

/// Checks per entry wanted that a search makes walking in order before it turns to the
/// reverse indexes: an answer of one in eight or denser fills its page within them.
pub const WALK_FIRST: usize = 8;

/// A page of at most `limit` entries of a search, and whether more follow. First walks
/// `in_order` (the entries after the cursor, in the page's order), deciding each with
/// `allowed`. If `WALK_FIRST` checks per wanted entry leave the page short, the answer is
/// sparse and the rest comes from `candidates` (a superset of the answer, in any order; `None`
/// when there are too many to gather, and the walk goes on).
pub fn search_page<K: Ord + Clone>(
    mut in_order: impl Iterator<Item = K>,
    allowed: impl Fn(&K) -> bool,
    candidates: impl FnOnce() -> Option<Vec<K>>,
    limit: usize,
) -> (Vec<K>, bool) {
    let wanted = limit + 1;
    let mut found = Vec::new();
    let mut last = None;
    for _ in 0..WALK_FIRST * wanted {
        let Some(entry) = in_order.next() else {
            return page(found, limit);
        };
        if allowed(&entry) {
            found.push(entry.clone());
            if found.len() == wanted {
                return page(found, limit);
            }
        }
        last = Some(entry);
    }
    let rest = match candidates() {
        Some(candidates) => first_in_order(
            candidates
                .into_iter()
                .filter(|c| last.as_ref().is_none_or(|last| c > last)),
            &allowed,
            wanted - found.len(),
        ),
        None => in_order
            .filter(|entry| allowed(entry))
            .take(wanted - found.len())
            .collect(),
    };
    found.extend(rest);
    page(found, limit)
}

/// The first `count` of `candidates` (each once), in their order, that `allowed` allows: a
/// heap, so a page sorts only as far as it reads, not every candidate.
pub fn first_in_order<T: Ord>(
    candidates: impl Iterator<Item = T>,
    allowed: impl Fn(&T) -> bool,
    count: usize,
) -> Vec<T> {
    let mut heap: BinaryHeap<Reverse<T>> = candidates.map(Reverse).collect();
    let mut found = Vec::new();
    while found.len() < count
        && let Some(Reverse(candidate)) = heap.pop()
    {
        // A candidate gathered twice comes out twice in a row.
        let again = heap.peek().is_some_and(|Reverse(next)| *next == candidate);
        if !again && allowed(&candidate) {
            found.push(candidate);
        }
    }
    found
}

/// A page of at most `limit` of `found` (which holds one more when more follow), and whether
/// more follow.
fn page<T>(mut found: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = found.len() > limit;
    found.truncate(limit);
    (found, more)
}

/// An instant as the engine compares them: milliseconds since the Unix epoch. Whole seconds
/// would let an assignment start up to a second early.
pub fn instant(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn intern<K: std::hash::Hash + Eq + Clone>(keys: impl IntoIterator<Item = K>) -> HashMap<K, u32> {
    let mut map = HashMap::new();
    for key in keys {
        let next = map.len() as u32;
        map.entry(key).or_insert(next);
    }
    map
}

/// The owner that stands for principals no longer there.
const NOBODY: u32 = 0;

impl Shape {
    fn build(source: &Source) -> (Self, Vec<Vec<Permission>>, Vec<Option<u32>>) {
        let units = intern(source.business_units.iter().map(|(id, _)| *id));
        let environments = intern(source.environments.iter().copied());
        let mut unit_parents = vec![None; units.len()];
        for (id, parent) in &source.business_units {
            unit_parents[units[id] as usize] = parent.and_then(|p| units.get(&p).copied());
        }
        let control_unit = unit_parents.len() as u32;
        unit_parents.push(None);

        let mut actions: HashMap<String, HashMap<String, u32>> = HashMap::new();
        let mut public_actions = Vec::new();
        let mut own_actions = Vec::new();
        let own = Action::ALL.iter().map(|a| (a.qualified(), false, Some(*a)));
        let registered = source
            .resource_types
            .iter()
            .flat_map(|ty| ty.actions.iter().map(move |a| (ty, a)))
            .map(|(ty, a)| (ty.qualified(&a.name), a.public, None));
        for (qualified, public, own) in own.chain(registered) {
            // Portcullis's own names have more dots
            // (`portcullis:service_principal.credential.manage`): the type is what comes
            // before the first.
            if let Some((ty, name)) = qualified.split_once('.') {
                actions
                    .entry(ty.to_owned())
                    .or_default()
                    .insert(name.to_owned(), public_actions.len() as u32);
                public_actions.push(public);
                own_actions.push(own);
            }
        }
        let mut shape = Self {
            units,
            environments,
            actions,
            public_actions,
            own_actions,
            control_unit,
            operator: source.operator,
            role_refs: Vec::new(),
            roles: HashMap::new(),
        };
        let mut role_refs: Vec<RoleRef> = BuiltinRole::ALL
            .iter()
            .map(|r| RoleRef::Builtin(*r))
            .collect();
        let mut roles: Vec<Vec<Permission>> = BuiltinRole::ALL
            .iter()
            .map(|r| {
                r.permissions()
                    .iter()
                    .filter_map(|a| {
                        Some(Permission {
                            action: shape.action(&a.qualified())?,
                            depth: Depth::Tenant,
                        })
                    })
                    .collect()
            })
            .collect();
        for role in &source.custom_roles {
            role_refs.push(RoleRef::Custom(role.id));
            roles.push(
                role.permissions
                    .iter()
                    .filter_map(|p| {
                        shape.action(&p.action).map(|a| Permission {
                            action: a,
                            depth: p.depth,
                        })
                    })
                    .collect(),
            );
        }
        shape.roles = intern(role_refs.iter().copied());
        shape.role_refs = role_refs;
        (shape, roles, unit_parents)
    }

    /// An action by its qualified name (`document.read`).
    fn action(&self, qualified: &str) -> Option<u32> {
        let (ty, name) = qualified.split_once('.')?;
        self.actions.get(ty)?.get(name).copied()
    }

    /// An action of `ty` by its bare name.
    fn action_of(&self, ty: &str, name: &str) -> Option<u32> {
        self.actions.get(ty)?.get(name).copied()
    }
}

impl TenantEngine {
    pub fn build(mut source: Source) -> Result<Self, SnapshotError> {
        let (shape, roles, unit_parents) = Shape::build(&source);
        let mut principals: Vec<(PrincipalRef, Option<BusinessUnitId>, bool)> = source
            .principals
            .iter()
            .map(|(p, unit)| (*p, *unit, true))
            .chain(source.inactive.iter().map(|(p, unit)| (*p, *unit, false)))
            .collect();
        principals.sort_by_key(|(p, _, _)| *p);
        principals.dedup_by_key(|(p, _, _)| *p);
        let nobody = PrincipalRef {
            kind: PrincipalKind::User,
            id: uuid::Uuid::nil(),
        };
        let node_refs: Vec<PrincipalRef> = std::iter::once(nobody)
            .chain(principals.iter().map(|(p, _, _)| *p))
            .collect();
        let nodes: imbl::OrdMap<PrincipalRef, u32> = principals
            .iter()
            .enumerate()
            .map(|(i, (p, _, _))| (*p, i as u32 + 1))
            .collect();
        // The sorted list, not the persistent map, for the million lookups a large tenant's
        // records and memberships make here.
        let node = |p: &PrincipalRef| {
            principals
                .binary_search_by_key(p, |(q, _, _)| *q)
                .ok()
                .map(|i| i as u32 + 1)
        };
        let home_unit: Vec<Option<u32>> = std::iter::once(None)
            .chain(
                principals
                    .iter()
                    .map(|(_, unit, _)| unit.and_then(|u| shape.units.get(&u).copied())),
            )
            .collect();
        let active: Vec<bool> = std::iter::once(false)
            .chain(principals.iter().map(|(_, _, active)| *active))
            .collect();
        let mut memberships = vec![Vec::new(); node_refs.len()];
        for (member, group) in &source.memberships {
            if let (Some(m), Some(g)) = (node(member), node(&PrincipalRef::group(*group))) {
                memberships[m as usize].push(g);
            }
        }
        let quarantine = quarantine_cycles(&mut memberships);

        source.records.sort_by(|a, b| {
            (&a.resource_type, &a.external_id).cmp(&(&b.resource_type, &b.external_id))
        });
        let mut records: HashMap<String, imbl::OrdMap<Arc<str>, u32>> = HashMap::new();
        let mut record_names = Vec::with_capacity(source.records.len());
        let mut record_slots = imbl::HashMap::new();
        let mut model_records = Vec::with_capacity(source.records.len());
        let mut type_names: HashMap<&str, Arc<str>> = HashMap::new();
        for (slot, r) in source.records.iter().enumerate() {
            let slot = slot as u32;
            let ty = type_names
                .entry(r.resource_type.as_str())
                .or_insert_with(|| Arc::from(r.resource_type.as_str()))
                .clone();
            let id: Arc<str> = Arc::from(r.external_id.as_str());
            records
                .entry(r.resource_type.clone())
                .or_default()
                .insert(id.clone(), slot);
            record_names.push(Some((ty, id)));
            record_slots.insert(r.id, slot);
            model_records.push(Some(Record {
                owner: node(&r.owner).unwrap_or(NOBODY),
                business_unit: *shape
                    .units
                    .get(&r.business_unit_id)
                    .ok_or(SnapshotError::Dangling("a record's business unit"))?,
                environment: r
                    .environment_id
                    .and_then(|e| shape.environments.get(&e).copied()),
            }));
        }
        let mut engine = Self {
            snapshot: Snapshot::build(&Model::default())?,
            node_refs: Slots::from_vec(node_refs),
            nodes,
            active: Slots::from_vec(active),
            subjects: SubjectIndex::build(&source.identifiers),
            shape: Arc::new(shape),
            settings: Arc::new(source.settings),
            records: Arc::new(records),
            record_names: Slots::from_vec(record_names),
            record_slots,
            assignments: Slots::default(),
            assignment_slots: imbl::HashMap::new(),
            shares: Slots::default(),
            share_slots: imbl::HashMap::new(),
            denies: Arc::default(),
            deny_named: Arc::default(),
            quarantine: Arc::new(quarantine),
        };
        let mut assignments = Vec::with_capacity(source.assignments.len());
        let mut named = Vec::with_capacity(source.assignments.len());
        for a in &source.assignments {
            if let Some((model, name)) = engine.intern_assignment(a) {
                engine
                    .assignment_slots
                    .insert(a.id, assignments.len() as u32);
                assignments.push(Some(model));
                named.push(Some(name));
            }
        }
        let mut shares = Vec::with_capacity(source.shares.len());
        let mut share_ids = Vec::with_capacity(source.shares.len());
        for share in &source.shares {
            if let Some(model) = engine.intern_share(share) {
                engine.share_slots.insert(share.id, shares.len() as u32);
                shares.push(Some(model));
                share_ids.push(Some(share.id));
            }
        }
        let denies = engine.set_denies(&source.denies);
        let model = Model {
            memberships,
            home_unit,
            unit_parents,
            roles,
            assignments,
            records: model_records,
            shares,
            denies,
        };
        engine.assignments = Slots::from_vec(named);
        engine.shares = Slots::from_vec(share_ids);
        engine.snapshot = Snapshot::build(&model)?;
        Ok(engine)
    }

    /// An assignment as the snapshot holds it, and as reasons name it; `None` if it names a
    /// principal, role or scope the engine does not hold (it then holds nothing).
    fn intern_assignment(&self, a: &RoleAssignment) -> Option<(Assignment, NamedAssignment)> {
        let principal = self.nodes.get(&a.principal).copied()?;
        let role = *self.shape.roles.get(&a.role)?;
        let model = Assignment {
            principal,
            role,
            scope: self.intern_scope(a.scope)?,
            starts_at: a.starts_at.map(instant),
            ends_at: a.ends_at.map(instant),
        };
        let name = NamedAssignment {
            id: a.id,
            scope: a.scope,
            principal,
            role,
        };
        Some((model, name))
    }

    fn intern_scope(&self, scope: Scope) -> Option<EngineScope> {
        Some(match scope {
            Scope::Tenant => EngineScope::Tenant,
            Scope::Environment(e) => EngineScope::Environment(*self.shape.environments.get(&e)?),
            Scope::BusinessUnit(u) => EngineScope::BusinessUnit(*self.shape.units.get(&u)?),
            Scope::Record(r) => EngineScope::Record(*self.record_slots.get(&r)?),
        })
    }

    /// A share as the snapshot holds it; `None` if its record or principal is not held.
    fn intern_share(&self, share: &Share) -> Option<EngineShare> {
        let record = *self.record_slots.get(&share.record_id)?;
        let principal = self.nodes.get(&share.principal).copied()?;
        let (ty, _) = self.record_names.get(record)?.as_ref()?;
        Some(EngineShare {
            record,
            principal,
            actions: share
                .actions
                .iter()
                .filter_map(|a| self.shape.action_of(ty, a))
                .collect(),
        })
    }

    /// Takes `denies` as the tenant's deny assignments (their names and whom they name) and
    /// returns them as the snapshot holds them.
    fn set_denies(&mut self, denies: &[DenyAssignment]) -> Vec<Deny> {
        let mut names = Vec::new();
        let mut model = Vec::new();
        let mut named = Vec::new();
        for deny in denies {
            let Some(scope) = self.intern_scope(deny.scope) else {
                continue;
            };
            let known = |list: &[PrincipalRef]| -> Vec<u32> {
                list.iter()
                    .filter_map(|p| self.nodes.get(p).copied())
                    .collect()
            };
            names.push((deny.id, deny.name.clone()));
            named.extend(known(&deny.principals));
            named.extend(known(&deny.excluded));
            model.push(Deny {
                principals: known(&deny.principals),
                excluded: known(&deny.excluded),
                actions: deny
                    .actions
                    .iter()
                    .filter_map(|a| self.shape.action(a))
                    .collect(),
                scope,
            });
        }
        named.sort_unstable();
        named.dedup();
        self.denies = Arc::new(names);
        self.deny_named = Arc::new(named);
        model
    }

    /// Whether a deny assignment reaches `principal`: names it, as denied or as excepted, or
    /// names a group it is in. Who is in such a principal decides whom the guardrail holds,
    /// so changing its memberships is as privileged as changing the deny assignment.
    pub fn under_deny_assignment(&self, principal: PrincipalRef) -> bool {
        let Some(node) = self.node(&principal) else {
            return false;
        };
        let named = |n: &u32| self.deny_named.binary_search(n).is_ok();
        named(&node) || self.snapshot.groups_of(node).iter().any(named)
    }

    /// Every group `principal` is in, directly or through nested groups.
    pub fn groups_of(&self, principal: PrincipalRef) -> Vec<crate::ids::GroupId> {
        let Some(node) = self.node(&principal) else {
            return Vec::new();
        };
        self.snapshot
            .groups_of(node)
            .iter()
            .filter_map(|g| self.node_refs.get(*g))
            .filter(|g| g.kind == PrincipalKind::Group)
            .map(|g| crate::ids::GroupId::from_uuid(g.id))
            .collect()
    }

    /// How `member` comes to be in `group`: the groups from one `member` is directly in to
    /// `group` itself, each directly in the next. Empty when `member` is `group` or not in it.
    /// Read from the closure alone (no direct edges are kept): among the groups that lead to
    /// `group`, one that no other of them leads to is a direct membership, or it would have one
    /// of them before it.
    pub fn membership_path(&self, member: PrincipalRef, group: PrincipalRef) -> Vec<PrincipalRef> {
        let (Some(mut at), Some(goal)) = (self.node(&member), self.node(&group)) else {
            return Vec::new();
        };
        let within = |node: u32, of: u32| self.snapshot.groups_of(node).binary_search(&of).is_ok();
        if !within(at, goal) {
            return Vec::new();
        }
        let mut path = Vec::new();
        while at != goal {
            let leading: Vec<u32> = self
                .snapshot
                .groups_of(at)
                .iter()
                .copied()
                .filter(|g| *g == goal || within(*g, goal))
                .collect();
            let Some(next) = leading
                .iter()
                .copied()
                .find(|g| !leading.iter().any(|other| within(*other, *g)))
            else {
                // Only a cycle leaves no first step, and cycles are quarantined.
                return Vec::new();
            };
            path.push(self.node_ref(next));
            at = next;
        }
        path
    }

    /// The memberships (member, group) that close a cycle, if the stored data holds any:
    /// removing them restores every principal they take out.
    pub fn membership_cycles(&self) -> Vec<(PrincipalRef, PrincipalRef)> {
        let mut edges: Vec<_> = self
            .quarantine
            .closing_edges
            .iter()
            .map(|(member, group)| (self.node_ref(*member), self.node_ref(*group)))
            .collect();
        edges.sort_unstable();
        edges
    }

    /// The principals a membership cycle takes out, in order.
    pub fn quarantined_principals(&self) -> Vec<PrincipalRef> {
        self.quarantine
            .affected
            .iter()
            .zip(self.node_refs.iter())
            .filter(|(affected, _)| **affected)
            .map(|(_, principal)| *principal)
            .collect()
    }

    /// The tenant's settings at this revision.
    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// The principal kinds a subject type stands for: `user`, `group`, `service_principal`, or
    /// one of the tenant's own names for them.
    pub fn subject_kinds(&self, type_name: &str) -> Option<&[PrincipalKind]> {
        subject_kinds(&self.settings.subject_types, type_name)
    }

    /// The subject an enforcement point names by its type (`user`, or one of the tenant's
    /// subject types) and an identifier (`only` that kind of identifier, or any); `None` when
    /// the type is unknown.
    pub fn find_subject(
        &self,
        type_name: &str,
        id: &str,
        only: Option<Identifier>,
    ) -> Option<Subject> {
        let kinds = self.subject_kinds(type_name)?;
        Some(
            match self
                .subjects
                .find(kinds, id, only, |p| self.node(&p).is_some())
            {
                Found::One(principal) => Subject::Principal(principal),
                Found::Nobody => Subject::Unknown,
                Found::Several(_) => Subject::Ambiguous,
            },
        )
    }

    /// The node of an active principal.
    fn node(&self, principal: &PrincipalRef) -> Option<u32> {
        self.nodes
            .get(principal)
            .copied()
            .filter(|n| self.is_active(*n))
    }

    fn is_active(&self, node: u32) -> bool {
        self.active.get(node).copied().unwrap_or(false)
    }

    fn node_ref(&self, node: u32) -> PrincipalRef {
        self.node_refs.get(node).copied().unwrap_or_else(|| {
            self.node_refs.get(NOBODY).copied().unwrap_or(PrincipalRef {
                kind: PrincipalKind::User,
                id: uuid::Uuid::nil(),
            })
        })
    }

    /// The type a check names, as the engine keys it: one the tenant registered, else one of
    /// Portcullis's own by its bare name (`environment` for `portcullis:environment`).
    fn resource_type<'a>(&'a self, name: &str) -> Option<(&'a str, &'a HashMap<String, u32>)> {
        if let Some((key, actions)) = self.shape.actions.get_key_value(name) {
            return Some((key.as_str(), actions));
        }
        if name.contains(':') {
            return None;
        }
        self.shape
            .actions
            .get_key_value(format!("{OWN_TYPE_PREFIX}{name}").as_str())
            .map(|(key, actions)| (key.as_str(), actions))
    }

    /// The record a check is about, of the type `resource_type` resolved to.
    fn target(&self, resource_type: &str, resource: &Resource) -> Option<Target> {
        if let Some(slot) = self
            .records
            .get(resource_type)
            .and_then(|of_type| of_type.get(resource.external_id))
        {
            return self.snapshot.target(*slot);
        }
        if let Some(own_type) = resource_type.strip_prefix(OWN_TYPE_PREFIX) {
            // An environment is named by its id; other settings may say which environment
            // they are asked about.
            let environment = if own_type == "environment" {
                resource.external_id.parse().ok()
            } else {
                resource.properties.and_then(|p| p.environment_id)
            };
            return Some(self.control_target(environment));
        }
        let props = resource.properties?;
        let owner = props.owner.and_then(|o| self.node(&o));
        // Without a unit of its own, the record sits in its owner's home unit.
        let business_unit = match props.business_unit_id {
            Some(unit) => *self.shape.units.get(&unit)?,
            None => self.snapshot.home_unit(owner?)?,
        };
        Some(Target {
            index: None,
            record: Record {
                owner: owner.unwrap_or(NOBODY),
                business_unit,
                environment: props
                    .environment_id
                    .and_then(|e| self.shape.environments.get(&e).copied()),
            },
        })
    }

    /// Portcullis's own configuration as a check target: no record and no owner, in no real
    /// unit, and in `environment` when the question is about one.
    fn control_target(&self, environment: Option<EnvironmentId>) -> Target {
        Target {
            index: None,
            record: Record {
                owner: NOBODY,
                business_unit: self.shape.control_unit,
                environment: environment.and_then(|e| self.shape.environments.get(&e).copied()),
            },
        }
    }

    /// The target as `action` is asked about: one of Portcullis's own actions that cannot be
    /// held per environment is asked about tenant-wide, and one that manages tenants is
    /// refused outside the operator tenant.
    fn as_asked(&self, action: u32, target: &Target) -> Result<Target, Reason> {
        let Some(own) = self
            .shape
            .own_actions
            .get(action as usize)
            .copied()
            .flatten()
        else {
            return Ok(*target);
        };
        if own.is_platform() && !self.shape.operator {
            return Err(Reason::PlatformOnly);
        }
        let mut target = *target;
        if !own.is_environment_scoped() {
            target.record.environment = None;
        }
        Ok(target)
    }

    /// May `principal` do one of Portcullis's own actions at `scope`? The admin API's
    /// question. Only tenant-wide assignments, and environment-wide ones for the actions that
    /// can be held per environment, reach Portcullis's configuration; deny assignments apply
    /// as to any action.
    pub fn check_control(
        &self,
        principal: PrincipalRef,
        action: Action,
        scope: Scope,
        now: i64,
    ) -> Verdict {
        let environment = match scope {
            Scope::Environment(e) => Some(e),
            _ => None,
        };
        let target = self.control_target(environment);
        let refused = |reason| Verdict {
            allowed: false,
            reason,
        };
        let id = self
            .shape
            .own_actions
            .iter()
            .position(|own| *own == Some(action))
            .map(|i| i as u32);
        match id {
            // The caller is known to be active; missing from the snapshot, it was created
            // since the last rebuild and has been given nothing yet.
            Some(_) if self.node(&principal).is_none() => refused(Reason::NoRole),
            Some(id) => self.decide(Subject::Principal(principal), id, &target, now),
            None => refused(Reason::UnknownAction),
        }
    }

    /// Whether `principal` may do any of Portcullis's own actions now, tenant-wide or in any
    /// environment: an administrator, whom the tenant's sign-in rules for administrators
    /// govern. Decided as every check is (windows, deny assignments and cycles included), so a
    /// custom role counts exactly as a built-in one.
    pub fn is_administrator(&self, principal: PrincipalRef, now: i64) -> bool {
        self.holds_any(principal, Action::ALL.iter().copied(), now)
    }

    /// Whether `principal` may do any of `actions` now, tenant-wide or in any environment.
    pub fn holds_any(
        &self,
        principal: PrincipalRef,
        actions: impl IntoIterator<Item = Action>,
        now: i64,
    ) -> bool {
        let environments: Vec<Scope> = self
            .shape
            .environments
            .keys()
            .map(|e| Scope::Environment(*e))
            .collect();
        actions.into_iter().any(|action| {
            let scopes = if action.is_environment_scoped() {
                &environments[..]
            } else {
                &[]
            };
            std::iter::once(&Scope::Tenant)
                .chain(scopes)
                .any(|scope| self.check_control(principal, action, *scope, now).allowed)
        })
    }

    /// Whether an active user or service principal other than `except` may assign roles
    /// tenant-wide now: someone who can still give the tenant administrator role to whoever
    /// needs it. A tenant without one is locked out of its own configuration.
    pub fn has_role_assigner(&self, except: Option<PrincipalRef>, now: i64) -> bool {
        self.nodes
            .iter()
            .filter(|(p, node)| {
                self.is_active(**node) && p.kind != PrincipalKind::Group && Some(**p) != except
            })
            .map(|(p, _)| p)
            .any(|p| {
                self.check_control(*p, Action::RoleAssign, Scope::Tenant, now)
                    .allowed
            })
    }

    /// May `subject` do `action` (a name of the resource's type: `read`) on `resource` at
    /// `now` (an `instant`)?
    pub fn check(&self, subject: Subject, action: &str, resource: &Resource, now: i64) -> Verdict {
        let verdict = |allowed, reason| Verdict { allowed, reason };
        let Some((resource_type, action)) = self.action_id(resource.resource_type, action) else {
            return verdict(false, Reason::UnknownAction);
        };
        let Some(target) = self.target(resource_type, resource) else {
            return verdict(false, Reason::UnknownResource);
        };
        self.decide(subject, action, &target, now)
    }

    /// The action a check names on a type, and the type as the engine keys it.
    fn action_id<'a>(&'a self, resource_type: &str, action: &str) -> Option<(&'a str, u32)> {
        let (key, of_type) = self.resource_type(resource_type)?;
        // `read`, `document.read` and `portcullis:user.read` all name an action of their type.
        let name = [resource_type, key]
            .iter()
            .find_map(|ty| action.strip_prefix(ty)?.strip_prefix('.'))
            .unwrap_or(action);
        Some((key, *of_type.get(name)?))
    }

    fn is_public(&self, action: u32) -> bool {
        self.shape
            .public_actions
            .get(action as usize)
            .copied()
            .unwrap_or(false)
    }

    fn principal(&self, subject: Subject) -> Option<u32> {
        match subject {
            Subject::Principal(p) => self.node(&p),
            Subject::Anonymous | Subject::Unknown | Subject::Ambiguous => None,
        }
    }

    /// The answer alone, for searches that ask it many times.
    fn allowed(&self, subject: Subject, action: u32, target: &Target, now: i64) -> bool {
        let Ok(target) = self.as_asked(action, target) else {
            return false;
        };
        match self.principal(subject) {
            _ if subject == Subject::Ambiguous => false,
            Some(p) if self.quarantine.is_affected(p) => false,
            // Only a deny assignment refuses a public action: that takes the full decision.
            _ if self.is_public(action) => self.decide(subject, action, &target, now).allowed,
            Some(p) => self.snapshot.allows(p, action, &target, now),
            None => false,
        }
    }

    fn decide(&self, subject: Subject, action: u32, target: &Target, now: i64) -> Verdict {
        let target = match self.as_asked(action, target) {
            Ok(target) => target,
            Err(reason) => {
                return Verdict {
                    allowed: false,
                    reason,
                };
            }
        };
        let target = &target;
        let public = self.is_public(action);
        let reason = match self.principal(subject) {
            _ if subject == Subject::Ambiguous => Reason::AmbiguousSubject,
            Some(p) if self.quarantine.is_affected(p) => Reason::MembershipCycle,
            None if public => Reason::Public,
            None => Reason::UnknownSubject,
            Some(p) => match self.snapshot.explain_target(p, action, target, now) {
                // Only a deny assignment refuses a public action.
                Decision::Denied(refusal)
                    if public && !matches!(refusal, Refusal::DenyAssignment(_)) =>
                {
                    Reason::Public
                }
                decision => self.name(decision),
            },
        };
        let allowed = matches!(
            reason,
            Reason::Public | Reason::Share { .. } | Reason::Assignment { .. }
        );
        Verdict { allowed, reason }
    }

    fn name(&self, decision: Decision) -> Reason {
        let assignment = |index: usize| {
            self.assignments
                .get(index as u32)
                .copied()
                .flatten()
                .expect("a decision names an assignment the engine holds")
        };
        match decision {
            Decision::Allowed(Grounds::Share { share, principal }) => Reason::Share {
                share_id: self
                    .shares
                    .get(share as u32)
                    .copied()
                    .flatten()
                    .expect("a decision names a share the engine holds"),
                principal: self.node_ref(principal),
            },
            Decision::Allowed(Grounds::Assignment(index)) => {
                let a = assignment(index);
                Reason::Assignment {
                    assignment_id: a.id,
                    role: self.shape.role_refs[a.role as usize],
                    scope: a.scope,
                    principal: self.node_ref(a.principal),
                }
            }
            Decision::Denied(Refusal::DenyAssignment(index)) => {
                let (id, name) = &self.denies[index];
                Reason::DenyAssignment {
                    deny_assignment_id: *id,
                    name: name.clone(),
                }
            }
            Decision::Denied(Refusal::NoRole) => Reason::NoRole,
            Decision::Denied(Refusal::ScopeMismatch { assignment: index }) => {
                let a = assignment(index);
                Reason::ScopeMismatch {
                    assignment_id: a.id,
                    role: self.shape.role_refs[a.role as usize],
                    scope: a.scope,
                }
            }
            Decision::Denied(Refusal::DepthTooShallow { assignment: index }) => {
                let a = assignment(index);
                Reason::DepthTooShallow {
                    assignment_id: a.id,
                    role: self.shape.role_refs[a.role as usize],
                }
            }
            Decision::Denied(Refusal::OutsideWindow { assignment: index }) => {
                let a = assignment(index);
                Reason::OutsideWindow {
                    assignment_id: a.id,
                    role: self.shape.role_refs[a.role as usize],
                }
            }
            Decision::Denied(Refusal::UnknownRecord) => Reason::UnknownResource,
        }
    }

    /// Bytes the engine holds, roughly: the snapshot's indexes, and the names that map the
    /// enforcement points' words to its numbers (a principal's, a record's and an
    /// assignment's, at their usual sizes). What a node's memory budget counts.
    pub fn heap_bytes(&self) -> usize {
        const PER_PRINCIPAL: usize = 96;
        const PER_RECORD: usize = 128;
        const PER_ASSIGNMENT: usize = 64;
        self.snapshot.heap_bytes()
            + self.nodes.len() * PER_PRINCIPAL
            + self.record_names.len() * PER_RECORD
            + self.assignments.len() * PER_ASSIGNMENT
    }

    /// The principals of `kinds` allowed `action` on `resource`, in (kind, id) order after
    /// `after`, at most `limit`; and whether more may follow. Paged by `search_page`: a dense
    /// answer by walking the principals in order, a sparse one from the candidates of the
    /// snapshot's reverse indexes (`Snapshot::who_may`).
    pub fn subjects(
        &self,
        kinds: &[PrincipalKind],
        action: &str,
        resource: &Resource,
        now: i64,
        after: Option<PrincipalRef>,
        limit: usize,
    ) -> Result<(Vec<PrincipalRef>, bool), Reason> {
        let (resource_type, action) = self
            .action_id(resource.resource_type, action)
            .ok_or(Reason::UnknownAction)?;
        let target = self
            .target(resource_type, resource)
            .ok_or(Reason::UnknownResource)?;
        let Ok(asked) = self.as_asked(action, &target) else {
            return Ok((Vec::new(), false));
        };
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let in_order = self
            .nodes
            .range((from, Bound::Unbounded))
            .filter(|(p, node)| kinds.contains(&p.kind) && self.is_active(**node))
            .map(|(p, _)| *p);
        let candidates = || {
            // Everyone may do a public action, unless denied: the walk is the search.
            if self.is_public(action) {
                return None;
            }
            let nodes =
                self.snapshot
                    .who_may(action, &asked, now, search_budget(self.nodes.len()))?;
            Some(
                nodes
                    .into_iter()
                    .filter(|node| self.is_active(*node))
                    .map(|node| self.node_ref(node))
                    .filter(|p| kinds.contains(&p.kind))
                    .collect(),
            )
        };
        Ok(search_page(
            in_order,
            |p| self.allowed(Subject::Principal(*p), action, &target, now),
            candidates,
            limit,
        ))
    }

    /// The registered records of `resource_type` on which `subject` may do `action`, in
    /// external-id order after `after`, at most `limit`; and whether more may follow. As
    /// `subjects`, with the candidates of `Snapshot::what_may`.
    pub fn resources(
        &self,
        subject: Subject,
        action: &str,
        resource_type: &str,
        now: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), Reason> {
        let (resource_type, action) = self
            .action_id(resource_type, action)
            .ok_or(Reason::UnknownAction)?;
        let Some(of_type) = self.records.get(resource_type) else {
            return Ok((Vec::new(), false));
        };
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let in_order = of_type
            .range::<_, str>((from, Bound::Unbounded))
            .map(|(id, slot)| (id.clone(), *slot));
        let candidates = || {
            let principal = self.principal(subject)?;
            if self.is_public(action) {
                return None;
            }
            let of_this_type = |slot: u32| {
                self.record_names
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|(ty, _)| **ty == *resource_type)
            };
            let slots = self.snapshot.what_may(
                principal,
                action,
                now,
                of_this_type,
                search_budget(of_type.len()),
            )?;
            Some(
                slots
                    .into_iter()
                    .filter_map(|slot| {
                        let (_, id) = self.record_names.get(slot)?.as_ref()?;
                        Some((id.clone(), slot))
                    })
                    .collect(),
            )
        };
        let allowed = |(_, slot): &(Arc<str>, u32)| {
            self.snapshot
                .target(*slot)
                .is_some_and(|target| self.allowed(subject, action, &target, now))
        };
        let (found, more) = search_page(in_order, allowed, candidates, limit);
        Ok((found.iter().map(|(id, _)| id.to_string()).collect(), more))
    }

    /// The actions of the resource's type that `subject` may do on it.
    pub fn actions(
        &self,
        subject: Subject,
        resource: &Resource,
        now: i64,
    ) -> Result<Vec<String>, Reason> {
        let (resource_type, of_type) = self
            .resource_type(resource.resource_type)
            .ok_or(Reason::UnknownAction)?;
        let target = self
            .target(resource_type, resource)
            .ok_or(Reason::UnknownResource)?;
        let mut allowed: Vec<String> = of_type
            .iter()
            .filter(|(_, id)| self.allowed(subject, **id, &target, now))
            .map(|(name, _)| name.clone())
            .collect();
        allowed.sort_unstable();
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::*;
    use crate::authz::Plane;
    use crate::resources::{ResourceAction, RolePermission};

    proptest! {
        /// Whether the walk fills the page, the candidates finish it, or the walk goes on past
        /// a budget, a page is the first `limit` allowed entries after the cursor.
        #[test]
        fn a_search_page_is_the_first_allowed_entries_after_the_cursor(
            entries in 0u32..2000,
            one_in in 1u32..300,
            extra in prop::collection::vec(0u32..2000, 0..50),
            gathered in any::<bool>(),
            after in prop::option::of(0u32..2000),
            limit in 0usize..40,
        ) {
            let allowed = |n: &u32| n.is_multiple_of(one_in);
            let in_order = (0..entries).filter(|n| after.is_none_or(|a| *n > a));
            let candidates = || {
                gathered.then(|| {
                    let mut superset: Vec<u32> = (0..entries).filter(allowed).collect();
                    superset.extend(extra.iter().filter(|n| **n < entries));
                    superset.reverse();
                    superset
                })
            };
            let mut expected: Vec<u32> = in_order.clone().filter(allowed).take(limit + 1).collect();
            let more = expected.len() > limit;
            expected.truncate(limit);
            prop_assert_eq!(search_page(in_order, allowed, candidates, limit), (expected, more));
        }
    }

    /// Milliseconds, as `instant` gives them.
    const NOW: i64 = 1_800_000_000_000;

    struct Tenant {
        source: Source,
        root: BusinessUnitId,
        sales: BusinessUnitId,
        emea: BusinessUnitId,
        dev: EnvironmentId,
        prod: EnvironmentId,
        alice: PrincipalRef,
        bob: PrincipalRef,
        carol: PrincipalRef,
        editors: GroupId,
        reader: RoleId,
    }

    fn at(millis: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap()
    }

    fn assign(principal: PrincipalRef, role: RoleRef, scope: Scope) -> RoleAssignment {
        RoleAssignment {
            id: RoleAssignmentId::generate(),
            tenant_id: TenantId::generate(),
            principal,
            role,
            scope,
            starts_at: None,
            ends_at: None,
            created_at: at(NOW),
        }
    }

    fn record(
        ty: &str,
        id: &str,
        owner: PrincipalRef,
        unit: BusinessUnitId,
        env: Option<EnvironmentId>,
    ) -> RecordEntry {
        RecordEntry {
            id: RecordId::generate(),
            resource_type: ty.into(),
            external_id: id.into(),
            owner,
            business_unit_id: unit,
            environment_id: env,
            created_at: at(NOW),
            updated_at: at(NOW),
        }
    }

    /// Units root > sales > emea; alice (emea, in group editors), bob (sales), carol (root);
    /// documents in each unit; a `reader` role reading documents across the holder's unit tree.
    fn tenant() -> Tenant {
        let (root, sales, emea) = (
            BusinessUnitId::generate(),
            BusinessUnitId::generate(),
            BusinessUnitId::generate(),
        );
        let (dev, prod) = (EnvironmentId::generate(), EnvironmentId::generate());
        let alice = PrincipalRef::user(UserId::generate());
        let bob = PrincipalRef::user(UserId::generate());
        let carol = PrincipalRef::user(UserId::generate());
        let editors = GroupId::generate();
        let reader = RoleId::generate();
        let action = |name: &str, public| ResourceAction {
            name: name.into(),
            plane: Plane::Data,
            public,
        };
        let ty = |name: &str, actions| ResourceType {
            name: name.into(),
            description: None,
            actions,
            created_at: at(NOW),
            updated_at: at(NOW),
            version: 1,
        };
        let source = Source {
            operator: false,
            settings: AccessSettings::default(),
            business_units: vec![(root, None), (sales, Some(root)), (emea, Some(sales))],
            environments: vec![dev, prod],
            principals: vec![
                (alice, Some(emea)),
                (bob, Some(sales)),
                (carol, Some(root)),
                (PrincipalRef::group(editors), None),
            ],
            inactive: vec![],
            identifiers: vec![
                (alice, Identifier::UserName, "alice".into()),
                (alice, Identifier::Email, "alice@example.com".into()),
                (bob, Identifier::UserName, "bob".into()),
                (bob, Identifier::ExternalId, "okta|00ub0b".into()),
            ],
            memberships: vec![(alice, editors)],
            resource_types: vec![
                ty(
                    "document",
                    vec![action("read", false), action("delete", false)],
                ),
                ty("notice", vec![action("read", true)]),
            ],
            custom_roles: vec![CustomRole {
                id: reader,
                name: "Reader".into(),
                description: None,
                permissions: vec![
                    RolePermission {
                        action: "document.read".into(),
                        depth: Depth::BusinessUnitTree,
                    },
                    RolePermission {
                        action: "document.delete".into(),
                        depth: Depth::Own,
                    },
                ],
                created_at: at(NOW),
                updated_at: at(NOW),
                version: 1,
            }],
            assignments: vec![assign(
                PrincipalRef::group(editors),
                RoleRef::Custom(reader),
                Scope::Tenant,
            )],
            records: vec![
                record("document", "d-emea", alice, emea, Some(dev)),
                record("document", "d-sales", bob, sales, Some(prod)),
                record("document", "d-root", carol, root, None),
                record("notice", "n-1", carol, root, None),
            ],
            shares: vec![],
            denies: vec![],
        };
        Tenant {
            source,
            root,
            sales,
            emea,
            dev,
            prod,
            alice,
            bob,
            carol,
            editors,
            reader,
        }
    }

    /// A custom role holding one action to one depth.
    fn one_permission_role(id: RoleId, name: &str, action: &str, depth: Depth) -> CustomRole {
        CustomRole {
            id,
            name: name.into(),
            description: None,
            permissions: vec![RolePermission {
                action: action.into(),
                depth,
            }],
            created_at: at(NOW),
            updated_at: at(NOW),
            version: 1,
        }
    }

    fn doc(id: &str) -> Resource<'_> {
        Resource {
            resource_type: "document",
            external_id: id,
            properties: None,
        }
    }

    fn check(
        engine: &TenantEngine,
        who: PrincipalRef,
        action: &str,
        resource: Resource,
    ) -> Verdict {
        engine.check(Subject::Principal(who), action, &resource, NOW)
    }

    #[test]
    fn a_team_passes_its_roles_on_from_its_own_unit() {
        let mut t = tenant();
        let team = GroupId::generate();
        let unit_reader = RoleId::generate();
        t.source
            .principals
            .push((PrincipalRef::group(team), Some(t.emea)));
        t.source.memberships.push((t.bob, team));
        t.source.custom_roles.push(one_permission_role(
            unit_reader,
            "Unit reader",
            "document.read",
            Depth::BusinessUnit,
        ));
        let held = assign(
            PrincipalRef::group(team),
            RoleRef::Custom(unit_reader),
            Scope::Tenant,
        );
        t.source.assignments.push(held.clone());
        let engine = TenantEngine::build(t.source.clone()).unwrap();

        // Bob's own unit is sales, but through the EMEA team he reads EMEA's records...
        let v = check(&engine, t.bob, "read", doc("d-emea"));
        assert!(v.allowed, "{v:?}");
        assert!(
            matches!(v.reason, Reason::Assignment { assignment_id, principal, .. }
                if assignment_id == held.id && principal == PrincipalRef::group(team))
        );
        // ...and not his own unit's through it: the depth counts from the team's unit.
        assert_eq!(
            check(&engine, t.bob, "read", doc("d-sales")).reason,
            Reason::DepthTooShallow {
                assignment_id: held.id,
                role: RoleRef::Custom(unit_reader)
            }
        );
        // A plain group's roles still count from each member's own unit.
        let mut plain = t.source.clone();
        plain
            .principals
            .retain(|(p, _)| *p != PrincipalRef::group(team));
        plain.principals.push((PrincipalRef::group(team), None));
        let engine = TenantEngine::build(plain).unwrap();
        assert!(check(&engine, t.bob, "read", doc("d-sales")).allowed);
        assert!(!check(&engine, t.bob, "read", doc("d-emea")).allowed);
    }

    #[test]
    fn a_membership_path_goes_one_direct_membership_at_a_time() {
        let mut t = tenant();
        // alice → editors → writers → staff, and alice → staff directly too; bob in nothing.
        let (writers, staff) = (GroupId::generate(), GroupId::generate());
        for g in [writers, staff] {
            t.source.principals.push((PrincipalRef::group(g), None));
        }
        t.source.memberships.extend([
            (PrincipalRef::group(t.editors), writers),
            (PrincipalRef::group(writers), staff),
        ]);
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let g = PrincipalRef::group;
        assert_eq!(
            engine.membership_path(t.alice, g(staff)),
            vec![g(t.editors), g(writers), g(staff)]
        );
        assert_eq!(
            engine.membership_path(t.alice, g(t.editors)),
            vec![g(t.editors)]
        );
        assert!(engine.membership_path(t.bob, g(staff)).is_empty());
        assert!(engine.membership_path(g(staff), g(staff)).is_empty());
        // With a direct membership as well, every step is still a direct one.
        t.source.memberships.push((t.alice, staff));
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let path = engine.membership_path(t.alice, g(staff));
        assert_eq!(path.last(), Some(&g(staff)));
        let direct = |m: PrincipalRef, group: PrincipalRef| {
            t.source
                .memberships
                .contains(&(m, GroupId::from_uuid(group.id)))
        };
        let mut from = t.alice;
        for step in path {
            assert!(direct(from, step), "{from:?} is not in {step:?}");
            from = step;
        }
    }

    #[test]
    fn windows_are_kept_to_the_millisecond() {
        let mut t = tenant();
        let mut starting = assign(t.bob, RoleRef::Custom(t.reader), Scope::Tenant);
        starting.starts_at = Some(at(NOW + 500));
        let mut ending = assign(t.carol, RoleRef::Custom(t.reader), Scope::Tenant);
        ending.ends_at = Some(at(NOW + 500));
        t.source.assignments.extend([starting, ending]);
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let read = |who, now| {
            engine
                .check(Subject::Principal(who), "read", &doc("d-sales"), now)
                .allowed
        };
        // Half a second before it starts, an assignment grants nothing, even in the same second.
        assert!(!read(t.bob, NOW));
        assert!(read(t.bob, NOW + 500));
        assert!(read(t.carol, NOW + 499));
        assert!(!read(t.carol, NOW + 500));
        assert_eq!(instant(at(NOW + 1)), NOW + 1);
    }

    #[test]
    fn portcullis_own_actions_are_decided_on_the_control_plane() {
        let mut t = tenant();
        let directory = RoleId::generate();
        t.source.custom_roles.push(one_permission_role(
            directory,
            "Directory reader",
            "portcullis:user.read",
            Depth::Tenant,
        ));
        let admin = RoleRef::Builtin(BuiltinRole::TenantAdministrator);
        let carol_in_root = assign(
            t.carol,
            RoleRef::Custom(directory),
            Scope::BusinessUnit(t.root),
        );
        let bob_admin_in_prod = assign(t.bob, admin, Scope::Environment(t.prod));
        t.source.assignments.extend([
            assign(PrincipalRef::group(t.editors), admin, Scope::Tenant),
            bob_admin_in_prod.clone(),
            carol_in_root.clone(),
        ]);
        let guardrail = DenyAssignmentId::generate();
        t.source.denies.push(DenyAssignment {
            id: guardrail,
            name: "prod stays".into(),
            description: None,
            principals: vec![PrincipalRef::group(t.editors)],
            excluded: vec![],
            actions: vec!["portcullis:environment.delete".into()],
            scope: Scope::Environment(t.prod),
            created_at: at(NOW),
        });
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let control = |who, action, scope| engine.check_control(who, action, scope, NOW);

        // A tenant-wide role reaches everything but what a deny assignment guards.
        assert!(control(t.alice, Action::UserDelete, Scope::Tenant).allowed);
        assert!(
            control(
                t.alice,
                Action::EnvironmentDelete,
                Scope::Environment(t.dev)
            )
            .allowed
        );
        assert_eq!(
            control(
                t.alice,
                Action::EnvironmentDelete,
                Scope::Environment(t.prod)
            )
            .reason,
            Reason::DenyAssignment {
                deny_assignment_id: guardrail,
                name: "prod stays".into()
            }
        );
        // A caller created since the snapshot was built holds nothing yet.
        let newcomer = PrincipalRef::service_principal(ServicePrincipalId::generate());
        assert_eq!(
            control(newcomer, Action::UserRead, Scope::Tenant).reason,
            Reason::NoRole
        );
        // Outside the operator tenant nobody manages tenants, whatever role they hold.
        assert_eq!(
            control(t.alice, Action::TenantCreate, Scope::Tenant).reason,
            Reason::PlatformOnly
        );
        let mut operator = t.source.clone();
        operator.operator = true;
        let operator = TenantEngine::build(operator).unwrap();
        assert!(
            operator
                .check_control(t.alice, Action::TenantCreate, Scope::Tenant, NOW)
                .allowed
        );
        // An environment-wide role reaches only what can be held per environment, and only there.
        assert!(control(t.bob, Action::EnvironmentUpdate, Scope::Environment(t.prod)).allowed);
        assert!(matches!(
            control(t.bob, Action::EnvironmentUpdate, Scope::Environment(t.dev)).reason,
            Reason::ScopeMismatch { assignment_id, .. } if assignment_id == bob_admin_in_prod.id
        ));
        assert!(!control(t.bob, Action::EnvironmentCreate, Scope::Environment(t.prod)).allowed);
        assert!(!control(t.bob, Action::UserRead, Scope::Environment(t.prod)).allowed);
        // A role held at a business unit reaches that unit's records, never the configuration.
        assert_eq!(
            control(t.carol, Action::UserRead, Scope::Tenant).reason,
            Reason::ScopeMismatch {
                assignment_id: carol_in_root.id,
                role: RoleRef::Custom(directory),
                scope: Scope::BusinessUnit(t.root)
            }
        );
        // Administrators are whoever may do any of these actions: alice through her group, bob
        // in one environment; carol's role reaches records only, so she is not one.
        assert!(engine.is_administrator(t.alice, NOW));
        assert!(engine.is_administrator(t.bob, NOW));
        assert!(!engine.is_administrator(t.carol, NOW));
        assert!(!engine.is_administrator(newcomer, NOW));

        // The same questions through the AuthZEN-shaped API, with Portcullis's own types.
        let prod = t.prod.to_string();
        let environment = Resource {
            resource_type: "environment",
            external_id: &prod,
            properties: None,
        };
        assert!(!check(&engine, t.alice, "delete", environment).allowed);
        assert_eq!(
            engine
                .actions(Subject::Principal(t.bob), &environment, NOW)
                .unwrap(),
            ["delete", "read", "update"]
        );
        let (updaters, _) = engine
            .subjects(
                &[PrincipalKind::User],
                "update",
                &environment,
                NOW,
                None,
                10,
            )
            .unwrap();
        let mut expected = vec![t.alice, t.bob];
        expected.sort();
        assert_eq!(updaters, expected);
    }

    #[test]
    fn enforcement_points_name_subjects_and_owners_their_own_way() {
        let mut t = tenant();
        t.source.settings.subject_types.insert(
            "identity".into(),
            vec![PrincipalKind::User, PrincipalKind::ServicePrincipal],
        );
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let find = |ty, id: &str| engine.find_subject(ty, id, None);
        assert_eq!(
            find("user", "ALICE@example.com"),
            Some(Subject::Principal(t.alice))
        );
        assert_eq!(find("user", "okta|00ub0b"), Some(Subject::Principal(t.bob)));
        assert_eq!(find("identity", "bob"), Some(Subject::Principal(t.bob)));
        assert_eq!(
            find("user", &t.carol.id.to_string()),
            Some(Subject::Principal(t.carol))
        );
        assert_eq!(find("user", "nobody"), Some(Subject::Unknown));
        assert_eq!(find("account", "alice"), None);
        assert_eq!(
            check(&engine, t.alice, "read", doc("d-emea")),
            engine.check(
                find("identity", "alice").unwrap(),
                "read",
                &doc("d-emea"),
                NOW
            )
        );

        // An inline record with an owner and no unit sits in the owner's home unit: alice
        // deletes her own (`own` depth) and reads it (her unit tree), not bob's in sales.
        let owned_by = |owner| Resource {
            resource_type: "document",
            external_id: "draft-1",
            properties: Some(RecordProperties {
                owner: Some(owner),
                ..RecordProperties::default()
            }),
        };
        assert!(check(&engine, t.alice, "delete", owned_by(t.alice)).allowed);
        assert!(check(&engine, t.alice, "read", owned_by(t.alice)).allowed);
        assert!(matches!(
            check(&engine, t.alice, "read", owned_by(t.bob)).reason,
            Reason::DepthTooShallow { .. }
        ));
        // A group has no home unit: its records need one named.
        assert_eq!(
            check(
                &engine,
                t.alice,
                "read",
                owned_by(PrincipalRef::group(t.editors))
            )
            .reason,
            Reason::UnknownResource
        );
        // Ambiguity is refused, even for a public action.
        let notice = Resource {
            resource_type: "notice",
            external_id: "n-1",
            properties: None,
        };
        assert!(engine.check(Subject::Unknown, "read", &notice, NOW).allowed);
        assert_eq!(
            engine
                .check(Subject::Ambiguous, "read", &notice, NOW)
                .reason,
            Reason::AmbiguousSubject
        );
    }

    #[test]
    fn an_application_type_may_share_a_name_with_portcullis_own() {
        let mut t = tenant();
        // The application has users of its own, readable by their owner.
        t.source.resource_types.push(ResourceType {
            name: "user".into(),
            description: None,
            actions: vec![ResourceAction {
                name: "read".into(),
                plane: Plane::Data,
                public: false,
            }],
            created_at: at(NOW),
            updated_at: at(NOW),
            version: 1,
        });
        t.source.custom_roles[0].permissions.push(RolePermission {
            action: "user.read".into(),
            depth: Depth::Own,
        });
        t.source
            .records
            .push(record("user", "u-7", t.alice, t.emea, None));
        let directory = RoleId::generate();
        t.source.custom_roles.push(one_permission_role(
            directory,
            "Directory reader",
            "portcullis:user.read",
            Depth::Tenant,
        ));
        t.source
            .assignments
            .push(assign(t.carol, RoleRef::Custom(directory), Scope::Tenant));
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let app_user = Resource {
            resource_type: "user",
            external_id: "u-7",
            properties: None,
        };
        // `user` is the application's: alice owns u-7 and reads it; carol's directory role is
        // Portcullis's `user.read`, which says nothing about the application's users.
        assert!(check(&engine, t.alice, "read", app_user).allowed);
        assert!(check(&engine, t.alice, "user.read", app_user).allowed);
        assert!(!check(&engine, t.carol, "read", app_user).allowed);
        // Portcullis's own users are still asked about, under their own name.
        assert!(
            engine
                .check_control(t.carol, Action::UserRead, Scope::Tenant, NOW)
                .allowed
        );
        assert!(
            !engine
                .check_control(t.alice, Action::UserRead, Scope::Tenant, NOW)
                .allowed
        );
        let own_user = Resource {
            resource_type: "portcullis:user",
            external_id: "any",
            properties: None,
        };
        assert!(check(&engine, t.carol, "read", own_user).allowed);
        assert!(check(&engine, t.carol, "portcullis:user.read", own_user).allowed);
        assert!(!check(&engine, t.alice, "read", own_user).allowed);
        // An own type no application took still answers to its bare name.
        let prod = t.prod.to_string();
        let environment = Resource {
            resource_type: "environment",
            external_id: &prod,
            properties: None,
        };
        assert_eq!(
            check(&engine, t.carol, "read", environment).reason,
            Reason::NoRole
        );
        assert_eq!(
            check(
                &engine,
                t.carol,
                "read",
                Resource {
                    resource_type: "portcullis:nothing",
                    ..environment
                }
            )
            .reason,
            Reason::UnknownAction
        );
    }

    #[test]
    fn depth_scope_window_and_role_each_explain_a_refusal() {
        let mut t = tenant();
        let bob_at_prod = assign(t.bob, RoleRef::Custom(t.reader), Scope::Environment(t.prod));
        let mut ended = assign(t.carol, RoleRef::Custom(t.reader), Scope::Tenant);
        ended.ends_at = Some(at(NOW - 1));
        t.source
            .assignments
            .extend([bob_at_prod.clone(), ended.clone()]);
        let engine = TenantEngine::build(t.source.clone()).unwrap();

        // Through the group, down the unit tree from emea.
        let v = check(&engine, t.alice, "read", doc("d-emea"));
        assert!(v.allowed);
        assert!(
            matches!(v.reason, Reason::Assignment { principal, .. } if principal == PrincipalRef::group(t.editors))
        );
        assert!(check(&engine, t.alice, "document.read", doc("d-emea")).allowed);
        // Sales is above alice's unit: too shallow.
        assert!(matches!(
            check(&engine, t.alice, "read", doc("d-sales")).reason,
            Reason::DepthTooShallow { .. }
        ));
        // Her own record only for delete.
        assert!(check(&engine, t.alice, "delete", doc("d-emea")).allowed);
        assert!(!check(&engine, t.alice, "delete", doc("d-sales")).allowed);
        // Bob holds the role in prod only.
        assert!(check(&engine, t.bob, "read", doc("d-sales")).allowed);
        let v = check(&engine, t.bob, "read", doc("d-root"));
        assert_eq!(
            v.reason,
            Reason::ScopeMismatch {
                assignment_id: bob_at_prod.id,
                role: RoleRef::Custom(t.reader),
                scope: Scope::Environment(t.prod)
            }
        );
        // Carol's assignment has ended.
        assert_eq!(
            check(&engine, t.carol, "read", doc("d-root")).reason,
            Reason::OutsideWindow {
                assignment_id: ended.id,
                role: RoleRef::Custom(t.reader)
            }
        );
        // Nobody holds anything on notices but they are public; other actions are unknown.
        let stranger = PrincipalRef::user(UserId::generate());
        assert_eq!(
            check(&engine, stranger, "read", doc("d-root")).reason,
            Reason::UnknownSubject
        );
        let notice = Resource {
            resource_type: "notice",
            external_id: "n-1",
            properties: None,
        };
        assert_eq!(
            engine
                .check(Subject::Anonymous, "read", &notice, NOW)
                .reason,
            Reason::Public
        );
        assert_eq!(check(&engine, t.bob, "read", notice).reason, Reason::Public);
        // Holding a role with the action out of scope takes nothing from a public action.
        let mut with_notices = t.source.clone();
        let notices = RoleId::generate();
        with_notices.custom_roles.push(CustomRole {
            id: notices,
            name: "Notices".into(),
            description: None,
            permissions: vec![RolePermission {
                action: "notice.read".into(),
                depth: Depth::Tenant,
            }],
            created_at: at(NOW),
            updated_at: at(NOW),
            version: 1,
        });
        with_notices.assignments.push(assign(
            t.bob,
            RoleRef::Custom(notices),
            Scope::Environment(t.prod),
        ));
        let engine = TenantEngine::build(with_notices).unwrap();
        assert_eq!(check(&engine, t.bob, "read", notice).reason, Reason::Public);
        let (readers, _) = engine
            .subjects(&[PrincipalKind::User], "read", &notice, NOW, None, 10)
            .unwrap();
        assert_eq!(readers.len(), 3);
        assert_eq!(
            check(&engine, t.bob, "write", doc("d-sales")).reason,
            Reason::UnknownAction
        );
        assert_eq!(
            check(&engine, t.bob, "notice.read", doc("d-sales")).reason,
            Reason::UnknownAction
        );
        assert_eq!(
            check(&engine, t.bob, "read", doc("missing")).reason,
            Reason::UnknownResource
        );
        assert_eq!(
            check(&engine, t.bob, "user.read", doc("d-sales")).reason,
            Reason::UnknownAction
        );
    }

    #[test]
    fn shares_denies_inline_records_and_leaving_a_group() {
        let mut t = tenant();
        let d_root = t.source.records[2].id;
        let share = Share {
            id: ShareId::generate(),
            record_id: d_root,
            principal: t.bob,
            actions: vec!["read".into()],
            created_at: at(NOW),
        };
        t.source.shares.push(share.clone());
        let guard = DenyAssignment {
            id: DenyAssignmentId::generate(),
            name: "no deleting in emea".into(),
            description: None,
            principals: vec![PrincipalRef::group(t.editors)],
            excluded: vec![],
            actions: vec!["document.delete".into()],
            scope: Scope::BusinessUnit(t.sales),
            created_at: at(NOW),
        };
        t.source.denies.push(guard.clone());
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        assert_eq!(
            check(&engine, t.bob, "read", doc("d-root")).reason,
            Reason::Share {
                share_id: share.id,
                principal: t.bob
            }
        );
        assert!(!check(&engine, t.bob, "delete", doc("d-root")).allowed);
        assert_eq!(
            check(&engine, t.alice, "delete", doc("d-emea")).reason,
            Reason::DenyAssignment {
                deny_assignment_id: guard.id,
                name: guard.name.clone()
            }
        );
        // An unregistered record described inline: alice's unit tree covers emea, not root.
        let inline = |unit| Resource {
            resource_type: "document",
            external_id: "elsewhere-1",
            properties: Some(RecordProperties {
                owner: None,
                business_unit_id: Some(unit),
                environment_id: Some(t.dev),
            }),
        };
        assert!(check(&engine, t.alice, "read", inline(t.emea)).allowed);
        assert!(!check(&engine, t.alice, "read", inline(t.root)).allowed);
        // A registered record is taken as registered, whatever the caller says.
        let claimed = Resource {
            properties: Some(RecordProperties {
                business_unit_id: Some(t.emea),
                ..RecordProperties::default()
            }),
            ..doc("d-root")
        };
        assert!(!check(&engine, t.alice, "read", claimed).allowed);

        // Out of the group, alice holds nothing; a disabled user is simply not a principal.
        t.source.memberships.clear();
        t.source.principals.retain(|(p, _)| *p != t.carol);
        let engine = TenantEngine::build(t.source).unwrap();
        assert_eq!(
            check(&engine, t.alice, "read", doc("d-emea")).reason,
            Reason::NoRole
        );
        assert_eq!(
            check(&engine, t.carol, "read", doc("d-root")).reason,
            Reason::UnknownSubject
        );
    }

    /// Everything the engine can be asked about `who` and `records` here: each check with its
    /// reason, who may read each record, and what each may read.
    fn answers(engine: &TenantEngine, who: &[PrincipalRef], records: &[&str]) -> Vec<String> {
        let mut seen = Vec::new();
        for p in who {
            for id in records {
                for action in ["read", "delete"] {
                    seen.push(format!(
                        "{p} {action} {id}: {:?}",
                        check(engine, *p, action, doc(id))
                    ));
                }
            }
            seen.push(format!(
                "{p} reads {:?}",
                engine.resources(Subject::Principal(*p), "read", "document", NOW, None, 50)
            ));
            seen.push(format!("{p} groups {:?}", engine.groups_of(*p)));
            seen.push(format!("{p} admin {}", engine.is_administrator(*p, NOW)));
        }
        for id in records {
            seen.push(format!(
                "readers of {id}: {:?}",
                engine.subjects(
                    &[PrincipalKind::User, PrincipalKind::Group],
                    "read",
                    &doc(id),
                    NOW,
                    None,
                    50
                )
            ));
        }
        for name in ["dave", "bob", "alice@example.com"] {
            seen.push(format!(
                "{name}: {:?}",
                engine.find_subject("user", name, None)
            ));
        }
        seen
    }

    #[test]
    fn each_change_applied_as_a_delta_decides_as_a_fresh_build() {
        let mut t = tenant();
        let mut engine = TenantEngine::build(t.source.clone()).unwrap();
        let dave = PrincipalRef::user(UserId::generate());
        let who = [
            t.alice,
            t.bob,
            t.carol,
            dave,
            PrincipalRef::group(t.editors),
        ];
        let records = ["d-emea", "d-sales", "d-root", "d-new", "n-1"];
        let now = |unit, names: &[(Identifier, &str)]| PrincipalNow {
            active: true,
            business_unit: unit,
            identifiers: names.iter().map(|(i, v)| (*i, v.to_string())).collect(),
        };
        let step = |source: &Source, engine: &mut TenantEngine, delta: Delta| {
            *engine = engine.apply(&delta).unwrap();
            let built = TenantEngine::build(source.clone()).unwrap();
            assert_eq!(
                answers(engine, &who, &records),
                answers(&built, &who, &records)
            );
        };

        // A new user in the editors, holding the reader role over sales.
        t.source.principals.push((dave, Some(t.emea)));
        t.source
            .identifiers
            .push((dave, Identifier::UserName, "dave".into()));
        t.source.memberships.push((dave, t.editors));
        let held = assign(
            dave,
            RoleRef::Custom(t.reader),
            Scope::BusinessUnit(t.sales),
        );
        t.source.assignments.push(held.clone());
        step(
            &t.source,
            &mut engine,
            Delta {
                principals: vec![(
                    dave,
                    Some(now(Some(t.emea), &[(Identifier::UserName, "dave")])),
                )],
                memberships: vec![(dave, vec![t.editors])],
                assignments: vec![(held.id, Some(held.clone()))],
                ..Delta::default()
            },
        );

        // A record of dave's, and d-root shared with him to delete.
        let new = record("document", "d-new", dave, t.emea, None);
        let share = Share {
            id: ShareId::generate(),
            record_id: t.source.records[2].id,
            principal: dave,
            actions: vec!["delete".into()],
            created_at: at(NOW),
        };
        t.source.records.push(new.clone());
        t.source.shares.push(share.clone());
        step(
            &t.source,
            &mut engine,
            Delta {
                records: vec![(new.id, Some(new.clone()))],
                shares: vec![(share.id, Some(share.clone()))],
                ..Delta::default()
            },
        );

        // Bob is disabled; alice leaves the editors; a deny stops dave deleting in emea.
        t.source.principals.retain(|(p, _)| *p != t.bob);
        t.source.inactive.push((t.bob, Some(t.sales)));
        t.source.identifiers.retain(|(p, _, _)| *p != t.bob);
        t.source.memberships.retain(|(m, _)| *m != t.alice);
        let guard = DenyAssignment {
            id: DenyAssignmentId::generate(),
            name: "no deleting in emea".into(),
            description: None,
            principals: vec![dave],
            excluded: vec![],
            actions: vec!["document.delete".into()],
            scope: Scope::BusinessUnit(t.emea),
            created_at: at(NOW),
        };
        t.source.denies.push(guard.clone());
        step(
            &t.source,
            &mut engine,
            Delta {
                principals: vec![(
                    t.bob,
                    Some(PrincipalNow {
                        active: false,
                        ..now(Some(t.sales), &[])
                    }),
                )],
                memberships: vec![(t.alice, vec![])],
                denies: Some(t.source.denies.clone()),
                ..Delta::default()
            },
        );

        // Bob is back, dave's assignment moves to the whole tenant, d-emea is deleted, the
        // share is taken back.
        t.source.inactive.clear();
        t.source.principals.push((t.bob, Some(t.sales)));
        t.source
            .identifiers
            .push((t.bob, Identifier::UserName, "bob".into()));
        let moved = RoleAssignment {
            scope: Scope::Tenant,
            ..held.clone()
        };
        t.source.assignments.retain(|a| a.id != held.id);
        t.source.assignments.push(moved.clone());
        let gone = t.source.records.remove(0);
        t.source.shares.clear();
        step(
            &t.source,
            &mut engine,
            Delta {
                principals: vec![(
                    t.bob,
                    Some(now(Some(t.sales), &[(Identifier::UserName, "bob")])),
                )],
                assignments: vec![(moved.id, Some(moved.clone()))],
                records: vec![(gone.id, None)],
                shares: vec![(share.id, None)],
                ..Delta::default()
            },
        );

        // The editors group is deleted: its memberships go with it, unannounced.
        t.source
            .principals
            .retain(|(p, _)| *p != PrincipalRef::group(t.editors));
        t.source.memberships.clear();
        step(
            &t.source,
            &mut engine,
            Delta {
                principals: vec![(PrincipalRef::group(t.editors), None)],
                ..Delta::default()
            },
        );

        // A membership that closes a cycle cannot be applied: the engine must be rebuilt.
        let (outer, inner) = (GroupId::generate(), GroupId::generate());
        let groups = |g| (PrincipalRef::group(g), Some(now(None, &[])));
        let nested = engine
            .apply(&Delta {
                principals: vec![groups(outer), groups(inner)],
                memberships: vec![(PrincipalRef::group(inner), vec![outer])],
                ..Delta::default()
            })
            .unwrap();
        assert_eq!(
            nested
                .apply(&Delta {
                    memberships: vec![(PrincipalRef::group(outer), vec![inner])],
                    ..Delta::default()
                })
                .err(),
            Some(Stale::Cycle)
        );
        // A unit the engine has never seen is a change only a rebuild takes in.
        assert_eq!(
            engine
                .apply(&Delta {
                    principals: vec![(dave, Some(now(Some(BusinessUnitId::generate()), &[])))],
                    ..Delta::default()
                })
                .err(),
            Some(Stale::Unknown("a business unit"))
        );
    }

    #[test]
    fn searches_page_through_subjects_records_and_actions() {
        let mut t = tenant();
        t.source
            .assignments
            .push(assign(t.carol, RoleRef::Custom(t.reader), Scope::Tenant));
        let engine = TenantEngine::build(t.source.clone()).unwrap();
        let (who, more) = engine
            .subjects(
                &[PrincipalKind::User],
                "read",
                &doc("d-emea"),
                NOW,
                None,
                10,
            )
            .unwrap();
        let mut expected = vec![t.alice, t.carol];
        expected.sort();
        assert_eq!((who, more), (expected.clone(), false));
        let (first, more) = engine
            .subjects(&[PrincipalKind::User], "read", &doc("d-emea"), NOW, None, 1)
            .unwrap();
        assert_eq!((first.clone(), more), (vec![expected[0]], true));
        let (rest, more) = engine
            .subjects(
                &[PrincipalKind::User],
                "read",
                &doc("d-emea"),
                NOW,
                Some(first[0]),
                1,
            )
            .unwrap();
        assert_eq!((rest, more), (vec![expected[1]], false));
        let (groups, _) = engine
            .subjects(
                &[PrincipalKind::Group],
                "read",
                &doc("d-emea"),
                NOW,
                None,
                10,
            )
            .unwrap();
        // The group holds the role, but depth is measured from the asker and a group has no unit.
        assert_eq!(groups, Vec::<PrincipalRef>::new());

        let (docs, more) = engine
            .resources(
                Subject::Principal(t.carol),
                "read",
                "document",
                NOW,
                None,
                10,
            )
            .unwrap();
        assert_eq!(
            (docs, more),
            (
                vec!["d-emea".to_owned(), "d-root".into(), "d-sales".into()],
                false
            )
        );
        let (docs, more) = engine
            .resources(
                Subject::Principal(t.carol),
                "read",
                "document",
                NOW,
                Some("d-emea"),
                1,
            )
            .unwrap();
        assert_eq!((docs, more), (vec!["d-root".to_owned()], true));
        let (docs, _) = engine
            .resources(
                Subject::Principal(t.alice),
                "read",
                "document",
                NOW,
                None,
                10,
            )
            .unwrap();
        assert_eq!(docs, vec!["d-emea".to_owned()]);
        assert_eq!(
            engine
                .actions(Subject::Principal(t.alice), &doc("d-emea"), NOW)
                .unwrap(),
            vec!["delete".to_owned(), "read".into()]
        );
        assert_eq!(
            engine
                .actions(Subject::Principal(t.bob), &doc("d-emea"), NOW)
                .unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            engine.resources(
                Subject::Principal(t.carol),
                "read",
                "invoice",
                NOW,
                None,
                10
            ),
            Err(Reason::UnknownAction)
        );
        let _ = (t.sales, t.dev, t.prod);
    }
}
