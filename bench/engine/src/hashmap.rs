//! The baseline the issue defines: what a competent engineer writes first. A precomputed group
//! closure per user, grants keyed by `(principal, scope)`, role permission sets and records in
//! standard `HashMap`s (default hasher), and a check that looks up every (identity, covering
//! scope) pair. Same rules as the snapshot; no cleverness.

use std::collections::{HashMap, HashSet};

use portcullis_core::engine::model::{Check, Depth, Model, Record, Scope};

/// A role held at a scope, with its time window.
struct Grant {
    role: u32,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
}

struct DenyRule {
    principals: HashSet<u32>,
    excluded: HashSet<u32>,
    actions: HashSet<u32>,
    scope: Scope,
}

pub struct HashMapIndex {
    /// Every group each node is in, directly or through nested groups.
    closure: HashMap<u32, Vec<u32>>,
    grants: HashMap<(u32, Scope), Vec<Grant>>,
    /// Role → action → the depths it is granted at.
    roles: HashMap<u32, HashMap<u32, Vec<Depth>>>,
    records: HashMap<u32, Record>,
    home_unit: HashMap<u32, u32>,
    unit_parent: HashMap<u32, u32>,
    /// (record, principal) → actions shared.
    shares: HashMap<(u32, u32), HashSet<u32>>,
    denies: Vec<DenyRule>,
}

impl HashMapIndex {
    pub fn build(model: &Model) -> Self {
        // Group closure by walking up from every node (memoised, the graph is acyclic).
        let mut closure: HashMap<u32, Vec<u32>> = HashMap::new();
        fn close(node: u32, model: &Model, closure: &mut HashMap<u32, Vec<u32>>) -> Vec<u32> {
            if let Some(done) = closure.get(&node) {
                return done.clone();
            }
            let mut all: Vec<u32> = Vec::new();
            for &group in &model.memberships[node as usize] {
                all.push(group);
                all.extend(close(group, model, closure));
            }
            all.sort_unstable();
            all.dedup();
            closure.insert(node, all.clone());
            all
        }
        for node in 0..model.memberships.len() as u32 {
            close(node, model, &mut closure);
        }
        closure.retain(|_, groups| !groups.is_empty());

        let mut grants: HashMap<(u32, Scope), Vec<Grant>> = HashMap::new();
        for a in model.assignments.iter().flatten() {
            grants
                .entry((a.principal, a.scope))
                .or_default()
                .push(Grant {
                    role: a.role,
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                });
        }
        let mut roles: HashMap<u32, HashMap<u32, Vec<Depth>>> = HashMap::new();
        for (role, perms) in model.roles.iter().enumerate() {
            let by_action = roles.entry(role as u32).or_default();
            for p in perms {
                by_action.entry(p.action).or_default().push(p.depth);
            }
        }
        let mut shares: HashMap<(u32, u32), HashSet<u32>> = HashMap::new();
        for s in model.shares.iter().flatten() {
            shares
                .entry((s.record, s.principal))
                .or_default()
                .extend(&s.actions);
        }
        Self {
            closure,
            grants,
            roles,
            records: (0u32..).zip(model.records.iter().flatten().copied()).collect(),
            home_unit: (0u32..)
                .zip(&model.home_unit)
                .filter_map(|(n, h)| h.map(|h| (n, h)))
                .collect(),
            unit_parent: (0u32..)
                .zip(&model.unit_parents)
                .filter_map(|(u, p)| p.map(|p| (u, p)))
                .collect(),
            shares,
            denies: model
                .denies
                .iter()
                .map(|d| DenyRule {
                    principals: d.principals.iter().copied().collect(),
                    excluded: d.excluded.iter().copied().collect(),
                    actions: d.actions.iter().copied().collect(),
                    scope: d.scope,
                })
                .collect(),
        }
    }

    fn within(&self, mut unit: u32, ancestor: u32) -> bool {
        loop {
            if unit == ancestor {
                return true;
            }
            match self.unit_parent.get(&unit) {
                Some(parent) => unit = *parent,
                None => return false,
            }
        }
    }

    fn covers(&self, scope: Scope, id: u32, record: &Record) -> bool {
        match scope {
            Scope::Tenant => true,
            Scope::Environment(e) => record.environment == Some(e),
            Scope::BusinessUnit(u) => self.within(record.business_unit, u),
            Scope::Record(r) => r == id,
        }
    }

    pub fn decide(&self, check: Check) -> bool {
        let Some(record) = self.records.get(&check.record) else {
            return false;
        };
        let mut me: Vec<u32> = vec![check.principal];
        if let Some(groups) = self.closure.get(&check.principal) {
            me.extend(groups);
        }
        for d in &self.denies {
            if d.actions.contains(&check.action)
                && self.covers(d.scope, check.record, record)
                && me.iter().any(|id| d.principals.contains(id))
                && !me.iter().any(|id| d.excluded.contains(id))
            {
                return false;
            }
        }
        for id in &me {
            if let Some(actions) = self.shares.get(&(check.record, *id))
                && actions.contains(&check.action)
            {
                return true;
            }
        }
        // Every scope that covers the record: the tenant, its environment, its unit and the
        // units above, the record itself.
        let mut scopes = vec![Scope::Tenant, Scope::Record(check.record)];
        if let Some(e) = record.environment {
            scopes.push(Scope::Environment(e));
        }
        let mut unit = Some(record.business_unit);
        while let Some(u) = unit {
            scopes.push(Scope::BusinessUnit(u));
            unit = self.unit_parent.get(&u).copied();
        }
        let home = self.home_unit.get(&check.principal).copied();
        for id in &me {
            for scope in &scopes {
                let Some(grants) = self.grants.get(&(*id, *scope)) else {
                    continue;
                };
                for g in grants {
                    let in_force = g.starts_at.is_none_or(|s| s <= check.now)
                        && g.ends_at.is_none_or(|e| check.now < e);
                    if !in_force {
                        continue;
                    }
                    let Some(depths) = self.roles.get(&g.role).and_then(|r| r.get(&check.action))
                    else {
                        continue;
                    };
                    let reaches = depths.iter().any(|depth| match depth {
                        Depth::Tenant => true,
                        Depth::BusinessUnitTree => {
                            home.is_some_and(|h| self.within(record.business_unit, h))
                        }
                        Depth::BusinessUnit => home == Some(record.business_unit),
                        Depth::Own => me.contains(&record.owner),
                    });
                    if reaches {
                        return true;
                    }
                }
            }
        }
        false
    }
}
