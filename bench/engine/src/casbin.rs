//! The tenant as casbin-rs is told to hold it: the "RBAC with resource roles" model of its
//! documentation (`g` for users in groups and groups in groups, `g2` for records in business
//! units and environments, units in the unit above, up to the tenant), with an ABAC part in the
//! matcher for what RBAC alone cannot say: the depth of a permission (the record's owner, unit
//! and the asker's home unit are request attributes, as casbin's ABAC has the application pass
//! them), time windows, and deny rules with exclusions (`allow-and-deny` effect). Each role
//! assignment becomes one policy line per permission of its role, each share one line per
//! action, each deny one `deny` line per principal and action, its exclusions a group of their
//! own. casbin evaluates the matcher (a Rhai expression) for every policy line of every
//! request, so a check costs time in proportion to the number of lines.

use casbin::prelude::*;
use portcullis_core::engine::model::{Check, Depth, Model, Scope};

const MODEL: &str = r#"
[request_definition]
r = sub, obj, act, now, owner, unit, home

[policy_definition]
p = sub, obj, act, depth, start, end, excl, eft

[role_definition]
g = _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.act == p.act && g(r.sub, p.sub) && g2(r.obj, p.obj) && (p.start == "" || p.start <= r.now) && (p.end == "" || r.now < p.end) && (p.excl == "" || !g(r.sub, p.excl)) && (p.depth == "tenant" || (p.depth == "own" && g(r.sub, r.owner)) || (p.depth == "bu" && r.unit == r.home) || (p.depth == "tree" && g2(r.unit, r.home)))
"#;

pub struct CasbinEngine {
    enforcer: Enforcer,
    users: u32,
    home_unit: Vec<Option<u32>>,
    records: Vec<portcullis_core::engine::model::Record>,
}

/// Instants as fixed-width text, so that Rhai's string comparison orders them as numbers.
fn instant(t: i64) -> String {
    format!("{t:012}")
}

fn principal(users: u32, node: u32) -> String {
    if node < users {
        format!("u{node}")
    } else {
        format!("g{node}")
    }
}

fn scope(s: Scope) -> String {
    match s {
        Scope::Tenant => "tenant".to_string(),
        Scope::Environment(e) => format!("env{e}"),
        Scope::BusinessUnit(u) => format!("unit{u}"),
        Scope::Record(r) => format!("rec{r}"),
    }
}

fn depth(d: Depth) -> &'static str {
    match d {
        Depth::Own => "own",
        Depth::BusinessUnit => "bu",
        Depth::BusinessUnitTree => "tree",
        Depth::Tenant => "tenant",
    }
}

impl CasbinEngine {
    pub fn build(model: &Model, users: u32) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a Tokio runtime");
        let enforcer = runtime.block_on(async {
            let conf = DefaultModel::from_str(MODEL)
                .await
                .expect("the model parses");
            let mut e = Enforcer::new(conf, MemoryAdapter::default())
                .await
                .expect("an enforcer");
            e.enable_auto_save(false);

            let mut links: Vec<Vec<String>> = Vec::new();
            for (node, groups) in model.memberships.iter().enumerate() {
                for g in groups {
                    links.push(vec![principal(users, node as u32), principal(users, *g)]);
                }
            }
            for (k, d) in model.denies.iter().enumerate() {
                for x in &d.excluded {
                    links.push(vec![principal(users, *x), format!("x{k}")]);
                }
            }
            e.add_named_grouping_policies("g", links)
                .await
                .expect("group links");

            let mut containers: Vec<Vec<String>> = Vec::new();
            for (unit, parent) in model.unit_parents.iter().enumerate() {
                let above = parent.map_or_else(|| "tenant".to_string(), |p| format!("unit{p}"));
                containers.push(vec![format!("unit{unit}"), above]);
            }
            let mut environments: Vec<u32> =
                model.records.iter().flatten().filter_map(|r| r.environment).collect();
            environments.sort_unstable();
            environments.dedup();
            for env in environments {
                containers.push(vec![format!("env{env}"), "tenant".to_string()]);
            }
            for (id, r) in model.records.iter().flatten().enumerate() {
                containers.push(vec![format!("rec{id}"), format!("unit{}", r.business_unit)]);
                if let Some(env) = r.environment {
                    containers.push(vec![format!("rec{id}"), format!("env{env}")]);
                }
            }
            e.add_named_grouping_policies("g2", containers)
                .await
                .expect("container links");

            let mut lines: Vec<Vec<String>> = Vec::new();
            for a in model.assignments.iter().flatten() {
                for p in &model.roles[a.role as usize] {
                    lines.push(vec![
                        principal(users, a.principal),
                        scope(a.scope),
                        p.action.to_string(),
                        depth(p.depth).to_string(),
                        a.starts_at.map(instant).unwrap_or_default(),
                        a.ends_at.map(instant).unwrap_or_default(),
                        String::new(),
                        "allow".to_string(),
                    ]);
                }
            }
            for s in model.shares.iter().flatten() {
                for action in &s.actions {
                    lines.push(vec![
                        principal(users, s.principal),
                        format!("rec{}", s.record),
                        action.to_string(),
                        "tenant".to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                        "allow".to_string(),
                    ]);
                }
            }
            for (k, d) in model.denies.iter().enumerate() {
                for p in &d.principals {
                    for action in &d.actions {
                        lines.push(vec![
                            principal(users, *p),
                            scope(d.scope),
                            action.to_string(),
                            "tenant".to_string(),
                            String::new(),
                            String::new(),
                            if d.excluded.is_empty() {
                                String::new()
                            } else {
                                format!("x{k}")
                            },
                            "deny".to_string(),
                        ]);
                    }
                }
            }
            e.add_policies(lines).await.expect("policy lines");
            e
        });
        Self {
            enforcer,
            users,
            home_unit: model.home_unit.clone(),
            records: model.records.iter().flatten().copied().collect(),
        }
    }

    pub fn decide(&self, check: Check) -> bool {
        let Some(record) = self.records.get(check.record as usize) else {
            return false;
        };
        let home = self
            .home_unit
            .get(check.principal as usize)
            .copied()
            .flatten()
            .map(|h| format!("unit{h}"))
            .unwrap_or_default();
        self.enforcer
            .enforce((
                principal(self.users, check.principal),
                format!("rec{}", check.record),
                check.action.to_string(),
                instant(check.now),
                principal(self.users, record.owner),
                format!("unit{}", record.business_unit),
                home,
            ))
            .expect("an enforce call")
    }

    pub fn policy_lines(&self) -> usize {
        self.enforcer.get_policy().len()
    }
}
