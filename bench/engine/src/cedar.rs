//! The tenant as `cedar-policy` 4 is told to hold it (docs.cedarpolicy.com, "Best practices"):
//! users and groups are principals whose parents are their groups ("take advantage of user
//! groups"); every record lives in containers, its business unit (whose parent is the unit
//! above, up to the tenant) and its environment ("every resource lives in a container");
//! records carry `owner` and `unit` attributes, users a `home` unit. Role assignments live in
//! the policy store, so each role is a template and each assignment a template-linked policy
//! with `?principal` = the assignee and `?resource` = the scope ("role management using policy
//! templates"); the role's depths are its `when` clause. Cedar's templates have no slot for a
//! time window, so an assignment with one is written out as a static policy comparing
//! `context.now`. Shares are relationships held as record attributes (one set of principals
//! per shared action), read by one static policy per action; denies are `forbid … unless`.
//! Cedar evaluates every policy of the set for every request, so a check costs time in
//! proportion to the number of assignments.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, Request, RestrictedExpression, SlotId, Template,
};
use portcullis_core::engine::model::{Assignment, Check, Deny, Depth, Model, Permission, Scope};

pub struct CedarEngine {
    policies: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
    users: u32,
    user_type: EntityTypeName,
    group_type: EntityTypeName,
    record_type: EntityTypeName,
    action_type: EntityTypeName,
}

fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("a valid entity type name")
}

/// Renders entity references the way policy text spells them.
struct Names {
    users: u32,
}

impl Names {
    fn principal(&self, node: u32) -> String {
        if node < self.users {
            format!("User::\"{node}\"")
        } else {
            format!("Group::\"{node}\"")
        }
    }

    fn scope(&self, scope: Scope) -> String {
        match scope {
            Scope::Tenant => "Tenant::\"t\"".to_string(),
            Scope::Environment(e) => format!("Env::\"{e}\""),
            Scope::BusinessUnit(u) => format!("Unit::\"{u}\""),
            Scope::Record(r) => format!("Record::\"{r}\""),
        }
    }

    fn actions(&self, actions: &[u32]) -> String {
        let list: Vec<String> = actions.iter().map(|a| format!("Action::\"{a}\"")).collect();
        format!("[{}]", list.join(", "))
    }
}

/// The `when` clause of a role: the action at one of the depths it is granted at.
fn role_condition(names: &Names, perms: &[Permission]) -> String {
    let mut by_depth: BTreeMap<u8, Vec<u32>> = BTreeMap::new();
    for p in perms {
        let key = match p.depth {
            Depth::Tenant => 0,
            Depth::Own => 1,
            Depth::BusinessUnit => 2,
            Depth::BusinessUnitTree => 3,
        };
        by_depth.entry(key).or_default().push(p.action);
    }
    let parts: Vec<String> = by_depth
        .into_iter()
        .map(|(depth, actions)| {
            let reach = match depth {
                0 => "true",
                1 => "principal in resource.owner",
                2 => "principal has home && principal.home == resource.unit",
                _ => "principal has home && resource in principal.home",
            };
            format!("(action in {} && {reach})", names.actions(&actions))
        })
        .collect();
    if parts.is_empty() {
        "false".to_string()
    } else {
        parts.join(" || ")
    }
}

fn role_actions(perms: &[Permission]) -> Vec<u32> {
    let mut actions: Vec<u32> = perms.iter().map(|p| p.action).collect();
    actions.sort_unstable();
    actions.dedup();
    actions
}

fn timed_policy(names: &Names, model: &Model, a: &Assignment) -> String {
    let perms = &model.roles[a.role as usize];
    let mut window = Vec::new();
    if let Some(s) = a.starts_at {
        window.push(format!("context.now >= {s}"));
    }
    if let Some(e) = a.ends_at {
        window.push(format!("context.now < {e}"));
    }
    format!(
        "permit(principal in {}, action in {}, resource in {}) when {{ {} && ({}) }};",
        names.principal(a.principal),
        names.actions(&role_actions(perms)),
        names.scope(a.scope),
        window.join(" && "),
        role_condition(names, perms),
    )
}

fn deny_policy(names: &Names, d: &Deny) -> String {
    let list = |ids: &[u32]| {
        let all: Vec<String> = ids.iter().map(|p| names.principal(*p)).collect();
        format!("[{}]", all.join(", "))
    };
    let scope = match d.scope {
        Scope::Tenant => String::new(),
        other => format!(" in {}", names.scope(other)),
    };
    format!(
        "forbid(principal, action in {}, resource{scope}) when {{ principal in {} }} unless {{ principal in {} }};",
        names.actions(&d.actions),
        list(&d.principals),
        list(&d.excluded),
    )
}

impl CedarEngine {
    pub fn build(model: &Model, users: u32) -> Self {
        let names = Names { users };
        let user_type = type_name("User");
        let group_type = type_name("Group");
        let unit_type = type_name("Unit");
        let env_type = type_name("Env");
        let record_type = type_name("Record");
        let tenant = EntityUid::from_type_name_and_id(type_name("Tenant"), EntityId::new("t"));
        let uid = |t: &EntityTypeName, id: u32| {
            EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id.to_string()))
        };
        let principal = |node: u32| {
            if node < users {
                uid(&user_type, node)
            } else {
                uid(&group_type, node)
            }
        };

        // Policies.
        let mut policies = PolicySet::new();
        for (role, perms) in model.roles.iter().enumerate() {
            let actions = role_actions(perms);
            if actions.is_empty() {
                continue;
            }
            let text = format!(
                "permit(principal in ?principal, action in {}, resource in ?resource) when {{ {} }};",
                names.actions(&actions),
                role_condition(&names, perms),
            );
            let template = Template::parse(Some(PolicyId::new(format!("role{role}"))), text)
                .expect("a role template parses");
            policies.add_template(template).expect("a new template");
        }
        for (index, a) in model.assignments.iter().flatten().enumerate() {
            let id = PolicyId::new(format!("a{index}"));
            if a.starts_at.is_some() || a.ends_at.is_some() {
                let policy = Policy::parse(Some(id), timed_policy(&names, model, a))
                    .expect("a timed assignment parses");
                policies.add(policy).expect("a new policy");
                continue;
            }
            if role_actions(&model.roles[a.role as usize]).is_empty() {
                continue;
            }
            let scope = match a.scope {
                Scope::Tenant => tenant.clone(),
                Scope::Environment(e) => uid(&env_type, e),
                Scope::BusinessUnit(u) => uid(&unit_type, u),
                Scope::Record(r) => uid(&record_type, r),
            };
            let slots = HashMap::from([
                (SlotId::principal(), principal(a.principal)),
                (SlotId::resource(), scope),
            ]);
            policies
                .link(PolicyId::new(format!("role{}", a.role)), id, slots)
                .expect("an assignment links");
        }
        let mut shared_actions: Vec<u32> = model
            .shares
            .iter()
            .flatten()
            .flat_map(|s| s.actions.iter().copied())
            .collect();
        shared_actions.sort_unstable();
        shared_actions.dedup();
        for action in &shared_actions {
            let text = format!(
                "permit(principal, action == Action::\"{action}\", resource) when {{ resource has shared{action} && principal in resource.shared{action} }};"
            );
            let policy = Policy::parse(Some(PolicyId::new(format!("share{action}"))), text)
                .expect("a share policy parses");
            policies.add(policy).expect("a new policy");
        }
        for (index, d) in model.denies.iter().enumerate() {
            let policy = Policy::parse(
                Some(PolicyId::new(format!("deny{index}"))),
                deny_policy(&names, d),
            )
            .expect("a deny parses");
            policies.add(policy).expect("a new policy");
        }

        // Entities.
        let entity_ref = RestrictedExpression::new_entity_uid;
        let mut entities: Vec<Entity> = Vec::new();
        entities.push(Entity::new_no_attrs(tenant.clone(), HashSet::new()));
        for (node, groups) in model.memberships.iter().enumerate() {
            let node = node as u32;
            let parents: HashSet<EntityUid> = groups.iter().map(|g| principal(*g)).collect();
            let mut attrs = HashMap::new();
            if node < users
                && let Some(home) = model.home_unit[node as usize]
            {
                attrs.insert("home".to_string(), entity_ref(uid(&unit_type, home)));
            }
            entities.push(Entity::new(principal(node), attrs, parents).expect("a principal"));
        }
        for (unit, parent) in model.unit_parents.iter().enumerate() {
            let above = parent.map_or_else(|| tenant.clone(), |p| uid(&unit_type, p));
            entities.push(Entity::new_no_attrs(
                uid(&unit_type, unit as u32),
                HashSet::from([above]),
            ));
        }
        let environments = model
            .records
            .iter()
            .flatten()
            .filter_map(|r| r.environment)
            .chain(model.assignments.iter().flatten().filter_map(|a| match a.scope {
                Scope::Environment(e) => Some(e),
                _ => None,
            }))
            .chain(model.denies.iter().filter_map(|d| match d.scope {
                Scope::Environment(e) => Some(e),
                _ => None,
            }))
            .collect::<HashSet<u32>>();
        for e in environments {
            entities.push(Entity::new_no_attrs(
                uid(&env_type, e),
                HashSet::from([tenant.clone()]),
            ));
        }
        // (record, action) → principals it is shared with.
        let mut shares: HashMap<u32, BTreeMap<u32, Vec<u32>>> = HashMap::new();
        for s in model.shares.iter().flatten() {
            for a in &s.actions {
                shares
                    .entry(s.record)
                    .or_default()
                    .entry(*a)
                    .or_default()
                    .push(s.principal);
            }
        }
        for (id, r) in model.records.iter().flatten().enumerate() {
            let id = id as u32;
            let mut parents = HashSet::from([uid(&unit_type, r.business_unit)]);
            if let Some(e) = r.environment {
                parents.insert(uid(&env_type, e));
            }
            let mut attrs = HashMap::from([
                ("owner".to_string(), entity_ref(principal(r.owner))),
                (
                    "unit".to_string(),
                    entity_ref(uid(&unit_type, r.business_unit)),
                ),
            ]);
            if let Some(by_action) = shares.remove(&id) {
                for (action, who) in by_action {
                    attrs.insert(
                        format!("shared{action}"),
                        RestrictedExpression::new_set(
                            who.into_iter().map(|p| entity_ref(principal(p))),
                        ),
                    );
                }
            }
            entities.push(Entity::new(uid(&record_type, id), attrs, parents).expect("a record"));
        }
        let entities = Entities::from_entities(entities, None).expect("consistent entities");

        Self {
            policies,
            entities,
            authorizer: Authorizer::new(),
            users,
            user_type,
            group_type,
            record_type,
            action_type: type_name("Action"),
        }
    }

    pub fn decide(&self, check: Check) -> bool {
        let id = |t: &EntityTypeName, n: u32| {
            EntityUid::from_type_name_and_id(t.clone(), EntityId::new(n.to_string()))
        };
        let principal = if check.principal < self.users {
            id(&self.user_type, check.principal)
        } else {
            id(&self.group_type, check.principal)
        };
        let context =
            Context::from_pairs([("now".to_string(), RestrictedExpression::new_long(check.now))])
                .expect("a context");
        let request = Request::new(
            principal,
            id(&self.action_type, check.action),
            id(&self.record_type, check.record),
            context,
            None,
        )
        .expect("a request");
        self.authorizer
            .is_authorized(&request, &self.policies, &self.entities)
            .decision()
            == Decision::Allow
    }

    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }
}
