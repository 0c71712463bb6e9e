//! `portcullis bench access` and `portcullis bench propagation`: the authorization engine
//! over HTTP. The first loads one server's AuthZEN endpoints with single and batched
//! evaluations; the second starts several servers on one PostgreSQL database and times how
//! long a change made through one takes to be decided on all the others.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use portcullis_core::secrets::Kek;

use super::{ServerProcess, load, median};

#[derive(clap::Args)]
pub struct AccessBench {
    #[command(flatten)]
    pub backend: super::Backend,
    /// Users, spread over the business units and groups.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Registered records of the `document` type.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Single evaluations (`POST …/access/v1/evaluation`).
    #[arg(long, default_value_t = 50_000)]
    single: usize,
    /// Batched requests (`POST …/access/v1/evaluations`).
    #[arg(long, default_value_t = 2_000)]
    batches: usize,
    /// Evaluations per batch (1-1000).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Runs of each phase; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(clap::Args)]
pub struct PropagationBench {
    /// The PostgreSQL server the nodes share (a scratch database is created there and dropped
    /// afterwards).
    #[arg(long, value_name = "URL")]
    pub postgres: String,
    /// Server processes on the one database (the change is made through the first).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Changes timed (alternately removing a user from the group that gives her access, and
    /// adding her back).
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// The nodes' change-feed poll interval: the fallback when no notification is heard.
    #[arg(long, default_value_t = 1_000)]
    poll_interval_ms: u64,
}

const UNITS: usize = 10;
const GROUPS: usize = 10;

/// An HTTP client for one server, with a key.
#[derive(Clone)]
pub(super) struct Session {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) key: String,
}

impl Session {
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

pub(super) fn id(value: &Value) -> anyhow::Result<String> {
    value["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id in {value}"))
}

/// The tenant's name and an enforcement point's key.
struct Tenant {
    name: String,
    pep: String,
}

/// Builds the benchmark's tenant in the operator tenant: units (the first above the others),
/// groups holding a reader role, users in units and groups, records owned by users and spread
/// over the units, and an enforcement point. Returns it, the user ids and the group ids (user `i` is in group
/// `i % GROUPS`).
async fn populate(
    admin: &Session,
    users: usize,
    records: usize,
    connections: usize,
) -> anyhow::Result<(Tenant, Arc<Vec<String>>, Arc<Vec<String>>)> {
    let me = admin.call(reqwest::Method::GET, "/v1/me", None).await?;
    let name = me["tenant"]["name"]
        .as_str()
        .context("no tenant name in /v1/me")?
        .to_owned();
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "document", "actions": [
                {"name": "read", "plane": "data"}, {"name": "write", "plane": "data"}]}),
        )
        .await?;
    let role = id(&admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Reader", "permissions": [
                {"action": "document.read", "depth": "business_unit_tree"},
                {"action": "document.write", "depth": "own"}]}),
        )
        .await?)?;
    let mut units = Vec::new();
    let mut groups = Vec::new();
    for i in 0..UNITS.max(GROUPS) {
        let parent = units.first().map(|u: &String| json!(u));
        let unit = admin
            .post(
                "/v1/business-units",
                json!({"name": format!("unit-{i}"), "parent_id": parent}),
            )
            .await?;
        units.push(id(&unit)?);
        let group = id(&admin
            .post("/v1/groups", json!({"name": format!("group-{i}")}))
            .await?)?;
        // Even groups hold the role tenant-wide, odd ones in their own unit.
        let scope = if i.is_multiple_of(2) {
            "tenant".to_owned()
        } else {
            format!("business_unit/{}", units[i])
        };
        admin
            .post(
                "/v1/role-assignments",
                json!({"principal": {"kind": "group", "id": group}, "role": role, "scope": scope}),
            )
            .await?;
        groups.push(group);
    }
    let (units, groups) = (Arc::new(units), Arc::new(groups));

    eprintln!("bench access: {users} users");
    let (base, key, unit_ids) = (admin.base.clone(), admin.key.clone(), units.clone());
    let (_, bodies) = load(&admin.http, users, connections, 201, move |http, i| {
        http.post(format!("{base}/v1/users"))
            .bearer_auth(&key)
            // Half in the top unit, whose readers reach every record: about half the reads
            // are allowed.
            .json(&json!({"user_name": format!("reader-{i}"),
                          "business_unit_id": unit_ids[if i.is_multiple_of(2) { 0 } else { i % UNITS }]}))
    })
    .await?;
    // The answers come back in the order the workers finished; user `i` is `reader-{i}`.
    let mut numbered = bodies
        .iter()
        .map(|b| {
            let index = b["user_name"]
                .as_str()
                .and_then(|n| n.strip_prefix("reader-"))
                .and_then(|n| n.parse::<usize>().ok())
                .with_context(|| format!("not a benchmark user: {b}"))?;
            Ok((index, id(b)?))
        })
        .collect::<anyhow::Result<Vec<(usize, String)>>>()?;
    numbered.sort_unstable();
    let user_ids: Arc<Vec<String>> = Arc::new(numbered.into_iter().map(|(_, id)| id).collect());
    let (base, key, members, group_ids) = (
        admin.base.clone(),
        admin.key.clone(),
        user_ids.clone(),
        groups.clone(),
    );
    load(&admin.http, users, connections, 201, move |http, i| {
        http.post(format!(
            "{base}/v1/groups/{}/members",
            group_ids[i % GROUPS]
        ))
        .bearer_auth(&key)
        .json(&json!({"kind": "user", "id": members[i]}))
    })
    .await?;

    eprintln!("bench access: {records} records");
    let (base, key, owners) = (admin.base.clone(), admin.key.clone(), user_ids.clone());
    load(&admin.http, records, connections, 200, move |http, i| {
        http.put(format!("{base}/v1/records/document/doc-{i}"))
            .bearer_auth(&key)
            .json(
                &json!({"owner": {"kind": "user", "id": owners[(i * 31) % owners.len()]},
                          "business_unit_id": units[(i * 7) % UNITS]}),
            )
    })
    .await?;

    let key = enforcement_point(admin).await?;
    Ok((Tenant { name, pep: key }, user_ids, groups))
}

/// A service principal that may evaluate access tenant-wide, and its API key.
pub(super) async fn enforcement_point(admin: &Session) -> anyhow::Result<String> {
    let pep = id(&admin
        .post("/v1/service-principals", json!({"name": "bench-pep"}))
        .await?)?;
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": pep}, "role": "access_evaluator", "scope": "tenant"}),
        )
        .await?;
    Ok(admin
        .post(&format!("/v1/service-principals/{pep}/api-keys"), json!({}))
        .await?["secret"]
        .as_str()
        .context("no API key secret")?
        .to_owned())
}

/// The `i`-th question of the seeded mix: a user, an action, a record.
fn question(users: &[String], records: usize, i: usize) -> Value {
    let user = &users[(i * 7919) % users.len()];
    let action = if i.is_multiple_of(4) { "write" } else { "read" };
    json!({
        "subject": {"type": "user", "id": user},
        "action": {"name": action},
        "resource": {"type": "document", "id": format!("doc-{}", (i * 104_729) % records)}
    })
}

pub async fn access(
    bench: &AccessBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if bench.users == 0
        || bench.records == 0
        || bench.connections == 0
        || bench.runs == 0
        || !(1..=1000).contains(&bench.batch)
    {
        bail!("--users, --records, --connections and --runs must be at least 1, --batch 1 to 1000");
    }
    let server = ServerProcess::start(dir, database_url).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.connections)
        .build()?;
    let admin = Session {
        http: http.clone(),
        base: server.base.clone(),
        key: server.admin_key.clone(),
    };
    let (tenant, users, _) =
        populate(&admin, bench.users, bench.records, bench.connections).await?;
    let evaluation = format!("{}/t/{}/access/v1/evaluation", server.base, tenant.name);
    let evaluations = format!("{}/t/{}/access/v1/evaluations", server.base, tenant.name);
    let records = bench.records;

    let mut single_rates = Vec::new();
    let mut batched_rates = Vec::new();
    for run in 1..=bench.runs {
        let (url, key, who) = (evaluation.clone(), tenant.pep.clone(), users.clone());
        let (phase, bodies) = load(
            &http,
            bench.single,
            bench.connections,
            200,
            move |http, i| {
                http.post(&url)
                    .bearer_auth(&key)
                    .json(&question(&who, records, i))
            },
        )
        .await?;
        let allowed = bodies.iter().filter(|b| b["decision"] == true).count();
        if bodies.len() != bench.single {
            bail!(
                "{} of {} single evaluations answered",
                bodies.len(),
                bench.single
            );
        }
        let rate = bench.single as f64 / phase.elapsed.as_secs_f64();
        println!(
            "access single  {store_name:<10} run {run}: {rate:.0} decisions/s ({:.0} % allowed)",
            allowed as f64 * 100.0 / bench.single as f64
        );
        phase.report("access single", store_name);
        single_rates.push(rate);

        let (url, key, who, size) = (
            evaluations.clone(),
            tenant.pep.clone(),
            users.clone(),
            bench.batch,
        );
        let (phase, bodies) = load(
            &http,
            bench.batches,
            bench.connections,
            200,
            move |http, b| {
                let items: Vec<Value> = (0..size)
                    .map(|j| question(&who, records, b * size + j))
                    .collect();
                http.post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"evaluations": items}))
            },
        )
        .await?;
        let answered: usize = bodies
            .iter()
            .map(|b| b["evaluations"].as_array().map_or(0, Vec::len))
            .sum();
        let decisions = bench.batches * bench.batch;
        if answered != decisions {
            bail!("{answered} of {decisions} batched evaluations answered");
        }
        let rate = decisions as f64 / phase.elapsed.as_secs_f64();
        println!(
            "access batched {store_name:<10} run {run}: {rate:.0} decisions/s ({} per request)",
            bench.batch
        );
        phase.report("access batch", store_name);
        batched_rates.push(rate);
    }
    println!(
        "access         {store_name:<10} median of {}: single {:.0} decisions/s, batched {:.0} decisions/s; {:.1} MiB resident",
        bench.runs,
        median(&mut single_rates),
        median(&mut batched_rates),
        server.rss_mib()?
    );
    Ok(())
}

pub async fn propagation(
    bench: &PropagationBench,
    dir: &Path,
    database_url: &str,
) -> anyhow::Result<()> {
    if bench.nodes < 2 || bench.changes == 0 {
        bail!("--nodes must be at least 2 and --changes at least 1");
    }
    let kek = Kek::generate_base64()?;
    let poll = bench.poll_interval_ms.to_string();
    let extra = ["--authz-poll-interval-ms", poll.as_str()];
    let mut nodes = Vec::new();
    let mut admin_key = None;
    for n in 0..bench.nodes {
        let node_dir = dir.join(format!("node-{n}"));
        std::fs::create_dir_all(&node_dir)?;
        let (node, key) =
            ServerProcess::node(&node_dir, database_url, kek.expose_secret(), &extra).await?;
        admin_key = admin_key.or(key);
        nodes.push(node);
    }
    let http = reqwest::Client::new();
    let admin = Session {
        http: http.clone(),
        base: nodes[0].base.clone(),
        key: admin_key.context("no node printed a bootstrap key")?,
    };
    let (tenant, users, groups) = populate(&admin, 10, 10, 4).await?;
    // The first user reads doc-0 through the first group; each change takes her out of it or
    // puts her back.
    let (alice, group) = (&users[0], &groups[0]);
    let ask = json!({
        "subject": {"type": "user", "id": alice},
        "action": {"name": "read"},
        "resource": {"type": "document", "id": "doc-0"}
    });
    let peps: Vec<Session> = nodes
        .iter()
        .map(|n| Session {
            http: http.clone(),
            base: n.base.clone(),
            key: tenant.pep.clone(),
        })
        .collect();
    let path = format!("/t/{}/access/v1/evaluation", tenant.name);
    let initially = peps[0].post(&path, ask.clone()).await?["decision"] == true;

    let latencies = time_propagation(
        &admin,
        &peps[1..],
        &path,
        &ask,
        (group.as_str(), alice.as_str()),
        initially,
        bench.changes,
    )
    .await?;
    let at = |p: f64| percentile_ms(&latencies, p);
    println!(
        "propagation    postgresql {} nodes, {} changes (poll {} ms): commit to visible on every node p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        bench.nodes,
        bench.changes,
        bench.poll_interval_ms,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// Makes `changes` membership changes through `admin`, alternately taking `member` out of
/// `group` and putting it back (`initially`: whether `ask` is allowed now, on the member's way
/// in), and after each is acknowledged asks every one of `others` — with no demanded revision —
/// until it answers the new way. The time from each acknowledgement to the last node's new
/// answer, sorted.
pub(super) async fn time_propagation(
    admin: &Session,
    others: &[Session],
    path: &str,
    ask: &serde_json::Value,
    (group, member): (&str, &str),
    initially: bool,
    changes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(changes);
    let mut expected = initially;
    for change in 0..changes {
        if expected {
            admin
                .call(
                    reqwest::Method::DELETE,
                    &format!("/v1/groups/{group}/members/user/{member}"),
                    None,
                )
                .await?;
        } else {
            admin
                .post(
                    &format!("/v1/groups/{group}/members"),
                    json!({"kind": "user", "id": member}),
                )
                .await?;
        }
        let committed = Instant::now();
        expected = !expected;
        let mut slowest = Duration::ZERO;
        for pep in others {
            loop {
                if pep.post(path, ask.clone()).await?["decision"] == expected {
                    slowest = slowest.max(committed.elapsed());
                    break;
                }
                if committed.elapsed() > Duration::from_secs(30) {
                    bail!("change {change} was not seen by {} within 30 s", pep.base);
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        latencies.push(slowest);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// The `p`th quantile of sorted `latencies`, in milliseconds.
pub(super) fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
    latencies[index.min(latencies.len() - 1)].as_secs_f64() * 1000.0
}
