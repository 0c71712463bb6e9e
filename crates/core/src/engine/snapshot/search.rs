//! Searches that do not scan: "who may do this action on this record" and "on which records
//! may this principal do this action" gather their candidates from reverse indexes — the
//! assignments at each scope, the records of each owner and of each business unit, what is
//! shared with each principal, and the group closure walked downwards — so a page costs time
//! that grows with the answer, not with the tenant. The candidates are a superset of the
//! answer; the caller decides each one as a check would (windows, deny assignments and
//! quarantine included) and pages through them in its own order.
//!
//! A search whose candidates pass a budget says so (`None`): its answer is then a large part
//! of the tenant, and walking everything in order finds a page sooner than sorting them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::{ControlFlow, Range};

use super::{DEPTHS, ScopeKind, Snapshot, Target, WINDOWED, depth_bit};
use crate::engine::blocks::Sorted;
use crate::engine::model::{Depth, Model, Record, Scope, Share};
use crate::engine::tree::UnitTree;

/// The reverse indexes, in sorted sets cut into shared blocks (`blocks::Sorted`), so the
/// snapshot after a change shares all but the blocks the change rewrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Reverse {
    /// (scope kind, scope id, role, assignment slot), for every assignment: the holders of a
    /// role at a scope are one range.
    scoped: Sorted<(ScopeKind, u32, u32, u32)>,
    /// (owner node, record slot), for every record.
    owned: Sorted<(u32, u32)>,
    /// (visit number of the record's business unit, record slot), for every record: the
    /// records of a subtree of units are one range (`UnitTree::subtree`).
    placed: Sorted<(u32, u32)>,
    /// (principal, action, share slot), for every action a share gives.
    shared_with: Sorted<(u32, u32, u32)>,
}

/// What a batch of changes touched, with everything as it is after the batch in the snapshot
/// the indexes are updated for.
pub(super) struct Touched<'a> {
    pub assignments: &'a BTreeSet<u32>,
    pub records: &'a BTreeSet<u32>,
    pub shares: &'a BTreeMap<u32, Option<&'a Share>>,
    pub units: bool,
}

fn placed_by(units: &UnitTree, slot: u32, record: &Record) -> Option<(u32, u32)> {
    Some((units.visit(record.business_unit)?, slot))
}

fn share_rows(slot: u32, share: &Share) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
    share
        .actions
        .iter()
        .map(move |action| (share.principal, *action, slot))
}

impl Reverse {
    pub(super) fn build(model: &Model, units: &UnitTree) -> Self {
        let records = || {
            model
                .records
                .iter()
                .enumerate()
                .filter_map(|(slot, r)| Some((slot as u32, r.as_ref()?)))
        };
        Self {
            scoped: model
                .assignments
                .iter()
                .enumerate()
                .filter_map(|(slot, a)| {
                    let a = a.as_ref()?;
                    let (kind, id) = super::scope_parts(a.scope);
                    Some((kind, id, a.role, slot as u32))
                })
                .collect(),
            owned: records().map(|(slot, r)| (r.owner, slot)).collect(),
            placed: Self::placed(records(), units),
            shared_with: model
                .shares
                .iter()
                .enumerate()
                .filter_map(|(slot, s)| Some(share_rows(slot as u32, s.as_ref()?)))
                .flatten()
                .collect(),
        }
    }

    fn placed<'a>(
        records: impl Iterator<Item = (u32, &'a Record)>,
        units: &UnitTree,
    ) -> Sorted<(u32, u32)> {
        records
            .filter_map(|(slot, r)| placed_by(units, slot, r))
            .collect()
    }

    /// The indexes of `before` moved to those of `after`, which differs from it only in what
    /// `touched` names.
    pub(super) fn update(before: &Snapshot, after: &Snapshot, touched: &Touched) -> Self {
        let mut next = before.reverse.clone();
        for &slot in touched.assignments {
            let parts = |s: &Snapshot| {
                let a = s.assignments.get(slot).copied().flatten()?;
                Some((a.scope_kind, a.scope_id, a.role, slot))
            };
            if let Some(old) = parts(before) {
                next.scoped.remove(&old);
            }
            if let Some(new) = parts(after) {
                next.scoped.insert(new);
            }
        }
        for &slot in touched.records {
            if let Some(old) = before.records.get(slot).copied().flatten() {
                next.owned.remove(&(old.owner, slot));
                if let Some(key) = placed_by(&before.units, slot, &old) {
                    next.placed.remove(&key);
                }
            }
            if let Some(new) = after.records.get(slot).copied().flatten() {
                next.owned.insert((new.owner, slot));
                if let Some(key) = placed_by(&after.units, slot, &new) {
                    next.placed.insert(key);
                }
            }
        }
        if touched.units {
            // Visit numbers change with the tree.
            let records = after
                .records
                .iter()
                .enumerate()
                .filter_map(|(slot, r)| Some((slot as u32, r.as_ref()?)));
            next.placed = Self::placed(records, &after.units);
        }
        for (&slot, share) in touched.shares {
            if let Some(record) = before.share_records.get(slot).copied().flatten() {
                for row in before.shared.of(record).iter().filter(|r| r.index == slot) {
                    next.shared_with.remove(&(row.principal, row.action, slot));
                }
            }
            for row in share.iter().flat_map(|share| share_rows(slot, share)) {
                next.shared_with.insert(row);
            }
        }
        next
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.scoped.heap_bytes()
            + self.owned.heap_bytes()
            + self.placed.heap_bytes()
            + self.shared_with.heap_bytes()
    }
}

/// Candidates gathered, up to a budget. Entries read and passed over count too (at a sixteenth),
/// so that a filter which keeps little of what it reads cannot make a search scan either.
struct Gathered {
    found: Vec<u32>,
    /// A bit per item of the universe (nodes or records): set once found.
    marked: Vec<u64>,
    budget: usize,
    read: usize,
    /// Groups whose members were all gathered already.
    expanded: FastSet<u32>,
}

/// Sets of small keys hashed fast: nothing here is chosen by a caller to collide.
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

const READS_PER_CANDIDATE: usize = 16;

impl Gathered {
    /// Gathering items below `universe`.
    fn new(budget: usize, universe: usize) -> Self {
        Self {
            found: Vec::new(),
            marked: vec![0; universe.div_ceil(64)],
            budget,
            read: 0,
            expanded: FastSet::default(),
        }
    }

    fn read(&mut self) -> ControlFlow<()> {
        self.read += 1;
        if self.found.len() > self.budget || self.read > READS_PER_CANDIDATE * self.budget {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn add(&mut self, item: u32) -> ControlFlow<()> {
        let (word, bit) = (item as usize / 64, 1u64 << (item % 64));
        if word >= self.marked.len() {
            self.marked.resize(word + 1, 0);
        }
        if self.marked[word] & bit == 0 {
            self.marked[word] |= bit;
            self.found.push(item);
        }
        self.read()
    }

    fn into_candidates(self, flow: ControlFlow<()>) -> Option<Vec<u32>> {
        flow.is_continue().then_some(self.found)
    }
}

/// The units of `a` that are also in `b`: subtrees are nested or apart, so this is a range.
fn overlap(a: Range<u32>, b: Range<u32>) -> Range<u32> {
    a.start.max(b.start)..a.end.min(b.end).max(a.start.max(b.start))
}

impl Snapshot {
    /// The nodes that may be allowed `action` on `target` at `now`: a superset of those a
    /// check would allow (before deny assignments and quarantine), or `None` past `budget`.
    pub fn who_may(
        &self,
        action: u32,
        target: &Target,
        now: i64,
        budget: usize,
    ) -> Option<Vec<u32>> {
        let mut gathered = Gathered::new(budget, self.groups.len());
        let flow = self.gather_subjects(action, target, now, &mut gathered);
        gathered.into_candidates(flow)
    }

    /// The record slots that `keep` keeps on which `principal` may be allowed `action` at
    /// `now`: a superset of those a check would allow, or `None` past `budget`.
    pub fn what_may(
        &self,
        principal: u32,
        action: u32,
        now: i64,
        keep: impl Fn(u32) -> bool,
        budget: usize,
    ) -> Option<Vec<u32>> {
        let mut gathered = Gathered::new(budget, self.records.len());
        let flow = self.gather_records(principal, action, now, &keep, &mut gathered);
        gathered.into_candidates(flow)
    }

    /// Each role that gives `action`, with the depths it gives it at.
    fn roles_with(&self, action: u32) -> Vec<(u32, u8)> {
        self.roles
            .iter()
            .enumerate()
            .filter_map(|(role, actions)| {
                let at = actions.binary_search_by_key(&action, |(a, _)| *a).ok()?;
                Some((role as u32, actions[at].1))
            })
            .collect()
    }

    /// `node` and its members, directly or through nested groups, that `keep` keeps.
    fn members_where(
        &self,
        node: u32,
        gathered: &mut Gathered,
        keep: impl Fn(u32) -> bool,
    ) -> ControlFlow<()> {
        let mut seen = FastSet::default();
        seen.insert(node);
        let mut stack = vec![node];
        while let Some(at) = stack.pop() {
            if keep(at) {
                gathered.add(at)?;
            } else {
                gathered.read()?;
            }
            for member in self.groups.members_of(at) {
                if seen.insert(*member) {
                    stack.push(*member);
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// `node` and all its members, directly or through nested groups.
    fn everyone_in(&self, node: u32, gathered: &mut Gathered) -> ControlFlow<()> {
        if !gathered.expanded.insert(node) {
            return ControlFlow::Continue(());
        }
        self.members_where(node, gathered, |_| true)
    }

    /// Each scope that covers `target`, as the assignment index keys it.
    fn scopes_covering(&self, target: &Target) -> Vec<(ScopeKind, u32)> {
        let mut scopes = vec![(ScopeKind::Tenant, 0)];
        if let Some(environment) = target.record.environment {
            scopes.push((ScopeKind::Environment, environment));
        }
        // The record's unit and each above it (a forest: the walk ends).
        let mut unit = Some(target.record.business_unit);
        while let Some(u) = unit.filter(|u| (*u as usize) < self.unit_parents.len()) {
            scopes.push((ScopeKind::BusinessUnit, u));
            unit = self.unit_parents[u as usize];
        }
        if let Some(index) = target.index {
            scopes.push((ScopeKind::Record, index));
        }
        scopes
    }

    fn gather_subjects(
        &self,
        action: u32,
        target: &Target,
        now: i64,
        gathered: &mut Gathered,
    ) -> ControlFlow<()> {
        let record = &target.record;
        if let Some(index) = target.index {
            let shared = self.shared.of(index);
            let from = shared.partition_point(|s| s.action < action);
            for row in shared[from..].iter().take_while(|s| s.action == action) {
                self.everyone_in(row.principal, gathered)?;
            }
        }
        let unit_depths = depth_bit(Depth::BusinessUnit) | depth_bit(Depth::BusinessUnitTree);
        let roles = self.roles_with(action);
        let scopes = self.scopes_covering(target);
        let holders = scopes.iter().flat_map(|&(kind, id)| {
            roles.iter().flat_map(move |&(role, depths)| {
                self.reverse
                    .scoped
                    .range((kind, id, role, 0), (kind, id, role, u32::MAX))
                    .map(move |entry| (entry.3, depths))
            })
        });
        for (slot, depths) in holders {
            gathered.read()?;
            let Some(a) = self.assignments.get(slot).copied().flatten() else {
                continue;
            };
            if a.windowed && !self.in_window(slot, now) {
                continue;
            }
            let holder = a.principal;
            if depths & depth_bit(Depth::Tenant) != 0 {
                self.everyone_in(holder, gathered)?;
                continue;
            }
            if depths & depth_bit(Depth::Own) != 0 {
                // The owner and whoever is in it (when a team owns the record).
                self.everyone_in(record.owner, gathered)?;
            }
            let by_unit = depths & unit_depths;
            if by_unit == 0 {
                continue;
            }
            match self.home_unit(holder) {
                // A team's members reach from the team's unit; anyone else from their own.
                Some(home) => {
                    if self.unit_reach(Some(home), record) & by_unit != 0 {
                        self.everyone_in(holder, gathered)?;
                    }
                }
                None => self.members_where(holder, gathered, |member| {
                    self.unit_reach(self.home_unit(member), record) & by_unit != 0
                })?,
            }
        }
        ControlFlow::Continue(())
    }

    fn gather_records(
        &self,
        principal: u32,
        action: u32,
        now: i64,
        keep: &impl Fn(u32) -> bool,
        gathered: &mut Gathered,
    ) -> ControlFlow<()> {
        let identities: Vec<u32> = std::iter::once(principal)
            .chain(self.groups.groups_of(principal).iter().copied())
            .collect();
        let add = |gathered: &mut Gathered, slot: u32, scope: Option<Scope>| {
            let kept = keep(slot)
                && scope.is_none_or(|scope| {
                    self.target(slot)
                        .is_some_and(|target| self.covers(scope, &target))
                });
            if kept {
                gathered.add(slot)
            } else {
                gathered.read()
            }
        };
        for &identity in &identities {
            let given = self
                .reverse
                .shared_with
                .range((identity, action, 0), (identity, action, u32::MAX));
            for &(_, _, share) in given {
                if let Some(record) = self.share_records.get(share).copied().flatten() {
                    add(gathered, record, None)?;
                }
            }
        }
        let own_home = self.home_unit(principal);
        let all_units = 0..self.units.len() as u32;
        let mut walked: FastSet<(Scope, u8, Option<u32>)> = FastSet::default();
        let mut owned: Option<Vec<u32>> = None;
        self.held_by(principal, action, |holder, held| {
            if !self.is_in_force(held, now) {
                return ControlFlow::Continue(());
            }
            let scope = held.scope();
            if let Scope::Record(record) = scope {
                return add(gathered, record, None);
            }
            // As `reach` measures it: from a team's unit, else from the asker's own.
            let home = self.team_home(principal, holder).or(own_home);
            let depths = held.bits & !WINDOWED;
            if !walked.insert((scope, depths, home)) {
                return ControlFlow::Continue(());
            }
            let in_scope = match scope {
                Scope::BusinessUnit(unit) => self.units.subtree(unit).unwrap_or(0..0),
                _ => all_units.clone(),
            };
            for depth in DEPTHS.iter().filter(|d| depths & depth_bit(**d) != 0) {
                let units = match depth {
                    Depth::Own => {
                        let mine = owned.get_or_insert_with(|| {
                            identities
                                .iter()
                                .flat_map(|id| self.reverse.owned.range((*id, 0), (*id, u32::MAX)))
                                .map(|(_, slot)| *slot)
                                .collect()
                        });
                        for slot in mine.iter() {
                            add(gathered, *slot, Some(scope))?;
                        }
                        continue;
                    }
                    Depth::Tenant => all_units.clone(),
                    Depth::BusinessUnitTree => {
                        home.and_then(|h| self.units.subtree(h)).unwrap_or(0..0)
                    }
                    Depth::BusinessUnit => home
                        .and_then(|h| self.units.visit(h))
                        .map_or(0..0, |visit| visit..visit + 1),
                };
                let units = overlap(in_scope.clone(), units);
                if units.is_empty() {
                    continue;
                }
                let (low, high) = ((units.start, 0), (units.end - 1, u32::MAX));
                // A range far past the budget (a tenant-wide depth in an environment, say)
                // would only be read to be given up on.
                if self.reverse.placed.approximate_len(&low, &high) > 2 * gathered.budget {
                    return ControlFlow::Break(());
                }
                let placed = self.reverse.placed.range(low, high);
                for &(_, slot) in placed {
                    add(gathered, slot, Some(scope))?;
                }
            }
            ControlFlow::Continue(())
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::{change, model};
    use super::*;
    use crate::engine::model::Check;
    use crate::engine::reference;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Every principal the reference allows is among `who_may`'s candidates, and every
        /// record among `what_may`'s, on a built snapshot and on one moved forward by changes.
        #[test]
        fn candidates_hold_every_answer(
            model in model(),
            batch in prop::collection::vec(change(), 0..6),
            now in 0i64..10,
        ) {
            let mut changed = model.clone();
            for change in &batch {
                changed.apply(change);
            }
            let built = Snapshot::build(&model).unwrap();
            let snapshots = match built.apply(&batch) {
                Ok(applied) => vec![(built, model), (applied, changed)],
                Err(_) => vec![(built, model)],
            };
            for (snapshot, model) in &snapshots {
                let nodes = model.memberships.len() as u32;
                let records = model.records.len() as u32;
                for action in 0..super::super::tests::ACTIONS {
                    for record in 0..records {
                        let Some(target) = snapshot.target(record) else { continue };
                        let who = snapshot.who_may(action, &target, now, usize::MAX / 64).unwrap();
                        for principal in 0..nodes {
                            let check = Check { principal, action, record, now };
                            if reference::decide(model, check) {
                                prop_assert!(who.contains(&principal), "{:?} missing from {:?}", check, who);
                            }
                        }
                    }
                    for principal in 0..nodes {
                        let what = snapshot.what_may(principal, action, now, |_| true, usize::MAX / 64).unwrap();
                        for record in 0..records {
                            let check = Check { principal, action, record, now };
                            if reference::decide(model, check) {
                                prop_assert!(what.contains(&record), "{:?} missing from {:?}", check, what);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn past_the_budget_the_search_says_so() {
        // Five users in one group, which holds action 0 tenant-wide.
        let model = Model {
            memberships: vec![vec![5], vec![5], vec![5], vec![5], vec![5], vec![]],
            home_unit: vec![Some(0); 6],
            unit_parents: vec![None],
            roles: vec![vec![crate::engine::model::Permission {
                action: 0,
                depth: Depth::Tenant,
            }]],
            assignments: vec![Some(crate::engine::model::Assignment {
                principal: 5,
                role: 0,
                scope: Scope::Tenant,
                starts_at: None,
                ends_at: None,
            })],
            records: vec![Some(Record {
                owner: 0,
                business_unit: 0,
                environment: None,
            })],
            ..Model::default()
        };
        let snapshot = Snapshot::build(&model).unwrap();
        let target = snapshot.target(0).unwrap();
        let mut who = snapshot.who_may(0, &target, 0, 6).unwrap();
        who.sort_unstable();
        assert_eq!(who, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(snapshot.who_may(0, &target, 0, 3), None);
        assert_eq!(snapshot.who_may(1, &target, 0, 3), Some(Vec::new()));
        assert_eq!(snapshot.what_may(2, 0, 0, |_| true, 3), Some(vec![0]));
        assert_eq!(snapshot.what_may(2, 0, 0, |_| false, 3), Some(Vec::new()));
    }

    #[test]
    fn overlapping_subtrees_are_the_inner_one() {
        assert_eq!(overlap(0..10, 3..5), 3..5);
        assert_eq!(overlap(3..5, 0..10), 3..5);
        assert!(overlap(0..3, 5..9).is_empty());
    }
}
