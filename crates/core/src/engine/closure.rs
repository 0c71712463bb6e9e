//! Group closure: every group each node (user, service principal, team or group) belongs to,
//! directly or through nested groups, as a sorted list per node in blocks (`blocks::Lists`),
//! so a membership test is a binary search in a short slice. The direct memberships and their
//! reverse (each group's direct members) are kept beside it, so that a change of memberships
//! recomputes only the closures of the nodes it moves: the changed nodes and everything
//! nested under them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::blocks::Lists;

/// Why a membership graph has no closure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosureError {
    #[error("node {node} is in group {group}, which does not exist")]
    UnknownGroup { node: u32, group: u32 },
    #[error("group {0} is inside itself (a cycle)")]
    Cycle(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupClosure {
    /// The groups each node is directly in, sorted.
    direct: Lists<u32>,
    /// Each group's direct members, sorted.
    members: Lists<u32>,
    /// Every group each node is in, directly or through others, sorted.
    closure: Lists<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

fn canonical(groups: &[u32]) -> Vec<u32> {
    let mut groups = groups.to_vec();
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn known(nodes: usize, node: u32, groups: &[u32]) -> Result<(), ClosureError> {
    match groups.iter().find(|g| **g as usize >= nodes) {
        Some(group) => Err(ClosureError::UnknownGroup {
            node,
            group: *group,
        }),
        None => Ok(()),
    }
}

/// The union of `direct` and each one's own closure, sorted.
fn closed<'a>(direct: &[u32], closure_of: impl Fn(u32) -> &'a [u32]) -> Vec<u32> {
    let mut all: Vec<u32> = Vec::new();
    for &group in direct {
        all.push(group);
        all.extend_from_slice(closure_of(group));
    }
    all.sort_unstable();
    all.dedup();
    all
}

impl GroupClosure {
    /// The closure of `direct`, where `direct[n]` lists the groups node `n` is directly in
    /// (groups are nodes too).
    pub fn build(direct: &[Vec<u32>]) -> Result<Self, ClosureError> {
        let n = direct.len();
        let direct: Vec<Vec<u32>> = direct.iter().map(|g| canonical(g)).collect();
        for (node, groups) in direct.iter().enumerate() {
            known(n, node as u32, groups)?;
        }
        let mut closure: Vec<Vec<u32>> = vec![Vec::new(); n];
        walk(
            &direct,
            |_, group| Err(ClosureError::Cycle(group)),
            |node| closure[node] = closed(&direct[node], |g| &closure[g as usize]),
        )?;
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (node, groups) in direct.iter().enumerate() {
            for group in groups {
                members[*group as usize].push(node as u32);
            }
        }
        Ok(Self {
            direct: Lists::from_lists(&direct),
            members: Lists::from_lists(&members),
            closure: Lists::from_lists(&closure),
        })
    }

    /// The closure after the nodes in `changed` are directly in the groups given (each
    /// replacing what it was in) and the graph holds `nodes` nodes (never fewer than now).
    /// Only the changed nodes and their members, direct or nested, are recomputed; the rest
    /// of the index is shared with `self`.
    pub fn apply(
        &self,
        changed: &BTreeMap<u32, Vec<u32>>,
        nodes: usize,
    ) -> Result<Self, ClosureError> {
        let nodes = nodes.max(self.direct.len());
        let mut direct: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (node, groups) in changed {
            if *node as usize >= nodes {
                return Err(ClosureError::UnknownGroup {
                    node: *node,
                    group: *node,
                });
            }
            let groups = canonical(groups);
            known(nodes, *node, &groups)?;
            direct.insert(*node, groups);
        }
        let direct_of = |node: u32| -> &[u32] {
            direct
                .get(&node)
                .map_or_else(|| self.direct.of(node), Vec::as_slice)
        };
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (node, groups) in &direct {
            let before = self.direct.of(*node);
            for group in before.iter().chain(groups) {
                let now_in = groups.binary_search(group).is_ok();
                if now_in == before.binary_search(group).is_ok() {
                    continue;
                }
                let list = members
                    .entry(*group)
                    .or_insert_with(|| self.members.of(*group).to_vec());
                match (list.binary_search(node), now_in) {
                    (Err(at), true) => list.insert(at, *node),
                    (Ok(at), false) => {
                        list.remove(at);
                    }
                    _ => {}
                }
            }
        }
        let members_of = |group: u32| -> &[u32] {
            members
                .get(&group)
                .map_or_else(|| self.members.of(group), Vec::as_slice)
        };
        // Whose closure can move: the changed nodes and everything under them.
        let mut affected: BTreeSet<u32> = BTreeSet::new();
        let mut todo: Vec<u32> = direct.keys().copied().collect();
        while let Some(node) = todo.pop() {
            if affected.insert(node) {
                todo.extend_from_slice(members_of(node));
            }
        }
        let mut closure: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut state: HashMap<u32, Visit> = HashMap::new();
        for &start in &affected {
            if state.contains_key(&start) {
                continue;
            }
            state.insert(start, Visit::Open);
            let mut stack: Vec<(u32, usize)> = vec![(start, 0)];
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&group) = direct_of(node).get(*next) {
                    *next += 1;
                    if affected.contains(&group) {
                        match state.get(&group).copied().unwrap_or(Visit::New) {
                            Visit::New => {
                                state.insert(group, Visit::Open);
                                stack.push((group, 0));
                            }
                            Visit::Open => return Err(ClosureError::Cycle(group)),
                            Visit::Done => {}
                        }
                    }
                    continue;
                }
                let all = closed(direct_of(node), |g| {
                    closure
                        .get(&g)
                        .map_or_else(|| self.closure.of(g), Vec::as_slice)
                });
                closure.insert(node, all);
                state.insert(node, Visit::Done);
                stack.pop();
            }
        }
        let mut next = self.clone();
        next.direct.update(nodes, &direct);
        next.members.update(nodes, &members);
        next.closure.update(nodes, &closure);
        Ok(next)
    }

    /// How many nodes the graph holds.
    pub fn len(&self) -> usize {
        self.direct.len()
    }

    pub fn is_empty(&self) -> bool {
        self.direct.is_empty()
    }

    /// Every group `node` is in, sorted; empty for a node outside the index.
    pub fn groups_of(&self, node: u32) -> &[u32] {
        self.closure.of(node)
    }

    /// The groups `node` is directly in, sorted.
    pub fn direct_groups_of(&self, node: u32) -> &[u32] {
        self.direct.of(node)
    }

    /// The nodes directly in `group`, sorted.
    pub fn members_of(&self, group: u32) -> &[u32] {
        self.members.of(group)
    }

    pub fn is_member(&self, node: u32, group: u32) -> bool {
        self.groups_of(node).binary_search(&group).is_ok()
    }

    /// Bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.direct.heap_bytes() + self.members.heap_bytes() + self.closure.heap_bytes()
    }
}

/// Walks `direct` depth first from every node, iteratively so deep nesting cannot overflow the
/// stack. `cycle(node, group)` is told of each edge to a group still open (one that closes a
/// cycle) and may stop the walk; `closed(node)` is called once every group of `node` has
/// been closed. Groups out of range are passed over.
fn walk<E>(
    direct: &[Vec<u32>],
    mut cycle: impl FnMut(usize, u32) -> Result<(), E>,
    mut closed: impl FnMut(usize),
) -> Result<(), E> {
    let mut state = vec![Visit::New; direct.len()];
    // (node, how many of its groups have been handled)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..direct.len() {
        if state[start] != Visit::New {
            continue;
        }
        state[start] = Visit::Open;
        stack.push((start, 0));
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&group) = direct[node].get(*next) {
                *next += 1;
                match state.get(group as usize) {
                    Some(Visit::New) => {
                        state[group as usize] = Visit::Open;
                        stack.push((group as usize, 0));
                    }
                    Some(Visit::Open) => cycle(node, group)?,
                    Some(Visit::Done) | None => {}
                }
                continue;
            }
            closed(node);
            state[node] = Visit::Done;
            stack.pop();
        }
    }
    Ok(())
}

/// The nodes a membership cycle makes undecidable, and the edges that close the cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantine {
    /// `(member, group)` edges that close a cycle: removing them all breaks every cycle.
    pub closing_edges: Vec<(u32, u32)>,
    /// `affected[n]`: node `n` is on a cycle or in a group on one, so which groups it is in
    /// cannot be known. Empty when there is no cycle.
    pub affected: Vec<bool>,
}

impl Quarantine {
    pub fn is_affected(&self, node: u32) -> bool {
        self.affected.get(node as usize).copied().unwrap_or(false)
    }
}

/// Finds the membership cycles in `direct` (which the store never lets form, but a database
/// edited by hand or a bug could hold) and takes every node on or under one out of the graph:
/// its memberships are cleared, so the rest builds a closure and decides as before, while the
/// affected nodes can be refused everything. Groups out of range are left for `build` to
/// report.
pub fn quarantine_cycles(direct: &mut [Vec<u32>]) -> Quarantine {
    let n = direct.len();
    let mut closing_edges = Vec::new();
    let Ok(()) = walk(
        direct,
        |node, group| {
            closing_edges.push((node as u32, group));
            Ok::<(), std::convert::Infallible>(())
        },
        |_| {},
    );
    if closing_edges.is_empty() {
        return Quarantine::default();
    }
    // Every node of a cycle reaches the group its closing edge points at; so does every
    // member, direct or nested, of a group on a cycle. Walk down from those groups.
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (node, groups) in direct.iter().enumerate() {
        for &group in groups {
            if let Some(list) = members.get_mut(group as usize) {
                list.push(node as u32);
            }
        }
    }
    let mut affected = vec![false; n];
    let mut todo: Vec<u32> = closing_edges.iter().map(|(_, group)| *group).collect();
    while let Some(node) = todo.pop() {
        if !std::mem::replace(&mut affected[node as usize], true) {
            todo.extend(&members[node as usize]);
        }
    }
    for (node, groups) in direct.iter_mut().enumerate() {
        if affected[node] {
            groups.clear();
        }
    }
    Quarantine {
        closing_edges,
        affected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The obvious answer: a breadth-first search up the memberships.
    fn naive(direct: &[Vec<u32>], node: u32) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        let mut todo = direct[node as usize].clone();
        while let Some(group) = todo.pop() {
            if seen.insert(group) {
                todo.extend(&direct[group as usize]);
            }
        }
        seen
    }

    /// A random acyclic membership graph: a node is only ever in groups numbered above it,
    /// then the numbering is shuffled so groups come anywhere.
    fn graph() -> impl Strategy<Value = Vec<Vec<u32>>> {
        (2usize..50)
            .prop_flat_map(|n| {
                let edges = (0..n)
                    .map(move |node| {
                        prop::collection::vec((node as u32 + 1)..=(n as u32), 0..4).prop_map(
                            move |gs| {
                                gs.into_iter()
                                    .filter(|g| (*g as usize) < n)
                                    .collect::<Vec<u32>>()
                            },
                        )
                    })
                    .collect::<Vec<_>>();
                (edges, Just(n), any::<u64>())
            })
            .prop_map(|(edges, n, seed)| {
                let mut order: Vec<u32> = (0..n as u32).collect();
                let mut state = seed | 1;
                for i in (1..n).rev() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    order.swap(i, (state % (i as u64 + 1)) as usize);
                }
                let mut renamed = vec![Vec::new(); n];
                for (node, groups) in edges.into_iter().enumerate() {
                    renamed[order[node] as usize] =
                        groups.into_iter().map(|g| order[g as usize]).collect();
                }
                renamed
            })
    }

    proptest! {
        #[test]
        fn agrees_with_a_breadth_first_search(direct in graph()) {
            let closure = GroupClosure::build(&direct).unwrap();
            for node in 0..direct.len() as u32 {
                let expected: Vec<u32> = naive(&direct, node).into_iter().collect();
                prop_assert_eq!(closure.groups_of(node), expected.as_slice());
                for group in 0..direct.len() as u32 {
                    prop_assert_eq!(closure.is_member(node, group), expected.contains(&group));
                }
            }
        }
    }

    proptest! {
        /// Changing some nodes' memberships gives the closure a build of the changed graph
        /// gives, and refuses a change exactly when the build refuses the changed graph.
        #[test]
        fn applied_changes_equal_a_fresh_build(
            direct in graph(),
            steps in prop::collection::vec(
                prop::collection::btree_map(0u32..55, prop::collection::vec(0u32..55, 0..3), 1..4),
                1..6,
            ),
        ) {
            let mut graph = direct;
            let mut closure = GroupClosure::build(&graph).unwrap();
            for changed in steps {
                let nodes = graph.len().max(changed.keys().last().map_or(0, |k| *k as usize + 1));
                let mut next = graph.clone();
                next.resize(nodes, Vec::new());
                for (node, groups) in &changed {
                    next[*node as usize] = groups.clone();
                }
                match (closure.apply(&changed, nodes), GroupClosure::build(&next)) {
                    (Ok(applied), Ok(built)) => {
                        prop_assert_eq!(&applied, &built);
                        closure = applied;
                        graph = next;
                    }
                    (Err(_), Err(_)) => {}
                    (applied, built) => prop_assert!(false, "apply {:?}, build {:?}", applied, built),
                }
            }
        }
    }

    /// A random membership graph with cycles allowed.
    fn any_graph() -> impl Strategy<Value = Vec<Vec<u32>>> {
        (1usize..30).prop_flat_map(|n| {
            prop::collection::vec(prop::collection::vec(0..n as u32, 0..3), n..=n)
        })
    }

    proptest! {
        /// Quarantine leaves a graph that builds, keeps every node that no cycle touches
        /// exactly as it was, and takes out exactly the nodes that reach a cycle.
        #[test]
        fn quarantine_takes_out_exactly_what_a_cycle_touches(original in any_graph()) {
            let mut direct = original.clone();
            let quarantine = quarantine_cycles(&mut direct);
            let closure = GroupClosure::build(&direct).unwrap();
            let on_cycle = |g: u32| naive(&original, g).contains(&g);
            for node in 0..original.len() as u32 {
                let reached = naive(&original, node);
                let touched = on_cycle(node) || reached.iter().any(|g| on_cycle(*g));
                prop_assert_eq!(quarantine.is_affected(node), touched);
                if !touched {
                    let expected: Vec<u32> = reached.into_iter().collect();
                    prop_assert_eq!(closure.groups_of(node), expected.as_slice());
                }
            }
            prop_assert_eq!(quarantine.closing_edges.is_empty(), quarantine.affected.is_empty());
            for (member, group) in &quarantine.closing_edges {
                prop_assert!(original[*member as usize].contains(group));
            }
        }
    }

    #[test]
    fn cycles_and_unknown_groups_are_refused() {
        assert_eq!(
            GroupClosure::build(&[vec![1], vec![2], vec![1]]),
            Err(ClosureError::Cycle(1))
        );
        assert_eq!(GroupClosure::build(&[vec![0]]), Err(ClosureError::Cycle(0)));
        assert_eq!(
            GroupClosure::build(&[vec![5]]),
            Err(ClosureError::UnknownGroup { node: 0, group: 5 })
        );
        let closure = GroupClosure::build(&[vec![1], vec![2], vec![]]).unwrap();
        assert_eq!(closure.groups_of(0), &[1, 2]);
        assert!(closure.groups_of(99).is_empty());
        // Deep nesting (far deeper than any directory allows) does not overflow a stack.
        let depth = 3_000u32;
        let chain: Vec<Vec<u32>> = (0..depth)
            .map(|n| if n + 1 < depth { vec![n + 1] } else { vec![] })
            .collect();
        let closure = GroupClosure::build(&chain).unwrap();
        assert_eq!(closure.groups_of(0).len(), depth as usize - 1);
        assert!(closure.heap_bytes() >= 4 * (depth as usize * (depth as usize - 1) / 2));
    }
}
