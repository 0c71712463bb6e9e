//! The indexed, immutable form of a `Model` that answers checks: the group closure, the
//! business-unit tree, what each principal holds through its assignments grouped by action
//! (role permissions expanded), and shares grouped by record, each in flat sorted arrays. A
//! check touches only the asking principal's own identities, their rows for the one action and
//! the one record.

use std::ops::{ControlFlow, Range};

use super::closure::{ClosureError, GroupClosure};
use super::model::{Assignment, Check, Depth, Model, Record, Scope};
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
    #[error("more role permissions are assigned than the index can number (2^32)")]
    TooLarge,
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

/// An action held through one assignment, under the identity that holds it: the assignment
/// (for reasons and its window), its scope, and in `bits` the depths its role gives the
/// action (a bit each, from `depth_bit`; a role may list an action more than once) and
/// `WINDOWED` if the assignment has a window. The rows are most of a snapshot's memory, so
/// the scope's kind sits apart from its id, and windows (few assignments have one) sit in a
/// side table: 12 bytes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    assignment: u32,
    scope_id: u32,
    scope_kind: ScopeKind,
    bits: u8,
}

const _: () = assert!(std::mem::size_of::<Held>() == 12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    Tenant,
    Environment,
    BusinessUnit,
    Record,
}

const WINDOWED: u8 = 1 << 4;

impl Held {
    fn new(assignment: u32, a: &Assignment, depths: u8) -> Self {
        let (scope_kind, scope_id) = match a.scope {
            Scope::Tenant => (ScopeKind::Tenant, 0),
            Scope::Environment(e) => (ScopeKind::Environment, e),
            Scope::BusinessUnit(u) => (ScopeKind::BusinessUnit, u),
            Scope::Record(r) => (ScopeKind::Record, r),
        };
        Self {
            assignment,
            scope_id,
            scope_kind,
            bits: depths | if window(a).is_some() { WINDOWED } else { 0 },
        }
    }

    fn scope(&self) -> Scope {
        match self.scope_kind {
            ScopeKind::Tenant => Scope::Tenant,
            ScopeKind::Environment => Scope::Environment(self.scope_id),
            ScopeKind::BusinessUnit => Scope::BusinessUnit(self.scope_id),
            ScopeKind::Record => Scope::Record(self.scope_id),
        }
    }
}

/// An assignment's window, if it has one, with open ends as the extremes.
fn window(a: &Assignment) -> Option<(i64, i64)> {
    (a.starts_at.is_some() || a.ends_at.is_some()).then(|| {
        (
            a.starts_at.unwrap_or(i64::MIN),
            a.ends_at.unwrap_or(i64::MAX),
        )
    })
}

fn depth_bit(depth: Depth) -> u8 {
    1 << depth as u8
}

const DEPTHS: [Depth; 4] = [
    Depth::Own,
    Depth::BusinessUnit,
    Depth::BusinessUnitTree,
    Depth::Tenant,
];

/// What each node holds, by action, so a check reads only the rows of the one action it asks
/// about, found through the node's directory. An action's rows keep the model's order of
/// assignments, so the first that allows and the nearest miss are those a walk over all
/// assignments would find.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holdings {
    directories: Vec<Directory>,
    entries: Vec<u32>,
    rows: Vec<Held>,
    /// The assignments that have a window, in order, and `windows[i]` that of `windowed[i]`.
    windowed: Vec<u32>,
    windows: Vec<(i64, i64)>,
}

impl Holdings {
    fn build(nodes: usize, model: &Model) -> Result<Self, SnapshotError> {
        // Each role's actions, each once, with every depth the role lists it at.
        let role_actions: Vec<Vec<(u32, u8)>> = model
            .roles
            .iter()
            .map(|perms| {
                let mut actions: Vec<(u32, u8)> = perms
                    .iter()
                    .map(|p| (p.action, depth_bit(p.depth)))
                    .collect();
                actions.sort_unstable();
                actions.dedup_by(|later, kept| {
                    let same = later.0 == kept.0;
                    if same {
                        kept.1 |= later.1;
                    }
                    same
                });
                actions
            })
            .collect();
        let mut total = 0usize;
        for a in &model.assignments {
            let actions = role_actions
                .get(a.role as usize)
                .ok_or(SnapshotError::Dangling("an assignment's role"))?;
            total += actions.len();
        }
        // Row numbers are `u32`s.
        if u32::try_from(total).is_err() {
            return Err(SnapshotError::TooLarge);
        }
        let by_principal = Grouped::build(
            nodes,
            (0..model.assignments.len() as u32)
                .map(|index| (model.assignments[index as usize].principal, index))
                .collect(),
        )?;
        let mut directories = Vec::with_capacity(nodes);
        let mut entries: Vec<u32> = Vec::new();
        let mut rows = Vec::with_capacity(total);
        let mut mine: Vec<(u32, Held)> = Vec::new();
        let mut starts: Vec<(u32, u32)> = Vec::new();
        for node in 0..nodes as u32 {
            mine.clear();
            for &index in by_principal.of(node) {
                let a = &model.assignments[index as usize];
                mine.extend(
                    role_actions[a.role as usize]
                        .iter()
                        .map(|&(action, depths)| (action, Held::new(index, a, depths))),
                );
            }
            mine.sort_unstable_by_key(|(action, held)| (*action, held.assignment));
            starts.clear();
            for (action, held) in &mine {
                if starts.last().is_none_or(|(a, _)| a != action) {
                    starts.push((*action, rows.len() as u32));
                }
                rows.push(*held);
            }
            directories.push(Directory::build(&starts, rows.len() as u32, &mut entries));
        }
        if u32::try_from(entries.len()).is_err() {
            return Err(SnapshotError::TooLarge);
        }
        entries.shrink_to_fit();
        let (windowed, windows) = (0..model.assignments.len() as u32)
            .filter_map(|index| window(&model.assignments[index as usize]).map(|w| (index, w)))
            .unzip();
        Ok(Self {
            directories,
            entries,
            rows,
            windowed,
            windows,
        })
    }

    fn is_in_force(&self, held: &Held, now: i64) -> bool {
        held.bits & WINDOWED == 0
            || self
                .windowed
                .binary_search(&held.assignment)
                .ok()
                .and_then(|i| self.windows.get(i))
                .is_some_and(|(starts_at, ends_at)| *starts_at <= now && now < *ends_at)
    }

    /// The rows of `action` held by `node` itself (not through its groups).
    fn of(&self, node: u32, action: u32) -> &[Held] {
        match self.directories.get(node as usize) {
            Some(directory) => &self.rows[directory.rows(&self.entries, action)],
            None => &[],
        }
    }
}

/// Where a node's actions are in `Holdings::entries`, from `at`. Sparse: its `len` actions,
/// sorted, then where each one's rows start. Dense, when the node holds at least half the
/// actions from its first to its last, so a lookup reads one entry instead of searching:
/// where the rows of each action from `first` on start (`len` of them; an action the node
/// lacks starts where the next begins, so its range is empty). Either way one more start
/// ends the last range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Directory {
    at: u32,
    len: u32,
    first: u32,
    dense: bool,
}

impl Directory {
    /// Appends the directory of a node's `(action, first row)` pairs, sorted by action, whose
    /// rows end at `end`.
    fn build(starts: &[(u32, u32)], end: u32, entries: &mut Vec<u32>) -> Self {
        let at = entries.len();
        let (Some(&(first, _)), Some(&(last, _))) = (starts.first(), starts.last()) else {
            return Self {
                at: at as u32,
                len: 0,
                first: 0,
                dense: false,
            };
        };
        let span = u64::from(last - first) + 1;
        let dense = span <= 2 * starts.len() as u64;
        let len = if dense { span } else { starts.len() as u64 };
        if dense {
            for (action, start) in starts {
                entries.resize(at + (action - first) as usize, *start);
                entries.push(*start);
            }
        } else {
            entries.extend(starts.iter().map(|(action, _)| *action));
            entries.extend(starts.iter().map(|(_, start)| *start));
        }
        entries.push(end);
        Self {
            at: at as u32,
            len: len as u32,
            first,
            dense,
        }
    }

    /// Which rows hold `action` (none if the node does not).
    fn rows(&self, entries: &[u32], action: u32) -> Range<usize> {
        let (at, len) = (self.at as usize, self.len as usize);
        let start = if self.dense {
            match action.checked_sub(self.first) {
                Some(i) if (i as usize) < len => at + i as usize,
                _ => return 0..0,
            }
        } else {
            match entries[at..at + len].binary_search(&action) {
                Ok(i) => at + len + i,
                Err(_) => return 0..0,
            }
        };
        entries[start] as usize..entries[start + 1] as usize
    }
}

/// One action shared on a record, under the record: to whom, and which share said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Shared {
    action: u32,
    principal: u32,
    index: u32,
}

/// A tenant's decisions, ready to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    groups: GroupClosure,
    units: UnitTree,
    home_unit: Vec<Option<u32>>,
    held: Holdings,
    records: Vec<Record>,
    shares: Grouped<Shared>,
    denies: Vec<DenyRule>,
}

/// Identities whose rows a check looks up together (see `Snapshot::held_by`); a user is in
/// about four groups at full scale.
const LOOKUPS: usize = 8;

fn sorted(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What a check is about: a record of the snapshot, or one described inline by the caller
/// (which no share or record-scoped assignment can name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub index: Option<u32>,
    pub record: Record,
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
            .records
            .iter()
            .any(|r| r.owner as usize >= nodes || r.business_unit as usize >= units.len())
        {
            return Err(SnapshotError::Dangling("a record's owner or business unit"));
        }
        let mut shares: Vec<(u32, Shared)> = model
            .shares
            .iter()
            .enumerate()
            .flat_map(|(index, s)| {
                s.actions.iter().map(move |action| {
                    let shared = Shared {
                        action: *action,
                        principal: s.principal,
                        index: index as u32,
                    };
                    (s.record, shared)
                })
            })
            .collect();
        shares.sort_unstable();
        Ok(Self {
            groups: GroupClosure::build(&model.memberships)?,
            units,
            home_unit: model.home_unit.clone(),
            held: Holdings::build(nodes, model)?,
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

    fn covers(&self, scope: Scope, target: &Target) -> bool {
        match scope {
            Scope::Tenant => true,
            Scope::Environment(e) => target.record.environment == Some(e),
            Scope::BusinessUnit(u) => self.units.is_within(target.record.business_unit, u),
            Scope::Record(id) => target.index == Some(id),
        }
    }

    /// The depths (a bit each) at which a permission `principal` holds through `holder` (itself
    /// or one of its groups) reaches `record`. Business-unit depths are measured from the
    /// asker's unit, except through a team (a group with a unit of its own): from the team's.
    /// `asker` memoizes the asker's own, which most rows share.
    fn reach(&self, principal: u32, holder: u32, record: &Record, asker: &mut Option<u8>) -> u8 {
        let unit = |node: u32| self.home_unit.get(node as usize).copied().flatten();
        match unit(holder).filter(|_| holder != principal) {
            Some(team) => self.reach_from(principal, Some(team), record),
            None => {
                *asker.get_or_insert_with(|| self.reach_from(principal, unit(principal), record))
            }
        }
    }

    fn reach_from(&self, principal: u32, home: Option<u32>, record: &Record) -> u8 {
        DEPTHS
            .iter()
            .filter(|depth| self.reaches(principal, home, **depth, record))
            .fold(0, |bits, depth| bits | depth_bit(*depth))
    }

    fn reaches(&self, principal: u32, home: Option<u32>, depth: Depth, record: &Record) -> bool {
        match depth {
            Depth::Tenant => true,
            Depth::BusinessUnitTree => {
                home.is_some_and(|h| self.units.is_within(record.business_unit, h))
            }
            Depth::BusinessUnit => home == Some(record.business_unit),
            Depth::Own => self.is(principal, record.owner),
        }
    }

    /// The record at `index`, as a check target.
    /// Every group `node` is in, directly or through nested groups, sorted.
    pub fn groups_of(&self, node: u32) -> &[u32] {
        self.groups.groups_of(node)
    }

    pub fn target(&self, index: u32) -> Option<Target> {
        self.records.get(index as usize).map(|record| Target {
            index: Some(index),
            record: *record,
        })
    }

    /// The decision for `check`; a principal or record outside the snapshot gets nothing.
    pub fn decide(&self, check: Check) -> bool {
        self.target(check.record)
            .is_some_and(|target| self.allows(check.principal, check.action, &target, check.now))
    }

    /// The decision for `check`, with why.
    pub fn explain(&self, check: Check) -> Decision {
        match self.target(check.record) {
            Some(target) => self.explain_target(check.principal, check.action, &target, check.now),
            None => Decision::Denied(Refusal::UnknownRecord),
        }
    }

    /// Shows `visit` every row of `action` that `principal` holds, directly or through its
    /// groups, until it breaks. The identities' rows are looked up `LOOKUPS` at a time before
    /// any is read: the lookups do not depend on one another, so their cache misses (most of
    /// a check at full scale) overlap instead of coming one after another.
    fn held_by<B>(
        &self,
        principal: u32,
        action: u32,
        mut visit: impl FnMut(u32, &Held) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let mut found: [(u32, &[Held]); LOOKUPS] = [(principal, &[]); LOOKUPS];
        found[0].1 = self.held.of(principal, action);
        let mut filled = 1;
        let mut groups = self.groups.groups_of(principal);
        loop {
            let (now, later) = groups.split_at(groups.len().min(LOOKUPS - filled));
            for (slot, group) in found[filled..].iter_mut().zip(now) {
                *slot = (*group, self.held.of(*group, action));
            }
            for (holder, rows) in &found[..filled + now.len()] {
                for held in *rows {
                    visit(*holder, held)?;
                }
            }
            if later.is_empty() {
                return ControlFlow::Continue(());
            }
            groups = later;
            filled = 0;
        }
    }

    /// May `principal` do `action` on `target` at `now`? The answer alone: no reason is looked
    /// for, which on a refusal would mean a second pass over the asker's assignments.
    pub fn allows(&self, principal: u32, action: u32, target: &Target, now: i64) -> bool {
        self.grounds(principal, action, target, now).is_ok()
    }

    /// May `principal` do `action` on `target` at `now`, and why: the share or assignment that
    /// allowed it, the deny assignment that refused it, or the nearest miss among the
    /// assignments that would have allowed it.
    pub fn explain_target(
        &self,
        principal: u32,
        action: u32,
        target: &Target,
        now: i64,
    ) -> Decision {
        match self.grounds(principal, action, target, now) {
            Ok(grounds) => Decision::Allowed(grounds),
            Err(Some(deny)) => Decision::Denied(Refusal::DenyAssignment(deny)),
            Err(None) => Decision::Denied(self.nearest_miss(principal, action, target, now)),
        }
    }

    /// What allows the check, or the deny assignment that refuses it (`None`: nothing allows).
    fn grounds(
        &self,
        principal: u32,
        action: u32,
        target: &Target,
        now: i64,
    ) -> Result<Grounds, Option<usize>> {
        let p = principal;
        let deny = self.denies.iter().position(|d| {
            d.actions.binary_search(&action).is_ok()
                && self.covers(d.scope, target)
                && d.principals.iter().any(|id| self.is(p, *id))
                && !d.excluded.iter().any(|id| self.is(p, *id))
        });
        if let Some(index) = deny {
            return Err(Some(index));
        }
        if let Some(index) = target.index {
            let shared = self.shares.of(index);
            let from = shared.partition_point(|s| s.action < action);
            if let Some(s) = shared[from..]
                .iter()
                .take_while(|s| s.action == action)
                .find(|s| self.is(p, s.principal))
            {
                return Ok(Grounds::Share {
                    share: s.index as usize,
                    principal: s.principal,
                });
            }
        }
        // Most checks find no row whose scope covers the record: reach only when one does.
        let mut asker = None;
        let allowing = self.held_by(p, action, |holder, held| {
            if self.covers(held.scope(), target)
                && held.bits & self.reach(p, holder, &target.record, &mut asker) != 0
                && self.held.is_in_force(held, now)
            {
                ControlFlow::Break(held.assignment as usize)
            } else {
                ControlFlow::Continue(())
            }
        });
        match allowing {
            ControlFlow::Break(assignment) => Ok(Grounds::Assignment(assignment)),
            ControlFlow::Continue(()) => Err(None),
        }
    }

    /// Among the assignments whose role has `action`, the one that missed by the fewest rules,
    /// reported by the first rule it broke (scope, then depth, then time window).
    fn nearest_miss(&self, p: u32, action: u32, target: &Target, now: i64) -> Refusal {
        let mut asker = None;
        let mut nearest: Option<(usize, Refusal)> = None;
        let _ = self.held_by(p, action, |holder, held| {
            let assignment = held.assignment as usize;
            let scope_ok = self.covers(held.scope(), target);
            let depth_ok = held.bits & self.reach(p, holder, &target.record, &mut asker) != 0;
            let window_ok = self.held.is_in_force(held, now);
            let misses = [scope_ok, depth_ok, window_ok]
                .iter()
                .filter(|ok| !**ok)
                .count();
            let refusal = if !scope_ok {
                Refusal::ScopeMismatch { assignment }
            } else if !depth_ok {
                Refusal::DepthTooShallow { assignment }
            } else {
                Refusal::OutsideWindow { assignment }
            };
            if nearest.is_none_or(|(fewest, _)| misses < fewest) {
                nearest = Some((misses, refusal));
            }
            // Nothing allows (or there would be no refusal), so one miss is the fewest.
            if misses == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        nearest.map_or(Refusal::NoRole, |(_, refusal)| refusal)
    }
}

/// A decision and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Grounds),
    Denied(Refusal),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// What allowed a decision; indexes point into the model's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// This share, to the asker or one of its groups (`principal`).
    Share { share: usize, principal: u32 },
    /// This assignment, to the asker or one of its groups.
    Assignment(usize),
}

/// Why a decision refused; indexes point into the model's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This deny assignment applies.
    DenyAssignment(usize),
    /// No role the asker holds (in force or not, anywhere) has the action.
    NoRole,
    /// This assignment's role has the action, but its scope does not cover the record.
    ScopeMismatch {
        assignment: usize,
    },
    /// This assignment covers the record, but its role's depth does not reach it from the asker.
    DepthTooShallow {
        assignment: usize,
    },
    /// This assignment would allow it, but is not in force (not started yet, or ended).
    OutsideWindow {
        assignment: usize,
    },
    UnknownRecord,
}

#[cfg(test)]
mod tests {
    use super::super::model::{Deny, Permission, Share};
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
            Decision::Allowed(Grounds::Share { share, principal }) => {
                let s = &model.shares[share];
                alone.shares.push(s.clone());
                s.record == check.record
                    && s.principal == principal
                    && s.actions.contains(&check.action)
                    && reference::decide(&alone, check)
            }
            Decision::Allowed(Grounds::Assignment(index)) => {
                alone.assignments.push(model.assignments[index]);
                reference::decide(&alone, check)
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
            Decision::Denied(refusal) => {
                !reference::decide(model, check) && misses_as_said(model, check, refusal)
            }
        }
    }

    /// A refusal names an assignment of the asker whose role has the action and that breaks
    /// the rule it says (and, for a window, only that one); "no role" means none has it.
    fn misses_as_said(model: &Model, check: Check, refusal: Refusal) -> bool {
        let me = reference::identities(model, check.principal);
        let has_action = |a: &Assignment| {
            me.contains(&a.principal)
                && model.roles[a.role as usize]
                    .iter()
                    .any(|p| p.action == check.action)
        };
        let reaches = |a: &Assignment| {
            model.roles[a.role as usize].iter().any(|p| {
                p.action == check.action
                    && reference::reaches(
                        model,
                        check.principal,
                        a.principal,
                        p.depth,
                        check.record,
                    )
            })
        };
        match refusal {
            Refusal::NoRole => !model.assignments.iter().any(has_action),
            Refusal::ScopeMismatch { assignment } => {
                let a = &model.assignments[assignment];
                has_action(a) && !reference::covers(model, a.scope, check.record)
            }
            Refusal::DepthTooShallow { assignment } => {
                let a = &model.assignments[assignment];
                has_action(a) && reference::covers(model, a.scope, check.record) && !reaches(a)
            }
            Refusal::OutsideWindow { assignment } => {
                let a = &model.assignments[assignment];
                has_action(a)
                    && reference::covers(model, a.scope, check.record)
                    && reaches(a)
                    && !a.is_in_force(check.now)
            }
            Refusal::DenyAssignment(_) | Refusal::UnknownRecord => false,
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
            Decision::Allowed(Grounds::Assignment(0))
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

    proptest! {
        #[test]
        fn a_directory_finds_the_rows_of_each_action(
            held in (1u32..200).prop_flat_map(|width| {
                prop::collection::btree_map(0..width, 1u32..4, 0..40)
            }),
            before in 0usize..3,
        ) {
            // Actions with how many rows each, spread over ranges of every width, so both
            // dense and sparse directories come up.
            let mut starts = Vec::new();
            let mut end = 0;
            for (action, rows) in &held {
                starts.push((*action, end));
                end += rows;
            }
            let mut entries = vec![0; before];
            let directory = Directory::build(&starts, end, &mut entries);
            for action in 0..=200 {
                let rows = directory.rows(&entries, action);
                match held.get(&action) {
                    Some(count) => {
                        let from: u32 = held.range(..action).map(|(_, rows)| rows).sum();
                        prop_assert_eq!(rows, from as usize..(from + count) as usize);
                    }
                    None => prop_assert!(rows.is_empty()),
                }
            }
        }
    }

    #[test]
    fn reasons_name_the_first_assignment_in_the_askers_order() {
        // User 0 is in group 1, and each holds role 0 twice; the role lists action 0 at two
        // depths, of which only `tenant` reaches the record (node 2 owns it).
        let mut model = Model {
            memberships: vec![vec![1], vec![], vec![]],
            home_unit: vec![Some(0), None, None],
            unit_parents: vec![None],
            roles: vec![vec![
                Permission {
                    action: 0,
                    depth: Depth::Own,
                },
                Permission {
                    action: 1,
                    depth: Depth::Tenant,
                },
                Permission {
                    action: 0,
                    depth: Depth::Tenant,
                },
            ]],
            assignments: [1, 0, 1, 0]
                .map(|principal| Assignment {
                    principal,
                    role: 0,
                    scope: Scope::Tenant,
                    starts_at: None,
                    ends_at: None,
                })
                .to_vec(),
            records: vec![
                Record {
                    owner: 2,
                    business_unit: 0,
                    environment: None,
                };
                2
            ],
            ..Model::default()
        };
        let check = Check {
            principal: 0,
            action: 0,
            record: 0,
            now: 0,
        };
        let explain = |model: &Model| Snapshot::build(model).unwrap().explain(check);
        // The asker's own assignments come before its groups', each in the model's order.
        assert_eq!(explain(&model), Decision::Allowed(Grounds::Assignment(1)));
        for a in &mut model.assignments {
            a.scope = Scope::Record(1);
            a.ends_at = Some(0);
        }
        assert_eq!(
            explain(&model),
            Decision::Denied(Refusal::ScopeMismatch { assignment: 1 })
        );
        // A miss by fewer rules comes before an earlier one.
        model.assignments[2].scope = Scope::Tenant;
        assert_eq!(
            explain(&model),
            Decision::Denied(Refusal::OutsideWindow { assignment: 2 })
        );
    }
}
