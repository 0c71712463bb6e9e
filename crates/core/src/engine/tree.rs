//! The business-unit tree, indexed by an Euler tour: each unit gets the interval of visit
//! numbers of its subtree, so "is `unit` in the subtree of `ancestor`" — the question behind
//! the `business_unit_tree` depth — is two comparisons, whatever the depth of the tree.

/// Why a list of parents is not a forest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("unit {unit} names parent {parent}, which does not exist")]
    UnknownParent { unit: u32, parent: u32 },
    #[error("unit {0} is its own ancestor (a cycle)")]
    Cycle(u32),
}

/// A forest of units `0..n`, each with at most one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitTree {
    /// Visit number of each unit, and one past the last visit number in its subtree.
    enter: Vec<u32>,
    exit: Vec<u32>,
}

impl UnitTree {
    /// Indexes the forest where `parents[u]` is unit `u`'s parent (`None` for a root).
    pub fn build(parents: &[Option<u32>]) -> Result<Self, TreeError> {
        let n = parents.len();
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (unit, parent) in parents.iter().enumerate() {
            let unit = unit as u32;
            match parent {
                None => roots.push(unit),
                Some(p) if (*p as usize) < n => children[*p as usize].push(unit),
                Some(p) => return Err(TreeError::UnknownParent { unit, parent: *p }),
            }
        }
        let mut enter = vec![u32::MAX; n];
        let mut exit = vec![0; n];
        let mut clock = 0u32;
        // Iterative depth-first walk: (unit, whether its children were pushed).
        let mut stack: Vec<(u32, bool)> = roots.iter().rev().map(|r| (*r, false)).collect();
        while let Some((unit, expanded)) = stack.pop() {
            let u = unit as usize;
            if expanded {
                exit[u] = clock;
                continue;
            }
            enter[u] = clock;
            clock += 1;
            stack.push((unit, true));
            for child in children[u].iter().rev() {
                stack.push((*child, false));
            }
        }
        // A unit never reached from a root sits on a cycle (or below one).
        if let Some(unit) = enter.iter().position(|e| *e == u32::MAX) {
            return Err(TreeError::Cycle(unit as u32));
        }
        Ok(Self { enter, exit })
    }

    /// Whether `unit` is `ancestor` or below it. Units outside the tree are in nothing.
    pub fn is_within(&self, unit: u32, ancestor: u32) -> bool {
        match (
            self.enter.get(unit as usize),
            self.enter.get(ancestor as usize),
        ) {
            (Some(u), Some(a)) => *a <= *u && *u < self.exit[ancestor as usize],
            _ => false,
        }
    }

    /// The visit numbers of `unit`'s subtree (itself first): a unit is in it when its own visit
    /// number is, so what is keyed by visit number lists a subtree as one range.
    pub fn subtree(&self, unit: u32) -> Option<std::ops::Range<u32>> {
        let enter = *self.enter.get(unit as usize)?;
        Some(enter..self.exit[unit as usize])
    }

    /// The visit number of `unit`, if it is in the forest.
    pub fn visit(&self, unit: u32) -> Option<u32> {
        self.enter.get(unit as usize).copied()
    }

    pub fn len(&self) -> usize {
        self.enter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.enter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious answer: walk up the parents.
    fn naive_within(parents: &[Option<u32>], unit: u32, ancestor: u32) -> bool {
        let mut at = Some(unit);
        while let Some(u) = at {
            if u == ancestor {
                return true;
            }
            at = parents[u as usize];
        }
        false
    }

    /// A random forest: each unit's parent, if any, comes before it.
    fn forest() -> impl Strategy<Value = Vec<Option<u32>>> {
        (1usize..60).prop_flat_map(|n| {
            (0..n)
                .map(|u| {
                    if u == 0 {
                        Just(None).boxed()
                    } else {
                        prop_oneof![1 => Just(None), 6 => (0..u as u32).prop_map(Some)].boxed()
                    }
                })
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        #[test]
        fn agrees_with_walking_up_the_parents(parents in forest(), picks in prop::collection::vec((any::<u32>(), any::<u32>()), 40)) {
            let tree = UnitTree::build(&parents).unwrap();
            let n = parents.len() as u32;
            for (a, b) in picks {
                let (unit, ancestor) = (a % n, b % n);
                prop_assert_eq!(tree.is_within(unit, ancestor), naive_within(&parents, unit, ancestor));
            }
        }

        #[test]
        fn agrees_after_the_units_are_renumbered(parents in forest(), seed in any::<u64>()) {
            // Parents that come after their children, too: shuffle the numbering.
            let n = parents.len();
            let mut order: Vec<usize> = (0..n).collect();
            let mut state = seed | 1;
            for i in (1..n).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut renamed = vec![None; n];
            for (old, parent) in parents.iter().enumerate() {
                renamed[order[old]] = parent.map(|p| order[p as usize] as u32);
            }
            let tree = UnitTree::build(&renamed).unwrap();
            for unit in 0..n as u32 {
                for ancestor in 0..n as u32 {
                    let within = naive_within(&renamed, unit, ancestor);
                    prop_assert_eq!(tree.is_within(unit, ancestor), within);
                    let visit = tree.visit(unit).unwrap();
                    prop_assert_eq!(tree.subtree(ancestor).unwrap().contains(&visit), within);
                }
            }
        }
    }

    #[test]
    fn cycles_and_unknown_parents_are_refused() {
        assert_eq!(
            UnitTree::build(&[None, Some(2), Some(1)]),
            Err(TreeError::Cycle(1))
        );
        assert_eq!(UnitTree::build(&[Some(0)]), Err(TreeError::Cycle(0)));
        assert_eq!(
            UnitTree::build(&[None, Some(7)]),
            Err(TreeError::UnknownParent { unit: 1, parent: 7 })
        );
        let tree = UnitTree::build(&[None, Some(0), Some(1)]).unwrap();
        assert!(tree.is_within(2, 0) && !tree.is_within(0, 2));
        assert!(!tree.is_within(9, 0) && !tree.is_within(0, 9));
        // A deep chain does not overflow a stack.
        let deep: Vec<Option<u32>> = (0..200_000u32).map(|u| u.checked_sub(1)).collect();
        let tree = UnitTree::build(&deep).unwrap();
        assert!(tree.is_within(199_999, 0));
    }
}
