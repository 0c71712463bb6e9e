//! The indexed, immutable form of a `Model` that answers checks: the group closure, the
//! business-unit tree, what each principal holds through its assignments grouped by action
//! (role permissions expanded), and shares grouped by record, each in flat sorted arrays cut
//! into shared blocks (`blocks.rs`). A check touches only the asking principal's own
//! identities, their rows for the one action and the one record.
//!
//! A snapshot is built whole once (`build`), then moved forward by changes (`apply`): the
//! next snapshot rewrites the blocks the changes touch and shares the rest with the one
//! before, so an update costs time and memory that grow with the change, not the tenant, and
//! readers of the old snapshot never wait. Applying changes gives exactly the snapshot a
//! build of the changed model gives (the property tests compare them after every step).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

use super::blocks::{Lists, Slots};
use super::closure::{ClosureError, GroupClosure};
use super::model::{Assignment, Change, Check, Deny, Depth, Model, Permission, Record, Scope};
use super::tree::{TreeError, UnitTree};

mod search;

use search::{Reverse, Touched};

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

#[derive(Debug, Clone, PartialEq, Eq)]
struct DenyRule {
    principals: Vec<u32>,
    excluded: Vec<u32>,
    actions: Vec<u32>,
    scope: Scope,
}

fn deny_rules(denies: &[Deny]) -> Arc<Vec<DenyRule>> {
    Arc::new(
        denies
            .iter()
            .map(|d| DenyRule {
                principals: sorted(d.principals.clone()),
                excluded: sorted(d.excluded.clone()),
                actions: sorted(d.actions.clone()),
                scope: d.scope,
            })
            .collect(),
    )
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ScopeKind {
    Tenant,
    Environment,
    BusinessUnit,
    Record,
}

const WINDOWED: u8 = 1 << 4;

fn scope_parts(scope: Scope) -> (ScopeKind, u32) {
    match scope {
        Scope::Tenant => (ScopeKind::Tenant, 0),
        Scope::Environment(e) => (ScopeKind::Environment, e),
        Scope::BusinessUnit(u) => (ScopeKind::BusinessUnit, u),
        Scope::Record(r) => (ScopeKind::Record, r),
    }
}

/// An assignment as the snapshot keeps it to re-derive its holder's rows: 16 bytes, its
/// window (if any) in the side table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Assigned {
    principal: u32,
    role: u32,
    scope_id: u32,
    scope_kind: ScopeKind,
    windowed: bool,
}

impl Assigned {
    fn new(a: &Assignment) -> Self {
        let (scope_kind, scope_id) = scope_parts(a.scope);
        Self {
            principal: a.principal,
            role: a.role,
            scope_id,
            scope_kind,
            windowed: window(a).is_some(),
        }
    }

    fn held(&self, assignment: u32, depths: u8) -> Held {
        Held {
            assignment,
            scope_id: self.scope_id,
            scope_kind: self.scope_kind,
            bits: depths | if self.windowed { WINDOWED } else { 0 },
        }
    }
}

impl Held {
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

/// Each role's actions, each once, with every depth the role lists it at.
fn role_actions(roles: &[Vec<Permission>]) -> Arc<Vec<Vec<(u32, u8)>>> {
    Arc::new(
        roles
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
            .collect(),
    )
}

/// What each node holds, by action, so a check reads only the rows of the one action it asks
/// about, found through the node's directory. An action's rows keep the model's order of
/// assignments, so the first that allows and the nearest miss are those a walk over all
/// assignments would find. In blocks of `HELD_BLOCK` nodes, each laid out as the whole
/// index would be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Holdings {
    blocks: Arc<Vec<Arc<HeldBlock>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HeldBlock {
    directories: Vec<Directory>,
    entries: Vec<u32>,
    rows: Vec<Held>,
}

/// Nodes per block of holdings: fewer than other arrays', since a node holds tens of rows
/// and a change rewrites its whole block.
const HELD_BLOCK: usize = 64;

/// The rows a node holds, sorted by action and then assignment.
type NodeRows = Vec<(u32, Held)>;

impl HeldBlock {
    fn build(nodes: impl Iterator<Item = NodeRows>) -> Self {
        let mut directories = Vec::with_capacity(HELD_BLOCK);
        let mut entries = Vec::new();
        let mut rows = Vec::new();
        let mut starts: Vec<(u32, u32)> = Vec::new();
        for mine in nodes {
            starts.clear();
            for (action, held) in &mine {
                if starts.last().is_none_or(|(a, _)| a != action) {
                    starts.push((*action, rows.len() as u32));
                }
                rows.push(*held);
            }
            directories.push(Directory::build(&starts, rows.len() as u32, &mut entries));
        }
        entries.shrink_to_fit();
        rows.shrink_to_fit();
        Self {
            directories,
            entries,
            rows,
        }
    }

    /// The `at`th node's rows, as `build` took them.
    fn rows_of(&self, at: usize) -> NodeRows {
        let Some(directory) = self.directories.get(at) else {
            return Vec::new();
        };
        directory
            .actions(&self.entries)
            .flat_map(|(action, range)| self.rows[range].iter().map(move |h| (action, *h)))
            .collect()
    }
}

impl Holdings {
    /// The holdings of `nodes` nodes, each node's rows from `rows_of`.
    fn build(nodes: usize, rows_of: impl Fn(u32) -> NodeRows) -> Self {
        let blocks = (0..nodes.div_ceil(HELD_BLOCK))
            .map(|block| {
                let first = block * HELD_BLOCK;
                let last = (first + HELD_BLOCK).min(nodes);
                Arc::new(HeldBlock::build((first as u32..last as u32).map(&rows_of)))
            })
            .collect();
        Self {
            blocks: Arc::new(blocks),
        }
    }

    /// The holdings with `dirty` nodes' rows from `rows_of` and `nodes` nodes in all; blocks
    /// without a dirty or new node are shared.
    fn update(
        &self,
        nodes: usize,
        dirty: &BTreeSet<u32>,
        rows_of: impl Fn(u32) -> NodeRows,
    ) -> Self {
        let before = self.blocks.len();
        let mut blocks_to_write: Vec<usize> =
            dirty.iter().map(|n| *n as usize / HELD_BLOCK).collect();
        let had = self.nodes();
        if nodes > had {
            blocks_to_write.extend(had / HELD_BLOCK..nodes.div_ceil(HELD_BLOCK));
        }
        blocks_to_write.sort_unstable();
        blocks_to_write.dedup();
        let mut next = self.clone();
        let blocks = Arc::make_mut(&mut next.blocks);
        for block in blocks_to_write {
            let first = block * HELD_BLOCK;
            let last = (first + HELD_BLOCK).min(nodes.max(had));
            let old = self.blocks.get(block);
            let rebuilt = Arc::new(HeldBlock::build((first as u32..last as u32).map(|node| {
                let at = node as usize - first;
                match old {
                    Some(old) if !dirty.contains(&node) && at < old.directories.len() => {
                        old.rows_of(at)
                    }
                    _ => rows_of(node),
                }
            })));
            if block < before {
                blocks[block] = rebuilt;
            } else {
                blocks.push(rebuilt);
            }
        }
        next
    }

    fn nodes(&self) -> usize {
        self.blocks.iter().map(|b| b.directories.len()).sum()
    }

    /// The rows of `action` held by `node` itself (not through its groups).
    fn of(&self, node: u32, action: u32) -> &[Held] {
        let (block, at) = (node as usize / HELD_BLOCK, node as usize % HELD_BLOCK);
        match self.blocks.get(block) {
            Some(b) => match b.directories.get(at) {
                Some(directory) => &b.rows[directory.rows(&b.entries, action)],
                None => &[],
            },
            None => &[],
        }
    }

    fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| {
                b.directories.capacity() * std::mem::size_of::<Directory>()
                    + b.entries.capacity() * 4
                    + b.rows.capacity() * std::mem::size_of::<Held>()
            })
            .sum()
    }
}

/// Where a node's actions are in its block's `entries`, from `at`. Sparse: its `len`
/// actions, sorted, then where each one's rows start. Dense, when the node holds at least
/// half the actions from its first to its last, so a lookup reads one entry instead of
/// searching: where the rows of each action from `first` on start (`len` of them; an action
/// the node lacks starts where the next begins, so its range is empty). Either way one more
/// start ends the last range.
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

    /// Every action the node holds, with its rows, in order.
    fn actions<'a>(&self, entries: &'a [u32]) -> impl Iterator<Item = (u32, Range<usize>)> + 'a {
        let (at, len, first, dense) = (self.at as usize, self.len as usize, self.first, self.dense);
        (0..len).filter_map(move |i| {
            let (action, start) = if dense {
                (first + i as u32, at + i)
            } else {
                (entries[at + i], at + len + i)
            };
            let rows = entries[start] as usize..entries[start + 1] as usize;
            (!rows.is_empty()).then_some((action, rows))
        })
    }
}

/// One action shared on a record, under the record: to whom, and which share said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Shared {
    action: u32,
    principal: u32,
    index: u32,
}

fn shared_rows(slot: u32, share: &super::model::Share) -> impl Iterator<Item = Shared> + '_ {
    share.actions.iter().map(move |action| Shared {
        action: *action,
        principal: share.principal,
        index: slot,
    })
}

/// Refuses an assignment whose principal or role is not in the model.
fn check_assignment(
    principal: u32,
    role: u32,
    nodes: usize,
    roles: usize,
) -> Result<(), SnapshotError> {
    if role as usize >= roles {
        return Err(SnapshotError::Dangling("an assignment's role"));
    }
    if principal as usize >= nodes {
        return Err(SnapshotError::Dangling("an assignment's principal"));
    }
    Ok(())
}

/// The list of assignment slots `node` will hold, started from what it holds in `base`, and
/// the node marked for its rows to be rewritten.
fn held_list<'a>(
    lists: &'a mut BTreeMap<u32, Vec<u32>>,
    dirty: &mut BTreeSet<u32>,
    base: &Lists<u32>,
    node: u32,
) -> &'a mut Vec<u32> {
    dirty.insert(node);
    lists.entry(node).or_insert_with(|| base.of(node).to_vec())
}

/// A tenant's decisions, ready to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    groups: GroupClosure,
    unit_parents: Arc<Vec<Option<u32>>>,
    units: Arc<UnitTree>,
    home_unit: Slots<Option<u32>>,
    roles: Arc<Vec<Vec<(u32, u8)>>>,
    /// Every assignment by its slot (`None`: removed), and the windows of those that have one.
    assignments: Slots<Option<Assigned>>,
    windows: imbl::OrdMap<u32, (i64, i64)>,
    /// The slots of the assignments each node holds itself, ascending.
    held_by: Lists<u32>,
    held: Holdings,
    records: Slots<Option<Record>>,
    /// The record each share slot is on (`None`: removed).
    share_records: Slots<Option<u32>>,
    shared: Lists<Shared>,
    denies: Arc<Vec<DenyRule>>,
    /// For searches (`search.rs`).
    reverse: Reverse,
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
            .flatten()
            .any(|r| r.owner as usize >= nodes || r.business_unit as usize >= units.len())
        {
            return Err(SnapshotError::Dangling("a record's owner or business unit"));
        }
        let roles = role_actions(&model.roles);
        let live = || {
            model
                .assignments
                .iter()
                .enumerate()
                .filter_map(|(slot, a)| Some((slot as u32, a.as_ref()?)))
        };
        for (_, a) in live() {
            check_assignment(a.principal, a.role, nodes, roles.len())?;
        }
        let assignments = Slots::from_vec(
            model
                .assignments
                .iter()
                .map(|a| a.as_ref().map(Assigned::new))
                .collect(),
        );
        let held_by =
            Lists::from_pairs(nodes, live().map(|(slot, a)| (a.principal, slot)).collect())
                .ok_or(SnapshotError::Dangling("an assignment's principal"))?;
        let windows = live()
            .filter_map(|(slot, a)| Some((slot, window(a)?)))
            .collect();
        let mut shared: Vec<(u32, Shared)> = Vec::new();
        for (slot, share) in model.shares.iter().enumerate() {
            if let Some(share) = share {
                if share.record as usize >= model.records.len() {
                    return Err(SnapshotError::Dangling("a share's record"));
                }
                shared.extend(shared_rows(slot as u32, share).map(|row| (share.record, row)));
            }
        }
        shared.sort_unstable();
        let mut snapshot = Self {
            groups: GroupClosure::build(&model.memberships)?,
            unit_parents: Arc::new(model.unit_parents.clone()),
            units: Arc::new(units),
            home_unit: Slots::from_vec(model.home_unit.clone()),
            roles,
            assignments,
            windows,
            held_by,
            held: Holdings::default(),
            records: Slots::from_vec(model.records.clone()),
            share_records: Slots::from_vec(
                model
                    .shares
                    .iter()
                    .map(|s| s.as_ref().map(|s| s.record))
                    .collect(),
            ),
            shared: Lists::from_pairs(model.records.len(), shared)
                .ok_or(SnapshotError::Dangling("a share's record"))?,
            denies: deny_rules(&model.denies),
            reverse: Reverse::default(),
        };
        snapshot.held = Holdings::build(nodes, |node| snapshot.rows_of(node));
        snapshot.reverse = Reverse::build(model, &snapshot.units);
        Ok(snapshot)
    }

    /// The snapshot after `changes`, in order: exactly what `build` gives for the model with
    /// the changes made (`Model::apply`), or the error it gives. Only the blocks the changes
    /// touch are written; everything else is shared with `self`, which stays as it was.
    pub fn apply(&self, changes: &[Change]) -> Result<Self, SnapshotError> {
        let mut next = self.clone();
        let mut nodes = self.groups.len();
        let mut memberships: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut held_by: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut dirty_nodes: BTreeSet<u32> = BTreeSet::new();
        let mut dirty_records: BTreeSet<u32> = BTreeSet::new();
        let mut changed_shares: BTreeMap<u32, Option<&super::model::Share>> = BTreeMap::new();
        let mut changed_records: BTreeSet<u32> = BTreeSet::new();
        let mut changed_homes: BTreeSet<u32> = BTreeSet::new();
        let mut changed_assignments: BTreeSet<u32> = BTreeSet::new();
        let (mut roles_changed, mut units_changed, mut units_shrank) = (false, false, false);
        for change in changes {
            match change {
                Change::Node {
                    node,
                    groups,
                    home_unit,
                } => {
                    nodes = nodes.max(*node as usize + 1);
                    memberships.insert(*node, groups.clone());
                    next.home_unit.set(*node, *home_unit, None);
                    changed_homes.insert(*node);
                }
                Change::Assignment { slot, assignment } => {
                    if let Some(before) = next.assignments.get(*slot).copied().flatten() {
                        let list = held_list(
                            &mut held_by,
                            &mut dirty_nodes,
                            &self.held_by,
                            before.principal,
                        );
                        if let Ok(at) = list.binary_search(slot) {
                            list.remove(at);
                        }
                    }
                    next.windows.remove(slot);
                    if let Some(a) = assignment {
                        let list =
                            held_list(&mut held_by, &mut dirty_nodes, &self.held_by, a.principal);
                        if let Err(at) = list.binary_search(slot) {
                            list.insert(at, *slot);
                        }
                        if let Some(w) = window(a) {
                            next.windows.insert(*slot, w);
                        }
                    }
                    next.assignments
                        .set(*slot, assignment.as_ref().map(Assigned::new), None);
                    changed_assignments.insert(*slot);
                }
                Change::Record { slot, record } => {
                    next.records.set(*slot, *record, None);
                    changed_records.insert(*slot);
                }
                Change::Share { slot, share } => {
                    if let Some(record) = next.share_records.get(*slot).copied().flatten() {
                        dirty_records.insert(record);
                    }
                    if let Some(share) = share {
                        dirty_records.insert(share.record);
                    }
                    next.share_records
                        .set(*slot, share.as_ref().map(|s| s.record), None);
                    changed_shares.insert(*slot, share.as_ref());
                }
                Change::Units(parents) => {
                    units_changed = true;
                    units_shrank |= parents.len() < next.unit_parents.len();
                    next.units = Arc::new(UnitTree::build(parents)?);
                    next.unit_parents = Arc::new(parents.clone());
                }
                Change::Roles(roles) => {
                    roles_changed = true;
                    next.roles = role_actions(roles);
                }
                Change::Denies(denies) => next.denies = deny_rules(denies),
            }
        }
        next.home_unit.grow(nodes, None);
        // Refused as `build` refuses the changed model. What did not change was checked when
        // it came in, and nothing it names can have gone since, except units and roles.
        let units = next.units.len();
        let homes: Box<dyn Iterator<Item = u32>> = if units_shrank {
            Box::new(0..nodes as u32)
        } else {
            Box::new(changed_homes.iter().copied())
        };
        for node in homes {
            if next
                .home_unit
                .get(node)
                .copied()
                .flatten()
                .is_some_and(|u| u as usize >= units)
            {
                return Err(SnapshotError::Dangling("a home business unit"));
            }
        }
        let records: Box<dyn Iterator<Item = u32>> = if units_shrank {
            Box::new(0..next.records.len() as u32)
        } else {
            Box::new(changed_records.iter().copied())
        };
        for slot in records {
            if let Some(r) = next.records.get(slot).copied().flatten()
                && (r.owner as usize >= nodes || r.business_unit as usize >= units)
            {
                return Err(SnapshotError::Dangling("a record's owner or business unit"));
            }
        }
        let assigned: Box<dyn Iterator<Item = u32>> = if roles_changed {
            Box::new(0..next.assignments.len() as u32)
        } else {
            Box::new(changed_assignments.iter().copied())
        };
        for slot in assigned {
            if let Some(a) = next.assignments.get(slot).copied().flatten() {
                check_assignment(a.principal, a.role, nodes, next.roles.len())?;
            }
        }
        if changed_shares
            .values()
            .flatten()
            .any(|share| share.record as usize >= next.records.len())
        {
            return Err(SnapshotError::Dangling("a share's record"));
        }
        // A share the batch put on a record that does not exist and then took away again.
        dirty_records.retain(|record| (*record as usize) < next.records.len());
        // Likewise an assignment to a principal that does not exist, taken away again: its
        // list is empty (a live one would have been refused above) and must not grow the tables.
        held_by.retain(|node, _| (*node as usize) < nodes);
        dirty_nodes.retain(|node| (*node as usize) < nodes);
        next.groups = self.groups.apply(&memberships, nodes)?;
        next.held_by.update(nodes, &held_by);
        next.held = if roles_changed {
            Holdings::build(nodes, |node| next.rows_of(node))
        } else {
            self.held
                .update(nodes, &dirty_nodes, |node| next.rows_of(node))
        };
        let mut lists: BTreeMap<u32, Vec<Shared>> = BTreeMap::new();
        for record in dirty_records {
            let mut rows: Vec<Shared> = self
                .shared
                .of(record)
                .iter()
                .filter(|row| !changed_shares.contains_key(&row.index))
                .copied()
                .collect();
            for (slot, share) in &changed_shares {
                if let Some(share) = share.filter(|s| s.record == record) {
                    rows.extend(shared_rows(*slot, share));
                }
            }
            rows.sort_unstable();
            lists.insert(record, rows);
        }
        next.shared.update(next.records.len(), &lists);
        next.reverse = Reverse::update(
            self,
            &next,
            &Touched {
                assignments: &changed_assignments,
                records: &changed_records,
                shares: &changed_shares,
                units: units_changed,
            },
        );
        Ok(next)
    }

    /// The rows `node` holds through its own assignments, as the holdings keep them.
    fn rows_of(&self, node: u32) -> NodeRows {
        let mut rows: NodeRows = Vec::new();
        for &slot in self.held_by.of(node) {
            if let Some(a) = self.assignments.get(slot).copied().flatten() {
                let actions = self
                    .roles
                    .get(a.role as usize)
                    .map_or(&[][..], Vec::as_slice);
                rows.extend(
                    actions
                        .iter()
                        .map(|&(action, depths)| (action, a.held(slot, depths))),
                );
            }
        }
        rows.sort_unstable_by_key(|(action, held)| (*action, held.assignment));
        rows
    }

    /// How many principals (nodes) the snapshot holds.
    pub fn nodes(&self) -> usize {
        self.groups.len()
    }

    /// Bytes held by the snapshot's indexes, counting shared blocks as if owned.
    pub fn heap_bytes(&self) -> usize {
        self.groups.heap_bytes()
            + self.held.heap_bytes()
            + self.held_by.heap_bytes()
            + self.assignments.heap_bytes()
            + self.records.heap_bytes()
            + self.shared.heap_bytes()
            + self.share_records.heap_bytes()
            + self.home_unit.heap_bytes()
            + self.reverse.heap_bytes()
    }

    fn is_in_force(&self, held: &Held, now: i64) -> bool {
        held.bits & WINDOWED == 0 || self.in_window(held.assignment, now)
    }

    /// Whether the window of the assignment in `slot` (which has one) holds `now`.
    fn in_window(&self, slot: u32, now: i64) -> bool {
        self.windows
            .get(&slot)
            .is_some_and(|(starts_at, ends_at)| *starts_at <= now && now < *ends_at)
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
        match self.team_home(principal, holder) {
            Some(team) => self.reach_from(principal, Some(team), record),
            None => *asker.get_or_insert_with(|| {
                self.reach_from(principal, self.home_unit(principal), record)
            }),
        }
    }

    /// The unit business-unit depths are measured from when `principal` holds through `holder`
    /// and `holder` is a team other than itself; `None`: from the principal's own.
    fn team_home(&self, principal: u32, holder: u32) -> Option<u32> {
        self.home_unit(holder).filter(|_| holder != principal)
    }

    fn reach_from(&self, principal: u32, home: Option<u32>, record: &Record) -> u8 {
        let own = if self.is(principal, record.owner) {
            depth_bit(Depth::Own)
        } else {
            0
        };
        depth_bit(Depth::Tenant) | own | self.unit_reach(home, record)
    }

    /// The depths (`BusinessUnit`, `BusinessUnitTree`) at which a holder measured from `home`
    /// reaches `record` by business unit.
    fn unit_reach(&self, home: Option<u32>, record: &Record) -> u8 {
        let Some(home) = home else { return 0 };
        let mut bits = 0;
        if home == record.business_unit {
            bits |= depth_bit(Depth::BusinessUnit);
        }
        if self.units.is_within(record.business_unit, home) {
            bits |= depth_bit(Depth::BusinessUnitTree);
        }
        bits
    }

    /// Every group `node` is in, directly or through nested groups, sorted.
    pub fn groups_of(&self, node: u32) -> &[u32] {
        self.groups.groups_of(node)
    }

    /// The groups `node` is directly in, sorted.
    pub fn direct_groups_of(&self, node: u32) -> &[u32] {
        self.groups.direct_groups_of(node)
    }

    /// The nodes directly in group `node`, sorted.
    pub fn members_of(&self, node: u32) -> &[u32] {
        self.groups.members_of(node)
    }

    /// The business unit of `node`, if it has one.
    pub fn home_unit(&self, node: u32) -> Option<u32> {
        self.home_unit.get(node).copied().flatten()
    }

    /// The record at `index`, as a check target.
    pub fn target(&self, index: u32) -> Option<Target> {
        self.records
            .get(index)
            .copied()
            .flatten()
            .map(|record| Target {
                index: Some(index),
                record,
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
            let shared = self.shared.of(index);
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
                && self.is_in_force(held, now)
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
            let window_ok = self.is_in_force(held, now);
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
    use super::super::model::Share;
    use super::super::reference;
    use super::*;
    use proptest::prelude::*;

    const NODES: u32 = 24;
    const UNITS: u32 = 8;
    const ROLES: u32 = 5;
    pub(super) const ACTIONS: u32 = 4;
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
    pub(super) fn model() -> impl Strategy<Value = Model> {
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
                        assignments: assignments.into_iter().map(Some).collect(),
                        records: records.into_iter().map(Some).collect(),
                        shares: shares.into_iter().map(Some).collect(),
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
                let Some(s) = &model.shares[share] else {
                    return false;
                };
                alone.shares.push(Some(s.clone()));
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
                alone.assignments.push(Some(Assignment {
                    principal: check.principal,
                    role,
                    scope: Scope::Tenant,
                    starts_at: None,
                    ends_at: None,
                }));
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
            Refusal::NoRole => !model.assignments.iter().flatten().any(has_action),
            Refusal::ScopeMismatch { assignment } => {
                let Some(a) = &model.assignments[assignment] else {
                    return false;
                };
                has_action(a) && !reference::covers(model, a.scope, check.record)
            }
            Refusal::DepthTooShallow { assignment } => {
                let Some(a) = &model.assignments[assignment] else {
                    return false;
                };
                has_action(a) && reference::covers(model, a.scope, check.record) && !reaches(a)
            }
            Refusal::OutsideWindow { assignment } => {
                let Some(a) = &model.assignments[assignment] else {
                    return false;
                };
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

    fn unit_forest() -> impl Strategy<Value = Vec<Option<u32>>> {
        (UNITS - 1..=UNITS + 1).prop_flat_map(|n| {
            (0..n)
                .map(|u| {
                    if u == 0 {
                        Just(None).boxed()
                    } else {
                        prop::option::of(0..u).boxed()
                    }
                })
                .collect::<Vec<_>>()
        })
    }

    /// A random change, now and then naming something that does not exist (a node, unit,
    /// role or record past the end) or closing a membership cycle, which must be refused as
    /// a build of the changed model refuses it.
    pub(super) fn change() -> impl Strategy<Value = Change> {
        let nodes = NODES + 3;
        prop_oneof![
            4 => (0..nodes, prop::collection::vec(0..nodes, 0..3), prop::option::of(0..UNITS))
                .prop_map(|(node, groups, home_unit)| Change::Node { node, groups, home_unit }),
            5 => (0..40u32, prop::option::of((0..nodes, 0..ROLES + 1, scope(), window())))
                .prop_map(|(slot, a)| Change::Assignment {
                    slot,
                    assignment: a.map(|(principal, role, scope, (s, e))| Assignment {
                        principal,
                        role,
                        scope,
                        starts_at: s,
                        ends_at: e,
                    }),
                }),
            3 => (0..RECORDS + 2, prop::option::of((0..nodes, 0..UNITS + 1, prop::option::of(0..ENVIRONMENTS))))
                .prop_map(|(slot, r)| Change::Record {
                    slot,
                    record: r.map(|(owner, business_unit, environment)| Record { owner, business_unit, environment }),
                }),
            3 => (0..10u32, prop::option::of((0..RECORDS + 1, 0..nodes, prop::collection::vec(0..ACTIONS, 1..3))))
                .prop_map(|(slot, s)| Change::Share {
                    slot,
                    share: s.map(|(record, principal, actions)| Share { record, principal, actions }),
                }),
            1 => unit_forest().prop_map(Change::Units),
            1 => prop::collection::vec(
                    prop::collection::vec(
                        (0..ACTIONS, depth()).prop_map(|(action, depth)| Permission { action, depth }),
                        0..4,
                    ),
                    (ROLES - 1) as usize..=ROLES as usize,
                ).prop_map(Change::Roles),
            1 => prop::collection::vec(
                    (prop::collection::vec(0..NODES, 1..3), prop::collection::vec(0..NODES, 0..2), prop::collection::vec(0..ACTIONS, 1..3), scope())
                        .prop_map(|(principals, excluded, actions, scope)| Deny { principals, excluded, actions, scope }),
                    0..3,
                ).prop_map(Change::Denies),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// After every batch of random changes, the snapshot moved forward by `apply` is the
        /// very snapshot a build of the changed model gives, or both refuse; and it decides
        /// as the reference does.
        #[test]
        fn applied_changes_equal_a_fresh_build(
            model in model(),
            batches in prop::collection::vec(prop::collection::vec(change(), 1..4), 1..12),
            now in 0i64..10,
        ) {
            let mut model = model;
            let mut snapshot = Snapshot::build(&model).unwrap();
            for batch in batches {
                let mut changed = model.clone();
                for change in &batch {
                    changed.apply(change);
                }
                match (snapshot.apply(&batch), Snapshot::build(&changed)) {
                    (Ok(applied), Ok(built)) => {
                        prop_assert_eq!(&applied, &built);
                        snapshot = applied;
                        model = changed;
                    }
                    (Err(_), Err(_)) => {}
                    (applied, built) => prop_assert!(
                        false, "{:?}: apply {:?}, build {:?}", batch, applied.err(), built.err()
                    ),
                }
            }
            for principal in 0..NODES {
                for record in 0..model.records.len() as u32 {
                    for action in 0..ACTIONS {
                        let check = Check { principal, action, record, now };
                        prop_assert_eq!(snapshot.decide(check), reference::decide(&model, check), "{:?}", check);
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
            assignments: vec![Some(Assignment {
                principal: 1,
                role: 0,
                scope: Scope::Tenant,
                starts_at: None,
                ends_at: None,
            })],
            records: vec![Some(Record {
                owner: 2,
                business_unit: 0,
                environment: None,
            })],
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
                .map(|principal| {
                    Some(Assignment {
                        principal,
                        role: 0,
                        scope: Scope::Tenant,
                        starts_at: None,
                        ends_at: None,
                    })
                })
                .to_vec(),
            records: vec![
                Some(Record {
                    owner: 2,
                    business_unit: 0,
                    environment: None,
                });
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
        for a in model.assignments.iter_mut().flatten() {
            a.scope = Scope::Record(1);
            a.ends_at = Some(0);
        }
        assert_eq!(
            explain(&model),
            Decision::Denied(Refusal::ScopeMismatch { assignment: 1 })
        );
        // A miss by fewer rules comes before an earlier one.
        if let Some(a) = &mut model.assignments[2] {
            a.scope = Scope::Tenant;
        }
        assert_eq!(
            explain(&model),
            Decision::Denied(Refusal::OutsideWindow { assignment: 2 })
        );
    }
}
