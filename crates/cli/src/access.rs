//! `portcullis explain`, `who-can` and `what-can`: the authorization engine's answers, asked
//! through the tenant's AuthZEN endpoints (so the key needs `access.evaluate`) and printed for
//! a person, with the ids in a reason looked up by name.

use std::process::ExitCode;

use anyhow::{Context, bail};
use portcullis_api::access::{
    ActionBody, DecisionContextRequest, EvaluationBody, EvaluationsBody, EvaluationsResponse,
    MinRevision, PageBody, ResourceBody, SearchBody, SubjectBody,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Connection;
use crate::api::Api;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Who asks: `user:<user name, e-mail or id>`, `group:<name or id>` or
    /// `service_principal:<name or id>`.
    #[arg(long)]
    subject: String,
    /// The action: `read`, or in full `document.read`.
    #[arg(long)]
    action: String,
    /// What it is done to: `<type>:<id>` (`document:d-1`), or one of Portcullis's own such as
    /// `environment:<id>` or `user:-`.
    #[arg(long)]
    resource: String,
    #[command(flatten)]
    freshness: Freshness,
    /// Ask the admin API's access explorer (needs `role.read`) instead of the AuthZEN endpoint
    /// (needs `access.evaluate`); it decides on the latest revision and names every group
    /// between the subject and the group that holds the access.
    #[arg(long, conflicts_with = "min_revision")]
    explorer: bool,
    /// Print the server's JSON answer instead.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct WhoCanArgs {
    /// The action: `read`, or in full `document.read`.
    #[arg(long)]
    action: String,
    /// What it is done to: `<type>:<id>`.
    #[arg(long)]
    resource: String,
    /// Which principals to list: user, group or service_principal.
    #[arg(long, default_value = "user")]
    kind: String,
    #[command(flatten)]
    page: Page,
    #[command(flatten)]
    freshness: Freshness,
    /// Ask the admin API's access explorer (needs `role.read`) instead of the AuthZEN search
    /// (needs `access.evaluate`). Its pages hold at most 500.
    #[arg(long, conflicts_with = "min_revision")]
    explorer: bool,
}

#[derive(clap::Args)]
pub struct WhatCanArgs {
    /// Who asks: `user:<user name, e-mail or id>`, `group:<name or id>` or
    /// `service_principal:<name or id>`.
    #[arg(long)]
    subject: String,
    /// List the actions the subject may do on this resource (`<type>:<id>`).
    #[arg(long, conflicts_with = "action", required_unless_present = "action")]
    resource: Option<String>,
    /// List the records on which the subject may do this action (`document.read`).
    #[arg(long)]
    action: Option<String>,
    #[command(flatten)]
    page: Page,
    #[command(flatten)]
    freshness: Freshness,
}

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// The questions: `{"subject", "action", "resource", "context", "evaluations": [...],
    /// "options": {"evaluations_semantic": "execute_all" | "deny_on_first_deny" |
    /// "permit_on_first_permit"}}`, where each evaluation fills in what the top level leaves
    /// out (AuthZEN 1.0, section 7).
    #[command(flatten)]
    document: crate::args::Document,
}

/// Paging of a search's answers.
#[derive(clap::Args)]
struct Page {
    /// Answers per page (1-1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The token printed after the previous page.
    #[arg(long)]
    page_token: Option<String>,
}

impl Page {
    fn body(&self) -> PageBody {
        PageBody {
            token: Some(self.page_token.clone().unwrap_or_default()),
            limit: Some(self.limit as usize),
        }
    }
}

#[derive(clap::Args)]
struct Freshness {
    /// Decide on a snapshot at least this fresh: a revision number from an earlier answer, or
    /// `latest` (everything committed before the question).
    #[arg(long, value_name = "REVISION|latest")]
    min_revision: Option<String>,
}

impl Freshness {
    fn context(&self) -> anyhow::Result<Value> {
        let min_revision = self
            .min_revision
            .as_deref()
            .map(str::parse::<MinRevision>)
            .transpose()
            .map_err(|error| anyhow::anyhow!("--min-revision {error}"))?;
        Ok(serde_json::to_value(DecisionContextRequest {
            min_revision,
        })?)
    }
}

/// The tenant's AuthZEN base path, and the API client.
struct Pdp {
    api: Api,
    base: String,
}

impl Pdp {
    async fn new(connection: &Connection) -> anyhow::Result<Self> {
        let api = Api::new(connection)?;
        let me = api.get("/v1/me", crate::api::NO_QUERY).await?;
        let tenant = me["tenant"]["name"]
            .as_str()
            .context("the server did not say which tenant the key belongs to")?;
        Ok(Pdp {
            base: format!("/t/{tenant}/access/v1"),
            api,
        })
    }

    async fn ask(&self, endpoint: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        self.api
            .post(&format!("{}/{endpoint}", self.base), body)
            .await
    }

    /// `kind:name` as an AuthZEN subject: a user by user name, e-mail or id, a group or a
    /// service principal by name or id (`crate::names`).
    async fn subject(&self, raw: &str) -> anyhow::Result<SubjectBody> {
        let principal = crate::names::principal(&self.api, "subject", raw).await?;
        Ok(SubjectBody {
            kind: principal.kind.as_str().to_owned(),
            id: Some(principal.id.to_string()),
            properties: None,
        })
    }

    /// A principal's name for people, or its id when it cannot be read.
    async fn name_of(&self, principal: &Value) -> String {
        let (kind, id) = (
            principal["type"]
                .as_str()
                .or(principal["kind"].as_str())
                .unwrap_or("?"),
            principal["id"].as_str().unwrap_or("?"),
        );
        let (path, field) = match kind {
            "user" => (format!("/v1/users/{id}"), "user_name"),
            "group" => (format!("/v1/groups/{id}"), "name"),
            "service_principal" => (format!("/v1/service-principals/{id}"), "name"),
            _ => return format!("{kind} {id}"),
        };
        match self.api.get(&path, crate::api::NO_QUERY).await {
            Ok(found) => match found[field].as_str() {
                Some(name) => format!("{kind} {name} ({id})"),
                None => format!("{kind} {id}"),
            },
            Err(_) => format!("{kind} {id}"),
        }
    }

    /// A role's name: a built-in's own, a custom role's as its administrators named it.
    async fn role_name(&self, role: &Value) -> String {
        let Some(role) = role.as_str() else {
            return "?".into();
        };
        if uuid::Uuid::parse_str(role).is_err() {
            return role.to_owned();
        }
        match self
            .api
            .get(&format!("/v1/custom-roles/{role}"), crate::api::NO_QUERY)
            .await
        {
            Ok(found) => format!("{:?} ({role})", found["name"].as_str().unwrap_or("?")),
            Err(_) => role.to_owned(),
        }
    }
}

fn resource(raw: &str) -> anyhow::Result<ResourceBody> {
    match raw.split_once(':') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => Ok(ResourceBody {
            kind: kind.to_owned(),
            id: Some(id.to_owned()),
            properties: None,
        }),
        _ => bail!("--resource {raw:?} must be `<type>:<id>`, e.g. `document:d-1`"),
    }
}

fn action(name: &str) -> ActionBody {
    ActionBody {
        name: name.to_owned(),
    }
}

pub async fn explain(args: ExplainArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let pdp = Pdp::new(connection).await?;
    let subject = pdp.subject(&args.subject).await?;
    let on = resource(&args.resource)?;
    let (answer, decided) = if args.explorer {
        let body = json!({
            "principal": {"kind": subject.kind, "id": subject.id},
            "action": args.action,
            "resource": {"type": on.kind, "id": on.id},
        });
        let answer = pdp.api.post("/v1/access-explorer/check", &body).await?;
        let decided = answer.clone();
        (answer, decided)
    } else {
        let body = EvaluationBody {
            subject: Some(subject.clone()),
            action: Some(action(&args.action)),
            resource: Some(on),
            context: Some(args.freshness.context()?),
        };
        let answer = pdp.ask("evaluation", &body).await?;
        let decided = json!({
            "allowed": answer["decision"],
            "reason": answer["context"]["reason"],
            "reason_text": answer["context"]["reason_text"],
            "revision": answer["context"]["revision"],
        });
        (answer, decided)
    };
    if args.json || crate::output::json_asked() {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let allowed = decided["allowed"].as_bool() == Some(true);
    let subject = json!(subject);
    let who = pdp.name_of(&subject).await;
    println!(
        "{}: {who} {} {} on {}",
        if allowed { "ALLOWED" } else { "DENIED" },
        if allowed { "may" } else { "may not" },
        args.action,
        args.resource
    );
    println!(
        "  because {}",
        decided["reason_text"].as_str().unwrap_or("?")
    );
    for line in chain(&pdp, &subject, &who, &decided).await {
        println!("  {line}");
    }
    println!(
        "  (snapshot revision {})",
        decided["revision"].as_i64().unwrap_or(-1)
    );
    // Scripts can branch on the exit code, as with `test`.
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The links from the subject to what decided: the groups it holds through, the role by
/// name, and what the role grants.
async fn chain(pdp: &Pdp, subject: &Value, who: &str, decided: &Value) -> Vec<String> {
    let reason = &decided["reason"];
    let mut lines = Vec::new();
    let holder = &reason["principal"];
    match decided["through"].as_array() {
        Some(through) if !through.is_empty() => {
            let mut line = who.to_owned();
            for (i, group) in through.iter().enumerate() {
                let joins = if i == 0 {
                    "is a member of"
                } else {
                    ", which is in"
                };
                line.push_str(&format!(" {joins} {}", pdp.name_of(group).await));
            }
            lines.push(line);
        }
        _ if holder.is_object() && holder["id"] != subject["id"] => lines.push(format!(
            "{who} is a member of {} (directly or through nested groups)",
            pdp.name_of(holder).await
        )),
        _ => {}
    }
    if !reason["role"].is_null() {
        let mut line = format!("role {}", pdp.role_name(&reason["role"]).await);
        if let Some(scope) = reason["scope"].as_str() {
            line.push_str(&format!(" held at {scope}"));
        }
        if let Some(assignment) = reason["assignment_id"].as_str() {
            line.push_str(&format!(" by assignment {assignment}"));
        }
        lines.push(line);
    }
    if let Some(share) = reason["share_id"].as_str() {
        lines.push(format!("share {share}"));
    }
    if let Some(deny) = reason["deny_assignment_id"].as_str() {
        lines.push(format!(
            "deny assignment {deny}: remove it, or add the subject to its exclusions, to lift it"
        ));
    }
    lines
}

pub async fn who_can(args: WhoCanArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let pdp = Pdp::new(connection).await?;
    let on = resource(&args.resource)?;
    if args.explorer {
        let body = json!({
            "action": args.action,
            "resource": {"type": on.kind, "id": on.id},
            "kinds": [args.kind],
            "cursor": args.page.page_token,
            "limit": args.page.limit,
        });
        let answer = pdp.api.post("/v1/access-explorer/who-can", &body).await?;
        for found in answer["principals"].as_array().into_iter().flatten() {
            println!("{}", pdp.name_of(found).await);
        }
        if let Some(token) = answer["next_cursor"].as_str() {
            eprintln!("more: pass --page-token {token} for the next page");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let body = SearchBody {
        subject: Some(SubjectBody {
            kind: args.kind,
            id: None,
            properties: None,
        }),
        action: Some(action(&args.action)),
        resource: Some(on),
        context: Some(args.freshness.context()?),
        page: Some(args.page.body()),
    };
    let answer = pdp.ask("search/subject", &body).await?;
    for found in answer["results"].as_array().into_iter().flatten() {
        println!("{}", pdp.name_of(found).await);
    }
    print_next(&answer);
    Ok(ExitCode::SUCCESS)
}

pub async fn what_can(args: WhatCanArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let pdp = Pdp::new(connection).await?;
    let subject = pdp.subject(&args.subject).await?;
    let context = args.freshness.context()?;
    let answer = match (&args.resource, &args.action) {
        (Some(on), _) => {
            let body = SearchBody {
                subject: Some(subject),
                action: None,
                resource: Some(resource(on)?),
                context: Some(context),
                page: None,
            };
            pdp.ask("search/action", &body).await?
        }
        (None, Some(action)) => {
            let Some((kind, _)) = action.split_once('.') else {
                bail!("--action {action:?} must name its type, e.g. `document.read`")
            };
            let body = SearchBody {
                subject: Some(subject),
                action: Some(self::action(action)),
                resource: Some(ResourceBody {
                    kind: kind.to_owned(),
                    id: None,
                    properties: None,
                }),
                context: Some(context),
                page: Some(args.page.body()),
            };
            pdp.ask("search/resource", &body).await?
        }
        (None, None) => bail!("give --resource (which actions) or --action (which records)"),
    };
    for found in answer["results"].as_array().into_iter().flatten() {
        match (found["name"].as_str(), found["type"].as_str()) {
            (Some(action), _) => println!("{action}"),
            (None, Some(kind)) => println!("{kind}:{}", found["id"].as_str().unwrap_or("?")),
            _ => println!("{found}"),
        }
    }
    print_next(&answer);
    Ok(ExitCode::SUCCESS)
}

pub async fn evaluate(args: EvaluateArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let body: EvaluationsBody = args.document.read()?;
    let pdp = Pdp::new(connection).await?;
    let answer: EvaluationsResponse = serde_json::from_value(pdp.ask("evaluations", &body).await?)
        .context("the server's decisions are not what this version of portcullis expects")?;
    let all_allowed = answer.evaluations.iter().all(|d| d.decision);
    crate::output::print(&json!(answer))?;
    Ok(if all_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn print_next(answer: &Value) {
    if let Some(token) = answer["page"]["next_token"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        eprintln!("more: pass --page-token {token} for the next page");
    }
}
