//! What the engine decides over, with every name interned to a dense `u32`: principals (users,
//! service principals, teams and groups are all nodes of one membership graph), roles with
//! their permissions and depths, assignments at a scope, business units, records, shares and
//! deny assignments. The snapshot (`snapshot.rs`) indexes it; the property tests compare every
//! answer with `reference.rs`, which only loops.

/// How far a data-plane permission reaches from its holder (DESIGN.md, "Role").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    /// Records the principal owns, or a team it belongs to owns.
    Own,
    /// Records of the principal's own business unit.
    BusinessUnit,
    /// Records of the principal's business unit and every unit below it.
    BusinessUnitTree,
    /// Every record the assignment's scope covers.
    Tenant,
}

/// An action a role allows, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    pub action: u32,
    pub depth: Depth,
}

/// Where an assignment (or a deny) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Tenant,
    Environment(u32),
    /// The business unit and every unit below it.
    BusinessUnit(u32),
    /// One record.
    Record(u32),
}

/// A role given to a principal (a node: a user, a group, a team…) at a scope, between two
/// instants (`tenant::instant`: Unix milliseconds; the end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assignment {
    pub principal: u32,
    pub role: u32,
    pub scope: Scope,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
}

impl Assignment {
    pub fn is_in_force(&self, now: i64) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.ends_at.is_none_or(|e| now < e)
    }
}

/// A record: who owns it (a user or a team node), its business unit and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    pub owner: u32,
    pub business_unit: u32,
    pub environment: Option<u32>,
}

/// Chosen actions on one record, given to a principal (or a group: its members get them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Share {
    pub record: u32,
    pub principal: u32,
    pub actions: Vec<u32>,
}

/// A guardrail: the principals (directly or through groups) may not do the actions at the
/// scope, whatever they were granted — except the excluded ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Deny {
    pub principals: Vec<u32>,
    pub excluded: Vec<u32>,
    pub actions: Vec<u32>,
    pub scope: Scope,
}

/// Everything a tenant's decisions depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// `memberships[n]`: the groups and teams node `n` is directly in.
    pub memberships: Vec<Vec<u32>>,
    /// `home_unit[n]`: the business unit of node `n`, if it has one (users, teams).
    pub home_unit: Vec<Option<u32>>,
    /// `unit_parents[u]`: business unit `u`'s parent.
    pub unit_parents: Vec<Option<u32>>,
    /// `roles[r]`: role `r`'s permissions.
    pub roles: Vec<Vec<Permission>>,
    /// Assignments, records and shares by slot; `None` where one was removed, so the others
    /// keep their numbers as the tenant changes.
    pub assignments: Vec<Option<Assignment>>,
    pub records: Vec<Option<Record>>,
    pub shares: Vec<Option<Share>>,
    pub denies: Vec<Deny>,
}

/// One change to a model, as `Snapshot::apply` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Node `node` is directly in `groups` and has `home_unit`. A node past the last adds it
    /// (and any between, in nothing).
    Node {
        node: u32,
        groups: Vec<u32>,
        home_unit: Option<u32>,
    },
    /// The assignment in `slot` is now this one, or removed.
    Assignment {
        slot: u32,
        assignment: Option<Assignment>,
    },
    Record {
        slot: u32,
        record: Option<Record>,
    },
    Share {
        slot: u32,
        share: Option<Share>,
    },
    /// The business units' parents, all of them (few, and a move reorders the tree).
    Units(Vec<Option<u32>>),
    /// Every role's permissions.
    Roles(Vec<Vec<Permission>>),
    /// Every deny assignment.
    Denies(Vec<Deny>),
}

fn put<T: Clone>(list: &mut Vec<Option<T>>, slot: u32, value: Option<T>) {
    let slot = slot as usize;
    if list.len() <= slot {
        list.resize(slot + 1, None);
    }
    list[slot] = value;
}

impl Model {
    /// Makes `change`: what a snapshot's `apply` must agree with.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Node {
                node,
                groups,
                home_unit,
            } => {
                let n = *node as usize;
                if self.memberships.len() <= n {
                    self.memberships.resize(n + 1, Vec::new());
                    self.home_unit.resize(n + 1, None);
                }
                self.memberships[n].clone_from(groups);
                self.home_unit[n] = *home_unit;
            }
            Change::Assignment { slot, assignment } => {
                put(&mut self.assignments, *slot, *assignment)
            }
            Change::Record { slot, record } => put(&mut self.records, *slot, *record),
            Change::Share { slot, share } => put(&mut self.shares, *slot, share.clone()),
            Change::Units(parents) => self.unit_parents.clone_from(parents),
            Change::Roles(roles) => self.roles.clone_from(roles),
            Change::Denies(denies) => self.denies.clone_from(denies),
        }
    }
}

/// A question: may `principal` do `action` on `record` at `now`?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Check {
    pub principal: u32,
    pub action: u32,
    pub record: u32,
    pub now: i64,
}
