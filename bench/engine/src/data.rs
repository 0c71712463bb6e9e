//! The generated tenant every engine answers over, and the questions asked of it: built
//! deterministically from a seed, at a fraction of the full size (100k users, 10k groups, 1k
//! roles, 1M assignments, 1k business units, 1M records, 100k shares, a few denies). Nothing
//! here knows any engine; it only produces a `Model` and a list of `Check`s.

use portcullis_core::engine::model::{
    Assignment, Check, Deny, Depth, Model, Permission, Record, Scope, Share,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The instant every check is asked at (Unix seconds).
pub const NOW: i64 = 1_780_000_000;
/// Actions a role can hold (`record.read`, `record.write`, … numbered).
pub const ACTIONS: u32 = 64;
/// Environments of the tenant (`dev`, `test`, `prod`, …).
pub const ENVIRONMENTS: u32 = 10;
/// Deepest business unit below the root (the root is at depth 0).
const UNIT_DEPTH: u32 = 6;
/// Group nesting levels: a group of level `l` is only inside groups of a lower level, so the
/// membership graph is acyclic and at most this deep.
const GROUP_LEVELS: u32 = 5;

/// Sizes at `scale` 1.0; smaller scales multiply each, with a floor so the shape survives.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub users: u32,
    pub groups: u32,
    pub roles: u32,
    pub units: u32,
    pub records: u32,
    pub assignments: u32,
    pub shares: u32,
    pub denies: u32,
}

impl Sizes {
    pub fn at(scale: f64) -> Self {
        let part = |full: f64, floor: u32| ((full * scale).round() as u32).max(floor);
        Self {
            users: part(100_000.0, 50),
            groups: part(10_000.0, 10),
            roles: part(1_000.0, 20),
            units: part(1_000.0, 10),
            records: part(1_000_000.0, 200),
            assignments: part(1_000_000.0, 200),
            shares: part(100_000.0, 20),
            denies: 5,
        }
    }
}

/// The tenant, plus what the question generator needs to ask realistic questions.
pub struct Tenant {
    pub sizes: Sizes,
    pub model: Model,
    /// Node numbers: users are `0..users`, groups `users..users + groups`.
    pub users: u32,
    /// `members[g]`: the users directly in group node `users + g`.
    members: Vec<Vec<u32>>,
    /// Business-unit children, for picking a unit inside a subtree.
    children: Vec<Vec<u32>>,
    records_by_unit: Vec<Vec<u32>>,
    records_by_environment: Vec<Vec<u32>>,
    /// Records each user owns.
    owned: Vec<Vec<u32>>,
    /// Assignment positions per principal node.
    assignments_of: Vec<Vec<u32>>,
}

impl Tenant {
    pub fn generate(scale: f64, seed: u64) -> Self {
        let sizes = Sizes::at(scale);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let users = sizes.users;
        let nodes = (sizes.users + sizes.groups) as usize;
        let group = |g: u32| users + g;

        // Business units: a tree under unit 0, no deeper than UNIT_DEPTH.
        let mut unit_parents: Vec<Option<u32>> = vec![None];
        let mut unit_depth = vec![0u32];
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); sizes.units as usize];
        for unit in 1..sizes.units {
            let mut parent = rng.random_range(0..unit);
            while unit_depth[parent as usize] >= UNIT_DEPTH {
                parent = unit_parents[parent as usize].unwrap_or(0);
            }
            unit_parents.push(Some(parent));
            unit_depth.push(unit_depth[parent as usize] + 1);
            children[parent as usize].push(unit);
        }

        // Groups in levels; a group is in 0–2 groups of lower levels.
        let mut memberships: Vec<Vec<u32>> = vec![Vec::new(); nodes];
        let level = |g: u32| g * GROUP_LEVELS / sizes.groups;
        let first_of_level = |l: u32| (l * sizes.groups).div_ceil(GROUP_LEVELS);
        for g in 0..sizes.groups {
            let l = level(g);
            if l == 0 {
                continue;
            }
            let parents = match rng.random_range(0..10) {
                0..=2 => 0,
                3..=8 => 1,
                _ => 2,
            };
            for _ in 0..parents {
                let parent = rng.random_range(0..first_of_level(l));
                let list = &mut memberships[group(g) as usize];
                if !list.contains(&group(parent)) {
                    list.push(group(parent));
                }
            }
        }
        // Users: a home unit and 1–3 groups.
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); sizes.groups as usize];
        let mut home_unit: Vec<Option<u32>> = vec![None; nodes];
        for user in 0..users {
            home_unit[user as usize] = Some(rng.random_range(0..sizes.units));
            for _ in 0..rng.random_range(1..=3) {
                let g = rng.random_range(0..sizes.groups);
                let list = &mut memberships[user as usize];
                if !list.contains(&group(g)) {
                    list.push(group(g));
                    members[g as usize].push(user);
                }
            }
        }
        // The groups that own records keep most of them in one unit. That unit is not the
        // groups' home: a group with a home is a team, whose roles reach from its own unit,
        // and the peers' models measure depth from the member only.
        let mut owner_unit = home_unit.clone();
        for g in 0..sizes.groups {
            owner_unit[group(g) as usize] = Some(rng.random_range(0..sizes.units));
        }

        // Roles: 2–6 permissions each, depths evenly spread.
        let roles: Vec<Vec<Permission>> = (0..sizes.roles)
            .map(|_| {
                let mut perms: Vec<Permission> = Vec::new();
                for _ in 0..rng.random_range(2..=6) {
                    let action = rng.random_range(0..ACTIONS);
                    if perms.iter().any(|p| p.action == action) {
                        continue;
                    }
                    let depth = match rng.random_range(0..4) {
                        0 => Depth::Own,
                        1 => Depth::BusinessUnit,
                        2 => Depth::BusinessUnitTree,
                        _ => Depth::Tenant,
                    };
                    perms.push(Permission { action, depth });
                }
                perms
            })
            .collect();

        // Records: mostly owned by users and kept in the owner's unit; some owned by teams.
        let mut records = Vec::with_capacity(sizes.records as usize);
        let mut owned: Vec<Vec<u32>> = vec![Vec::new(); users as usize];
        let mut records_by_unit: Vec<Vec<u32>> = vec![Vec::new(); sizes.units as usize];
        let mut records_by_environment: Vec<Vec<u32>> = vec![Vec::new(); ENVIRONMENTS as usize];
        for id in 0..sizes.records {
            let owner = if rng.random_bool(0.85) {
                rng.random_range(0..users)
            } else {
                group(rng.random_range(0..sizes.groups))
            };
            let business_unit = match owner_unit[owner as usize] {
                Some(home) if rng.random_bool(0.7) => home,
                _ => rng.random_range(0..sizes.units),
            };
            let environment = rng
                .random_bool(0.9)
                .then(|| rng.random_range(0..ENVIRONMENTS));
            if owner < users {
                owned[owner as usize].push(id);
            }
            records_by_unit[business_unit as usize].push(id);
            if let Some(e) = environment {
                records_by_environment[e as usize].push(id);
            }
            records.push(Record {
                owner,
                business_unit,
                environment,
            });
        }

        // Assignments: half to users, half to groups; scopes 5 % tenant, 20 % environment,
        // 35 % business unit, 40 % one record; 10 % carry a time window (a third of those
        // expired, a third not yet started, a third in force).
        let mut assignments = Vec::with_capacity(sizes.assignments as usize);
        let mut assignments_of: Vec<Vec<u32>> = vec![Vec::new(); nodes];
        for index in 0..sizes.assignments {
            let principal = if rng.random_bool(0.5) {
                rng.random_range(0..users)
            } else {
                group(rng.random_range(0..sizes.groups))
            };
            let scope = match rng.random_range(0..100) {
                0..5 => Scope::Tenant,
                5..25 => Scope::Environment(rng.random_range(0..ENVIRONMENTS)),
                25..60 => Scope::BusinessUnit(rng.random_range(0..sizes.units)),
                _ => Scope::Record(rng.random_range(0..sizes.records)),
            };
            let (starts_at, ends_at) = if rng.random_bool(0.1) {
                let day = 86_400;
                match rng.random_range(0..3) {
                    0 => (
                        Some(NOW - 30 * day),
                        Some(NOW - rng.random_range(1..10 * day)),
                    ),
                    1 => (
                        Some(NOW + rng.random_range(1..10 * day)),
                        Some(NOW + 30 * day),
                    ),
                    _ => (
                        Some(NOW - rng.random_range(0..10 * day)),
                        Some(NOW + rng.random_range(1..10 * day)),
                    ),
                }
            } else {
                (None, None)
            };
            assignments_of[principal as usize].push(index);
            assignments.push(Assignment {
                principal,
                role: rng.random_range(0..sizes.roles),
                scope,
                starts_at,
                ends_at,
            });
        }

        // Shares: 1–3 actions of a record with a user (70 %) or a group.
        let shares: Vec<Share> = (0..sizes.shares)
            .map(|_| {
                let principal = if rng.random_bool(0.7) {
                    rng.random_range(0..users)
                } else {
                    group(rng.random_range(0..sizes.groups))
                };
                let mut actions: Vec<u32> = (0..rng.random_range(1..=3))
                    .map(|_| rng.random_range(0..ACTIONS))
                    .collect();
                actions.sort_unstable();
                actions.dedup();
                Share {
                    record: rng.random_range(0..sizes.records),
                    principal,
                    actions,
                }
            })
            .collect();

        // Guardrails: a few groups (top-level ones have the most members) may not do a few
        // actions somewhere, except a group or a user. The first is on `prod` (environment 0).
        let denies = (0..sizes.denies)
            .map(|k| {
                let top = first_of_level(1).max(1);
                let principals = vec![
                    group(rng.random_range(0..top)),
                    group(rng.random_range(0..sizes.groups)),
                ];
                let excluded = vec![
                    group(rng.random_range(0..sizes.groups)),
                    rng.random_range(0..users),
                ];
                let actions = (0..3).map(|_| rng.random_range(0..ACTIONS)).collect();
                let scope = match k % 3 {
                    0 => Scope::Environment(0),
                    1 => Scope::BusinessUnit(rng.random_range(0..sizes.units.min(20))),
                    _ => Scope::Tenant,
                };
                Deny {
                    principals,
                    excluded,
                    actions,
                    scope,
                }
            })
            .collect();

        Self {
            sizes,
            model: Model {
                memberships,
                home_unit,
                unit_parents,
                roles,
                assignments: assignments.into_iter().map(Some).collect(),
                records: records.into_iter().map(Some).collect(),
                shares: shares.into_iter().map(Some).collect(),
                denies,
            },
            users,
            members,
            children,
            records_by_unit,
            records_by_environment,
            owned,
            assignments_of,
        }
    }

    /// `count` questions, from a seed of their own: 40 % follow an assignment of the user or
    /// of one of its direct groups to a record in its scope and an action of its role, 10 %
    /// follow a share, 15 % ask about a record the user owns, 35 % are random. About half are
    /// allowed; the caller reports the exact fraction.
    pub fn checks(&self, count: usize, seed: u64) -> Vec<Check> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c4ec);
        let m = &self.model;
        let random_record = |rng: &mut ChaCha8Rng| rng.random_range(0..self.sizes.records);
        (0..count)
            .map(|_| {
                let user = rng.random_range(0..self.users);
                let pick = rng.random_range(0..100);
                let (principal, action, record) = match pick {
                    0..40 => {
                        let via = match m.memberships[user as usize].as_slice() {
                            groups if !groups.is_empty() && rng.random_bool(0.6) => {
                                groups[rng.random_range(0..groups.len())]
                            }
                            _ => user,
                        };
                        let held = &self.assignments_of[via as usize];
                        if held.is_empty() {
                            (user, rng.random_range(0..ACTIONS), random_record(&mut rng))
                        } else {
                            let slot = held[rng.random_range(0..held.len())] as usize;
                            let a = m.assignments[slot].expect("generated assignments are all present");
                            let perms = &m.roles[a.role as usize];
                            let action = perms[rng.random_range(0..perms.len())].action;
                            let record = self.record_in(a.scope, &mut rng);
                            (user, action, record)
                        }
                    }
                    40..50 => {
                        let s = m.shares[rng.random_range(0..m.shares.len())]
                            .as_ref()
                            .expect("generated shares are all present");
                        let who = if s.principal < self.users {
                            s.principal
                        } else {
                            let members = &self.members[(s.principal - self.users) as usize];
                            if members.is_empty() {
                                user
                            } else {
                                members[rng.random_range(0..members.len())]
                            }
                        };
                        (
                            who,
                            s.actions[rng.random_range(0..s.actions.len())],
                            s.record,
                        )
                    }
                    50..65 => {
                        let mine = &self.owned[user as usize];
                        let record = if mine.is_empty() {
                            random_record(&mut rng)
                        } else {
                            mine[rng.random_range(0..mine.len())]
                        };
                        (user, rng.random_range(0..ACTIONS), record)
                    }
                    _ => (user, rng.random_range(0..ACTIONS), random_record(&mut rng)),
                };
                Check {
                    principal,
                    action,
                    record,
                    now: NOW,
                }
            })
            .collect()
    }

    /// A record the scope covers (a random one when the scope holds none).
    fn record_in(&self, scope: Scope, rng: &mut ChaCha8Rng) -> u32 {
        let any = |rng: &mut ChaCha8Rng| rng.random_range(0..self.sizes.records);
        let from = |list: &[u32], rng: &mut ChaCha8Rng| {
            if list.is_empty() {
                any(rng)
            } else {
                list[rng.random_range(0..list.len())]
            }
        };
        match scope {
            Scope::Tenant => any(rng),
            Scope::Record(id) => id,
            Scope::Environment(e) => from(&self.records_by_environment[e as usize], rng),
            Scope::BusinessUnit(mut unit) => {
                // Walk down: stop here half the time, else go to a random child.
                while !self.children[unit as usize].is_empty() && rng.random_bool(0.5) {
                    let kids = &self.children[unit as usize];
                    unit = kids[rng.random_range(0..kids.len())];
                }
                from(&self.records_by_unit[unit as usize], rng)
            }
        }
    }
}
