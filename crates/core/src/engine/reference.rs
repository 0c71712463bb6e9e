//! The obviously-correct evaluator the engine is tested against: no index, no cleverness,
//! every rule written as a loop over the whole model. Only the property tests use it.

use super::model::{Check, Depth, Model, Scope};

/// Every group `node` is in, directly or through others (a breadth-first walk).
fn groups_of(model: &Model, node: u32) -> Vec<u32> {
    let mut seen: Vec<u32> = Vec::new();
    let mut todo = model.memberships[node as usize].clone();
    while let Some(group) = todo.pop() {
        if !seen.contains(&group) {
            seen.push(group);
            todo.extend(&model.memberships[group as usize]);
        }
    }
    seen
}

/// `node` itself and every group it is in.
pub fn identities(model: &Model, node: u32) -> Vec<u32> {
    let mut all = groups_of(model, node);
    all.push(node);
    all
}

/// Whether `unit` is `ancestor` or below it (walking up the parents).
fn within(model: &Model, unit: u32, ancestor: u32) -> bool {
    let mut at = Some(unit);
    while let Some(u) = at {
        if u == ancestor {
            return true;
        }
        at = model.unit_parents[u as usize];
    }
    false
}

pub fn covers(model: &Model, scope: Scope, record: u32) -> bool {
    let Some(r) = model.records[record as usize] else {
        return false;
    };
    match scope {
        Scope::Tenant => true,
        Scope::Environment(e) => r.environment == Some(e),
        Scope::BusinessUnit(u) => within(model, r.business_unit, u),
        Scope::Record(id) => id == record,
    }
}

/// Whether a permission at `depth`, held by `principal` through `holder` (itself or one of
/// its groups), reaches `record`. Unit depths count from a team's unit when the holder is a
/// group with one, from the asker's otherwise; `own` is always the asker's (and its groups').
pub fn reaches(model: &Model, principal: u32, holder: u32, depth: Depth, record: u32) -> bool {
    let Some(r) = model.records[record as usize] else {
        return false;
    };
    let team = model.home_unit[holder as usize].filter(|_| holder != principal);
    let home = team.or(model.home_unit[principal as usize]);
    match depth {
        Depth::Tenant => true,
        Depth::BusinessUnitTree => home.is_some_and(|h| within(model, r.business_unit, h)),
        Depth::BusinessUnit => home == Some(r.business_unit),
        Depth::Own => identities(model, principal).contains(&r.owner),
    }
}

/// The answer, by the rules: a deny that applies wins; otherwise a share of the action, or an
/// assignment in force whose scope covers the record and whose role allows the action at a
/// depth that reaches it.
pub fn decide(model: &Model, check: Check) -> bool {
    if model
        .records
        .get(check.record as usize)
        .is_none_or(Option::is_none)
    {
        return false;
    }
    let me = identities(model, check.principal);
    let denied = model.denies.iter().any(|d| {
        d.actions.contains(&check.action)
            && covers(model, d.scope, check.record)
            && d.principals.iter().any(|p| me.contains(p))
            && !d.excluded.iter().any(|p| me.contains(p))
    });
    if denied {
        return false;
    }
    let shared = model.shares.iter().flatten().any(|s| {
        s.record == check.record && s.actions.contains(&check.action) && me.contains(&s.principal)
    });
    shared
        || model.assignments.iter().flatten().any(|a| {
            me.contains(&a.principal)
                && a.is_in_force(check.now)
                && covers(model, a.scope, check.record)
                && model.roles[a.role as usize].iter().any(|p| {
                    p.action == check.action
                        && reaches(model, check.principal, a.principal, p.depth, check.record)
                })
        })
}
