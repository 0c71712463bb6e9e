//! `portcullis bench scale`: a tenant of `bench/engine`'s shape (at `--scale` 1.0: 100k users,
//! 10k groups, 1k roles, 1k business units, 1M role assignments, 1M records, 100k shares)
//! written straight through the store, then the real server measured on it: how long the
//! running node takes to take the load in, how long a restarted node takes to its first
//! decision, AuthZEN search pages on it, and record registrations and membership changes
//! through the admin API while the tenant is that large (each one applied to the snapshot as a
//! delta).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use portcullis_core::audit::{Actor, Origin};
use portcullis_core::authz::{Plane, RoleAssignment, RoleRef, Scope};
use portcullis_core::engine::model::Depth;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::names::{parse_email, parse_name};
use portcullis_core::resources::{
    CustomRole, RecordEntry, ResourceAction, ResourceType, RolePermission, Share,
};
use portcullis_core::secrets::Kek;
use portcullis_core::*;
use portcullis_server::{Server, Settings};
use portcullis_store::WriteContext;
use portcullis_store::{BulkRows, BulkUser};

use super::access::{Session, enforcement_point, id, percentile_ms, time_propagation};
use super::{ServerProcess, load};

#[derive(clap::Args)]
pub struct ScaleBench {
    #[command(flatten)]
    pub backend: super::Backend,
    /// Fraction of the full tenant (1.0 = 100k users, 10k groups, 1k roles, 1k business
    /// units, 1M role assignments, 1M records, 100k shares).
    #[arg(long, default_value_t = 0.1)]
    scale: f64,
    /// Seed of the generated tenant.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Record registrations, and as many membership changes, through the admin API once the
    /// tenant is loaded.
    #[arg(long, default_value_t = 2_000)]
    writes: usize,
    /// Concurrent connections for those writes.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// AuthZEN search pages of each kind (who may, which records), one at a time, on the
    /// restarted node.
    #[arg(long, default_value_t = 500)]
    searches: usize,
    /// Server processes on the database (more than one needs --postgres): the others start
    /// after the writes, and then `--changes` membership changes made through the first are
    /// timed until every other node answers the new way.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Membership changes timed across the nodes.
    #[arg(long, default_value_t = 1_000)]
    changes: usize,
    /// Seconds of sustained churn across the nodes after that (0: none): membership changes
    /// at --churn-rate through the first node, while enforcement points ask the others and an
    /// administrator lists users through the first.
    #[arg(long, default_value_t = 0)]
    churn_seconds: u64,
    /// Changes a second during the churn.
    #[arg(long, default_value_t = 1_000)]
    churn_rate: u64,
}

/// Entries per search page.
const SEARCH_PAGE: usize = 50;
/// Users and records the searches pick from.
const SEARCH_SAMPLE: usize = 1_000;

/// Actions of the generated `document` type.
const ACTIONS: usize = 64;
/// Rows handed to the store per transaction.
const ROWS_PER_LOAD: usize = 50_000;

/// SplitMix64: repeatable numbers for the generator (not for anything secret).
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self) -> usize {
        self.below(100)
    }
}

fn part(full: f64, scale: f64, floor: usize) -> usize {
    ((full * scale).round() as usize).max(floor)
}

fn action_name(a: usize) -> String {
    format!("a{a:02}")
}

fn user_name(i: usize) -> String {
    format!("user-{i:06}")
}

pub async fn scale(
    bench: &ScaleBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if !(bench.scale > 0.0 && bench.scale <= 1.0)
        || bench.writes == 0
        || bench.connections == 0
        || bench.searches == 0
        || bench.nodes == 0
        || bench.changes == 0
    {
        bail!(
            "--scale must be in (0, 1]; --writes, --connections, --searches, --nodes and --changes at least 1"
        );
    }
    if bench.nodes > 1 && !database_url.starts_with("postgres") {
        bail!(
            "--nodes above 1 needs --postgres: nodes on one SQLite file hear of each other's changes only by polling"
        );
    }
    if bench.churn_seconds > 0 && bench.nodes < 2 {
        bail!("--churn-seconds needs --nodes 2 or more (enforcement points ask the other nodes)");
    }
    let kek = Kek::generate_base64()?;
    let node_dir = dir.join("node");
    std::fs::create_dir_all(&node_dir)?;
    let (node, key) =
        ServerProcess::node(&node_dir, database_url, kek.expose_secret(), &[]).await?;
    let admin = Session {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(bench.connections)
            .build()?,
        base: node.base.clone(),
        key: key.context("the server printed no bootstrap key")?,
    };
    let me = admin.call(reqwest::Method::GET, "/v1/me", None).await?;
    let tenant_name = me["tenant"]["name"]
        .as_str()
        .context("no tenant name")?
        .to_owned();
    let root = admin
        .call(reqwest::Method::GET, "/v1/business-units", None)
        .await?["items"]
        .as_array()
        .and_then(|units| units.iter().find(|u| u["parent_id"].is_null()))
        .map(id)
        .context("the tenant has no root business unit")??;
    let pep_key = enforcement_point(&admin).await?;

    // The store, in this process, on the same database.
    let settings = Settings {
        data_dir: Some(dir.join("loader")),
        database_url: Some(database_url.to_owned()),
        max_connections: Some(4),
        ..Settings::default()
    };
    std::fs::create_dir_all(dir.join("loader"))?;
    let loader = Server::prepare(settings.resolve()?, Some(kek.clone())).await?;
    let state = loader.state().clone();
    let ctx = WriteContext {
        tenant_id: state.operator_tenant,
        actor: Actor::system(),
        origin: Origin::default(),
        now: time::OffsetDateTime::now_utc(),
        keep_role_assigner: None,
    };
    let tenant = generate(bench, root.parse()?, state.operator_tenant)?;
    let sizes = json!({
        "users": tenant.users.len(), "groups": tenant.groups.len(),
        "units": tenant.units.len(), "roles": tenant.roles.len(),
        "memberships": tenant.memberships.len(), "assignments": tenant.assignments.len(),
        "records": tenant.records.len(), "shares": tenant.shares.len(),
    });
    eprintln!("bench scale: loading {sizes}");
    let started = Instant::now();
    let first_user = tenant.users[0].id;
    let first_record = tenant.records[0].external_id.clone();
    let mut numbers = Numbers(bench.seed ^ 0x5ea4c);
    let sample_users: Vec<String> = (0..SEARCH_SAMPLE)
        .map(|_| {
            tenant.users[numbers.below(tenant.users.len())]
                .id
                .to_string()
        })
        .collect();
    let sample_records: Vec<String> = (0..SEARCH_SAMPLE)
        .map(|_| {
            tenant.records[numbers.below(tenant.records.len())]
                .external_id
                .clone()
        })
        .collect();
    for rows in tenant.into_loads() {
        let (kind, count) = (rows.name(), rows.len());
        let at = Instant::now();
        state.store.bulk_insert(&ctx, rows).await?;
        eprintln!(
            "  {kind}: {count} rows in {:.1} s",
            at.elapsed().as_secs_f64()
        );
    }
    state.store.finish_bulk_load(&ctx, sizes.clone()).await?;
    let loaded = started.elapsed();
    state.store.close().await;
    println!(
        "load          {store_name:<10} scale {}: {sizes} in {:.1} s",
        bench.scale,
        loaded.as_secs_f64()
    );

    let pep = Session {
        http: admin.http.clone(),
        base: node.base.clone(),
        key: pep_key.clone(),
    };
    let question = json!({
        "subject": {"type": "user", "id": first_user.to_string()},
        "action": {"name": action_name(0)},
        "resource": {"type": "document", "id": first_record},
        "context": {"min_revision": "latest"}
    });
    let path = format!("/t/{tenant_name}/access/v1/evaluation");
    let at = Instant::now();
    pep.post(&path, question.clone()).await?;
    println!(
        "take in       {store_name:<10} the running node's first decision after the load: {:.2} s; {:.0} MiB resident",
        at.elapsed().as_secs_f64(),
        node.rss_mib()?
    );
    drop(node);

    let spawned = Instant::now();
    let (node, _) = ServerProcess::node(&node_dir, database_url, kek.expose_secret(), &[]).await?;
    let listening = spawned.elapsed();
    let pep = Session {
        base: node.base.clone(),
        ..pep
    };
    pep.post(&path, question).await?;
    println!(
        "start-up      {store_name:<10} listening {:.2} s, first decision {:.2} s after the process started; {:.0} MiB resident",
        listening.as_secs_f64(),
        spawned.elapsed().as_secs_f64(),
        node.rss_mib()?
    );

    let samples = (Arc::new(sample_users), Arc::new(sample_records));
    searches(&pep, &tenant_name, bench, samples.clone(), store_name).await?;

    let admin = Session {
        base: node.base.clone(),
        ..admin
    };
    let (base, key) = (admin.base.clone(), admin.key.clone());
    let unit = Arc::new(root);
    let owner = first_user.to_string();
    let (registered, _) = load(&admin.http, bench.writes, bench.connections, 200, move |http, i| {
        http.put(format!("{base}/v1/records/document/new-{i:06}"))
            .bearer_auth(&key)
            .json(&json!({"owner": {"kind": "user", "id": owner}, "business_unit_id": unit.as_str()}))
    })
    .await?;
    registered.report("register record", store_name);
    let group = id(&admin
        .post("/v1/groups", json!({"name": "bench-churn"}))
        .await?)?;
    let users: Vec<Value> = (0..bench.writes)
        .map(|i| json!({"user_name": format!("churn-{i:06}")}))
        .collect();
    let mut ids = Vec::with_capacity(users.len());
    for user in users {
        ids.push(id(&admin.post("/v1/users", user).await?)?);
    }
    let ids = Arc::new(ids);
    let (base, key, added_ids) = (admin.base.clone(), admin.key.clone(), ids.clone());
    let (added, _) = load(
        &admin.http,
        bench.writes,
        bench.connections,
        201,
        move |http, i| {
            http.post(format!("{base}/v1/groups/{group}/members"))
                .bearer_auth(&key)
                .json(&json!({"kind": "user", "id": added_ids[i]}))
        },
    )
    .await?;
    added.report("add member", store_name);
    println!(
        "memory        {store_name:<10} after the writes: {:.0} MiB resident",
        node.rss_mib()?
    );
    let metrics = admin
        .http
        .get(format!("{}/metrics", node.base))
        .send()
        .await?
        .text()
        .await?;
    if bench.nodes > 1 {
        let changes = Changes {
            admin: &admin,
            pep_key: &pep_key,
            tenant: &tenant_name,
            tenant_id: me["tenant"]["id"].as_str().context("no tenant id")?,
            record: &first_record,
            members: ids.clone(),
            samples,
        };
        propagation(bench, dir, database_url, &kek, changes, store_name).await?;
    }
    for line in metrics.lines().filter(|l| {
        l.starts_with("portcullis_authz_snapshot_rebuilds_total")
            || l.starts_with("portcullis_authz_snapshot_apply_seconds_count")
            || l.starts_with("portcullis_authz_snapshot_build_seconds_count")
            || l.starts_with("portcullis_authz_snapshot_apply_seconds{quantile=\"0.99\"}")
    }) {
        println!("metrics       {store_name:<10} {line}");
    }
    // Let the tail finish before the process is stopped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Where the changes timed across nodes are made, and what is asked about them.
struct Changes<'a> {
    admin: &'a Session,
    pep_key: &'a str,
    tenant: &'a str,
    tenant_id: &'a str,
    record: &'a str,
    /// Users the churn moves in and out of a group.
    members: Arc<Vec<String>>,
    /// Users and records the enforcement points ask about.
    samples: (Arc<Vec<String>>, Arc<Vec<String>>),
}

/// Starts the other nodes (each timed to its first decision on the loaded tenant), then times
/// membership changes made through the first until every other node answers the new way: a
/// new user in a new group, which has a share of one record.
async fn propagation(
    bench: &ScaleBench,
    dir: &Path,
    database_url: &str,
    kek: &secrecy::SecretString,
    changes: Changes<'_>,
    store_name: &str,
) -> anyhow::Result<()> {
    let admin = changes.admin;
    let member = id(&admin
        .post("/v1/users", json!({"user_name": "bench-propagation"}))
        .await?)?;
    let group = id(&admin
        .post("/v1/groups", json!({"name": "bench-propagation"}))
        .await?)?;
    admin
        .post(
            &format!("/v1/records/document/{}/shares", changes.record),
            json!({"principal": {"kind": "group", "id": group}, "actions": [action_name(0)]}),
        )
        .await?;
    let ask = json!({
        "subject": {"type": "user", "id": member},
        "action": {"name": action_name(0)},
        "resource": {"type": "document", "id": changes.record},
        "context": {"min_revision": "latest"}
    });
    let path = format!("/t/{}/access/v1/evaluation", changes.tenant);
    let mut others = Vec::new();
    let mut processes = Vec::new();
    for n in 1..bench.nodes {
        let node_dir = dir.join(format!("node-{n}"));
        std::fs::create_dir_all(&node_dir)?;
        let spawned = Instant::now();
        let (node, _) =
            ServerProcess::node(&node_dir, database_url, kek.expose_secret(), &[]).await?;
        let pep = Session {
            http: admin.http.clone(),
            base: node.base.clone(),
            key: changes.pep_key.to_owned(),
        };
        pep.post(&path, ask.clone()).await?;
        println!(
            "node {n}        {store_name:<10} first decision {:.2} s after the process started; {:.0} MiB resident",
            spawned.elapsed().as_secs_f64(),
            node.rss_mib()?
        );
        others.push(pep);
        processes.push(node);
    }
    // Asked from here on as enforcement points ask: whatever the node holds.
    let ask = json!({
        "subject": ask["subject"], "action": ask["action"], "resource": ask["resource"]
    });
    let latencies = time_propagation(
        admin,
        &others,
        &path,
        &ask,
        (group.as_str(), member.as_str()),
        false,
        bench.changes,
    )
    .await?;
    let at = |p: f64| percentile_ms(&latencies, p);
    println!(
        "propagation   {store_name:<10} {} nodes, {} changes: commit to visible on every node p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        bench.nodes,
        bench.changes,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    for (n, node) in processes.iter().enumerate() {
        println!(
            "memory        {store_name:<10} node {} after the changes: {:.0} MiB resident",
            n + 1,
            node.rss_mib()?
        );
    }
    if bench.churn_seconds > 0 {
        churn(bench, &changes, &others, &path, store_name).await?;
        for (n, node) in processes.iter().enumerate() {
            println!(
                "memory        {store_name:<10} node {} after the churn: {:.0} MiB resident",
                n + 1,
                node.rss_mib()?
            );
        }
    }
    Ok(())
}

/// The revision `metrics` (a node's) says its snapshot of `tenant` is at.
fn held_revision(metrics: &str, tenant: &str) -> Option<i64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("portcullis_authz_snapshot_revision") && l.contains(tenant))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|r| r as i64)
}

/// `--churn-seconds` of membership changes at `--churn-rate` through the first node (each on
/// its own task, at most 512 in flight), while 8 enforcement points per other node ask
/// decisions back to back, an administrator lists users through the first node, and every
/// 100 ms each node's revision is read from its metrics: how far each other node is behind
/// the first (which every change goes through) at worst.
async fn churn(
    bench: &ScaleBench,
    changes: &Changes<'_>,
    others: &[Session],
    path: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let admin = changes.admin.clone();
    let group = id(&admin
        .post("/v1/groups", json!({"name": "bench-churn-sustained"}))
        .await?)?;
    let running = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let writer = {
        let (admin, members, running) = (admin.clone(), changes.members.clone(), running.clone());
        let every = Duration::from_nanos(1_000_000_000 / bench.churn_rate.max(1));
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(512));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            let mut made = 0usize;
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let permit = permits.clone().acquire_owned().await?;
                let member = members[made % members.len()].clone();
                // Round by round: every member in, then every member out.
                let adding = (made / members.len()).is_multiple_of(2);
                made += 1;
                let (admin, group) = (admin.clone(), group.clone());
                tasks.spawn(async move {
                    let at = Instant::now();
                    let done = if adding {
                        admin
                            .post(
                                &format!("/v1/groups/{group}/members"),
                                json!({"kind": "user", "id": member}),
                            )
                            .await
                    } else {
                        admin
                            .call(
                                reqwest::Method::DELETE,
                                &format!("/v1/groups/{group}/members/user/{member}"),
                                None,
                            )
                            .await
                    };
                    drop(permit);
                    done.map(|_| at.elapsed())
                });
            }
            let (mut latencies, mut failed, mut first_error) = (Vec::new(), 0usize, None);
            while let Some(done) = tasks.join_next().await {
                match done? {
                    Ok(latency) => latencies.push(latency),
                    Err(error) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                    }
                }
            }
            anyhow::Ok((latencies, failed, first_error))
        })
    };
    let mut askers = tokio::task::JoinSet::new();
    for (n, pep) in others.iter().enumerate() {
        for k in 0..8u64 {
            let (pep, running, path) = (pep.clone(), running.clone(), path.to_owned());
            let (users, records) = changes.samples.clone();
            askers.spawn(async move {
                let mut numbers = Numbers(((n as u64) << 32) | k);
                let (mut latencies, mut failed) = (Vec::new(), 0usize);
                while running.load(Ordering::Relaxed) {
                    let ask = json!({
                        "subject": {"type": "user", "id": users[numbers.below(users.len())]},
                        "action": {"name": action_name(numbers.below(ACTIONS))},
                        "resource": {"type": "document", "id": records[numbers.below(records.len())]}
                    });
                    let at = Instant::now();
                    match pep.post(&path, ask).await {
                        Ok(_) => latencies.push(at.elapsed()),
                        Err(_) => failed += 1,
                    }
                }
                (latencies, failed)
            });
        }
    }
    let reader = {
        let (admin, running) = (admin.clone(), running.clone());
        tokio::spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            while running.load(Ordering::Relaxed) {
                let at = Instant::now();
                match admin
                    .call(reqwest::Method::GET, "/v1/users?limit=20", None)
                    .await
                {
                    Ok(_) => latencies.push(at.elapsed()),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        })
    };
    let mut behind = vec![0i64; others.len()];
    let metrics_of = |base: &str| {
        let http = admin.http.clone();
        let url = format!("{base}/metrics");
        async move { anyhow::Ok(http.get(url).send().await?.text().await?) }
    };
    while started.elapsed() < Duration::from_secs(bench.churn_seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let first = held_revision(&metrics_of(&admin.base).await?, changes.tenant_id);
        for (n, pep) in others.iter().enumerate() {
            let theirs = held_revision(&metrics_of(&pep.base).await?, changes.tenant_id);
            if let (Some(first), Some(theirs)) = (first, theirs) {
                behind[n] = behind[n].max(first - theirs);
            }
        }
    }
    running.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (mut written, failed, first_error) = writer.await??;
    let (mut decided, mut refused) = (Vec::new(), 0);
    while let Some(done) = askers.join_next().await {
        let (latencies, failed) = done?;
        decided.extend(latencies);
        refused += failed;
    }
    let (mut listed, unlisted) = reader.await?;
    for sorted in [&mut written, &mut decided, &mut listed] {
        sorted.sort_unstable();
        anyhow::ensure!(!sorted.is_empty(), "the churn ran too short to measure");
    }
    println!(
        "churn         {store_name:<10} {} s at {}/s asked: {} changes made ({:.0}/s), {failed} failed, p50 {:.2} ms, p99 {:.2} ms",
        bench.churn_seconds,
        bench.churn_rate,
        written.len(),
        written.len() as f64 / elapsed,
        percentile_ms(&written, 0.5),
        percentile_ms(&written, 0.99)
    );
    if let Some(error) = first_error {
        println!("churn         {store_name:<10} the first failure: {error}");
    }
    println!(
        "during churn  {store_name:<10} decisions on the other nodes: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {refused} failed; admin GET /v1/users on the first: p50 {:.2} ms, p99 {:.2} ms, {unlisted} failed; most revisions behind the first: {behind:?}",
        decided.len() as f64 / elapsed,
        percentile_ms(&decided, 0.5),
        percentile_ms(&decided, 0.99),
        percentile_ms(&listed, 0.5),
        percentile_ms(&listed, 0.99)
    );
    Ok(())
}

/// AuthZEN search pages, one at a time: who may do a random action on a random record, and
/// which records a random user may do it on.
async fn searches(
    pep: &Session,
    tenant: &str,
    bench: &ScaleBench,
    (users, records): (Arc<Vec<String>>, Arc<Vec<String>>),
    store_name: &str,
) -> anyhow::Result<()> {
    let pick = move |i: usize| {
        let mut numbers = Numbers(i as u64 ^ 0x5e4c);
        (
            numbers.below(SEARCH_SAMPLE),
            action_name(numbers.below(ACTIONS)),
        )
    };
    let (base, key) = (pep.base.clone(), pep.key.clone());
    let subject_search = format!("{base}/t/{tenant}/access/v1/search/subject");
    let (who, _) = load(&pep.http, bench.searches, 1, 200, move |http, i| {
        let (record, action) = pick(i);
        http.post(&subject_search).bearer_auth(&key).json(&json!({
            "subject": {"type": "user"}, "action": {"name": action},
            "resource": {"type": "document", "id": records[record]},
            "page": {"limit": SEARCH_PAGE}
        }))
    })
    .await?;
    who.report("search who", store_name);
    let key = pep.key.clone();
    let resource_search = format!("{base}/t/{tenant}/access/v1/search/resource");
    let (what, _) = load(&pep.http, bench.searches, 1, 200, move |http, i| {
        let (user, action) = pick(i);
        http.post(&resource_search).bearer_auth(&key).json(&json!({
            "subject": {"type": "user", "id": users[user]}, "action": {"name": action},
            "resource": {"type": "document"},
            "page": {"limit": SEARCH_PAGE}
        }))
    })
    .await?;
    what.report("search what", store_name);
    Ok(())
}

/// The generated tenant, by table.
struct Generated {
    units: Vec<(
        BusinessUnitId,
        Option<BusinessUnitId>,
        portcullis_core::names::Name,
    )>,
    users: Vec<BulkUser>,
    groups: Vec<(
        GroupId,
        portcullis_core::names::Name,
        Option<BusinessUnitId>,
    )>,
    memberships: Vec<(GroupId, PrincipalRef)>,
    types: Vec<ResourceType>,
    roles: Vec<CustomRole>,
    assignments: Vec<RoleAssignment>,
    records: Vec<RecordEntry>,
    shares: Vec<Share>,
}

impl Generated {
    /// The loads in the order the tables' keys need, each cut to `ROWS_PER_LOAD`.
    fn into_loads(self) -> Vec<BulkRows> {
        fn cut<T>(rows: Vec<T>, wrap: fn(Vec<T>) -> BulkRows) -> Vec<BulkRows> {
            let mut loads = Vec::new();
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                loads.push(wrap(rows.by_ref().take(ROWS_PER_LOAD).collect()));
            }
            loads
        }
        let mut loads = cut(self.units, BulkRows::BusinessUnits);
        loads.extend(cut(self.users, BulkRows::Users));
        loads.extend(cut(self.groups, BulkRows::Groups));
        loads.extend(cut(self.memberships, BulkRows::Memberships));
        loads.extend(cut(self.types, BulkRows::ResourceTypes));
        loads.extend(cut(self.roles, BulkRows::CustomRoles));
        loads.extend(cut(self.records, BulkRows::Records));
        loads.extend(cut(self.assignments, BulkRows::Assignments));
        loads.extend(cut(self.shares, BulkRows::Shares));
        loads
    }
}

/// A tenant of `bench/engine`'s shape at `bench.scale`, under the tenant's `root` unit.
fn generate(
    bench: &ScaleBench,
    root: BusinessUnitId,
    tenant: TenantId,
) -> anyhow::Result<Generated> {
    let s = bench.scale;
    let mut n = Numbers(bench.seed);
    let now = time::OffsetDateTime::now_utc();
    let (units, users, groups, roles) = (
        part(1_000.0, s, 10),
        part(100_000.0, s, 50),
        part(10_000.0, s, 10),
        part(1_000.0, s, 20),
    );
    let (records, assignments, shares) = (
        part(1_000_000.0, s, 200),
        part(1_000_000.0, s, 200),
        part(100_000.0, s, 20),
    );
    let unit_ids: Vec<BusinessUnitId> = (0..units).map(|_| BusinessUnitId::generate()).collect();
    let mut unit_rows = Vec::with_capacity(units);
    for (i, unit) in unit_ids.iter().enumerate() {
        // Each unit under the root or an earlier one: a tree.
        let parent = if i == 0 { root } else { unit_ids[n.below(i)] };
        unit_rows.push((
            *unit,
            Some(parent),
            parse_name("name", &format!("unit-{i:04}"))?,
        ));
    }
    let mut user_rows = Vec::with_capacity(users);
    for i in 0..users {
        user_rows.push(BulkUser {
            id: UserId::generate(),
            user_name: parse_name("user_name", &user_name(i))?,
            email: Some(parse_email(
                "email",
                &format!("{}@example.com", user_name(i)),
            )?),
            business_unit_id: unit_ids[n.below(units)],
        });
    }
    // Five levels of groups: a group is only in groups of a lower level, so nesting is acyclic.
    let group_ids: Vec<GroupId> = (0..groups).map(|_| GroupId::generate()).collect();
    let mut group_rows = Vec::with_capacity(groups);
    let mut memberships = Vec::new();
    for (g, group) in group_ids.iter().enumerate() {
        let team = (n.percent() < 10).then(|| unit_ids[n.below(units)]);
        group_rows.push((*group, parse_name("name", &format!("group-{g:05}"))?, team));
        let level = g % 5;
        if level > 0 {
            let parent = n.below(groups / 5).saturating_mul(5) + n.below(level);
            if parent < groups && parent != g {
                memberships.push((group_ids[parent], PrincipalRef::group(*group)));
            }
        }
    }
    for user in &user_rows {
        let mut mine: Vec<usize> = (0..1 + n.below(3)).map(|_| n.below(groups)).collect();
        mine.sort_unstable();
        mine.dedup();
        for g in mine {
            memberships.push((group_ids[g], PrincipalRef::user(user.id)));
        }
    }
    let depths = [
        Depth::Own,
        Depth::BusinessUnit,
        Depth::BusinessUnitTree,
        Depth::Tenant,
    ];
    let types = vec![ResourceType {
        name: "document".into(),
        description: None,
        actions: (0..ACTIONS)
            .map(|a| ResourceAction {
                name: action_name(a),
                plane: Plane::Data,
                public: false,
            })
            .collect(),
        created_at: now,
        updated_at: now,
        version: 1,
    }];
    let role_rows: Vec<CustomRole> = (0..roles)
        .map(|r| {
            let mut permissions: Vec<RolePermission> = (0..2 + n.below(5))
                .map(|_| RolePermission {
                    action: format!("document.{}", action_name(n.below(ACTIONS))),
                    depth: depths[n.below(4)],
                })
                .collect();
            permissions.dedup_by(|a, b| a.action == b.action);
            CustomRole {
                id: RoleId::generate(),
                name: format!("role-{r:04}"),
                description: None,
                permissions,
                created_at: now,
                updated_at: now,
                version: 1,
            }
        })
        .collect();
    let mut record_rows = Vec::with_capacity(records);
    for i in 0..records {
        let (owner, unit) = if n.percent() < 85 {
            let u = &user_rows[n.below(users)];
            (PrincipalRef::user(u.id), u.business_unit_id)
        } else {
            let (g, _, team) = &group_rows[n.below(groups)];
            (
                PrincipalRef::group(*g),
                team.unwrap_or(unit_ids[n.below(units)]),
            )
        };
        record_rows.push(RecordEntry {
            id: RecordId::generate(),
            resource_type: "document".into(),
            external_id: format!("doc-{i:07}"),
            owner,
            business_unit_id: unit,
            environment_id: None,
            created_at: now,
            updated_at: now,
        });
    }
    let hour = time::Duration::hours(1);
    let mut assignment_rows = Vec::with_capacity(assignments);
    // A principal holds a role at a scope at most once (the store's unique key).
    let mut held = std::collections::HashSet::new();
    while assignment_rows.len() < assignments {
        let principal = if n.percent() < 50 {
            PrincipalRef::user(user_rows[n.below(users)].id)
        } else {
            PrincipalRef::group(group_ids[n.below(groups)])
        };
        let scope = match n.percent() {
            0..25 => Scope::Tenant,
            25..60 => Scope::BusinessUnit(unit_ids[n.below(units)]),
            _ => Scope::Record(record_rows[n.below(records)].id),
        };
        let role = RoleRef::Custom(role_rows[n.below(roles)].id);
        if !held.insert((principal, role, scope)) {
            continue;
        }
        let (starts_at, ends_at) = match n.percent() {
            0..4 => (None, Some(now - hour)),
            4..7 => (Some(now + hour), None),
            7..10 => (Some(now - hour), Some(now + hour)),
            _ => (None, None),
        };
        assignment_rows.push(RoleAssignment {
            id: RoleAssignmentId::generate(),
            tenant_id: tenant,
            principal,
            role,
            scope,
            starts_at,
            ends_at,
            created_at: now,
        });
    }
    let share_rows = (0..shares)
        .map(|_| {
            let mut actions: Vec<String> = (0..1 + n.below(2))
                .map(|_| action_name(n.below(ACTIONS)))
                .collect();
            actions.dedup();
            Share {
                id: ShareId::generate(),
                record_id: record_rows[n.below(records)].id,
                principal: PrincipalRef::user(user_rows[n.below(users)].id),
                actions,
                created_at: now,
            }
        })
        .collect();
    Ok(Generated {
        units: unit_rows,
        users: user_rows,
        groups: group_rows,
        memberships,
        types,
        roles: role_rows,
        assignments: assignment_rows,
        records: record_rows,
        shares: share_rows,
    })
}
